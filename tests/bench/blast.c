/*
 * blast: send records over TCP as fast as the server takes them.
 *
 *   blast -p PORT [-h 127.0.0.1] [-c CONNECTIONS] [-d SECONDS] [-n RECORDS]
 *         [-s 3164|5424|json|mix] [-o]
 *
 * Every record carries "c=CONN s=SEQ" so a checker can prove exactly-once
 * arrival; -o sends RFC 6587 octet-counted frames instead of LF lines.
 * It stops after -d seconds or -n records in all (whichever comes first),
 * closes its connections and prints one line:
 *   blast: sent N records, B bytes, T s, R records/s, E connect errors
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK	(256 * 1024)

struct client {
	int		 fd;
	unsigned	 id;
	unsigned long	 seq;
	char		 buf[CHUNK];
	size_t		 len, off;
};

static const char *shape = "mix";
static int octet;
static unsigned long sent, limit = ~0UL;
static unsigned long long bytes;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
format(char *p, unsigned id, unsigned long seq)
{
	static const char pad[] = "the quick brown fox jumps over the lazy dog, again and again";
	int kind = strcmp(shape, "3164") == 0 ? 0 : strcmp(shape, "5424") == 0 ? 1 :
	    strcmp(shape, "json") == 0 ? 2 : (int)(seq % 3);

	switch (kind) {
	case 0:
		return sprintf(p, "<13>Nov 24 01:07:50 host app[%u]: c=%u s=%lu %s", id, id, seq, pad);
	case 1:
		return sprintf(p, "<165>1 2026-11-24T01:07:50.123456Z host app %u ID1 "
		    "[ex@32473 c=\"%u\" s=\"%lu\"] c=%u s=%lu %s", id, id, seq, id, seq, pad);
	default:
		return sprintf(p, "{\"c\":%u,\"s\":%lu,\"msg\":\"c=%u s=%lu %s\"}", id, seq, id, seq,
		    pad);
	}
}

/* Fill the client's buffer with whole records. */
static void
refill(struct client *cl)
{
	char rec[512];

	cl->len = cl->off = 0;
	while (sent < limit && cl->len + 600 < CHUNK) {
		int n = format(rec, cl->id, cl->seq);

		if (octet)
			cl->len += sprintf(cl->buf + cl->len, "%d %s", n, rec);
		else
			cl->len += sprintf(cl->buf + cl->len, "%s\n", rec);
		cl->seq++;
		sent++;
	}
}

static int
connect_to(const char *host, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	inet_pton(AF_INET, host, &sin.sin_addr);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

int
main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	int port = 0, nconn = 4, ch, ep, errors = 0, open = 0;
	double duration = 5, t0, t;
	struct client *cl;
	struct epoll_event ev, evs[64];

	while ((ch = getopt(argc, argv, "c:d:h:n:op:s:")) != -1) {
		switch (ch) {
		case 'c': nconn = atoi(optarg); break;
		case 'd': duration = atof(optarg); break;
		case 'h': host = optarg; break;
		case 'n': limit = strtoul(optarg, NULL, 10); break;
		case 'o': octet = 1; break;
		case 'p': port = atoi(optarg); break;
		case 's': shape = optarg; break;
		default:
			fprintf(stderr, "usage: blast -p PORT [-h HOST] [-c CONN] [-d SECONDS] "
			    "[-n RECORDS] [-s 3164|5424|json|mix] [-o]\n");
			return 64;
		}
	}
	if (port <= 0 || nconn <= 0 || (cl = calloc(nconn, sizeof(*cl))) == NULL)
		return 64;
	ep = epoll_create1(0);
	for (int i = 0; i < nconn; i++) {
		cl[i].id = i;
		if ((cl[i].fd = connect_to(host, port)) == -1) {
			errors++;
			continue;
		}
		ev.events = EPOLLOUT;
		ev.data.ptr = &cl[i];
		epoll_ctl(ep, EPOLL_CTL_ADD, cl[i].fd, &ev);
		open++;
	}
	t0 = now();
	while (open > 0 && (t = now() - t0) < duration) {
		int n = epoll_wait(ep, evs, 64, 100);

		for (int i = 0; i < n; i++) {
			struct client *c = evs[i].data.ptr;
			ssize_t w;

			if (c->off == c->len)
				refill(c);
			if (c->len == 0) {	/* -n reached */
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				open--;
				continue;
			}
			w = write(c->fd, c->buf + c->off, c->len - c->off);
			if (w > 0) {
				c->off += w;
				bytes += w;
			} else if (w == -1 && errno != EAGAIN) {
				errors++;
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				open--;
			}
		}
	}
	/* Finish the records already begun, so that every record sent is whole. */
	for (int i = 0; i < nconn; i++) {
		struct client *c = &cl[i];

		if (c->fd == -1)
			continue;
		fcntl(c->fd, F_SETFL, 0);
		while (c->off < c->len) {
			ssize_t w = write(c->fd, c->buf + c->off, c->len - c->off);

			if (w <= 0)
				break;
			c->off += w;
			bytes += w;
		}
		close(c->fd);
	}
	t = now() - t0;
	printf("blast: sent %lu records, %llu bytes, %.2f s, %.0f records/s, %d connect errors\n",
	    sent, bytes, t, sent / t, errors);
	return errors ? 1 : 0;
}
