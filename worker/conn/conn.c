/*
 * conn: per-connection state, the read path, the timers, the write path and
 * every way a connection ends (peer closed, read error, framing error,
 * timeouts, drain deadline, fast stop).
 *
 * Reads go into one worker-wide buffer and are handed to the connection's
 * handler, which frames records in place; only a record split across reads
 * is kept, in the handler's state, so an idle connection holds no buffer.
 * One wake-up reads at most CONN_READS_PER_WAKE times, so a client that
 * sends as fast as it can does not starve the others in the same worker.
 * A new connection is read at once, before epoll watches it: a client that
 * connects, sends and closes is done without one epoll_ctl(2).  While a
 * sink is full, no connection reads (conn_set_reading): TCP flow control
 * pushes back.
 *
 * Two timers guard each connection: idle_timeout, reset by every read, and
 * record_timeout, armed when a record begins (the handler says when one is
 * open) and not reset by the bytes that trickle in, so a slowloris client
 * is cut off.  Both use libevent's common timeouts: every timer of one
 * duration sits in one queue, so arming, resetting and expiring cost O(1),
 * whatever the number of connections.  Neither fires while the server
 * itself holds the client up (back-pressure, answers waiting for the
 * sinks, or its listener's rate limit: a client over it is not read from
 * until its bucket has refilled, ratelimit.c).
 *
 * Bytes cross the wire through the connection's transport (transport.h):
 * the plain one, or TLS.  A TLS handshake is a phase of the connection
 * before its handler sees a byte, timed by handshake_timeout on the record
 * timer (no record can be open yet); the events wait for what the
 * transport's next step needs, and bytes it holds that epoll cannot see
 * make the connection active by themselves (update_read).
 *
 * The write path (for the handlers that answer: RELP) is allocated on
 * first use, so a plain TCP connection does not carry it: bytes queued in
 * conn_out() go out as the client takes them; send_timeout closes a client
 * that stops reading them, and one with more than CONN_OUT_MAX bytes
 * unsent is not read from until it takes them.
 *
 * A closed connection leaves the list of live ones at once, with its
 * descriptor, events and conntab ticket; its memory (and the handler's
 * state) is freed by the release event, which runs after the callbacks of
 * the current turn: nothing on the stack can hold a freed connection.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "clock.h"
#include "conn.h"
#include "encode.h"
#include "json.h"
#include "log.h"
#include "proc.h"
#include "ratelimit.h"
#include "records.h"
#include "stats.h"
#include "tlsctx.h"
#include "transport.h"

#define CONN_READ_BUF		65536
#define CONN_READS_PER_WAKE	4
#define CONN_LINGER_MS		1000	/* after our FIN at a drain's end: the client's last bytes, */
#define CONN_LINGER_QUIET_MS	200	/* ... or until it sends nothing for this long */
#define CONN_ID_LOGGED		72	/* bytes of a TLS identity in log lines */
#define CONN_TIMEOUTS		4	/* durations per listener: idle, record, send, handshake */

/* The write path, for a connection that sends. */
struct output {
	struct obuf		 buf;		/* bytes not yet sent */
	struct event		 wev;		/* writable, while buf holds bytes */
	short			 wev_mask;	/* what wev waits for (TLS may read to send) */
	struct event		 send_ev;	/* send_timeout, while buf holds bytes */
	const struct timeval	*send_tv;
};

struct conn {
	int			 fd;
	int			 closed;
	int			 lingering;	/* our FIN is out: reading until the client's */
	int			 handshaking;	/* the transport's handshake runs: no reads yet */
	long			 linger_end_ms;	/* monotonic: closed then at the latest */
	struct transport	*tr;		/* plain_transport, or its own TLS one */
	struct event		 ev;		/* readable (or what the transport's read needs) */
	short			 ev_mask;	/* what ev is assigned to wait for */
	short			 ev_on;		/* ev is added */
	struct event		 idle_ev;	/* idle_timeout */
	struct event		 rec_ev;	/* record_timeout, or handshake_timeout */
	struct event		 thr_ev;	/* the end of a rate limit's hold */
	int			 throttled;	/* held back by its listener's rate limit */
	const struct timeval	*idle_tv, *rec_tv, *hs_tv;	/* common timeouts, or NULL */
	const struct listener_cfg *l;
	const struct conn_handler *h, *next;	/* next: after a handler that comes first */
	void			*state;		/* the handler's */
	struct output		*out;		/* NULL until the handler sends */
	struct ct_ticket	 ticket;	/* its place in conntab, given back on close */
	struct sockaddr_in6	 peer_sa;	/* the peer's address (IPv4 fits), for a hand-over */
	socklen_t		 peer_salen;
	uint64_t		 bytes;
	uint64_t		 records;
	struct conn		*prev, *next_conn;
	char			 peer[ADDR_STRLEN + CONN_ID_LOGGED + 4];	/* and " [TLS id]" */
	size_t			 prefixlen;
	char			*prefix;	/* ,"peer":"...","listener":"..."[,"tls_peer":"..."] */
};

static struct conn	*conns;		/* live */
static struct conn	*released;	/* closed, freed at the end of the turn */
static struct event	*release_ev;
static struct conn_hooks hooks;
static int		 nconns;
static int		 reading = 1;
static struct worker_counts *totals;	/* in the worker's stats slot */
static struct encode_meta meta;		/* the receive time of the current read */
static char		 readbuf[CONN_READ_BUF];
static struct log_limit	 framing_limit, handover_limit, idle_limit, record_limit, send_limit;
static struct log_limit	 truncated_limit;
static struct log_limit	 tls_limit[TLSF_TIMEOUT + 1];	/* by enum tls_failure */

static void	on_release(evutil_socket_t, short, void *);
static void	on_read(evutil_socket_t, short, void *);
static void	update_read(struct conn *);
static void	arm_linger(struct conn *);
static int	read_client(struct conn *, int to_the_end);
static void	on_throttle_end(evutil_socket_t, short, void *);

/* libevent's common-timeout handle for a duration: one queue per duration. */
static const struct timeval *
common_timeout(long ms)
{
	static struct { long ms; const struct timeval *tv; } known[CONN_TIMEOUTS * CFG_MAX_LISTENERS];
	static int nknown;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (ms <= 0)
		return NULL;
	for (int i = 0; i < nknown; i++)
		if (known[i].ms == ms)
			return known[i].tv;
	if (nknown == CONN_TIMEOUTS * CFG_MAX_LISTENERS)
		return NULL;	/* cannot happen: CONN_TIMEOUTS durations per listener */
	known[nknown].ms = ms;
	known[nknown].tv = event_base_init_common_timeout(proc.base, &tv);
	return known[nknown++].tv;
}

void
conn_init(const struct conn_hooks *h)
{
	hooks = *h;
	conns = released = NULL;
	release_ev = event_new(proc.base, -1, 0, on_release, NULL);
	nconns = 0;
	reading = 1;
	totals = &proc.stats->w;
}

int
conn_count(void)
{
	return nconns;
}

void *
conn_state(const struct conn *c)
{
	return c->state;
}

void
conn_set_state(struct conn *c, void *state)
{
	c->state = state;
}

const struct listener_cfg *
conn_listener(const struct conn *c)
{
	return c->l;
}

const char *
conn_peer(const struct conn *c)
{
	return c->peer;
}

/* The address of the socket's peer (not the client a PROXY header names). */
int
conn_sockaddr(const struct conn *c, struct sockaddr_storage *ss, socklen_t *len)
{
	return getpeername(c->fd, (struct sockaddr *)ss, len);
}

int
conn_closed(const struct conn *c)
{
	return c->closed;
}

struct ct_ticket *
conn_ticket(struct conn *c)
{
	return &c->ticket;
}

static void
unlink_live(struct conn *c)
{
	if (c->prev)
		c->prev->next_conn = c->next_conn;
	else
		conns = c->next_conn;
	if (c->next_conn)
		c->next_conn->prev = c->prev;
}

/*
 * Close c now (descriptor, events, its place in conntab, the count); its
 * memory goes at the end of the turn.  Closing a closed one does nothing.
 */
void
conn_close(struct conn *c, const char *reason)
{
	if (c->closed)
		return;
	log_debug("%s: %s %s closed (%s): %llu bytes, %llu records", proc.name, c->l->name, c->peer,
	    reason, (unsigned long long)c->bytes, (unsigned long long)c->records);
	c->closed = 1;
	event_del(&c->ev);
	event_del(&c->idle_ev);
	event_del(&c->rec_ev);
	event_del(&c->thr_ev);
	if (c->out) {
		event_del(&c->out->wev);
		event_del(&c->out->send_ev);
	}
	c->tr->ops->free(c->tr);	/* TLS: close_notify, unless it failed */
	c->tr = &plain_transport;
	close(c->fd);
	ct_release(proc.slot, &c->ticket);
	unlink_live(c);
	nconns--;
	totals->closed++;
	c->next_conn = released;
	released = c;
	event_active(release_ev, EV_TIMEOUT, 1);
}

static void
release(struct conn *c)
{
	if (c->h && c->h->free)
		c->h->free(c);
	if (c->out)
		obuf_free(&c->out->buf);
	free(c->out);
	free(c->prefix);
	free(c);
}

/* The end of the turn: the connections closed in it are freed. */
static void
on_release(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	while (released) {
		struct conn *c = released;

		released = c->next_conn;
		release(c);
	}
	if (hooks.closed)
		hooks.closed();
}

/* A refused connection, counted; logged at most once a second per reason for the server. */
void
conn_refusal(const struct listener_cfg *l, const char *peer, enum ct_refusal why)
{
	(*stats_refused(totals, why))++;
	log_limited(ct_log_limit(why), LOG_LVL_NOTICE, "%s: listener %s: refused %s: %s",
	    proc.name, l->name, peer, ct_reason_name(why));
}

/* A record of c's goes into the pipeline: 0 when every sink took it, -1 when one dropped it. */
int
conn_record(struct conn *c, const char *rec, size_t len, int truncated)
{
	c->records++;
	proc.stats->lsn[c->l - proc.cf->listeners].records++;
	if (c->l->rate_action == RATE_DROP && ratelimit_on(c->l) &&
	    !ratelimit_admit(c->l, (const struct sockaddr *)&c->peer_sa, len, clock_ms())) {
		proc.stats->lsn[c->l - proc.cf->listeners].rate_dropped++;
		return 0;
	}
	meta.prefix = c->prefix;
	meta.prefixlen = c->prefixlen;
	meta.peer = (const struct sockaddr *)&c->peer_sa;
	meta.tls_peer = c->tr ? c->tr->peer_id : NULL;
	return records_route(&meta, c->l, rec, len, truncated);
}

/*
 * Bytes that break c's framing or protocol, counted and logged; the
 * handler closes c once it has said what it has to (RELP: the answers due).
 */
void
conn_protocol_error(struct conn *c, const char *why)
{
	totals->framing_errors++;
	log_limited(&framing_limit, LOG_LVL_WARNING, "%s: %s %s: closing: %s", proc.name,
	    c->l->name, c->peer, why);
}

/* Close c for bytes that break its framing or its protocol. */
void
conn_framing_error(struct conn *c, const char *why)
{
	if (c->closed)
		return;
	conn_protocol_error(c, why);
	conn_close(c, why);
}

/* The peer's name, and what every event of this connection carries. */
int
conn_set_peer(struct conn *c, const struct sockaddr *sa, socklen_t len)
{
	struct obuf o = { NULL, 0, 0 };

	if (sa->sa_family == AF_UNIX)
		snprintf(c->peer, sizeof(c->peer), "unix");
	else
		addr_format(sa, len, c->peer, sizeof(c->peer));
	c->peer_salen = sa->sa_family == AF_UNIX || len > sizeof(c->peer_sa) ?
	    sizeof(sa_family_t) : len;
	memcpy(&c->peer_sa, sa, c->peer_salen);
	/* exactly: one per connection */
	o.cap = ENCODE_PREFIX_MAX(strlen(c->peer), strlen(c->l->name), 0);
	if ((o.p = malloc(o.cap)) == NULL)
		return -1;
	encode_prefix(&o, c->peer, c->l->name, NULL);
	free(c->prefix);		/* the balancer's, once a PROXY header named the client */
	c->prefix = o.p;
	c->prefixlen = o.len;
	return 0;
}

/* The TLS client's identity: in its events (tls_peer) and its log lines. */
static int
set_tls_peer(struct conn *c, const char *id)
{
	struct obuf o = { NULL, 0, 0 };
	size_t more = JSON_STRING_MAX(strlen(id)) + 12;
	char *p;

	if ((p = realloc(c->prefix, c->prefixlen + more)) == NULL)
		return -1;
	o.p = p;
	o.len = c->prefixlen;
	o.cap = c->prefixlen + more;
	memcpy(o.p + o.len, ",\"tls_peer\":", 12);
	o.len += 12;
	json_string(&o, id, strlen(id));
	c->prefix = o.p;
	c->prefixlen = o.len;
	snprintf(c->peer + strlen(c->peer), sizeof(c->peer) - strlen(c->peer), " [%.*s]",
	    CONN_ID_LOGGED, id);
	return 0;
}

/* Whether c should be read from now: not while the sinks, its client or its handler hold us up. */
static int
want_read(const struct conn *c)
{
	if (!reading || c->closed || c->handshaking || c->throttled)
		return 0;
	if (c->out && c->out->buf.len >= CONN_OUT_MAX)
		return 0;
	return c->h->want_read == NULL || c->h->want_read(c);
}

/*
 * Watch c for what its transport's next read (or handshake step) waits on,
 * while c is to be read.  Bytes the transport already holds raise no event
 * from epoll: c is made active for them.
 */
static void
update_read(struct conn *c)
{
	short what;

	if (c->closed)
		return;
	what = c->handshaking || want_read(c) ? c->tr->ops->waits(c->tr, 0) : 0;
	if (what != c->ev_mask && what) {
		if (c->ev_on)
			event_del(&c->ev);
		event_assign(&c->ev, proc.base, c->fd, what | EV_PERSIST, on_read, c);
		c->ev_mask = what;
		c->ev_on = 0;
	}
	if ((what != 0) != c->ev_on) {
		if (what)
			event_add(&c->ev, NULL);
		else
			event_del(&c->ev);
		c->ev_on = what != 0;
	}
	if (what && !c->handshaking && c->tr->ops->pending(c->tr))
		event_active(&c->ev, EV_READ, 1);
}

/*
 * After a read: the idle clock restarts; the record clock runs from the
 * first byte of the record still open, so it restarts only when this read
 * completed a record (records_before) and began another.
 */
static void
arm_timers(struct conn *c, uint64_t records_before)
{
	int open = c->h->in_record && c->h->in_record(c);

	if (c->lingering)		/* the timer is the linger's: quiet again from now */
		arm_linger(c);
	else if (c->idle_tv)
		event_add(&c->idle_ev, c->idle_tv);
	if (!open)
		event_del(&c->rec_ev);
	else if (c->rec_tv && (c->records != records_before ||
	    !evtimer_pending(&c->rec_ev, NULL)))
		event_add(&c->rec_ev, c->rec_tv);
}

static void	feed(struct conn *, const char *, size_t);
static int	start_tls(struct conn *, const char *, size_t);

/*
 * The handler after the first (the PROXY header's) takes over, and reads
 * rest, the bytes of this read after the header.  Returns -1 when c closed.
 */
int
conn_switch(struct conn *c, const char *rest, size_t n)
{
	const struct conn_handler *h = c->next;

	if (c->h->free)
		c->h->free(c);
	c->state = NULL;
	c->h = h;
	c->next = NULL;
	event_del(&c->rec_ev);	/* the record clock starts again with the first record */
	if (h->start && h->start(c) == -1) {
		log_warn("%s: %s: out of memory for a connection", proc.name, c->l->name);
		conn_close(c, "out of memory");
		return -1;
	}
	if (c->l->tls.enabled)	/* the bytes after the header begin the handshake */
		return start_tls(c, rest, n);
	if (n > 0)
		feed(c, rest, n);
	return c->closed ? -1 : 0;
}

static void
feed(struct conn *c, const char *data, size_t n)
{
	const char *why = NULL;

	if (c->h->feed(c, data, n, &why) == -1)
		conn_framing_error(c, why ? why : "protocol error");
}

/* The client ended its stream; a TLS one that did so inside a record is counted. */
static void
on_eof(struct conn *c)
{
	const char *why = c->tr->ops->truncation(c->tr);

	if (why && c->h->in_record && c->h->in_record(c)) {
		proc.stats->lsn[c->l - proc.cf->listeners].tls_truncated++;
		log_limited(&truncated_limit, LOG_LVL_NOTICE, "%s: %s %s: %s", proc.name, c->l->name,
		    c->peer, why);
	}
	if (c->h->eof)
		c->h->eof(c);
	conn_close(c, "closed by peer");
}

/*
 * A TLS client on a listener without tls: its ClientHello would be a record
 * of binary noise.  Closed, with a word the operator can act on.
 */
static int
tls_on_plain(struct conn *c, const char *data, size_t n)
{
	if (c->l->tls.enabled || n < 3 || data[0] != 0x16 || data[1] != 0x03 ||
	    (unsigned char)data[2] > 0x04)
		return 0;
	conn_framing_error(c, "a TLS handshake on a listener without tls");
	return 1;
}

/*
 * rate_action = throttle: what a read brought is charged to its client,
 * and a client in debt is not read from until it is out of it.
 */
static void
charge(struct conn *c, uint64_t records, size_t bytes)
{
	struct timeval tv;
	long ms;

	if (c->l->rate_action != RATE_THROTTLE || !ratelimit_on(c->l) ||
	    (ms = ratelimit_charge(c->l, (const struct sockaddr *)&c->peer_sa, records, bytes,
	    clock_ms())) == 0)
		return;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	c->throttled = 1;
	evtimer_add(&c->thr_ev, &tv);
	proc.stats->lsn[c->l - proc.cf->listeners].rate_throttled++;
}

/*
 * Read what the client sent, at most CONN_READS_PER_WAKE times.  A short
 * read ends it, as the socket is then likely empty, unless to_the_end: then
 * reading stops only at EAGAIN or the end of the stream.
 */
static int
read_client(struct conn *c, int to_the_end)
{
	struct timespec now;

	for (int i = 0; i < CONN_READS_PER_WAKE && want_read(c); i++) {
		ssize_t n = c->tr->ops->recv(c->tr, c->fd, readbuf, sizeof(readbuf));

		if (n > 0) {
			uint64_t records_before = c->records;

			if (c->bytes == 0 && tls_on_plain(c, readbuf, n))
				return -1;

			clock_gettime(CLOCK_REALTIME, &now);
			encode_set_time(&meta, &now);
			c->bytes += n;
			totals->bytes += n;
			proc.stats->lsn[c->l - proc.cf->listeners].bytes += n;
			feed(c, readbuf, n);
			if (c->closed)
				return -1;
			arm_timers(c, records_before);
			charge(c, c->records - records_before, (size_t)n);
			if ((size_t)n < sizeof(readbuf) && !to_the_end)
				break;
			continue;
		}
		if (n == 0) {
			on_eof(c);
			return -1;
		}
		if (errno != EAGAIN && errno != EINTR) {
			char why[192];

			snprintf(why, sizeof(why), "read: %s", c->tr->why ? c->tr->why : strerror(errno));
			conn_close(c, why);
			return -1;
		}
		/* half a TLS record is half a record: a slowloris defence on TLS too */
		if (c->tr->ops->partial(c->tr) && c->rec_tv && !evtimer_pending(&c->rec_ev, NULL))
			event_add(&c->rec_ev, c->rec_tv);
		break;
	}
	if (c->h->read_end)
		c->h->read_end(c);
	if (c->closed)
		return -1;
	update_read(c);	/* what the transport waits for now; what it holds */
	return 0;
}

/* Count and log a failed handshake, and close. */
static void
handshake_failed(struct conn *c, enum tls_failure f, const char *why)
{
	(*stats_tls_failed(&proc.stats->lsn[c->l - proc.cf->listeners], f))++;
	/* a balancer's health check connects and closes: not worth a notice */
	log_limited(&tls_limit[f], f == TLSF_CLOSED || f == TLSF_TIMEOUT ? LOG_LVL_INFO :
	    LOG_LVL_NOTICE, "%s: %s %s: TLS handshake failed (%s): %s", proc.name, c->l->name,
	    c->peer, tlsctx_failure_name(f), why);
	conn_close(c, why);
}

/* The handshake is done: the client's identity goes into its events, and reading begins. */
static void
handshake_done(struct conn *c)
{
	struct listener_counts *lc = &proc.stats->lsn[c->l - proc.cf->listeners];

	c->handshaking = 0;
	event_del(&c->rec_ev);
	lc->tls_handshakes++;
	lc->tls_resumed += c->tr->resumed != 0;
	if (c->tr->peer_id && set_tls_peer(c, c->tr->peer_id) == -1) {
		log_warn("%s: %s: out of memory for a connection", proc.name, c->l->name);
		conn_close(c, "out of memory");
		return;
	}
	log_debug("%s: %s %s: TLS handshake done%s", proc.name, c->l->name, c->peer,
	    c->tr->resumed ? " (resumed)" : "");
	if (c->idle_tv)
		event_add(&c->idle_ev, c->idle_tv);
	read_client(c, 1);	/* a TLS 1.3 client's first record often came with its Finished */
}

static void
handshake_step(struct conn *c)
{
	switch (c->tr->ops->handshake(c->tr, c->fd)) {
	case 1:
		handshake_done(c);
		break;
	case 0:
		update_read(c);
		break;
	default:
		handshake_failed(c, c->tr->failure, c->tr->why);
	}
}

/*
 * c's listener speaks TLS: its transport takes over, with rest, the bytes
 * read after a PROXY header.  The handshake has handshake_timeout to end.
 */
static int
start_tls(struct conn *c, const char *rest, size_t n)
{
	struct transport *t = tls_transport_new(&c->l->tls, rest, n);

	if (t == NULL) {
		log_warn("%s: %s: out of memory for a connection", proc.name, c->l->name);
		conn_close(c, "out of memory");
		return -1;
	}
	c->tr = t;
	c->handshaking = 1;
	event_del(&c->rec_ev);
	if (c->hs_tv)
		event_add(&c->rec_ev, c->hs_tv);
	handshake_step(c);
	return c->closed ? -1 : 0;
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	if (c->handshaking)
		handshake_step(c);
	else
		read_client(c, 0);
}

/*
 * A timer ran out.  While the worker is not reading (a sink is full) or the
 * handler waits for the sinks, the client is not to blame: wait another
 * period.
 */
static void
expire(struct conn *c, struct event *ev, const struct timeval *tv, const char *why,
    uint64_t *count, struct log_limit *ll)
{
	if (!c->handshaking && (!reading || c->throttled || (c->h->waiting && c->h->waiting(c)))) {
		event_add(ev, tv);	/* the wait is ours, not the client's */
		return;
	}
	(*count)++;
	log_limited(ll, LOG_LVL_INFO, "%s: %s %s: closing: %s", proc.name, c->l->name, c->peer,
	    why);
	conn_close(c, why);
}

static void
on_linger_end(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	/* What came meanwhile is taken, and a record left open delivered, as at EOF. */
	if (read_client(c, 1) == 0) {
		if (c->h->eof)
			c->h->eof(c);
		conn_close(c, "shutdown_timeout");
	}
}

/* Lingering, the next wait: until the client is quiet for a while, within the linger's end. */
static void
arm_linger(struct conn *c)
{
	long ms = c->linger_end_ms - clock_ms();
	struct timeval tv;

	if (ms > CONN_LINGER_QUIET_MS)
		ms = CONN_LINGER_QUIET_MS;
	if (ms < 0)
		ms = 0;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(&c->idle_ev, &tv);
}

/*
 * The end of a drain: the connection closes gracefully, as nginx's
 * lingering close does.  Our side is shut (FIN): the client sees the end
 * of the stream and can connect again (to the next generation); what it
 * sent meanwhile is still read, until it closes too, or is quiet for
 * CONN_LINGER_QUIET_MS, or CONN_LINGER_MS have passed.  Closing at once
 * would reset the connection (RST) when bytes were still unread, and lose
 * them.
 */
static void
linger(struct conn *c)
{
	if (c->closed || c->lingering)
		return;
	if (c->handshaking) {	/* it has sent no record yet */
		conn_close(c, "shutdown_timeout");
		return;
	}
	c->lingering = 1;
	c->linger_end_ms = clock_ms() + CONN_LINGER_MS;
	if (c->tr->ops->shutdown(c->tr, c->fd) == -1) {
		conn_close(c, "shutdown_timeout");
		return;
	}
	event_del(&c->idle_ev);
	evtimer_assign(&c->idle_ev, proc.base, on_linger_end, c);
	arm_linger(c);
}

/* The drain's deadline: every connection ends gracefully (linger). */
void
conn_linger_all(void)
{
	struct conn *c, *next;

	for (c = conns; c; c = next) {
		next = c->next_conn;
		linger(c);
	}
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
on_record_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	if (c->handshaking) {
		handshake_failed(c, TLSF_TIMEOUT, "handshake_timeout");
		return;
	}
	expire(c, &c->rec_ev, c->rec_tv, c->h->timeout_why ? c->h->timeout_why : "record_timeout",
	    &totals->record_timeouts, &record_limit);
}

static void	on_write(evutil_socket_t, short, void *);

/* Wait for what the transport's send waits on (writable; TLS may need to read first). */
static void
watch_write(struct conn *c)
{
	struct output *o = c->out;
	short what = c->tr->ops->waits(c->tr, 1);

	if (what != o->wev_mask) {
		event_del(&o->wev);
		event_assign(&o->wev, proc.base, c->fd, what | EV_PERSIST, on_write, c);
		o->wev_mask = what;
	}
	event_add(&o->wev, NULL);
}

/*
 * The write path: send what is queued.  send_timeout runs while bytes wait
 * and restarts whenever the client takes some.  Once everything went out,
 * the handler hears of it (a RELP session that ended closes then).
 */
void
conn_flush(struct conn *c)
{
	struct output *o = c->out;
	size_t sent = 0;

	if (c->closed || o == NULL || c->handshaking)
		return;
	while (sent < o->buf.len) {
		ssize_t n = c->tr->ops->send(c->tr, c->fd, o->buf.p + sent, o->buf.len - sent);

		if (n > 0) {
			sent += n;
		} else if (errno != EINTR) {
			if (errno == EAGAIN)
				break;
			conn_close(c, errno == EPIPE || errno == ECONNRESET ? "closed by peer" :
			    "write failed");
			return;
		}
	}
	if (sent) {
		obuf_consume(&o->buf, sent);
		if (o->send_tv)
			event_add(&o->send_ev, o->send_tv);
	}
	if (o->buf.len == 0) {
		event_del(&o->wev);
		event_del(&o->send_ev);
		if (c->h->sent)
			c->h->sent(c);
	} else {
		watch_write(c);
		if (o->send_tv && !evtimer_pending(&o->send_ev, NULL))
			event_add(&o->send_ev, o->send_tv);
	}
	update_read(c);
}

static void
on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_flush(arg);
}

static void
on_send_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	totals->send_timeouts++;
	log_limited(&send_limit, LOG_LVL_INFO, "%s: %s %s: closing: send_timeout, %zu bytes unsent",
	    proc.name, c->l->name, c->peer, c->out->buf.len);
	conn_close(c, "send_timeout");
}

/* The buffer of what c sends, made on first use; NULL when out of memory (c is closed). */
struct obuf *
conn_out(struct conn *c)
{
	struct output *o = c->out;

	if (o != NULL)
		return &o->buf;
	if ((o = calloc(1, sizeof(*o))) == NULL) {
		conn_close(c, "out of memory for responses");
		return NULL;
	}
	event_assign(&o->wev, proc.base, c->fd, EV_WRITE | EV_PERSIST, on_write, c);
	o->wev_mask = EV_WRITE;
	evtimer_assign(&o->send_ev, proc.base, on_send_timeout, c);
	o->send_tv = common_timeout(c->l->send_timeout_ms);
	c->out = o;
	return &o->buf;
}

size_t
conn_unsent(const struct conn *c)
{
	return c->out ? c->out->buf.len : 0;
}

/* c's events, timers and place among the live connections (fd, l, h are set). */
static void
setup(struct conn *c, const struct ct_ticket *t)
{
	c->ticket = *t;
	c->tr = &plain_transport;
	event_assign(&c->ev, proc.base, c->fd, EV_READ | EV_PERSIST, on_read, c);
	c->ev_mask = EV_READ;
	evtimer_assign(&c->idle_ev, proc.base, on_idle, c);
	evtimer_assign(&c->rec_ev, proc.base, on_record_timeout, c);
	evtimer_assign(&c->thr_ev, proc.base, on_throttle_end, c);
	c->idle_tv = common_timeout(c->l->idle_timeout_ms);
	c->rec_tv = common_timeout(c->l->record_timeout_ms);
	c->hs_tv = c->l->tls.enabled ? common_timeout(c->l->tls.handshake_timeout_ms) : NULL;
	c->next_conn = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	nconns++;
}

/*
 * A connection accepted on l; h handles its bytes (and next, after h, when
 * h comes first: the PROXY header).  Returns it, or NULL when it was closed
 * at once (out of memory, or its first read ended it).
 */
struct conn *
conn_new(int fd, const struct listener_cfg *l, const struct sockaddr *sa, socklen_t len,
    const struct ct_ticket *t, const struct conn_handler *h, const struct conn_handler *next)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c != NULL) {
		c->fd = fd;
		c->l = l;
		c->h = h;
		c->next = next;
		if (conn_set_peer(c, sa, len) == -1 || (h->start && h->start(c) == -1)) {
			free(c->prefix);
			free(c);
			c = NULL;
		}
	}
	if (c == NULL) {
		log_warn("%s: %s: out of memory for a connection", proc.name, l->name);
		close(fd);
		ct_release(proc.slot, t);
		return NULL;
	}
	setup(c, t);
	if (c->idle_tv)		/* a client that never sends is idle from the start */
		event_add(&c->idle_ev, c->idle_tv);
	if (c->rec_tv && h->in_record && h->in_record(c))	/* a PROXY header is due at once */
		event_add(&c->rec_ev, c->rec_tv);
	totals->accepted++;
	/*
	 * Clients speak first, and by the time a worker accepts, a client's
	 * first bytes (a short-lived one's whole stream) are often here: read
	 * them now, and a connection that ends there never costs the
	 * epoll_ctl(2) calls of watching it.
	 */
	if (l->tls.enabled && next == NULL ? start_tls(c, NULL, 0) == -1 : read_client(c, 1) == -1)
		return NULL;
	return c;
}

/*
 * Reading again after back-pressure: a client's idle and record clocks
 * start again now, since the wait was ours.  (A timer that came due while
 * reading was stopped was put off by whole periods, and could otherwise
 * fire in the very turn reading resumes, before the bytes waiting in the
 * client's socket are read.)
 */
static void
restart_timers(struct conn *c)
{
	if (c->handshaking || c->lingering)
		return;
	if (c->idle_tv && evtimer_pending(&c->idle_ev, NULL))
		event_add(&c->idle_ev, c->idle_tv);
	if (c->rec_tv && evtimer_pending(&c->rec_ev, NULL))
		event_add(&c->rec_ev, c->rec_tv);
}

/* A client held back by its rate limit is read again; its clocks start again too. */
static void
on_throttle_end(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	c->throttled = 0;
	restart_timers(c);
	update_read(c);
}

/* Back-pressure from the sinks: stop or resume reading on every connection. */
void
conn_set_reading(int on)
{
	if (on == reading)
		return;
	reading = on;
	for (struct conn *c = conns; c; c = c->next_conn) {
		if (on)
			restart_timers(c);
		update_read(c);
	}
	if (on)	/* data that arrived meanwhile: the events fire again since it is level-triggered */
		log_debug("%s: reading from clients again", proc.name);
}

void
conn_close_all(const char *reason)
{
	while (conns)
		conn_close(conns, reason);
}

/* Draining: each connection's handler ends its session its own way (RELP: serverclose). */
void
conn_drain_all(void)
{
	struct conn *c, *next;

	for (c = conns; c; c = next) {
		next = c->next_conn;
		if (c->h->drain && !c->handshaking)
			c->h->drain(c);
	}
}

/*
 * Hand-over: a draining worker passes a connection to the next generation
 * (handover.c carries the descriptor and these bytes; accept.c admits it
 * there).  What goes with it is what the connection holds between two
 * reads: its peer (the one a PROXY header named), whether conntab counted
 * it per address, its counts, what is left of its idle and record timers,
 * and its handler's state (a half-read record).  The socket itself, with
 * what the client sent since, waits in the kernel meanwhile.
 */
struct saved_conn {
	uint32_t		 magic;
	uint16_t		 version;
	uint16_t		 per_ip;
	struct sockaddr_in6	 peer;
	uint32_t		 peerlen;
	uint32_t		 pad;
	uint64_t		 bytes, records;
	int64_t			 idle_left_ms, record_left_ms;	/* -1: not running */
};

#define SAVED_MAGIC	0x6e6e6f63	/* "conn" */
#define SAVED_VERSION	1

void
conn_each(void (*fn)(struct conn *, void *), void *arg)
{
	struct conn *c, *next;

	for (c = conns; c; c = next) {
		next = c->next_conn;
		fn(c, arg);
	}
}

int
conn_fd(const struct conn *c)
{
	return c->fd;
}

/* The ms left on a timer, or -1 when it is not running. */
static int64_t
left_ms(const struct event *ev)
{
	struct timeval at, now;
	int64_t ms;

	if (!evtimer_pending(ev, &at))
		return -1;
	evutil_gettimeofday(&now, NULL);
	ms = (int64_t)(at.tv_sec - now.tv_sec) * 1000 + (at.tv_usec - now.tv_usec) / 1000;
	return ms < 0 ? 0 : ms;
}

/*
 * c's state appended to o, when c can be handed over: a plain connection
 * whose handler can save itself, past its PROXY header, not ending.
 * Returns -1 when it cannot (o unchanged) or on no memory.
 */
int
conn_save(const struct conn *c, struct obuf *o)
{
	struct saved_conn s = { .magic = SAVED_MAGIC, .version = SAVED_VERSION,
	    .per_ip = c->ticket.per_ip, .peerlen = c->peer_salen, .bytes = c->bytes,
	    .records = c->records, .idle_left_ms = left_ms(&c->idle_ev),
	    .record_left_ms = left_ms(&c->rec_ev) };
	size_t at = o->len;

	if (c->closed || c->lingering || c->handshaking || c->tr != &plain_transport ||
	    c->next != NULL || c->h->save == NULL || c->out != NULL)
		return -1;
	memcpy(&s.peer, &c->peer_sa, sizeof(s.peer));
	if (obuf_reserve(o, sizeof(s)) == -1)
		return -1;
	memcpy(o->p + o->len, &s, sizeof(s));
	o->len += sizeof(s);
	if (c->h->save(c, o) == -1) {
		o->len = at;
		return -1;
	}
	return 0;
}

/* c went to the next generation: it leaves without a FIN (the socket lives on there). */
void
conn_handed(struct conn *c)
{
	totals->handed_over++;
	conn_close(c, "handed to the next generation");
}

static int
saved_header(const char *saved, size_t n, struct saved_conn *s)
{
	if (n < sizeof(*s))
		return -1;
	memcpy(s, saved, sizeof(*s));
	if (s->magic != SAVED_MAGIC || s->version != SAVED_VERSION ||
	    s->peerlen > sizeof(s->peer) || s->peerlen < sizeof(sa_family_t))
		return -1;
	return 0;
}

/* The peer a saved connection had, for accept.c to admit it; -1: not bytes this build can take. */
int
conn_saved_peer(const char *saved, size_t n, struct sockaddr_storage *ss, socklen_t *len,
    int *per_ip)
{
	struct saved_conn s;

	if (saved_header(saved, n, &s) == -1)
		return -1;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &s.peer, s.peerlen);
	*len = s.peerlen;
	*per_ip = s.per_ip;
	return 0;
}

/* A timer carried over: what was left of it, at most its full period here. */
static void
carry_timer(struct event *ev, const struct timeval *common, long full_ms, int64_t left)
{
	struct timeval tv;

	if (common == NULL)
		return;
	if (left < 0 || left >= full_ms) {
		event_add(ev, common);
		return;
	}
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000 + 1;
	event_add(ev, &tv);
}

/*
 * A connection another worker saved (conn_save) and handed to this one,
 * on fd, to go on on listener l with handler h, holding ticket t.  It
 * reads on as if it had accepted it.  refused: why it cannot stay (a cap
 * of this generation, logged by the caller); it is then closed gracefully,
 * as at a drain's end, and what its client sent meanwhile is still read.
 * Returns it, or NULL when it closed at once.
 */
struct conn *
conn_adopt(int fd, const struct listener_cfg *l, const struct ct_ticket *t,
    const struct conn_handler *h, const char *saved, size_t n, const char *refused)
{
	struct saved_conn s;
	struct conn *c;

	if (saved_header(saved, n, &s) == -1 || (c = calloc(1, sizeof(*c))) == NULL) {
		log_warnx("%s: %s: a connection handed over without its state; closed", proc.name,
		    l->name);
		close(fd);
		ct_release(proc.slot, t);
		return NULL;
	}
	c->fd = fd;
	c->l = l;
	c->h = h;
	if (conn_set_peer(c, (const struct sockaddr *)&s.peer, s.peerlen) == -1) {
		log_warn("%s: %s: out of memory for a connection", proc.name, l->name);
		free(c);
		close(fd);
		ct_release(proc.slot, t);
		return NULL;
	}
	if (h->restore(c, saved + sizeof(s), n - sizeof(s)) == -1) {
		/* Its framing is lost: it ends gracefully, with a new framer meanwhile. */
		log_limited(&handover_limit, LOG_LVL_WARNING, "%s: %s: a connection handed over "
		    "in a state this build cannot take; closing it", proc.name, l->name);
		refused = "its state could not be taken over";
		if (h->start(c) == -1) {
			log_warn("%s: %s: out of memory for a connection", proc.name, l->name);
			free(c->prefix);
			free(c);
			close(fd);
			ct_release(proc.slot, t);
			return NULL;
		}
	}
	setup(c, t);
	c->bytes = s.bytes;
	c->records = s.records;
	totals->taken_over++;
	carry_timer(&c->idle_ev, c->idle_tv, l->idle_timeout_ms, s.idle_left_ms);
	if (h->in_record && h->in_record(c))
		carry_timer(&c->rec_ev, c->rec_tv, l->record_timeout_ms, s.record_left_ms);
	if (refused) {
		log_debug("%s: %s %s: closing a connection handed over: %s", proc.name, l->name,
		    c->peer, refused);
		linger(c);
	}
	return read_client(c, 1) == -1 ? NULL : c;
}
