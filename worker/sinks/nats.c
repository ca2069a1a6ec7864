/*
 * nats: the driver of nats sinks: each event is published to a NATS
 * JetStream stream through libnats (the NATS C client), and leaves the
 * queue (counts as written, for RELP answers) only once the stream has
 * acknowledged it, which JetStream does when a quorum of its replicas holds it.
 *
 * Threads.  libnats runs threads of its own (reading, flushing, timers,
 * delivering messages), and its calls may wait on the network (a publish
 * into a full socket, a connect, a close).  The worker's loop therefore
 * never calls it: each sink has a publisher thread of ours that makes every
 * libnats call, and the loop and the threads meet in one place, struct
 * handoff, under its mutex:
 *
 *   loop -> publisher: out, the events to publish (number, subject,
 *       payload), copied out of the queue; the publisher takes the whole
 *       buffer at once and signals nothing back but news.
 *   libnats' threads and the publisher -> loop: news, the outcomes of
 *       publishes (an event's number and what became of it) and the
 *       connection's events, and notes, the lines to log; the first item
 *       put into empty lists wakes the loop through an eventfd.
 *
 * Nothing else is shared: the publisher and libnats' callbacks read only
 * the handoff, the sink's settings (the generation's, immutable) and the
 * names drawn at start (tag, inbox), and they never log (the loop does).
 *
 * Numbers and ids.  The events in flight are the first ones of the queue,
 * numbered in order from the head's number (head_n).  An event's message
 * id (Nats-Msg-Id) is the sink's tag, drawn at random when the worker
 * starts, and its number; its reply subject is the sink's inbox and its
 * number.  Publishing an event again (no acknowledgement within
 * publish_timeout, the connection broke, the stream had no leader for a
 * moment) keeps both, so the stream's duplicate window drops a copy that
 * had landed, and whichever acknowledgement comes settles it.
 *
 * Outcomes: acknowledged (or acknowledged as a duplicate): written.  No
 * responders (no stream takes the subject, or its leader is being
 * elected) or a JetStream error 5xx: published again after a back-off.
 * Another error (the stream refuses the message for good: too large, a
 * 4xx): the event is dropped, counted and logged, as a redis sink does
 * with a refused XADD, so that it does not hold up the events behind it.
 */
#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "driver.h"
#include "json.h"
#include "proc.h"

#define SUBJECT_MAX	256		/* bytes of a subject: cut there */
#define NOTE_MAX	512		/* bytes of a line the threads give the loop to log */
#define CONNECT_RETRY_MS 1000		/* no server took the connection: tried again */

/* What became of a publish, or of the connection (struct news). */
enum outcome {
	NEWS_ACK,		/* stored */
	NEWS_DUPLICATE,		/* stored before: a resend the stream dropped */
	NEWS_AGAIN,		/* not stored, may be later: publish again after a back-off */
	NEWS_REFUSED,		/* not stored, never will be: dropped */
	NEWS_DOWN,		/* the connection broke: acknowledgements may be lost */
	NEWS_UP,		/* connected again: what was in flight goes again */
};

struct news {
	uint64_t	 n;		/* the event's number (publishes) */
	enum outcome	 what;
};

/* The one place the loop and the threads share; see the top of the file. */
struct handoff {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;		/* the publisher waits on it for out or stop */
	struct obuf	 out;		/* loop -> publisher: [n][subject NUL][len][payload]... */
	struct news	*news;		/* threads -> loop */
	size_t		 nnews, cap;
	struct obuf	 notes;		/* threads -> loop: lines "L text\n", L a log level */
	char		 why[NOTE_MAX];	/* the last error of NEWS_AGAIN or NEWS_REFUSED */
	int		 stop;		/* loop -> publisher: close and end */
	int		 closing;	/* publisher: it closes the connection itself */
	int		 closed;	/* libnats -> publisher: the connection is closed */
	int		 sub_done;	/* libnats -> publisher: no more acknowledgements */
	int		 loose;		/* publisher -> close: a callback may still come */
	int		 efd;		/* eventfd: news or notes wait */
};

/* An event in flight: published, outcome not known yet. */
enum flight_state { SENT, AGAIN, DONE };

struct flight {
	uint32_t	 len;		/* bytes in the queue, its newline included */
	uint8_t		 state;
	int64_t		 sent_ms;
};

struct nats {
	struct sink	*s;
	struct handoff	 h;
	pthread_t	 thread;
	int		 started;	/* the publisher runs */
	char		 tag[17];	/* message ids: tag-n */
	char		 inbox[32];	/* reply subjects: inbox.n */
	/* the loop's own */
	struct event	*wake;		/* h.efd readable */
	struct event	*timer;		/* publish_timeout of the oldest in flight */
	struct flight	*ring;		/* in flight: ring[(first + i) % max_pending] */
	size_t		 first, nflight;
	size_t		 settled;	/* queue bytes settled, not consumed yet (settle) */
	size_t		 sent_off;	/* queue bytes settled or in flight */
	size_t		 nagain;	/* of them marked AGAIN */
	int		 scan;		/* publish_timeout passed: look for late ones */
	uint64_t	 head_n;	/* the number of the queue's head */
	int64_t		 down_ms;	/* when the connection last broke */
	long		 backoff_ms;	/* 0 while publishes succeed */
	int64_t		 again_ms;	/* events marked AGAIN wait until then */
	struct log_limit refusals, notelog;
	/* the publisher's own */
	natsConnection	*nc;
	natsSubscription *sub;
	int		 checked;	/* the stream was looked at */
};

/* ---- the hand-off: any thread ---- */

static void
wake_loop(struct handoff *h)
{
	uint64_t one = 1;

	while (write(h->efd, &one, sizeof(one)) == -1 && errno == EINTR)
		;
}

/* Called with h->mu held: the loop is woken by the first item only. */
static int
empty(const struct handoff *h)
{
	return h->nnews == 0 && h->notes.len == 0;
}

static void
tell(struct handoff *h, uint64_t n, enum outcome what, const char *why)
{
	pthread_mutex_lock(&h->mu);
	if (empty(h))
		wake_loop(h);
	if (h->nnews == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 1024;
		struct news *p = reallocarray(h->news, cap, sizeof(*p));

		if (p == NULL) {	/* lost news: publish_timeout sends the event again */
			pthread_mutex_unlock(&h->mu);
			return;
		}
		h->news = p;
		h->cap = cap;
	}
	h->news[h->nnews].n = n;
	h->news[h->nnews++].what = what;
	if (why)
		snprintf(h->why, sizeof(h->why), "%s", why);
	pthread_mutex_unlock(&h->mu);
}

static void __attribute__((format(printf, 3, 4)))
note(struct handoff *h, int level, const char *fmt, ...)
{
	char line[NOTE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line + 1, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 3)
		n = sizeof(line) - 3;
	line[0] = '0' + level;
	line[n + 1] = '\n';
	pthread_mutex_lock(&h->mu);
	if (empty(h))
		wake_loop(h);
	if (obuf_reserve(&h->notes, n + 2) == 0) {
		memcpy(h->notes.p + h->notes.len, line, n + 2);
		h->notes.len += n + 2;
	}
	pthread_mutex_unlock(&h->mu);
}

/* Set a flag of the hand-off (or none) and wake the publisher waiting on it. */
static void
wake_publisher(struct handoff *h, int *flag)
{
	pthread_mutex_lock(&h->mu);
	if (flag)
		*flag = 1;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

/* ---- libnats' threads ---- */

/*
 * An acknowledgement, on the thread that delivers the inbox's messages:
 * a PubAck {"stream":..,"seq":..[,"duplicate":true]}, a JetStream error
 * {"error":{"code":..,"description":..}}, or a status (503: no responders).
 * Anything else is no acknowledgement: the event goes again.
 */
static void
on_ack(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
	struct nats *t = arg;
	const char *subj = natsMsg_GetSubject(m), *data = natsMsg_GetData(m), *dot, *status;
	size_t len = data ? natsMsg_GetDataLength(m) : 0;
	char err[NOTE_MAX], code[8], why[NOTE_MAX];
	ssize_t elen, n;
	uint64_t num;

	(void)nc;
	(void)sub;
	if (data == NULL)
		data = "";
	if ((dot = strrchr(subj, '.')) == NULL)
		goto out;
	num = strtoull(dot + 1, NULL, 10);
	if (natsMsgHeader_Get(m, "Status", &status) == NATS_OK) {
		snprintf(why, sizeof(why), "%s", strncmp(status, "503", 3) == 0 ? "no responders: "
		    "no stream takes the subject, or its leader is being elected" : status);
		tell(&t->h, num, NEWS_AGAIN, why);
	} else if ((elen = json_member(data, len, "error", 5, err, sizeof(err) - 1)) > 0) {
		long c = (n = json_member(err, elen, "code", 4, code, sizeof(code) - 1)) > 0 ?
		    strtol((code[n] = '\0', code), NULL, 10) : 0;

		n = json_member(err, elen, "description", 11, why, sizeof(why) - 1);
		why[n > 0 ? n : 0] = '\0';
		tell(&t->h, num, c >= 500 || c == 0 ? NEWS_AGAIN : NEWS_REFUSED, why);
	} else if (json_member(data, len, "seq", 3, code, sizeof(code)) <= 0) {
		tell(&t->h, num, NEWS_AGAIN, "an answer that is no acknowledgement");
	} else {
		n = json_member(data, len, "duplicate", 9, code, sizeof(code));
		tell(&t->h, num, n == 4 && memcmp(code, "true", 4) == 0 ? NEWS_DUPLICATE : NEWS_ACK,
		    NULL);
	}
out:
	natsMsg_Destroy(m);
}

static void
on_down(natsConnection *nc, void *arg)
{
	struct nats *t = arg;

	(void)nc;
	tell(&t->h, 0, NEWS_DOWN, NULL);
}

static void
on_up(natsConnection *nc, void *arg)
{
	struct nats *t = arg;
	char url[256] = "?";

	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	note(&t->h, LOG_LVL_NOTICE, "connected to %s", url);
	tell(&t->h, 0, NEWS_UP, NULL);
	wake_publisher(&t->h, NULL);		/* it may look at the stream now */
}

/*
 * The connection gave up for good (the server refused the credentials
 * twice, say): the publisher makes a new one.
 */
static void
on_closed(natsConnection *nc, void *arg)
{
	struct nats *t = arg;
	const char *why = NULL;
	int ours;

	pthread_mutex_lock(&t->h.mu);
	ours = t->h.closing;
	pthread_mutex_unlock(&t->h.mu);
	if (!ours) {
		natsConnection_GetLastError(nc, &why);
		note(&t->h, LOG_LVL_ERROR, "connection closed: %s; connecting again",
		    why && *why ? why : "no reason given");
	}
	/* Last: once closed is set, the publisher may free t (disconnect, then exit). */
	wake_publisher(&t->h, &t->h.closed);
}

static void
on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *arg)
{
	struct nats *t = arg;

	(void)nc;
	(void)sub;
	note(&t->h, LOG_LVL_ERROR, "%s", natsStatus_GetText(err));
}

/* ---- the publisher thread ---- */

static natsStatus
set_tls(natsOptions *o, const struct tls_cfg *tls)
{
	natsStatus st = natsOptions_SetSecure(o, true);

	if (st == NATS_OK && tls->ca_file[0])
		st = natsOptions_LoadCATrustedCertificates(o, tls->ca_file);
	if (st == NATS_OK && tls->certificate[0])
		st = natsOptions_LoadCertificatesChain(o, tls->certificate,
		    tls->key[0] ? tls->key : tls->certificate);
	if (st == NATS_OK && tls->server_name[0])
		st = natsOptions_SetExpectedHostname(o, tls->server_name);
	if (st == NATS_OK && tls->verify == VERIFY_NONE)
		st = natsOptions_SkipServerVerification(o, true);
	if (st == NATS_OK)
		st = natsOptions_SetCiphers(o, tls->ciphers);
	if (st == NATS_OK)
		st = natsOptions_SetCipherSuites(o, tls->ciphersuites);
	return st;
}

static int
wants_tls(const struct sink_cfg *cf)
{
	for (int i = 0; i < cf->servers.n; i++)
		if (strncmp(cf->servers.v[i], "tls://", 6) == 0)
			return 1;
	return cf->tls.enabled;
}

/*
 * The connection's options: every server, reconnecting forever, a server
 * that stops answering given up after two pings a second apart, and a
 * write that waits more than 2 s failing the connection (so that closing
 * never hangs on a stopped server).
 */
static natsStatus
options(struct nats *t, natsOptions **op)
{
	const struct sink_cfg *cf = t->s->cf;
	natsOptions *o;
	natsStatus st;

	if ((st = natsOptions_Create(&o)) != NATS_OK)
		return st;
	*op = o;
	if ((st = natsOptions_SetServers(o, (const char **)cf->servers.v, cf->servers.n)) ||
	    (st = natsOptions_SetName(o, "ingestd")) ||
	    (st = natsOptions_SetMaxReconnect(o, -1)) ||
	    (st = natsOptions_SetReconnectWait(o, 250)) ||
	    (st = natsOptions_SetReconnectJitter(o, 100, 1000)) ||
	    (st = natsOptions_SetPingInterval(o, 1000)) ||
	    (st = natsOptions_SetMaxPingsOut(o, 2)) ||
	    (st = natsOptions_SetTimeout(o, 2000)) ||
	    (st = natsOptions_SetWriteDeadline(o, 2000)) ||
	    (st = natsOptions_SetDisconnectedCB(o, on_down, t)) ||
	    (st = natsOptions_SetClosedCB(o, on_closed, t)) ||
	    (st = natsOptions_SetReconnectedCB(o, on_up, t)) ||
	    (st = natsOptions_SetErrorHandler(o, on_error, t)))
		return st;
	if (cf->auth_user[0])
		st = natsOptions_SetUserInfo(o, cf->auth_user, cf->password);
	else if (cf->token[0])
		st = natsOptions_SetToken(o, cf->token);
	else if (cf->credentials[0])
		st = natsOptions_SetUserCredentialsFromFiles(o, cf->credentials, NULL);
	if (st == NATS_OK && wants_tls(cf))
		st = set_tls(o, &cf->tls);
	return st;
}

/*
 * Close the connection (libnats flushes, bounded by the write deadline) and
 * forget it, once libnats is done calling back: its closed callback comes
 * last of the connection's (they are delivered in order, on one thread),
 * and the inbox's completion after its last acknowledgement.  After 5 s
 * the callbacks are given up on, and the hand-off is never freed (loose).
 */
static void
disconnect(struct nats *t)
{
	struct handoff *h = &t->h;
	struct timespec ts;
	int rc = 0;

	pthread_mutex_lock(&h->mu);
	if (t->nc == NULL) {
		h->closed = 0;		/* a connection that failed to connect, told late */
		pthread_mutex_unlock(&h->mu);
		return;
	}
	h->closing = 1;
	pthread_mutex_unlock(&h->mu);
	natsConnection_Close(t->nc);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	pthread_mutex_lock(&h->mu);
	while (rc == 0 && !(h->closed && (t->sub == NULL || h->sub_done)))
		rc = pthread_cond_timedwait(&h->cv, &h->mu, &ts);
	h->loose |= rc != 0;
	h->closed = h->sub_done = h->closing = 0;
	pthread_mutex_unlock(&h->mu);
	natsSubscription_Destroy(t->sub);
	natsConnection_Destroy(t->nc);
	t->sub = NULL;
	t->nc = NULL;
	t->checked = 0;
}

/* The inbox's delivery thread is done: no acknowledgement will come from it. */
static void
on_sub_done(void *arg)
{
	struct nats *t = arg;

	wake_publisher(&t->h, &t->h.sub_done);
}

/*
 * Connect and subscribe to the inbox; on failure the publisher tries again
 * after CONNECT_RETRY_MS.  Connecting here, not in libnats' background
 * (RetryOnFailedConnect), keeps the reason of a failure (a refused
 * password, a certificate) for the log.
 */
static int
connect_nats(struct nats *t)
{
	natsOptions *o = NULL;
	natsStatus st;
	char subj[64], url[256] = "?";

	if ((st = options(t, &o)) == NATS_OK)
		st = natsConnection_Connect(&t->nc, o);
	natsOptions_Destroy(o);
	snprintf(subj, sizeof(subj), "%s.*", t->inbox);
	if (st == NATS_OK && (st = natsConnection_Subscribe(&t->sub, t->nc, subj, on_ack, t)) ==
	    NATS_OK && (st = natsSubscription_SetOnCompleteCB(t->sub, on_sub_done, t)) == NATS_OK)
		st = natsSubscription_SetPendingLimits(t->sub, -1, -1);
	if (st == NATS_OK) {
		natsConnection_GetConnectedUrl(t->nc, url, sizeof(url));
		note(&t->h, LOG_LVL_INFO, "connected to %s", url);
		return 0;
	}
	note(&t->h, LOG_LVL_ERROR, "cannot connect: %s; trying again every %d s",
	    nats_GetLastError(NULL), CONNECT_RETRY_MS / 1000);
	disconnect(t);
	return -1;
}

/* Whether the NATS subject pattern pat (with * and >) matches subject subj. */
static int
subject_matches(const char *pat, const char *subj)
{
	while (*pat && *subj) {
		size_t p = strcspn(pat, "."), s = strcspn(subj, ".");

		if (p == 1 && *pat == '>')
			return 1;
		if (!(p == 1 && *pat == '*') && (p != s || memcmp(pat, subj, p) != 0))
			return 0;
		pat += p + (pat[p] == '.');
		subj += s + (subj[s] == '.');
	}
	return *pat == '\0' && *subj == '\0';
}

/*
 * Once connected: whether the stream exists and captures the subject (its
 * ${field}s taken as one token "x"); the answer is only logged, since the
 * operator may create the stream later (events wait until then).
 */
static void
check_stream(struct nats *t)
{
	const struct sink_cfg *cf = t->s->cf;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	jsCtx *js = NULL;
	char sample[SUBJECT_MAX + 1];
	natsStatus st;
	int found = 0;

	t->checked = 1;
	snprintf(sample, sizeof(sample), "%s", cf->subject);
	for (char *d; (d = strstr(sample, "${")) && strchr(d, '}'); )
		memmove(d + 1, strchr(d, '}') + 1, strlen(strchr(d, '}') + 1) + 1), *d = 'x';
	if ((st = natsConnection_JetStream(&js, t->nc, NULL)) == NATS_OK)
		st = js_GetStreamInfo(&si, js, cf->stream, NULL, &jerr);
	if (st == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)
		note(&t->h, LOG_LVL_ERROR, "JetStream has no stream \"%s\": create it to capture "
		    "the subject %s (see SCALING OUT in ingestd(8)); events wait", cf->stream,
		    cf->subject);
	else if (st != NATS_OK)
		note(&t->h, LOG_LVL_WARNING, "cannot look at stream \"%s\": %s (%s)", cf->stream,
		    natsStatus_GetText(st), nats_GetLastError(NULL));
	else {
		for (int i = 0; i < si->Config->SubjectsLen; i++)
			found |= subject_matches(si->Config->Subjects[i], sample);
		if (!found)
			note(&t->h, LOG_LVL_ERROR, "stream \"%s\" does not capture the subject %s "
			    "(add it to the stream's subjects); events wait", cf->stream, cf->subject);
		else
			note(&t->h, LOG_LVL_INFO, "stream \"%s\" captures the subject %s, %" PRId64
			    " replicas", cf->stream, cf->subject, (int64_t)si->Config->Replicas);
	}
	jsStreamInfo_Destroy(si);
	jsCtx_Destroy(js);
}

/* Publish one event of the out buffer; a failure is news for the loop. */
static void
publish(struct nats *t, uint64_t n, const char *subj, const char *data, uint32_t len)
{
	char reply[64], id[48];
	natsMsg *m = NULL;
	natsStatus st;

	snprintf(reply, sizeof(reply), "%s.%" PRIu64, t->inbox, n);
	snprintf(id, sizeof(id), "%s-%" PRIu64, t->tag, n);
	if ((st = natsMsg_Create(&m, subj, reply, data, (int)len)) == NATS_OK &&
	    (st = natsMsgHeader_Set(m, "Nats-Msg-Id", id)) == NATS_OK)
		st = natsConnection_PublishMsg(t->nc, m);
	natsMsg_Destroy(m);
	if (st != NATS_OK)	/* too large, or not a subject: never; the rest: the connection */
		tell(&t->h, n, st == NATS_MAX_PAYLOAD || st == NATS_INVALID_SUBJECT ||
		    st == NATS_INVALID_ARG ? NEWS_REFUSED : NEWS_AGAIN, natsStatus_GetText(st));
}

/* The events the loop handed over: [u64 n][u32 subject len][u32 len][subject NUL][payload]. */
static void
publish_all(struct nats *t, const struct obuf *b)
{
	size_t off = 0;

	while (off < b->len) {
		uint64_t n;
		uint32_t sl, len;

		memcpy(&n, b->p + off, 8);
		memcpy(&sl, b->p + off + 8, 4);
		memcpy(&len, b->p + off + 12, 4);
		off += 16;
		if (t->nc)
			publish(t, n, b->p + off, b->p + off + sl + 1, len);
		else
			tell(&t->h, n, NEWS_AGAIN, "not connected");
		off += sl + 1 + len;
	}
}

/*
 * What the publisher does next: waits for events to publish, the stop, or
 * (not connected, or the stream not looked at yet) a moment; takes the
 * events into mine, and whether the connection closed.  Returns -1 to stop.
 */
static int
next_work(struct nats *t, struct obuf *mine, int *closed)
{
	struct handoff *h = &t->h;
	struct obuf swap;
	struct timespec ts;
	int stop;

	pthread_mutex_lock(&h->mu);
	if (!h->stop && h->out.len == 0 && !h->closed) {
		if (t->nc == NULL || !t->checked) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += t->nc == NULL ? CONNECT_RETRY_MS / 1000 : 1;
			pthread_cond_timedwait(&h->cv, &h->mu, &ts);
		} else {
			pthread_cond_wait(&h->cv, &h->mu);
		}
	}
	stop = h->stop;
	*closed = h->closed;
	swap = h->out;
	h->out = *mine;
	*mine = swap;
	pthread_mutex_unlock(&h->mu);
	return stop ? -1 : 0;
}

/*
 * The publisher: connects, looks at the stream once connected, publishes
 * what the loop hands over; at the stop it closes the connection (libnats
 * flushes, bounded by the write deadline) and ends.  libnats is called on
 * this thread only (and calls back on its own).
 */
static void *
publisher(void *arg)
{
	struct nats *t = arg;
	struct obuf mine = { NULL, 0, 0 };
	int closed = 0;

	connect_nats(t);
	while (next_work(t, &mine, &closed) == 0) {
		if (closed)
			disconnect(t);	/* and connect again after CONNECT_RETRY_MS */
		else if (t->nc == NULL)
			connect_nats(t);
		if (t->nc && !t->checked && natsConnection_Status(t->nc) == NATS_CONN_STATUS_CONNECTED)
			check_stream(t);
		publish_all(t, &mine);
		mine.len = 0;
	}
	obuf_free(&mine);
	disconnect(t);
	return NULL;
}

/* ---- the loop ---- */

static struct flight *
flight(struct nats *t, size_t i)
{
	return &t->ring[(t->first + i) % t->s->cf->max_pending];
}

/* A field's value as part of a subject: what a subject may not carry becomes '_'. */
static size_t
subject_token(char *p, size_t n, size_t size)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f || p[i] == '*' || p[i] == '>' ||
		    (p[i] == '.' && (i == 0 || i == n - 1 || p[i - 1] == '.')))
			p[i] = '_';
	if (n == 0 && size > 0) {
		*p = '_';
		n = 1;
	}
	return n;
}

/* The subject of one event (len bytes, its newline excluded) into subj, NUL-terminated. */
static size_t
subject(const struct sink *s, const char *ev, size_t len, char *subj)
{
	size_t n = json_fill(s->cf->subject, ev, len, subj, SUBJECT_MAX, subject_token);

	if (n > 0 && subj[n - 1] == '.')	/* cut at SUBJECT_MAX after a dot */
		subj[n - 1] = '_';
	subj[n] = '\0';
	return n;
}

/* Hand one event to the publisher (h.mu held). */
static int
hand(struct nats *t, uint64_t n, const char *ev, uint32_t len)
{
	struct obuf *b = &t->h.out;
	char subj[SUBJECT_MAX + 1];
	uint32_t sl = subject(t->s, ev, len, subj);

	if (obuf_reserve(b, 16 + sl + 1 + len) == -1)
		return -1;
	memcpy(b->p + b->len, &n, 8);
	memcpy(b->p + b->len + 8, &sl, 4);
	memcpy(b->p + b->len + 12, &len, 4);
	memcpy(b->p + b->len + 16, subj, sl + 1);
	memcpy(b->p + b->len + 16 + sl + 1, ev, len);
	b->len += 16 + sl + 1 + len;
	return 0;
}

static void
arm_timeout(struct nats *t)
{
	long ms = t->s->cf->publish_timeout_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (t->nflight > 0 && !evtimer_pending(t->timer, NULL))
		evtimer_add(t->timer, &tv);
}

/* An event's new state; the count of those marked AGAIN follows. */
static void
mark(struct nats *t, struct flight *f, enum flight_state state)
{
	t->nagain += (state == AGAIN) - (f->state == AGAIN);
	f->state = state;
}

/*
 * Publish again the events in flight that are due: those marked AGAIN
 * once the back-off passed (while publishes fail, backoff_ms, the first
 * goes alone, a probe: the others follow when something is acknowledged),
 * and with scan (publish_timeout passed) those not acknowledged within it.
 * Called with h.mu held.
 */
static void
resend(struct nats *t, int64_t now, int scan)
{
	struct sink *s = t->s;
	int64_t due = now - s->cf->publish_timeout_ms;
	size_t off = t->settled, probes = 0, late = 0;

	for (size_t i = 0; i < t->nflight; i++) {
		struct flight *f = flight(t, i);
		int again = f->state == AGAIN && now >= t->again_ms &&
		    !(t->backoff_ms && probes++ > 0);
		int timed_out = scan && f->state == SENT && f->sent_ms <= due;

		if ((again || timed_out) && hand(t, t->head_n + i, s->q.p + off, f->len - 1) == 0) {
			mark(t, f, SENT);
			f->sent_ms = now;
			s->st->resent++;
			late += timed_out;
		}
		off += f->len;
	}
	if (late > 0)
		log_limited(&s->errlog, LOG_LVL_WARNING, "%s: sink %s: nats %s: %zu events not "
		    "acknowledged in %ld ms; publishing them again", proc.name, s->cf->name,
		    s->where, late, s->cf->publish_timeout_ms);
}

/*
 * Publish what waits: the events in flight that are due again (resend),
 * then new ones from the queue, up to max_pending in flight.  Nothing
 * leaves the queue here: the acknowledgements settle it (on_wake).  The
 * events in flight are walked only when some may be due, not every turn.
 */
static ssize_t
nats_write(struct sink *s, int *wait)
{
	struct nats *t = s->state;
	int64_t now = clock_ms();
	size_t before;

	*wait = 1;
	pthread_mutex_lock(&t->h.mu);
	before = t->h.out.len;
	if (t->scan || (t->nagain > 0 && now >= t->again_ms))
		resend(t, now, t->scan);
	t->scan = 0;
	while (t->nflight < (size_t)s->cf->max_pending && t->sent_off < s->q.len) {
		size_t n = sink_unit_len(s, s->q.p + t->sent_off, s->q.len - t->sent_off);
		struct flight *f = flight(t, t->nflight);

		if (hand(t, t->head_n + t->nflight, s->q.p + t->sent_off, n - 1) == -1)
			break;
		f->len = n;
		f->state = SENT;
		f->sent_ms = now;
		t->nflight++;
		t->sent_off += n;
	}
	if (t->h.out.len > before)
		pthread_cond_signal(&t->h.cv);
	pthread_mutex_unlock(&t->h.mu);
	arm_timeout(t);
	return 0;
}

/* publish_timeout passed since the timer was set: look for events not acknowledged. */
static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct nats *t = arg;

	(void)fd;
	(void)what;
	t->scan = 1;
	sink_writable(t->s);
	arm_timeout(t);
}

static void
refused(struct nats *t, const char *why)
{
	struct sink *s = t->s;

	s->st->dropped++;
	log_limited(&t->refusals, LOG_LVL_ERROR, "%s: sink %s: nats %s: stream %s refused an "
	    "event: %s; event dropped (%llu dropped so far)", proc.name, s->cf->name, s->where,
	    s->cf->stream, why, (unsigned long long)s->st->dropped);
}

enum { WRITE_NOW = 1, BACK_OFF = 2 };

/* One piece of news; returns what the loop does next: WRITE_NOW, BACK_OFF or nothing. */
static int
apply(struct nats *t, const struct news *nw, const char *why)
{
	struct flight *f;
	int marked = 0;

	if (nw->what == NEWS_DOWN) {
		t->down_ms = clock_ms();
		return 0;
	}
	if (nw->what == NEWS_UP) {
		for (size_t i = 0; i < t->nflight; i++)
			if ((f = flight(t, i))->state == SENT && f->sent_ms <= t->down_ms) {
				mark(t, f, AGAIN);
				marked = WRITE_NOW;
			}
		return marked;
	}
	if (nw->n < t->head_n || nw->n - t->head_n >= t->nflight)
		return 0;		/* settled already */
	f = flight(t, nw->n - t->head_n);
	if (f->state == DONE)
		return 0;
	switch (nw->what) {
	case NEWS_DUPLICATE:
		t->s->st->duplicates++;
		/* FALLTHROUGH */
	case NEWS_ACK:
		mark(t, f, DONE);
		if (t->backoff_ms == 0)
			return 0;
		t->backoff_ms = 0;	/* the probe passed: the others follow */
		return WRITE_NOW;
	case NEWS_REFUSED:
		mark(t, f, DONE);
		refused(t, why);
		return 0;
	default:
		mark(t, f, AGAIN);
		return BACK_OFF;
	}
}

/*
 * Events marked AGAIN wait: 50 ms doubling to 1 s while publishes keep
 * failing (no stream takes the subject, a leader election), with jitter;
 * then one probes (nats_write).  A cluster's elections take seconds.
 */
static void
back_off(struct nats *t, const char *why)
{
	struct sink *s = t->s;
	long ms = t->backoff_ms ? 2 * t->backoff_ms : 50;

	t->backoff_ms = ms > 1000 ? 1000 : ms;
	ms = t->backoff_ms * 4 / 5 + random() % (t->backoff_ms * 2 / 5 + 1);
	t->again_ms = clock_ms() + ms;
	s->st->errors++;
	log_limited(&s->errlog, LOG_LVL_ERROR, "%s: sink %s: nats %s: %s; publishing again in "
	    "%ld ms", proc.name, s->cf->name, s->where, why, ms);
	sink_retry_soon(s, ms);
}

/*
 * The head passes the settled events at the front, and they leave the
 * queue: once they are at least a quarter of what stays behind them, or
 * that is under 64 KiB, since leaving moves the rest of the queue to its
 * front (memmove); so a long queue is moved in large steps, and a short
 * one (the usual case, and the end of every backlog) at once.
 */
static void
settle(struct nats *t)
{
	struct sink *s = t->s;
	size_t n = 0;

	while (t->nflight > 0 && flight(t, 0)->state == DONE) {
		n += flight(t, 0)->len;
		t->first = (t->first + 1) % s->cf->max_pending;
		t->nflight--;
		t->head_n++;
	}
	if (n > 0) {
		evtimer_del(t->timer);
		arm_timeout(t);
	}
	t->settled += n;
	n = s->q.len - t->settled;
	if (t->settled == 0 || (t->settled < n / 4 && n > 64 * 1024))
		return;
	t->sent_off -= t->settled;
	n = t->settled;
	t->settled = 0;
	sink_consumed(s, n);
}

static void
log_notes(struct nats *t, const struct obuf *notes)
{
	for (size_t off = 0; off < notes->len; ) {
		const char *lf = memchr(notes->p + off, '\n', notes->len - off);
		int len = (int)(lf - notes->p - off - 1);

		if (notes->p[off] - '0' == LOG_LVL_ERROR)
			log_limited(&t->notelog, LOG_LVL_ERROR, "%s: sink %s: nats: %.*s", proc.name,
			    t->s->cf->name, len, notes->p + off + 1);
		else
			log_at(notes->p[off] - '0', "%s: sink %s: nats: %.*s", proc.name,
			    t->s->cf->name, len, notes->p + off + 1);
		off += len + 2;
	}
}

/* News from the threads: outcomes settle events; a transient failure backs off. */
static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct nats *t = arg;
	struct handoff *h = &t->h;
	struct news *news;
	struct obuf notes;
	char why[NOTE_MAX];
	size_t n;
	uint64_t count;
	int next = 0;

	(void)what;
	while (read(fd, &count, sizeof(count)) == -1 && errno == EINTR)
		;
	pthread_mutex_lock(&h->mu);
	news = h->news;
	n = h->nnews;
	notes = h->notes;
	memcpy(why, h->why, sizeof(why));
	h->news = NULL;
	h->nnews = h->cap = 0;
	h->notes = (struct obuf){ NULL, 0, 0 };
	pthread_mutex_unlock(&h->mu);
	log_notes(t, &notes);
	obuf_free(&notes);
	for (size_t i = 0; i < n; i++)
		next |= apply(t, &news[i], why);
	free(news);
	settle(t);
	if (next & BACK_OFF)
		back_off(t, why);
	else if (next & WRITE_NOW || (t->sent_off < t->s->q.len &&
	    t->nflight < (size_t)t->s->cf->max_pending))
		sink_writable(t->s);
}

static int
nats_start(struct sink *s)
{
	struct nats *t = calloc(1, sizeof(*t));
	unsigned char rnd[8];

	if (t == NULL)
		return -1;
	t->s = s;
	s->state = t;
	snprintf(s->where, sizeof(s->where), "%s%s", s->cf->servers.v[0],
	    s->cf->servers.n > 1 ? "..." : "");
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -1;
	for (int i = 0; i < 8; i++)
		snprintf(t->tag + 2 * i, 3, "%02x", rnd[i]);
	snprintf(t->inbox, sizeof(t->inbox), "_INBOX.%s", t->tag);
	if ((t->ring = calloc(s->cf->max_pending, sizeof(*t->ring))) == NULL ||
	    (t->h.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		return -1;
	pthread_mutex_init(&t->h.mu, NULL);
	pthread_cond_init(&t->h.cv, NULL);
	t->wake = event_new(proc.base, t->h.efd, EV_READ | EV_PERSIST, on_wake, t);
	t->timer = evtimer_new(proc.base, on_timeout, t);
	if (t->wake == NULL || t->timer == NULL || event_add(t->wake, NULL) == -1)
		return -1;
	if (nats_Open(-1) != NATS_OK) {
		log_error("%s: sink %s: the NATS library cannot start: %s", proc.name, s->cf->name,
		    nats_GetLastError(NULL));
		return -1;
	}
	if ((errno = pthread_create(&t->thread, NULL, publisher, t)) != 0)
		return -1;
	t->started = 1;
	return 0;
}

static void
nats_close(struct sink *s)
{
	struct nats *t = s->state;

	if (t == NULL)
		return;
	if (t->started) {
		wake_publisher(&t->h, &t->h.stop);
		pthread_join(t->thread, NULL);
	}
	if (t->wake)
		event_free(t->wake);
	if (t->timer)
		event_free(t->timer);
	if (t->h.loose) {	/* libnats may still call back: t stays */
		log_warnx("%s: sink %s: nats: the client library did not finish closing",
		    proc.name, s->cf->name);
		s->state = NULL;
		return;
	}
	if (t->h.efd > 0)
		close(t->h.efd);
	obuf_free(&t->h.out);
	obuf_free(&t->h.notes);
	free(t->h.news);
	free(t->ring);
	free(t);
	s->state = NULL;
}

const struct sink_driver sink_nats_driver = {
	"nats", nats_start, nats_write, NULL, NULL, nats_close
};
