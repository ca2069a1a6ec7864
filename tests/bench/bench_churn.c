/*
 * bench_churn: a new connection for every --per-conn records, --rate new
 * connections a second, open loop.
 *
 * Connection j of the run (from 0; its id is --id-base + j) is due at
 * t0 + j / R; this sender starts the ones with j % P == index, until
 * --duration has passed (the connections due and not started then are not
 * made: the rate achieved shows them).  At most
 * --connections / P of them are open at once: a due connection waits for a
 * free slot, and the rate achieved shows it.  A connection connects, writes its records
 * (at once when connect(2) has finished the handshake, as on loopback),
 * shuts down its sending side (FIN) and waits for the server's EOF before
 * it closes, so that the server has read every record when the connection
 * counts as completed; a server that does not close within EOF_TIMEOUT is
 * counted and the connection closed anyway.  The client closes first, so
 * its side keeps the TIME_WAIT; on loopback Linux reuses those ports for
 * new connects (net.ipv4.tcp_tw_reuse), and --sources gives more of them.
 */
#include <err.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define TIMER_KEY	UINT64_MAX

enum { FREE, CONNECTING, ESTABLISHED, SENDING, CLOSING };

struct slot {
	int		 fd;
	int		 state;
	int		 watched;	/* in the epoll set */
	uint64_t	 m;		/* this sender's connection number */
	double		 since;		/* when the current state began */
	struct out	 o;
};

struct churn {
	struct sender	*s;
	int		 ep;
	struct waker	 w;
	struct slot	*slots;
	size_t		 nslots, open;
	size_t		*freel;
	size_t		 nfree;
	uint64_t	 total;		/* connections in the whole run */
	uint64_t	 next;		/* this sender's next connection number */
	double		 last, last_scan;	/* last write or close; last expiry scan */
};

/* Connections in the run: enough for --count, at most those due in --duration. */
uint64_t
churn_total(const struct opts *o)
{
	uint64_t total = o->count ? (o->count + o->per_conn - 1) / o->per_conn : UINT64_MAX;
	double d = ceil(o->duration * o->rate);

	if (o->duration > 0 && d < (double)total)
		total = (uint64_t)d;
	return total;
}

/* Records for connection j: --per-conn, fewer for the last when --count says so. */
static uint64_t
records_for(const struct opts *o, uint64_t j)
{
	uint64_t first = j * o->per_conn;

	if (o->count && o->count - first < o->per_conn)
		return o->count - first;
	return o->per_conn;
}

static void
release(struct churn *c, struct slot *sl)
{
	uint64_t sent = out_sent(&sl->o);

	sender_set_sent(c->s, sl->m, sent);
	c->s->res.records += sent;
	if (sl->state != CONNECTING)
		c->s->res.unsent += sl->o.seq - sent;
	net_close(sl->fd);		/* which takes it out of the epoll set */
	c->last = now();
	sl->state = FREE;
	c->freel[c->nfree++] = sl - c->slots;
	c->open--;
}

static void
set_state(struct churn *c, struct slot *sl, int state, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = sl - c->slots };

	epoll_ctl(c->ep, sl->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, sl->fd, &ev);
	sl->watched = 1;
	sl->state = state;
	sl->since = now();
}

static void	send_records(struct churn *, struct slot *);

/* --tls: the handshake (the connect with it) goes a step further. */
static void
handshake(struct churn *c, struct slot *sl)
{
	switch (tls_step(sl->fd, &c->s->res)) {
	case 0:
		set_state(c, sl, CONNECTING, tls_events(sl->fd));
		break;
	case 1:
		c->s->res.established++;
		sl->state = ESTABLISHED;
		send_records(c, sl);
		break;
	default:
		net_connect_error(&c->s->res, errno);
		release(c, sl);
	}
}

static void
start(struct churn *c, uint64_t m)
{
	struct sender *s = c->s;
	uint32_t id = sender_id(s, m);
	struct slot *sl;
	int fd;

	if ((fd = net_connect(id)) == -1) {
		net_connect_error(&s->res, errno);
		sender_set_sent(s, m, 0);
		return;
	}
	sl = &c->slots[c->freel[--c->nfree]];
	sl->fd = fd;
	sl->m = m;
	sl->state = CONNECTING;
	sl->watched = 0;
	sl->since = now();
	out_reset(&sl->o, id);
	for (uint64_t i = records_for(s->o, id - s->o->id_base); i > 0; i--)
		if (out_add(&sl->o) == -1)
			err(EX_FAILED, "out_add");
	c->open++;
	if (tls_on()) {
		tls_start(fd);
		handshake(c, sl);
		return;
	}
	/*
	 * On loopback the handshake is over when connect(2) returns: write at
	 * once, and wait for EPOLLOUT only when the socket is not ready yet.
	 * Five system calls fewer per connection, where the client, not the
	 * server, is what limits the rate.
	 */
	send_records(c, sl);
}

static void
send_records(struct churn *c, struct slot *sl)
{
	struct result *r = &c->s->res;
	ssize_t w = out_write(&sl->o, sl->fd);
	int was = sl->state;

	if (sl->state == CONNECTING) {
		if (w == 0) {		/* EAGAIN: the handshake is not over */
			set_state(c, sl, CONNECTING, EPOLLOUT);
			return;
		}
		if (w == -1) {
			net_connect_error(r, errno);
			release(c, sl);
			return;
		}
		r->established++;
		sl->state = SENDING;
	}
	if (w == -1) {
		if (errno == ECONNRESET || errno == EPIPE)
			r->resets++;
		else
			r->server_closed++;
		release(c, sl);
		return;
	}
	if (w > 0) {
		r->bytes += w;
		c->last = now();
	}
	if (out_pending(&sl->o)) {
		if (was != SENDING)
			set_state(c, sl, SENDING, EPOLLOUT | EPOLLRDHUP);
		return;
	}
	net_shutdown(sl->fd);
	set_state(c, sl, CLOSING, EPOLLIN | EPOLLRDHUP);
}

/* Writable while connecting: connected, or the connect failed. */
static void
on_connected(struct churn *c, struct slot *sl)
{
	if (net_finish(sl->fd) == -1) {
		net_connect_error(&c->s->res, errno);
		release(c, sl);
		return;
	}
	send_records(c, sl);
}

/* Readable while closing: the server's EOF (done) or a reset. */
static void
on_closing(struct churn *c, struct slot *sl)
{
	char buf[512];
	ssize_t n = net_read(sl->fd, buf, sizeof(buf));

	if (n > 0 || (n == -1 && errno == EAGAIN))
		return;
	if (n == 0)
		c->s->res.completed++;
	else
		c->s->res.resets++;
	release(c, sl);
}

static void
on_event(struct churn *c, uint64_t key, uint32_t events)
{
	struct slot *sl = &c->slots[key];
	if (key == TIMER_KEY) {
		waker_fired(&c->w);
		return;
	}
	if (sl->state == CONNECTING && tls_has(sl->fd))
		handshake(c, sl);
	else if (sl->state == CONNECTING)
		on_connected(c, sl);
	else if (sl->state == CLOSING)
		on_closing(c, sl);
	else if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && net_closed(sl->fd, &c->s->res))
		release(c, sl);
	else if (events & EPOLLOUT)
		send_records(c, sl);
}

/* Connects and EOFs that take too long; checked a few times a second. */
static void
expire(struct churn *c, double t)
{
	struct slot *sl;

	if (t - c->last_scan < 0.1)
		return;
	c->last_scan = t;
	for (size_t i = 0; i < c->nslots; i++) {
		sl = &c->slots[i];
		if (sl->state == CONNECTING && t - sl->since >= CONNECT_TIMEOUT) {
			net_connect_error(&c->s->res, ETIMEDOUT);
			release(c, sl);
		} else if (sl->state == CLOSING && t - sl->since >= EOF_TIMEOUT) {
			c->s->res.eof_timeouts++;
			release(c, sl);
		}
	}
}

/* Start the connections that are due and have a slot; -1 when all are started. */
static int
start_due(struct churn *c, double t, double *next_due)
{
	const struct sender *s = c->s;
	uint64_t j;

	for (;;) {
		j = sender_id(s, c->next) - s->o->id_base;
		/* at --duration no more start, however many were due: a slow server is not waited for */
		if (j >= c->total || stopping || (s->o->duration > 0 && t >= s->t0 + s->o->duration))
			return -1;
		*next_due = s->t0 + j / s->o->rate;
		if (*next_due > t || c->nfree == 0)
			return 0;
		start(c, c->next++);
	}
}

static void
loop(struct churn *c)
{
	struct epoll_event evs[256];
	double t, next_due = 0;
	int nev, more = 1;

	while (more || c->open > 0) {
		t = now();
		if (more)
			more = start_due(c, t, &next_due) == 0;
		expire(c, t);
		if (!more && c->open == 0)
			break;
		if (more && c->nfree > 0)
			waker_at(&c->w, next_due, t);
		nev = epoll_wait(c->ep, evs, 256, 100);
		for (int i = 0; i < nev; i++)
			on_event(c, evs[i].data.u64, evs[i].events);
	}
}

static void
setup(struct churn *c)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TIMER_KEY };
	const struct opts *o = c->s->o;

	c->nslots = o->conns / c->s->nprocs + (c->s->index < o->conns % c->s->nprocs);
	if ((c->ep = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    waker_init(&c->w, c->s->o->tick) == -1 ||
	    (c->slots = calloc(c->nslots, sizeof(*c->slots))) == NULL ||
	    (c->freel = calloc(c->nslots, sizeof(*c->freel))) == NULL)
		err(EX_FAILED, "churn");
	epoll_ctl(c->ep, EPOLL_CTL_ADD, c->w.fd, &ev);
	for (size_t i = 0; i < c->nslots; i++) {
		if (out_init(&c->slots[i].o, 0, 0) == -1)
			err(EX_FAILED, "out_init");
		c->freel[c->nfree++] = c->nslots - 1 - i;
	}
}

int
churn_run(struct sender *s)
{
	struct churn c = { .s = s, .total = churn_total(s->o) };

	setup(&c);
	if (sender_ready(s) == -1)
		return -1;
	c.last = s->t0;
	loop(&c);
	s->res.t_end = c.last;
	for (size_t i = 0; i < c.nslots; i++)
		out_free(&c.slots[i].o);
	close(c.w.fd);
	close(c.ep);
	free(c.slots);
	free(c.freel);
	return 0;
}
