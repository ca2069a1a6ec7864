/*
 * worker/protocol/framing.c: LF, octet-counted and auto framing, truncation, and the
 * same records whatever the pieces a stream arrives in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framing.h"
#include "tests.h"

#define MAXRECS		64

#define WHY_LEADZERO	"octet count has a leading zero"
#define WHY_ZERO	"octet count is zero"
#define WHY_LONG	"octet count is too long"
#define WHY_NOSPACE	"octet count is not followed by a space"
#define WHY_MISSING	"octet count is missing"

struct rec {
	char	*p;
	size_t	 len;
	int	 truncated;
};

/* What a framer made of one stream. */
struct got {
	struct rec	 r[MAXRECS];
	size_t		 n;
	int		 rc;
	const char	*why;
	size_t		 maxheld;	/* most frame_buffered() seen between feeds */
};

static void
collect(void *arg, const char *p, size_t len, int truncated)
{
	struct got *g = arg;
	struct rec *r;

	ck_assert_uint_lt(g->n, MAXRECS);
	ck_assert_uint_gt(len, 0);
	r = &g->r[g->n++];
	r->p = malloc(len);
	ck_assert_ptr_nonnull(r->p);
	memcpy(r->p, p, len);
	r->len = len;
	r->truncated = truncated;
}

static void
got_free(struct got *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->r[i].p);
	memset(g, 0, sizeof(*g));
}

static void
feed(struct got *g, struct framer *f, const char *p, size_t n)
{
	size_t held;

	if (g->rc == 0)
		g->rc = frame_feed(f, p, n, collect, g, &g->why);
	held = frame_buffered(f);
	if (held > g->maxheld)
		g->maxheld = held;
}

/* Like a connection: stop at an error, else finish at end of stream. */
static void
end(struct got *g, struct framer *f)
{
	if (g->rc == 0)
		frame_finish(f, collect, g);
	ck_assert_uint_eq(frame_buffered(f), 0);
	frame_free(f);
}

/* s in two pieces, cut at byte cut (cut == n: whole). */
static void
frame_at(struct got *g, enum frame_mode mode, size_t max, const char *s, size_t n, size_t cut)
{
	struct framer f;

	memset(g, 0, sizeof(*g));
	frame_init(&f, mode, max);
	feed(g, &f, s, cut);
	feed(g, &f, s + cut, n - cut);
	end(g, &f);
}

/* s in pieces of step bytes. */
static void
frame_by(struct got *g, enum frame_mode mode, size_t max, const char *s, size_t n, size_t step)
{
	struct framer f;

	memset(g, 0, sizeof(*g));
	frame_init(&f, mode, max);
	for (size_t i = 0; i < n; i += step)
		feed(g, &f, s + i, n - i < step ? n - i : step);
	end(g, &f);
}

static void
frame_str(struct got *g, enum frame_mode mode, size_t max, const char *s)
{
	frame_at(g, mode, max, s, strlen(s), strlen(s));
}

static void
rec_is(const struct got *g, size_t i, const char *s, int truncated)
{
	ck_assert_uint_lt(i, g->n);
	ck_assert_uint_eq(g->r[i].len, strlen(s));
	ck_assert_mem_eq(g->r[i].p, s, strlen(s));
	ck_assert_int_eq(g->r[i].truncated, truncated);
}

/* s gives exactly the records in want (NULL-terminated), none truncated. */
static void
frames_to(enum frame_mode mode, size_t max, const char *s, const char *const *want)
{
	struct got g;
	size_t i;

	frame_str(&g, mode, max, s);
	ck_assert_int_eq(g.rc, 0);
	for (i = 0; want[i] != NULL; i++)
		rec_is(&g, i, want[i], 0);
	ck_assert_uint_eq(g.n, i);
	got_free(&g);
}

#define RECS(...)	((const char *const[]){ __VA_ARGS__, NULL })
#define NONE		((const char *const[]){ NULL })

/* s fails in octet mode with why, after the records in want. */
static void
octet_fails(const char *s, const char *why, const char *const *want)
{
	struct got g;
	size_t i;

	frame_str(&g, FRAME_OCTET, 1024, s);
	ck_assert_int_eq(g.rc, -1);
	ck_assert_str_eq(g.why, why);
	for (i = 0; want[i] != NULL; i++)
		rec_is(&g, i, want[i], 0);
	ck_assert_uint_eq(g.n, i);
	got_free(&g);
}

static void
same(const struct got *a, const struct got *b)
{
	ck_assert_int_eq(a->rc, b->rc);
	if (a->rc != 0)
		ck_assert_str_eq(a->why, b->why);
	ck_assert_uint_eq(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		ck_assert_uint_eq(a->r[i].len, b->r[i].len);
		ck_assert_mem_eq(a->r[i].p, b->r[i].p, a->r[i].len);
		ck_assert_int_eq(a->r[i].truncated, b->r[i].truncated);
	}
}

START_TEST(lf_records)
{
	frames_to(FRAME_LF, 1024, "a\nbb\nccc\n", RECS("a", "bb", "ccc"));
	frames_to(FRAME_LF, 1024, "<13>hello world\n", RECS("<13>hello world"));
	/* In LF mode a count is just text. */
	frames_to(FRAME_LF, 1024, "5 <13>x\n", RECS("5 <13>x"));
	frames_to(FRAME_AUTO, 1024, "a\nbb\n", RECS("a", "bb"));
}
END_TEST

START_TEST(crlf)
{
	frames_to(FRAME_LF, 1024, "a\r\nbb\r\n", RECS("a", "bb"));
	/* Only one CR, and only before the LF, is part of the line end. */
	frames_to(FRAME_LF, 1024, "a\r\r\n", RECS("a\r"));
	frames_to(FRAME_LF, 1024, "a\rb\n", RECS("a\rb"));
	frames_to(FRAME_AUTO, 1024, "a\r\nbb\r\n", RECS("a", "bb"));
}
END_TEST

START_TEST(lone_cr)
{
	frames_to(FRAME_LF, 1024, "\r\n", NONE);
	frames_to(FRAME_LF, 1024, "x\n\r\ny\n", RECS("x", "y"));
	frames_to(FRAME_LF, 1024, "\r", NONE);
	frames_to(FRAME_AUTO, 1024, "\r\nx\r\n\r\n", RECS("x"));
	/* A CR not before an LF is a one-byte record. */
	frames_to(FRAME_LF, 1024, "\r\r\n", RECS("\r"));
}
END_TEST

START_TEST(blank_lines)
{
	frames_to(FRAME_LF, 1024, "\n\n\r\n", NONE);
	frames_to(FRAME_LF, 1024, "\n\na\n\n\r\n\nb\n", RECS("a", "b"));
	frames_to(FRAME_AUTO, 1024, "\n\n\r\n", NONE);
	frames_to(FRAME_AUTO, 1024, "\n\na\n\n", RECS("a"));
}
END_TEST

START_TEST(last_without_lf)
{
	struct framer f;
	struct got g = { 0 };

	frames_to(FRAME_LF, 1024, "a\nlast", RECS("a", "last"));
	frames_to(FRAME_LF, 1024, "last\r", RECS("last"));
	/* Auto: too short to be octet-counted, so a line. */
	frames_to(FRAME_AUTO, 1024, "12", RECS("12"));
	frames_to(FRAME_AUTO, 1024, "12 <1", RECS("12 <1"));
	/* A partial octet frame is dropped, in both modes. */
	frames_to(FRAME_OCTET, 1024, "5 <13>x5 <1", RECS("<13>x"));
	frames_to(FRAME_AUTO, 1024, "5 <13>x9 <13>ab", RECS("<13>x"));
	frames_to(FRAME_OCTET, 1024, "12", NONE);

	/* finish resets: the framer takes a new stream. */
	frame_init(&f, FRAME_LF, 1024);
	ck_assert_int_eq(frame_feed(&f, "one", 3, collect, &g, &g.why), 0);
	ck_assert_uint_eq(g.n, 0);
	ck_assert_uint_gt(frame_buffered(&f), 0);
	frame_finish(&f, collect, &g);
	ck_assert_uint_eq(frame_buffered(&f), 0);
	ck_assert_int_eq(frame_feed(&f, "two\n", 4, collect, &g, &g.why), 0);
	rec_is(&g, 0, "one", 0);
	rec_is(&g, 1, "two", 0);
	ck_assert_uint_eq(g.n, 2);
	frame_free(&f);
	got_free(&g);
}
END_TEST

/* The messages of RFC 5424 section 6.5 in RFC 6587 octet-counting frames. */
#define RFC_M1	"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - " \
		"'su root' failed for lonvick on /dev/pts/8"
#define RFC_M2	"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - " \
		"% It's time to make the do-nuts."
#define RFC_M3	"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 " \
		"[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]"

START_TEST(rfc6587)
{
	static const enum frame_mode modes[] = { FRAME_OCTET, FRAME_AUTO };
	const char *s = "107 " RFC_M1 "98 " RFC_M2 "138 " RFC_M3;

	/* Counts written out, to check them against the messages. */
	ck_assert_uint_eq(strlen(RFC_M1), 107);
	ck_assert_uint_eq(strlen(RFC_M2), 98);
	ck_assert_uint_eq(strlen(RFC_M3), 138);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		frames_to(modes[i], 1024, s, RECS(RFC_M1, RFC_M2, RFC_M3));
}
END_TEST

START_TEST(octet_with_lf_inside)
{
	/* "<13>a\nb\r\nc\n" is 11 bytes: the LFs are part of the message. */
	frames_to(FRAME_OCTET, 1024, "11 <13>a\nb\r\nc\n", RECS("<13>a\nb\r\nc\n"));
	frames_to(FRAME_AUTO, 1024, "11 <13>a\nb\r\nc\nnext\n", RECS("<13>a\nb\r\nc\n", "next"));
}
END_TEST

START_TEST(back_to_back)
{
	frames_to(FRAME_OCTET, 1024, "5 <13>a5 <13>b6 <13>cc", RECS("<13>a", "<13>b", "<13>cc"));
	frames_to(FRAME_AUTO, 1024, "5 <13>a5 <13>b6 <13>cc", RECS("<13>a", "<13>b", "<13>cc"));
	/* A message may look like anything, a count included. */
	frames_to(FRAME_OCTET, 1024, "9 <13>1 2 31 x", RECS("<13>1 2 3", "x"));
}
END_TEST

START_TEST(lf_between_octet)
{
	frames_to(FRAME_OCTET, 1024, "5 <13>a\n5 <13>b\r\n\n6 <13>cc\r",
	    RECS("<13>a", "<13>b", "<13>cc"));
	frames_to(FRAME_AUTO, 1024, "5 <13>a\n5 <13>b\r\nline\n", RECS("<13>a", "<13>b", "line"));
	frames_to(FRAME_OCTET, 1024, "\r\n\n5 <13>a", RECS("<13>a"));
}
END_TEST

START_TEST(auto_ambiguous)
{
	struct framer f;
	struct got g = { 0 };

	frames_to(FRAME_AUTO, 1024, "54 <1 minute elapsed\n", RECS("54 <1 minute elapsed"));
	frames_to(FRAME_AUTO, 1024, "5 <13>x", RECS("<13>x"));
	frames_to(FRAME_AUTO, 1024, "8 <191>abc", RECS("<191>abc"));
	/* A frame announced longer than what came is dropped at the end. */
	frames_to(FRAME_AUTO, 1024, "123456789 <1>", NONE);
	frames_to(FRAME_AUTO, 1024, "012 <13>hello world", RECS("012 <13>hello world"));
	frames_to(FRAME_AUTO, 1024, "99999999999 <13>abc\n", RECS("99999999999 <13>abc"));
	/* Not a PRI: no digit, four digits, no "<", two spaces. */
	frames_to(FRAME_AUTO, 1024, "4 <>ab\n", RECS("4 <>ab"));
	frames_to(FRAME_AUTO, 1024, "8 <1234>a\n", RECS("8 <1234>a"));
	frames_to(FRAME_AUTO, 1024, "3 abc\n", RECS("3 abc"));
	frames_to(FRAME_AUTO, 1024, "6  <13>a\n", RECS("6  <13>a"));
	/* The count must cover the PRI. */
	frames_to(FRAME_AUTO, 1024, "1 <13>hello\n", RECS("1 <13>hello"));
	frames_to(FRAME_AUTO, 1024, "4 <13>", RECS("<13>"));
	/* An LF before the decision makes a line. */
	frames_to(FRAME_AUTO, 1024, "12 <1\n5 <13>x", RECS("12 <1", "<13>x"));
	frames_to(FRAME_AUTO, 1024, "12\n", RECS("12"));

	octet_fails("012 <13>hello world", WHY_LEADZERO, NONE);
	octet_fails("99999999999 <13>abc\n", WHY_LONG, NONE);
	octet_fails("0 x", WHY_ZERO, NONE);
	/* Octet mode does not look for a PRI. */
	frames_to(FRAME_OCTET, 1024, "3 abc", RECS("abc"));

	/* The longest undecided start fits f->head. */
	frame_init(&f, FRAME_AUTO, 1024);
	ck_assert_int_eq(frame_feed(&f, "123456789 <191", 14, collect, &g, &g.why), 0);
	ck_assert_uint_eq(frame_buffered(&f), 14);
	ck_assert_int_eq(frame_feed(&f, ">", 1, collect, &g, &g.why), 0);
	ck_assert_uint_eq(g.n, 0);
	ck_assert_uint_eq(frame_buffered(&f), 256);	/* "<191>" of the body */
	frame_free(&f);
	ck_assert_uint_eq(frame_buffered(&f), 0);
}
END_TEST

START_TEST(count_over_max)
{
	static const enum frame_mode modes[] = { FRAME_OCTET, FRAME_AUTO };
	struct got g;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		frame_str(&g, modes[i], 8, "12 <13>abcdefgh5 <13>x");
		ck_assert_int_eq(g.rc, 0);
		rec_is(&g, 0, "<13>abcd", 1);
		rec_is(&g, 1, "<13>x", 0);
		ck_assert_uint_eq(g.n, 2);
		got_free(&g);
		/* A skip that looks like frames is still skipped. */
		frame_str(&g, modes[i], 4, "13 <13>5 <13>xyz5 <13>q");
		rec_is(&g, 0, "<13>", 1);
		rec_is(&g, 1, "<13>", 1);
		ck_assert_uint_eq(g.n, 2);
		got_free(&g);
	}
	/* max_record smaller than the PRI. */
	frame_str(&g, FRAME_AUTO, 2, "5 <13>x\n");
	rec_is(&g, 0, "<1", 1);
	ck_assert_uint_eq(g.n, 1);
	got_free(&g);
	/* A large count is skipped exactly, whatever the reads. */
	{
		char *s = malloc(200016);

		ck_assert_ptr_nonnull(s);
		memcpy(s, "199990 <13>", 11);
		memset(s + 11, 'z', 199986);
		memcpy(s + 199997, "5 <13>y", 7);
		frame_by(&g, FRAME_OCTET, 16, s, 199997 + 7, 4096);
		rec_is(&g, 0, "<13>zzzzzzzzzzzz", 1);
		rec_is(&g, 1, "<13>y", 0);
		ck_assert_uint_eq(g.n, 2);
		ck_assert_uint_le(g.maxheld, 16 + 16);
		got_free(&g);
		free(s);
	}
}
END_TEST

START_TEST(exact_max_lf)
{
	struct got g;

	frames_to(FRAME_LF, 8, "12345678\nx\n", RECS("12345678", "x"));
	frames_to(FRAME_LF, 8, "12345678\r\nx\n", RECS("12345678", "x"));
	frames_to(FRAME_LF, 8, "1234567\r\r\n", RECS("1234567\r"));
	frames_to(FRAME_AUTO, 8, "12345678\n", RECS("12345678"));
	frames_to(FRAME_LF, 8, "12345678", RECS("12345678"));
	frames_to(FRAME_LF, 8, "12345678\r", RECS("12345678"));

	frame_str(&g, FRAME_LF, 8, "123456789\nx\n");
	rec_is(&g, 0, "12345678", 1);
	rec_is(&g, 1, "x", 0);
	ck_assert_uint_eq(g.n, 2);
	got_free(&g);
	/* A CR that does not end the line makes it one byte too long. */
	frame_str(&g, FRAME_LF, 8, "12345678\rX\nx\n");
	rec_is(&g, 0, "12345678", 1);
	rec_is(&g, 1, "x", 0);
	ck_assert_uint_eq(g.n, 2);
	got_free(&g);
	frame_str(&g, FRAME_LF, 8, "12345678\r\r\nx\n");
	rec_is(&g, 0, "12345678", 1);
	rec_is(&g, 1, "x", 0);
	ck_assert_uint_eq(g.n, 2);
	got_free(&g);
	frame_str(&g, FRAME_AUTO, 8, "123456789");
	rec_is(&g, 0, "12345678", 1);
	ck_assert_uint_eq(g.n, 1);
	got_free(&g);
}
END_TEST

START_TEST(exact_max_octet)
{
	static const enum frame_mode modes[] = { FRAME_OCTET, FRAME_AUTO };
	struct got g;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		frame_str(&g, modes[i], 8, "8 <13>abcd9 <13>abcde5 <13>x");
		rec_is(&g, 0, "<13>abcd", 0);
		rec_is(&g, 1, "<13>abcd", 1);
		rec_is(&g, 2, "<13>x", 0);
		ck_assert_uint_eq(g.n, 3);
		got_free(&g);
	}
}
END_TEST

START_TEST(garbage_counts)
{
	struct framer f;
	const char *why = NULL;
	struct got g = { 0 };

	octet_fails("12x <13>", WHY_NOSPACE, NONE);
	octet_fails("-5 ", WHY_MISSING, NONE);
	octet_fails(" 5 ", WHY_MISSING, NONE);
	octet_fails("\t5 abcde", WHY_MISSING, NONE);
	octet_fails("<13>hello\n", WHY_MISSING, NONE);
	octet_fails("5\n<13>x", WHY_NOSPACE, NONE);
	octet_fails("1234567890 x", WHY_LONG, NONE);
	octet_fails("00 x", WHY_LEADZERO, NONE);
	/* Records before the error are delivered. */
	octet_fails("3 abc12x ", WHY_NOSPACE, RECS("abc"));
	octet_fails("3 abc\n\r\nx", WHY_MISSING, RECS("abc"));

	/* The error stays: the stream cannot be resynchronised. */
	frame_init(&f, FRAME_OCTET, 64);
	ck_assert_int_eq(frame_feed(&f, "3 abcx", 6, collect, &g, &why), -1);
	ck_assert_str_eq(why, WHY_MISSING);
	why = NULL;
	ck_assert_int_eq(frame_feed(&f, "3 abc", 5, collect, &g, &why), -1);
	ck_assert_str_eq(why, WHY_MISSING);
	rec_is(&g, 0, "abc", 0);
	ck_assert_uint_eq(g.n, 1);
	ck_assert_uint_eq(frame_buffered(&f), 0);
	frame_free(&f);
	got_free(&g);
}
END_TEST

START_TEST(huge_lf_line)
{
	static const enum frame_mode modes[] = { FRAME_LF, FRAME_AUTO };
	enum { MAX = 1000, PIECES = 1000, PIECE = 37 };
	char piece[PIECE], want[MAX + 1];
	struct framer f;
	struct got g;

	memset(piece, 'x', sizeof(piece));
	memset(want, 'x', MAX);
	want[MAX] = '\0';
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		memset(&g, 0, sizeof(g));
		frame_init(&f, modes[m], MAX);
		for (int i = 0; i < PIECES; i++) {
			feed(&g, &f, piece, sizeof(piece));
			ck_assert_uint_le(frame_buffered(&f), MAX + 16);
		}
		/* Delivered as soon as it was known to be too long. */
		rec_is(&g, 0, want, 1);
		ck_assert_uint_eq(g.n, 1);
		ck_assert_uint_eq(frame_buffered(&f), 0);
		feed(&g, &f, "tail\nok\n", 8);
		rec_is(&g, 1, "ok", 0);
		ck_assert_uint_eq(g.n, 2);
		ck_assert_int_eq(g.rc, 0);
		ck_assert_uint_le(g.maxheld, MAX + 16);
		end(&g, &f);
		got_free(&g);
	}
}
END_TEST

START_TEST(buffer_released)
{
	struct framer f;
	struct got g = { 0 };

	frame_init(&f, FRAME_AUTO, 65536);
	feed(&g, &f, "hello", 5);
	ck_assert_uint_gt(frame_buffered(&f), 0);
	ck_assert_uint_le(frame_buffered(&f), 65536);
	feed(&g, &f, " world\n30 <13>", 14);
	ck_assert_uint_gt(frame_buffered(&f), 0);
	feed(&g, &f, "abcdefghijklmnopqrstuvwxyz", 26);
	ck_assert_uint_eq(frame_buffered(&f), 0);
	rec_is(&g, 0, "hello world", 0);
	rec_is(&g, 1, "<13>abcdefghijklmnopqrstuvwxyz", 0);
	ck_assert_uint_eq(g.n, 2);
	frame_free(&f);
	got_free(&g);
}
END_TEST

struct stream {
	enum frame_mode	 mode;
	size_t		 max;
	const char	*s;
};

static const struct stream streams[] = {
	{ FRAME_LF, 64, "a\nbb\r\n\n\r\nccc\r\r\nd\re\nlast\r" },
	{ FRAME_LF, 4, "1234\n12345\n1234\r\n1234\rX\n123\r\r\nabcdefghij\r\nz" },
	{ FRAME_LF, 1, "\r\n\na\nbc\n\r\r\nd" },
	{ FRAME_OCTET, 64, "5 <13>a\n11 <13>a\nb\r\nc\n\r\n3 abc10 <13>12345" },
	{ FRAME_OCTET, 6, "6 <13>ab7 <13>abc\r\n12 <13>abcdefgh1 x2 yz" },
	{ FRAME_OCTET, 64, "5 <13>a5 <13>b\n012 <13>x" },
	{ FRAME_OCTET, 64, "4 abcd12345678901 x" },
	{ FRAME_AUTO, 64, "54 <1 minute elapsed\n5 <13>x012 <13>hello\r\n"
	    "99999999999 <13>abc\n12 <1a>\n\n4 <13>1 <13>z\n8 <191>abc8 <1" },
	{ FRAME_AUTO, 8, "12 <13>abcdefgh5 <13>x123456789\r\n12345678\r\n"
	    "1234567\r\r\n9 <13>abcdeline" },
	{ FRAME_AUTO, 3, "5 <13>x\n4 <1>a<13>toolong\r\n12\r\n\r\n1 <1>q" },
	{ FRAME_AUTO, 64, "\r\n\n12 <1\n5 <13>\n\n\r6 <13>\r\n12 <13>abcdefgh5 <13>x12" },
};

/* THE SPLIT TEST: every cut, and byte by byte, gives what the whole gives. */
START_TEST(split_anywhere)
{
	const struct stream *st = &streams[_i];
	size_t n = strlen(st->s);
	struct got whole, part;

	frame_at(&whole, st->mode, st->max, st->s, n, n);
	for (size_t cut = 0; cut <= n; cut++) {
		frame_at(&part, st->mode, st->max, st->s, n, cut);
		same(&whole, &part);
		ck_assert_uint_le(part.maxheld, st->max + 16);
		got_free(&part);
	}
	for (size_t step = 1; step <= 3; step++) {
		frame_by(&part, st->mode, st->max, st->s, n, step);
		same(&whole, &part);
		got_free(&part);
	}
	got_free(&whole);
}
END_TEST

/* The split test's streams give what they were written for. */
START_TEST(split_streams_known)
{
	struct got g;

	frame_str(&g, streams[1].mode, streams[1].max, streams[1].s);
	rec_is(&g, 0, "1234", 0);
	rec_is(&g, 1, "1234", 1);
	rec_is(&g, 2, "1234", 0);
	rec_is(&g, 3, "1234", 1);
	rec_is(&g, 4, "123\r", 0);
	rec_is(&g, 5, "abcd", 1);
	rec_is(&g, 6, "z", 0);
	ck_assert_uint_eq(g.n, 7);
	got_free(&g);

	frame_str(&g, streams[4].mode, streams[4].max, streams[4].s);
	rec_is(&g, 0, "<13>ab", 0);
	rec_is(&g, 1, "<13>ab", 1);
	rec_is(&g, 2, "<13>ab", 1);
	rec_is(&g, 3, "x", 0);
	rec_is(&g, 4, "yz", 0);
	ck_assert_uint_eq(g.n, 5);
	got_free(&g);

	frame_str(&g, streams[7].mode, streams[7].max, streams[7].s);
	rec_is(&g, 0, "54 <1 minute elapsed", 0);
	rec_is(&g, 1, "<13>x", 0);
	rec_is(&g, 2, "012 <13>hello", 0);
	rec_is(&g, 3, "99999999999 <13>abc", 0);
	rec_is(&g, 4, "12 <1a>", 0);
	rec_is(&g, 5, "<13>", 0);
	rec_is(&g, 6, "1 <13>z", 0);
	rec_is(&g, 7, "<191>abc", 0);
	rec_is(&g, 8, "8 <1", 0);
	ck_assert_uint_eq(g.n, 9);
	got_free(&g);

	frame_str(&g, streams[9].mode, streams[9].max, streams[9].s);
	rec_is(&g, 0, "<13", 1);
	rec_is(&g, 1, "<1>", 1);
	rec_is(&g, 2, "<13", 1);
	rec_is(&g, 3, "12", 0);
	rec_is(&g, 4, "1 <", 1);
	ck_assert_uint_eq(g.n, 5);
	got_free(&g);
}
END_TEST

/* f saved and restored into a new framer, as a hand-over does; f is freed. */
static void
save_restore(struct framer *f, enum frame_mode mode, size_t max)
{
	struct obuf o = { NULL, 0, 0 };
	struct framer g;

	ck_assert_int_eq(frame_save(f, &o), 0);
	ck_assert_int_eq(frame_restore(&g, o.p, o.len, mode, max), 0);
	obuf_free(&o);
	frame_free(f);
	*f = g;
}

/* THE HAND-OVER TEST: a framer saved and restored at any cut gives what the whole gives. */
START_TEST(saved_anywhere)
{
	const struct stream *st = &streams[_i];
	size_t n = strlen(st->s);
	struct got whole, part;
	struct framer f;

	frame_at(&whole, st->mode, st->max, st->s, n, n);
	for (size_t cut = 0; cut <= n; cut++) {
		memset(&part, 0, sizeof(part));
		frame_init(&f, st->mode, st->max);
		feed(&part, &f, st->s, cut);
		if (part.rc == 0)	/* a connection with a framing error is closed, not handed over */
			save_restore(&f, st->mode, st->max);
		feed(&part, &f, st->s + cut, n - cut);
		end(&part, &f);
		same(&whole, &part);
		got_free(&part);
	}
	got_free(&whole);
}
END_TEST

/* Between records a restored framer takes the listener's settings now; inside one, its own. */
START_TEST(restore_settings)
{
	struct framer f;
	struct got g = { 0 };

	frame_init(&f, FRAME_LF, 64);
	feed(&g, &f, "line\n", 5);
	save_restore(&f, FRAME_OCTET, 8);
	feed(&g, &f, "3 abc", 5);
	rec_is(&g, 1, "abc", 0);
	frame_free(&f);

	frame_init(&f, FRAME_LF, 64);
	feed(&g, &f, "a half", 6);
	save_restore(&f, FRAME_OCTET, 2);
	feed(&g, &f, " line\n", 7);
	rec_is(&g, 2, "a half line", 0);
	ck_assert_uint_eq(g.n, 3);
	frame_free(&f);
	got_free(&g);
}
END_TEST

/* Bytes that are no framer this build saved are refused, leaving a fresh framer. */
START_TEST(restore_refuses)
{
	struct obuf o = { NULL, 0, 0 };
	struct framer f, g;
	struct got got = { 0 };
	char *bad;

	frame_init(&f, FRAME_OCTET, 64);
	feed(&got, &f, "12 <13>abc", 10);
	ck_assert_int_eq(frame_save(&f, &o), 0);
	frame_free(&f);
	bad = malloc(o.len);
	ck_assert_ptr_nonnull(bad);
	for (size_t n = 0; n < o.len; n++)	/* every truncation */
		ck_assert_int_eq(frame_restore(&g, o.p, n, FRAME_LF, 16), -1);
	for (size_t i = 0; i < 4; i++) {	/* version, mode, state, head length */
		memcpy(bad, o.p, o.len);
		bad[i] = (char)0x7f;
		ck_assert_int_eq(frame_restore(&g, bad, o.len, FRAME_LF, 16), -1);
	}
	memcpy(bad, o.p, o.len);
	bad[16] = 60;		/* count beyond max_record - len: would overrun the buffer */
	ck_assert_int_eq(frame_restore(&g, bad, o.len, FRAME_LF, 16), -1);
	ck_assert_int_eq(g.mode, FRAME_LF);	/* fresh, with the settings given */
	ck_assert_uint_eq(g.max_record, 16);
	ck_assert_uint_eq(frame_buffered(&g), 0);
	free(bad);
	obuf_free(&o);
	got_free(&got);
}
END_TEST

Suite *
framing_suite(void)
{
	Suite *s = suite_create("framing");
	TCase *lf = tcase_create("lf");
	TCase *octet = tcase_create("octet");
	TCase *auto_ = tcase_create("auto");
	TCase *limits = tcase_create("limits");
	TCase *split = tcase_create("split");

	tcase_add_test(lf, lf_records);
	tcase_add_test(lf, crlf);
	tcase_add_test(lf, lone_cr);
	tcase_add_test(lf, blank_lines);
	tcase_add_test(lf, last_without_lf);
	suite_add_tcase(s, lf);
	tcase_add_test(octet, rfc6587);
	tcase_add_test(octet, octet_with_lf_inside);
	tcase_add_test(octet, back_to_back);
	tcase_add_test(octet, lf_between_octet);
	tcase_add_test(octet, garbage_counts);
	suite_add_tcase(s, octet);
	tcase_add_test(auto_, auto_ambiguous);
	suite_add_tcase(s, auto_);
	tcase_add_test(limits, count_over_max);
	tcase_add_test(limits, exact_max_lf);
	tcase_add_test(limits, exact_max_octet);
	tcase_add_test(limits, huge_lf_line);
	tcase_add_test(limits, buffer_released);
	suite_add_tcase(s, limits);
	tcase_add_loop_test(split, split_anywhere, 0, sizeof(streams) / sizeof(streams[0]));
	tcase_add_test(split, split_streams_known);
	tcase_add_loop_test(split, saved_anywhere, 0, sizeof(streams) / sizeof(streams[0]));
	tcase_add_test(split, restore_settings);
	tcase_add_test(split, restore_refuses);
	suite_add_tcase(s, split);
	return s;
}
