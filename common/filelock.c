/*
 * filelock: appends and fix-ups of regular files, and the turns of pipes,
 * in memory shared by every process of the server (see filelock.h).
 *
 * Appenders and fixers meet like Dekker's two processes: an appender
 * publishes its file's key, then looks for a fix-up of that key; a fixer
 * publishes its fix-up, then looks for appenders of the key.  With
 * sequentially consistent atomics at least one of them sees the other, so
 * a fixer never cuts a file while another process appends to it.  A key is
 * a hash of the file's device and inode: two files that share one only
 * make an appender wait a moment or a fixer blank its bytes out instead of
 * cutting them, never the other way round.
 *
 * A pipe's turn is a robust process-shared mutex, only ever tried: a
 * worker killed while holding one leaves it to the next taker
 * (EOWNERDEAD).  A pipe's slot is claimed by compare-and-swap and kept for
 * the server's life; two processes that claim a slot for the same pipe at
 * once both end up with the first one.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "filelock.h"
#include "log.h"

#define FIX_SLOTS	16	/* fix-ups at the same time; more fall back to blanking */
#define FIX_WAIT_MS	2	/* how long a fixer waits for appends in flight to end */

struct filelock {
	_Atomic uint64_t state;		/* 0 free, 1 being claimed, 2 claimed */
	uint64_t	 dev, ino;	/* valid once state is 2 */
	pthread_mutex_t	 mutex;
} __attribute__((aligned(64)));

struct fixup {
	_Atomic uint64_t key;		/* the file being cut back, 0 when free */
	_Atomic pid_t	 pid;		/* the fixer */
} __attribute__((aligned(64)));

struct announce {
	_Atomic uint64_t key;		/* the file this process appends to now, or 0 */
} __attribute__((aligned(64)));

static struct shared {
	_Atomic int	 foreign;	/* another master's workers may append too */
	struct filelock	 locks[FILELOCK_SLOTS];
	struct fixup	 fixes[FIX_SLOTS];
	struct announce	 appending[];	/* one per process slot */
} *shm;
static size_t	 shm_size;
static int	 nprocs;
static int	 me = -1;		/* this process's slot in appending[] */
static int	 my_fix = -1;		/* the fixes[] entry this process holds */

/* Map the table, before the first fork: nprocs process slots. */
int
filelock_init(int n)
{
	pthread_mutexattr_t ma;

	shm_size = sizeof(*shm) + (size_t)n * sizeof(struct announce);
	shm = mmap(NULL, shm_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED) {
		shm = NULL;
		log_warn("file locks: mmap");
		return -1;
	}
	nprocs = n;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	for (int i = 0; i < FILELOCK_SLOTS; i++)
		pthread_mutex_init(&shm->locks[i].mutex, &ma);
	pthread_mutexattr_destroy(&ma);
	return 0;
}

void
filelock_free(void)
{
	if (shm)
		munmap(shm, shm_size);
	shm = NULL;
	me = my_fix = -1;
}

/* In a new worker: its process slot (the master's slot number for it). */
void
filelock_process(int proc)
{
	me = proc >= 0 && proc < nprocs ? proc : -1;
}

/* In the master, once a worker is reaped: what it was doing when it died is over. */
void
filelock_forget(int proc, pid_t pid)
{
	if (shm == NULL)
		return;
	if (proc >= 0 && proc < nprocs)
		atomic_store(&shm->appending[proc].key, 0);
	for (int i = 0; i < FIX_SLOTS; i++)
		if (atomic_load(&shm->fixes[i].pid) == pid)
			atomic_store(&shm->fixes[i].key, 0);
}

/* The master: whether another master's workers may append to our files (binary upgrade). */
void
filelock_foreign(int on)
{
	if (shm != NULL)
		atomic_store(&shm->foreign, on);
}

/* The key of the regular file open on fd: never 0. */
uint64_t
filelock_key(int fd)
{
	struct stat st;
	uint64_t h;

	if (fstat(fd, &st) == -1)
		return 1;
	h = ((uint64_t)st.st_dev * 0x9e3779b97f4a7c15ULL) ^ (uint64_t)st.st_ino;
	h *= 0xff51afd7ed558ccdULL;
	return (h ^ (h >> 29)) | 1;
}

/* Whether a fix-up of key is under way. */
static int
fixing(uint64_t key)
{
	for (int i = 0; i < FIX_SLOTS; i++)
		if (atomic_load(&shm->fixes[i].key) == key)
			return 1;
	return 0;
}

/* Before an append to the file of key: -1 when it must wait, a fix-up is under way. */
int
filelock_append_begin(uint64_t key)
{
	if (shm == NULL || me == -1)
		return 0;
	atomic_store(&shm->appending[me].key, key);
	if (fixing(key)) {
		atomic_store(&shm->appending[me].key, 0);
		return -1;
	}
	return 0;
}

void
filelock_append_end(void)
{
	if (shm != NULL && me != -1)
		atomic_store(&shm->appending[me].key, 0);
}

/* Whether a process other than this one appends to key now. */
static int
others_appending(uint64_t key)
{
	for (int p = 0; p < nprocs; p++)
		if (p != me && atomic_load(&shm->appending[p].key) == key)
			return 1;
	return 0;
}

/*
 * The file of key to ourselves, for a moment: 0 when no other process
 * appends to it now nor can until filelock_fix_end; -1 when that cannot be
 * had within FIX_WAIT_MS (another process is stopped inside an append, or
 * fixes the same file), or while another master's workers may append too,
 * and the file must be left as it is.
 */
int
filelock_fix_begin(uint64_t key)
{
	long deadline;

	if (shm == NULL || me == -1 || atomic_load(&shm->foreign))
		return -1;
	for (int i = 0; i < FIX_SLOTS && my_fix == -1; i++) {
		uint64_t free_key = 0;

		if (atomic_compare_exchange_strong(&shm->fixes[i].key, &free_key, key)) {
			atomic_store(&shm->fixes[i].pid, getpid());
			my_fix = i;
		}
	}
	if (my_fix == -1)
		return -1;
	deadline = clock_ms() + FIX_WAIT_MS;
	while (others_appending(key)) {
		if (clock_ms() >= deadline) {
			filelock_fix_end();
			return -1;
		}
		sched_yield();
	}
	return 0;
}

void
filelock_fix_end(void)
{
	if (shm == NULL || my_fix == -1)
		return;
	atomic_store(&shm->fixes[my_fix].key, 0);
	my_fix = -1;
}

/* Whether pipe slot l belongs to the file (dev, ino). */
static int
is_file(struct filelock *l, uint64_t dev, uint64_t ino)
{
	return atomic_load(&l->state) == 2 && l->dev == dev && l->ino == ino;
}

/*
 * The turn lock of the pipe or socket open on fd, its own; NULL when the
 * table is full (logged).  Nothing here waits: a process stopped in the
 * middle of its claim leaves the slot half made, which the others pass
 * over.
 */
struct filelock *
filelock_of(int fd)
{
	struct stat st;

	if (shm == NULL || fstat(fd, &st) == -1)
		return NULL;
	for (int i = 0; i < FILELOCK_SLOTS; i++) {
		struct filelock *l = &shm->locks[i];
		uint64_t free_state = 0;

		if (is_file(l, st.st_dev, st.st_ino))
			return l;
		if (!atomic_compare_exchange_strong(&l->state, &free_state, 1))
			continue;
		l->dev = st.st_dev;
		l->ino = st.st_ino;
		atomic_store(&l->state, 2);
		for (int j = 0; j < i; j++)
			if (is_file(&shm->locks[j], st.st_dev, st.st_ino))
				return &shm->locks[j];
		return l;
	}
	log_warnx("file locks: all %d are taken; the lines of workers sharing a pipe may mix",
	    FILELOCK_SLOTS);
	return NULL;
}

/* 0 when the turn is now ours, -1 when another process holds it. */
int
filelock_try(struct filelock *l)
{
	int r;

	if (l == NULL)
		return 0;
	if ((r = pthread_mutex_trylock(&l->mutex)) == EOWNERDEAD)
		pthread_mutex_consistent(&l->mutex);
	else if (r == EBUSY)
		return -1;
	else if (r != 0)
		fatalx("file lock: %s", strerror(r));
	return 0;
}

void
filelock_release(struct filelock *l)
{
	if (l != NULL)
		pthread_mutex_unlock(&l->mutex);
}
