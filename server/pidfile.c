/*
 * pidfile: the master's pid file: locked with flock(2) for as long as the
 * master runs (a second master, or `ingestd -s`, tells a live one from a
 * stale file by the lock), written once the workers accept, moved aside
 * as NAME.oldbin during a binary upgrade.  Root opens it, never through a
 * link (safefile.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "pidfile.h"
#include "safefile.h"

static int	 pid_fd = -1;
static char	 pid_path[PATH_MAX];

/*
 * The pid file, opened by root: never through a link (safefile.c).  A
 * missing file is not an error when it is only read.
 */
static int
open_pidfile(const char *path, int flags)
{
	const char *why;
	int fd = safefile_open(path, flags, 0644, &why);

	if (fd == -1 && why)
		log_warnx("pid file %s: refused: %s", path, why);
	else if (fd == -1 && (errno != ENOENT || (flags & O_CREAT)))
		log_warn("pid file %s: cannot open", path);
	return fd;
}

/* The pid in the file, or 0 when there is none; errors are logged. */
pid_t
pidfile_read(const char *path)
{
	char buf[32];
	long pid;
	ssize_t n;
	int fd;

	if ((fd = open_pidfile(path, O_RDONLY)) == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	return pid > 0 && pid < INT_MAX ? (pid_t)pid : 0;
}

/* mkdir -p of the file's directory (mode 0755). */
static void
make_parent(const char *path)
{
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", path);
	for (char *p = dir + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
			log_warn("pid file: cannot create %s", dir);
			return;
		}
		*p = '/';
	}
}

/*
 * Open and lock the pid file before anything is bound.  Fails when another
 * master holds the lock, and when the path is a link or not a regular file
 * (safefile.c): root truncates and writes it.
 */
int
pidfile_acquire(const char *path)
{
	const char *warning;

	make_parent(path);
	if ((pid_fd = open_pidfile(path, O_RDWR | O_CREAT)) == -1)
		return -1;
	if ((warning = safefile_dir_warning(path)) != NULL)
		log_warnx("pid file %s: %s", path, warning);
	if (flock(pid_fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			log_warnx("ingestd is already running as pid %ld (pid file %s)",
			    (long)pidfile_read(path), path);
		else
			log_warn("pid file %s: cannot lock", path);
		close(pid_fd);
		pid_fd = -1;
		return -1;
	}
	snprintf(pid_path, sizeof(pid_path), "%s", path);
	return 0;
}

/* Write our pid; called after daemonizing, so that it is the master's. */
int
pidfile_write(void)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

	if (ftruncate(pid_fd, 0) == -1 || pwrite(pid_fd, buf, n, 0) != n) {
		log_warn("pid file %s: cannot write", pid_path);
		return -1;
	}
	return 0;
}

/* The binary upgrade: the file moves aside (still locked by us) and may come back. */
int
pidfile_rename(const char *to)
{
	if (pid_fd == -1 || rename(pid_path, to) == -1) {
		log_warn("pid file: cannot rename %s to %s", pid_path, to);
		return -1;
	}
	snprintf(pid_path, sizeof(pid_path), "%s", to);
	return 0;
}

const char *
pidfile_path(void)
{
	return pid_path;
}

/* Whether a live master holds path's lock; quiet, for polling. */
int
pidfile_locked(const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), locked;

	if (fd == -1)
		return 0;
	locked = flock(fd, LOCK_SH | LOCK_NB) == -1 && errno == EWOULDBLOCK;
	close(fd);
	return locked;
}

void
pidfile_remove(void)
{
	if (pid_fd == -1)
		return;
	unlink(pid_path);
	close(pid_fd);
	pid_fd = -1;
}

/* Workers must not keep the lock alive after their master is gone. */
void
pidfile_close_in_child(void)
{
	if (pid_fd != -1)
		close(pid_fd);
	pid_fd = -1;
}

/*
 * The pid of the live master that holds the pid file's lock, or 0 (logged)
 * when there is none: a stale file may name an unrelated process.
 */
pid_t
pidfile_owner(const char *path)
{
	pid_t pid = pidfile_read(path);

	if (pid == 0) {
		log_warnx("no running ingestd: no pid in %s", path);
		return 0;
	}
	if (!pidfile_locked(path)) {
		log_warnx("no running ingestd: %s is stale (no master holds it; it names pid %ld)",
		    path, (long)pid);
		return 0;
	}
	return pid;
}
