/*
 * safefile: files opened on behalf of the configuration (see safefile.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "safefile.h"

/* Why st is not a file we may write, or NULL when it is one. */
static const char *
refusal(const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return "it is not a regular file";
	if (st->st_nlink > 1)
		return "it has other hard links";
	return NULL;
}

/*
 * open(2) of path with flags (O_CREAT and a mode allowed), refused unless
 * it is a regular file with one link and its last component is not a
 * symbolic link.  Returns the descriptor (close-on-exec, blocking), or -1,
 * logged with what ("log", "pid file"), but for a missing file that it was
 * not asked to create.
 */
int
safefile_open(const char *path, int flags, mode_t mode, const char *what)
{
	struct stat st;
	const char *why;
	int fd, fl;

	fd = open(path, flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode);
	if (fd == -1) {
		if (errno == ENOENT && !(flags & O_CREAT))
			return -1;	/* the caller knows what a missing file means */
		if (errno == ELOOP)
			log_warnx("%s %s: refused: it is a symbolic link", what, path);
		else
			log_warn("%s %s: cannot open", what, path);
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		log_warn("%s %s: fstat", what, path);
		close(fd);
		return -1;
	}
	if ((why = refusal(&st)) != NULL) {
		log_warnx("%s %s: refused: %s", what, path, why);
		close(fd);
		errno = EPERM;
		return -1;
	}
	/* O_NONBLOCK was for the open only (a FIFO would have blocked it). */
	if ((fl = fcntl(fd, F_GETFL)) == -1 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1) {
		log_warn("%s %s: fcntl", what, path);
		close(fd);
		return -1;
	}
	return fd;
}

/* Give the open file to uid/gid (-1: unchanged), by its descriptor, never by its name. */
int
safefile_chown(int fd, const char *path, uid_t uid, gid_t gid, const char *what)
{
	struct stat st;

	if (fstat(fd, &st) == -1) {
		log_warn("%s %s: fstat", what, path);
		return -1;
	}
	if ((uid == (uid_t)-1 || st.st_uid == uid) && (gid == (gid_t)-1 || st.st_gid == gid))
		return 0;
	if (fchown(fd, uid, gid) == -1) {
		log_warn("%s %s: fchown", what, path);
		return -1;
	}
	return 0;
}

/*
 * A warning when path's directory can be written by a user other than
 * root: whoever that is can replace the file between two opens.  What
 * safefile_open refuses keeps root safe; this tells the operator that the
 * layout invites it.
 */
void
safefile_check_dir(const char *path, const char *what)
{
	char copy[PATH_MAX];
	struct stat st;
	const char *dir;

	if (geteuid() != 0 || snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy))
		return;
	dir = dirname(copy);
	if (stat(dir, &st) == -1)
		return;
	if (st.st_uid != 0)
		log_warnx("%s %s: its directory %s belongs to uid %ld: that user can replace "
		    "the file; keep files root opens in directories only root may write", what,
		    path, dir, (long)st.st_uid);
	else if ((st.st_mode & S_IWGRP && st.st_gid != 0) || st.st_mode & S_IWOTH)
		log_warnx("%s %s: its directory %s may be written by others (mode %03o); keep "
		    "files root opens in directories only root may write", what, path, dir,
		    (unsigned)(st.st_mode & 0777));
}
