/*
 * bench_idle: hold --connections idle connections for --duration.
 *
 * The connections are opened CONNECT_INFLIGHT at a time per process, from
 * the --sources addresses in turn.  When every connect of every sender has
 * ended, the parent prints "idle: N established" on standard error: the
 * moment to measure the server's memory.  The connections are then held,
 * sending nothing, until --duration has passed since the start, and every
 * one the server closes (or resets) meanwhile is counted.
 */
#include <err.h>
#include <math.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"

static size_t
watch_all(int ep, const int *fds, size_t n)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
	size_t live = 0;

	for (size_t k = 0; k < n; k++) {
		if (fds[k] < 0)
			continue;
		ev.data.u64 = k;
		epoll_ctl(ep, EPOLL_CTL_ADD, fds[k], &ev);
		live++;
	}
	return live;
}

static void
hold(struct sender *s, int ep, int *fds, size_t live, double deadline)
{
	struct epoll_event evs[256];
	double t;
	int nev;
	size_t k;

	while (live > 0 && !stopping && (t = now()) < deadline) {
		nev = epoll_wait(ep, evs, 256, (int)fmin(1000, (deadline - t) * 1e3 + 1));
		for (int i = 0; i < nev; i++) {
			k = evs[i].data.u64;
			if (!net_closed(fds[k], &s->res))
				continue;
			epoll_ctl(ep, EPOLL_CTL_DEL, fds[k], NULL);
			net_close(fds[k]);
			fds[k] = -1;
			live--;
		}
	}
}

int
idle_run(struct sender *s)
{
	size_t n = sender_conns(s);
	double deadline;
	int ep, *fds;

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    (fds = calloc(n + 1, sizeof(*fds))) == NULL)
		err(EX_FAILED, "idle");
	if (sender_ready(s) == -1)
		return -1;
	deadline = s->t0 + s->o->duration;
	net_connect_all(s, fds, n, deadline);
	if (sender_idle(s) == -1)
		return -1;
	hold(s, ep, fds, watch_all(ep, fds, n), deadline);
	s->res.t_end = now();
	for (size_t k = 0; k < n; k++)
		if (fds[k] >= 0)
			net_close(fds[k]);
	close(ep);
	free(fds);
	return 0;
}
