/*
 * worker: the life of one worker process.
 *
 *   close what it was not given -> drop privileges -> event_base -> the
 *   layers, wired -> the sandbox (sandbox.c) -> tell the master "ready" -> loop
 *
 * It drains (stops accepting, finishes open connections, exits) on the
 * master's drain command, on SIGQUIT, or when its master dies (EOF on the
 * channel).  It stops at once on the stop command, SIGTERM or SIGINT.  A
 * drain that outlasts shutdown_timeout closes what is left.
 */
#include <errno.h>
#include <event2/event.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accept.h"
#include "channel.h"
#include "clock.h"
#include "conn.h"
#include "dgram.h"
#include "filelock.h"
#include "handlers.h"
#include "handover.h"
#include "log.h"
#include "proc.h"
#include "sandbox.h"
#include "sink.h"
#include "stats.h"
#include "worker.h"

/* What only this file knows of the worker; what every layer knows is in proc. */
static struct {
	unsigned	 gen;
	int		 id;
	int		 draining;
	int		 stopping;	/* fast stop: give the sinks one second */
} wrk;

#define TICK_MS		100		/* on_tick: how often the loop checks it came back in time */

static struct event *chan_ev, *drain_timer, *sig_ev, *exit_check, *tick;
static int chan_fd = -1, sig_fd = -1;

static void
libevent_log(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_WARN)
		log_warnx("libevent: %s", msg);
	else
		log_debug("libevent: %s", msg);
}

/*
 * Switch to user/group when started as root.  Failing here is fatal for
 * every worker alike, so the master must not respawn: exit EXIT_FATAL.
 */
static void
drop_privileges(const struct config *cf)
{
	struct passwd *pw = NULL;
	struct group *gr;
	gid_t gid;

	if (getuid() != 0 || (!cf->user[0] && !cf->group[0]))
		return;
	if (cf->user[0] && (pw = getpwnam(cf->user)) == NULL) {
		log_error("%s: no such user \"%s\"", proc.name, cf->user);
		exit(EXIT_FATAL);
	}
	gid = pw ? pw->pw_gid : getgid();
	if (cf->group[0]) {
		if ((gr = getgrnam(cf->group)) == NULL) {
			log_error("%s: no such group \"%s\"", proc.name, cf->group);
			exit(EXIT_FATAL);
		}
		gid = gr->gr_gid;
	}
	if ((pw ? initgroups(pw->pw_name, gid) : setgroups(1, &gid)) == -1 ||
	    setresgid(gid, gid, gid) == -1 ||
	    (pw && setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)) {
		log_error("%s: cannot switch to user \"%s\" group %ld: %s", proc.name, cf->user,
		    (long)gid, strerror(errno));
		exit(EXIT_FATAL);
	}
}

/*
 * Keep only what the master gave: the channel, the inbox, the listeners and
 * the log.  The rest (the master's event loop descriptors, what it
 * inherited) is closed before the worker opens anything of its own, and
 * capabilities it could never use are gone before it switches user.
 */
static void
begin_sandbox(const struct worker_start *ws)
{
	int keep[CFG_MAX_LISTENERS + 3], n = 0;

	keep[n++] = ws->chan;
	keep[n++] = ws->inbox;
	keep[n++] = log_hold();
	for (int i = 0; i < ws->cf->nlisteners; i++)
		keep[n++] = ws->fds[i];
	sandbox_begin(keep, n);
	log_resume();
}

/*
 * Every TICK_MS: how late the tick came back tells how long the loop was
 * away (blocked in a call, or starved of CPU): ingestd_loop_stalls_total.
 */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	static long next;
	long now = clock_ms(), late = next ? now - next : 0;

	(void)fd;
	(void)what;
	(void)arg;
	if (late > 100)
		proc.stats->w.stalls_100ms++;
	if (late > 1000)
		proc.stats->w.stalls_1s++;
	next = now + TICK_MS;
}

static void
on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	log_notice("%s: shutdown_timeout passed with %d connections open; closing them "
	    "gracefully", proc.name, conn_count());
	conn_linger_all();
}

static void
drain(const char *why)
{
	long ms = proc.cf->shutdown_timeout_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (wrk.draining)
		return;
	wrk.draining = 1;
	acc_close(1);
	dgram_close();
	log_info("%s: draining (%s), %d connections open", proc.name, why, conn_count());
	conn_drain_all();
	handover_start();
	if (conn_count() == 0 && handover_take_rest() == 0 && conn_count() == 0) {
		event_base_loopexit(proc.base, NULL);
		return;
	}
	drain_timer = evtimer_new(proc.base, on_drain_deadline, NULL);
	evtimer_add(drain_timer, &tv);
}

static void
stop(const char *why)
{
	log_info("%s: stopping (%s), closing %d connections", proc.name, why, conn_count());
	wrk.draining = 1;
	wrk.stopping = 1;
	acc_close(0);
	dgram_close();
	conn_close_all("stop");
	event_base_loopexit(proc.base, NULL);
}

/*
 * Draining: the worker leaves its loop when no connection is left, checked
 * from the loop rather than at the close.  A close can come while the
 * worker is still taking connections (acc_close reads each queued one at
 * once, and one may end there): leaving then would abandon the next.
 */
static void
on_exit_check(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (conn_count() == 0 && handover_take_rest() == 0 && conn_count() == 0)
		event_base_loopexit(proc.base, NULL);
}

/* The connections' hook: some closed this turn. */
static void
conns_closed(void)
{
	if (wrk.draining) {
		if (conn_count() == 0)
			event_active(exit_check, EV_TIMEOUT, 1);
		return;
	}
	acc_resume();
}

/* Log rotation: the log file and the file sinks are opened by name again. */
static void
reopen(void)
{
	log_reopen();
	sink_reopen_all();
}

/* One message from the master: a command, or where connections go (with descriptors). */
static void
on_channel(evutil_socket_t fd, short what, void *arg)
{
	static char buf[CHAN_MSG_MAX];
	int fds[CHAN_MAX_INBOXES], nfds, truncated;
	ssize_t n;

	(void)what;
	(void)arg;
	n = fdmsg_recv(fd, buf, sizeof(buf), fds, &nfds, &truncated);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		event_del(chan_ev);
		drain("the master is gone");
		return;
	}
	if (buf[0] == CHAN_HANDOVER) {
		handover_offer(fds, nfds, buf + 1, (size_t)n - 1);
		return;
	}
	while (nfds > 0)
		close(fds[--nfds]);
	if (buf[0] == CHAN_DRAIN)
		drain("told by the master");
	else if (buf[0] == CHAN_STOP)
		stop("told by the master");
	else if (buf[0] == CHAN_REOPEN)
		reopen();
}

static void
on_signal(evutil_socket_t fd, short what, void *arg)
{
	struct signalfd_siginfo si;

	(void)what;
	(void)arg;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGQUIT)
			drain("SIGQUIT");
		else if (si.ssi_signo == SIGUSR1)
			reopen();
		else
			stop(si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
	}
}

/*
 * Signals arrive through a signalfd: the master's libevent signal handling,
 * inherited over fork, stays out of the worker's way.
 */
static void
setup_signals(void)
{
	sigset_t set;

	/* The master's business; a worker must not die of them. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
	signal(SIGTTIN, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if ((sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1) {
		log_warn("%s: signalfd", proc.name);
		exit(EXIT_FATAL);
	}
	sig_ev = event_new(proc.base, sig_fd, EV_READ | EV_PERSIST, on_signal, NULL);
	event_add(sig_ev, NULL);
}

/* What the worker counted, in the lines of stats.h's tables. */
static void
log_counts(void)
{
	static const struct { enum stat_line line; const char *head; } lines[] = {
		{ STAT_LINE_EXIT, "exiting: " }, { STAT_LINE_CLOSED, "" },
		{ STAT_LINE_REFUSED, "" },
	};
	char buf[1024];

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		if (stats_line(stats_worker, stats_nworker, &proc.stats->w, lines[i].line, buf,
		    sizeof(buf)))
			log_info("%s: %s%s", proc.name, lines[i].head, buf);
	for (int i = 0; i < proc.cf->nsinks; i++)
		if (stats_line(stats_sink, stats_nsink, sink_stats(i), STAT_LINE_EXIT, buf,
		    sizeof(buf)))
			log_info("%s: sink %s: %s", proc.name, proc.cf->sinks[i].name, buf);
}

static void
cleanup(void)
{
	long grace = wrk.stopping || proc.cf->shutdown_timeout_ms < 1000 ? 1000 :
	    proc.cf->shutdown_timeout_ms;

	sink_close_all(clock_ms() + grace);
	log_counts();
	event_free(sig_ev);
	close(sig_fd);
	if (chan_ev)
		event_free(chan_ev);
	if (drain_timer)
		event_free(drain_timer);
	if (exit_check)
		event_free(exit_check);
	event_free(tick);
	handover_end();
	close(chan_fd);
	event_base_free(proc.base);
}

/* The layers' hooks: how the sinks and the connections tell the worker. */
/* The sinks' hook: full (0) or with room again (1); clients and datagrams wait meanwhile. */
static void
set_reading(int on)
{
	conn_set_reading(on);
	dgram_set_reading(on);
}

static const struct sink_hooks sink_hooks = { set_reading, relp_sessions_progressed };
static const struct conn_hooks conn_hooks = { conns_closed };

void
worker_main(const struct worker_start *ws)
{
	char ready = CHAN_READY;

	proc.cf = ws->cf;
	proc.slot = ws->owner;
	proc.stats = stats_slot(ws->owner);
	wrk.gen = ws->gen;
	wrk.id = ws->id;
	filelock_process(ws->owner);
	srandom((unsigned)getpid() ^ (unsigned)clock_ms());	/* forked workers draw apart (retry jitter) */
	snprintf(proc.name, sizeof(proc.name), "worker %d (generation %u)", wrk.id, wrk.gen);
	chan_fd = ws->chan;
	begin_sandbox(ws);
	drop_privileges(proc.cf);
	event_set_log_callback(libevent_log);
	if ((proc.base = event_base_new()) == NULL) {
		log_error("%s: event_base_new failed", proc.name);
		exit(EXIT_FATAL);
	}
	setup_signals();
	relp_sessions_init();
	conn_init(&conn_hooks);
	sink_open_all(proc.cf, &sink_hooks);
	if (acc_init(proc.cf, ws->fds, ws->lsn_ids) == -1 || dgram_init(proc.cf, ws->fds) == -1 ||
	    handover_init(ws->inbox) == -1)
		exit(EXIT_FATAL);
	evutil_make_socket_nonblocking(chan_fd);
	chan_ev = event_new(proc.base, chan_fd, EV_READ | EV_PERSIST, on_channel, NULL);
	event_add(chan_ev, NULL);
	exit_check = evtimer_new(proc.base, on_exit_check, NULL);
	tick = event_new(proc.base, -1, EV_PERSIST, on_tick, NULL);
	event_add(tick, &(struct timeval){ 0, TICK_MS * 1000 });
	sandbox_enter(proc.cf);
	if (write(chan_fd, &ready, 1) != 1)
		drain("the master is gone");
	event_base_dispatch(proc.base);
	cleanup();
	exit(0);
}
