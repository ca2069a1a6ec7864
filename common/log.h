/*
 * log: the daemon's own messages, to stderr, syslog or a file.
 *
 * Every failure is logged once, where it happens.  log_warn() appends
 * strerror(errno); log_warnx() does not.  fatal()/fatalx() log and exit 1
 * and are for start-up and broken master invariants only.
 */
#ifndef INGESTD_LOG_H
#define INGESTD_LOG_H

#include <stdarg.h>
#include <sys/types.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARNING, LOG_LVL_NOTICE, LOG_LVL_INFO, LOG_LVL_DEBUG };

/*
 * Rate limiter: at most one line a second; counts what it suppressed.  Its
 * fields are atomic, so one limiter in shared memory serves all processes.
 */
struct log_limit {
	_Atomic long	 last_ms;	/* monotonic time of the last line, 0 before any */
	_Atomic unsigned suppressed;
};

void	 log_init_stderr(void);
int	 log_open(const char *target, int level);	/* "stderr", "syslog" or a path */
int	 log_reopen(void);
int	 log_hold(void);
void	 log_resume(void);
void	 log_set_owner(uid_t, gid_t);

void	 log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	 log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	 log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	 log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	 log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	 log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	 log_at(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void	 log_limited(struct log_limit *, int level, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
void	 fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void	 fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
