/*
 * bench_relp_run: --relp, blast and rate over RELP sessions, as a RELP
 * client such as rsyslog's omrelp runs them.
 *
 * Each connection keeps at most --window records in flight.  In blast it
 * makes a new record whenever an answer frees a place in the window; in
 * rate the schedule of bench_rate.c puts each record in its connection's
 * queue when it is due, whatever the state of the connection, and the
 * queue waits for the window.  A record counts as delivered when the
 * server answers "200 OK"; any other answer is counted as rejected and
 * the record is not sent again.
 *
 * A session that ends (the server's serverclose on a reload or a stop, an
 * EOF, a reset) is opened again after a back-off of RECONNECT_MIN doubling
 * to RECONNECT_MAX, and every record not answered is sent again.  A
 * connection that cannot be opened again within RECONNECT_GIVEUP is given
 * up, its records counted as unacknowledged.  At the end, a connection
 * waits for the answers to all its records (FINISH_TIMEOUT at most, across
 * reconnects), sends "close" and waits for the server's answer or EOF.
 * The connections are made and their sessions opened before the start.
 */
#include <err.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"

#define TIMER_KEY	UINT64_MAX

enum { C_NEW, C_DOWN, C_CONNECTING, C_OPEN, C_CLOSING, C_DONE, C_DEAD };

struct rconn {
	int		 fd;
	int		 state;
	int		 dirty;		/* in the list of connections to serve */
	int		 sessions;
	uint32_t	 events;	/* what epoll watches */
	double		 down_since;	/* the session ended; reconnecting since */
	double		 retry_at, backoff;
	struct relp	 r;
};

struct rl {
	struct sender	*s;
	int		 ep, rate;
	struct waker	 w;
	struct rconn	*c;
	size_t		*dirty;
	size_t		 n, ndirty, nlive, ndown;
	uint64_t	 total, seq;	/* rate: the schedule, as in bench_rate.c */
	size_t		 k;
	double		 next_due;
	int		 started;	/* t0 has come */
	int		 scheduled;	/* no more records to make */
	int		 ending;
	double		 end_by;
};

static void
mark(struct rl *l, size_t k)
{
	if (!l->c[k].dirty) {
		l->c[k].dirty = 1;
		l->dirty[l->ndirty++] = k;
	}
}

static void
watch(struct rl *l, size_t k, uint32_t events)
{
	struct rconn *c = &l->c[k];
	struct epoll_event ev = { .events = events, .data.u64 = k };

	if (c->events != events && epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev) == -1)
		warn("epoll_ctl");
	c->events = events;
}

/* Every change of state goes through here, to keep the counts. */
static void
settle(struct rl *l, struct rconn *c, int state)
{
	if (state == C_DOWN && c->state != C_DOWN && c->state != C_CONNECTING)
		c->down_since = now();
	l->ndown += (state == C_DOWN) - (c->state == C_DOWN);
	l->nlive -= (state == C_DONE || state == C_DEAD) && c->state != C_DONE &&
	    c->state != C_DEAD;
	c->state = state;
}

/* The session is over: close it, and reconnect unless the connection is closing. */
static void
down(struct rl *l, size_t k)
{
	struct rconn *c = &l->c[k];
	double t = now();

	epoll_ctl(l->ep, EPOLL_CTL_DEL, c->fd, NULL);
	net_close(c->fd);
	c->fd = -1;
	if (c->state == C_CLOSING && c->r.count == 0) {
		settle(l, c, C_DONE);
		return;
	}
	if (c->r.refused) {
		l->s->res.refused_open++;
		settle(l, c, C_DEAD);
		return;
	}
	settle(l, c, C_DOWN);
	mark(l, k);
	c->retry_at = t + c->backoff;
	c->backoff = fmin(c->backoff * 2, RECONNECT_MAX);
}

static void
start_connect(struct rl *l, size_t k)
{
	struct rconn *c = &l->c[k];
	struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = k };

	if ((c->fd = net_connect(c->r.id)) == -1) {
		net_connect_error(&l->s->res, errno);
		c->retry_at = now() + c->backoff;
		c->backoff = fmin(c->backoff * 2, RECONNECT_MAX);
		return;
	}
	epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &ev);
	c->events = EPOLLOUT;
	settle(l, c, C_CONNECTING);
}

static void
on_connected(struct rl *l, size_t k)
{
	struct rconn *c = &l->c[k];

	if (net_finish(c->fd) == -1) {
		net_connect_error(&l->s->res, errno);
		down(l, k);
		return;
	}
	l->s->res.established++;
	if (c->sessions++ > 0)
		l->s->res.reconnects++;
	if (relp_session(&c->r) == -1)
		err(EX_FAILED, "relp");
	settle(l, c, C_OPEN);
	mark(l, k);
}

static void
flush(struct rl *l, size_t k)
{
	struct rconn *c = &l->c[k];
	ssize_t w = relp_write(&c->r, c->fd);

	if (w == -1) {
		if (errno == ECONNRESET || errno == EPIPE)
			l->s->res.resets++;
		else
			warn("write");
		down(l, k);
		return;
	}
	l->s->res.bytes += w;
	watch(l, k, EPOLLIN | EPOLLRDHUP | (relp_pending(&c->r) ? EPOLLOUT : 0));
}

/* Blast: fill the window with new records while the budget lasts. */
static void
top_up(struct rl *l, struct rconn *c, double t)
{
	while (!l->ending && l->s->budget > 0 && c->r.count < l->s->o->window) {
		if (relp_add(&c->r, t) == -1)
			err(EX_FAILED, "relp_add");
		l->s->budget--;
	}
	if (l->s->budget == 0)
		l->scheduled = 1;
}

static void
serve(struct rl *l, size_t k, double t)
{
	struct rconn *c = &l->c[k];

	c->dirty = 0;
	if (c->state == C_DOWN && l->ending && c->r.count == 0) {
		settle(l, c, C_DONE);
		return;
	}
	if (c->state == C_DOWN && t >= c->retry_at) {
		start_connect(l, k);
		return;
	}
	if (c->state != C_OPEN)
		return;
	if (!l->rate && l->started)
		top_up(l, c, t);
	l->s->res.resends += relp_frame(&c->r, l->s->o->window);
	if (l->ending && c->r.count == 0 && c->r.opened) {
		relp_close(&c->r);
		settle(l, c, C_CLOSING);
	}
	if (relp_pending(&c->r))
		flush(l, k);
}

static void
on_readable(struct rl *l, size_t k)
{
	struct rconn *c = &l->c[k];

	if (relp_read(&c->r, c->fd, &l->s->res, now()) == -1 ||
	    (c->state == C_CLOSING && c->r.closed)) {
		down(l, k);
		return;
	}
	if (c->r.opened)
		c->backoff = RECONNECT_MIN;
	mark(l, k);
}

static void
on_event(struct rl *l, uint64_t key, uint32_t events)
{
	struct rconn *c;
	if (key == TIMER_KEY) {
		waker_fired(&l->w);
		return;
	}
	c = &l->c[key];
	if (c->fd < 0)
		return;
	if (c->state == C_CONNECTING) {
		on_connected(l, key);
		return;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		on_readable(l, key);
	if (c->fd >= 0 && (events & EPOLLOUT))
		flush(l, key);
}

/* Rate: put every record due by t in its connection's queue. */
static void
take_due(struct rl *l, double t)
{
	const struct opts *o = l->s->o;
	struct rconn *c;
	uint64_t i;

	while (!l->scheduled) {
		i = l->seq * o->conns + sender_id(l->s, l->k) - o->id_base;
		if (i >= l->total || stopping) {
			l->scheduled = 1;
			break;
		}
		l->next_due = l->s->t0 + i / o->rate;
		if (l->next_due > t)
			break;
		c = &l->c[l->k];
		if (c->state != C_DEAD) {
			if (relp_add(&c->r, l->next_due) == -1)
				err(EX_FAILED, "relp_add");
			mark(l, l->k);
		}
		if (++l->k == l->n) {
			l->k = 0;
			l->seq++;
		}
	}
}

/* Connections down for too long are given up; the others are due a retry. */
static double
retries(struct rl *l, double t)
{
	double next = INFINITY;

	for (size_t k = 0; k < l->n && l->ndown > 0; k++) {
		struct rconn *c = &l->c[k];

		if (c->state != C_DOWN)
			continue;
		if (t - c->down_since >= RECONNECT_GIVEUP)
			settle(l, c, C_DEAD);
		else if (c->retry_at <= t)
			mark(l, k);
		else
			next = fmin(next, c->retry_at);
	}
	return next;
}

static void
begin_end(struct rl *l, double t)
{
	l->ending = 1;
	l->end_by = t + FINISH_TIMEOUT;
	for (size_t k = 0; k < l->n; k++)
		mark(l, k);
}

static void
loop(struct rl *l, double deadline)
{
	struct epoll_event evs[256];
	double t, wake;
	int nev;

	while (l->nlive > 0) {
		t = now();
		if (l->rate)
			take_due(l, t);
		if (!l->ending && (t >= deadline || stopping || l->scheduled))
			begin_end(l, t);
		if (l->ending && t >= l->end_by)
			break;
		wake = retries(l, t);
		for (size_t j = 0; j < l->ndirty; j++)
			serve(l, l->dirty[j], t);
		l->ndirty = 0;
		if (l->rate && !l->scheduled)
			wake = fmin(wake, l->next_due);
		if (!l->ending)
			wake = fmin(wake, deadline);
		if (wake < INFINITY)
			waker_at(&l->w, wake, t);
		nev = epoll_wait(l->ep, evs, 256, 100);
		for (int i = 0; i < nev; i++)
			on_event(l, evs[i].data.u64, evs[i].events);
	}
}

static void
setup(struct rl *l)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TIMER_KEY };

	if ((l->ep = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    waker_init(&l->w, l->s->o->tick) == -1 ||
	    (l->c = calloc(l->n, sizeof(*l->c))) == NULL ||
	    (l->dirty = calloc(l->n, sizeof(*l->dirty))) == NULL)
		err(EX_FAILED, "relp");
	epoll_ctl(l->ep, EPOLL_CTL_ADD, l->w.fd, &ev);
	for (size_t k = 0; k < l->n; k++) {
		if (relp_init(&l->c[k].r, sender_id(l->s, k)) == -1)
			err(EX_FAILED, "relp_init");
		l->c[k].fd = -1;
		l->c[k].backoff = RECONNECT_MIN;
	}
	l->nlive = l->n;
}

/* Connect everything before the start, as blast and rate do. */
static void
connect_all(struct rl *l)
{
	int *fds = calloc(l->n, sizeof(*fds));
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };

	if (fds == NULL)
		err(EX_FAILED, "relp");
	net_connect_all(l->s, fds, l->n, now() + CONNECT_TIMEOUT);
	l->s->res.established = 0;
	for (size_t k = 0; k < l->n; k++) {
		struct rconn *c = &l->c[k];

		if ((c->fd = fds[k]) < 0) {
			settle(l, c, C_DEAD);
			continue;
		}
		ev.data.u64 = k;
		epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &ev);
		c->events = ev.events;
		settle(l, c, C_CONNECTING);
	}
	free(fds);
}

static int
all_open(const struct rl *l)
{
	for (size_t k = 0; k < l->n; k++)
		if (!l->c[k].r.opened && l->c[k].state != C_DEAD)
			return 0;
	return 1;
}

/*
 * Open the sessions before the start, so that the schedule does not begin
 * with a burst of opens; a session not open by the deadline opens later.
 */
static void
open_all(struct rl *l, double deadline)
{
	struct epoll_event evs[256];
	int nev;

	for (size_t k = 0; k < l->n; k++)
		if (l->c[k].state == C_CONNECTING)
			on_connected(l, k);
	while (!all_open(l) && !stopping && now() < deadline) {
		for (size_t j = 0; j < l->ndirty; j++)
			serve(l, l->dirty[j], now());
		l->ndirty = 0;
		nev = epoll_wait(l->ep, evs, 256, 100);
		for (int i = 0; i < nev; i++)
			on_event(l, evs[i].data.u64, evs[i].events);
	}
}

static void
finish(struct rl *l)
{
	struct result *res = &l->s->res;

	for (size_t k = 0; k < l->n; k++) {
		struct rconn *c = &l->c[k];
		uint64_t answered = relp_answered(&c->r);

		if (c->fd >= 0)
			net_close(c->fd);
		sender_set_sent(l->s, k, answered);
		res->records += answered;
		res->unacked += c->r.count;
		relp_free(&c->r);
	}
	close(l->w.fd);
	close(l->ep);
	free(l->c);
	free(l->dirty);
}

int
relp_run(struct sender *s)
{
	const struct opts *o = s->o;
	struct rl l = { .s = s, .n = sender_conns(s), .rate = o->mode == MODE_RATE };
	uint64_t count = o->count ? o->count : UINT64_MAX;

	if (l.rate)
		l.total = o->duration > 0 && ceil(o->duration * o->rate) < (double)count ?
		    (uint64_t)ceil(o->duration * o->rate) : count;
	setup(&l);
	connect_all(&l);
	open_all(&l, now() + CONNECT_TIMEOUT);
	if (sender_ready(s) == -1)
		return -1;
	l.started = 1;
	for (size_t k = 0; k < l.n; k++)
		mark(&l, k);
	loop(&l, o->duration ? s->t0 + o->duration : INFINITY);
	if (s->res.t_end == 0)
		s->res.t_end = s->t0;
	finish(&l);
	return 0;
}
