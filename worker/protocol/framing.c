/*
 * framing: cut a connection's byte stream into records (see framing.h).
 *
 * frame_feed() runs a small state machine.  Each state takes what it can
 * from the bytes at hand and says how many it used; whatever it cannot
 * finish with is kept in the framer (an undecided record start in f->head,
 * a record split across reads in f->buf), so a stream fed in pieces of any
 * size goes through the same states and gives the same records as the
 * stream fed whole.
 *
 * f->buf grows in powers of two up to max_record, and its size is a
 * function of f->len, so the framer needs no field for it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "framing.h"

#define FRAME_BUF_MIN	256

enum {
	S_START,	/* at a record boundary */
	S_HEAD,		/* f->head holds a record start not yet classified */
	S_LINE,		/* in an LF record; f->len bytes of it in f->buf */
	S_LINECR,	/* f->buf full and a CR after it: the next byte decides */
	S_LINESKIP,	/* skipping a truncated LF record up to its LF */
	S_BODY,		/* in an octet-counted body, f->count bytes to go */
	S_SKIP,		/* skipping f->skip bytes of a truncated body */
	S_ERROR		/* framing error; f->count indexes whys[] */
};

/* What the start of a record turned out to be. */
enum { K_MORE, K_LINE, K_OCTET, K_ERROR };

enum { E_MISSING, E_LEADZERO, E_ZERO, E_LONG, E_NOSPACE, E_NOMEM };

static const char *const whys[] = {
	[E_MISSING] = "octet count is missing",
	[E_LEADZERO] = "octet count has a leading zero",
	[E_ZERO] = "octet count is zero",
	[E_LONG] = "octet count is too long",
	[E_NOSPACE] = "octet count is not followed by a space",
	[E_NOMEM] = "out of memory for a split record",
};

struct out {
	frame_record_fn	*cb;
	void		*arg;
};

static void	run(struct framer *, const char *, size_t, const struct out *);

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static size_t
min(size_t a, size_t b)
{
	return a < b ? a : b;
}

static void
emit(const struct out *o, const char *p, size_t len, int truncated)
{
	if (len > 0)
		o->cb(o->arg, p, len, truncated);
}

/* Size of f->buf while it holds len bytes. */
static size_t
buf_size(const struct framer *f, size_t len)
{
	size_t sz = FRAME_BUF_MIN;

	while (sz < len && sz <= SIZE_MAX / 2)
		sz *= 2;
	return min(sz, f->max_record);
}

/* An idle connection holds no buffer. */
static void
buf_drop(struct framer *f)
{
	free(f->buf);
	f->buf = NULL;
	f->len = 0;
}

static void
set_error(struct framer *f, int e)
{
	buf_drop(f);
	f->headlen = 0;
	f->state = S_ERROR;
	f->count = e;
}

/* The caller never makes f->len exceed max_record. */
static int
buf_add(struct framer *f, const char *p, size_t n)
{
	size_t have, need;
	char *nb;

	if (n == 0)
		return 0;
	have = f->buf != NULL ? buf_size(f, f->len) : 0;
	need = buf_size(f, f->len + n);
	if (need > have) {
		if ((nb = realloc(f->buf, need)) == NULL) {
			set_error(f, E_NOMEM);
			return -1;
		}
		f->buf = nb;
	}
	memcpy(f->buf + f->len, p, n);
	f->len += n;
	return 0;
}

/*
 * "LEN SP" at p: K_OCTET with *count and *hdr (its length), K_MORE while
 * every byte so far fits, else K_ERROR with *err.  The byte after a leading
 * "0" is waited for only to tell "0 " from "012 " in the error.
 */
static int
scan_count(const char *p, size_t n, size_t *count, size_t *hdr, int *err)
{
	size_t i;

	*count = 0;
	for (i = 0; i < n; i++) {
		if (i == 1 && p[0] == '0') {
			*err = is_digit(p[1]) ? E_LEADZERO : E_ZERO;
			return K_ERROR;
		}
		if (i > 0 && p[i] == ' ') {
			*hdr = i + 1;
			return K_OCTET;
		}
		if (!is_digit(p[i])) {
			*err = i == 0 ? E_MISSING : E_NOSPACE;
			return K_ERROR;
		}
		if (i == FRAME_COUNT_DIGITS) {
			*err = E_LONG;
			return K_ERROR;
		}
		*count = *count * 10 + (p[i] - '0');
	}
	return K_MORE;
}

/* A syslog PRI at p, "<" 1 to 3 digits ">": K_OCTET with *len, K_MORE or K_LINE. */
static int
scan_pri(const char *p, size_t n, size_t *len)
{
	size_t i;

	if (n == 0)
		return K_MORE;
	if (p[0] != '<')
		return K_LINE;
	for (i = 1; i < n; i++) {
		if (i > 1 && p[i] == '>') {
			*len = i + 1;
			return K_OCTET;
		}
		if (!is_digit(p[i]) || i > 3)
			return K_LINE;
	}
	return K_MORE;
}

/*
 * Classify a record start.  The decision takes at most
 * FRAME_COUNT_DIGITS + 6 bytes ("123456789 <191>"), and an LF anywhere in
 * them makes a line, so the lookahead never passes the end of a line.
 */
static int
classify(const struct framer *f, const char *p, size_t n, size_t *count, size_t *hdr,
    int *err)
{
	size_t pri;
	int k;

	k = scan_count(p, n, count, hdr, err);
	if (f->mode == FRAME_OCTET || k == K_MORE)
		return k;
	if (k == K_ERROR)
		return K_LINE;
	k = scan_pri(p + *hdr, n - *hdr, &pri);
	/* The PRI must be inside the counted message: "1 <13>hello" is a line. */
	if (k == K_OCTET && *count < pri)
		return K_LINE;
	return k;
}

/* Enter the state classify() chose; returns the header bytes to pass over. */
static size_t
decide(struct framer *f, int k, size_t count, size_t hdr, int err)
{
	switch (k) {
	case K_LINE:
		f->state = S_LINE;
		return 0;
	case K_OCTET:
		f->skip = count > f->max_record ? count - f->max_record : 0;
		f->count = count - f->skip;
		f->state = S_BODY;
		return hdr;
	default:
		set_error(f, err);
		return 0;
	}
}

static size_t
st_start(struct framer *f, const char *p, size_t n)
{
	size_t count = 0, hdr = 0, m;
	int k, err = 0;

	/* Only a digit begins a count: in auto mode classify() makes anything else a line. */
	if (f->mode == FRAME_LF || (f->mode == FRAME_AUTO && !is_digit(*p))) {
		f->state = S_LINE;
		return 0;
	}
	/* RFC 6587 frames are back to back, but some senders add an LF or CRLF. */
	if (f->mode == FRAME_OCTET && (*p == '\n' || *p == '\r'))
		return 1;
	m = min(n, sizeof(f->head));
	k = classify(f, p, m, &count, &hdr, &err);
	if (k != K_MORE)
		return decide(f, k, count, hdr, err);
	memcpy(f->head, p, m);
	f->headlen = m;
	f->state = S_HEAD;
	return m;
}

/*
 * Add bytes to f->head one at a time until the start is classified, then
 * run what f->head held through the chosen state as if just read.
 */
static size_t
st_head(struct framer *f, const char *p, size_t n, const struct out *o)
{
	char h[sizeof(f->head)];
	size_t used = 0, count = 0, hdr = 0, hl, off;
	int k = K_MORE, err = 0;

	while (k == K_MORE && used < n && f->headlen < sizeof(f->head)) {
		f->head[f->headlen++] = p[used++];
		k = classify(f, f->head, f->headlen, &count, &hdr, &err);
	}
	if (k == K_MORE)
		return used;
	hl = f->headlen;
	memcpy(h, f->head, hl);
	f->headlen = 0;
	off = decide(f, k, count, hdr, err);
	run(f, h + off, hl - off, o);
	return used;
}

/* The LF record ends e bytes into p (where the LF is). */
static void
line_end(struct framer *f, const char *p, size_t e, const struct out *o)
{
	size_t rec = f->len + e, need;
	char last = e > 0 ? p[e - 1] : f->len > 0 ? f->buf[f->len - 1] : '\0';
	int truncated;

	if (last == '\r')
		rec--;
	truncated = rec > f->max_record;
	rec = min(rec, f->max_record);
	if (f->len == 0) {
		emit(o, p, rec, truncated);
	} else {
		need = rec > f->len ? rec - f->len : 0;
		if (buf_add(f, p, need) == -1)
			return;
		emit(o, f->buf, rec, truncated);
		buf_drop(f);
	}
	f->state = S_START;
}

/* Deliver the first max_record bytes of a line known to be longer. */
static void
line_cut(struct framer *f, const char *p, const struct out *o)
{
	if (f->len == 0) {
		emit(o, p, f->max_record, 1);
	} else {
		if (buf_add(f, p, f->max_record - f->len) == -1)
			return;
		emit(o, f->buf, f->len, 1);
		buf_drop(f);
	}
	f->state = S_LINESKIP;
}

/*
 * Look for the LF no further than max_record + 2 bytes into the line (the
 * longest line kept whole, a CR, the LF), so a line that never ends is cut
 * as soon as it is known to be too long.
 */
static size_t
st_line(struct framer *f, const char *p, size_t n, const struct out *o)
{
	size_t room = f->max_record - f->len, win;
	const char *lf;

	win = n <= room || n - room <= 2 ? n : room + 2;
	if ((lf = memchr(p, '\n', win)) != NULL) {
		line_end(f, p, lf - p, o);
		return lf - p + 1;
	}
	if (win <= room) {
		buf_add(f, p, win);
		return win;
	}
	/* One byte over, and a CR: an LF next makes it fit exactly. */
	if (win == room + 1 && p[win - 1] == '\r') {
		if (buf_add(f, p, room) == 0)
			f->state = S_LINECR;
		return win;
	}
	line_cut(f, p, o);
	return win;
}

static size_t
st_linecr(struct framer *f, const char *p, const struct out *o)
{
	int lf = *p == '\n';

	emit(o, f->buf, f->len, !lf);
	buf_drop(f);
	f->state = lf ? S_START : S_LINESKIP;
	return lf;
}

static size_t
st_lineskip(struct framer *f, const char *p, size_t n)
{
	const char *lf;

	if ((lf = memchr(p, '\n', n)) == NULL)
		return n;
	f->state = S_START;
	return lf - p + 1;
}

static void
body_done(struct framer *f)
{
	f->state = f->skip > 0 ? S_SKIP : S_START;
}

static size_t
st_body(struct framer *f, const char *p, size_t n, const struct out *o)
{
	size_t take = min(n, f->count);

	if (f->len == 0 && take == f->count) {
		emit(o, p, take, f->skip > 0);
		body_done(f);
		return take;
	}
	if (buf_add(f, p, take) == -1)
		return 0;
	f->count -= take;
	if (f->count == 0) {
		emit(o, f->buf, f->len, f->skip > 0);
		buf_drop(f);
		body_done(f);
	}
	return take;
}

static size_t
st_skip(struct framer *f, size_t n)
{
	size_t take = min(n, f->skip);

	f->skip -= take;
	if (f->skip == 0)
		f->state = S_START;
	return take;
}

/* One state's step; a step that uses no byte changes the state. */
static size_t
step(struct framer *f, const char *p, size_t n, const struct out *o)
{
	switch (f->state) {
	case S_START:
		return st_start(f, p, n);
	case S_HEAD:
		return st_head(f, p, n, o);
	case S_LINE:
		return st_line(f, p, n, o);
	case S_LINECR:
		return st_linecr(f, p, o);
	case S_LINESKIP:
		return st_lineskip(f, p, n);
	case S_BODY:
		return st_body(f, p, n, o);
	case S_SKIP:
		return st_skip(f, n);
	default:
		return n;
	}
}

static void
run(struct framer *f, const char *p, size_t n, const struct out *o)
{
	size_t used;

	while (n > 0 && f->state != S_ERROR) {
		used = step(f, p, n, o);
		p += used;
		n -= used;
	}
}

/* max_record 0 would make every record empty; one byte is the least. */
void
frame_init(struct framer *f, enum frame_mode mode, size_t max_record)
{
	memset(f, 0, sizeof(*f));
	f->mode = mode;
	f->max_record = max_record > 0 ? max_record : 1;
	f->state = S_START;
}

/* After an error every later call fails the same way: the stream is lost. */
int
frame_feed(struct framer *f, const char *data, size_t n, frame_record_fn *cb, void *arg,
    const char **why)
{
	struct out o = { cb, arg };

	run(f, data, n, &o);
	if (f->state != S_ERROR)
		return 0;
	*why = whys[f->count];
	return -1;
}

/*
 * End of stream ends an open line as an LF would (so a last "x\r" is "x"),
 * and in auto mode an undecided start, too short for an octet frame, is a
 * line.  A partial octet-counted frame is dropped: its sender was cut off
 * before LEN bytes, so what came is not the record it announced.
 */
void
frame_finish(struct framer *f, frame_record_fn *cb, void *arg)
{
	struct out o = { cb, arg };

	if (f->state == S_LINE || f->state == S_LINECR ||
	    (f->state == S_HEAD && f->mode == FRAME_AUTO))
		run(f, "\n", 1, &o);
	frame_free(f);
}

/* What the framer holds beyond its own struct, for memory accounting. */
size_t
frame_buffered(const struct framer *f)
{
	return (f->buf != NULL ? buf_size(f, f->len) : 0) + f->headlen;
}

void
frame_free(struct framer *f)
{
	buf_drop(f);
	frame_init(f, f->mode, f->max_record);
}

/* Whether a record has begun and is not complete yet (for record_timeout). */
int
frame_in_record(const struct framer *f)
{
	return f->state != S_START && f->state != S_ERROR;
}

/* frame_save's bytes: this header, then the f->len bytes of f->buf. */
struct saved {
	uint8_t		 version;
	uint8_t		 mode;
	uint8_t		 state;
	uint8_t		 headlen;
	uint32_t	 pad;
	uint64_t	 max_record, count, skip, len;
	char		 head[16];
};

#define SAVED_VERSION	1

_Static_assert(sizeof(((struct framer *)0)->head) == sizeof(((struct saved *)0)->head),
    "a saved framer holds the whole head");

/* Append f's state to o; -1 when out of memory. */
int
frame_save(const struct framer *f, struct obuf *o)
{
	struct saved s = { .version = SAVED_VERSION, .mode = (uint8_t)f->mode,
	    .state = (uint8_t)f->state, .headlen = (uint8_t)f->headlen,
	    .max_record = f->max_record, .count = f->count, .skip = f->skip, .len = f->len };

	memcpy(s.head, f->head, sizeof(s.head));
	if (obuf_reserve(o, sizeof(s) + f->len) == -1)
		return -1;
	memcpy(o->p + o->len, &s, sizeof(s));
	if (f->len)
		memcpy(o->p + o->len + sizeof(s), f->buf, f->len);
	o->len += sizeof(s) + f->len;
	return 0;
}

/* Whether s is a framer run() can go on with: no state that could overrun f->buf. */
static int
saved_valid(const struct saved *s, size_t n)
{
	if (s->version != SAVED_VERSION || s->mode > FRAME_OCTET || s->state >= S_ERROR ||
	    s->headlen > sizeof(s->head) || s->max_record == 0 ||
	    s->max_record > FRAME_RESTORE_MAX || s->len > s->max_record ||
	    s->len != n - sizeof(*s) || (s->headlen > 0) != (s->state == S_HEAD))
		return 0;
	switch (s->state) {
	case S_LINE:
	case S_LINECR:
		return 1;
	case S_HEAD:	/* a full head is always decided: one would never take a byte */
		return s->len == 0 && s->headlen < sizeof(s->head);
	case S_BODY:
		return s->count > 0 && s->count <= s->max_record - s->len;
	case S_SKIP:
		return s->skip > 0 && s->len == 0;
	default:	/* S_START and S_LINESKIP hold no partial record */
		return s->len == 0;
	}
}

/*
 * f as frame_save saw it, from its n bytes at p.  A framer between records
 * takes mode and max_record (the listener's settings now); one in the
 * middle of a record keeps its own, by which the record began.  -1: the
 * bytes are not a framer this build can take, or no memory; f is then a
 * new framer with mode and max_record.
 */
int
frame_restore(struct framer *f, const char *p, size_t n, enum frame_mode mode,
    size_t max_record)
{
	struct saved s;

	frame_init(f, mode, max_record);
	if (n < sizeof(s))
		return -1;
	memcpy(&s, p, sizeof(s));
	if (!saved_valid(&s, n))
		return -1;
	if (s.state == S_START)
		return 0;
	f->mode = (enum frame_mode)s.mode;
	f->max_record = s.max_record;
	f->state = s.state;
	f->count = s.count;
	f->skip = s.skip;
	f->headlen = s.headlen;
	memcpy(f->head, s.head, sizeof(f->head));
	if (buf_add(f, p + sizeof(s), s.len) == -1) {
		frame_init(f, mode, max_record);
		return -1;
	}
	return 0;
}
