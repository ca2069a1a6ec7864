/*
 * sink: the queue core of one worker's sinks: batching, retries with
 * back-off (and jitter), back-pressure, the marks acknowledgements wait
 * for, and the counters.  Writing is the drivers' (driver.h).
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "driver.h"
#include "log.h"
#include "proc.h"
#include "sink.h"
#include "spool.h"

#define RETRY_MIN_MS	100
#define RETRY_MAX_MS	5000
#define SPILL_RETRY_MS	200		/* a full or failing spool is tried again */
#define REFILL		(2 * SINK_BATCH)	/* bytes read from the spool ahead of the driver */
#define DRAIN_ROUNDS	8		/* refills and writes in one flush */


static struct sink	 sinks[CFG_MAX_SINKS];
static int		 nsinks;
static int		 nblocked;
static struct sink_hooks hooks;

static void	on_timer(evutil_socket_t, short, void *);
static void	flush(struct sink *);

static int
spooling(const struct sink *s)
{
	return s->cf->spool.enabled;
}

/* The bytes a full queue is about: taken and not yet spooled, or not yet written. */
static size_t
backlog(const struct sink *s)
{
	return spooling(s) ? s->in.len : s->q.len;
}

/*
 * Write in ms, or with ms = 0 at the end of this turn of the loop: made
 * active now, the timer's callback runs after the reads this turn brought
 * (libevent runs the callbacks of one priority in the order they became
 * active), without the extra epoll_wait(2) a zero timeout would cost.
 */
static void
arm_timer(struct event *ev, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (ms > 0) {
		evtimer_add(ev, &tv);
		return;
	}
	evtimer_del(ev);
	event_active(ev, EV_TIMEOUT, 1);
}

static void
arm(struct sink *s, long ms)
{
	arm_timer(s->timer, ms);
}

static void
update_blocked(struct sink *s)
{
	int over = s->cf->overflow == OVERFLOW_BLOCK &&
	    backlog(s) >= (size_t)(s->blocked ? s->cf->queue / 2 : s->cf->queue);

	if (over == s->blocked)
		return;
	s->blocked = over;
	nblocked += over ? 1 : -1;
	if (over)
		log_limited(&s->droplog, LOG_LVL_WARNING, "%s: sink %s: queue full (%ld bytes); "
		    "not reading from clients until it drains", proc.name, s->cf->name, s->cf->queue);
	if (hooks.reading)
		hooks.reading(nblocked == 0);
}

/*
 * A queue that grew while the disk was slow or full gives its memory back
 * once it is written out; a batch-sized buffer stays for the next events.
 */
static void
release_backlog(struct sink *s)
{
	if (s->q.cap > 4 * SINK_BATCH)
		obuf_free(&s->q);
}

/* Units to write (or to read from the spool first), or (sync = always) written units to sync. */
static int
pending(const struct sink *s)
{
	return s->q.len > 0 || (s->cf->sync == SYNC_ALWAYS && s->unsynced) ||
	    (s->spool && !s->closing && spool_unread(s->spool));
}

static int
sync_now(struct sink *s)
{
	if (s->drv->sync == NULL || s->drv->sync(s) == 0)
		s->unsynced = 0;
	return s->unsynced ? -1 : 0;
}

/* The next retry: doubling from RETRY_MIN_MS to RETRY_MAX_MS, +-20% so that workers spread. */
static long
next_retry(long ms)
{
	ms = ms ? ms * 2 : RETRY_MIN_MS;
	if (ms > RETRY_MAX_MS)
		ms = RETRY_MAX_MS;
	return ms * 4 / 5 + random() % (ms * 2 / 5 + 1);
}

/* n bytes of whole units at the head of the queue are written: they leave it. */
static void
consume(struct sink *s, size_t n)
{
	int always = s->cf->sync == SYNC_ALWAYS;
	uint64_t done = s->done;

	if (n > 0 && s->spool)
		spool_delivered(s->spool, n);	/* written: it leaves the spool */
	if (n > 0) {
		s->st->bytes += n;
		obuf_consume(&s->q, n);
		s->unsynced = 1;
		if (s->failing)
			log_notice("%s: sink %s: writing again", proc.name, s->cf->name);
		s->failing = 0;
	}
	if (spooling(s))
		return;		/* written means spooled: spill() says so */
	if (always && s->unsynced)
		sync_now(s);
	if (!always || !s->unsynced)
		s->done = s->st->bytes;
	if (s->done != done && hooks.progressed)
		hooks.progressed();	/* acknowledgements may go out */
}

/* A write failed: keep the queue and try again after a back-off. */
static void
retry_later(struct sink *s)
{
	s->st->errors++;
	s->failing = 1;
	s->retry_ms = next_retry(s->retry_ms);
	if (errno)
		log_limited(&s->errlog, LOG_LVL_ERROR, "%s: sink %s: write %s: %s; %zu bytes "
		    "queued, retrying in %ld ms", proc.name, s->cf->name, s->where,
		    strerror(errno), s->q.len, s->retry_ms);
	arm(s, s->retry_ms);
}

static void
spool_more(void *arg)
{
	struct sink *s = arg;

	if (s->retry_ms == 0)
		flush(s);
}

/* The spool could not take the units in: they wait there, and the spool is tried again. */
static void
spill_later(struct sink *s, const char *why)
{
	s->st->errors++;
	log_limited(&s->errlog, LOG_LVL_ERROR, "%s: sink %s: spool %s: %s; %zu bytes wait in "
	    "memory", proc.name, s->cf->name, s->cf->spool.path, why, s->in.len);
	arm_timer(s->spill, SPILL_RETRY_MS);
	update_blocked(s);
}

/*
 * The units taken go to the spool, in one write and (sync = always) one
 * fdatasync, after which they count as written: acknowledgements may go.
 */
static void
spill(struct sink *s)
{
	size_t off = 0;

	if (!spooling(s) || (s->in.len == 0 && s->done == s->spooled))
		return;
	if (s->spool == NULL && (s->spool = spool_open(s->cf, (int)(s - sinks), s->st, spool_more,
	    s)) == NULL) {
		spill_later(s, "cannot be opened");
		return;
	}
	while (off < s->in.len) {
		size_t n = sink_unit_len(s, s->in.p + off, s->in.len - off);

		if (spool_put(s->spool, s->in.p + off, n) == -1)
			break;
		off += n;
	}
	if (off < s->in.len) {
		spool_unput(s->spool);
		spill_later(s, "out of memory");
		return;
	}
	if (spool_write(s->spool) == -1) {
		spill_later(s, errno == EDQUOT ? "full (max_size)" : strerror(errno));
		return;
	}
	s->spooled += s->in.len;
	s->in.len = 0;
	if (s->in.cap > 4 * SINK_BATCH)
		obuf_free(&s->in);
	if (s->cf->spool.sync == SPOOL_SYNC_ALWAYS && spool_sync(s->spool) == -1) {
		spill_later(s, strerror(errno));
		return;
	}
	s->done = s->spooled;
	update_blocked(s);
	if (hooks.progressed)
		hooks.progressed();	/* acknowledgements may go out */
}

/* What the driver sends next, read from the spool while its queue runs low. */
static void
refill(struct sink *s)
{
	if (s->spool && !s->closing && s->q.len < REFILL / 2)
		spool_read(s->spool, &s->q, REFILL - s->q.len);
}

/* Write what is queued; on failure keep it and retry with a back-off. */
static void
flush(struct sink *s)
{
	int wait = 0, rounds = 0;
	ssize_t n = 0;

	spill(s);
	do {
		refill(s);
		if (!pending(s))
			break;
		errno = 0;
		wait = 0;
		n = 0;
		if (s->q.len > 0)
			n = s->drv->write(s, &wait);
		consume(s, n > 0 ? (size_t)n : 0);
	} while (s->spool && n > 0 && !wait && ++rounds < DRAIN_ROUNDS);
	if (!pending(s) || (wait && n != -1) || (s->spool && n > 0)) {
		s->retry_ms = 0;
		if (!pending(s))
			release_backlog(s);
		else if (!wait)
			arm(s, 0);	/* a backlog in the spool: on after this turn */
	} else {
		retry_later(s);
	}
	s->st->queued = s->q.len + s->in.len;
	update_blocked(s);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sink *s = arg;

	(void)fd;
	(void)what;
	flush(s);
	if (s->cf->sync == SYNC_INTERVAL && s->unsynced)
		sync_now(s);
}

/* flush_interval, or the end of the turn, for a sink with a spool: the units taken go to it. */
static void
on_spill(evutil_socket_t fd, short what, void *arg)
{
	struct sink *s = arg;

	(void)fd;
	(void)what;
	spill(s);
	if (s->retry_ms == 0)
		flush(s);
}

/* A driver whose destination confirms later (Redis replies): n bytes are written. */
void
sink_consumed(struct sink *s, size_t n)
{
	consume(s, n);
	refill(s);		/* the driver sends on from what is read now */
	s->st->queued = s->q.len + s->in.len;
	if (s->q.len == 0)
		release_backlog(s);
	update_blocked(s);
}

/* A driver's destination failed outside a write (a connection dropped). */
void
sink_failed(struct sink *s)
{
	if (s->retry_ms == 0)	/* else the retry is armed already */
		retry_later(s);
}

/*
 * The driver cannot write now for a reason that passes by itself (the turn
 * of a pipe that another worker holds): flush again in ms, which is no
 * failure and no back-off.
 */
void
sink_retry_soon(struct sink *s, long ms)
{
	arm(s, ms);
}

/* Length of the whole unit at p (complete: the queue holds whole units only). */
size_t
sink_unit_len(const struct sink *s, const char *p, size_t avail)
{
	size_t n = 0, i = 0;

	if (!s->cf->octet) {
		const char *lf = memchr(p, '\n', avail);

		return lf ? (size_t)(lf - p) + 1 : avail;
	}
	while (i < avail && p[i] >= '0' && p[i] <= '9')
		n = n * 10 + (size_t)(p[i++] - '0');
	return i + 1 + n;	/* "LEN SP MSG" */
}

/* A driver's destination can take more (a socket became writable or connected). */
void
sink_writable(struct sink *s)
{
	if (s->retry_ms == 0)
		flush(s);
}

/* Set up the sinks of cf; hooks tell the worker of back-pressure and progress. */
int
sink_open_all(const struct config *cf, const struct sink_hooks *h)
{
	hooks = *h;
	nsinks = cf->nsinks;
	nblocked = 0;
	for (int i = 0; i < nsinks; i++) {
		struct sink *s = &sinks[i];

		memset(s, 0, sizeof(*s));
		s->cf = &cf->sinks[i];
		s->drv = sink_driver_of(s->cf->type);
		s->st = &proc.stats->sink[i];
		s->timer = evtimer_new(proc.base, on_timer, s);
		if (spooling(s)) {
			s->spill = evtimer_new(proc.base, on_spill, s);
			s->spool = spool_open(s->cf, i, s->st, spool_more, s);	/* else: at spill */
		}
		s->drv->start(s);
		if (s->spool && spool_unread(s->spool))
			arm(s, 0);	/* what workers gone left: sent as soon as the loop runs */
	}
	return 0;
}

/*
 * Room for need more bytes in the queue, or NULL when a "drop" sink is
 * full.  A "block" sink grows past its queue by what one read brings; the
 * worker then stops reading (update_blocked).
 */
struct obuf *
sink_reserve(int idx, size_t need)
{
	struct sink *s = &sinks[idx];
	struct obuf *q = spooling(s) ? &s->in : &s->q;

	/* need is a worst case for any bytes; a queue with room takes one more event */
	if (s->cf->overflow == OVERFLOW_DROP && q->len >= (size_t)s->cf->queue)
		return NULL;
	if (obuf_reserve(q, need) == -1) {
		log_warn("%s: sink %s: queue", proc.name, s->cf->name);
		return NULL;
	}
	return q;
}

/* A line was appended: write a full batch now, else within flush_interval. */
void
sink_commit(int idx)
{
	struct sink *s = &sinks[idx];
	size_t batch = SINK_BATCH < s->cf->queue / 2 ? SINK_BATCH : s->cf->queue / 2;

	s->st->events++;
	s->st->queued = s->q.len + s->in.len;
	if (spooling(s)) {	/* into the spool, whatever the driver does */
		if (s->in.len < batch) {
			if (!evtimer_pending(s->spill, NULL))
				arm_timer(s->spill, s->cf->flush_interval_ms);
			return;
		}
		spill(s);
		if (s->retry_ms == 0)
			arm(s, 0);	/* the driver sends it on at the end of the turn */
		return;
	}
	if (s->retry_ms)
		update_blocked(s);	/* writes fail: the retry timer is armed */
	else if (s->q.len >= batch)
		flush(s);
	else if (!evtimer_pending(s->timer, NULL))
		arm(s, s->cf->flush_interval_ms);
}

/*
 * For acknowledgements: a mark of what is queued now, whether the sink has
 * written (and with sync = always, synced) everything up to a mark, and a
 * request to write without waiting for flush_interval.
 */
uint64_t
sink_mark(int idx)
{
	const struct sink *s = &sinks[idx];

	return spooling(s) ? s->spooled + s->in.len : s->st->bytes + s->q.len;
}

int
sink_reached(int idx, uint64_t mark)
{
	return sinks[idx].done >= mark;
}

/* Write at the end of this turn of the loop, with whatever else it queues. */
void
sink_flush_soon(int idx)
{
	struct sink *s = &sinks[idx];

	if (spooling(s) && s->in.len > 0)
		arm_timer(s->spill, 0);
	else if (s->retry_ms == 0 && pending(s))
		arm(s, 0);
}

/*
 * Write what every sink holds now, without waiting for its batch (a sink
 * whose writes fail keeps its back-off): before a connection is handed to
 * another worker, so that its records read here reach a file first.
 */
void
sink_flush_all(void)
{
	for (int i = 0; i < nsinks; i++)
		if (sinks[i].retry_ms == 0)
			flush(&sinks[i]);
}

void
sink_dropped(int idx)
{
	struct sink *s = &sinks[idx];

	s->st->dropped++;
	log_limited(&s->droplog, LOG_LVL_WARNING, "%s: sink %s: queue full; dropping events "
	    "(%llu so far)", proc.name, s->cf->name, (unsigned long long)s->st->dropped);
}

/* SIGUSR1: files are opened again by name at the next batch. */
void
sink_reopen_all(void)
{
	for (int i = 0; i < nsinks; i++)
		if (sinks[i].drv->reopen)
			sinks[i].drv->reopen(&sinks[i]);
}

/*
 * At exit the loop no longer runs, but a driver may wait for its destination
 * (a socket, Redis' answers): run the loop for a moment.
 */
static void
wait_a_little(void)
{
	struct timeval tv = { 0, RETRY_MIN_MS * 1000 };

	event_base_loopexit(proc.base, &tv);
	event_base_dispatch(proc.base);
}

/*
 * Done at exit: nothing queued; with a spool, nothing outside it (what
 * the driver could not write stays in the spool for the next worker).
 */
static int
settled(const struct sink *s)
{
	if (spooling(s))
		return s->in.len == 0 && (s->q.len == 0 || s->failing);
	return s->q.len == 0;
}

/* Exit: write what is queued, retrying until the deadline; report losses. */
void
sink_close_all(long deadline_ms)
{
	for (int i = 0; i < nsinks; i++) {
		struct sink *s = &sinks[i];
		size_t lost;

		s->closing = 1;
		for (;;) {
			s->retry_ms = 0;
			flush(s);
			if (settled(s) || clock_ms() >= deadline_ms)
				break;
			wait_a_little();
		}
		if ((lost = spooling(s) ? s->in.len : s->q.len) > 0)
			log_error("%s: sink %s: %zu bytes of events could not be written and are lost",
			    proc.name, s->cf->name, lost);
		evtimer_del(s->timer);
		event_free(s->timer);
		if (s->spill) {
			evtimer_del(s->spill);
			event_free(s->spill);
		}
		s->drv->close(s);
		spool_close(s->spool);
		obuf_free(&s->q);
		obuf_free(&s->in);
	}
	nsinks = 0;
}

const struct sink_stats *
sink_stats(int idx)
{
	return sinks[idx].st;
}
