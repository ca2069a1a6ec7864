/*
 * bench_blast: as many records as the server takes, over --connections
 * connections.
 *
 * Each connection has a large buffer of formatted records and refills it
 * only when the socket has taken all of it, so most write(2) calls move a
 * whole buffer (CHUNK_MAX bytes, less with many connections).  The sender
 * stops at --duration, when its share of --count is formatted, or when
 * nothing could be written for STALL_TIMEOUT; the records begun are then
 * written out (FINISH_TIMEOUT at most), so every record sent is whole.
 */
#include <err.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"

#define CHUNK_MAX	(256 * 1024)
#define CHUNK_MIN	(16 * 1024)
#define BUFFER_MEM	(16 << 20)	/* bytes of buffers per process */

struct blast {
	struct sender	*s;
	int		 ep;
	int		*fds;
	struct out	*outs;
	size_t		 n, live;
	double		 last_write;
	int		 ending;
};

static size_t
chunk_size(size_t n)
{
	size_t c = n ? BUFFER_MEM / n : CHUNK_MAX;

	return c > CHUNK_MAX ? CHUNK_MAX : c < CHUNK_MIN ? CHUNK_MIN : c;
}

/* Refill an empty buffer from this sender's budget of records. */
static void
fill(struct blast *b, struct out *o)
{
	while (b->s->budget > 0 && o->cap - o->len >= rec_frame_max()) {
		if (out_add(o) == -1)
			err(EX_FAILED, "out_add");
		b->s->budget--;
	}
}

static void
drop(struct blast *b, size_t k)
{
	epoll_ctl(b->ep, EPOLL_CTL_DEL, b->fds[k], NULL);
	net_close(b->fds[k]);
	b->fds[k] = -1;
	b->live--;
}

static void
on_event(struct blast *b, size_t k, uint32_t events)
{
	struct out *o = &b->outs[k];
	struct result *r = &b->s->res;
	ssize_t w;

	if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && net_closed(b->fds[k], r)) {
		drop(b, k);
		return;
	}
	if (!out_pending(o) && !b->ending)
		fill(b, o);
	if (!out_pending(o)) {
		drop(b, k);	/* its share is sent */
		return;
	}
	if ((w = out_write(o, b->fds[k])) == -1) {
		if (errno == ECONNRESET || errno == EPIPE)
			r->resets++;
		else
			warn("write");
		drop(b, k);
		return;
	}
	if (w > 0) {
		r->bytes += w;
		b->last_write = now();
	}
}

static int
setup(struct blast *b)
{
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLRDHUP };
	size_t chunk = chunk_size(b->n);

	if ((b->ep = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    (b->fds = calloc(b->n, sizeof(*b->fds))) == NULL ||
	    (b->outs = calloc(b->n, sizeof(*b->outs))) == NULL)
		err(EX_FAILED, "blast");
	net_connect_all(b->s, b->fds, b->n, now() + CONNECT_TIMEOUT);
	for (size_t k = 0; k < b->n; k++) {
		if (out_init(&b->outs[k], sender_id(b->s, k), chunk) == -1)
			err(EX_FAILED, "out_init");
		if (b->fds[k] < 0)
			continue;
		ev.data.u64 = k;
		epoll_ctl(b->ep, EPOLL_CTL_ADD, b->fds[k], &ev);
		b->live++;
	}
	return 0;
}

static void
loop(struct blast *b, double deadline)
{
	struct epoll_event evs[256];
	double t, end_by = INFINITY;
	int nev;

	while (b->live > 0) {
		t = now();
		if (!b->ending && (t >= deadline || stopping)) {
			b->ending = 1;
			end_by = t + FINISH_TIMEOUT;
		}
		if (t >= end_by)
			break;
		if (t - b->last_write >= STALL_TIMEOUT) {
			b->s->res.stalled = 1;
			break;
		}
		nev = epoll_wait(b->ep, evs, 256,
		    b->ending ? 100 : (int)fmin(100, (deadline - t) * 1e3 + 1));
		for (int i = 0; i < nev; i++)
			on_event(b, evs[i].data.u64, evs[i].events);
	}
}

int
blast_run(struct sender *s)
{
	struct blast b = { .s = s, .n = sender_conns(s) };
	uint64_t sent;

	setup(&b);
	if (sender_ready(s) == -1)
		return -1;
	b.last_write = now();
	loop(&b, s->o->duration ? s->t0 + s->o->duration : INFINITY);
	s->res.t_end = b.last_write;
	for (size_t k = 0; k < b.n; k++) {
		if (b.fds[k] >= 0)
			net_close(b.fds[k]);
		sent = out_sent(&b.outs[k]);
		s->res.records += sent;
		s->res.unsent += b.outs[k].seq - sent;
		sender_set_sent(s, k, sent);
		out_free(&b.outs[k]);
	}
	close(b.ep);
	free(b.fds);
	free(b.outs);
	return 0;
}
