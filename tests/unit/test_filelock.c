/*
 * common/filelock.c: one lock per file for every process of the server,
 * whatever descriptor each opened it with, and a holder's death.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "filelock.h"
#include "tests.h"

static char path[] = "/tmp/filelock-test-XXXXXX";
static int fd;

static void
setup(void)
{
	ck_assert_int_eq(filelock_init(), 0);
	ck_assert_int_ne(fd = mkstemp(path), -1);
}

static void
teardown(void)
{
	close(fd);
	unlink(path);
	filelock_free();
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

START_TEST(same_file_same_lock)
{
	int again = open(path, O_WRONLY | O_APPEND);
	int pipefd[2];

	ck_assert_int_ne(again, -1);
	ck_assert_ptr_nonnull(filelock_of(fd));
	ck_assert_ptr_eq(filelock_of(fd), filelock_of(again));
	ck_assert_int_eq(pipe(pipefd), 0);
	ck_assert_ptr_eq(filelock_of(pipefd[0]), filelock_of(pipefd[1]));
	close(again);
	close(pipefd[0]);
	close(pipefd[1]);
	ck_assert_ptr_null(filelock_of(-1));
}
END_TEST

/* A child that takes the lock while the parent holds it waits for it. */
START_TEST(excludes_other_processes)
{
	struct filelock *l = filelock_of(fd);
	double *waited = mmap(NULL, sizeof(double), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct timespec hold = { 0, 200 * 1000000L };
	pid_t pid;
	int status;

	ck_assert_ptr_ne(waited, MAP_FAILED);
	filelock_take(l);
	if ((pid = fork()) == 0) {
		double t = now();

		filelock_take(filelock_of(fd));
		*waited = now() - t;
		filelock_release(filelock_of(fd));
		_exit(0);
	}
	ck_assert_int_ne(pid, -1);
	nanosleep(&hold, NULL);
	filelock_release(l);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_double_ge(*waited, 0.15);
	munmap(waited, sizeof(double));
}
END_TEST

/* A holder killed with the lock: the next taker gets it, again and again. */
START_TEST(killed_holder)
{
	struct filelock *l = filelock_of(fd);

	for (int round = 0; round < 10; round++) {
		int ready[2];
		char c;
		pid_t pid;

		ck_assert_int_eq(pipe(ready), 0);
		if ((pid = fork()) == 0) {
			filelock_take(l);
			(void)write(ready[1], "x", 1);
			pause();
			_exit(0);
		}
		ck_assert_int_ne(pid, -1);
		ck_assert_int_eq(read(ready[0], &c, 1), 1);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(ready[0]);
		close(ready[1]);
		filelock_take(l);
		filelock_release(l);
	}
}
END_TEST

START_TEST(without_init)
{
	filelock_free();
	ck_assert_ptr_null(filelock_of(fd));
	filelock_take(NULL);
	filelock_release(NULL);
}
END_TEST

Suite *
filelock_suite(void)
{
	Suite *s = suite_create("filelock");
	TCase *tc = tcase_create("filelock");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, same_file_same_lock);
	tcase_add_test(tc, excludes_other_processes);
	tcase_add_test(tc, killed_holder);
	tcase_add_test(tc, without_init);
	suite_add_tcase(s, tc);
	return s;
}
