/*
 * safefile: open a file that the configuration names, as root, without
 * being led elsewhere by whoever can write its directory.
 *
 * The master opens the log and the pid file as root, and hands the log to
 * the workers' user.  A user who can write one of those directories could
 * put a symbolic link, a hard link, a FIFO or a device there, and make root
 * append to, truncate or chown a file of its choosing.  safefile_open never
 * follows a symbolic link in the last component (O_NOFOLLOW), does not
 * block on a FIFO, and takes only a regular file with a single link.
 *
 * Nothing here logs (the log itself opens its file through it): each call
 * says what was wrong, and the caller says it.
 */
#ifndef INGESTD_SAFEFILE_H
#define INGESTD_SAFEFILE_H

#include <sys/types.h>

int		 safefile_open(const char *path, int flags, mode_t mode, const char **why);
int		 safefile_chown(int fd, uid_t uid, gid_t gid);
const char	*safefile_dir_warning(const char *path);

#endif
