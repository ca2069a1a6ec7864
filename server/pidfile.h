/*
 * pidfile: the master's pid file, locked for the master's whole life.
 *
 * A live master holds an exclusive flock(2) on the file, so a second master
 * refuses to start whatever pid the file holds, and a file left by a dead
 * master (stale: nobody holds the lock) is simply replaced.
 */
#ifndef INGESTD_PIDFILE_H
#define INGESTD_PIDFILE_H

#include <sys/types.h>

int	 pidfile_acquire(const char *path);
int	 pidfile_write(void);
void	 pidfile_remove(void);
int	 pidfile_rename(const char *to);
const char *pidfile_path(void);
int	 pidfile_locked(const char *path);
void	 pidfile_close_in_child(void);
pid_t	 pidfile_read(const char *path);
pid_t	 pidfile_owner(const char *path);

#endif
