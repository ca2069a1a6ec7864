/*
 * common/safefile.c: what root may open on behalf of the configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safefile.h"
#include "tests.h"

static char dir[] = "/tmp/safefile-test-XXXXXX";
static char file[256], link_path[256], hard[256], fifo[256];

static void
setup(void)
{
	int fd;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/file", dir);
	snprintf(link_path, sizeof(link_path), "%s/link", dir);
	snprintf(hard, sizeof(hard), "%s/hard", dir);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	ck_assert_int_ne(fd = open(file, O_WRONLY | O_CREAT, 0600), -1);
	close(fd);
}

static void
teardown(void)
{
	unlink(file);
	unlink(link_path);
	unlink(hard);
	unlink(fifo);
	rmdir(dir);
	snprintf(dir, sizeof(dir), "/tmp/safefile-test-XXXXXX");
}

START_TEST(regular_file)
{
	const char *why;
	int fd = safefile_open(file, O_WRONLY | O_APPEND, 0, &why);

	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	ck_assert_int_ne(fcntl(fd, F_GETFL) & O_APPEND, 0);
	ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	close(fd);
}
END_TEST

START_TEST(created)
{
	char path[300];
	const char *why;
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/new", dir);
	ck_assert_int_ne(fd = safefile_open(path, O_WRONLY | O_CREAT, 0640, &why), -1);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0640 & ~umask(022));
	close(fd);
	unlink(path);
}
END_TEST

START_TEST(symlink_refused)
{
	const char *why;

	ck_assert_int_eq(symlink(file, link_path), 0);
	ck_assert_int_eq(safefile_open(link_path, O_WRONLY | O_CREAT, 0640, &why), -1);
	ck_assert_int_eq(errno, ELOOP);
	ck_assert_str_eq(why, "it is a symbolic link");
	unlink(link_path);
	/* a dangling link is not followed to create its target either */
	ck_assert_int_eq(symlink("/nonexistent-safefile-target", link_path), 0);
	ck_assert_int_eq(safefile_open(link_path, O_WRONLY | O_CREAT, 0640, &why), -1);
	ck_assert_int_eq(access("/nonexistent-safefile-target", F_OK), -1);
}
END_TEST

START_TEST(hard_link_refused)
{
	const char *why;

	ck_assert_int_eq(link(file, hard), 0);
	ck_assert_int_eq(safefile_open(hard, O_WRONLY, 0, &why), -1);
	ck_assert_str_eq(why, "it has other hard links");
	ck_assert_int_eq(safefile_open(file, O_WRONLY, 0, &why), -1);
}
END_TEST

/* A FIFO nobody reads would block a plain open(2) for write. */
START_TEST(fifo_refused_without_blocking)
{
	const char *why;

	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_eq(safefile_open(fifo, O_RDONLY, 0, &why), -1);
	ck_assert_int_eq(safefile_open(fifo, O_RDWR, 0, &why), -1);
}
END_TEST

START_TEST(directory_refused)
{
	const char *why;

	ck_assert_int_eq(safefile_open(dir, O_RDONLY, 0, &why), -1);
	ck_assert_str_eq(why, "it is not a regular file");
}
END_TEST

START_TEST(missing_says_errno)
{
	char path[300];
	const char *why;

	snprintf(path, sizeof(path), "%s/missing", dir);
	ck_assert_int_eq(safefile_open(path, O_RDONLY, 0, &why), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_ptr_null(why);
}
END_TEST

Suite *
safefile_suite(void)
{
	Suite *s = suite_create("safefile");
	TCase *tc = tcase_create("open");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, regular_file);
	tcase_add_test(tc, created);
	tcase_add_test(tc, symlink_refused);
	tcase_add_test(tc, hard_link_refused);
	tcase_add_test(tc, fifo_refused_without_blocking);
	tcase_add_test(tc, directory_refused);
	tcase_add_test(tc, missing_says_errno);
	suite_add_tcase(s, tc);
	return s;
}
