/*
 * sink_file: the file and stdout sinks' driver.
 *
 * A file sink appends with one write(2) per batch under the file's lock,
 * shared by the workers (common/filelock.c), so that the lines of several
 * workers never interleave; a short write (disk full) is cut back to its
 * last whole line, so the file never holds half a line.  strftime patterns
 * in the path rotate the file by time, and SIGUSR1 opens it again by name
 * (log rotation).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "filelock.h"
#include "sink_driver.h"
#include "worker.h"

/* Expand the strftime patterns of path for now (UTC). */
static int
expand_path(const struct sink *s, char *buf, size_t size)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	if (strchr(s->cf->path, '%') == NULL) {
		snprintf(buf, size, "%s", s->cf->path);
		return 0;
	}
	return strftime(buf, size, s->cf->path, &tm) == 0 ? -1 : 0;
}

/* Make fd the file for the current time: rotation by strftime and reopen. */
static int
open_current(struct sink *s)
{
	char path[PATH_MAX];
	int fd;

	if (s->cf->type == SINK_STDOUT) {
		if (s->fd == -1 && (s->fd = dup(STDOUT_FILENO)) == -1) {
			log_limited(&s->errlog, LOG_LVL_ERROR, "%s: sink %s: stdout: %s", wrk.name,
			    s->cf->name, strerror(errno));
			return -1;
		}
		s->lock = filelock_of(s->fd);
		snprintf(s->where, sizeof(s->where), "stdout");
		return 0;
	}
	if (expand_path(s, path, sizeof(path)) == -1) {
		log_limited(&s->errlog, LOG_LVL_ERROR, "%s: sink %s: path \"%s\" expands to nothing",
		    wrk.name, s->cf->name, s->cf->path);
		return -1;
	}
	if (s->fd != -1 && strcmp(path, s->where) == 0)
		return 0;
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) == -1) {
		log_limited(&s->errlog, LOG_LVL_ERROR, "%s: sink %s: cannot open %s: %s", wrk.name,
		    s->cf->name, path, strerror(errno));
		return -1;
	}
	if (s->fd != -1)
		close(s->fd);
	s->fd = fd;
	s->lock = filelock_of(fd);
	snprintf(s->where, sizeof(s->where), "%s", path);
	return 0;
}

/*
 * A short write (disk full) may end inside a line.  Under the file's lock
 * no worker of ours appended after us, so cut the file back to our last
 * whole line; returns how many queued bytes are now in the file.  Another
 * ingestd appending to the same file (the other side of a binary upgrade)
 * does not share our locks: when the file no longer ends where our write
 * did, the partial line stays rather than cutting its lines.
 */
static size_t
keep_whole_lines(struct sink *s, size_t written)
{
	size_t keep = written;
	struct stat st;
	off_t end;

	while (keep > 0 && s->q.p[keep - 1] != '\n')
		keep--;
	if (keep == written)
		return keep;
	if ((end = lseek(s->fd, 0, SEEK_CUR)) == -1 || fstat(s->fd, &st) == -1 ||
	    (st.st_size == end && ftruncate(s->fd, end - (off_t)(written - keep)) == -1))
		log_warn("%s: sink %s: cannot remove a partial line from %s", wrk.name,
		    s->cf->name, s->where);
	else if (st.st_size != end)
		log_warnx("%s: sink %s: a partial line stays in %s: another process appended "
		    "after it", wrk.name, s->cf->name, s->where);
	return keep;
}

/*
 * One batch, under the file's lock; returns the bytes consumed from the
 * queue, or -1.  A pipe or socket (stdout) cannot be cut back, but then
 * write(2) blocks until it has taken everything.
 */
static ssize_t
write_file(struct sink *s)
{
	int regular = s->cf->type == SINK_FILE, saved;
	ssize_t n;

	filelock_take(s->lock);
	do
		n = write(s->fd, s->q.p, s->q.len);
	while (n == -1 && errno == EINTR);
	if (n > 0 && (size_t)n < s->q.len && regular)
		n = keep_whole_lines(s, n);
	saved = errno;
	filelock_release(s->lock);
	errno = saved;
	if (n >= 0 && (size_t)n < s->q.len && errno == 0)
		errno = ENOSPC;		/* a short write is the kernel saying "full" */
	return n;
}

static ssize_t
file_write(struct sink *s, int *wait)
{
	*wait = 0;
	return open_current(s) == 0 ? write_file(s) : -1;
}

static int
file_sync(struct sink *s)
{
	return s->fd == -1 ? -1 : fdatasync(s->fd);
}

/* The next batch opens the file by name again. */
static void
file_close(struct sink *s)
{
	if (s->fd != -1)
		close(s->fd);
	s->fd = -1;
}

static int
file_start(struct sink *s)
{
	if (open_current(s) == -1) {
		log_warnx("%s: sink %s: events are queued until the file can be opened", wrk.name,
		    s->cf->name);
		return -1;
	}
	return 0;
}

const struct sink_driver sink_file_driver = {
	file_start, file_write, file_sync, file_close, file_close
};
