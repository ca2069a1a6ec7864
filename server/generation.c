/*
 * generation: reload by generations, top to bottom.
 *
 *   SIGHUP: the configuration is read and checked (a broken one changes
 *   nothing) -> its listeners are bound -> generation N+1 starts beside N
 *   -> once every worker of N+1 accepts (ready), N drains and the
 *   listeners no configuration names any more close; if no worker of N+1
 *   can run (failed), N+1 is given up and N goes on serving as if nothing
 *   happened (rollback).  A reload asked for while N+1 still starts waits
 *   until it accepts.
 *
 * Generation 1 is the start-up: its readiness is what the command that
 * started the master, systemd and a binary upgrade wait for, and its
 * failure makes the master exit 1.  The worker processes themselves are
 * server/procs.c's; this file says what happens to them.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "channel.h"
#include "clock.h"
#include "daemon.h"
#include "generation.h"
#include "listeners.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "procs.h"
#include "safefile.h"
#include "upgrade.h"
#include "version.h"

#define NOFILE_SLACK	64	/* log, channels, reserve, libevent */

struct generations gens;

static struct options	 opt;
static int		 reload_pending;

/* -c FILE, else the default path if it exists, else the embedded default. */
struct config *
gen_load_config(const struct options *opt, char *err, size_t errlen)
{
	if (opt->config_path)
		return cfg_load(opt->config_path, err, errlen);
	if (access(CFG_DEFAULT_PATH, F_OK) == 0)
		return cfg_load(CFG_DEFAULT_PATH, err, errlen);
	return cfg_parse_string(cfg_embedded, CFG_EMBEDDED_NAME, err, errlen);
}

/*
 * Before binding a configuration's listeners: a worker holds
 * worker_connections sockets besides its listeners; the master holds every
 * listening socket (one per worker with reuseport) and a channel per
 * worker.  Raise the soft limit (as root, the hard one too) to fit the
 * larger of the two.
 */
void
gen_prepare(const struct config *cf)
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
 * The log of a configuration.  The file is opened by root and handed to
 * the workers' user/group by its descriptor (common/log.c), so that
 * workers can open it again after a rotation.
 */
void
gen_apply_log(const struct config *cf)
{
	struct passwd *pw;
	struct group *gr;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	const char *warning;

	if (opt.foreground) {
		log_open("stderr", cf->log_level);
		return;
	}
	if (cf->user[0] && (pw = getpwnam(cf->user)) != NULL)
		uid = pw->pw_uid;
	if (cf->group[0] && (gr = getgrnam(cf->group)) != NULL)
		gid = gr->gr_gid;
	log_set_owner(uid, gid);
	if (log_open(cf->log_target, cf->log_level) == -1 || !strcmp(cf->log_target, "syslog") ||
	    !strcmp(cf->log_target, "stderr"))
		return;
	if ((warning = safefile_dir_warning(cf->log_target)) != NULL)
		log_warnx("log %s: %s", cf->log_target, warning);
}

/* n workers of generation gen, on the current configuration. */
static void
start_workers(unsigned gen, int n)
{
	for (int id = 0; id < n; id++)
		procs_start(gen, id, gens.cf);
}

/* The command line's options, and the configuration read at start-up (the master's reference). */
void
gen_init(const struct options *o, struct config *cf)
{
	opt = *o;
	gens.cf = cf;
}

/* The master shuts down: generations stay as they are. */
void
gen_end(void)
{
	gens.ending = 1;
}

/* Generation 1, at start-up. */
void
gen_first(void)
{
	gens.gen = 1;
	gens.nworkers = gens.cf->workers;
	start_workers(gens.gen, gens.nworkers);
}

/* SIGHUP. */
void
gen_reload(void)
{
	struct config *cf;
	char err[1024];

	if (gens.ending)
		return;
	if (gens.gen != gens.serving_gen) {
		log_notice("reload: generation %u is still starting; reloading once it accepts",
		    gens.gen);
		reload_pending = 1;
		return;
	}
	notify_reloading();
	if ((cf = gen_load_config(&opt, err, sizeof(err))) == NULL) {
		log_error("reload failed: %s; generation %u keeps running", err, gens.serving_gen);
		gens.reloads_failed++;
		notify_ready(gens.serving_gen, gens.nworkers);
		return;
	}
	cfg_keep_fixed(cf, gens.cf);
	gen_prepare(cf);
	if (lsn_open(cf, cf->workers) == -1) {
		log_error("reload failed: cannot bind the listeners; generation %u keeps running",
		    gens.serving_gen);
		gens.reloads_failed++;
		notify_ready(gens.serving_gen, gens.nworkers);
		cfg_unref(cf);
		return;
	}
	gen_apply_log(cf);
	metrics_configure(cf);
	gens.prev_cf = gens.cf;
	gens.cf = cf;
	gens.gen++;
	gens.nworkers = cf->workers;
	gens.reload_started_ms = clock_ms();
	log_notice("reload: starting generation %u with %d workers (config %s)", gens.gen,
	    gens.nworkers, cf->path);
	start_workers(gens.gen, gens.nworkers);
}

static void
reload_if_pending(void)
{
	if (reload_pending) {
		reload_pending = 0;
		gen_reload();
	}
}

/*
 * Where a draining generation's connections may go: the listener
 * addresses cf serves as plain streams (none when cf says handover = false),
 * and the inboxes of gen's workers.  Returns the bytes of *to.
 */
static size_t
successor(const struct config *cf, unsigned gen, struct addr *to, int *inboxes, int *n)
{
	size_t k = 0;

	*n = procs_inboxes(gen, inboxes, CHAN_MAX_INBOXES);
	for (int i = 0; cf->handover && i < cf->nlisteners; i++) {
		const struct listener_cfg *l = &cf->listeners[i];

		if (!l->datagram && l->protocol == PROTO_TCP && !l->tls.enabled)
			to[k++] = l->listen.addr;
	}
	return k * sizeof(*to);
}

/* Every slot of older generations drains, handing its connections to gen. */
static void
drain_older(unsigned gen)
{
	struct slot_table *t = procs_table();
	struct addr to[CFG_MAX_LISTENERS];
	int inboxes[CHAN_MAX_INBOXES], n;
	size_t len = successor(gens.cf, gen, to, inboxes, &n);

	for (int i = 0; i < SLOT_MAX; i++) {
		struct slot *s = &t->s[i];

		if (s->state == SLOT_FREE || s->gen >= gen)
			continue;
		procs_offer(s, inboxes, n, to, len);	/* one still draining: to gen from now on */
		procs_drain(s, s->cf->shutdown_timeout_ms);
	}
}

/* The new master of a binary upgrade: the old one hears that it may quit, and where to. */
static void
ready_for_upgrade(unsigned gen)
{
	struct addr to[CFG_MAX_LISTENERS];
	int inboxes[CHAN_MAX_INBOXES], n;
	size_t len = successor(gens.cf, gen, to, inboxes, &n);

	upgrade_ready(inboxes, n, to, len);
}

/* Every worker of gen accepts: it serves, and the one before drains. */
static void
ready(unsigned gen)
{
	unsigned old = gens.serving_gen;

	if (gen <= old || gen != gens.gen)
		return;
	gens.serving_gen = gen;
	if (old == 0) {
		log_notice("ingestd %s started: %d workers accepting (config %s)", INGESTD_VERSION,
		    gens.nworkers, gens.cf->path);
		daemon_ready(1);
		ready_for_upgrade(gen);
		notify_ready(gens.serving_gen, gens.nworkers);
	} else {
		log_notice("reload: generation %u accepting %ld ms after the reload began; "
		    "generation %u drains", gen, clock_ms() - gens.reload_started_ms, old);
		gens.reloads_ok++;
		notify_ready(gens.serving_gen, gens.nworkers);
		drain_older(gen);
		cfg_unref(gens.prev_cf);
		gens.prev_cf = NULL;
		gen_retire_listeners();
	}
	reload_if_pending();
}

/* The slots of a generation given up are stopped. */
static void
discard(unsigned gen)
{
	struct slot_table *t = procs_table();

	for (int i = 0; i < SLOT_MAX; i++) {
		struct slot *s = &t->s[i];

		if (s->state != SLOT_FREE && s->gen == gen)
			procs_stop(s);
	}
}

/*
 * No worker of gen can run.  A new generation from a reload is given up and
 * the one serving before keeps running (0); when the serving generation
 * itself has nothing left that can run, -1: the master must exit 1.
 */
static int
failed(unsigned gen)
{
	if (gen != gens.gen)
		return 0;	/* a newer generation is starting; it decides */
	if (gen > gens.serving_gen && gens.serving_gen != 0) {
		log_error("reload failed: no worker of generation %u can run; generation %u keeps "
		    "running", gen, gens.serving_gen);
		gens.reloads_failed++;
		notify_ready(gens.serving_gen, gens.nworkers);
		discard(gen);
		cfg_unref(gens.cf);
		gens.cf = gens.prev_cf;
		gens.prev_cf = NULL;
		gens.gen = gens.serving_gen;
		gens.nworkers = gens.cf->workers;
		gen_apply_log(gens.cf);
		metrics_configure(gens.cf);
		gen_retire_listeners();
		if (slot_count(procs_table(), gens.gen, SLOT_ACTIVE) > 0) {
			reload_if_pending();
			return 0;
		}
	}
	log_error("no worker can run; exiting");
	return -1;
}

/*
 * A slot of gen changed (procs.c's hook): the generation is ready when
 * none of its workers is still starting, failed when none can run.
 * Returns -1 when nothing can run any more.
 */
int
gen_changed(unsigned gen)
{
	struct slot_table *t = procs_table();
	unsigned starting = SLOT_MASK(SLOT_STARTING) | SLOT_MASK(SLOT_WAITING);

	if (slot_count(t, gen, SLOT_ACTIVE) == 0 && slot_count(t, gen, SLOT_MASK(SLOT_FAILED)) > 0)
		return failed(gen);
	if (slot_count(t, gen, starting) == 0 && slot_count(t, gen, SLOT_MASK(SLOT_RUNNING)) > 0)
		ready(gen);
	return 0;
}

/* TTIN and TTOU: one worker more or fewer in the newest generation, until the next reload. */
void
gen_resize(int delta)
{
	struct slot *s;

	if (delta > 0) {
		if (gens.nworkers >= CFG_MAX_WORKERS) {
			log_warnx("workers: already at the maximum of %d", CFG_MAX_WORKERS);
			return;
		}
		if (procs_start(gens.gen, gens.nworkers, gens.cf) == NULL)
			return;
		gens.nworkers++;
	} else {
		if (gens.nworkers <= 1) {
			log_warnx("workers: at least one worker is needed");
			return;
		}
		gens.nworkers--;
		if ((s = slot_find(procs_table(), gens.gen, gens.nworkers)) != NULL)
			procs_drain(s, s->cf->shutdown_timeout_ms);
		gen_retire_listeners();
	}
	log_notice("workers: now %d in generation %u", gens.nworkers, gens.gen);
}

/*
 * Close the listening sockets nobody will accept on again: those that
 * neither the newest config nor the one still serving names, and reuseport
 * sockets beyond the highest worker number that is not draining.  A
 * draining worker stops accepting at once, so it does not count: a socket
 * kept open for it would queue connections nobody takes.
 */
void
gen_retire_listeners(void)
{
	struct slot_table *t = procs_table();
	const struct config *live[2];
	int n = 0, top = 0;

	if (gens.ending)
		return;
	live[n++] = gens.cf;
	if (gens.prev_cf)
		live[n++] = gens.prev_cf;
	for (int i = 0; i < SLOT_MAX; i++) {
		const struct slot *s = &t->s[i];

		if (s->state != SLOT_FREE && s->state != SLOT_DRAINING && s->id + 1 > top)
			top = s->id + 1;
	}
	lsn_retire(live, n, top);
}
