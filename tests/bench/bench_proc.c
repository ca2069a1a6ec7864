/*
 * bench_proc: the sender processes and their protocol with the parent.
 *
 * The parent forks the senders, each with a socketpair to it:
 *
 *   sender -> parent  READY   its connections are made (blast, rate)
 *   parent -> sender  START   the common start time t0 (CLOCK_MONOTONIC,
 *                             which is the same clock in every process)
 *   sender -> parent  IDLE    (idle mode) every connect has ended
 *   sender -> parent  RESULT  its counters, then the records it sent on
 *                             each of its connections
 *
 * A sender dies with its parent (PR_SET_PDEATHSIG).
 */
#include <err.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

enum { MSG_READY = 1, MSG_START, MSG_IDLE, MSG_RESULT };

struct msg {
	uint32_t	 type;
	uint32_t	 pad;
	uint64_t	 a, b;
	double		 t;
};

static int (*const run[])(struct sender *) = {
	[MODE_BLAST] = blast_run,
	[MODE_RATE] = rate_run,
	[MODE_CHURN] = churn_run,
	[MODE_IDLE] = idle_run,
	[MODE_SLOWLORIS] = slowloris_run,
};

static int
write_full(int fd, const void *p, size_t n)
{
	const char *c = p;
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, c, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= w;
	}
	return 0;
}

static int
read_full(int fd, void *p, size_t n)
{
	char *c = p;
	ssize_t r;

	while (n > 0) {
		if ((r = read(fd, c, n)) <= 0) {
			if (r == -1 && errno == EINTR)
				continue;
			return -1;
		}
		c += r;
		n -= r;
	}
	return 0;
}

static int
send_msg(int fd, uint32_t type, uint64_t a, uint64_t b, double t)
{
	struct msg m = { .type = type, .a = a, .b = b, .t = t };

	return write_full(fd, &m, sizeof(m));
}

/* How many of the --connections this sender holds. */
unsigned
sender_conns(const struct sender *s)
{
	if (s->index >= s->o->conns)
		return 0;
	return (s->o->conns - s->index + s->nprocs - 1) / s->nprocs;
}

/* The id of this sender's connection slot k: unique across senders. */
uint32_t
sender_id(const struct sender *s, uint64_t k)
{
	return s->o->id_base + k * s->nprocs + s->index;
}

/* Tell the parent this sender is ready; wait for the start time. */
int
sender_ready(struct sender *s)
{
	struct msg m;

	if (send_msg(s->ctl, MSG_READY, 0, 0, 0) == -1 ||
	    read_full(s->ctl, &m, sizeof(m)) == -1 || m.type != MSG_START) {
		warnx("sender %u: lost the parent", s->index);
		return -1;
	}
	s->t0 = m.t;
	return 0;
}

int
sender_idle(struct sender *s)
{
	return send_msg(s->ctl, MSG_IDLE, s->res.established, s->res.connect_errors, 0);
}

int
sender_set_sent(struct sender *s, uint64_t k, uint64_t n)
{
	uint64_t *p;
	size_t cap;

	if (k >= s->capsent) {
		cap = s->capsent ? s->capsent : 1024;
		while (cap <= k)
			cap *= 2;
		if ((p = realloc(s->sent, cap * sizeof(*p))) == NULL)
			return -1;
		memset(p + s->capsent, 0, (cap - s->capsent) * sizeof(*p));
		s->sent = p;
		s->capsent = cap;
	}
	s->sent[k] = n;
	if (k >= s->nsent)
		s->nsent = k + 1;
	return 0;
}

static void
sender_main(const struct opts *o, unsigned index, unsigned nprocs, int ctl, uint64_t budget)
{
	struct sender s = { .o = o, .index = index, .nprocs = nprocs, .ctl = ctl,
	    .budget = budget };
	int rc;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	rc = o->relp ? relp_run(&s) : run[o->mode](&s);
	if (send_msg(ctl, MSG_RESULT, s.nsent, 0, 0) == -1 ||
	    write_full(ctl, &s.res, sizeof(s.res)) == -1 ||
	    write_full(ctl, s.sent, s.nsent * sizeof(*s.sent)) == -1)
		rc = -1;
	_exit(rc == 0 ? 0 : EX_FAILED);
}

/* Fork n senders into c; blast's --count is shared out among them. */
int
procs_fork(const struct opts *o, unsigned n, struct child *c)
{
	int sv[2];

	for (unsigned i = 0; i < n; i++) {
		uint64_t budget = o->count ? o->count / n + (i < o->count % n) : UINT64_MAX;

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
			warn("socketpair");
			return -1;
		}
		if ((c[i].pid = fork()) == -1) {
			warn("fork");
			return -1;
		}
		if (c[i].pid == 0) {
			for (unsigned j = 0; j < i; j++)
				close(c[j].fd);
			close(sv[0]);
			sender_main(o, i, n, sv[1], budget);
		}
		close(sv[1]);
		c[i].fd = sv[0];
	}
	return 0;
}

int
procs_start(struct child *c, unsigned n, double t0)
{
	for (unsigned i = 0; i < n; i++)
		if (send_msg(c[i].fd, MSG_START, 0, 0, t0) == -1) {
			warn("sender %u", i);
			return -1;
		}
	return 0;
}

static int
read_result(struct child *c, uint64_t nsent)
{
	if (read_full(c->fd, &c->res, sizeof(c->res)) == -1)
		return -1;
	if (nsent && (c->sent = calloc(nsent, sizeof(*c->sent))) == NULL)
		return -1;
	c->nsent = nsent;
	if (read_full(c->fd, c->sent, nsent * sizeof(*c->sent)) == -1)
		return -1;
	c->done = 1;
	return 0;
}

/* Read one message from a sender; -1 when it is gone without a result. */
int
procs_message(struct child *c)
{
	struct msg m;

	if (read_full(c->fd, &m, sizeof(m)) == -1)
		return -1;
	switch (m.type) {
	case MSG_READY:
		c->ready = 1;
		return 0;
	case MSG_IDLE:
		c->idle = 1;
		c->idle_established = m.a;
		c->idle_errors = m.b;
		return 0;
	case MSG_RESULT:
		return read_result(c, m.a);
	}
	return -1;
}

void
procs_kill(struct child *c, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (c[i].pid > 0 && !c[i].done)
			kill(c[i].pid, SIGTERM);
}

/* Wait for every sender; -1 when one failed. */
int
procs_reap(struct child *c, unsigned n)
{
	int status, rc = 0;

	/* A sender still waiting for START reads EOF and ends. */
	for (unsigned i = 0; i < n; i++)
		if (c[i].pid > 0)
			close(c[i].fd);
	for (unsigned i = 0; i < n; i++) {
		if (c[i].pid <= 0)
			continue;
		while (waitpid(c[i].pid, &status, 0) == -1 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !c[i].done) {
			warnx("sender %u (pid %d) failed", i, (int)c[i].pid);
			rc = -1;
		}
	}
	return rc;
}
