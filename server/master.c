/*
 * master: start-up, the signal table, reload by generations, shutdown.
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
#include <sys/resource.h>
#include <unistd.h>

#include "channel.h"
#include "clock.h"
#include "conntab.h"
#include "daemon.h"
#include "filelock.h"
#include "listeners.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "notify.h"
#include "pidfile.h"
#include "safefile.h"
#include "stats.h"
#include "supervise.h"
#include "upgrade.h"
#include "version.h"

#define TICK_MS		250
#define NOFILE_SLACK	64	/* log, channels, reserve, libevent */

struct master srv;

static int reload_pending;

/* -c FILE, else the default path if it exists, else the embedded default. */
struct config *
master_load_config(const struct options *opt, char *err, size_t errlen)
{
	if (opt->config_path)
		return cfg_load(opt->config_path, err, errlen);
	if (access(CFG_DEFAULT_PATH, F_OK) == 0)
		return cfg_load(CFG_DEFAULT_PATH, err, errlen);
	return cfg_parse_string(cfg_embedded, CFG_EMBEDDED_NAME, err, errlen);
}

const char *
master_pid_path(const struct options *opt, const struct config *cf)
{
	return opt->pid_path ? opt->pid_path : cf->pid_file;
}

/*
 * A worker holds worker_connections sockets besides its listeners; the
 * master holds every listening socket (one per worker with reuseport) and a
 * channel per worker.  Raise the soft limit (as root, the hard one too) to
 * fit the larger of the two.
 */
static void
raise_nofile(const struct config *cf)
{
	rlim_t listening = 0, need;
	struct rlimit rl, want;

	for (int i = 0; i < cf->nlisteners; i++)
		listening += cf->listeners[i].accept_mode == ACCEPT_REUSEPORT ? cf->workers : 1;
	need = NOFILE_SLACK + listening + (rlim_t)cf->worker_connections;
	if (need < NOFILE_SLACK + listening + 2 * (rlim_t)cf->workers)
		need = NOFILE_SLACK + listening + 2 * (rlim_t)cf->workers;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= need)
		return;
	/* Root may raise the hard limit too, up to what the system allows. */
	want.rlim_cur = want.rlim_max = need > rl.rlim_max ? need : rl.rlim_max;
	if (need > rl.rlim_max && setrlimit(RLIMIT_NOFILE, &want) == 0)
		return;
	rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < need)
		log_warnx("RLIMIT_NOFILE is %lu, below the %lu that worker_connections %d needs; "
		    "workers pause accepting when they run out", (unsigned long)rl.rlim_cur,
		    (unsigned long)need, cf->worker_connections);
}

/*
 * The log file is opened by root and handed to the workers' user/group by
 * its descriptor (common/log.c), so that workers can open it again after a
 * rotation.
 */
static void
log_owner(const struct config *cf)
{
	struct passwd *pw;
	struct group *gr;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;

	if (cf->user[0] && (pw = getpwnam(cf->user)) != NULL)
		uid = pw->pw_uid;
	if (cf->group[0] && (gr = getgrnam(cf->group)) != NULL)
		gid = gr->gr_gid;
	log_set_owner(uid, gid);
}

static void
apply_log(const struct config *cf)
{
	if (srv.opt.foreground) {
		log_open("stderr", cf->log_level);
		return;
	}
	log_owner(cf);
	if (log_open(cf->log_target, cf->log_level) == 0 && strcmp(cf->log_target, "syslog") != 0 &&
	    strcmp(cf->log_target, "stderr") != 0)
		safefile_check_dir(cf->log_target, "log");
}

static void
reload(void)
{
	struct config *cf;
	char err[1024];

	if (srv.state != MASTER_RUNNING)
		return;
	if (srv.gen != srv.serving_gen) {
		log_notice("reload: generation %u is still starting; reloading once it accepts",
		    srv.gen);
		reload_pending = 1;
		return;
	}
	notify_reloading();
	if ((cf = master_load_config(&srv.opt, err, sizeof(err))) == NULL) {
		log_error("reload failed: %s; generation %u keeps running", err, srv.serving_gen);
		srv.reloads_failed++;
		notify_ready();
		return;
	}
	cfg_keep_fixed(cf, srv.cf);
	raise_nofile(cf);
	if (lsn_open(cf, cf->workers) == -1) {
		log_error("reload failed: cannot bind the listeners; generation %u keeps running",
		    srv.serving_gen);
		srv.reloads_failed++;
		notify_ready();
		cfg_unref(cf);
		return;
	}
	apply_log(cf);
	metrics_configure(cf);
	srv.prev_cf = srv.cf;
	srv.cf = cf;
	srv.gen++;
	srv.nworkers = cf->workers;
	srv.reload_started_ms = clock_ms();
	log_notice("reload: starting generation %u with %d workers (config %s)", srv.gen,
	    srv.nworkers, cf->path);
	sup_start(srv.gen, srv.nworkers);
}

void
master_generation_ready(unsigned gen)
{
	unsigned old = srv.serving_gen;

	if (gen <= old || gen != srv.gen)
		return;
	srv.serving_gen = gen;
	if (old == 0) {
		log_notice("ingestd %s started: %d workers accepting (config %s)", INGESTD_VERSION,
		    srv.nworkers, srv.cf->path);
		daemon_ready(1);
		upgrade_ready();
		notify_ready();
	} else {
		log_notice("reload: generation %u accepting %ld ms after the reload began; "
		    "generation %u drains", gen, clock_ms() - srv.reload_started_ms, old);
		srv.reloads_ok++;
		notify_ready();
		sup_drain_older(gen);
		cfg_unref(srv.prev_cf);
		srv.prev_cf = NULL;
		sup_retire_listeners();
	}
	if (reload_pending) {
		reload_pending = 0;
		reload();
	}
}

static void
quit(void)
{
	if (srv.state != MASTER_RUNNING)
		return;
	log_notice("graceful shutdown: workers finish their connections (at most %g s)",
	    srv.cf->shutdown_timeout_ms / 1000.0);
	srv.state = MASTER_QUITTING;
	notify_stopping();
	for (int i = 0; i < SLOT_MAX; i++)
		if (srv.slots.s[i].state != SLOT_FREE)
			sup_drain(&srv.slots.s[i], srv.slots.s[i].cf->shutdown_timeout_ms);
	lsn_close_all(!upgrade_handed_over());
	master_check_exit();
}

static void
stop(void)
{
	if (srv.state == MASTER_STOPPING)
		return;
	log_notice("fast shutdown");
	srv.state = MASTER_STOPPING;
	notify_stopping();
	for (int i = 0; i < SLOT_MAX; i++)
		if (srv.slots.s[i].state != SLOT_FREE)
			sup_stop(&srv.slots.s[i]);
	lsn_close_all(!upgrade_handed_over());
	master_check_exit();
}

/*
 * No worker of gen can run.  A new generation from a reload is given up and
 * the one serving before keeps running; when the serving generation itself
 * has nothing left that can run, the master exits 1.
 */
void
master_generation_failed(unsigned gen)
{
	if (gen != srv.gen)
		return;		/* a newer generation is starting; it decides */
	if (gen > srv.serving_gen && srv.serving_gen != 0) {
		log_error("reload failed: no worker of generation %u can run; generation %u keeps "
		    "running", gen, srv.serving_gen);
		srv.reloads_failed++;
		notify_ready();
		sup_discard_gen(gen);
		cfg_unref(srv.cf);
		srv.cf = srv.prev_cf;
		srv.prev_cf = NULL;
		srv.gen = srv.serving_gen;
		srv.nworkers = srv.cf->workers;
		apply_log(srv.cf);
		metrics_configure(srv.cf);
		sup_retire_listeners();
		if (slot_count(&srv.slots, srv.gen, SLOT_ACTIVE) > 0) {
			if (reload_pending) {
				reload_pending = 0;
				reload();
			}
			return;
		}
	}
	log_error("no worker can run; exiting");
	srv.exit_code = 1;
	stop();
}

void
master_check_exit(void)
{
	if (srv.state != MASTER_RUNNING && slot_count_alive(&srv.slots) == 0)
		event_base_loopbreak(srv.base);
}

static void
reopen(void)
{
	log_notice("reopening log files");
	log_reopen();
	sup_broadcast(CHAN_REOPEN);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)arg;
	switch (sig) {
	case SIGCHLD:
		sup_reap();
		break;
	case SIGHUP:
		reload();
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
			sup_resize(sig == SIGTTIN ? 1 : -1);
		break;
	case SIGUSR2:
		if (srv.state == MASTER_RUNNING)
			upgrade_start();
		break;
	}
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	sup_kill_late();
	sup_reap();	/* in case a SIGCHLD was coalesced with another */
	upgrade_watch();
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
	notify_start_watchdog();
	srv.gen = 1;
	srv.nworkers = srv.cf->workers;
	sup_start(srv.gen, srv.nworkers);
	event_base_dispatch(srv.base);
	notify_stop_watchdog();
	event_free(tick);
	for (size_t i = 0; i < n; i++)
		event_free(ev[i]);
}

int
master_run(struct config *cf, const struct options *opt)
{
	srv.opt = *opt;
	srv.cf = cf;
	slot_table_init(&srv.slots);
	if (geteuid() != 0 && (cf->user[0] || cf->group[0]))
		log_warnx("user and group apply only when ingestd starts as root; ignored");
	upgrade_init(opt->argv);
	notify_take_sockets();	/* before daemonizing: LISTEN_PID is this process */
	raise_nofile(cf);
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
	apply_log(cf);
	if (!upgrade_pending_ready() && pidfile_write() == -1) {
		lsn_close_all(1);
		pidfile_remove();
		daemon_ready(0);
		return 1;
	}
	if ((srv.base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	metrics_configure(cf);
	loop();
	metrics_stop();
	lsn_close_all(!upgrade_handed_over());
	pidfile_remove();
	daemon_ready(srv.exit_code == 0);
	log_notice("exiting");
	event_base_free(srv.base);
	cfg_unref(srv.prev_cf);
	cfg_unref(srv.cf);
	return srv.exit_code;
}
