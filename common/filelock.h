/*
 * filelock: how the processes of one ingestd share the files they append
 * to, without ever waiting for one another.
 *
 * Regular files take no lock: every worker appends whole batches with one
 * write(2) on an O_APPEND descriptor, which Linux keeps whole against every
 * other appender.  What needs the others' cooperation is the rare short
 * write (a full disk) that ends inside a line: cutting that line back off
 * the file is safe only while nobody appends after it.  So an appender
 * announces which file it is appending to (filelock_append_begin/end, two
 * atomic stores and a glance at a small table), and the one whose write
 * fell short asks for the file to itself (filelock_fix_begin): it gets it
 * only when no other process is in the middle of an append to it; else it
 * must leave the file as it is and blank its own bytes out instead.  While
 * a fix-up is under way (microseconds), appenders of that file put their
 * batch off (append_begin fails) and try again shortly.
 *
 * A pipe keeps only writes of up to PIPE_BUF whole, and a stream socket
 * none, so the workers sharing one (a stdout sink) take turns through its
 * try-lock (filelock_of, filelock_try).  Each lock belongs to exactly one
 * file, never shared with another by a hash: a pipe nobody reads cannot
 * hold up anything but itself.
 *
 * Nothing here blocks: a process stopped (SIGSTOP, a debugger, a frozen
 * cgroup) while it appends, or while it holds a pipe's turn, holds up no
 * other worker's append to a regular file.  The memory is mapped by the
 * master before the first fork, so every worker of every generation shares
 * it; the master clears what a worker that died left behind
 * (filelock_forget).
 *
 * Another master's workers (the two sides of a binary upgrade) do not share
 * this memory: while there may be some, filelock_foreign(1) makes every
 * fix-up fail, so that no one cuts a file another server appends to.
 *
 * Without filelock_init (a unit test, a tool): appends always may go,
 * fix-ups never may, and filelock_of returns NULL, whose try always succeeds.
 */
#ifndef INGESTD_FILELOCK_H
#define INGESTD_FILELOCK_H

#include <stdint.h>
#include <sys/types.h>

#define FILELOCK_SLOTS	64	/* distinct pipes and sockets over the server's life */

struct filelock;

int		 filelock_init(int nprocs);
void		 filelock_free(void);
void		 filelock_process(int proc);
void		 filelock_forget(int proc, pid_t);
void		 filelock_foreign(int on);

uint64_t	 filelock_key(int fd);
int		 filelock_append_begin(uint64_t key);
void		 filelock_append_end(void);
int		 filelock_fix_begin(uint64_t key);
void		 filelock_fix_end(void);

struct filelock	*filelock_of(int fd);
int		 filelock_try(struct filelock *);
void		 filelock_release(struct filelock *);

#endif
