/*
 * conn: per-connection state, the read path and every way a connection
 * ends (peer closed, read error, drain deadline, fast stop).
 *
 * Reads go into one worker-wide buffer: a connection holds no buffer of
 * its own while it has nothing pending.  One wake-up reads at most
 * CONN_READS_PER_WAKE times, so a client that sends as fast as it can does
 * not starve the others in the same worker.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "conn.h"
#include "log.h"
#include "worker.h"

#define CONN_READ_BUF		65536
#define CONN_READS_PER_WAKE	4

struct conn {
	int			 fd;
	struct event		 ev;
	const struct listener_cfg *l;
	uint64_t		 bytes;
	uint64_t		 records;
	struct conn		*prev, *next;
	char			 peer[ADDR_STRLEN];
};

static struct conn	*conns;
static int		 nconns;
static struct conn_totals totals;
static char		 readbuf[CONN_READ_BUF];

void
conn_init(void)
{
	conns = NULL;
	nconns = 0;
	memset(&totals, 0, sizeof(totals));
}

int
conn_count(void)
{
	return nconns;
}

const struct conn_totals *
conn_totals(void)
{
	return &totals;
}

static void
conn_close(struct conn *c, const char *reason)
{
	log_debug("%s: %s %s closed (%s): %llu bytes, %llu records", wrk.name, c->l->name, c->peer,
	    reason, (unsigned long long)c->bytes, (unsigned long long)c->records);
	event_del(&c->ev);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	nconns--;
	totals.closed++;
	free(c);
	worker_conn_closed();
}

static uint64_t
count_records(const char *p, size_t n)
{
	const char *end = p + n;
	uint64_t records = 0;

	while ((p = memchr(p, '\n', end - p)) != NULL) {
		records++;
		p++;
	}
	return records;
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)what;
	for (int i = 0; i < CONN_READS_PER_WAKE; i++) {
		ssize_t n = read(fd, readbuf, sizeof(readbuf));

		if (n > 0) {
			uint64_t r = count_records(readbuf, n);

			c->bytes += n;
			c->records += r;
			totals.bytes += n;
			totals.records += r;
			if ((size_t)n < sizeof(readbuf))
				return;
			continue;
		}
		if (n == 0) {
			conn_close(c, "closed by peer");
		} else if (errno != EAGAIN && errno != EINTR) {
			char why[64];

			snprintf(why, sizeof(why), "read: %s", strerror(errno));
			conn_close(c, why);
		}
		return;
	}
}

int
conn_new(int fd, const struct listener_cfg *l, const struct sockaddr *sa, socklen_t len)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		log_warn("%s: %s: out of memory for a connection", wrk.name, l->name);
		close(fd);
		return -1;
	}
	c->fd = fd;
	c->l = l;
	if (sa->sa_family == AF_UNIX)
		snprintf(c->peer, sizeof(c->peer), "unix");
	else
		addr_format(sa, len, c->peer, sizeof(c->peer));
	event_assign(&c->ev, wrk.base, fd, EV_READ | EV_PERSIST, on_read, c);
	event_add(&c->ev, NULL);
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	nconns++;
	totals.accepted++;
	return 0;
}

void
conn_close_all(const char *reason)
{
	while (conns)
		conn_close(conns, reason);
}
