/*
 * spool: segments, ledgers and their owners, for one sink of one worker
 * (see spool.h; the format is segment.h's).
 */
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"
#include "segment.h"
#include "spool.h"

#define SEG_SIZE_MAX	(16 * 1024 * 1024)	/* a segment is rotated beyond this */
#define READ_CHUNK	(256 * 1024)		/* bytes of a segment read at once */
#define SCAN_MS		1000			/* looking for spools left by workers gone */
#define RESYNC_TAIL	(64 * 1024)		/* re-read after a chunk without a valid record */
#define OWNER_MAX	48

/* A run of units spool_read handed out, from one segment of one source. */
struct mark {
	struct source	*src;
	uint64_t	 seq, end;	/* the segment, and the offset after the run */
	size_t		 bytes;		/* in the caller's queue */
	uint64_t	 records;
	uint64_t	 first_ms;	/* the time of its first record */
};

/* One owner's segments: this worker's own, or those of a worker gone. */
struct source {
	struct spool	*sp;
	char		 owner[OWNER_MAX];
	int		 fd;		/* its ledger, locked */
	struct ledger_pos done;		/* delivered up to */
	uint64_t	 first, last;	/* the segments on disk */
	uint64_t	 rseq, roff;	/* read up to */
	int		 rfd;		/* segment rseq, open for reading */
	int		 ended;		/* a taken-over source: its last segment is read to the end */
	int		 resyncing;	/* after damage: looking for the next valid record */
	uint64_t	 records;	/* written (own) or read, not yet delivered */
	struct source	*next;
};

struct spool {
	const struct sink_cfg	*cf;
	int			 idx;		/* the sink's */
	int			 dirfd;
	struct source		*srcs;		/* taken over first, own last */
	struct source		*own;
	int			 wfd;		/* own->last, appending */
	uint64_t		 wsize;
	uint64_t		 wrecords;	/* in wbuf */
	int			 dirty, dir_dirty;
	struct obuf		 wbuf;
	char			*rbuf;
	size_t			 rcap;
	struct mark		*marks;
	size_t			 mhead, mlen, mcap;
	size_t			 consumed;	/* bytes of the oldest mark delivered */
	size_t			 seg_max;
	struct sink_stats	*st;
	struct event		*scan;
	void			(*more)(void *);
	void			*arg;
	struct log_limit	 errlog, badlog;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
seg_name(char *buf, size_t size, const char *owner, uint64_t seq)
{
	snprintf(buf, size, "%s-%016" PRIx64 ".seg", owner, seq);
}

static const char *
sink_name(const struct spool *sp)
{
	return sp->cf->name;
}

/* The metrics of the spool: gauges in the worker's slot. */
static void
publish(struct spool *sp)
{
	uint64_t records = 0, segments = 0, oldest = 0, now = now_ms();

	for (struct source *src = sp->srcs; src; src = src->next) {
		records += src->records;
		segments += src->last >= src->first ? src->last - src->first + 1 : 0;
	}
	if (sp->mlen > 0)
		oldest = sp->marks[sp->mhead].first_ms;
	sp->st->spool_records = records;
	sp->st->spool_segments = segments;
	sp->st->spool_oldest_age = oldest == 0 ? 0 : now > oldest ? (now - oldest) / 1000 + 1 : 1;
}

/* Sync the directory: a segment or ledger was created, renamed or deleted. */
static void
sync_dir(struct spool *sp)
{
	if (sp->dir_dirty && fsync(sp->dirfd) == -1)
		log_limited(&sp->errlog, LOG_LVL_ERROR, "%s: sink %s: spool %s: fsync: %s",
		    proc.name, sink_name(sp), sp->cf->spool.path, strerror(errno));
	sp->dir_dirty = 0;
}

/* Write src's position into the ledger slot after the last one written. */
static void
ledger_write(struct source *src, int sync)
{
	char slot[LEDGER_SLOT];

	src->done.gen++;
	ledger_slot(slot, &src->done);
	if (pwrite(src->fd, slot, sizeof(slot), (off_t)(src->done.gen % 2) * LEDGER_SLOT) !=
	    (ssize_t)sizeof(slot) || (sync && fdatasync(src->fd) == -1))
		log_limited(&src->sp->errlog, LOG_LVL_ERROR, "%s: sink %s: spool ledger %s: %s",
		    proc.name, sink_name(src->sp), src->owner, strerror(errno));
}

static uint64_t
file_size(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, 0) == 0 ? (uint64_t)st.st_size : 0;
}

/* Delete segment seq of src (its ledger passes it, synced). */
static void
unlink_segment(struct source *src, uint64_t seq)
{
	struct spool *sp = src->sp;
	char name[OWNER_MAX + 32];
	uint64_t size;

	seg_name(name, sizeof(name), src->owner, seq);
	size = file_size(sp->dirfd, name);
	if (unlinkat(sp->dirfd, name, 0) == -1 && errno != ENOENT)
		log_limited(&sp->errlog, LOG_LVL_ERROR, "%s: sink %s: spool: unlink %s: %s",
		    proc.name, sink_name(sp), name, strerror(errno));
	sp->st->spool_bytes -= size < sp->st->spool_bytes ? size : sp->st->spool_bytes;
	sp->dir_dirty = 1;
}

/* A source for owner, whose ledger fd is locked. */
static struct source *
new_source(struct spool *sp, const char *owner, int fd)
{
	struct source *src = calloc(1, sizeof(*src));

	if (src == NULL)
		return NULL;
	src->sp = sp;
	snprintf(src->owner, sizeof(src->owner), "%s", owner);
	src->fd = fd;
	src->rfd = -1;
	return src;
}

/*
 * This worker as an owner: a ledger, locked, then renamed into place, so
 * that no scan ever sees it unlocked.
 */
static struct source *
own_source(struct spool *sp)
{
	char owner[OWNER_MAX], tmp[OWNER_MAX + 16], name[OWNER_MAX + 16];
	struct source *src;
	int fd;

	snprintf(owner, sizeof(owner), "w%x-%" PRIx64, (unsigned)getpid(), now_ms());
	snprintf(tmp, sizeof(tmp), "%s.new", owner);
	snprintf(name, sizeof(name), "%s.ledger", owner);
	fd = openat(sp->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1 || flock(fd, LOCK_EX | LOCK_NB) == -1 ||
	    renameat(sp->dirfd, tmp, sp->dirfd, name) == -1 ||
	    (src = new_source(sp, owner, fd)) == NULL) {
		log_warn("%s: sink %s: spool %s: ledger %s", proc.name, sink_name(sp),
		    sp->cf->spool.path, name);
		if (fd != -1) {
			unlinkat(sp->dirfd, tmp, 0);
			close(fd);
		}
		return NULL;
	}
	src->first = 1;
	src->last = 0;		/* no segment yet */
	src->rseq = 1;
	src->roff = SEG_HEADER;
	src->done.seq = 1;
	src->done.off = SEG_HEADER;
	ledger_write(src, 0);
	sp->dir_dirty = 1;
	return src;
}

/* The spool's directory, to list from its start (closedir when done); NULL on failure. */
static DIR *
open_dir(struct spool *sp)
{
	int fd = dup(sp->dirfd);
	DIR *d = fd == -1 ? NULL : fdopendir(fd);

	if (d == NULL && fd != -1)
		close(fd);
	if (d != NULL)
		rewinddir(d);
	return d;
}

/* The segments of owner on disk: their first and last numbers and their bytes; 0 if none. */
static int
find_segments(struct spool *sp, const char *owner, uint64_t *first, uint64_t *last,
    uint64_t *bytes)
{
	size_t n = strlen(owner);
	int found = 0;
	DIR *d = open_dir(sp);
	struct dirent *e;

	if (d == NULL)
		return 0;
	*bytes = 0;
	while ((e = readdir(d)) != NULL) {
		uint64_t seq;
		char *end;

		if (strncmp(e->d_name, owner, n) != 0 || e->d_name[n] != '-')
			continue;
		seq = strtoull(e->d_name + n + 1, &end, 16);
		if (strcmp(end, ".seg") != 0)
			continue;
		*first = found && *first < seq ? *first : seq;
		*last = found && *last > seq ? *last : seq;
		*bytes += file_size(sp->dirfd, e->d_name);
		found = 1;
	}
	closedir(d);
	return found;
}

/* Drop a taken-over source whose segments are all delivered: its ledger goes too. */
static void
retire(struct source *src)
{
	struct spool *sp = src->sp;
	char name[OWNER_MAX + 16];

	for (uint64_t seq = src->first; seq <= src->last && src->last >= src->first; seq++)
		unlink_segment(src, seq);
	snprintf(name, sizeof(name), "%s.ledger", src->owner);
	unlinkat(sp->dirfd, name, 0);
	sp->dir_dirty = 1;
	sync_dir(sp);
	for (struct source **p = &sp->srcs; *p; p = &(*p)->next)
		if (*p == src) {
			*p = src->next;
			break;
		}
	if (src->rfd != -1)
		close(src->rfd);
	close(src->fd);		/* the lock goes with it */
	free(src);
}

/*
 * The ledger fd of a worker gone, locked: where its delivery stands, and
 * its segments.  Returns the source, or NULL (nothing left: retired).
 */
static struct source *
take_over(struct spool *sp, const char *owner, int fd)
{
	char buf[LEDGER_SIZE];
	ssize_t n = pread(fd, buf, sizeof(buf), 0);
	struct source *src = new_source(sp, owner, fd);
	uint64_t bytes = 0;

	if (src == NULL) {
		close(fd);
		return NULL;
	}
	if (!find_segments(sp, owner, &src->first, &src->last, &bytes)) {
		src->first = 1;
		src->last = 0;
	}
	if (n < 0 || ledger_read(buf, (size_t)n, &src->done) == -1) {
		/* a ledger torn in both slots (or never written): everything again */
		log_limited(&sp->badlog, LOG_LVL_WARNING, "%s: sink %s: spool %s: ledger %s "
		    "unreadable: its segments are delivered from their start", proc.name,
		    sink_name(sp), sp->cf->spool.path, owner);
		sp->st->spool_corrupt++;
		src->done.gen = 0;
		src->done.seq = src->first;
		src->done.off = SEG_HEADER;
	}
	sp->st->spool_bytes += bytes;
	while (src->first < src->done.seq && src->first <= src->last)
		unlink_segment(src, src->first++);	/* delivered, not yet deleted */
	if (src->done.seq < src->first) {
		src->done.seq = src->first;
		src->done.off = SEG_HEADER;
	}
	src->rseq = src->done.seq;
	src->roff = src->done.off < SEG_HEADER ? SEG_HEADER : src->done.off;
	src->next = sp->srcs;
	sp->srcs = src;
	if (src->last < src->first) {
		retire(src);
		return NULL;
	}
	log_notice("%s: sink %s: spool %s: taking over %s (%" PRIu64 " segments, %" PRIu64
	    " bytes) from a worker gone", proc.name, sink_name(sp), sp->cf->spool.path, owner,
	    src->last - src->first + 1, bytes);
	sp->st->spool_taken_over++;
	return src;
}

static int
is_source(const struct spool *sp, const char *owner)
{
	for (const struct source *src = sp->srcs; src; src = src->next)
		if (strcmp(src->owner, owner) == 0)
			return 1;
	return 0;
}

/* Take over every ledger whose owner is gone; returns how many. */
static int
scan(struct spool *sp)
{
	int n = 0;
	DIR *d = open_dir(sp);
	struct dirent *e;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char owner[OWNER_MAX];
		size_t len = strlen(e->d_name);
		struct stat st;
		int lfd;

		if (len < 8 || len - 7 >= sizeof(owner) || strcmp(e->d_name + len - 7, ".ledger"))
			continue;
		snprintf(owner, sizeof(owner), "%.*s", (int)(len - 7), e->d_name);
		if (is_source(sp, owner))
			continue;
		if ((lfd = openat(sp->dirfd, e->d_name, O_RDWR | O_CLOEXEC)) == -1)
			continue;
		if (flock(lfd, LOCK_EX | LOCK_NB) == -1 || fstat(lfd, &st) == -1 ||
		    st.st_nlink == 0) {	/* its owner lives, or another took it and is done */
			close(lfd);
			continue;
		}
		if (take_over(sp, owner, lfd) != NULL)
			n++;
	}
	closedir(d);
	return n;
}

static void
on_scan(evutil_socket_t fd, short what, void *arg)
{
	struct spool *sp = arg;

	(void)fd;
	(void)what;
	if (scan(sp) > 0 && sp->more)
		sp->more(sp->arg);
	publish(sp);
}

struct spool *
spool_open(const struct sink_cfg *cf, int idx, struct sink_stats *st, void (*more)(void *),
    void *arg)
{
	struct spool *sp = calloc(1, sizeof(*sp));
	struct timeval tv = { SCAN_MS / 1000, (SCAN_MS % 1000) * 1000 };

	if (sp == NULL)
		return NULL;
	sp->cf = cf;
	sp->idx = idx;
	sp->st = st;
	sp->more = more;
	sp->arg = arg;
	sp->wfd = -1;
	sp->seg_max = (size_t)(cf->spool.max_size / 8 < SEG_SIZE_MAX ? cf->spool.max_size / 8 :
	    SEG_SIZE_MAX);
	sp->dirfd = open(cf->spool.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd == -1 || (sp->own = own_source(sp)) == NULL) {
		if (sp->dirfd == -1)
			log_warn("%s: sink %s: spool %s", proc.name, cf->name, cf->spool.path);
		else
			close(sp->dirfd);
		free(sp);
		return NULL;
	}
	sp->srcs = sp->own;
	sync_dir(sp);
	scan(sp);
	sp->scan = event_new(proc.base, -1, EV_PERSIST, on_scan, sp);
	evtimer_add(sp->scan, &tv);
	publish(sp);
	return sp;
}

/*
 * max_size, across the workers: what a write adds (its records with their
 * heads, and the head of a segment it may begin) is first added to this
 * worker's spool_bytes, then every worker's are summed.  Two workers that
 * write at once each see the other's share, so together they never pass
 * max_size (at worst both wait a turn).  The bytes held until the write is
 * counted, or 0: full.
 */
static uint64_t
reserve(struct spool *sp)
{
	uint64_t len = sp->wbuf.len + SEG_HEADER;

	__atomic_fetch_add(&sp->st->spool_bytes, len, __ATOMIC_SEQ_CST);
	if (stats_sink_sum(sp->idx, offsetof(struct sink_stats, spool_bytes)) <=
	    (uint64_t)sp->cf->spool.max_size)
		return len;
	__atomic_fetch_sub(&sp->st->spool_bytes, len, __ATOMIC_SEQ_CST);
	return 0;
}

/* Forget what spool_put gathered: it was not written. */
void
spool_unput(struct spool *sp)
{
	sp->wbuf.len = 0;
	sp->wrecords = 0;
}

/* Add a unit to what spool_write writes next. */
int
spool_put(struct spool *sp, const char *unit, size_t len)
{
	if (seg_put(&sp->wbuf, unit, len, now_ms()) == -1)
		return -1;
	sp->wrecords++;
	return 0;
}

/* Close the segment being appended to, and begin the next. */
static int
rotate(struct spool *sp)
{
	struct source *own = sp->own;
	char name[OWNER_MAX + 32], head[SEG_HEADER];
	int fd;

	if (sp->wfd != -1) {
		if (sp->dirty && sp->cf->spool.sync == SPOOL_SYNC_ALWAYS && fdatasync(sp->wfd) == -1)
			return -1;
		close(sp->wfd);
		sp->wfd = -1;
	}
	seg_name(name, sizeof(name), own->owner, own->last + 1);
	seg_header(head, now_ms());
	fd = openat(sp->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	if (write(fd, head, sizeof(head)) != (ssize_t)sizeof(head)) {
		int saved = errno ? errno : ENOSPC;

		close(fd);
		unlinkat(sp->dirfd, name, 0);
		errno = saved;
		return -1;
	}
	if (own->last < own->first)
		own->first = own->last + 1;
	own->last++;
	sp->wfd = fd;
	sp->wsize = SEG_HEADER;
	sp->st->spool_bytes += SEG_HEADER;
	sp->dirty = sp->dir_dirty = 1;
	return 0;
}

/*
 * The segment being appended to, when all of it is delivered, goes (its
 * ledger passes it), and the next write begins a new one: so a disk the
 * spool filled is freed once the upstream took everything.  0 if it went.
 */
static int
reclaim(struct spool *sp)
{
	struct source *own = sp->own;

	if (sp->wfd == -1 || own->done.seq != own->last || own->done.off != sp->wsize)
		return -1;
	close(sp->wfd);
	sp->wfd = -1;
	if (own->rfd != -1)
		close(own->rfd);
	own->rfd = -1;
	ledger_write(own, 1);
	unlink_segment(own, own->last);
	sync_dir(sp);
	own->first = own->last + 1;
	own->rseq = own->last + 1;
	own->roff = SEG_HEADER;
	sp->dirty = 0;
	return 0;
}

/*
 * Write what spool_put gathered, in one write(2), to this worker's newest
 * segment (a new one when it is full).  -1 with errno (EDQUOT: max_size is
 * reached; ENOSPC: the disk is full): nothing of it is in the spool, and it
 * is dropped from the buffer; the caller keeps the units and tries again.
 */
int
spool_write(struct spool *sp)
{
	uint64_t held;
	int retried = 0;
	ssize_t n;

	if (sp->wbuf.len == 0)
		return 0;
	if ((held = reserve(sp)) == 0) {
		errno = EDQUOT;
		goto fail;
	}
	if (sp->wfd != -1 && sp->wsize + sp->wbuf.len > sp->seg_max)
		reclaim(sp);
again:
	if ((sp->wfd == -1 || sp->wsize + sp->wbuf.len > sp->seg_max) && rotate(sp) == -1)
		goto fail;
	if ((n = write(sp->wfd, sp->wbuf.p, sp->wbuf.len)) != (ssize_t)sp->wbuf.len) {
		int saved = n == -1 ? errno : ENOSPC;

		if (n > 0 && ftruncate(sp->wfd, (off_t)sp->wsize) == -1)	/* no torn record */
			log_warn("%s: sink %s: spool: ftruncate", proc.name, sink_name(sp));
		if (saved == ENOSPC && !retried++ && reclaim(sp) == 0)
			goto again;	/* the disk is full of what was delivered */
		errno = saved;
		goto fail;
	}
	sp->wsize += sp->wbuf.len;
	sp->st->spool_bytes += sp->wbuf.len;
	__atomic_fetch_sub(&sp->st->spool_bytes, held, __ATOMIC_SEQ_CST);
	sp->own->records += sp->wrecords;
	sp->dirty = 1;
	spool_unput(sp);
	return 0;
fail:
	if (held)
		__atomic_fetch_sub(&sp->st->spool_bytes, held, __ATOMIC_SEQ_CST);
	spool_unput(sp);
	return -1;
}

/* Force what was written to disk: one fdatasync for the turn, and the directory if it changed. */
int
spool_sync(struct spool *sp)
{
	if (sp->dirty && sp->wfd != -1 && fdatasync(sp->wfd) == -1)
		return -1;
	sp->dirty = 0;
	sync_dir(sp);
	return 0;
}

static int
push_mark(struct spool *sp, const struct mark *m)
{
	if (sp->mhead + sp->mlen == sp->mcap) {
		if (sp->mhead > 0) {
			memmove(sp->marks, sp->marks + sp->mhead, sp->mlen * sizeof(*m));
			sp->mhead = 0;
		} else {
			size_t cap = sp->mcap ? sp->mcap * 2 : 64;
			struct mark *p = realloc(sp->marks, cap * sizeof(*m));

			if (p == NULL)
				return -1;
			sp->marks = p;
			sp->mcap = cap;
		}
	}
	sp->marks[sp->mhead + sp->mlen++] = *m;
	return 0;
}

/* Open segment src->rseq for reading; -1 when it cannot be read (skipped). */
static int
open_segment(struct source *src)
{
	struct spool *sp = src->sp;
	char name[OWNER_MAX + 32], head[SEG_HEADER];
	const char *why = "cannot be read";

	ssize_t n = -1;
	int renamed = 0;

	seg_name(name, sizeof(name), src->owner, src->rseq);
	src->rfd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (src->rfd != -1 && (n = pread(src->rfd, head, sizeof(head), 0)) == (ssize_t)sizeof(head) &&
	    seg_header_ok(head, sizeof(head), &why) == 0)
		return 0;
	if (src->rfd == -1 && errno == ENOENT)
		why = "missing";
	else if (n >= 0 && n < (ssize_t)sizeof(head))
		why = "cut short in its header (a crash as it was created)";
	if (n == (ssize_t)sizeof(head)) {
		/* a whole header, not ours or of another version: kept for whoever can read it */
		char aside[OWNER_MAX + 48];

		snprintf(aside, sizeof(aside), "%s.unreadable", name);
		renamed = renameat(sp->dirfd, name, sp->dirfd, aside) == 0;
	}
	if (src->rfd != -1)
		close(src->rfd);
	src->rfd = -1;
	log_limited(&sp->badlog, LOG_LVL_WARNING, "%s: sink %s: spool: segment %s: %s; skipped%s",
	    proc.name, sink_name(sp), name, why, renamed ? " (renamed .unreadable)" : "");
	sp->st->spool_corrupt++;
	return -1;
}

/* The end of what src->rseq holds now: the writer's size for its own segment. */
static uint64_t
read_limit(const struct source *src)
{
	return src == src->sp->own && src->rseq == src->last ? src->sp->wsize : UINT64_MAX;
}

/* Move src's reading to its next segment; 0 when it has none (yet). */
static int
next_segment(struct source *src)
{
	struct mark m = { src, 0, SEG_HEADER, 0, 0, 0 };

	if (src->rseq >= src->last) {
		if (src != src->sp->own)
			src->ended = 1;
		return 0;
	}
	if (src->rfd != -1)
		close(src->rfd);
	src->rfd = -1;
	src->rseq++;
	src->roff = SEG_HEADER;
	m.seq = src->rseq;
	push_mark(src->sp, &m);		/* so that delivery passes the segment before */
	return 1;
}

/* What is at offset at of src's current chunk is skipped, for what. */
static void
skipped(struct spool *sp, const struct source *src, uint64_t at, const char *what)
{
	char name[OWNER_MAX + 32];

	seg_name(name, sizeof(name), src->owner, src->rseq);
	log_limited(&sp->badlog, LOG_LVL_WARNING, "%s: sink %s: spool: segment %s: %s at "
	    "offset %" PRIu64 "; skipped", proc.name, sink_name(sp), name, what, src->roff + at);
	sp->st->spool_corrupt++;
}

/* Room for a read of want bytes. */
static int
read_room(struct spool *sp, size_t want)
{
	char *p;

	if (sp->rcap >= want)
		return 0;
	if ((p = realloc(sp->rbuf, want)) == NULL)
		return -1;
	sp->rbuf = p;
	sp->rcap = want;
	return 0;
}

/* The end of src's current segment: the writer's size, or the file's. */
static uint64_t
segment_end(const struct source *src)
{
	struct stat st;

	if (read_limit(src) != UINT64_MAX)
		return read_limit(src);
	return fstat(src->rfd, &st) == 0 ? (uint64_t)st.st_size : src->roff;
}

/* The rest of src's segment cannot be read: the mark m of what was read ends past it. */
static int
skip_rest(struct spool *sp, struct source *src, struct mark *m)
{
	src->resyncing = 0;
	src->roff = segment_end(src);
	m->end = src->roff;
	if (src != sp->own) {
		src->records += m->records;
		sp->st->spool_recovered += m->records;
	}
	return push_mark(sp, m) == -1 ? -1 : 1;
}

/*
 * Units from one read of src's current segment into q, at least need
 * bytes of it (a record longer than a chunk).  Returns 0, 1 at the
 * segment's end (for now), -1 when it cannot go on now (no memory).
 */
static int
read_chunk(struct spool *sp, struct source *src, struct obuf *q, size_t need)
{
	uint64_t limit = read_limit(src), off = 0, left = limit - src->roff;
	size_t want = need > READ_CHUNK ? need : READ_CHUNK;
	struct mark m = { src, src->rseq, 0, 0, 0, 0 };
	struct seg_record r;
	ssize_t n;

	want = left < want ? (size_t)left : want;
	if (want == 0)
		return 1;
	if (read_room(sp, want) == -1)
		return -1;
	if ((n = pread(src->rfd, sp->rbuf, want, (off_t)src->roff)) <= 0)
		return 1;
	while (off < (uint64_t)n) {
		enum seg_result res = seg_next(sp->rbuf + off, (size_t)n - off, &r);

		if (res == SEG_SHORT && off == 0 && (size_t)n == want && r.size > want &&
		    r.size <= left)
			return read_chunk(sp, src, q, r.size);	/* longer than a chunk */
		if (res == SEG_SHORT && off == 0) {
			if (!src->resyncing)
				skipped(sp, src, 0, "a torn record (the last write before a crash)");
			return skip_rest(sp, src, &m);
		}
		if (res == SEG_SHORT)
			break;
		if (res != SEG_OK) {
			size_t at = seg_resync(sp->rbuf, (size_t)n, off);

			if (!src->resyncing)
				skipped(sp, src, off, res == SEG_BAD_HEAD ? "a damaged record header" :
				    "a record whose checksum does not match");
			src->resyncing = 1;
			if (at < (size_t)n) {
				off = at;
				continue;
			}
			/* none here: on from near the end, for a record that runs past it */
			off = (size_t)n > off + RESYNC_TAIL ? (size_t)n - RESYNC_TAIL : off + 1;
			break;
		} else {
			src->resyncing = 0;
			if (obuf_reserve(q, r.len) == -1)
				return -1;
			memcpy(q->p + q->len, r.payload, r.len);
			q->len += r.len;
			m.bytes += r.len;
			if (m.records++ == 0)
				m.first_ms = r.time_ms;
		}
		off += r.size;
	}
	src->roff += off;
	m.end = src->roff;
	if (src != sp->own) {
		src->records += m.records;
		sp->st->spool_recovered += m.records;
	}
	return push_mark(sp, &m);
}

/* Read src until q has want more bytes, or src nothing more for now. */
static void
read_source(struct spool *sp, struct source *src, struct obuf *q, size_t start, size_t want)
{
	while (q->len - start < want && !src->ended && src->rseq <= src->last) {
		int rc;

		if (src->rfd == -1 && open_segment(src) == -1) {
			if (!next_segment(src))
				return;
			continue;
		}
		if ((rc = read_chunk(sp, src, q, 0)) == -1 || (rc == 1 && !next_segment(src)))
			return;
	}
}

/*
 * Up to want bytes of whole units (at least one, if any) appended to q, the
 * oldest first: the sources taken over, then this worker's own.
 */
size_t
spool_read(struct spool *sp, struct obuf *q, size_t want)
{
	size_t start = q->len;

	for (struct source *src = sp->srcs; src && q->len - start < want; src = src->next)
		read_source(sp, src, q, start, want);
	spool_delivered(sp, 0);		/* marks of no bytes: segments passed, sources done */
	return q->len - start;
}

/* Whether anything is in the spool that spool_read has not handed out. */
int
spool_unread(const struct spool *sp)
{
	for (const struct source *src = sp->srcs; src; src = src->next) {
		if (src->ended || src->last < src->first)
			continue;
		if (src->rseq < src->last || src->roff < read_limit(src))
			return 1;
	}
	return 0;
}

/* src's delivery passed segments: the ledger is synced, then they go. */
static void
passed(struct source *src)
{
	struct spool *sp = src->sp;
	uint64_t keep = src == sp->own ? src->last : UINT64_MAX;	/* not the one appended to */

	if (src->first >= src->done.seq || src->first >= keep)
		return;
	ledger_write(src, 1);
	while (src->first < src->done.seq && src->first < keep)
		unlink_segment(src, src->first++);
	sync_dir(sp);
}

/*
 * The first n bytes of what spool_read handed out were written by the
 * driver: they leave the spool (their ledger moves; passed segments go).
 */
void
spool_delivered(struct spool *sp, size_t n)
{
	struct source *moved = NULL;

	sp->consumed += n;
	while (sp->mlen > 0 && sp->marks[sp->mhead].bytes <= sp->consumed) {
		struct mark *m = &sp->marks[sp->mhead];
		struct source *src = m->src;

		sp->consumed -= m->bytes;
		src->records -= m->records < src->records ? m->records : src->records;
		src->done.seq = m->seq;
		src->done.off = m->end;
		if (moved != NULL && moved != src) {
			ledger_write(moved, 0);
			passed(moved);
		}
		moved = src;
		sp->mhead++;
		sp->mlen--;
	}
	if (moved != NULL) {
		ledger_write(moved, 0);
		passed(moved);
	}
	for (struct source *src = sp->srcs, *next; src; src = next) {
		next = src->next;
		if (src != sp->own && src->ended && src->rseq == src->done.seq &&
		    src->roff == src->done.off)
			retire(src);	/* read to its end, and delivered */
	}
	publish(sp);
}

/*
 * At exit: the ledgers synced and the locks released with the descriptors;
 * what is left is taken over by the next worker.  A spool of this worker's
 * that holds nothing goes.
 */
void
spool_close(struct spool *sp)
{
	if (sp == NULL)
		return;
	spool_sync(sp);
	evtimer_del(sp->scan);
	event_free(sp->scan);
	if (sp->wfd != -1)
		close(sp->wfd);
	while (sp->srcs) {
		struct source *src = sp->srcs;

		ledger_write(src, 1);
		if (src == sp->own && (src->last < src->first ||
		    (src->done.seq == src->last && src->done.off == sp->wsize))) {
			src->ended = 1;
			retire(src);	/* empty: nothing to take over */
			continue;
		}
		sp->srcs = src->next;
		if (src->rfd != -1)
			close(src->rfd);
		close(src->fd);
		free(src);
	}
	close(sp->dirfd);
	obuf_free(&sp->wbuf);
	free(sp->rbuf);
	free(sp->marks);
	free(sp);
}
