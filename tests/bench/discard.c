/*
 * discard: the loopback ceiling of make bench: a TCP receiver that reads
 * what its clients send, counts the line feeds and keeps nothing.
 *
 *   discard -p PORT -o COUNTFILE
 *
 * One thread, epoll, 256 KiB reads.  It closes a connection on EOF, so
 * churn's clients see their end of stream.  Every 20 ms, when the count
 * changed, it rewrites COUNTFILE with the records (line feeds) read so far,
 * which is what make bench counts as "written".  SIGTERM ends it.
 */
#include <arpa/inet.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF	(256 * 1024)

static volatile sig_atomic_t done;
static unsigned long long lines;

static void
on_term(int sig)
{
	(void)sig;
	done = 1;
}

static int
listen_on(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd, one = 1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) == -1)
		err(1, "socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 || listen(fd, 4096) == -1)
		err(1, "bind %d", port);
	return fd;
}

static void
accept_all(int ep, int lfd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
		ev.data.fd = fd;
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	}
}

static void
drain(int fd, char *buf)
{
	ssize_t n;
	char *p, *end;

	while ((n = read(fd, buf, BUF)) > 0)
		for (p = buf, end = buf + n; (p = memchr(p, '\n', end - p)) != NULL; p++)
			lines++;
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
		close(fd);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
save(const char *path)
{
	char tmp[4096], num[32];
	int fd, n;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	n = snprintf(num, sizeof(num), "%llu\n", lines);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644)) == -1)
		err(1, "%s", tmp);
	if (write(fd, num, n) != n || close(fd) == -1 || rename(tmp, path) == -1)
		err(1, "%s", path);
}

int
main(int argc, char **argv)
{
	struct epoll_event ev = { .events = EPOLLIN }, evs[256];
	unsigned long long saved = ~0ULL;
	double last = 0;
	const char *out = NULL;
	char *buf = malloc(BUF);
	int ch, port = 0, lfd, ep, n;

	while ((ch = getopt(argc, argv, "o:p:")) != -1) {
		if (ch == 'p')
			port = atoi(optarg);
		else if (ch == 'o')
			out = optarg;
		else
			errx(64, "usage: discard -p PORT -o COUNTFILE");
	}
	if (port <= 0 || out == NULL || buf == NULL)
		errx(64, "usage: discard -p PORT -o COUNTFILE");
	signal(SIGTERM, on_term);
	lfd = listen_on(port);
	if ((ep = epoll_create1(0)) == -1)
		err(1, "epoll");
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	while (!done) {
		n = epoll_wait(ep, evs, 256, 20);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == lfd)
				accept_all(ep, lfd);
			else
				drain(evs[i].data.fd, buf);
		}
		if (lines != saved && now() - last >= 0.02) {
			save(out);
			saved = lines;
			last = now();
		}
	}
	save(out);
	return 0;
}
