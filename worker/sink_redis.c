/*
 * sink_redis: the redis sink's driver: each event is appended to a Redis
 * Stream with XADD, through hiredis' asynchronous API on the worker's
 * libevent loop.
 *
 * The commands of a batch are pipelined; an event leaves the queue (and
 * counts as written, for RELP acknowledgements) only when Redis has
 * answered its XADD.  When the connection drops, every event not yet
 * answered is sent again on the next connection, after the usual back-off:
 * an event Redis had added but could not answer is then added twice, never
 * lost.  The stream key may take a field of the event: "logs:${host}" (the
 * event's own top-level field, decoded; keys are binary-safe).
 */
#include <errno.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "addr.h"
#include "sink_driver.h"
#include "worker.h"

#define STREAM_MAX	256			/* bytes of a stream key; longer ones are cut */
#define INFLIGHT_MAX	(4 * 1024 * 1024)	/* bytes of events sent and not answered */

struct redis {
	struct sink		*s;
	redisAsyncContext	*ac;
	int			 ready;		/* connected */
	unsigned		 gen;		/* connection number: older replies are ignored */
	size_t			 inflight;	/* bytes at the queue's head sent */
	size_t			 answered;	/* of them, answered, still in the queue */
	struct event		*settle;	/* hands the answered bytes to sink.c */
};

/*
 * The stream key of one event (len bytes, its newline excluded) into key
 * (STREAM_MAX bytes): the setting, each ${field} replaced by the event's
 * top-level field, nothing when it has none.  Returns its length.
 */
static size_t
stream_key(const struct sink *s, const char *ev, size_t len, char *key)
{
	const char *t = s->cf->stream, *end;
	size_t o = 0;
	ssize_t n;

	while (*t && o < STREAM_MAX) {
		if (t[0] != '$' || t[1] != '{' || (end = strchr(t + 2, '}')) == NULL) {
			key[o++] = *t++;
			continue;
		}
		if ((n = json_member(ev, len, t + 2, end - t - 2, key + o, STREAM_MAX - o)) > 0)
			o += n;
		t = end + 1;
	}
	return o;
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct redis *r = ac->data;
	redisReply *rep = reply;
	struct sink *s;
	size_t n;

	if (r == NULL || (unsigned)(uintptr_t)priv != r->gen || rep == NULL)
		return;		/* a connection that is gone: its events go again */
	s = r->s;
	if (rep->type == REDIS_REPLY_ERROR) {
		/*
		 * This event was not added (LOADING after a restart, OOM...).  The
		 * answers still to come on this connection are ignored, since
		 * they no longer match the head of the queue: everything from this
		 * event on goes again on a new connection.
		 */
		log_limited(&s->errlog, LOG_LVL_ERROR, "%s: sink %s: redis %s: %s; reconnecting",
		    wrk.name, s->cf->name, s->where, rep->str);
		r->gen++;
		r->ready = 0;
		redisAsyncDisconnect(ac);
		return;
	}
	n = sink_unit_len(s, s->q.p + r->answered, s->q.len - r->answered);
	r->answered += n;
	if (!event_pending(r->settle, EV_TIMEOUT, NULL))
		event_active(r->settle, EV_TIMEOUT, 1);
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
	r->inflight -= n;
	sink_consumed(r->s, n);
}

static void
on_settle(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	settle(arg);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct redis *r = ac->data;

	if (r == NULL)
		return;
	if (status != REDIS_OK) {
		errno = ECONNREFUSED;
		log_limited(&r->s->errlog, LOG_LVL_ERROR, "%s: sink %s: redis %s: %s", wrk.name,
		    r->s->cf->name, r->s->where, ac->errstr);
		r->ac = NULL;		/* hiredis frees it */
		sink_failed(r->s);
		return;
	}
	r->ready = 1;
	log_debug("%s: sink %s: redis %s: connected", wrk.name, r->s->cf->name, r->s->where);
	sink_writable(r->s);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis *r = ac->data;

	if (r == NULL)
		return;
	if (status != REDIS_OK)
		log_limited(&r->s->errlog, LOG_LVL_ERROR, "%s: sink %s: redis %s: %s", wrk.name,
		    r->s->cf->name, r->s->where, ac->errstr);
	settle(r);		/* what Redis answered is written */
	log_debug("%s: sink %s: redis %s: disconnected; %zu bytes to send again", wrk.name,
	    r->s->cf->name, r->s->where, r->inflight);
	r->ac = NULL;
	r->ready = 0;
	r->inflight = 0;	/* unanswered: sent again on the next connection */
	r->gen++;
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
	redisLibeventAttach(r->ac, wrk.base);
	redisAsyncSetConnectCallback(r->ac, on_connect);
	redisAsyncSetDisconnectCallback(r->ac, on_disconnect);
	return 0;
}

/* Pipeline an XADD for every queued event not sent yet; nothing leaves before its answer. */
static ssize_t
redis_write(struct sink *s, int *wait)
{
	struct redis *r = s->priv;
	char key[STREAM_MAX];

	*wait = 1;
	if (r->ac == NULL && connect_redis(s, r) == -1)
		return -1;
	if (!r->ready)
		return 0;
	while (r->inflight < s->q.len && r->inflight < INFLIGHT_MAX) {
		const char *ev = s->q.p + r->inflight;
		size_t n = sink_unit_len(s, ev, s->q.len - r->inflight);
		void *gen = (void *)(uintptr_t)r->gen;
		size_t klen = stream_key(s, ev, n - 1, key);
		int rc;

		if (s->cf->maxlen > 0)
			rc = redisAsyncCommand(r->ac, on_reply, gen, "XADD %b MAXLEN ~ %d * event %b",
			    key, klen, s->cf->maxlen, ev, n - 1);
		else
			rc = redisAsyncCommand(r->ac, on_reply, gen, "XADD %b * event %b", key, klen,
			    ev, n - 1);
		if (rc != REDIS_OK)
			break;
		r->inflight += n;
	}
	return 0;
}

static int
redis_start(struct sink *s)
{
	struct redis *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return -1;
	r->s = s;
	r->settle = event_new(wrk.base, -1, 0, on_settle, r);
	s->priv = r;
	snprintf(s->where, sizeof(s->where), "%s", s->cf->upstreams.v[0]);
	return 0;
}

static void
redis_close(struct sink *s)
{
	struct redis *r = s->priv;

	if (r == NULL)
		return;
	if (r->ac) {
		r->ac->data = NULL;	/* no callback may reach us any more */
		redisAsyncFree(r->ac);
	}
	event_free(r->settle);
	free(r);
	s->priv = NULL;
}

static void
redis_reopen(struct sink *s)
{
	(void)s;
}

const struct sink_driver sink_redis_driver = {
	redis_start, redis_write, NULL, redis_reopen, redis_close
};
