/*
 * bench_rate: --rate records a second spread over --connections, open loop.
 *
 * Record i of the run (from 0) goes out on connection i % C as that
 * connection's record i / C, and is due at t0 + i / R, whatever became of
 * the records before it: a server that stalls does not slow the schedule
 * down, the records wait in the connections' buffers instead.  Latency
 * measured from the due time (by --follow) so includes the time a record
 * waited in the sender, as it would for a real client: no coordinated
 * omission.  The parent knows the schedule too, which is how it finds a
 * record's due time from its c= and s= alone.
 *
 * This sender owns the connections k * P + index (ids from --id-base).  It walks its
 * part of the schedule in time order, writes each record as soon as it is
 * due, and sleeps until the next one (at least a --tick).  The run ends with the
 * schedule (--count records, or those due within --duration); the records
 * still buffered then get FINISH_TIMEOUT to be written.
 */
#include <err.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"

#define TIMER_KEY	UINT64_MAX

struct rate {
	struct sender	*s;
	int		 ep;
	struct waker	 w;
	int		*fds;
	struct out	*outs;
	char		*watching;	/* EPOLLOUT is on: the socket was full */
	size_t		*dirty;		/* connections with records to write */
	size_t		 n, ndirty;
	uint64_t	 total;		/* records in the whole schedule */
	uint64_t	 seq;		/* next record: number seq ... */
	size_t		 k;		/* ... on connection slot k */
	double		 next_due;
	int		 done;		/* the schedule is over */
	double		 last_write;
};

/* Records in the schedule: --count, or as many as are due within --duration. */
static uint64_t
schedule_total(const struct opts *o)
{
	uint64_t total = o->count ? o->count : UINT64_MAX;
	double d = ceil(o->duration * o->rate);

	if (o->duration > 0 && d < (double)total)
		total = (uint64_t)d;
	return total;
}

static void
watch(struct rate *r, size_t k, int on)
{
	struct epoll_event ev = { .events = EPOLLRDHUP | (on ? EPOLLOUT : 0), .data.u64 = k };

	if (r->watching[k] != on)
		epoll_ctl(r->ep, EPOLL_CTL_MOD, r->fds[k], &ev);
	r->watching[k] = on;
}

static void
drop(struct rate *r, size_t k)
{
	epoll_ctl(r->ep, EPOLL_CTL_DEL, r->fds[k], NULL);
	net_close(r->fds[k]);
	r->fds[k] = -1;
}

static void
flush(struct rate *r, size_t k)
{
	struct result *res = &r->s->res;
	ssize_t w;

	if (r->fds[k] < 0)
		return;
	if ((w = out_write(&r->outs[k], r->fds[k])) == -1) {
		if (errno == ECONNRESET || errno == EPIPE)
			res->resets++;
		else
			warn("write");
		drop(r, k);
		return;
	}
	if (w > 0) {
		res->bytes += w;
		r->last_write = now();
	}
	watch(r, k, out_pending(&r->outs[k]));
}

/* Put every record due by t into its connection's buffer. */
static void
take_due(struct rate *r, double t)
{
	const struct opts *o = r->s->o;
	uint64_t i;

	while (!r->done) {
		i = r->seq * o->conns + sender_id(r->s, r->k) - o->id_base;
		if (i >= r->total || stopping) {
			r->done = 1;
			break;
		}
		r->next_due = r->s->t0 + i / o->rate;
		if (r->next_due > t)
			break;
		if (r->fds[r->k] >= 0) {
			if (r->outs[r->k].len == r->outs[r->k].off)
				r->dirty[r->ndirty++] = r->k;
			if (out_add(&r->outs[r->k]) == -1)
				err(EX_FAILED, "out_add");
		}
		if (++r->k == r->n) {
			r->k = 0;
			r->seq++;
		}
	}
}

static void
on_event(struct rate *r, uint64_t key, uint32_t events)
{
	if (key == TIMER_KEY) {
		waker_fired(&r->w);
		return;
	}
	if (r->fds[key] < 0)
		return;
	if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && net_closed(r->fds[key], &r->s->res)) {
		drop(r, key);
		return;
	}
	if (events & EPOLLOUT)
		flush(r, key);
}

static int
pending(const struct rate *r)
{
	for (size_t k = 0; k < r->n; k++)
		if (r->fds[k] >= 0 && out_pending(&r->outs[k]))
			return 1;
	return 0;
}

static void
loop(struct rate *r)
{
	struct epoll_event evs[256];
	double t, end_by = INFINITY;
	int nev;

	for (;;) {
		t = now();
		take_due(r, t);
		for (size_t j = 0; j < r->ndirty; j++)
			flush(r, r->dirty[j]);
		r->ndirty = 0;
		if (r->done && end_by == INFINITY)
			end_by = t + FINISH_TIMEOUT;
		if (r->done && (t >= end_by || !pending(r)))
			break;
		if (!r->done)
			waker_at(&r->w, r->next_due, t);
		nev = epoll_wait(r->ep, evs, 256, r->done ? 100 : -1);
		for (int i = 0; i < nev; i++)
			on_event(r, evs[i].data.u64, evs[i].events);
	}
}

static void
setup(struct rate *r)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TIMER_KEY };

	if ((r->ep = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    waker_init(&r->w, r->s->o->tick) == -1 ||
	    (r->fds = calloc(r->n, sizeof(*r->fds))) == NULL ||
	    (r->outs = calloc(r->n, sizeof(*r->outs))) == NULL ||
	    (r->watching = calloc(r->n, 1)) == NULL ||
	    (r->dirty = calloc(r->n, sizeof(*r->dirty))) == NULL)
		err(EX_FAILED, "rate");
	epoll_ctl(r->ep, EPOLL_CTL_ADD, r->w.fd, &ev);
	net_connect_all(r->s, r->fds, r->n, now() + CONNECT_TIMEOUT);
	for (size_t k = 0; k < r->n; k++) {
		if (out_init(&r->outs[k], sender_id(r->s, k), 0) == -1)
			err(EX_FAILED, "out_init");
		if (r->fds[k] < 0)
			continue;
		ev.events = EPOLLRDHUP;
		ev.data.u64 = k;
		epoll_ctl(r->ep, EPOLL_CTL_ADD, r->fds[k], &ev);
	}
}

int
rate_run(struct sender *s)
{
	struct rate r = { .s = s, .n = sender_conns(s), .total = schedule_total(s->o) };
	uint64_t sent;

	setup(&r);
	if (sender_ready(s) == -1)
		return -1;
	r.last_write = s->t0;
	loop(&r);
	s->res.t_end = r.last_write;
	for (size_t k = 0; k < r.n; k++) {
		if (r.fds[k] >= 0)
			net_close(r.fds[k]);
		sent = out_sent(&r.outs[k]);
		s->res.records += sent;
		s->res.unsent += r.outs[k].seq - sent;
		sender_set_sent(s, k, sent);
		out_free(&r.outs[k]);
	}
	close(r.w.fd);
	close(r.ep);
	free(r.fds);
	free(r.outs);
	free(r.watching);
	free(r.dirty);
	return 0;
}
