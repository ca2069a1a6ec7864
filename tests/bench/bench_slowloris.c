/*
 * bench_slowloris: --connections connections that each send one byte
 * every --interval seconds.
 *
 * The bytes are those of ordinary records (--shape, --size, --octet), so
 * a record would complete after --size intervals; a server with a record
 * timeout closes the connection long before.  Byte b of the run goes to
 * connection b % N at start + b * interval / N: the connections' bytes are
 * spread evenly over each interval.  The sender counts the connections the
 * server closes (or resets) and, for each, the time from its first byte to
 * the close; it ends at --duration or when the server has closed them all.
 */
#include <err.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"

struct loris {
	int		 fd;
	uint32_t	 id;
	uint64_t	 seq;		/* the record being trickled */
	uint64_t	 rng;		/* its size state, before it */
	size_t		 pos;		/* next byte of it */
	double		 first;		/* time of the first byte; 0: none yet */
};

struct slow {
	struct sender	*s;
	int		 ep;
	struct loris	*c;
	size_t		 n, live;
	char		*rec;		/* one record, rendered again for each byte */
};

static void
closed(struct slow *sl, struct loris *c)
{
	if (c->first > 0)
		hist_add(&sl->s->res.close_time, (uint64_t)((now() - c->first) * 1e6));
	epoll_ctl(sl->ep, EPOLL_CTL_DEL, c->fd, NULL);
	net_close(c->fd);
	c->fd = -1;
	sl->live--;
}

static void
send_byte(struct slow *sl, struct loris *c)
{
	uint64_t rng = c->rng;
	size_t len = rec_put(sl->rec, c->id, c->seq, &rng);
	ssize_t w = net_write(c->fd, sl->rec + c->pos, 1);

	if (w == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		if (errno == ECONNRESET || errno == EPIPE)
			sl->s->res.resets++;
		else
			sl->s->res.server_closed++;
		closed(sl, c);
		return;
	}
	sl->s->res.bytes++;
	if (c->first == 0)
		c->first = now();
	if (++c->pos == len) {
		sl->s->res.records++;
		c->seq++;
		c->rng = rng;
		c->pos = 0;
	}
}

static void
setup(struct slow *sl, int *fds)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };

	for (size_t k = 0; k < sl->n; k++) {
		sl->c[k].fd = fds[k];
		sl->c[k].id = sender_id(sl->s, k);
		sl->c[k].rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)sl->c[k].id << 1 | 1);
		if (fds[k] < 0)
			continue;
		ev.data.u64 = k;
		epoll_ctl(sl->ep, EPOLL_CTL_ADD, fds[k], &ev);
		sl->live++;
	}
}

static void
loop(struct slow *sl, double deadline)
{
	struct epoll_event evs[256];
	double start = now(), step = sl->s->o->interval / sl->n, t, next;
	uint64_t b = 0;
	int nev;

	while (sl->live > 0 && !stopping && (t = now()) < deadline) {
		for (; (next = start + b * step) <= t; b++)
			if (sl->c[b % sl->n].fd >= 0)
				send_byte(sl, &sl->c[b % sl->n]);
		nev = epoll_wait(sl->ep, evs, 256, (int)ceil((fmin(next, deadline) - t) * 1e3));
		for (int i = 0; i < nev; i++) {
			struct loris *c = &sl->c[evs[i].data.u64];

			if (c->fd >= 0 && net_closed(c->fd, &sl->s->res))
				closed(sl, c);
		}
	}
}

int
slowloris_run(struct sender *s)
{
	struct slow sl = { .s = s, .n = sender_conns(s) };
	double deadline;
	int *fds;

	if ((sl.ep = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    (fds = calloc(sl.n + 1, sizeof(*fds))) == NULL ||
	    (sl.c = calloc(sl.n + 1, sizeof(*sl.c))) == NULL ||
	    (sl.rec = malloc(rec_frame_max())) == NULL)
		err(EX_FAILED, "slowloris");
	if (sender_ready(s) == -1)
		return -1;
	deadline = s->t0 + s->o->duration;
	net_connect_all(s, fds, sl.n, deadline);
	setup(&sl, fds);
	if (sl.n > 0)
		loop(&sl, deadline);
	s->res.t_end = now();
	for (size_t k = 0; k < sl.n; k++)
		if (sl.c[k].fd >= 0)
			net_close(sl.c[k].fd);
	close(sl.ep);
	free(fds);
	free(sl.c);
	free(sl.rec);
	return 0;
}
