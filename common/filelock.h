/*
 * filelock: mutual exclusion between the processes of one ingestd that
 * append to the same file, without a system call.
 *
 * The locks live in memory the master maps before the first fork, so every
 * worker of every generation shares them.  A file is known by its device
 * and inode, hashed into a fixed table of process-shared robust mutexes:
 * two files that share a slot share a lock, nothing worse.  Taking a free
 * lock is one atomic instruction; a contended one waits on a futex.
 *
 * Without filelock_init (a unit test, a tool), filelock_of returns NULL and
 * filelock_take and filelock_release do nothing.
 */
#ifndef INGESTD_FILELOCK_H
#define INGESTD_FILELOCK_H

struct filelock;

int		 filelock_init(void);
void		 filelock_free(void);
struct filelock	*filelock_of(int fd);
void		 filelock_take(struct filelock *);
void		 filelock_release(struct filelock *);

#endif
