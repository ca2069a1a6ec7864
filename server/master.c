/*
 * master: start-up, the signal table, the loop, shutdown, and the hooks
 * through which the worker processes (procs.c) report.
 *
 * Signal handlers only record the signal (libevent's evsignal); the work
 * below runs in the master's event loop.
 */
#include <errno.h>
#include <event2/event.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channel.h"
#include "conntab.h"
#include "daemon.h"
#include "filelock.h"
#include "generation.h"
#include "listeners.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "notify.h"
#include "pidfile.h"
#include "procs.h"
#include "sandbox.h"
#include "stats.h"
#include "upgrade.h"
#include "worker.h"

#define TICK_MS		250

enum master_state { MASTER_RUNNING, MASTER_QUITTING, MASTER_STOPPING };

/* The master's own state; its generations' is in generation.c. */
static struct {
	struct event_base	*base;
	enum master_state	 state;
	int			 exit_code;
} srv;

const char *
master_pid_path(const struct options *opt, const struct config *cf)
{
	return opt->pid_path ? opt->pid_path : cf->pid_file;
}

/* When shutting down: the loop ends once no worker is left. */
static void
check_exit(void)
{
	if (srv.state != MASTER_RUNNING && slot_count_alive(procs_table()) == 0)
		event_base_loopbreak(srv.base);
}

static void
quit(void)
{
	struct slot_table *t = procs_table();
	const int *inboxes;
	const void *listeners;
	size_t len;
	int n;

	if (srv.state != MASTER_RUNNING)
		return;
	log_notice("graceful shutdown: workers finish their connections (at most %g s)",
	    gens.cf->shutdown_timeout_ms / 1000.0);
	srv.state = MASTER_QUITTING;
	gen_end();
	notify_stopping();
	/*
	 * Our copies of the listening sockets go first: once every worker has
	 * closed its own (as it begins to drain), nothing holds them open and a
	 * new client is refused, not queued where no one will accept it.
	 */
	lsn_close_all(!upgrade_handed_over());
	/* After a binary upgrade, the new master's workers take the connections. */
	n = upgrade_successor(&inboxes, &listeners, &len);
	for (int i = 0; i < SLOT_MAX; i++) {
		struct slot *s = &t->s[i];

		if (s->state == SLOT_FREE)
			continue;
		procs_offer(s, inboxes, n, listeners, len);	/* none when n is 0 */
		procs_drain(s, s->cf->shutdown_timeout_ms);
	}
	check_exit();
}

static void
stop(void)
{
	struct slot_table *t = procs_table();

	if (srv.state == MASTER_STOPPING)
		return;
	log_notice("fast shutdown");
	srv.state = MASTER_STOPPING;
	gen_end();
	notify_stopping();
	for (int i = 0; i < SLOT_MAX; i++)
		if (t->s[i].state != SLOT_FREE)
			procs_stop(&t->s[i]);
	lsn_close_all(!upgrade_handed_over());
	check_exit();
}

static void
reopen(void)
{
	log_notice("reopening log files");
	log_reopen();
	procs_broadcast(CHAN_REOPEN);
}

/* procs.c's hooks: what a worker process is, and what its life means to the master. */

/* Before a fork: the slot's listening sockets exist, its counters start at zero. */
static int
prepare_worker(struct slot *s)
{
	for (int i = 0; i < s->cf->nlisteners; i++)
		if (lsn_fd(&s->cf->listeners[i], s->id) == -1)
			return -1;
	stats_clear((int)(s - procs_table()->s));
	return 0;
}

/* The child's half of fork: forget the master, become a worker. */
static void __attribute__((noreturn))
run_worker(struct slot *s, int chan, int inbox)
{
	struct worker_start ws = { .cf = s->cf, .gen = s->gen, .id = s->id,
	    .owner = (int)(s - procs_table()->s), .chan = chan, .inbox = inbox };

	for (int i = 0; i < s->cf->nlisteners; i++) {
		ws.fds[i] = lsn_fd(&s->cf->listeners[i], s->id);
		ws.lsn_ids[i] = lsn_id(&s->cf->listeners[i]);
	}
	lsn_close_others(ws.fds, s->cf->nlisteners);
	upgrade_close_in_child();
	metrics_close_in_child();
	pidfile_close_in_child();
	daemon_close_in_child();
	worker_main(&ws);
}

/* A worker is gone: what it held in the memory all workers share is given back. */
static void
worker_gone(struct slot *s, int status)
{
	int owner = (int)(s - procs_table()->s);

	(void)status;
	ct_forget_owner(owner);
	filelock_forget(owner, s->pid);
	metrics_fold(s);
}

static void
generation_changed(unsigned gen)
{
	if (gen_changed(gen) == -1) {
		srv.exit_code = 1;
		stop();
	}
}

static void
reaped(void)
{
	gen_retire_listeners();
	check_exit();
}

/* A worker its sandbox killed noted the call in its stats slot (sandbox.c): name it. */
static int
exit_cause(const struct slot *s, int status, char *buf, size_t size)
{
	uint64_t call = stats_slot((int)(s - procs_table()->s))->forbidden_call;
	char name[96];

	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS || call == 0)
		return 0;
	sandbox_call_name(call, name, sizeof(name));
	snprintf(buf, size, "killed by its sandbox (a call to %s, off its seccomp allow-list)",
	    name);
	return 1;
}

static const struct procs_hooks procs_hooks = {
	prepare_worker, run_worker, worker_gone, generation_changed, reaped, exit_cause
};

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)arg;
	switch (sig) {
	case SIGCHLD:
		procs_reap();
		break;
	case SIGHUP:
		gen_reload();	/* nothing while the master ends */
		break;
	case SIGQUIT:
		quit();
		break;
	case SIGTERM:
	case SIGINT:
		stop();
		break;
	case SIGUSR1:
		reopen();
		break;
	case SIGTTIN:
	case SIGTTOU:
		if (srv.state == MASTER_RUNNING)
			gen_resize(sig == SIGTTIN ? 1 : -1);
		break;
	case SIGUSR2:
		if (srv.state == MASTER_RUNNING)
			upgrade_start(srv.base);
		break;
	}
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	procs_kill_late();
	procs_reap();	/* in case a SIGCHLD was coalesced with another */
	upgrade_watch();
	lsn_watch_drops();
}

/* For the systemd watchdog and /healthz: whether a worker of the serving generation runs. */
static int
serving(unsigned *gen)
{
	*gen = gens.serving_gen;
	return slot_count(procs_table(), gens.serving_gen, SLOT_MASK(SLOT_RUNNING)) > 0;
}

/* For /metrics, /stats and /healthz. */
static void
figures(struct metrics_master *m)
{
	m->accepting = serving(&m->generation);
	m->reloads_ok = gens.reloads_ok;
	m->reloads_failed = gens.reloads_failed;
}

static const int master_signals[] = {
	SIGCHLD, SIGHUP, SIGQUIT, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU,
};

static void
loop(void)
{
	struct event *ev[sizeof(master_signals) / sizeof(master_signals[0])], *tick;
	struct timeval tv = { 0, TICK_MS * 1000 };
	size_t n = sizeof(master_signals) / sizeof(master_signals[0]);

	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < n; i++) {
		ev[i] = evsignal_new(srv.base, master_signals[i], on_signal, NULL);
		evsignal_add(ev[i], NULL);
	}
	tick = event_new(srv.base, -1, EV_PERSIST, on_tick, NULL);
	event_add(tick, &tv);
	notify_start_watchdog(srv.base, serving);
	procs_init(srv.base, &procs_hooks);
	gen_first();
	event_base_dispatch(srv.base);
	notify_stop_watchdog();
	event_free(tick);
	for (size_t i = 0; i < n; i++)
		event_free(ev[i]);
}

/*
 * The master's loop keeps time with the precise monotonic clock: libevent
 * would take the coarse one (a few ms a tick), and a respawn announced
 * "in 200 ms" could come a few ms sooner.
 */
static struct event_base *
new_base(void)
{
	struct event_config *ec = event_config_new();
	struct event_base *b;

	if (ec == NULL)
		return NULL;
	event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
	b = event_base_new_with_config(ec);
	event_config_free(ec);
	return b;
}

/*
 * user and group apply when ingestd starts as root.  A master that already
 * runs as them (the systemd unit's User= and Group=) has nothing to do.
 */
static void
check_identity(const struct config *cf)
{
	struct passwd *pw = cf->user[0] ? getpwnam(cf->user) : NULL;
	struct group *gr = cf->group[0] ? getgrnam(cf->group) : NULL;

	if (geteuid() == 0)
		return;
	if ((cf->user[0] && (pw == NULL || pw->pw_uid != geteuid())) ||
	    (cf->group[0] && (gr == NULL || gr->gr_gid != getegid())))
		log_warnx("user and group apply only when ingestd starts as root; ignored "
		    "(running as uid %ld, gid %ld)", (long)geteuid(), (long)getegid());
}

int
master_run(struct config *cf, const struct options *opt)
{
	gen_init(opt, cf);
	check_identity(cf);
	upgrade_init(opt->argv);
	notify_take_sockets();	/* before daemonizing: LISTEN_PID is this process */
	gen_prepare(cf);
	/* Sized once: room for every connection of two generations, twice over. */
	if (ct_init(4UL * cf->workers * cf->worker_connections) == -1 || stats_init(SLOT_MAX) == -1 ||
	    filelock_init(SLOT_MAX) == -1)
		return 1;
	filelock_foreign(upgrade_shared_files());
	if (pidfile_acquire(master_pid_path(opt, cf)) == -1)
		return 1;
	if (lsn_open(cf, cf->workers) == -1) {
		pidfile_remove();
		return 1;
	}
	lsn_inherit_done();
	if (!opt->foreground)
		daemon_start();
	gen_apply_log(cf);
	if (!upgrade_pending_ready() && pidfile_write() == -1) {
		lsn_close_all(1);
		pidfile_remove();
		daemon_ready(0);
		return 1;
	}
	if ((srv.base = new_base()) == NULL)
		fatalx("event_base_new failed");
	metrics_init(srv.base, figures);
	metrics_configure(cf);
	loop();
	metrics_stop();
	lsn_close_all(!upgrade_handed_over());
	pidfile_remove();
	daemon_ready(srv.exit_code == 0);
	log_notice("exiting");
	event_base_free(srv.base);
	cfg_unref(gens.prev_cf);
	cfg_unref(gens.cf);
	ct_free();
	return srv.exit_code;
}
