/*
 * bench_relp: one RELP client session's records and frames, without I/O
 * policy: the queue of records not yet answered, the frames that carry
 * them, and the parsing of the server's responses.
 *
 *   FRAME = TXNR SP COMMAND SP DATALEN [SP DATA] LF
 *
 * A session opens with "1 open" and offers commands=syslog; each record
 * goes out as "TXNR syslog LEN MSG".  The queue holds a copy of every
 * record from the oldest one not answered to the newest one made, in the
 * order of their sequence numbers; the first nframed of them were framed
 * in the current session, with consecutive transaction numbers, so an
 * answer's TXNR finds its record by subtraction.  When a session ends
 * (serverclose, EOF, a reset), relp_session() begins the next one and the
 * records not answered are framed again, with new TXNRs and the same
 * content: a RELP server may then store a record twice, never lose one it
 * answered "200 OK".
 */
#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define TXNR_MAX	999999999U
#define HEAD_MAX	40		/* "TXNR syslog LEN " */
#define IN_SIZE		8192
#define CMD_MAX		32
#define OFFERS		"relp_version=0\nrelp_software=ingestd-bench,0.1.0\ncommands=syslog"

static int said_rejected;

static struct rrec *
at(const struct relp *r, size_t i)
{
	return &r->q[(r->head + i) & (r->cap - 1)];
}

static char *
data_of(const struct relp *r, const struct rrec *e)
{
	return r->data + (size_t)(e - r->q) * r->slot;
}

int
relp_init(struct relp *r, uint32_t id)
{
	memset(r, 0, sizeof(*r));
	r->id = id;
	r->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)id << 1 | 1);
	r->slot = rec_frame_max();
	r->cap = 16;
	r->outcap = 4096;
	if ((r->q = calloc(r->cap, sizeof(*r->q))) == NULL ||
	    (r->data = malloc(r->cap * r->slot)) == NULL ||
	    (r->in = malloc(IN_SIZE)) == NULL || (r->out = malloc(r->outcap)) == NULL)
		return -1;
	return 0;
}

void
relp_free(struct relp *r)
{
	free(r->q);
	free(r->data);
	free(r->in);
	free(r->out);
	memset(r, 0, sizeof(*r));
}

/* Double the queue, its oldest record first. */
static int
grow(struct relp *r)
{
	size_t cap = r->cap * 2;
	struct rrec *q = calloc(cap, sizeof(*q));
	char *data = malloc(cap * r->slot);

	if (q == NULL || data == NULL) {
		free(q);
		free(data);
		return -1;
	}
	for (size_t i = 0; i < r->count; i++) {
		q[i] = *at(r, i);
		memcpy(data + i * r->slot, data_of(r, at(r, i)), r->slot);
	}
	free(r->q);
	free(r->data);
	r->q = q;
	r->data = data;
	r->cap = cap;
	r->head = 0;
	return 0;
}

/* Make the connection's next record, due (or made) at t; -1 when out of memory. */
int
relp_add(struct relp *r, double t)
{
	struct rrec *e;
	size_t n;

	if (r->count == r->cap && grow(r) == -1)
		return -1;
	e = at(r, r->count);
	n = rec_put(data_of(r, e), r->id, r->seq, &r->rng);
	*e = (struct rrec){ .seq = r->seq++, .t = t, .len = n - 1 };	/* without its LF */
	r->count++;
	return 0;
}

static int
reserve(struct relp *r, size_t n)
{
	char *p;
	size_t cap = r->outcap;

	if (r->outoff > 0 && r->outoff == r->outlen)
		r->outoff = r->outlen = 0;
	if (r->outcap - r->outlen >= n)
		return 0;
	while (cap - r->outlen < n)
		cap *= 2;
	if ((p = realloc(r->out, cap)) == NULL)
		return -1;
	r->out = p;
	r->outcap = cap;
	return 0;
}

static uint32_t
next_txnr(struct relp *r)
{
	uint32_t t = r->txnr;

	r->txnr = t == TXNR_MAX ? 1 : t + 1;
	return t;
}

static int
frame(struct relp *r, const char *cmd, const char *data, size_t len, uint32_t *txnr)
{
	int n;

	if (reserve(r, HEAD_MAX + len + 1) == -1)
		return -1;
	*txnr = next_txnr(r);
	if (len == 0) {
		n = snprintf(r->out + r->outlen, HEAD_MAX, "%u %s 0\n", *txnr, cmd);
		r->outlen += n;
		return 0;
	}
	n = snprintf(r->out + r->outlen, HEAD_MAX, "%u %s %zu ", *txnr, cmd, len);
	r->outlen += n;
	memcpy(r->out + r->outlen, data, len);
	r->outlen += len;
	r->out[r->outlen++] = '\n';
	return 0;
}

/*
 * Begin a session on a new connection: nothing framed, no TXNR used, the
 * buffers empty, and the open command first.
 */
int
relp_session(struct relp *r)
{
	uint32_t txnr;

	for (size_t i = 0; i < r->nframed; i++)
		at(r, i)->txnr = 0;
	r->nframed = 0;
	r->inlen = r->outlen = r->outoff = 0;
	r->txnr = 1;
	r->opened = r->closed = 0;
	r->close_txnr = 0;
	return frame(r, "open", OFFERS, sizeof(OFFERS) - 1, &txnr);
}

/* Frame queued records while fewer than window are in flight; the number re-sent. */
uint64_t
relp_frame(struct relp *r, unsigned window)
{
	uint64_t resent = 0;
	struct rrec *e;

	while (r->opened && r->nframed < window && r->nframed < r->count) {
		e = at(r, r->nframed);
		if (frame(r, "syslog", data_of(r, e), e->len, &e->txnr) == -1)
			err(EX_FAILED, "relp");
		resent += e->sent;
		e->sent = 1;
		r->nframed++;
	}
	return resent;
}

/* Ask the server to end the session. */
int
relp_close(struct relp *r)
{
	return frame(r, "close", NULL, 0, &r->close_txnr);
}

/* Write what is framed: the bytes written (0 when the socket is full), -1 on error. */
ssize_t
relp_write(struct relp *r, int fd)
{
	ssize_t w;

	if (r->outoff == r->outlen)
		return 0;
	w = net_write(fd, r->out + r->outoff, r->outlen - r->outoff);
	if (w == -1)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	r->outoff += w;
	if (r->outoff == r->outlen)
		r->outoff = r->outlen = 0;
	return w;
}

/* Records from sequence number 0 that were all answered. */
uint64_t
relp_answered(const struct relp *r)
{
	return r->count ? at(r, 0)->seq : r->seq;
}

static int
num(const char **p, const char *end, size_t *v)
{
	const char *q = *p;

	*v = 0;
	while (q < end && *q >= '0' && *q <= '9' && q - *p < 10)
		*v = *v * 10 + (size_t)(*q++ - '0');
	if (q == *p)
		return -1;
	*p = q;
	return 0;
}

/*
 * One frame at the start of p: its length, 0 when it is not whole yet,
 * -1 when it is not a frame.
 */
static ssize_t
parse(const char *p, size_t n, struct rframe *f)
{
	const char *q = p, *end = p + n, *sp;
	size_t v;

	if (num(&q, end, &v) == -1 || v > TXNR_MAX)
		return q == end ? 0 : -1;
	f->txnr = v;
	if (q == end)
		return 0;
	if (*q++ != ' ' || (sp = memchr(q, ' ', end - q)) == NULL)
		return (size_t)(end - q) > CMD_MAX ? -1 : 0;
	f->cmd = q;
	f->cmdlen = sp - q;
	q = sp + 1;
	if (num(&q, end, &f->len) == -1)
		return q == end ? 0 : -1;
	if (q == end)
		return 0;
	f->data = "";
	if (f->len == 0)
		return *q == '\n' ? q + 1 - p : -1;
	if (*q++ != ' ')
		return -1;
	if ((size_t)(end - q) < f->len + 1)
		return f->len + 1 > IN_SIZE ? -1 : 0;
	f->data = q;
	return q[f->len] == '\n' ? q + f->len + 1 - p : -1;
}

static int
is(const struct rframe *f, const char *cmd)
{
	return f->cmdlen == strlen(cmd) && memcmp(f->cmd, cmd, f->cmdlen) == 0;
}

static int
ok(const struct rframe *f)
{
	return f->len >= 3 && memcmp(f->data, "200", 3) == 0 &&
	    (f->len == 3 || f->data[3] == ' ' || f->data[3] == '\n');
}

/* The record framed with txnr in this session, or NULL. */
static struct rrec *
find(struct relp *r, uint32_t txnr)
{
	uint32_t first;
	size_t i;

	if (r->nframed == 0)
		return NULL;
	first = at(r, 0)->txnr;
	i = txnr >= first ? txnr - first : txnr + TXNR_MAX - first;
	if (i >= r->nframed || at(r, i)->txnr != txnr || at(r, i)->answered)
		return NULL;
	return at(r, i);
}

static void
pop_answered(struct relp *r)
{
	while (r->count > 0 && at(r, 0)->answered) {
		at(r, 0)->answered = 0;
		r->head = (r->head + 1) & (r->cap - 1);
		r->count--;
		r->nframed--;
	}
}

static void
rejected(struct relp *r, const struct rframe *f, struct rrec *e, struct result *res)
{
	res->rejected++;
	if (said_rejected++)
		return;
	warnx("relp: c=%u s=%llu answered \"%.*s\"", r->id, (unsigned long long)e->seq,
	    (int)(f->len > 80 ? 80 : f->len), f->data);
}

/* An answer to a record, to open or to close: 0, or -1 when the session must end. */
static int
answer(struct relp *r, const struct rframe *f, struct result *res, double t)
{
	struct rrec *e;

	if (f->txnr == 1 && !r->opened) {
		if (!ok(f)) {
			warnx("relp: c=%u: open answered \"%.*s\"", r->id,
			    (int)(f->len > 80 ? 80 : f->len), f->data);
			r->refused = 1;
			return -1;
		}
		r->opened = 1;
		return 0;
	}
	if (r->close_txnr && f->txnr == r->close_txnr) {
		r->closed = 1;
		return 0;
	}
	if ((e = find(r, f->txnr)) == NULL) {
		warnx("relp: c=%u: an answer to txnr %u, which is not in flight", r->id, f->txnr);
		return -1;
	}
	e->answered = 1;
	if (ok(f)) {
		res->acked++;
		hist_add(&res->ack_latency, t > e->t ? (uint64_t)((t - e->t) * 1e6) : 0);
		res->t_end = t;
	} else {
		rejected(r, f, e, res);
	}
	pop_answered(r);
	return 0;
}

/*
 * Read and act on the server's frames: 0, or -1 when the session is over
 * (EOF, an error, serverclose, an answer that makes no sense).
 */
int
relp_read(struct relp *r, int fd, struct result *res, double t)
{
	struct rframe f;
	ssize_t n, used;
	size_t off = 0;

	n = net_read(fd, r->in + r->inlen, IN_SIZE - r->inlen);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		if (n == -1 && errno == ECONNRESET)
			res->resets++;
		else if (!r->closed)
			res->server_closed++;
		return -1;
	}
	r->inlen += n;
	while ((used = parse(r->in + off, r->inlen - off, &f)) > 0) {
		off += used;
		if (is(&f, "serverclose")) {
			res->serverclose++;
			return -1;
		}
		if (!is(&f, "rsp") || answer(r, &f, res, t) == -1)
			return -1;
	}
	if (used == -1) {
		warnx("relp: c=%u: not a RELP frame from the server", r->id);
		return -1;
	}
	memmove(r->in, r->in + off, r->inlen - off);
	r->inlen -= off;
	return 0;
}
