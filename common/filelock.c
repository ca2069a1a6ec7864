/*
 * filelock: locks of files shared by the workers, in shared memory.
 *
 * A file sink appends each batch with one write(2) under its file's lock,
 * so that a short write (disk full) can be cut back to its last whole line
 * before anyone appends after it, and so that workers sharing a pipe
 * (stdout) never interleave.  A POSIX record lock did this for two fcntl(2)
 * calls per batch, and put a contending worker to sleep in the kernel; at
 * a few records per batch (light load, flush_interval = 0) those calls
 * were a tenth of a worker's CPU.  These locks cost nothing when free.
 *
 * A worker killed while holding a lock leaves it to the next taker
 * (EOWNERDEAD): the lock was only ever about lines in a file, which the
 * next batch does not depend on.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "filelock.h"
#include "log.h"

#define FILELOCK_SLOTS	64

struct filelock {
	pthread_mutex_t	 mutex;
} __attribute__((aligned(64)));

static struct filelock *table;

/* Map the table, before the first fork. */
int
filelock_init(void)
{
	pthread_mutexattr_t ma;

	table = mmap(NULL, FILELOCK_SLOTS * sizeof(*table), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (table == MAP_FAILED) {
		table = NULL;
		log_warn("file locks: mmap");
		return -1;
	}
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	for (int i = 0; i < FILELOCK_SLOTS; i++)
		pthread_mutex_init(&table[i].mutex, &ma);
	pthread_mutexattr_destroy(&ma);
	return 0;
}

void
filelock_free(void)
{
	if (table)
		munmap(table, FILELOCK_SLOTS * sizeof(*table));
	table = NULL;
}

/* The lock of the file open on fd (a regular file, a pipe, a socket...). */
struct filelock *
filelock_of(int fd)
{
	struct stat st;
	uint64_t h;

	if (table == NULL || fstat(fd, &st) == -1)
		return NULL;
	h = ((uint64_t)st.st_dev * 0x9e3779b97f4a7c15ULL) ^ (uint64_t)st.st_ino;
	h *= 0xff51afd7ed558ccdULL;
	return &table[(h >> 32) % FILELOCK_SLOTS];
}

void
filelock_take(struct filelock *l)
{
	int r;

	if (l == NULL)
		return;
	if ((r = pthread_mutex_lock(&l->mutex)) == EOWNERDEAD)
		pthread_mutex_consistent(&l->mutex);
	else if (r != 0)
		fatalx("file lock: %s", strerror(r));
}

void
filelock_release(struct filelock *l)
{
	if (l != NULL)
		pthread_mutex_unlock(&l->mutex);
}
