/*
 * relp_session: RELP commands, answers held until the sinks have written
 * what they acknowledge, and the handler that drives a session from its
 * connection (see relp_session.h).
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "log.h"
#include "proc.h"
#include "relp_session.h"
#include "sink.h"
#include "version.h"

/* The responses in held[..end) wait until each sink k has written up to mark[k]. */
struct session_wait {
	size_t		 end;
	uint64_t	 mark[CFG_MAX_SINKS];
};

static const char offers[] = "200 OK\nrelp_version=0\nrelp_software=ingestd," INGESTD_VERSION
    "\ncommands=syslog";
static const char ok[] = "200 OK";

void
session_init(struct session *a, const struct listener_cfg *l)
{
	memset(a, 0, sizeof(*a));
	a->l = l;
	relp_init(&a->rp, l->max_record);
}

void
session_free(struct session *a)
{
	relp_free(&a->rp);
	obuf_free(&a->held);
	free(a->w);
	memset(a, 0, sizeof(*a));
}

int
session_in_frame(const struct session *a)
{
	return relp_in_frame(&a->rp);
}

static int
respond(struct session *a, unsigned txnr, const char *text)
{
	return relp_response(&a->held, txnr, text, strlen(text));
}

struct feed_ctx {
	struct session	*a;
	session_record_fn	*record;
	void		*arg;
	int		 oom;
	const char	*error;		/* a command that breaks the protocol: why */
};

/* Whether txnr may follow the last one: greater, or 1 after the largest (it wraps). */
static int
in_sequence(const struct session *a, unsigned txnr)
{
	return a->last_txnr == 0 || txnr > a->last_txnr ||
	    (a->last_txnr == RELP_TXNR_MAX && txnr == 1);
}

/* The answer to one command; NULL with f->error when it breaks the protocol. */
static const char *
command(struct feed_ctx *f, unsigned txnr, const char *cmd, const char *data, size_t len,
    int truncated)
{
	struct session *a = f->a;

	if (!in_sequence(a, txnr)) {
		f->error = "transaction number out of sequence";
		return "500 transaction number out of sequence";
	}
	a->last_txnr = txnr;
	if (strcmp(cmd, "open") == 0) {
		if (a->opened)
			return "500 the session is open already";
		a->opened = 1;
		return offers;
	}
	if (!a->opened) {
		f->error = "the session must begin with open";
		return "500 the session must begin with open";
	}
	if (strcmp(cmd, "syslog") == 0)
		return f->record(f->arg, data, len, truncated) == 0 ? ok :
		    "500 a sink's queue is full: the record was dropped";
	if (strcmp(cmd, "close") == 0) {
		a->closing = 1;
		return "";
	}
	return "500 unknown command";
}

static int
on_frame(void *arg, unsigned txnr, const char *cmd, const char *data, size_t len, int truncated)
{
	struct feed_ctx *f = arg;
	struct session *a = f->a;
	const char *answer = command(f, txnr, cmd, data, len, truncated);

	if (respond(a, txnr, answer) == -1) {
		f->oom = 1;
		return -1;
	}
	if (f->error)
		a->closing = 1;
	return a->closing ? -1 : 0;
}

/* The server ends the session: "serverclose" after the answers held. */
static int
serverclose(struct session *a)
{
	static const char frame[] = "0 serverclose 0\n";
	struct obuf *h = &a->held;

	a->closing = 1;
	if (obuf_reserve(h, sizeof(frame)) == -1)
		return -1;
	memcpy(h->p + h->len, frame, sizeof(frame) - 1);
	h->len += sizeof(frame) - 1;
	return 0;
}

/*
 * Parse what a read brought; records go to record(arg, ...).  After
 * "close" the rest is ignored and closing is set.  Bytes that break the
 * protocol (a frame that is no frame, a transaction number out of
 * sequence, a session that does not begin with open) end the session as
 * the server does: the answers due are still sent, the last with the
 * error, then "serverclose" (answers due are kept even to a client that
 * broke the protocol: it learns what was taken); returns 1 with why then.
 * Returns -1 with why when out of memory (nothing more can be answered).
 */
int
session_feed(struct session *a, const char *data, size_t n, session_record_fn *record,
    void *arg, const char **why)
{
	struct feed_ctx f = { a, record, arg, 0, NULL };

	*why = NULL;
	if (a->closing)
		return 0;
	if (relp_feed(&a->rp, data, n, on_frame, &f, why) == 0 || (a->closing && !f.error))
		return 0;
	if (f.oom) {
		*why = "out of memory for responses";
		return -1;
	}
	if (f.error)
		*why = f.error;
	return serverclose(a) == -1 ? -1 : 1;
}

static int
reached(const struct session *a, const struct session_wait *w)
{
	for (int k = 0; k < a->l->nack_idx; k++)
		if (!sink_reached(a->l->ack_idx[k], w->mark[k]))
			return 0;
	return 1;
}

/*
 * End of a read: the responses it produced wait for what the sinks hold
 * now, and the sinks are asked to write at the next turn of the loop
 * (group commit) rather than after flush_interval.
 */
int
session_mark(struct session *a)
{
	struct session_wait *w;

	if (a->held.len == a->marked)
		return 0;
	if (a->nw == a->capw) {
		int cap = a->capw ? 2 * a->capw : 4;
		struct session_wait *p = realloc(a->w, cap * sizeof(*p));

		if (p == NULL)
			return -1;
		a->w = p;
		a->capw = cap;
	}
	w = &a->w[a->nw++];
	w->end = a->held.len;
	for (int k = 0; k < a->l->nack_idx; k++) {
		int idx = a->l->ack_idx[k];

		w->mark[k] = sink_mark(idx);
		if (!sink_reached(idx, w->mark[k]))
			sink_flush_soon(idx);
	}
	a->marked = a->held.len;
	return 0;
}

/* Move the responses whose records are written to out; -1 when out of memory. */
int
session_release(struct session *a, struct obuf *out)
{
	size_t n = 0;
	int i;

	for (i = 0; i < a->nw && reached(a, &a->w[i]); i++)
		n = a->w[i].end;
	if (n == 0)
		return 0;
	if (obuf_reserve(out, n) == -1)
		return -1;
	memcpy(out->p + out->len, a->held.p, n);
	out->len += n;
	obuf_consume(&a->held, n);
	a->marked -= n;
	a->nw -= i;
	memmove(a->w, a->w + i, a->nw * sizeof(*a->w));
	for (int k = 0; k < a->nw; k++)
		a->w[k].end -= n;
	if (a->held.len == 0 && a->held.cap > 65536)
		obuf_free(&a->held);
	return 0;
}

/* A draining server ends the session after answering what it has read. */
int
session_serverclose(struct session *a)
{
	if (a->closing)
		return 0;
	if (serverclose(a) == -1)
		return -1;
	return session_mark(a);
}

/*
 * The handler: a RELP listener's connections.  The sessions are listed so
 * that the answers the sinks' progress releases go out, once a turn.
 */
struct relp_conn {
	struct session		 s;
	struct conn		*c;
	struct relp_conn	*prev, *next;
};

static struct relp_conn	*sessions;
static struct event	*answer_ev;	/* sinks wrote: answers may go out */

static void	on_answer(evutil_socket_t, short, void *);

void
relp_sessions_init(void)
{
	sessions = NULL;
	answer_ev = event_new(proc.base, -1, 0, on_answer, NULL);
}

/*
 * A sink wrote: answers may go out, at the end of this turn, once for
 * every session, with whatever else the turn wrote.
 */
void
relp_sessions_progressed(void)
{
	if (sessions && answer_ev)
		event_active(answer_ev, EV_TIMEOUT, 1);
}

static int
record(void *arg, const char *rec, size_t len, int truncated)
{
	return conn_record(arg, rec, len, truncated);
}

/* Answers whose records the sinks have written go out. */
static void
answer(struct relp_conn *r)
{
	struct obuf *out = conn_out(r->c);

	if (out == NULL)
		return;		/* closed: no memory for it */
	if (session_release(&r->s, out) == -1) {
		conn_close(r->c, "out of memory for responses");
		return;
	}
	conn_flush(r->c);	/* which may end the session */
}

static void
on_answer(evutil_socket_t fd, short what, void *arg)
{
	struct relp_conn *r, *next;

	(void)fd;
	(void)what;
	(void)arg;
	for (r = sessions; r; r = next) {
		next = r->next;
		if (!conn_closed(r->c) && session_waiting(&r->s))
			answer(r);
	}
}

static int
rconn_start(struct conn *c)
{
	struct relp_conn *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return -1;
	session_init(&r->s, conn_listener(c));
	r->c = c;
	r->next = sessions;
	if (sessions)
		sessions->prev = r;
	sessions = r;
	conn_set_state(c, r);
	return 0;
}

/*
 * A protocol error is counted and logged now, and the connection closes
 * once the answers due, the error's and serverclose have gone out.
 */
static int
rconn_feed(struct conn *c, const char *data, size_t n, const char **why)
{
	struct relp_conn *r = conn_state(c);
	int rc = session_feed(&r->s, data, n, record, c, why);

	if (rc == 1)
		conn_protocol_error(c, *why);
	return rc == -1 ? -1 : 0;
}

/* The end of a read: its answers wait for what the sinks hold now. */
static void
rconn_read_end(struct conn *c)
{
	struct relp_conn *r = conn_state(c);

	if (session_mark(&r->s) == -1)
		conn_close(c, "out of memory for responses");
	else
		answer(r);
}

static int
rconn_in_frame(const struct conn *c)
{
	const struct relp_conn *r = conn_state(c);

	return session_in_frame(&r->s);
}

/* Not while it closes, nor while its client has not taken CONN_OUT_MAX of answers. */
static int
rconn_want_read(const struct conn *c)
{
	const struct relp_conn *r = conn_state(c);

	return !r->s.closing && r->s.held.len + conn_unsent(c) < CONN_OUT_MAX;
}

static int
rconn_waiting(const struct conn *c)
{
	const struct relp_conn *r = conn_state(c);

	return session_waiting(&r->s);
}

static void
rconn_sent(struct conn *c)
{
	struct relp_conn *r = conn_state(c);

	if (session_finished(&r->s))
		conn_close(c, "RELP session closed");
}

/* Draining: the session ends after answering what was read; the client resends the rest. */
static void
rconn_drain(struct conn *c)
{
	struct relp_conn *r = conn_state(c);

	if (session_serverclose(&r->s) == -1)
		conn_close(c, "out of memory for responses");
	else
		answer(r);
}

static void
rconn_free(struct conn *c)
{
	struct relp_conn *r = conn_state(c);

	if (r == NULL)
		return;
	if (r->prev)
		r->prev->next = r->next;
	else
		sessions = r->next;
	if (r->next)
		r->next->prev = r->prev;
	session_free(&r->s);
	free(r);
}

const struct conn_handler relp_handler = {
	.name = "relp",
	.start = rconn_start,
	.feed = rconn_feed,
	.read_end = rconn_read_end,
	.in_record = rconn_in_frame,
	.want_read = rconn_want_read,
	.waiting = rconn_waiting,
	.sent = rconn_sent,
	.drain = rconn_drain,
	.free = rconn_free,
};
