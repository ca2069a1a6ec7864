/*
 * conn: per-connection state, the read path and every way a connection
 * ends (peer closed, read error, framing error, drain deadline, fast stop).
 *
 * Reads go into one worker-wide buffer and records are framed in place;
 * only a record split across reads is kept, in the connection's framer, so
 * an idle connection holds no buffer.  One wake-up reads at most
 * CONN_READS_PER_WAKE times, so a client that sends as fast as it can does
 * not starve the others in the same worker.  A new connection is read at
 * once, before epoll watches it: a client that connects, sends and closes
 * is done without one epoll_ctl(2).  While a sink is full, no
 * connection reads (conn_set_reading): TCP flow control pushes back.
 *
 * Two timers guard each connection: idle_timeout, reset by every read, and
 * record_timeout, armed when a record begins and not reset by the bytes that
 * trickle in, so a slowloris client is cut off.  Both use libevent's common
 * timeouts: every timer of one duration sits in one queue, so arming,
 * resetting and expiring cost O(1), whatever the number of connections.
 * Neither fires while the worker itself is not reading (back-pressure).
 *
 * On a proxy_protocol listener a connection begins with a PROXY header
 * (proxy.c), read before anything else: until it is complete the peer is
 * the load balancer, and record_timeout runs from the accept, so a header
 * that never comes or trickles in is cut off like a slow record.  Then the
 * client it names becomes the peer of the connection's events and log
 * lines, and is counted for max_connections_per_ip.  A stream that is no
 * header is a framing error.
 *
 * A RELP listener's connection also has a session (acks.c) and a write
 * path: responses go out as the sinks write the records they acknowledge.
 * send_timeout closes a client that stops reading them; one with more than
 * CONN_OUT_MAX bytes unsent is not read from until it takes them.  A
 * draining worker answers what it has read, sends "serverclose", and
 * closes: the client resends the rest to the next generation.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "accept.h"
#include "acks.h"
#include "addr.h"
#include "conn.h"
#include "event.h"
#include "framing.h"
#include "json.h"
#include "log.h"
#include "proxy.h"
#include "records.h"
#include "sink.h"
#include "stats.h"
#include "worker.h"

#define CONN_READ_BUF		65536
#define CONN_READS_PER_WAKE	4
#define CONN_OUT_MAX		(256 * 1024)	/* unsent responses before reading pauses */

struct conn {
	int			 fd;
	struct event		 ev;
	struct event		 idle_ev;	/* idle_timeout */
	struct event		 rec_ev;	/* record_timeout, while a record is open */
	const struct timeval	*idle_tv, *rec_tv;	/* common timeouts, or NULL */
	const struct listener_cfg *l;
	struct ct_ticket	 ticket;	/* its place in conntab, given back on close */
	struct framer		 fr;
	struct relp_io		*r;		/* NULL for plain TCP */
	struct proxy_wait	*proxy;		/* until the PROXY header is in */
	uint64_t		 bytes;
	uint64_t		 records;
	struct conn		*prev, *next;
	char			 peer[ADDR_STRLEN];
	size_t			 prefixlen;
	char			*prefix;	/* ,"peer":"...","listener":"..." */
};

/*
 * What only a RELP connection has, allocated apart so that a plain TCP
 * connection does not carry it: the session and the write path.
 */
struct relp_io {
	struct acks		 acks;
	struct obuf		 out;		/* answers not yet sent */
	struct event		 wev;		/* writable, while out holds bytes */
	struct event		 send_ev;	/* send_timeout, while out holds bytes */
	const struct timeval	*send_tv;
	struct conn		*c;
	struct relp_io		*prev, *next;	/* in sessions */
};

/*
 * A proxy_protocol connection until its header is complete: the parser,
 * and the socket's own peer, which LOCAL and UNKNOWN headers keep.
 */
struct proxy_wait {
	struct proxy_parser	 parser;
	struct sockaddr_storage	 sock;
	socklen_t		 socklen;
};

static struct conn	*conns;
static struct relp_io	*sessions;
static struct event	*answer_ev;	/* sinks wrote: answers may go out */

static void	on_answer(evutil_socket_t, short, void *);
static int	make_prefix(struct conn *, const struct sockaddr *, socklen_t);
static int		 nconns;
static int		 reading = 1;
static struct conn_totals *totals;	/* in the worker's stats slot */
static char		 readbuf[CONN_READ_BUF];
static struct log_limit	 framing_limit, idle_limit, record_limit, send_limit;

/* libevent's common-timeout handle for a duration: one queue per duration. */
static const struct timeval *
common_timeout(long ms)
{
	static struct { long ms; const struct timeval *tv; } known[3 * CFG_MAX_LISTENERS];
	static int nknown;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (ms <= 0)
		return NULL;
	for (int i = 0; i < nknown; i++)
		if (known[i].ms == ms)
			return known[i].tv;
	if (nknown == 3 * CFG_MAX_LISTENERS)
		return NULL;	/* cannot happen: three durations per listener */
	known[nknown].ms = ms;
	known[nknown].tv = event_base_init_common_timeout(wrk.base, &tv);
	return known[nknown++].tv;
}

void
conn_init(void)
{
	conns = NULL;
	sessions = NULL;
	answer_ev = event_new(wrk.base, -1, 0, on_answer, NULL);
	nconns = 0;
	reading = 1;
	totals = &wrk.stats->conn;
}

int
conn_count(void)
{
	return nconns;
}

const struct conn_totals *
conn_totals(void)
{
	return totals;
}

static void
end_session(struct relp_io *r)
{
	event_del(&r->wev);
	event_del(&r->send_ev);
	if (r->prev)
		r->prev->next = r->next;
	else
		sessions = r->next;
	if (r->next)
		r->next->prev = r->prev;
	acks_free(&r->acks);
	free(r->out.p);
	free(r);
}

static void
conn_close(struct conn *c, const char *reason)
{
	log_debug("%s: %s %s closed (%s): %llu bytes, %llu records", wrk.name, c->l->name, c->peer,
	    reason, (unsigned long long)c->bytes, (unsigned long long)c->records);
	event_del(&c->ev);
	event_del(&c->idle_ev);
	event_del(&c->rec_ev);
	close(c->fd);
	ct_release(wrk.owner, &c->ticket);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	nconns--;
	totals->closed++;
	frame_free(&c->fr);
	if (c->r)
		end_session(c->r);
	free(c->proxy);
	free(c->prefix);
	free(c);
	worker_conn_closed();
}

/* A record: 0 when every sink took it, -1 when one dropped it (for RELP's answer). */
static int
route(void *arg, const char *rec, size_t len, int truncated)
{
	struct conn *c = arg;
	struct event_meta *m = &wrk.meta;

	c->records++;
	wrk.stats->lsn_records[c->l - wrk.cf->listeners]++;
	m->prefix = c->prefix;
	m->prefixlen = c->prefixlen;
	return records_route(m, c->l, rec, len, truncated);
}

static void
on_record(void *arg, const char *rec, size_t len, int truncated)
{
	route(arg, rec, len, truncated);
}

/* Whether a record (or the PROXY header) has begun and not ended: record_timeout runs. */
static int
in_record(const struct conn *c)
{
	if (c->proxy)
		return 1;
	return c->r ? acks_in_frame(&c->r->acks) : frame_in_record(&c->fr);
}

/* Close c for bytes that break its framing or its PROXY header; returns -1. */
static int
framing_error(struct conn *c, const char *why)
{
	totals->framing_errors++;
	log_limited(&framing_limit, LOG_LVL_WARNING, "%s: %s %s: closing: %s", wrk.name,
	    c->l->name, c->peer, why);
	conn_close(c, why);
	return -1;
}

/*
 * The PROXY header is in: the client it names (or the balancer, for LOCAL
 * and UNKNOWN) is the peer from now on, and is counted, and capped, for
 * max_connections_per_ip.  Returns -1 when the connection was closed.
 */
static int
header_done(struct conn *c)
{
	struct proxy_wait *w = c->proxy;
	const struct proxy_parser *p = &w->parser;
	const struct sockaddr *sa = p->local ? (const struct sockaddr *)&w->sock :
	    (const struct sockaddr *)&p->src;
	struct ct_limits lim = { 0, c->l->max_connections_per_ip, c->l->ipv6_prefix };
	char via[ADDR_STRLEN];
	enum ct_refusal why;

	snprintf(via, sizeof(via), "%s", c->peer);
	if (make_prefix(c, sa, p->local ? w->socklen : p->srclen) == -1) {
		log_warn("%s: %s: out of memory for a connection", wrk.name, c->l->name);
		conn_close(c, "out of memory");
		return -1;
	}
	if ((why = ct_acquire_ip(wrk.owner, sa, &lim, &c->ticket)) != CT_ADMIT) {
		acc_refusal(c->l, c->peer, why);
		conn_close(c, ct_reason_name(why));
		return -1;
	}
	if (p->local)
		log_debug("%s: %s %s: PROXY header without a client address (LOCAL or UNKNOWN)",
		    wrk.name, c->l->name, c->peer);
	else
		log_debug("%s: %s %s: client named by the PROXY header from %s", wrk.name,
		    c->l->name, c->peer, via);
	free(w);
	c->proxy = NULL;
	event_del(&c->rec_ev);	/* the record clock starts again with the first record */
	return 0;
}

/* The PROXY header's part of n bytes: how many it took, or -1 when c was closed. */
static ssize_t
feed_header(struct conn *c, const char *data, size_t n)
{
	const char *why = NULL;
	size_t used = 0;

	switch (proxy_feed(&c->proxy->parser, data, n, &used, &why)) {
	case 0:
		return n;
	case 1:
		return header_done(c) == -1 ? -1 : (ssize_t)used;
	default:
		return framing_error(c, why);
	}
}

/* Returns -1 when the connection was closed. */
static int
feed(struct conn *c, const char *data, size_t n)
{
	const char *why = NULL;
	int rc;

	if (c->proxy) {
		ssize_t used = feed_header(c, data, n);

		if (used == -1)
			return -1;
		data += used;
		if ((n -= used) == 0)
			return 0;
	}
	rc = c->r ? acks_feed(&c->r->acks, data, n, route, c, &why) :
	    frame_feed(&c->fr, data, n, on_record, c, &why);
	return rc == -1 ? framing_error(c, why) : 0;
}

/*
 * After a read: the idle clock restarts; the record clock runs from the
 * first byte of the record still open, so it restarts only when this read
 * completed a record (records_before) and began another.
 */
static void
arm_timers(struct conn *c, uint64_t records_before)
{
	int open = in_record(c);

	if (c->idle_tv)
		event_add(&c->idle_ev, c->idle_tv);
	if (!open)
		event_del(&c->rec_ev);
	else if (c->rec_tv && (c->records != records_before ||
	    !evtimer_pending(&c->rec_ev, NULL)))
		event_add(&c->rec_ev, c->rec_tv);
}

/* Whether c should be read from now: not while the sinks or its client hold us up. */
static int
want_read(const struct conn *c)
{
	if (!reading)
		return 0;
	if (c->r == NULL)
		return 1;
	return !c->r->acks.closing && c->r->out.len + c->r->acks.held.len < CONN_OUT_MAX;
}

static void
update_read(struct conn *c)
{
	int on = want_read(c);

	if (on != (event_pending(&c->ev, EV_READ, NULL) != 0)) {
		if (on)
			event_add(&c->ev, NULL);
		else
			event_del(&c->ev);
	}
}

/*
 * The write path: send what is in out.  send_timeout runs while bytes
 * wait and restarts whenever the client takes some.  A RELP session that
 * ended closes the connection once its last response is out.  Returns -1
 * when the connection was closed.
 */
static int
send_out(struct conn *c)
{
	struct relp_io *r = c->r;
	size_t sent = 0;

	while (sent < r->out.len) {
		ssize_t n = send(c->fd, r->out.p + sent, r->out.len - sent, MSG_NOSIGNAL);

		if (n > 0) {
			sent += n;
		} else if (errno != EINTR) {
			if (errno == EAGAIN)
				break;
			conn_close(c, errno == EPIPE || errno == ECONNRESET ? "closed by peer" :
			    "write failed");
			return -1;
		}
	}
	if (sent) {
		r->out.len -= sent;
		memmove(r->out.p, r->out.p + sent, r->out.len);
		if (r->send_tv)
			event_add(&r->send_ev, r->send_tv);
	}
	if (r->out.len == 0) {
		event_del(&r->wev);
		event_del(&r->send_ev);
		if (acks_finished(&r->acks)) {
			conn_close(c, "RELP session closed");
			return -1;
		}
	} else {
		event_add(&r->wev, NULL);
		if (r->send_tv && !evtimer_pending(&r->send_ev, NULL))
			event_add(&r->send_ev, r->send_tv);
	}
	update_read(c);
	return 0;
}

/* Responses whose records the sinks have written go out. */
static int
answer(struct conn *c)
{
	if (acks_release(&c->r->acks, &c->r->out) == -1) {
		conn_close(c, "out of memory for responses");
		return -1;
	}
	return send_out(c);
}

static void
on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	send_out(arg);
}

static void
on_answer(evutil_socket_t fd, short what, void *arg)
{
	struct relp_io *r, *next;

	(void)fd;
	(void)what;
	(void)arg;
	for (r = sessions; r; r = next) {
		next = r->next;
		if (acks_waiting(&r->acks))
			answer(r->c);
	}
}

/*
 * A sink wrote: acknowledgements may go out.  Not at once: a sink may write
 * in the middle of a connection's read (a full batch), and sending could
 * close that very connection under it.  The answers go out once the
 * current callback returns, in the same turn of the loop.
 */
void
conn_sinks_progressed(void)
{
	if (sessions && answer_ev)
		event_active(answer_ev, EV_TIMEOUT, 1);
}

/* Draining: RELP sessions end after answering what was read. */
void
conn_end_sessions(void)
{
	struct relp_io *r, *next;

	for (r = sessions; r; r = next) {
		next = r->next;
		if (acks_serverclose(&r->acks) == -1)
			conn_close(r->c, "out of memory for responses");
		else
			answer(r->c);
	}
}

/*
 * Read what the client sent, at most CONN_READS_PER_WAKE times.  A short
 * read ends it, as the socket is then likely empty, unless to_the_end: then
 * reading stops only at EAGAIN or the end of the stream.  Returns -1 when
 * the connection was closed.
 */
static int
read_client(struct conn *c, int to_the_end)
{
	struct timespec now;

	for (int i = 0; i < CONN_READS_PER_WAKE && want_read(c); i++) {
		ssize_t n = read(c->fd, readbuf, sizeof(readbuf));

		if (n > 0) {
			uint64_t records_before = c->records;

			clock_gettime(CLOCK_REALTIME, &now);
			event_set_time(&wrk.meta, &now);
			c->bytes += n;
			totals->bytes += n;
			wrk.stats->lsn_bytes[c->l - wrk.cf->listeners] += n;
			if (feed(c, readbuf, n) == -1)
				return -1;
			arm_timers(c, records_before);
			if ((size_t)n < sizeof(readbuf) && !to_the_end)
				break;
			continue;
		}
		if (n == 0) {
			if (c->proxy && proxy_started(&c->proxy->parser)) {
				framing_error(c, "closed inside the PROXY header");
				return -1;
			}
			if (c->r == NULL)
				frame_finish(&c->fr, on_record, c);
			conn_close(c, "closed by peer");
			return -1;
		}
		if (errno != EAGAIN && errno != EINTR) {
			char why[64];

			snprintf(why, sizeof(why), "read: %s", strerror(errno));
			conn_close(c, why);
			return -1;
		}
		break;
	}
	if (c->r) {
		if (acks_mark(&c->r->acks) == -1) {
			conn_close(c, "out of memory for responses");
			return -1;
		}
		return answer(c);	/* which may end the session */
	}
	return 0;
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	read_client(arg, 0);
}

/*
 * A timer ran out.  While the worker is not reading (a sink is full), the
 * client is not to blame: wait another period.
 */
static void
expire(struct conn *c, struct event *ev, const struct timeval *tv, const char *why,
    uint64_t *count, struct log_limit *ll)
{
	if (!reading || (c->r && acks_waiting(&c->r->acks))) {
		event_add(ev, tv);	/* the wait is ours, not the client's */
		return;
	}
	(*count)++;
	log_limited(ll, LOG_LVL_INFO, "%s: %s %s: closing: %s", wrk.name, c->l->name, c->peer,
	    why);
	conn_close(c, why);
}

static void
on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	expire(c, &c->idle_ev, c->idle_tv, "idle_timeout", &totals->idle_timeouts, &idle_limit);
}

static void
on_send_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	totals->send_timeouts++;
	log_limited(&send_limit, LOG_LVL_INFO, "%s: %s %s: closing: send_timeout, %zu bytes unsent",
	    wrk.name, c->l->name, c->peer, c->r->out.len);
	conn_close(c, "send_timeout");
}

static void
on_record_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	expire(c, &c->rec_ev, c->rec_tv, c->proxy ? "record_timeout: no complete PROXY header" :
	    "record_timeout", &totals->record_timeouts, &record_limit);
}

/* The peer's name, and what every event of this connection carries. */
static int
make_prefix(struct conn *c, const struct sockaddr *sa, socklen_t len)
{
	size_t nl = strlen(c->l->name), np;
	struct obuf o;

	if (sa->sa_family == AF_UNIX)
		snprintf(c->peer, sizeof(c->peer), "unix");
	else
		addr_format(sa, len, c->peer, sizeof(c->peer));
	np = strlen(c->peer);
	o.cap = JSON_STRING_MAX(np) + JSON_STRING_MAX(nl) + 32;
	o.len = 0;
	if ((o.p = malloc(o.cap)) == NULL)
		return -1;
	memcpy(o.p, ",\"peer\":", 8);
	o.len = 8;
	json_string(&o, c->peer, np);
	memcpy(o.p + o.len, ",\"listener\":", 12);
	o.len += 12;
	json_string(&o, c->l->name, nl);
	free(c->prefix);		/* the balancer's, once a PROXY header named the client */
	c->prefix = o.p;
	c->prefixlen = o.len;
	return 0;
}

static int
start_session(struct conn *c)
{
	struct relp_io *r = calloc(1, sizeof(*r));

	if ((c->r = r) == NULL)
		return -1;
	r->c = c;
	acks_init(&r->acks, c->l);
	event_assign(&r->wev, wrk.base, c->fd, EV_WRITE | EV_PERSIST, on_write, c);
	evtimer_assign(&r->send_ev, wrk.base, on_send_timeout, c);
	r->send_tv = common_timeout(c->l->send_timeout_ms);
	r->next = sessions;
	if (sessions)
		sessions->prev = r;
	sessions = r;
	return 0;
}

static int
start_proxy(struct conn *c, const struct sockaddr *sa, socklen_t len)
{
	struct proxy_wait *w = calloc(1, sizeof(*w));

	if ((c->proxy = w) == NULL)
		return -1;
	proxy_init(&w->parser);
	w->socklen = len < sizeof(w->sock) ? len : sizeof(w->sock);
	memcpy(&w->sock, sa, w->socklen);
	return 0;
}

int
conn_new(int fd, const struct listener_cfg *l, const struct sockaddr *sa, socklen_t len,
    const struct ct_ticket *t)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c != NULL) {
		c->l = l;
		if (make_prefix(c, sa, len) == -1) {
			free(c);
			c = NULL;
		}
	}
	if (c == NULL) {
		log_warn("%s: %s: out of memory for a connection", wrk.name, l->name);
		close(fd);
		ct_release(wrk.owner, t);
		return -1;
	}
	c->fd = fd;
	c->ticket = *t;
	frame_init(&c->fr, (enum frame_mode)l->framing, l->max_record);
	event_assign(&c->ev, wrk.base, fd, EV_READ | EV_PERSIST, on_read, c);
	evtimer_assign(&c->idle_ev, wrk.base, on_idle, c);
	evtimer_assign(&c->rec_ev, wrk.base, on_record_timeout, c);
	c->idle_tv = common_timeout(l->idle_timeout_ms);
	c->rec_tv = common_timeout(l->record_timeout_ms);
	if ((l->proxy_protocol && start_proxy(c, sa, len) == -1) ||
	    (l->protocol == PROTO_RELP && start_session(c) == -1)) {
		log_warn("%s: %s: out of memory for a connection", wrk.name, l->name);
		close(fd);
		ct_release(wrk.owner, t);
		frame_free(&c->fr);
		free(c->proxy);
		free(c->prefix);
		free(c);
		return -1;
	}
	if (c->idle_tv)		/* a client that never sends is idle from the start */
		event_add(&c->idle_ev, c->idle_tv);
	if (c->proxy && c->rec_tv)	/* and its PROXY header is due from the start */
		event_add(&c->rec_ev, c->rec_tv);
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	nconns++;
	totals->accepted++;
	/*
	 * Clients speak first, and by the time a worker accepts, a client's
	 * first bytes (a short-lived one's whole stream) are often here: read
	 * them now, and a connection that ends there never costs the
	 * epoll_ctl(2) calls of watching it.
	 */
	if (read_client(c, 1) == 0)
		update_read(c);
	return 0;
}

/* Back-pressure from the sinks: stop or resume reading on every connection. */
void
conn_set_reading(int on)
{
	if (on == reading)
		return;
	reading = on;
	for (struct conn *c = conns; c; c = c->next)
		update_read(c);
	if (on)	/* data that arrived meanwhile: the events fire again since it is level-triggered */
		log_debug("%s: reading from clients again", wrk.name);
}

void
conn_close_all(const char *reason)
{
	while (conns)
		conn_close(conns, reason);
}
