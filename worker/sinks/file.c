/*
 * file: the driver of file and stdout sinks.
 *
 * A file sink appends each batch with one write(2) on an O_APPEND
 * descriptor, without a lock: Linux keeps such a write whole against every
 * other appender of a regular file (the inode's lock is held for the whole
 * call), so the lines of several workers never interleave, and no worker
 * waits for another, even one that is stopped.  A short write (disk full)
 * may end inside a line.  That line's bytes are ours alone; they are cut
 * off the file when no other worker appends to it meanwhile (the fix-up of
 * common/filelock.c), or else overwritten with spaces ending in a newline,
 * and the line goes again, whole, with the rest of the queue.  Either way
 * the file never holds part of an event.
 *
 * A pipe or a socket (stdout, or a FIFO as path) keeps only small writes
 * whole, so the workers sharing one, and a shared stdout of any kind, take
 * turns through its try-lock: a worker that finds it taken tries again in
 * RETRY_SOON_MS and meanwhile goes on reading and queueing.  So does one
 * that finds a fix-up of its file under way.
 *
 * strftime patterns in the path rotate the file by time, and SIGUSR1 opens
 * it again by name (log rotation).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "driver.h"
#include "filelock.h"
#include "proc.h"

#define RETRY_SOON_MS	2

/* The driver's state of one sink: the file it appends to now. */
struct file {
	int		 fd;		/* -1 until opened */
	int		 regular;	/* a regular file we opened with O_APPEND */
	uint64_t	 key;		/* its key for fix-ups, when regular */
	struct filelock	*lock;		/* its turn, when not regular */
};

static struct log_limit short_limit;

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

/*
 * fd is the sink's now.  A regular file we opened with O_APPEND appends
 * without a lock; anything else takes turns, standard output included even
 * when it is a regular file: its descriptor, shared with every worker,
 * need not have O_APPEND, and its offset is everyone's.
 */
static void
take_fd(struct sink *s, int fd)
{
	struct file *f = s->state;
	struct stat st;

	f->fd = fd;
	f->regular = s->cf->type == SINK_FILE && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	f->lock = f->regular ? NULL : filelock_of(fd);
	f->key = f->regular ? filelock_key(fd) : 0;
}

/* Make fd the file for the current time: rotation by strftime and reopen. */
static int
open_current(struct sink *s)
{
	struct file *f = s->state;
	char path[PATH_MAX];
	int fd;

	if (s->cf->type == SINK_STDOUT) {
		if (f->fd != -1)
			return 0;
		if ((fd = dup(STDOUT_FILENO)) == -1) {
			log_limited(&s->errlog, LOG_LVL_ERROR, "%s: sink %s: stdout: %s", proc.name,
			    s->cf->name, strerror(errno));
			return -1;
		}
		take_fd(s, fd);
		snprintf(s->where, sizeof(s->where), "stdout");
		return 0;
	}
	if (expand_path(s, path, sizeof(path)) == -1) {
		log_limited(&s->errlog, LOG_LVL_ERROR, "%s: sink %s: path \"%s\" expands to nothing",
		    proc.name, s->cf->name, s->cf->path);
		return -1;
	}
	if (f->fd != -1 && strcmp(path, s->where) == 0)
		return 0;
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) == -1) {
		log_limited(&s->errlog, LOG_LVL_ERROR, "%s: sink %s: cannot open %s: %s", proc.name,
		    s->cf->name, path, strerror(errno));
		return -1;
	}
	if (f->fd != -1)
		close(f->fd);
	take_fd(s, fd);
	snprintf(s->where, sizeof(s->where), "%s", path);
	return 0;
}

/*
 * Overwrite the last n bytes we appended (the start of a line the disk had
 * no room for) with spaces and a newline, when they cannot be cut off.
 * They are ours: an O_APPEND write is whole, and our descriptor's offset is
 * where it ended, whatever others appended since.  pwrite(2) on Linux
 * ignores its offset on an O_APPEND descriptor, so O_APPEND is off for the
 * moment.
 */
static int
blank_tail(struct sink *s, size_t n)
{
	struct file *f = s->state;
	static const char spaces[256] = { [0 ... 255] = ' ' };
	off_t at = lseek(f->fd, 0, SEEK_CUR);
	int fl = fcntl(f->fd, F_GETFL), rc = 0;

	if (at == -1 || fl == -1 || fcntl(f->fd, F_SETFL, fl & ~O_APPEND) == -1)
		return -1;
	for (at -= n; n > 1 && rc == 0; ) {
		size_t k = n - 1 < sizeof(spaces) ? n - 1 : sizeof(spaces);

		rc = pwrite(f->fd, spaces, k, at) == (ssize_t)k ? 0 : -1;
		at += k;
		n -= k;
	}
	if (rc == 0 && pwrite(f->fd, "\n", 1, at) != 1)
		rc = -1;
	if (fcntl(f->fd, F_SETFL, fl) == -1)
		rc = -1;
	return rc;
}

/*
 * Remove the last n bytes we appended: only while no other worker appends
 * to the file, and only if nobody appended after them.
 */
static int
cut_tail(struct sink *s, size_t n)
{
	struct file *f = s->state;
	off_t end = lseek(f->fd, 0, SEEK_CUR);
	struct stat st;
	int rc = -1;

	if (end == -1 || filelock_fix_begin(f->key) == -1)
		return -1;
	if (fstat(f->fd, &st) == 0 && st.st_size == end)
		rc = ftruncate(f->fd, end - (off_t)n);
	filelock_fix_end();
	return rc;
}

/* A short write: how many queued bytes are now in the file as whole lines. */
static size_t
whole_lines(struct sink *s, size_t written)
{
	size_t keep = written, part;

	while (keep > 0 && s->q.p[keep - 1] != '\n')
		keep--;
	if ((part = written - keep) == 0)
		return keep;
	if (cut_tail(s, part) == 0)
		log_limited(&short_limit, LOG_LVL_NOTICE, "%s: sink %s: %s filled up in the middle "
		    "of a line; its %zu bytes there are cut off and it goes again whole", proc.name,
		    s->cf->name, s->where, part);
	else if (blank_tail(s, part) == 0)
		log_limited(&short_limit, LOG_LVL_WARNING, "%s: sink %s: %s filled up in the middle "
		    "of a line, which could not be cut off while others append; its %zu bytes "
		    "there are blanked out (a line of spaces) and it goes again whole", proc.name,
		    s->cf->name, s->where, part);
	else
		log_warn("%s: sink %s: cannot remove a partial line at the end of %s", proc.name,
		    s->cf->name, s->where);
	return keep;
}

/*
 * One batch; returns the bytes consumed from the queue, or -1.  A pipe or
 * socket cannot be cut back, but then write(2) blocks until it has taken
 * everything.  0 with *wait set: another worker holds the pipe's turn, or
 * cuts a partial line off the file.
 */
static ssize_t
write_file(struct sink *s, int *wait)
{
	struct file *f = s->state;
	ssize_t n;
	int saved;

	if (f->regular ? filelock_append_begin(f->key) == -1 : filelock_try(f->lock) == -1) {
		*wait = 1;
		sink_retry_soon(s, RETRY_SOON_MS);
		return 0;
	}
	do
		n = write(f->fd, s->q.p, s->q.len);
	while (n == -1 && errno == EINTR);
	saved = errno;
	if (n > 0 && (size_t)n < s->q.len && f->regular)
		n = whole_lines(s, n);
	if (f->regular)
		filelock_append_end();
	else
		filelock_release(f->lock);
	errno = saved;
	if (n >= 0 && (size_t)n < s->q.len && errno == 0)
		errno = ENOSPC;		/* a short write is the kernel saying "full" */
	return n;
}

static ssize_t
file_write(struct sink *s, int *wait)
{
	*wait = 0;
	if (s->state == NULL) {
		errno = ENOMEM;
		return -1;
	}
	return open_current(s) == 0 ? write_file(s, wait) : -1;
}

static int
file_sync(struct sink *s)
{
	struct file *f = s->state;
	return f->fd == -1 ? -1 : fdatasync(f->fd);
}

/* The next batch opens the file by name again. */
static void
file_reopen(struct sink *s)
{
	struct file *f = s->state;

	if (f != NULL && f->fd != -1)
		close(f->fd);
	if (f != NULL)
		f->fd = -1;
}

static void
file_close(struct sink *s)
{
	file_reopen(s);
	free(s->state);
	s->state = NULL;
}

static int
file_start(struct sink *s)
{
	struct file *f = calloc(1, sizeof(*f));

	if ((s->state = f) == NULL) {
		log_warn("%s: sink %s", proc.name, s->cf->name);
		return -1;
	}
	f->fd = -1;
	if (open_current(s) == -1) {
		log_warnx("%s: sink %s: events are queued until the file can be opened", proc.name,
		    s->cf->name);
		return -1;
	}
	return 0;
}

const struct sink_driver sink_file_driver = {
	"file", file_start, file_write, file_sync, file_reopen, file_close
};
