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
 * symbolic link.  Returns the descriptor (close-on-exec, blocking), or -1
 * with errno, and with *why set when the file was refused ("it is a
 * symbolic link", ...), NULL when the system said no (errno says why).
 */
int
safefile_open(const char *path, int flags, mode_t mode, const char **why)
{
	struct stat st;
	int fd, fl, saved;

	*why = NULL;
	fd = open(path, flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode);
	if (fd == -1) {
		if (errno == ELOOP)
			*why = "it is a symbolic link";
		return -1;
	}
	if (fstat(fd, &st) == -1)
		goto fail;
	if ((*why = refusal(&st)) != NULL) {
		errno = EPERM;
		goto fail;
	}
	/* O_NONBLOCK was for the open only (a FIFO would have blocked it). */
	if ((fl = fcntl(fd, F_GETFL)) == -1 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* Give the open file to uid/gid (-1: unchanged), by its descriptor, never by its name. */
int
safefile_chown(int fd, uid_t uid, gid_t gid)
{
	struct stat st;

	if (fstat(fd, &st) == -1)
		return -1;
	if ((uid == (uid_t)-1 || st.st_uid == uid) && (gid == (gid_t)-1 || st.st_gid == gid))
		return 0;
	return fchown(fd, uid, gid);
}

/*
 * As root: what is wrong with path's directory when a user other than root
 * can write it (whoever that is can replace the file between two opens),
 * or NULL.  What safefile_open refuses keeps root safe; this tells the
 * operator that the layout invites it.
 */
const char *
safefile_dir_warning(const char *path)
{
	static char msg[PATH_MAX + 128];
	char copy[PATH_MAX];
	struct stat st;
	const char *dir;

	if (geteuid() != 0 || snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy))
		return NULL;
	dir = dirname(copy);
	if (stat(dir, &st) == -1)
		return NULL;
	if (st.st_uid != 0)
		snprintf(msg, sizeof(msg), "its directory %s belongs to uid %ld: that user can "
		    "replace the file; keep files root opens in directories only root may write",
		    dir, (long)st.st_uid);
	else if ((st.st_mode & S_IWGRP && st.st_gid != 0) || st.st_mode & S_IWOTH)
		snprintf(msg, sizeof(msg), "its directory %s may be written by others (mode %03o); "
		    "keep files root opens in directories only root may write", dir,
		    (unsigned)(st.st_mode & 0777));
	else
		return NULL;
	return msg;
}
