/*
 * worker: the life of one worker process.
 *
 *   drop privileges -> event_base -> accept -> tell the master "ready" -> loop
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
#include "filelock.h"
#include "log.h"
#include "records.h"
#include "sink.h"
#include "stats.h"
#include "worker.h"

struct worker wrk;

static struct event *chan_ev, *drain_timer, *sig_ev, *exit_check;
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
		log_error("%s: no such user \"%s\"", wrk.name, cf->user);
		exit(EXIT_FATAL);
	}
	gid = pw ? pw->pw_gid : getgid();
	if (cf->group[0]) {
		if ((gr = getgrnam(cf->group)) == NULL) {
			log_error("%s: no such group \"%s\"", wrk.name, cf->group);
			exit(EXIT_FATAL);
		}
		gid = gr->gr_gid;
	}
	if ((pw ? initgroups(pw->pw_name, gid) : setgroups(1, &gid)) == -1 ||
	    setresgid(gid, gid, gid) == -1 ||
	    (pw && setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)) {
		log_error("%s: cannot switch to user \"%s\" group %ld: %s", wrk.name, cf->user,
		    (long)gid, strerror(errno));
		exit(EXIT_FATAL);
	}
}

static void
on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	log_notice("%s: shutdown_timeout passed with %d connections open; closing them",
	    wrk.name, conn_count());
	conn_close_all("shutdown_timeout");
}

static void
drain(const char *why)
{
	long ms = wrk.cf->shutdown_timeout_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (wrk.draining)
		return;
	wrk.draining = 1;
	acc_close(1);
	log_info("%s: draining (%s), %d connections open", wrk.name, why, conn_count());
	conn_end_sessions();
	if (conn_count() == 0) {
		event_base_loopexit(wrk.base, NULL);
		return;
	}
	drain_timer = evtimer_new(wrk.base, on_drain_deadline, NULL);
	evtimer_add(drain_timer, &tv);
}

static void
stop(const char *why)
{
	log_info("%s: stopping (%s), closing %d connections", wrk.name, why, conn_count());
	wrk.draining = 1;
	wrk.stopping = 1;
	acc_close(0);
	conn_close_all("stop");
	event_base_loopexit(wrk.base, NULL);
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
	if (conn_count() == 0)
		event_base_loopexit(wrk.base, NULL);
}

/* Called by conn after each close. */
void
worker_conn_closed(void)
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

static void
on_channel(evutil_socket_t fd, short what, void *arg)
{
	char buf[16];
	ssize_t n;

	(void)what;
	(void)arg;
	n = read(fd, buf, sizeof(buf));
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		event_del(chan_ev);
		drain("the master is gone");
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == CHAN_DRAIN)
			drain("told by the master");
		else if (buf[i] == CHAN_STOP)
			stop("told by the master");
		else if (buf[i] == CHAN_REOPEN)
			reopen();
	}
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
		log_warn("%s: signalfd", wrk.name);
		exit(EXIT_FATAL);
	}
	sig_ev = event_new(wrk.base, sig_fd, EV_READ | EV_PERSIST, on_signal, NULL);
	event_add(sig_ev, NULL);
}

static void
cleanup(void)
{
	const struct conn_totals *t = conn_totals();
	const struct record_stats *r = records_stats();
	long grace = wrk.stopping || wrk.cf->shutdown_timeout_ms < 1000 ? 1000 :
	    wrk.cf->shutdown_timeout_ms;

	sink_close_all(clock_ms() + grace);
	log_info("%s: exiting: %llu connections, %llu bytes, %llu records (%llu truncated, "
	    "%llu parse errors, %llu dropped by on_parse_error)", wrk.name,
	    (unsigned long long)t->accepted, (unsigned long long)t->bytes,
	    (unsigned long long)r->records, (unsigned long long)r->truncated,
	    (unsigned long long)r->parse_errors, (unsigned long long)r->parse_dropped);
	log_info("%s: closed %llu connections for idle_timeout, %llu for record_timeout, %llu for "
	    "send_timeout, %llu for framing errors", wrk.name, (unsigned long long)t->idle_timeouts,
	    (unsigned long long)t->record_timeouts, (unsigned long long)t->send_timeouts,
	    (unsigned long long)t->framing_errors);
	log_info("%s: refused %llu connections by allow/deny, %llu by max_connections, %llu by "
	    "max_connections_per_ip, %llu with the connection table full", wrk.name,
	    (unsigned long long)acc_refused(CT_REFUSE_ACL),
	    (unsigned long long)acc_refused(CT_REFUSE_MAX),
	    (unsigned long long)acc_refused(CT_REFUSE_PER_IP),
	    (unsigned long long)acc_refused(CT_REFUSE_FULL));
	for (int i = 0; i < wrk.cf->nsinks; i++) {
		const struct sink_stats *st = sink_stats(i);

		log_info("%s: sink %s: %llu events, %llu bytes written, %llu dropped, %llu failed "
		    "writes", wrk.name, wrk.cf->sinks[i].name, (unsigned long long)st->events,
		    (unsigned long long)st->bytes, (unsigned long long)st->dropped,
		    (unsigned long long)st->errors);
	}
	event_free(sig_ev);
	close(sig_fd);
	if (chan_ev)
		event_free(chan_ev);
	if (drain_timer)
		event_free(drain_timer);
	if (exit_check)
		event_free(exit_check);
	close(chan_fd);
	event_base_free(wrk.base);
}

void
worker_main(const struct worker_start *ws)
{
	char ready = CHAN_READY;

	wrk.cf = ws->cf;
	wrk.gen = ws->gen;
	wrk.id = ws->id;
	wrk.owner = ws->owner;
	wrk.stats = stats_slot(ws->owner);
	filelock_process(ws->owner);
	srandom((unsigned)getpid() ^ (unsigned)clock_ms());	/* forked workers draw apart (retry jitter) */
	snprintf(wrk.name, sizeof(wrk.name), "worker %d (generation %u)", wrk.id, wrk.gen);
	chan_fd = ws->chan;
	drop_privileges(wrk.cf);
	event_set_log_callback(libevent_log);
	if ((wrk.base = event_base_new()) == NULL) {
		log_error("%s: event_base_new failed", wrk.name);
		exit(EXIT_FATAL);
	}
	setup_signals();
	conn_init();
	sink_open_all(wrk.cf);
	if (acc_init(ws) == -1)
		exit(EXIT_FATAL);
	evutil_make_socket_nonblocking(chan_fd);
	chan_ev = event_new(wrk.base, chan_fd, EV_READ | EV_PERSIST, on_channel, NULL);
	event_add(chan_ev, NULL);
	exit_check = evtimer_new(wrk.base, on_exit_check, NULL);
	if (write(chan_fd, &ready, 1) != 1)
		drain("the master is gone");
	event_base_dispatch(wrk.base);
	cleanup();
	exit(0);
}
