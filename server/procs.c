/*
 * procs: the worker processes' life cycle, as a mechanism (see procs.h).
 */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backoff.h"
#include "channel.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "procs.h"

static struct slot_table	 table;
static struct event_base	*base;
static struct procs_hooks	 hooks;
static uint64_t			 restarts;	/* workers respawned after dying */

static void	on_respawn(evutil_socket_t, short, void *);

void
procs_init(struct event_base *b, const struct procs_hooks *h)
{
	base = b;
	hooks = *h;
	slot_table_init(&table);
}

struct slot_table *
procs_table(void)
{
	return &table;
}

uint64_t
procs_restarts(void)
{
	return restarts;
}

/* The worker is gone: its channel, and the inbox nobody reads any more. */
static void
close_channel(struct slot *s)
{
	if (s->inbox != -1) {
		close(s->inbox);
		s->inbox = -1;
	}
	if (s->chan_ev) {
		event_free(s->chan_ev);
		s->chan_ev = NULL;
	}
	if (s->chan != -1) {
		close(s->chan);
		s->chan = -1;
	}
}

static void
release(struct slot *s)
{
	close_channel(s);
	if (s->timer)
		event_free(s->timer);
	cfg_unref(s->cf);
	slot_release(s);
}

static void
on_channel(evutil_socket_t fd, short what, void *arg)
{
	struct slot *s = arg;
	char buf[64];
	ssize_t n;

	(void)what;
	n = read(fd, buf, sizeof(buf));
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* The worker is exiting; its exit status comes with SIGCHLD. */
		event_del(s->chan_ev);
		return;
	}
	if (memchr(buf, CHAN_READY, n) && s->state == SLOT_STARTING) {
		s->state = SLOT_RUNNING;
		log_debug("worker %d (pid %ld, generation %u) accepting", s->id, (long)s->pid, s->gen);
		hooks.changed(s->gen);
	}
}

/* In a new worker: the other workers' channels and inboxes are the master's. */
void
procs_close_in_child(void)
{
	for (int i = 0; i < SLOT_MAX; i++) {
		if (table.s[i].chan != -1)
			close(table.s[i].chan);
		if (table.s[i].inbox != -1)
			close(table.s[i].inbox);
	}
}

/*
 * A worker's two socketpairs: the channel (commands both ways) and the
 * inbox (connections handed to it; the master keeps only the sending end,
 * non-blocking for the draining workers it passes it to).
 */
static int
socketpairs(struct slot *s, int chan[2], int inbox[2])
{
	int big = 1 << 20;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) == -1) {
		log_warn("worker %d: socketpair", s->id);
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, inbox) == -1) {
		log_warn("worker %d: socketpair", s->id);
		close(chan[0]);
		close(chan[1]);
		return -1;
	}
	evutil_make_socket_nonblocking(inbox[0]);
	setsockopt(inbox[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));	/* fewer waits */
	return 0;
}

static int
spawn(struct slot *s)
{
	int sv[2], ib[2];
	sigset_t all, old;
	pid_t pid;

	if (hooks.prepare(s) == -1 || socketpairs(s, sv, ib) == -1)
		return -1;
	/* No signal may run the master's handlers in the child. */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	if ((pid = fork()) == 0) {
		for (int sig = 1; sig < NSIG; sig++)
			if (sig != SIGKILL && sig != SIGSTOP)
				signal(sig, SIG_DFL);
		close(sv[0]);
		close(ib[0]);
		procs_close_in_child();
		sigprocmask(SIG_SETMASK, &old, NULL);
		hooks.run(s, sv[1], ib[1]);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	close(ib[1]);
	if (pid == -1) {
		log_warn("worker %d: fork", s->id);
		close(sv[0]);
		close(ib[0]);
		return -1;
	}
	evutil_make_socket_nonblocking(sv[0]);
	s->pid = pid;
	s->chan = sv[0];
	s->inbox = ib[0];
	s->chan_ev = event_new(base, sv[0], EV_READ | EV_PERSIST, on_channel, s);
	event_add(s->chan_ev, NULL);
	s->state = SLOT_STARTING;
	s->started_ms = clock_ms();
	log_info("worker %d started: pid %ld, generation %u", s->id, (long)pid, s->gen);
	return 0;
}

/*
 * Respawn after the slot's back-off, counted from now: the loop's cached
 * time, taken before this turn's callbacks ran, would make the wait shorter
 * than the one just announced.
 */
static void
schedule_respawn(struct slot *s)
{
	struct timeval tv = { s->backoff_ms / 1000, (s->backoff_ms % 1000) * 1000 };

	s->state = SLOT_WAITING;
	event_base_update_cache_time(base);
	evtimer_add(s->timer, &tv);
}

static void
on_respawn(evutil_socket_t fd, short what, void *arg)
{
	struct slot *s = arg;

	(void)fd;
	(void)what;
	if (spawn(s) == -1) {
		s->backoff_ms = backoff_next(s->backoff_ms, 0);
		schedule_respawn(s);
	}
}

/* Worker id of generation gen in a new slot, with cf (referenced): forked now, or after a back-off. */
struct slot *
procs_start(unsigned gen, int id, struct config *cf)
{
	struct slot *s = slot_alloc(&table, id, gen);

	if (s == NULL) {
		log_warnx("worker %d: the slot table is full (%d)", id, SLOT_MAX);
		return NULL;
	}
	s->cf = cfg_ref(cf);
	s->timer = evtimer_new(base, on_respawn, s);
	if (spawn(s) == -1)
		schedule_respawn(s);
	return s;
}

static int
send_cmd(struct slot *s, char cmd)
{
	int sig = cmd == CHAN_DRAIN ? SIGQUIT : cmd == CHAN_STOP ? SIGTERM : SIGUSR1;

	if (s->chan != -1 && write(s->chan, &cmd, 1) == 1)
		return 0;
	if (kill(s->pid, sig) == -1 && errno != ESRCH) {
		log_warn("worker %d (pid %ld): kill", s->id, (long)s->pid);
		return -1;
	}
	return 0;
}

/*
 * Tell a worker to drain.  A slot without a process is simply released.
 * The worker enforces its timeout itself; it is killed only if it is still
 * alive a little after that.
 */
void
procs_drain(struct slot *s, long timeout_ms)
{
	if (s->pid == 0) {
		release(s);
		return;
	}
	if (s->state != SLOT_DRAINING)
		send_cmd(s, CHAN_DRAIN);
	s->state = SLOT_DRAINING;
	s->deadline_ms = clock_ms() + timeout_ms + 2000;
}

void
procs_stop(struct slot *s)
{
	if (s->pid == 0) {
		release(s);
		return;
	}
	send_cmd(s, CHAN_STOP);
	s->state = SLOT_DRAINING;
	s->deadline_ms = clock_ms() + 1000;
}

void
procs_broadcast(char cmd)
{
	for (int i = 0; i < SLOT_MAX; i++) {
		struct slot *s = &table.s[i];

		if (s->pid > 0)
			send_cmd(s, cmd);
	}
}

/* The inboxes of gen's workers that accept, at most max of them. */
int
procs_inboxes(unsigned gen, int *fds, int max)
{
	int n = 0;

	for (int i = 0; i < SLOT_MAX && n < max; i++) {
		const struct slot *s = &table.s[i];

		if (s->gen == gen && s->state == SLOT_RUNNING && s->inbox != -1)
			fds[n++] = s->inbox;
	}
	return n;
}

/*
 * Tell s, before it drains, where its connections go: copies of n inboxes
 * (CHAN_MAX_INBOXES at most) and the listener addresses (struct addr) they
 * serve.  Nothing is sent when there is nowhere to go.
 */
void
procs_offer(struct slot *s, const int *inboxes, int n, const void *listeners, size_t len)
{
	char msg[CHAN_MSG_MAX] = { CHAN_HANDOVER };

	if (n > CHAN_MAX_INBOXES)
		n = CHAN_MAX_INBOXES;
	if (s->chan == -1 || n == 0 || len == 0 || 1 + len > sizeof(msg))
		return;
	memcpy(msg + 1, listeners, len);
	if (fdmsg_send(s->chan, msg, 1 + len, inboxes, n) == -1)
		log_warn("worker %d (pid %ld): cannot pass the hand-over inboxes", s->id,
		    (long)s->pid);
}

static void
describe_exit(const struct slot *s, int status, char *buf, size_t size)
{
	if (hooks.cause(s, status, buf, size))
		return;
	if (WIFEXITED(status))
		snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "killed by signal %d (%s)%s", WTERMSIG(status),
		    strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, size, "stopped with status %#x", status);
}

/* A draining worker's exit is expected; any other is respawned, but exit 2 means "never". */
static void
worker_exited(struct slot *s, int status)
{
	long uptime = clock_ms() - s->started_ms, pid = s->pid;
	char how[256];

	describe_exit(s, status, how, sizeof(how));
	close_channel(s);
	hooks.exited(s, status);
	s->pid = 0;
	if (s->state == SLOT_DRAINING) {
		log_info("worker %d (pid %ld, generation %u) %s", s->id, pid, s->gen, how);
		release(s);
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_FATAL) {
		log_error("worker %d (pid %ld, generation %u) %s: a fatal error, not respawned",
		    s->id, pid, s->gen, how);
		s->state = SLOT_FAILED;
	} else {
		s->backoff_ms = backoff_next(s->backoff_ms, uptime);
		restarts++;
		log_warnx("worker %d (pid %ld, generation %u) %s unexpectedly after %ld ms; "
		    "respawning in %ld ms", s->id, pid, s->gen, how, uptime, s->backoff_ms);
		schedule_respawn(s);
	}
	hooks.changed(s->gen);
}

void
procs_reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct slot *s = slot_by_pid(&table, pid);

		if (s != NULL)
			worker_exited(s, status);
	}
	hooks.reaped();
}

/* Draining workers past their deadline are killed. */
void
procs_kill_late(void)
{
	long now = clock_ms();

	for (int i = 0; i < SLOT_MAX; i++) {
		struct slot *s = &table.s[i];

		if (s->state == SLOT_DRAINING && s->pid > 0 && s->deadline_ms && now > s->deadline_ms) {
			log_warnx("worker %d (pid %ld) did not exit in time; killing it", s->id,
			    (long)s->pid);
			kill(s->pid, SIGKILL);
			s->deadline_ms = 0;
		}
	}
}
