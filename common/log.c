/*
 * log: the daemon's own messages.
 *
 * Lines go to one target: stderr (foreground), syslog (LOG_DAEMON) or a file
 * opened with O_APPEND, so that the master and every worker can write to
 * the same file without interleaving a line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "safefile.h"

enum log_target { TARGET_STDERR, TARGET_SYSLOG, TARGET_FILE };

static struct {
	enum log_target	 target;
	int		 level;
	int		 fd;
	char		 path[4096];
	char		 ident[64];
	uid_t		 uid;		/* the workers': the file is theirs to reopen */
	gid_t		 gid;
} lg = { TARGET_STDERR, LOG_LVL_INFO, 2, "", "ingestd", (uid_t)-1, (gid_t)-1 };

static const char *const level_names[] = { "error", "warning", "notice", "info", "debug" };
static const int syslog_prio[] = { LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

void
log_init_stderr(void)
{
	if (lg.target == TARGET_SYSLOG)
		closelog();
	if (lg.target == TARGET_FILE && lg.fd > 2)
		close(lg.fd);
	lg.target = TARGET_STDERR;
	lg.fd = 2;
}

/*
 * Open the log file, never through a link someone planted (safefile.c),
 * and, as root, give it to the workers' user by its descriptor, so that
 * they can open it again after a rotation.
 */
static int
open_file(const char *path)
{
	const char *why;
	int fd = safefile_open(path, O_WRONLY | O_APPEND | O_CREAT, 0640, &why);

	if (fd == -1) {
		if (why)
			log_warnx("log %s: refused: %s", path, why);
		else
			log_warn("log %s: cannot open", path);
		return -1;
	}
	if (geteuid() == 0 && (lg.uid != (uid_t)-1 || lg.gid != (gid_t)-1) &&
	    safefile_chown(fd, lg.uid, lg.gid) == -1)
		log_warn("log %s: fchown", path);
	return fd;
}

/* Who the log file belongs to once root has opened it (-1: leave as it is). */
void
log_set_owner(uid_t uid, gid_t gid)
{
	lg.uid = uid;
	lg.gid = gid;
}

/*
 * Switch to a new target.  On failure the current target stays in use, so
 * that the reason can still be read somewhere.
 */
int
log_open(const char *target, int level)
{
	int fd = -1;

	if (strcmp(target, "stderr") != 0 && strcmp(target, "syslog") != 0) {
		if ((fd = open_file(target)) == -1)
			return -1;
	}
	log_init_stderr();
	lg.level = level;
	if (strcmp(target, "syslog") == 0) {
		lg.target = TARGET_SYSLOG;
		openlog(lg.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	} else if (fd != -1) {
		lg.target = TARGET_FILE;
		lg.fd = fd;
		snprintf(lg.path, sizeof(lg.path), "%s", target);
	}
	return 0;
}

/*
 * For a process about to close every descriptor but its own: the one the
 * log writes to (2 for syslog and stderr).  syslog(3)'s socket is libc's,
 * its number unknown: it is closed here and made again by log_resume.
 */
int
log_hold(void)
{
	if (lg.target == TARGET_SYSLOG)
		closelog();
	return lg.fd;
}

void
log_resume(void)
{
	if (lg.target == TARGET_SYSLOG)
		openlog(lg.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

/* After log rotation: reopen the file by name; keep the old one on failure. */
int
log_reopen(void)
{
	int fd;

	if (lg.target != TARGET_FILE)
		return 0;
	if ((fd = open_file(lg.path)) == -1)
		return -1;
	close(lg.fd);
	lg.fd = fd;
	return 0;
}

static void
emit(int level, const char *msg)
{
	char line[2300];
	struct timeval tv;
	struct tm tm;
	int n;

	if (lg.target == TARGET_SYSLOG) {
		syslog(syslog_prio[level], "%s", msg);
		return;
	}
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld]: %s: %s\n",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    (long)tv.tv_usec / 1000, lg.ident, (long)getpid(), level_names[level], msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* One write per line: O_APPEND keeps lines from different processes whole. */
	while (write(lg.fd, line, n) == -1 && errno == EINTR)
		;
}

static void
vlog(int level, int errnum, const char *fmt, va_list ap)
{
	char msg[2048];
	int n;

	if (level > lg.level)
		return;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (errnum && n >= 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(errnum));
	emit(level, msg);
}

#define LOGFN(name, level, with_errno)				\
void								\
name(const char *fmt, ...)					\
{								\
	int saved = errno;					\
	va_list ap;						\
								\
	va_start(ap, fmt);					\
	vlog(level, with_errno ? saved : 0, fmt, ap);		\
	va_end(ap);						\
	errno = saved;						\
}

LOGFN(log_error, LOG_LVL_ERROR, 0)
LOGFN(log_warn, LOG_LVL_WARNING, 1)
LOGFN(log_warnx, LOG_LVL_WARNING, 0)
LOGFN(log_notice, LOG_LVL_NOTICE, 0)
LOGFN(log_info, LOG_LVL_INFO, 0)
LOGFN(log_debug, LOG_LVL_DEBUG, 0)

/* A message at a level chosen at run time (enum log_level). */
void
log_at(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, 0, fmt, ap);
	va_end(ap);
}

/*
 * Log at most one line a second through this limiter (a rolling second on
 * the monotonic clock, not a calendar second: time(2) reads a coarse clock
 * that lags the lines' timestamps, so two lines 100 ms apart could show the
 * same second).  The next line that gets through says how many were
 * suppressed in between.
 */
void
log_limited(struct log_limit *ll, int level, const char *fmt, ...)
{
	long now = clock_ms(), last = atomic_load(&ll->last_ms);
	unsigned suppressed;
	char msg[2048];
	size_t n;
	va_list ap;

	if (level > lg.level)
		return;
	if ((last != 0 && now - last < 1000) ||
	    !atomic_compare_exchange_strong(&ll->last_ms, &last, now)) {
		atomic_fetch_add(&ll->suppressed, 1);
		return;
	}
	suppressed = atomic_exchange(&ll->suppressed, 0);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = strlen(msg);
	if (suppressed && n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - n, " (%u similar messages suppressed)", suppressed);
	emit(level, msg);
}

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
