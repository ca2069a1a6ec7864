/*
 * slowwrite: an LD_PRELOAD shim for the integration tests.
 *
 * Every write(2) to the file SLOWWRITE_PATH names (a file sink's) takes
 * SLOWWRITE_MS milliseconds (default 3) more, as writes do on a disk
 * under writeback pressure, where the kernel makes writers wait
 * (balance_dirty_pages).  A worker then spends most of its time inside
 * write(2), where a stop (SIGSTOP, a debugger, a frozen cgroup) is most
 * likely to find it: what the stopped_worker_stalls_nobody case needs.
 * The file is told by its inode (fstat, stat): the calls a worker's
 * sandbox allows.
 *
 *   cc -shared -fPIC -o slowwrite.so tests/integration/slowwrite.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int
is_sink(int fd)
{
	const char *path = getenv("SLOWWRITE_PATH");
	struct stat a, b;

	return path && fstat(fd, &a) == 0 && S_ISREG(a.st_mode) && stat(path, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

ssize_t
write(int fd, const void *buf, size_t count)
{
	static ssize_t (*real)(int, const void *, size_t);
	static long ms = -1;

	if (real == NULL)
		real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	if (ms == -1)
		ms = getenv("SLOWWRITE_MS") ? atol(getenv("SLOWWRITE_MS")) : 3;
	if (ms > 0 && is_sink(fd)) {
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
	return real(fd, buf, count);
}
