/*
 * json: check a JSON record and write JSON text, for events.
 *
 * Both directions share one 256-entry table: a byte with entry 0 is plain
 * ASCII that goes through as is, which is what almost every byte of a log
 * record is, so runs of them are found, and written out, eight bytes at a
 * time (plain8).  Parsing is iterative with a fixed stack of
 * JSON_MAX_DEPTH closing brackets: a record cannot make us recurse.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define U	'u'	/* control character: \u00XX */
#define X	'x'	/* 0x80-0xff: valid UTF-8 is copied, any other byte is \ufffd */

/* How json_string writes each byte: 0 as is, else the letter after '\\'. */
static const unsigned char esc[256] = {
	U,  U,  U,  U,  U,  U,  U,  U, 'b','t','n', U, 'f','r', U,  U,	/* 00 */
	U,  U,  U,  U,  U,  U,  U,  U,  U,  U,  U,  U,  U,  U,  U,  U,	/* 10 */
	0,  0, '"', 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,	/* 20 */
	0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,	/* 30 */
	0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,	/* 40 */
	0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, '\\',0,  0,  0,	/* 50 */
	0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,	/* 60 */
	0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,	/* 70 */
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,	/* 80 */
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,	/* 90 */
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,	/* a0 */
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,	/* b0 */
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,	/* c0 */
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,	/* d0 */
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,	/* e0 */
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,	/* f0 */
};

#undef U
#undef X

#define ONES	0x0101010101010101ULL	/* 0x01 in every byte of a word */

/*
 * Whether none of the 8 bytes at p needs a look: each is plain, that is
 * 0x20-0x7f but '"' and '\\', exactly the bytes with esc[] 0.  Read as one
 * 64-bit number w, in whatever byte order: each term below sets the top
 * bit of a byte that is not plain, provided no borrow comes into that byte
 * from the less significant one,
 *   w - 0x20 in each byte      for a byte < 0x20 (it wraps to 0xe0-0xff),
 *   (w ^ '"') - 1 in each      for '"' (0 wraps to 0xff),
 *   (w ^ '\\') - 1 in each     for '\\',
 *   w                          for a byte >= 0x80,
 * while a plain byte leaves its top bit clear in all four and lends no
 * borrow (b - 0x20 is 0x00-0x5f, b ^ '"' and b ^ '\\' are 0x01-0x7f).  So
 * an all-plain word tests 0, and otherwise the least significant byte that
 * is not plain, which no borrow reaches, is flagged: the test is exact.
 * Bytes above it may be flagged wrongly, which does not matter, since only
 * "all plain or not" is used.
 */
static int
plain8(const unsigned char *p)
{
	uint64_t w, t;

	memcpy(&w, p, sizeof(w));	/* any alignment; compiles to one load */
	t = (w - 0x20 * ONES) | ((w ^ '"' * ONES) - ONES) | ((w ^ '\\' * ONES) - ONES) | w;
	return (t & 0x80 * ONES) == 0;
}

/*
 * The first byte from p on with a non-zero esc[] entry, or end: whole words
 * while they are plain, then byte by byte, which stops within the word that
 * was not.
 */
static const unsigned char *
plain_end(const unsigned char *p, const unsigned char *end)
{
	while (end - p >= 8 && plain8(p))
		p += 8;
	while (p < end && esc[*p] == 0)
		p++;
	return p;
}

struct jparse {
	const unsigned char	*p;	/* next byte to read */
	const unsigned char	*end;
	const unsigned char	*run;	/* first byte read but not yet copied */
	char			*o;	/* where the run goes */
	const char		*why;
};

/*
 * Length of the well-formed UTF-8 sequence (RFC 3629) at p, or 0.  The
 * ranges of the second byte rule out overlong forms (after E0, F0),
 * surrogates (after ED) and code points beyond U+10FFFF (after F4).
 */
static size_t
utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t i, n;

	if (*p < 0xc2 || *p > 0xf4)
		return 0;
	n = *p < 0xe0 ? 2 : *p < 0xf0 ? 3 : 4;
	if ((size_t)(end - p) < n)
		return 0;
	switch (*p) {
	case 0xe0:
		lo = 0xa0;
		break;
	case 0xed:
		hi = 0x9f;
		break;
	case 0xf0:
		lo = 0x90;
		break;
	case 0xf4:
		hi = 0x8f;
		break;
	}
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

static int
fail(struct jparse *jp, const char *why)
{
	jp->why = why;
	return -1;
}

static int
is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
is_letter(unsigned char c)
{
	c |= 0x20;
	return c >= 'a' && c <= 'z';
}

/*
 * Skip whitespace.  Output is the input minus this whitespace, so only here
 * does the run read so far have to be copied out.
 */
static void
skip_ws(struct jparse *jp)
{
	size_t n;

	if (jp->p == jp->end || !is_ws(*jp->p))
		return;
	n = jp->p - jp->run;
	memcpy(jp->o, jp->run, n);
	jp->o += n;
	while (jp->p < jp->end && is_ws(*jp->p))
		jp->p++;
	jp->run = jp->p;
}

static int
hex_digit(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The value of the 4 hex digits at p, or -1. */
static long
hex4(const unsigned char *p)
{
	long v = 0;
	int d, i;

	for (i = 0; i < 4; i++) {
		if ((d = hex_digit(p[i])) == -1)
			return -1;
		v = v << 4 | d;
	}
	return v;
}

/*
 * Check the escape at *pp (a backslash) and step over it.  A \u escape of
 * a high surrogate must be followed at once by one of a low surrogate, or
 * the string would not decode to Unicode.
 */
static int
escape(struct jparse *jp, const unsigned char **pp)
{
	const unsigned char *p = *pp;
	size_t left = jp->end - p;
	long u, lo;

	if (left < 2)
		return fail(jp, "unterminated string");
	switch (p[1]) {
	case '"': case '\\': case '/':
	case 'b': case 'f': case 'n': case 'r': case 't':
		*pp = p + 2;
		return 0;
	case 'u':
		break;
	default:
		return fail(jp, "bad escape");
	}
	if (left < 6)
		return fail(jp, "unterminated string");
	if ((u = hex4(p + 2)) == -1)
		return fail(jp, "bad escape");
	if (u >= 0xdc00 && u <= 0xdfff)
		return fail(jp, "unpaired surrogate");
	if (u >= 0xd800 && u <= 0xdbff) {
		if (left < 12 || p[6] != '\\' || p[7] != 'u' ||
		    (lo = hex4(p + 8)) < 0xdc00 || lo > 0xdfff)
			return fail(jp, "unpaired surrogate");
		p += 6;
	}
	*pp = p + 6;
	return 0;
}

/* Check the string at jp->p (its opening quote) and step over it. */
static int
string(struct jparse *jp)
{
	const unsigned char *p = jp->p + 1, *end = jp->end;
	size_t n;

	for (;;) {
		p = plain_end(p, end);
		if (p == end)
			return fail(jp, "unterminated string");
		if (*p == '"')
			break;
		if (*p == '\\') {
			if (escape(jp, &p) == -1)
				return -1;
		} else if (*p < 0x20)
			return fail(jp, "control character in string");
		else if ((n = utf8_len(p, end)) == 0)
			return fail(jp, "invalid UTF-8 in string");
		else
			p += n;
	}
	jp->p = p + 1;
	return 0;
}

static const unsigned char *
digits(const unsigned char *p, const unsigned char *end)
{
	while (p < end && is_digit(*p))
		p++;
	return p;
}

/*
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and no number character
 * or letter right after it: "01", "1.2.3" and "0x10" are one bad number,
 * not two tokens.
 */
static int
number(struct jparse *jp)
{
	const unsigned char *p = jp->p, *end = jp->end, *q;

	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if ((q = digits(p, end)) != p)
		p = q;
	else
		return fail(jp, "bad number");
	if (p < end && *p == '.') {
		if ((q = digits(p + 1, end)) == p + 1)
			return fail(jp, "bad number");
		p = q;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if ((q = digits(p, end)) == p)
			return fail(jp, "bad number");
		p = q;
	}
	if (p < end && (is_digit(*p) || is_letter(*p) || *p == '.' ||
	    *p == '+' || *p == '-'))
		return fail(jp, "bad number");
	jp->p = p;
	return 0;
}

static int
literal(struct jparse *jp, const char *word, size_t n)
{
	size_t left = jp->end - jp->p;

	if (left < n)
		return fail(jp, memcmp(jp->p, word, left) == 0 ?
		    "unexpected end" : "bad literal");
	if (memcmp(jp->p, word, n) != 0)
		return fail(jp, "bad literal");
	jp->p += n;
	if (jp->p < jp->end && is_letter(*jp->p))
		return fail(jp, "bad literal");
	return 0;
}

/* A member's name and its colon; the value follows. */
static int
key(struct jparse *jp)
{
	skip_ws(jp);
	if (jp->p == jp->end)
		return fail(jp, "unexpected end");
	if (*jp->p != '"')
		return fail(jp, "expected string key");
	if (string(jp) == -1)
		return -1;
	skip_ws(jp);
	if (jp->p == jp->end)
		return fail(jp, "unexpected end");
	if (*jp->p != ':')
		return fail(jp, "expected ':'");
	jp->p++;
	return 0;
}

/*
 * Read one value.  A bracket is pushed, and then the value read is the
 * container's first member, so an empty container returns at its closing
 * bracket, which the caller pops.
 */
static int
value(struct jparse *jp, char *close, int *depth)
{
	for (;;) {
		skip_ws(jp);
		if (jp->p == jp->end)
			return fail(jp, "unexpected end");
		switch (*jp->p) {
		case '{':
		case '[':
			if (*depth == JSON_MAX_DEPTH)
				return fail(jp, "nested too deeply");
			close[(*depth)++] = *jp->p == '{' ? '}' : ']';
			jp->p++;
			skip_ws(jp);
			if (jp->p < jp->end && *jp->p == close[*depth - 1])
				return 0;
			if (close[*depth - 1] == '}' && key(jp) == -1)
				return -1;
			break;
		case '"':
			return string(jp);
		case 't':
			return literal(jp, "true", 4);
		case 'f':
			return literal(jp, "false", 5);
		case 'n':
			return literal(jp, "null", 4);
		case '-': case '+': case '.':
		case '0': case '1': case '2': case '3': case '4':
		case '5': case '6': case '7': case '8': case '9':
			return number(jp);
		default:
			return fail(jp, "unexpected character");
		}
	}
}

/* Parse from the opening brace at jp->p to its closing brace. */
static int
parse(struct jparse *jp)
{
	char close[JSON_MAX_DEPTH];	/* what ends each open container */
	int depth = 0;
	char c;

	for (;;) {
		if (value(jp, close, &depth) == -1)
			return -1;
		for (;;) {
			skip_ws(jp);
			if (jp->p == jp->end)
				return fail(jp, "unexpected end");
			c = close[depth - 1];
			if (*jp->p == c) {
				jp->p++;
				if (--depth == 0)
					return 0;
				continue;
			}
			if (*jp->p != ',')
				return fail(jp, c == '}' ?
				    "expected ',' or '}'" : "expected ',' or ']'");
			jp->p++;
			skip_ws(jp);
			if (jp->p < jp->end && *jp->p == c)
				return fail(jp, "trailing comma");
			if (c == '}' && key(jp) == -1)
				return -1;
			break;
		}
	}
}

int
json_copy_object(struct obuf *out, const char *rec, size_t len, const char **why)
{
	struct jparse jp;
	size_t n;

	jp.p = jp.run = (const unsigned char *)rec;
	jp.end = jp.p + len;
	jp.o = out->p + out->len;
	jp.why = NULL;
	skip_ws(&jp);
	if (jp.p == jp.end)
		jp.why = "unexpected end";
	else if (*jp.p != '{')
		jp.why = "not an object";
	else if (parse(&jp) == 0) {
		skip_ws(&jp);
		if (jp.p != jp.end)
			jp.why = "trailing data";
	}
	if (jp.why != NULL) {
		*why = jp.why;
		return -1;
	}
	n = jp.p - jp.run;
	memcpy(jp.o, jp.run, n);
	out->len = jp.o + n - out->p;
	return 0;
}

static char *
escape_byte(char *o, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";

	*o++ = '\\';
	switch (esc[c]) {
	case 'x':
		memcpy(o, "ufffd", 5);
		return o + 5;
	case 'u':
		memcpy(o, "u00", 3);
		o[3] = hex[c >> 4];
		o[4] = hex[c & 0xf];
		return o + 5;
	default:
		*o++ = esc[c];
		return o;
	}
}

/*
 * Write p..end as the inside of a JSON string: plain ASCII and valid UTF-8
 * are copied as they are, every other byte is escaped alone.  Plain bytes
 * go 8 at a time while 8 are left.  When fewer are left and the last 8
 * bytes of the string are plain, they are all copied in one go to end
 * where the string ends in o: those before p are plain too, so they went
 * out one for one as the last bytes before o, and are only written again.
 */
static char *
string_body(char *o, const unsigned char *p, const unsigned char *end)
{
	const unsigned char *start = p;
	size_t n;

	while (p < end) {
		while (end - p >= 8 && plain8(p)) {
			memcpy(o, p, 8);
			o += 8;
			p += 8;
		}
		if (end - p < 8 && end - start >= 8 && plain8(end - 8)) {
			memcpy(o + (end - p) - 8, end - 8, 8);
			return o + (end - p);
		}
		while (p < end && esc[*p] == 0)
			*o++ = *p++;
		if (p == end)
			break;
		if (*p >= 0x80 && (n = utf8_len(p, end)) != 0) {
			while (n-- > 0)
				*o++ = *p++;
		} else {
			o = escape_byte(o, *p++);
		}
	}
	return o;
}

void
json_string(struct obuf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	char *o = out->p + out->len;

	*o++ = '"';
	o = string_body(o, p, p + len);
	*o++ = '"';
	out->len = o - out->p;
}

/*
 * RFC 5424 6.3.3: only \" \\ and \] are escapes; any other backslash is
 * itself.  A backslash is ASCII, so cutting the value at one never splits
 * a UTF-8 sequence.
 */
void
json_sd_value(struct obuf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len, *bs;
	char *o = out->p + out->len;

	*o++ = '"';
	while (p < end && (bs = memchr(p, '\\', end - p)) != NULL) {
		o = string_body(o, p, bs);
		p = bs + 1;
		if (p < end && (*p == '"' || *p == '\\' || *p == ']'))
			bs = p++;	/* the escaped byte stands for itself */
		o = string_body(o, bs, bs + 1);
	}
	o = string_body(o, p, end);
	*o++ = '"';
	out->len = o - out->p;
}

/*
 * Reading a member back out of an object (json_member).  The object is
 * walked member by member at the top level; values are stepped over by
 * their brackets and quotes only, without checking them again.
 */

/*
 * The byte after the string whose opening quote is just before p, or NULL:
 * the first quote after an even run of backslashes (memchr finds quotes
 * faster than a scan byte by byte).
 */
static const unsigned char *
string_end(const unsigned char *p, const unsigned char *end)
{
	const unsigned char *start = p, *q;

	while ((q = memchr(p, '"', (size_t)(end - p))) != NULL) {
		size_t bs = 0;

		while (q - bs > start && q[-1 - (ptrdiff_t)bs] == '\\')
			bs++;
		if (bs % 2 == 0)
			return q + 1;
		p = q + 1;
	}
	return NULL;
}

/*
 * The end of the value at p: after its closing quote or bracket, or, for a
 * number or a literal, at the ',', '}', ']' or whitespace that follows it.
 */
static const unsigned char *
value_end(const unsigned char *p, const unsigned char *end)
{
	size_t depth = 0;

	while (p < end) {
		switch (*p) {
		case '"':
			if ((p = string_end(p + 1, end)) == NULL || depth == 0)
				return p;
			continue;
		case '{': case '[':
			depth++;
			break;
		case '}': case ']':
			if (depth == 0)
				return p;
			if (--depth == 0)
				return p + 1;
			break;
		case ',': case ' ': case '\t': case '\n': case '\r':
			if (depth == 0)
				return p;
			break;
		}
		p++;
	}
	return depth == 0 ? p : NULL;
}

static const unsigned char *
skip_ws_at(const unsigned char *p, const unsigned char *end)
{
	while (p < end && is_ws(*p))
		p++;
	return p;
}

/* Code point c (at most U+10FFFF) as UTF-8 in u: its length. */
static int
utf8_put(unsigned char *u, long c)
{
	if (c < 0x80) {
		u[0] = c;
		return 1;
	}
	if (c < 0x800) {
		u[0] = 0xc0 | c >> 6;
		u[1] = 0x80 | (c & 0x3f);
		return 2;
	}
	if (c < 0x10000) {
		u[0] = 0xe0 | c >> 12;
		u[1] = 0x80 | (c >> 6 & 0x3f);
		u[2] = 0x80 | (c & 0x3f);
		return 3;
	}
	u[0] = 0xf0 | c >> 18;
	u[1] = 0x80 | (c >> 12 & 0x3f);
	u[2] = 0x80 | (c >> 6 & 0x3f);
	u[3] = 0x80 | (c & 0x3f);
	return 4;
}

/* The code point of the \u escape at p (6 bytes, or 12 for a surrogate pair); *n its length. */
static long
unicode_escape(const unsigned char *p, const unsigned char *end, int *n)
{
	long c, lo;

	if (end - p < 6 || (c = hex4(p + 2)) == -1)
		return -1;
	*n = 6;
	if (c < 0xd800 || c > 0xdfff)
		return c;
	if (c <= 0xdbff && end - p >= 12 && p[6] == '\\' && p[7] == 'u' &&
	    (lo = hex4(p + 8)) >= 0xdc00 && lo <= 0xdfff) {
		*n = 12;
		return 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
	}
	return 0xfffd;		/* a lone surrogate: no character */
}

/*
 * One character of a string, from *pp on, decoded into u (up to 4 bytes):
 * its length, 0 at the closing quote (stepped over), -1 at a bad escape or
 * the end of the text.
 */
static int
string_char(const unsigned char **pp, const unsigned char *end, unsigned char *u)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const unsigned char *p = *pp;
	const char *e;
	long c;
	int n;

	if (p == end)
		return -1;
	*pp = p + 1;
	if (*p == '"')
		return 0;
	if (*p != '\\') {
		u[0] = *p;
		return 1;
	}
	if (end - p < 2)
		return -1;
	if (p[1] == 'u') {
		if ((c = unicode_escape(p, end, &n)) == -1)
			return -1;
		*pp = p + n;
		return utf8_put(u, c);
	}
	if ((e = memchr(from, p[1], sizeof(from) - 1)) == NULL)
		return -1;
	*pp = p + 2;
	u[0] = to[e - from];
	return 1;
}

/* The end (its closing quote) of the string at p when it has no escape in it, else NULL. */
static const unsigned char *
plain_string_end(const unsigned char *p, const unsigned char *end)
{
	for (; p < end; p++)
		if (*p == '"' || *p == '\\')
			return *p == '"' ? p : NULL;
	return NULL;
}

/*
 * Whether the string at *pp (after its opening quote) decodes to name;
 * stepped over.  A name without escapes (the usual one) is compared as it
 * stands.
 */
static int
name_is(const unsigned char **pp, const unsigned char *end, const char *name, size_t nlen)
{
	const unsigned char *q = plain_string_end(*pp, end);
	unsigned char u[4];
	size_t i = 0;
	int n, same = 1;

	if (q != NULL) {
		same = (size_t)(q - *pp) == nlen && memcmp(*pp, name, nlen) == 0;
		*pp = q + 1;
		return same;
	}
	while ((n = string_char(pp, end, u)) > 0) {
		if (same && (nlen - i < (size_t)n || memcmp(name + i, u, n) != 0))
			same = 0;
		i += n;
	}
	return n == -1 ? -1 : same && i == nlen;
}

/* Write the value at p to out, as json_member says. */
static ssize_t
value_out(const unsigned char *p, const unsigned char *end, char *out, size_t size)
{
	const unsigned char *v;
	unsigned char u[4];
	size_t o = 0;
	int n;

	if (p == end)
		return -1;
	if (*p != '"') {
		if ((v = value_end(p, end)) == NULL)
			return -1;
		o = (size_t)(v - p) < size ? (size_t)(v - p) : size;
		memcpy(out, p, o);
		return o;
	}
	p++;
	if ((v = plain_string_end(p, end)) != NULL) {	/* no escapes: as it stands */
		o = (size_t)(v - p) < size ? (size_t)(v - p) : size;
		memcpy(out, p, o);
		return o;
	}
	while ((n = string_char(&p, end, u)) > 0 && size - o >= (size_t)n) {
		memcpy(out + o, u, n);
		o += n;
	}
	return n == -1 ? -1 : (ssize_t)o;
}

ssize_t
json_member(const char *obj, size_t len, const char *name, size_t nlen, char *out, size_t size)
{
	const unsigned char *p = (const unsigned char *)obj, *end = p + len;
	int match;

	p = skip_ws_at(p, end);
	if (p == end || *p != '{')
		return -1;
	for (p = skip_ws_at(p + 1, end); p < end && *p == '"'; p = skip_ws_at(p + 1, end)) {
		p++;
		if ((match = name_is(&p, end, name, nlen)) == -1)
			return -1;
		p = skip_ws_at(p, end);
		if (p == end || *p != ':')
			return -1;
		p = skip_ws_at(p + 1, end);
		if (match)
			return value_out(p, end, out, size);
		if ((p = value_end(p, end)) == NULL)
			return -1;
		p = skip_ws_at(p, end);
		if (p == end || *p != ',')
			return -1;	/* the closing brace: no such member */
	}
	return -1;
}

int
json_next_member(const char *obj, size_t len, size_t *pos, const char **name, size_t *nlen,
    const char **value, size_t *vlen)
{
	const unsigned char *b = (const unsigned char *)obj, *end = b + len, *p = b + *pos, *q;

	p = skip_ws_at(p, end);
	if (*pos == 0) {
		if (p == end || *p != '{')
			return -1;
		p = skip_ws_at(p + 1, end);
	} else if (p < end && *p == ',') {
		p = skip_ws_at(p + 1, end);
	}
	if (p < end && *p == '}')
		return 0;
	if (p == end || *p != '"' || (q = string_end(p + 1, end)) == NULL)
		return -1;
	*name = (const char *)p + 1;
	*nlen = (size_t)(q - p - 2);
	p = skip_ws_at(q, end);
	if (p == end || *p != ':')
		return -1;
	p = skip_ws_at(p + 1, end);
	if ((q = value_end(p, end)) == NULL || q == p)
		return -1;
	*value = (const char *)p;
	*vlen = (size_t)(q - p);
	*pos = (size_t)(q - b);
	return 1;
}

size_t
json_fill(const char *tmpl, const char *obj, size_t len, char *out, size_t size,
    size_t (*clean)(char *, size_t, size_t))
{
	const char *t = tmpl, *end;
	size_t o = 0;
	ssize_t n;

	while (*t && o < size) {
		if (t[0] != '$' || t[1] != '{' || (end = strchr(t + 2, '}')) == NULL) {
			out[o++] = *t++;
			continue;
		}
		n = json_member(obj, len, t + 2, end - t - 2, out + o, size - o);
		if (n < 0)
			n = 0;
		if (clean)
			n = clean(out + o, n, size - o);
		o += n;
		t = end + 1;
	}
	return o;
}
