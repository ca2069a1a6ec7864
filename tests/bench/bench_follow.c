/*
 * bench_follow: --follow FILE.  Tails the file an ingestd sink writes,
 * finds "c=CONN s=SEQ" in each line (in the event's msg, or wherever the
 * line holds it) and proves exactly-once arrival: each (CONN, SEQ) seen is
 * marked in a bitmap per connection, a second sighting is a duplicate, and
 * in the end every record the senders wholly wrote that no line holds is
 * missing, and every line for a record they did not write is unexpected.
 * Lines whose connection id is not one of this run's (see --id-base) are
 * foreign: counted, and otherwise left alone.
 *
 * The time from the start to the first sighting of the last record seen
 * gives the rate records went through the server, end to end.
 * In rate and churn mode the first sighting of a record is also its
 * arrival: the latency from its due time, t0 + (SEQ * C + CONN) / R in rate
 * (see bench_rate.c), t0 + CONN / R in churn (its connection's, see
 * bench_churn.c), to the read(2) that brought its line goes into the
 * histogram.  inotify
 * on the file's directory wakes the parent as soon as a line is appended.
 *
 * Lines already in the file at the start are skipped.  The file may not
 * exist yet, may be appended by several writers at once, and may be
 * truncated or replaced (rotation): reading then restarts at its beginning.
 */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#define BUF_SIZE	(4 << 20)	/* longest line looked at whole */
#define READ_MAX	(16 << 20)	/* bytes per follow_read(), to stay responsive */
#define MAX_SEQ		(1ULL << 32)

struct fconn {
	uint64_t	*bits;
	uint64_t	 nbits;
	uint64_t	 expected;	/* records sent, once known */
	int		 known;
};

struct follow {
	char		*path;
	int		 fd, ino;
	off_t		 pos;
	char		*buf;
	size_t		 len;
	int		 skipping;	/* the rest of a line longer than BUF_SIZE */
	struct fconn	*conns;
	size_t		 nconns;
	uint64_t	 base, nids;	/* our ids: base .. base + nids - 1 */
	int		 timed, churn;
	double		 t0, rate;
	double		 last;		/* when the latest new record was read */
	unsigned	 nconn_sched;
	uint64_t	 expected, in_range;	/* sent; seen of those */
	struct follow_stats st;
};

static void
watch_dir(struct follow *f)
{
	char *dup = strdup(f->path);

	f->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (f->ino >= 0 && dup &&
	    inotify_add_watch(f->ino, dirname(dup), IN_MODIFY | IN_CREATE | IN_MOVED_TO) == -1) {
		close(f->ino);
		f->ino = -1;
	}
	free(dup);
}

/*
 * Follow path from its current end.  The run's connection ids are base ..
 * base + nids - 1; follow_expect() takes them less base.
 */
struct follow *
follow_open(const char *path, uint64_t base, uint64_t nids)
{
	struct follow *f = calloc(1, sizeof(*f));

	if (f == NULL || (f->buf = malloc(BUF_SIZE)) == NULL || (f->path = strdup(path)) == NULL)
		err(EX_FAILED, "follow");
	f->base = base;
	f->nids = nids;
	if ((f->fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0)
		f->pos = lseek(f->fd, 0, SEEK_END);
	else if (errno != ENOENT)
		warn("%s", path);
	watch_dir(f);
	return f;
}

/*
 * The run starts at t0; in rate or churn mode (rate > 0), with this
 * schedule, for the latency.
 */
void
follow_start(struct follow *f, double t0, double rate, unsigned conns, int churn)
{
	f->t0 = t0;
	f->timed = rate > 0;
	f->churn = churn;
	f->rate = rate;
	f->nconn_sched = conns;
}

int
follow_fd(const struct follow *f)
{
	return f->ino;
}

static struct fconn *
conn_of(struct follow *f, uint64_t c)
{
	size_t n = f->nconns ? f->nconns : 64;
	struct fconn *p;

	if (c < f->nconns)
		return &f->conns[c];
	while (n <= c)
		n *= 2;
	if ((p = realloc(f->conns, n * sizeof(*p))) == NULL)
		err(EX_FAILED, "follow");
	memset(p + f->nconns, 0, (n - f->nconns) * sizeof(*p));
	f->conns = p;
	f->nconns = n;
	return &p[c];
}

static void
grow_bits(struct fconn *fc, uint64_t s)
{
	uint64_t n = fc->nbits ? fc->nbits : 1024;
	uint64_t *p;

	while (n <= s)
		n *= 2;
	if ((p = realloc(fc->bits, n / 8)) == NULL)
		err(EX_FAILED, "follow");
	memset(p + fc->nbits / 64, 0, (n - fc->nbits) / 8);
	fc->bits = p;
	fc->nbits = n;
}

static void
mark(struct follow *f, uint64_t c, uint64_t s, double t)
{
	struct fconn *fc;
	double lat;

	if (c < f->base || c - f->base >= f->nids || s >= MAX_SEQ) {
		f->st.foreign++;
		return;
	}
	c -= f->base;
	fc = conn_of(f, c);
	if (s >= fc->nbits)
		grow_bits(fc, s);
	if (fc->bits[s / 64] & (1ULL << (s % 64))) {
		f->st.duplicates++;
		return;
	}
	fc->bits[s / 64] |= 1ULL << (s % 64);
	f->last = t;
	if (fc->known && s < fc->expected)
		f->in_range++;
	if (f->timed) {
		lat = t - (f->t0 + (f->churn ? c : s * f->nconn_sched + c) / f->rate);
		hist_add(&f->st.latency, lat > 0 ? (uint64_t)(lat * 1e6) : 0);
	}
}

static int
number(const char **p, const char *end, uint64_t *v)
{
	const char *q = *p;

	*v = 0;
	while (q < end && *q >= '0' && *q <= '9' && q - *p < 19)
		*v = *v * 10 + (*q++ - '0');
	if (q == *p)
		return -1;
	*p = q;
	return 0;
}

/* The first "c=DIGITS s=DIGITS" of a line. */
static int
find_cs(const char *p, size_t n, uint64_t *c, uint64_t *s)
{
	const char *end = p + n, *q = p;

	while ((q = memmem(q, end - q, "c=", 2)) != NULL) {
		q += 2;
		if (number(&q, end, c) == 0 && end - q > 3 && memcmp(q, " s=", 3) == 0) {
			q += 3;
			if (number(&q, end, s) == 0)
				return 0;
		}
	}
	return -1;
}

static void
line(struct follow *f, const char *p, size_t n, double t)
{
	uint64_t c, s;

	f->st.lines++;
	if (find_cs(p, n, &c, &s) == 0)
		mark(f, c, s, t);
}

/* Hand out the whole lines in the buffer; keep the last, partial one. */
static void
scan(struct follow *f, double t)
{
	char *p = f->buf, *end = f->buf + f->len, *nl;

	while ((nl = memchr(p, '\n', end - p)) != NULL) {
		if (!f->skipping)
			line(f, p, nl - p, t);
		f->skipping = 0;
		p = nl + 1;
	}
	if (p == f->buf && f->len == BUF_SIZE) {
		if (!f->skipping)
			line(f, p, f->len, t);
		f->skipping = 1;
		p = end;
	}
	f->len = end - p;
	memmove(f->buf, p, f->len);
}

/* At the end of the file: was it truncated or replaced? */
static void
check_rotation(struct follow *f)
{
	struct stat fst, pst;

	if (fstat(f->fd, &fst) == -1)
		return;
	if (fst.st_size < f->pos) {
		lseek(f->fd, 0, SEEK_SET);
		f->pos = 0;
		f->len = 0;
	} else if (stat(f->path, &pst) == -1 || pst.st_ino != fst.st_ino ||
	    pst.st_dev != fst.st_dev) {
		close(f->fd);
		f->fd = -1;
		f->pos = 0;
		f->len = 0;
	}
}

static void
drain_inotify(struct follow *f)
{
	char buf[4096];

	while (f->ino >= 0 && read(f->ino, buf, sizeof(buf)) > 0)
		;
}

/*
 * Read what was appended since the last call, at most READ_MAX bytes:
 * 1 when there may be more to read at once, else 0.
 */
int
follow_read(struct follow *f)
{
	size_t total = 0;
	ssize_t n;

	drain_inotify(f);
	while (total < READ_MAX) {
		if (f->fd < 0 && (f->fd = open(f->path, O_RDONLY | O_CLOEXEC)) < 0)
			return 0;
		n = read(f->fd, f->buf + f->len, BUF_SIZE - f->len);
		if (n <= 0) {
			if (n == -1)
				warn("%s", f->path);
			else
				check_rotation(f);
			return 0;
		}
		f->pos += n;
		f->len += n;
		total += n;
		scan(f, now());
	}
	return 1;
}

/* Records seen on a connection with a sequence number from .. to-1. */
static uint64_t
count_bits(const struct fconn *fc, uint64_t from, uint64_t to)
{
	uint64_t n = 0;

	if (to > fc->nbits)
		to = fc->nbits;
	for (; from < to && from % 64; from++)
		n += (fc->bits[from / 64] >> (from % 64)) & 1;
	for (; from + 64 <= to; from += 64)
		n += __builtin_popcountll(fc->bits[from / 64]);
	for (; from < to; from++)
		n += (fc->bits[from / 64] >> (from % 64)) & 1;
	return n;
}

/* Connection base + id sent n records in all. */
void
follow_expect(struct follow *f, uint64_t id, uint64_t n)
{
	struct fconn *fc;

	if (id >= f->nids) {
		warnx("follow: connection id %llu out of range", (unsigned long long)id);
		return;
	}
	fc = conn_of(f, id);
	fc->known = 1;
	fc->expected = n;
	f->expected += n;
	f->in_range += count_bits(fc, 0, n);
}

/* Every record sent was seen (once follow_expect() has been told all). */
int
follow_complete(const struct follow *f)
{
	return f->in_range == f->expected;
}

/* The counts, once reading is over; the latency when follow_timing() was set. */
const struct follow_stats *
follow_stats(struct follow *f)
{
	struct follow_stats *st = &f->st;
	uint64_t beyond = 0;

	st->received = f->in_range;
	st->missing = f->expected - f->in_range;
	st->timed = f->timed;
	for (size_t c = 0; c < f->nconns; c++) {
		struct fconn *fc = &f->conns[c];

		beyond += count_bits(fc, fc->known ? fc->expected : 0, fc->nbits);
	}
	st->unexpected = beyond;
	st->seconds = f->last > f->t0 ? f->last - f->t0 : 0;
	return st;
}

void
follow_close(struct follow *f)
{
	for (size_t c = 0; c < f->nconns; c++)
		free(f->conns[c].bits);
	free(f->conns);
	if (f->fd >= 0)
		close(f->fd);
	if (f->ino >= 0)
		close(f->ino);
	free(f->buf);
	free(f->path);
	free(f);
}
