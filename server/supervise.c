/*
 * supervise: the worker processes' life cycle, seen from the master.
 *
 *   fork -> STARTING --ready--> RUNNING --drain/stop--> DRAINING -> reaped, FREE
 *   STARTING/RUNNING --died--> WAITING --back-off--> fork again
 *                    --exit 2-> FAILED (never respawned)
 *
 * Commands go over the slot's channel; when the channel is gone the same
 * command is sent as a signal (QUIT drain, TERM stop, USR1 reopen).
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
#include "conntab.h"
#include "daemon.h"
#include "filelock.h"
#include "listeners.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "pidfile.h"
#include "stats.h"
#include "supervise.h"
#include "worker.h"

_Static_assert(SLOT_MAX <= CT_MAX_OWNERS, "a slot index is a conntab owner");

static void	on_respawn(evutil_socket_t, short, void *);

static void
close_channel(struct slot *s)
{
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

/* What a worker needs to know about a generation becoming ready or failing. */
static void
check_generation(unsigned gen)
{
	unsigned starting = SLOT_MASK(SLOT_STARTING) | SLOT_MASK(SLOT_WAITING);

	if (slot_count(&srv.slots, gen, SLOT_ACTIVE) == 0 &&
	    slot_count(&srv.slots, gen, SLOT_MASK(SLOT_FAILED)) > 0)
		master_generation_failed(gen);
	else if (slot_count(&srv.slots, gen, starting) == 0 &&
	    slot_count(&srv.slots, gen, SLOT_MASK(SLOT_RUNNING)) > 0)
		master_generation_ready(gen);
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
		check_generation(s->gen);
	}
}

/* The child's half of fork: forget the master, become a worker. */
static void __attribute__((noreturn))
become_worker(const struct worker_start *ws, const sigset_t *mask)
{
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	for (int i = 0; i < SLOT_MAX; i++)
		if (srv.slots.s[i].chan != -1)
			close(srv.slots.s[i].chan);
	lsn_close_others(ws->fds, ws->cf->nlisteners);
	metrics_close_in_child();
	pidfile_close_in_child();
	daemon_close_in_child();
	sigprocmask(SIG_SETMASK, mask, NULL);
	worker_main(ws);
}

static int
spawn(struct slot *s)
{
	struct worker_start ws = { .cf = s->cf, .gen = s->gen, .id = s->id,
	    .owner = (int)(s - srv.slots.s) };
	int sv[2];
	sigset_t all, old;
	pid_t pid;

	for (int i = 0; i < s->cf->nlisteners; i++) {
		if ((ws.fds[i] = lsn_fd(&s->cf->listeners[i], s->id)) == -1)
			return -1;
		ws.lsn_ids[i] = lsn_id(&s->cf->listeners[i]);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("worker %d: socketpair", s->id);
		return -1;
	}
	stats_clear(ws.owner);
	/* No signal may run the master's handlers in the child. */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	if ((pid = fork()) == 0) {
		close(sv[0]);
		ws.chan = sv[1];
		become_worker(&ws, &old);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	if (pid == -1) {
		log_warn("worker %d: fork", s->id);
		close(sv[0]);
		return -1;
	}
	evutil_make_socket_nonblocking(sv[0]);
	s->pid = pid;
	s->chan = sv[0];
	s->chan_ev = event_new(srv.base, sv[0], EV_READ | EV_PERSIST, on_channel, s);
	event_add(s->chan_ev, NULL);
	s->state = SLOT_STARTING;
	s->started_ms = clock_ms();
	log_info("worker %d started: pid %ld, generation %u", s->id, (long)pid, s->gen);
	return 0;
}

static void
schedule_respawn(struct slot *s)
{
	struct timeval tv = { s->backoff_ms / 1000, (s->backoff_ms % 1000) * 1000 };

	s->state = SLOT_WAITING;
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

static struct slot *
new_slot(unsigned gen, int id)
{
	struct slot *s = slot_alloc(&srv.slots, id, gen);

	if (s == NULL) {
		log_warnx("worker %d: the slot table is full (%d)", id, SLOT_MAX);
		return NULL;
	}
	s->cf = cfg_ref(srv.cf);
	s->timer = evtimer_new(srv.base, on_respawn, s);
	return s;
}

/* Start n workers of generation gen, with the current config. */
void
sup_start(unsigned gen, int n)
{
	for (int id = 0; id < n; id++) {
		struct slot *s = new_slot(gen, id);

		if (s && spawn(s) == -1)
			schedule_respawn(s);
	}
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
 * The worker enforces shutdown_timeout itself; the master kills it only if
 * it is still alive a little after that.
 */
void
sup_drain(struct slot *s, long timeout_ms)
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
sup_stop(struct slot *s)
{
	if (s->pid == 0) {
		release(s);
		return;
	}
	send_cmd(s, CHAN_STOP);
	s->state = SLOT_DRAINING;
	s->deadline_ms = clock_ms() + 1000;
}

/* A new generation is accepting: every older one drains. */
void
sup_drain_older(unsigned gen)
{
	for (int i = 0; i < SLOT_MAX; i++) {
		struct slot *s = &srv.slots.s[i];

		if (s->state != SLOT_FREE && s->gen < gen)
			sup_drain(s, s->cf->shutdown_timeout_ms);
	}
}

/* A generation that could not start is given up, processes and all. */
void
sup_discard_gen(unsigned gen)
{
	for (int i = 0; i < SLOT_MAX; i++) {
		struct slot *s = &srv.slots.s[i];

		if (s->state != SLOT_FREE && s->gen == gen)
			sup_stop(s);
	}
}

void
sup_broadcast(char cmd)
{
	for (int i = 0; i < SLOT_MAX; i++) {
		struct slot *s = &srv.slots.s[i];

		if (s->pid > 0)
			send_cmd(s, cmd);
	}
}

/* TTIN and TTOU: one worker more or fewer in the newest generation. */
void
sup_resize(int delta)
{
	struct slot *s;

	if (delta > 0) {
		if (srv.nworkers >= CFG_MAX_WORKERS) {
			log_warnx("workers: already at the maximum of %d", CFG_MAX_WORKERS);
			return;
		}
		if ((s = new_slot(srv.gen, srv.nworkers)) == NULL)
			return;
		srv.nworkers++;
		if (spawn(s) == -1)
			schedule_respawn(s);
	} else {
		if (srv.nworkers <= 1) {
			log_warnx("workers: at least one worker is needed");
			return;
		}
		srv.nworkers--;
		if ((s = slot_find(&srv.slots, srv.gen, srv.nworkers)) != NULL)
			sup_drain(s, s->cf->shutdown_timeout_ms);
		sup_retire_listeners();
	}
	log_notice("workers: now %d in generation %u", srv.nworkers, srv.gen);
}

static void
describe_exit(int status, char *buf, size_t size)
{
	if (WIFEXITED(status))
		snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "killed by signal %d (%s)%s", WTERMSIG(status),
		    strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, size, "stopped with status %#x", status);
}

static void
worker_exited(struct slot *s, int status)
{
	long uptime = clock_ms() - s->started_ms, pid = s->pid;
	char how[128];

	describe_exit(status, how, sizeof(how));
	close_channel(s);
	ct_forget_owner((int)(s - srv.slots.s));
	filelock_forget((int)(s - srv.slots.s), s->pid);
	metrics_fold(s);
	s->pid = 0;
	if (s->state == SLOT_DRAINING || srv.state != MASTER_RUNNING) {
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
		srv.restarts++;
		log_warnx("worker %d (pid %ld, generation %u) %s unexpectedly after %ld ms; "
		    "respawning in %ld ms", s->id, pid, s->gen, how, uptime, s->backoff_ms);
		schedule_respawn(s);
	}
	check_generation(s->gen);
}

void
sup_reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct slot *s = slot_by_pid(&srv.slots, pid);

		if (s != NULL)
			worker_exited(s, status);
	}
	sup_retire_listeners();
	master_check_exit();
}

/*
 * Close the listening sockets nobody will accept on again: those that
 * neither the newest config nor the one still serving names, and reuseport
 * sockets beyond the highest worker number that is not draining.  A
 * draining worker stops accepting at once, so it does not count: a socket
 * kept open for it would queue connections nobody takes.
 */
void
sup_retire_listeners(void)
{
	const struct config *live[2];
	int n = 0, top = 0;

	if (srv.state != MASTER_RUNNING)
		return;
	live[n++] = srv.cf;
	if (srv.prev_cf)
		live[n++] = srv.prev_cf;
	for (int i = 0; i < SLOT_MAX; i++) {
		const struct slot *s = &srv.slots.s[i];

		if (s->state != SLOT_FREE && s->state != SLOT_DRAINING && s->id + 1 > top)
			top = s->id + 1;
	}
	lsn_retire(live, n, top);
}

/* Draining workers past their deadline are killed. */
void
sup_kill_late(void)
{
	long now = clock_ms();

	for (int i = 0; i < SLOT_MAX; i++) {
		struct slot *s = &srv.slots.s[i];

		if (s->state == SLOT_DRAINING && s->pid > 0 && s->deadline_ms && now > s->deadline_ms) {
			log_warnx("worker %d (pid %ld) did not exit in time; killing it", s->id,
			    (long)s->pid);
			kill(s->pid, SIGKILL);
			s->deadline_ms = 0;
		}
	}
}
