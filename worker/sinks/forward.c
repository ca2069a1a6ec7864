/*
 * forward: the driver of forward sinks: events (or the records as they
 * came) to upstream collectors over TCP or a unix socket.
 *
 * Each worker keeps one non-blocking connection per upstream, opened when
 * there is something to send.  "failover" sends to the first upstream that
 * takes a connection and stays with it until it fails; "roundrobin" sends
 * each batch to the next upstream.  A unit (a line, or an octet-counted
 * frame) leaves the queue only once it has been written whole; when a
 * connection fails, the unit it was in the middle of is sent again, whole,
 * on the next one, so no unit is split or written twice by us.  What the
 * kernel had taken for a connection that then failed may be lost: plain
 * TCP does not say what the peer read.  An upstream that closes its side
 * first (a graceful restart: shutdown(SHUT_WR), then read to the end) loses
 * nothing: we stop writing as soon as we see its FIN.
 */
#include <errno.h>
#include <event2/event_struct.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "driver.h"
#include "proc.h"

enum { UP_IDLE, UP_CONNECTING, UP_OPEN };

struct upstream {
	struct sink	*s;
	const struct addr *addr;
	char		 text[ADDR_STRLEN];
	int		 fd;
	int		 state;
	struct event	 rev;		/* readable: the upstream's FIN, while connected */
	struct event	 wev;		/* writable: while connecting, or its socket is full */
};

struct forward {
	struct upstream	*up;
	int		 nup;
	int		 cur;		/* the upstream sending now */
	int		 fails;		/* upstreams that failed in a row */
	size_t		 partial;	/* bytes of the head unit already sent on it */
	struct log_limit downlog;
};

static void	on_readable(evutil_socket_t, short, void *);
static void	on_writable(evutil_socket_t, short, void *);

/* The connection failed or the upstream left: the next one is tried. */
static void
drop_conn(struct forward *f, struct upstream *u, const char *why)
{
	log_limited(&f->downlog, LOG_LVL_WARNING, "%s: sink %s: upstream %s: %s", proc.name,
	    u->s->cf->name, u->text, why);
	if (u->fd != -1) {
		event_del(&u->rev);
		event_del(&u->wev);
		close(u->fd);
	}
	u->fd = -1;
	u->state = UP_IDLE;
	if (u != &f->up[f->cur])
		return;		/* an idle connection of roundrobin's: nothing was in progress */
	f->partial = 0;		/* the unit in progress goes again, whole */
	f->fails++;
	f->cur = (f->cur + 1) % f->nup;
}

static int
start_connect(struct upstream *u)
{
	int fd = socket(u->addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd == -1)
		return -1;
	if (connect(fd, (const struct sockaddr *)&u->addr->ss, u->addr->len) == -1 &&
	    errno != EINPROGRESS) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	u->fd = fd;
	u->state = UP_CONNECTING;
	event_assign(&u->rev, proc.base, fd, EV_READ | EV_PERSIST, on_readable, u);
	event_assign(&u->wev, proc.base, fd, EV_WRITE | EV_PERSIST, on_writable, u);
	event_add(&u->rev, NULL);
	event_add(&u->wev, NULL);
	return 0;
}

/* A connection in progress: done (1), still going (0), or failed (-1, errno). */
static int
check_connected(struct upstream *u)
{
	struct pollfd pfd = { u->fd, POLLOUT, 0 };
	int err = 0;
	socklen_t len = sizeof(err);

	if (poll(&pfd, 1, 0) == 0)
		return 0;
	if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 || err != 0) {
		errno = err ? err : errno;
		return -1;
	}
	u->state = UP_OPEN;
	return 1;
}

/*
 * An upstream to send on: the current one if it is open or connecting,
 * else the next that takes a connection (failover keeps its order).  NULL
 * with errno once every upstream failed in a row: sink.c then backs off.
 */
static struct upstream *
pick(struct sink *s)
{
	struct forward *f = s->state;

	while (f->fails < f->nup) {
		struct upstream *u = &f->up[f->cur];

		if (u->state != UP_IDLE || start_connect(u) == 0)
			return u;
		drop_conn(f, u, strerror(errno));
	}
	f->fails = 0;		/* the retry after the back-off starts afresh */
	errno = ECONNREFUSED;
	return NULL;
}

static ssize_t
forward_write(struct sink *s, int *wait)
{
	struct forward *f = s->state;
	struct upstream *u;
	size_t done = 0, head;
	ssize_t n;

	*wait = 0;
	if ((u = pick(s)) == NULL)
		return -1;
	snprintf(s->where, sizeof(s->where), "%s", u->text);
	if (u->state == UP_CONNECTING) {
		int rc = check_connected(u);

		if (rc == -1) {
			drop_conn(f, u, strerror(errno));
			return forward_write(s, wait);		/* the next upstream, or -1 */
		}
		if (rc == 0) {
			*wait = 1;
			return 0;
		}
	}
	head = sink_unit_len(s, s->q.p, s->q.len);
	while (done < s->q.len) {
		n = send(u->fd, s->q.p + done + f->partial, s->q.len - done - f->partial,
		    MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				*wait = 1;
				event_add(&u->wev, NULL);
				break;
			}
			drop_conn(f, u, strerror(errno));
			return done ? (ssize_t)done : -1;
		}
		f->fails = 0;
		f->partial += n;
		while (head > 0 && f->partial >= head) {	/* whole units leave the queue */
			done += head;
			f->partial -= head;
			head = done < s->q.len ? sink_unit_len(s, s->q.p + done, s->q.len - done) : 0;
		}
	}
	if (done == s->q.len && s->cf->mode == FORWARD_ROUNDROBIN)
		f->cur = (f->cur + 1) % f->nup;		/* the next batch goes to the next one */
	return done;
}

/*
 * Readable: an upstream sends nothing, so this is its FIN (or an error): it
 * is going away, and nothing more is written to it.
 */
static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *u = arg;
	char buf[512];
	ssize_t n = recv(fd, buf, sizeof(buf), 0);

	(void)what;
	if (n > 0 || (n == -1 && (errno == EAGAIN || errno == EINTR)))
		return;
	drop_conn(u->s->state, u, n == 0 ? "closed by the upstream" : strerror(errno));
	sink_writable(u->s);	/* the next upstream takes over */
}

/* Writable: connected, or room again; watched only while something waits. */
static void
on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *u = arg;

	(void)fd;
	(void)what;
	event_del(&u->wev);
	sink_writable(u->s);
}

static int
forward_start(struct sink *s)
{
	struct forward *f = calloc(1, sizeof(*f));

	if (f == NULL || (f->up = calloc(s->cf->nupstreams, sizeof(*f->up))) == NULL) {
		free(f);
		log_warn("%s: sink %s", proc.name, s->cf->name);
		return -1;
	}
	f->nup = s->cf->nupstreams;
	for (int i = 0; i < f->nup; i++) {
		struct upstream *u = &f->up[i];

		u->s = s;
		u->addr = &s->cf->upstream_v[i];
		u->fd = -1;
		snprintf(u->text, sizeof(u->text), "%s", s->cf->upstreams.v[i]);
	}
	s->state = f;
	return 0;
}

static void
forward_close(struct sink *s)
{
	struct forward *f = s->state;

	if (f == NULL)
		return;
	for (int i = 0; i < f->nup; i++) {
		if (f->up[i].fd != -1) {
			event_del(&f->up[i].rev);
			event_del(&f->up[i].wev);
			close(f->up[i].fd);
		}
	}
	free(f->up);
	free(f);
	s->state = NULL;
}

const struct sink_driver sink_forward_driver = {
	"forward", forward_start, forward_write, NULL, NULL, forward_close
};
