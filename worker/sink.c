/*
 * sink: queues, batched writes and back-pressure for the file and stdout
 * sinks of one worker.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "conn.h"
#include "log.h"
#include "sink.h"
#include "worker.h"

#define RETRY_MIN_MS	100
#define RETRY_MAX_MS	5000

struct sink {
	const struct sink_cfg	*cf;
	struct obuf		 q;		/* whole lines not yet written */
	int			 fd;
	char			 path[PATH_MAX];	/* expanded path fd was opened as */
	struct event		*timer;		/* flush_interval, or retry back-off */
	long			 retry_ms;	/* 0 while writes succeed */
	int			 blocked;	/* a "block" sink over its queue */
	int			 unsynced;	/* written since the last fdatasync */
	uint64_t		 done;		/* bytes written (with sync = always: synced) */
	struct sink_stats	*st;		/* in the worker's stats slot */
	struct log_limit	 errlog, droplog;
};

static struct sink	 sinks[CFG_MAX_SINKS];
static int		 nsinks;
static int		 nblocked;

static void	on_timer(evutil_socket_t, short, void *);

static void
arm(struct sink *s, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(s->timer, &tv);
}

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
		snprintf(s->path, sizeof(s->path), "stdout");
		return 0;
	}
	if (expand_path(s, path, sizeof(path)) == -1) {
		log_limited(&s->errlog, LOG_LVL_ERROR, "%s: sink %s: path \"%s\" expands to nothing",
		    wrk.name, s->cf->name, s->cf->path);
		return -1;
	}
	if (s->fd != -1 && strcmp(path, s->path) == 0)
		return 0;
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) == -1) {
		log_limited(&s->errlog, LOG_LVL_ERROR, "%s: sink %s: cannot open %s: %s", wrk.name,
		    s->cf->name, path, strerror(errno));
		return -1;
	}
	if (s->fd != -1)
		close(s->fd);
	s->fd = fd;
	snprintf(s->path, sizeof(s->path), "%s", path);
	return 0;
}

/*
 * A short write (disk full) may end inside a line.  Under the file's lock
 * nobody appended after us, so cut the file back to our last whole line;
 * returns how many queued bytes are now in the file.
 */
static size_t
keep_whole_lines(struct sink *s, size_t written)
{
	off_t end = lseek(s->fd, 0, SEEK_CUR);
	size_t keep = written;

	while (keep > 0 && s->q.p[keep - 1] != '\n')
		keep--;
	if (keep < written && (end == -1 || ftruncate(s->fd, end - (off_t)(written - keep)) == -1))
		log_warn("%s: sink %s: cannot remove a partial line from %s", wrk.name, s->cf->name,
		    s->path);
	return keep;
}

/*
 * A POSIX record lock on the whole file.  Unlike flock(2), it belongs to the
 * process, so workers that share one open stdout (a pipe, a socket, a
 * terminal) exclude each other too.
 */
static int
lock(int fd, short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	int rc;

	while ((rc = fcntl(fd, F_SETLKW, &fl)) == -1 && errno == EINTR)
		;
	return rc;
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

	if (lock(s->fd, F_WRLCK) == -1)
		return -1;
	do
		n = write(s->fd, s->q.p, s->q.len);
	while (n == -1 && errno == EINTR);
	if (n > 0 && (size_t)n < s->q.len && regular)
		n = keep_whole_lines(s, n);
	saved = errno;
	lock(s->fd, F_UNLCK);
	errno = saved;
	if (n >= 0 && (size_t)n < s->q.len && errno == 0)
		errno = ENOSPC;		/* a short write is the kernel saying "full" */
	return n;
}

static void
update_blocked(struct sink *s)
{
	int over = s->cf->overflow == OVERFLOW_BLOCK &&
	    s->q.len >= (size_t)(s->blocked ? s->cf->queue / 2 : s->cf->queue);

	if (over == s->blocked)
		return;
	s->blocked = over;
	nblocked += over ? 1 : -1;
	if (over)
		log_limited(&s->droplog, LOG_LVL_WARNING, "%s: sink %s: queue full (%ld bytes); "
		    "not reading from clients until it drains", wrk.name, s->cf->name, s->cf->queue);
	conn_set_reading(nblocked == 0);
}

/*
 * A queue that grew while the disk was slow or full gives its memory back
 * once it is written out; a batch-sized buffer stays for the next events.
 */
static void
release_backlog(struct sink *s)
{
	if (s->q.cap <= 4 * SINK_BATCH)
		return;
	free(s->q.p);
	s->q.p = NULL;
	s->q.cap = 0;
}

/* Lines to write, or (sync = always) written lines to sync. */
static int
pending(const struct sink *s)
{
	return s->q.len > 0 || (s->cf->sync == SYNC_ALWAYS && s->unsynced);
}

/* Write what is queued; on failure keep it and retry with a back-off. */
static void
flush(struct sink *s)
{
	int always = s->cf->sync == SYNC_ALWAYS;
	uint64_t done = s->done;
	ssize_t n = 0;

	if (!pending(s))
		return;
	errno = 0;
	if (s->q.len > 0)
		n = open_current(s) == 0 ? write_file(s) : -1;
	if (n > 0) {
		s->st->bytes += n;
		s->q.len -= n;
		memmove(s->q.p, s->q.p + n, s->q.len);
		s->unsynced = 1;
	}
	if (always && s->unsynced && fdatasync(s->fd) == 0)
		s->unsynced = 0;
	if (!always || !s->unsynced)
		s->done = s->st->bytes;
	if (s->done != done)
		conn_sinks_progressed();	/* acknowledgements may go out */
	if (!pending(s)) {
		if (s->retry_ms)
			log_notice("%s: sink %s: writing again", wrk.name, s->cf->name);
		s->retry_ms = 0;
		release_backlog(s);
	} else {
		s->st->errors++;
		s->retry_ms = s->retry_ms ? s->retry_ms * 2 : RETRY_MIN_MS;
		if (s->retry_ms > RETRY_MAX_MS)
			s->retry_ms = RETRY_MAX_MS;
		if (errno)
			log_limited(&s->errlog, LOG_LVL_ERROR, "%s: sink %s: write %s: %s; %zu bytes "
			    "queued, retrying in %ld ms", wrk.name, s->cf->name, s->path,
			    strerror(errno), s->q.len, s->retry_ms);
		arm(s, s->retry_ms);
	}
	s->st->queued = s->q.len;
	update_blocked(s);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sink *s = arg;

	(void)fd;
	(void)what;
	flush(s);
	if (s->cf->sync == SYNC_INTERVAL && s->unsynced && fdatasync(s->fd) == 0)
		s->unsynced = 0;
}

int
sink_open_all(const struct config *cf)
{
	nsinks = cf->nsinks;
	nblocked = 0;
	for (int i = 0; i < nsinks; i++) {
		struct sink *s = &sinks[i];

		memset(s, 0, sizeof(*s));
		s->cf = &cf->sinks[i];
		s->st = &wrk.stats->sink[i];
		s->fd = -1;
		s->timer = evtimer_new(wrk.base, on_timer, s);
		if (open_current(s) == -1)
			log_warnx("%s: sink %s: events are queued until the file can be opened",
			    wrk.name, s->cf->name);
	}
	return 0;
}

/*
 * Room for need more bytes in the queue, or NULL when a "drop" sink is
 * full.  A "block" sink grows past its queue by what one read brings; the
 * worker then stops reading (update_blocked).
 */
struct obuf *
sink_reserve(int idx, size_t need)
{
	struct sink *s = &sinks[idx];
	struct obuf *q = &s->q;

	/* need is a worst case for any bytes; a queue with room takes one more event */
	if (s->cf->overflow == OVERFLOW_DROP && q->len >= (size_t)s->cf->queue)
		return NULL;
	if (obuf_reserve(q, need) == -1) {
		log_warn("%s: sink %s: queue", wrk.name, s->cf->name);
		return NULL;
	}
	return q;
}

/* A line was appended: write a full batch now, else within flush_interval. */
void
sink_commit(int idx)
{
	struct sink *s = &sinks[idx];
	size_t batch = SINK_BATCH < s->cf->queue / 2 ? SINK_BATCH : s->cf->queue / 2;

	s->st->events++;
	s->st->queued = s->q.len;
	if (s->retry_ms)
		update_blocked(s);	/* writes fail: the retry timer is armed */
	else if (s->q.len >= batch)
		flush(s);
	else if (!evtimer_pending(s->timer, NULL))
		arm(s, s->cf->flush_interval_ms);
}

/*
 * For acknowledgements: a mark of what is queued now, whether the sink has
 * written (and with sync = always, synced) everything up to a mark, and a
 * request to write without waiting for flush_interval.
 */
uint64_t
sink_mark(int idx)
{
	return sinks[idx].st->bytes + sinks[idx].q.len;
}

int
sink_reached(int idx, uint64_t mark)
{
	return sinks[idx].done >= mark;
}

/* Write at the next turn of the loop, with whatever else this turn queues. */
void
sink_flush_soon(int idx)
{
	struct sink *s = &sinks[idx];
	struct timeval now = { 0, 0 };

	if (s->retry_ms == 0 && pending(s))
		evtimer_add(s->timer, &now);
}

void
sink_dropped(int idx)
{
	struct sink *s = &sinks[idx];

	s->st->dropped++;
	log_limited(&s->droplog, LOG_LVL_WARNING, "%s: sink %s: queue full; dropping events "
	    "(%llu so far)", wrk.name, s->cf->name, (unsigned long long)s->st->dropped);
}

/* SIGUSR1: the next batch opens the file by name again. */
void
sink_reopen_all(void)
{
	for (int i = 0; i < nsinks; i++) {
		struct sink *s = &sinks[i];

		if (s->fd != -1) {
			close(s->fd);
			s->fd = -1;
		}
	}
}

/* Exit: write what is queued, retrying until the deadline; report losses. */
void
sink_close_all(long deadline_ms)
{
	for (int i = 0; i < nsinks; i++) {
		struct sink *s = &sinks[i];

		for (;;) {
			s->retry_ms = 0;
			flush(s);
			if (s->q.len == 0 || clock_ms() >= deadline_ms)
				break;
			usleep(RETRY_MIN_MS * 1000);
		}
		if (s->q.len)
			log_error("%s: sink %s: %zu bytes of events could not be written and are lost",
			    wrk.name, s->cf->name, s->q.len);
		evtimer_del(s->timer);
		event_free(s->timer);
		if (s->fd != -1)
			close(s->fd);
		free(s->q.p);
	}
	nsinks = 0;
}

const struct sink_stats *
sink_stats(int idx)
{
	return sinks[idx].st;
}
