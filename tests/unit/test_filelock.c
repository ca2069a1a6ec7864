/*
 * common/filelock.c: one lock per file (never shared with another file) for
 * every process of the server, tried, never waited for, and a holder's
 * death.
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
	ck_assert_int_eq(filelock_init(8), 0);
	filelock_process(0);
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
	ck_assert_ptr_ne(filelock_of(pipefd[0]), filelock_of(fd));
	close(again);
	close(pipefd[0]);
	close(pipefd[1]);
	ck_assert_ptr_null(filelock_of(-1));
}
END_TEST

/* Every file has a lock of its own until the table is full; then none. */
START_TEST(never_shared)
{
	struct filelock *seen[FILELOCK_SLOTS];
	int pipes[FILELOCK_SLOTS][2], n = 0;

	seen[n++] = filelock_of(fd);
	for (int i = 1; i < FILELOCK_SLOTS; i++) {
		ck_assert_int_eq(pipe(pipes[i]), 0);
		ck_assert_ptr_nonnull(seen[n] = filelock_of(pipes[i][1]));
		for (int j = 0; j < n; j++)
			ck_assert_ptr_ne(seen[j], seen[n]);
		n++;
	}
	ck_assert_int_eq(pipe(pipes[0]), 0);
	ck_assert_ptr_null(filelock_of(pipes[0][1]));
	for (int i = 0; i < FILELOCK_SLOTS; i++) {
		close(pipes[i][0]);
		close(pipes[i][1]);
	}
}
END_TEST

/* A process that holds the lock, even stopped, makes others' tries fail at once. */
START_TEST(taken_is_not_waited_for)
{
	struct filelock *l = filelock_of(fd);
	int ready[2];
	char c;
	pid_t pid;

	ck_assert_int_eq(pipe(ready), 0);
	if ((pid = fork()) == 0) {	/* no ck_assert here: Check's pipe is the parent's */
		(void)write(ready[1], filelock_try(l) == 0 ? "x" : "-", 1);
		pause();
		_exit(0);
	}
	ck_assert_int_ne(pid, -1);
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	ck_assert_int_eq(c, 'x');
	kill(pid, SIGSTOP);
	ck_assert_int_eq(filelock_try(l), -1);
	ck_assert_int_eq(filelock_try(l), -1);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(ready[0]);
	close(ready[1]);
	/* and one that takes it after the holder released it gets it */
	ck_assert_int_eq(filelock_try(l), 0);
	filelock_release(l);
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
			if (filelock_try(l) == 0)
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
		ck_assert_int_eq(filelock_try(l), 0);
		filelock_release(l);
	}
}
END_TEST

/*
 * A child process that runs fn(key) in process slot 1, which must return
 * 0, then waits to be killed; its pid.  No ck_assert in the child: Check's
 * pipe is the parent's.
 */
static pid_t
child(int (*fn)(uint64_t), uint64_t key)
{
	int ready[2];
	char c;
	pid_t pid;

	ck_assert_int_eq(pipe(ready), 0);
	if ((pid = fork()) == 0) {
		filelock_process(1);
		(void)write(ready[1], fn(key) == 0 ? "x" : "-", 1);
		pause();
		_exit(0);
	}
	ck_assert_int_ne(pid, -1);
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	ck_assert_int_eq(c, 'x');
	close(ready[0]);
	close(ready[1]);
	return pid;
}

static int
begin_append(uint64_t key)
{
	return filelock_append_begin(key);
}

static int
begin_fix(uint64_t key)
{
	return filelock_fix_begin(key);
}

static void
end_child(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	filelock_forget(1, pid);
}

/* Alone, a writer may cut its file back; its own append in flight does not count. */
START_TEST(fix_alone)
{
	uint64_t key = filelock_key(fd);

	ck_assert_uint_ne(key, 0);
	ck_assert_int_eq(filelock_append_begin(key), 0);
	ck_assert_int_eq(filelock_fix_begin(key), 0);
	filelock_fix_end();
	/* another master's workers may append too (a binary upgrade): never */
	filelock_foreign(1);
	ck_assert_int_eq(filelock_fix_begin(key), -1);
	filelock_foreign(0);
	filelock_append_end();
}
END_TEST

/* Another process in the middle of an append, even stopped: no fix-up, and no waiting long. */
START_TEST(no_fix_while_another_appends)
{
	uint64_t key = filelock_key(fd);
	pid_t pid = child(begin_append, key);
	double t;

	kill(pid, SIGSTOP);
	t = now();
	ck_assert_int_eq(filelock_fix_begin(key), -1);
	ck_assert_double_lt(now() - t, 0.5);
	/* another file is not held up */
	ck_assert_int_eq(filelock_fix_begin(key ^ 2), 0);
	filelock_fix_end();
	end_child(pid);
	ck_assert_int_eq(filelock_fix_begin(key), 0);
	filelock_fix_end();
}
END_TEST

/* While a fix-up is under way, appends to that file wait (fail at once), others do not. */
START_TEST(appends_wait_for_a_fix)
{
	uint64_t key = filelock_key(fd);
	pid_t pid = child(begin_fix, key);

	ck_assert_int_eq(filelock_append_begin(key), -1);
	ck_assert_int_eq(filelock_append_begin(key ^ 2), 0);
	filelock_append_end();
	/* the fixer died: the master forgets its fix-up, appends go again */
	end_child(pid);
	ck_assert_int_eq(filelock_append_begin(key), 0);
	filelock_append_end();
}
END_TEST

START_TEST(without_init)
{
	filelock_free();
	ck_assert_int_eq(filelock_append_begin(filelock_key(fd)), 0);
	filelock_append_end();
	ck_assert_int_eq(filelock_fix_begin(filelock_key(fd)), -1);
	ck_assert_ptr_null(filelock_of(fd));
	ck_assert_int_eq(filelock_try(NULL), 0);
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
	tcase_add_test(tc, never_shared);
	tcase_add_test(tc, taken_is_not_waited_for);
	tcase_add_test(tc, killed_holder);
	tcase_add_test(tc, fix_alone);
	tcase_add_test(tc, no_fix_while_another_appends);
	tcase_add_test(tc, appends_wait_for_a_fix);
	tcase_add_test(tc, without_init);
	suite_add_tcase(s, tc);
	return s;
}
