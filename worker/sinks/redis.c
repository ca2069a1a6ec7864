/*
 * redis: the driver of redis sinks: each event is appended to a Redis
 * Stream with XADD, through hiredis' asynchronous API on the worker's
 * libevent loop.  The stream key may take a field of the event:
 * "logs:${host}" (the event's own top-level field, decoded; keys are
 * binary-safe).
 *
 * The commands are pipelined, and an event leaves the queue (and counts as
 * written, for RELP acknowledgements) only when Redis has answered its
 * XADD.  Answers come in the order of the commands, and each one settles
 * its event:
 *
 *  - an entry ID: written.
 *  - an error that will not change (WRONGTYPE: the key holds another type;
 *    a syntax error; NOPERM...): the event is dropped, counted and logged.
 *    Sending it again would only be refused again, and hold up the events
 *    behind it.
 *  - an error of the moment (LOADING, OOM, READONLY...: transient()): the
 *    event is kept.  Nothing more is sent until the answers in flight are
 *    in; then the sink backs off, and the retry sends the first kept event
 *    alone, so that a Redis still refusing gets one command, not a pipeline.
 *
 * The head of the queue moves over finished events only, in order, since
 * RELP answers wait on byte marks of the queue.  The events behind a kept
 * one that Redis already answered are remembered by their offset in the
 * sink's byte stream (which consuming does not change): they are never
 * sent again, and the head passes them once the kept ones before them are
 * written.  While any are remembered, one command is in flight at a time,
 * the first unfinished event, so the list only ever grows at its end and
 * shrinks at its start.
 *
 * When the connection drops, the events sent and not answered are sent
 * again on the next connection, after the back-off: one Redis had added but
 * could not answer is then added twice, never lost.
 */
#include <errno.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "addr.h"
#include "driver.h"
#include "json.h"
#include "proc.h"

#define STREAM_MAX	256			/* bytes of a stream key: cut there */
#define INFLIGHT_MAX	(4 * 1024 * 1024)	/* bytes of events sent and not answered */

struct redis {
	struct sink		*s;
	redisAsyncContext	*ac;
	int			 ready;		/* connected */
	/* offsets from the queue's head: answered <= next <= sent */
	size_t			 answered;	/* finished, still in the queue */
	size_t			 next;		/* the event the next answer is for */
	size_t			 sent;		/* sent, or finished */
	unsigned		 inflight;	/* commands not answered */
	int			 kept;		/* an answer in flight refused for now */
	int			 alone;		/* one command at a time */
	uint64_t		 head;		/* stream offset of the queue's head */
	uint64_t		*done;		/* finished behind a kept one: offsets */
	size_t			 first, ndone, cap;	/* done[first..ndone) */
	struct event		*settle;	/* hands the answered bytes to sink.c */
	struct log_limit	 refusals;
};

/* The stream key of one event (len bytes, its newline excluded) into key (STREAM_MAX bytes). */
static size_t
stream_key(const struct sink *s, const char *ev, size_t len, char *key)
{
	return json_fill(s->cf->stream, ev, len, key, STREAM_MAX, NULL);
}

/*
 * Whether an error will pass: Redis loading or busy, a failover, no room,
 * no quorum, a disk problem, not authenticated yet, too many clients.
 */
static int
transient(const char *err)
{
	static const char *const codes[] = { "LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN",
	    "CLUSTERDOWN", "READONLY", "NOREPLICAS", "OOM", "MISCONF", "NOAUTH" };
	static const char clients[] = "ERR max number of clients reached";
	size_t n = strcspn(err, " ");

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strlen(codes[i]) == n && memcmp(err, codes[i], n) == 0)
			return 1;
	return strncmp(err, clients, sizeof(clients) - 1) == 0;
}

/* Remember an event finished behind a kept one; out of memory, it is only sent again. */
static void
remember(struct redis *r, uint64_t off)
{
	if (r->ndone == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 64;
		uint64_t *p = reallocarray(r->done, cap, sizeof(*p));

		if (p == NULL) {
			log_warn("%s: sink %s: an answered event will be sent again", proc.name,
			    r->s->cf->name);
			return;
		}
		r->done = p;
		r->cap = cap;
	}
	r->done[r->ndone++] = off;
}

/*
 * The event at offset at (n bytes) is finished: the head passes it, now or
 * once the kept ones before it are.  Passing remembered events, the head
 * goes beyond what was sent alone: what is sent next starts there.
 */
static void
finish(struct redis *r, size_t at, size_t n)
{
	struct sink *s = r->s;

	if (at != r->answered) {
		remember(r, r->head + at);
		return;
	}
	r->answered += n;
	while (r->first < r->ndone && r->done[r->first] == r->head + r->answered) {
		r->first++;
		r->answered += sink_unit_len(s, s->q.p + r->answered, s->q.len - r->answered);
	}
	if (r->first == r->ndone)
		r->first = r->ndone = 0;
	if (r->sent < r->answered)
		r->next = r->sent = r->answered;
	if (!event_pending(r->settle, EV_TIMEOUT, NULL))
		event_active(r->settle, EV_TIMEOUT, 1);
}

/* Refused for good: the event is dropped, and that is said once in a while. */
static void
refuse(struct redis *r, const char *ev, size_t n, const char *err)
{
	struct sink *s = r->s;
	char key[STREAM_MAX], text[JSON_STRING_MAX(STREAM_MAX)];
	struct obuf q = { text, 0, sizeof(text) };

	s->st->dropped++;
	json_string(&q, key, stream_key(s, ev, n - 1, key));
	log_limited(&r->refusals, LOG_LVL_ERROR, "%s: sink %s: redis %s: XADD to %.*s refused: "
	    "%s; event dropped (%llu dropped so far)", proc.name, s->cf->name, s->where,
	    (int)q.len, q.p, err, (unsigned long long)s->st->dropped);
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct redis *r = ac->data;
	redisReply *rep = reply;
	const char *err;
	struct sink *s;
	size_t at, n;

	(void)priv;
	if (r == NULL || rep == NULL || r->next >= r->s->q.len)
		return;		/* a connection that is gone: its events go again */
	s = r->s;
	at = r->next;
	n = sink_unit_len(s, s->q.p + at, s->q.len - at);
	r->next += n;
	err = rep->type != REDIS_REPLY_ERROR ? NULL : rep->str ? rep->str : "error";
	if (err != NULL && transient(err)) {
		r->kept = 1;
		log_limited(&s->errlog, LOG_LVL_ERROR, "%s: sink %s: redis %s: %s; the event is "
		    "kept and sent again after a back-off", proc.name, s->cf->name, s->where, err);
	} else {
		if (err != NULL)
			refuse(r, s->q.p + at, n, err);
		finish(r, at, n);
	}
	if (--r->inflight == 0 && r->kept) {
		errno = 0;	/* said above */
		sink_failed(s);
	}
}

/*
 * The answers of one read leave the queue together, once hiredis has
 * handed them all over: one call, one move of the queue, instead of one
 * per answer (quadratic with a long queue after an outage).
 */
static void
settle(struct redis *r)
{
	size_t n = r->answered;

	if (n == 0)
		return;
	r->answered = 0;
	r->next -= n;
	r->sent -= n;
	r->head += n;
	sink_consumed(r->s, n);
}

/*
 * After the answered bytes leave, what waits is sent without waiting for a
 * new event to flush: the rest of a queue longer than INFLIGHT_MAX (a
 * backlog after an outage, while a "block" sink stops its clients), or the
 * next event when one goes at a time.
 */
static void
on_settle(evutil_socket_t fd, short what, void *arg)
{
	struct redis *r = arg;

	(void)fd;
	(void)what;
	settle(r);
	if (r->ready && r->sent < r->s->q.len)
		sink_writable(r->s);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct redis *r = ac->data;

	if (r == NULL)
		return;
	if (status != REDIS_OK) {
		errno = ECONNREFUSED;
		log_limited(&r->s->errlog, LOG_LVL_ERROR, "%s: sink %s: redis %s: %s", proc.name,
		    r->s->cf->name, r->s->where, ac->errstr);
		r->ac = NULL;		/* hiredis frees it */
		sink_failed(r->s);
		return;
	}
	r->ready = 1;
	log_debug("%s: sink %s: redis %s: connected", proc.name, r->s->cf->name, r->s->where);
	sink_writable(r->s);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis *r = ac->data;

	if (r == NULL)
		return;
	if (status != REDIS_OK)
		log_limited(&r->s->errlog, LOG_LVL_ERROR, "%s: sink %s: redis %s: %s", proc.name,
		    r->s->cf->name, r->s->where, ac->errstr);
	r->ac = NULL;
	r->ready = 0;
	settle(r);		/* what Redis answered is written */
	log_debug("%s: sink %s: redis %s: disconnected; %u events to send again", proc.name,
	    r->s->cf->name, r->s->where, r->inflight);
	r->inflight = 0;	/* unanswered: sent again on the next connection */
	errno = ECONNRESET;
	sink_failed(r->s);
}

static int
connect_redis(struct sink *s, struct redis *r)
{
	const struct addr *a = &s->cf->upstream_v[0];
	char host[ADDR_STRLEN];

	if (a->ss.ss_family == AF_UNIX) {
		r->ac = redisAsyncConnectUnix(((const struct sockaddr_un *)&a->ss)->sun_path);
	} else {
		char *colon;

		snprintf(host, sizeof(host), "%s", s->cf->upstreams.v[0]);
		if ((colon = strrchr(host, ':')) == NULL)
			return -1;
		*colon = '\0';
		if (host[0] == '[' && colon[-1] == ']')		/* "[v6]:port" */
			colon[-1] = '\0';
		r->ac = redisAsyncConnect(host[0] == '[' ? host + 1 : host, atoi(colon + 1));
	}
	if (r->ac == NULL || r->ac->err) {
		errno = ECONNREFUSED;
		if (r->ac)
			redisAsyncFree(r->ac);
		r->ac = NULL;
		return -1;
	}
	r->ac->data = r;
	redisLibeventAttach(r->ac, proc.base);
	redisAsyncSetConnectCallback(r->ac, on_connect);
	redisAsyncSetDisconnectCallback(r->ac, on_disconnect);
	return 0;
}

static int
send_xadd(struct sink *s, struct redis *r)
{
	const char *ev = s->q.p + r->sent;
	size_t n = sink_unit_len(s, ev, s->q.len - r->sent), klen;
	char key[STREAM_MAX];
	int rc;

	klen = stream_key(s, ev, n - 1, key);
	if (s->cf->maxlen > 0)
		rc = redisAsyncCommand(r->ac, on_reply, NULL, "XADD %b MAXLEN ~ %d * event %b",
		    key, klen, s->cf->maxlen, ev, n - 1);
	else
		rc = redisAsyncCommand(r->ac, on_reply, NULL, "XADD %b * event %b", key, klen, ev,
		    n - 1);
	if (rc != REDIS_OK)
		return -1;
	r->sent += n;
	r->inflight++;
	return 0;
}

/*
 * Pipeline an XADD for every queued event not sent yet; nothing leaves
 * before its answer.  With nothing in flight, sending starts again at the
 * first unfinished event: alone after a refusal, or while answered events
 * are remembered behind it (see the top of the file).
 */
static ssize_t
redis_write(struct sink *s, int *wait)
{
	struct redis *r = s->state;

	*wait = 1;
	if (r->ac == NULL && connect_redis(s, r) == -1)
		return -1;
	if (!r->ready)
		return 0;
	if (r->inflight == 0) {
		r->alone = r->kept || r->first < r->ndone;
		r->kept = 0;
		r->next = r->sent = r->answered;
	}
	while (r->sent < s->q.len && r->sent - r->answered < INFLIGHT_MAX && !r->kept &&
	    !(r->alone && r->inflight > 0))
		if (send_xadd(s, r) == -1)
			break;
	return 0;
}

static int
redis_start(struct sink *s)
{
	struct redis *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return -1;
	r->s = s;
	r->settle = event_new(proc.base, -1, 0, on_settle, r);
	s->state = r;
	snprintf(s->where, sizeof(s->where), "%s", s->cf->upstreams.v[0]);
	return 0;
}

static void
redis_close(struct sink *s)
{
	struct redis *r = s->state;

	if (r == NULL)
		return;
	if (r->ac) {
		r->ac->data = NULL;	/* no callback may reach us any more */
		redisAsyncFree(r->ac);
	}
	event_free(r->settle);
	free(r->done);
	free(r);
	s->state = NULL;
}

const struct sink_driver sink_redis_driver = {
	"redis", redis_start, redis_write, NULL, NULL, redis_close
};
