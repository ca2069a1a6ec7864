/*
 * bench_records: the records ingestd-bench sends, in four shapes, LF or
 * octet-counted (RFC 6587).
 *
 * Every record carries "c=CONN s=SEQ", CONN the connection's id and SEQ
 * the record's number on that connection from 0, so that a checker can
 * prove that each record arrived exactly once:
 *
 *   5424  <165>1 2026-11-24T01:07:50.123456Z localhost ingestd-bench - - - c=3 s=0 the quick...
 *   3164  <13>Nov 24 01:07:50 localhost ingestd-bench: c=3 s=1 the quick...
 *   json  {"host":"localhost","app":"ingestd-bench","msg":"c=3 s=2 the quick..."}
 *   raw   c=3 s=3 the quick...
 *
 * "mix" cycles through the four by sequence number.  Text pads a record to
 * its size (the record without its framing), a fixed one or one drawn per
 * record from a range; a record never gets shorter than its header.
 * A record is put together from pieces rendered once at start (the headers
 * carry the start time), so formatting one costs a few copies and two
 * number conversions: the sender is not the bottleneck.
 *
 * The settings are fixed by rec_init() before any sender starts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define NSHAPES		4
#define HOST		"localhost"
#define APP		"ingestd-bench"

struct piece {
	char		 s[96];
	size_t		 n;
};

static enum shape	 shape;
static int		 octet;
static size_t		 size_min, size_max;
static struct piece	 head[NSHAPES], tail[NSHAPES];
static char		*pad;		/* size_max bytes of text */

static void
piece(struct piece *p, const char *s)
{
	p->n = strlen(s);
	memcpy(p->s, s, p->n + 1);
}

static void
render_heads(void)
{
	static const char *const mon[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct timespec ts;
	struct tm tm;
	char buf[96];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, sizeof(buf), "<165>1 %04d-%02d-%02dT%02d:%02d:%02d.%06ldZ " HOST " " APP
	    " - - - ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, ts.tv_nsec / 1000);
	piece(&head[SHAPE_5424], buf);
	snprintf(buf, sizeof(buf), "<13>%s %2d %02d:%02d:%02d " HOST " " APP ": ",
	    mon[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	piece(&head[SHAPE_3164], buf);
	piece(&head[SHAPE_JSON], "{\"host\":\"" HOST "\",\"app\":\"" APP "\",\"msg\":\"");
	piece(&tail[SHAPE_JSON], "\"}");
	piece(&head[SHAPE_RAW], "");
}

void
rec_init(enum shape sh, int oct, size_t min, size_t max)
{
	static const char text[] = " the quick brown fox jumps over the lazy dog,";

	shape = sh;
	octet = oct;
	size_min = min;
	size_max = max;
	render_heads();
	if ((pad = malloc(max)) == NULL)
		abort();
	for (size_t i = 0; i < max; i++)
		pad[i] = text[i % (sizeof(text) - 1)];
}

/* Longest framed record: header, the two numbers, padding, framing. */
size_t
rec_frame_max(void)
{
	return 96 + 2 * 20 + 8 + size_max + 12;
}

static size_t
digits(uint64_t v)
{
	size_t n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

/* Write v's n decimal digits at p. */
static char *
put_num(char *p, uint64_t v, size_t n)
{
	for (size_t i = n; i > 0; i--) {
		p[i - 1] = '0' + v % 10;
		v /= 10;
	}
	return p + n;
}

static char *
put(char *p, const void *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

/* xorshift64*: a record size per record, the same on every run. */
static size_t
draw_size(uint64_t *rng)
{
	uint64_t x = *rng;

	if (size_min == size_max)
		return size_min;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*rng = x;
	return size_min + (x * 0x2545F4914F6CDD1DULL >> 32) % (size_max - size_min + 1);
}

/* Write one framed record at p (room for rec_frame_max()); its length. */
size_t
rec_put(char *p, uint32_t conn, uint64_t seq, uint64_t *rng)
{
	int sh = shape == SHAPE_MIX ? (int)(seq % NSHAPES) : (int)shape;
	size_t nc = digits(conn), ns = digits(seq), want = draw_size(rng);
	size_t len = head[sh].n + 2 + nc + 3 + ns + tail[sh].n, npad = 0;
	char *start = p;

	if (want > len)
		npad = want - len;
	len += npad;
	if (octet) {
		p = put_num(p, len, digits(len));
		*p++ = ' ';
	}
	p = put(p, head[sh].s, head[sh].n);
	p = put(p, "c=", 2);
	p = put_num(p, conn, nc);
	p = put(p, " s=", 3);
	p = put_num(p, seq, ns);
	p = put(p, pad, npad);
	p = put(p, tail[sh].s, tail[sh].n);
	if (!octet)
		*p++ = '\n';
	return p - start;
}

/* Length of the whole framed record at the start of p, 0 if it is not whole. */
size_t
rec_next(const char *p, size_t len)
{
	const char *nl;
	size_t n = 0, i;

	if (!octet) {
		nl = memchr(p, '\n', len);
		return nl ? (size_t)(nl - p) + 1 : 0;
	}
	for (i = 0; i < len && p[i] >= '0' && p[i] <= '9'; i++)
		n = n * 10 + (p[i] - '0');
	if (i == len || i + 1 + n > len)
		return 0;
	return i + 1 + n;
}
