/*
 * worker/sinks/segment.c: the spool's on-disk format: records cut at every
 * byte (a torn tail), every bit of a record flipped (never read as valid,
 * and reading resumes at the next record), headers, and the ledger's two
 * slots torn one at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segment.h"
#include "tests.h"

static const char *payloads[] = { "1 a\n", "", "a longer payload, with a line feed\n inside\n" };
#define NPAY	(int)(sizeof(payloads) / sizeof(payloads[0]))

/* A segment of the payloads; ends[i]: where record i ends. */
static void
build(struct obuf *o, size_t ends[NPAY])
{
	memset(o, 0, sizeof(*o));
	ck_assert_int_eq(obuf_reserve(o, SEG_HEADER), 0);
	seg_header(o->p, 1234);
	o->len = SEG_HEADER;
	for (int i = 0; i < NPAY; i++) {
		ck_assert_int_eq(seg_put(o, payloads[i], strlen(payloads[i]), 1000 + i), 0);
		ends[i] = o->len;
	}
}

/* Read records from p[SEG_HEADER..n): how many were valid, and how the scan ended. */
static int
scan(const char *p, size_t n, enum seg_result *last)
{
	size_t off = SEG_HEADER;
	struct seg_record r;
	int got = 0;

	while ((*last = seg_next(p + off, n - off, &r)) == SEG_OK) {
		ck_assert_uint_eq(r.len, strlen(payloads[got]));
		ck_assert(memcmp(r.payload, payloads[got], r.len) == 0);
		ck_assert_uint_eq(r.time_ms, 1000 + got);
		off += r.size;
		got++;
		if (off == n)
			break;
	}
	return got;
}

START_TEST(every_truncation)
{
	struct obuf o;
	size_t ends[NPAY];
	const char *why;

	build(&o, ends);
	for (size_t n = 0; n <= o.len; n++) {
		enum seg_result last = SEG_OK;
		int want = 0, got;

		if (n < SEG_HEADER) {
			ck_assert_int_eq(seg_header_ok(o.p, n, &why), -1);
			continue;
		}
		ck_assert_int_eq(seg_header_ok(o.p, n, &why), 0);
		while (want < NPAY && ends[want] <= n)
			want++;
		got = scan(o.p, n, &last);
		ck_assert_int_eq(got, want);
		if (n != SEG_HEADER && (want == 0 || ends[want - 1] != n))
			ck_assert_int_eq(last, SEG_SHORT);	/* a torn tail, never a bad record */
	}
	obuf_free(&o);
}
END_TEST

START_TEST(every_flip)
{
	struct obuf o;
	size_t ends[NPAY];

	build(&o, ends);
	for (size_t at = ends[0]; at < ends[1]; at++) {
		for (int bit = 0; bit < 8; bit++) {
			enum seg_result last;

			o.p[at] ^= (char)(1 << bit);
			ck_assert_int_eq(scan(o.p, o.len, &last), 1);	/* record 1 is never valid */
			ck_assert(last != SEG_OK);
			/* and reading resumes at record 2, whatever the damage */
			ck_assert_uint_eq(seg_resync(o.p, o.len, ends[0]), ends[1]);
			o.p[at] ^= (char)(1 << bit);
		}
	}
	obuf_free(&o);
}
END_TEST

/* The CRC is CRC-32C over length, time and payload: a known answer, as other tools compute it. */
START_TEST(known_crc)
{
	struct obuf o = { 0 };
	const unsigned char *h;

	ck_assert_int_eq(seg_put(&o, "123456789", 9, 0), 0);
	h = (const unsigned char *)o.p;
	ck_assert_uint_eq((uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 |
	    (uint32_t)h[7] << 24, 0xf3e00834);
	obuf_free(&o);
}
END_TEST

START_TEST(headers)
{
	char h[SEG_HEADER];
	const char *why = NULL;
	struct seg_record r;
	char big[SEG_RECORD_HEAD] = { 0 };
	struct obuf o = { 0 };

	seg_header(h, 1);
	ck_assert_int_eq(seg_header_ok(h, sizeof(h), &why), 0);
	h[8] = 2;	/* another version */
	ck_assert_int_eq(seg_header_ok(h, sizeof(h), &why), -1);
	ck_assert(strstr(why, "version") != NULL);
	h[0] = 'X';
	ck_assert_int_eq(seg_header_ok(h, sizeof(h), &why), -1);
	ck_assert(strstr(why, "not a spool segment") != NULL);
	big[3] = 0x7f;	/* a length of about 2 GiB */
	ck_assert_int_eq(seg_next(big, sizeof(big), &r), SEG_BAD_HEAD);
	ck_assert_int_eq(seg_put(&o, "x", (size_t)SEG_RECORD_MAX + 1, 0), -1);
	obuf_free(&o);
}
END_TEST

START_TEST(ledger_slots)
{
	char buf[LEDGER_SIZE];
	struct ledger_pos a = { 7, 3, 4096 }, b = { 8, 4, 24 }, got;

	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(ledger_read(buf, sizeof(buf), &got), -1);
	ledger_slot(buf + LEDGER_SLOT, &a);		/* generation 7 in slot 1 */
	ck_assert_int_eq(ledger_read(buf, sizeof(buf), &got), 0);
	ck_assert(got.gen == 7 && got.seq == 3 && got.off == 4096);
	ledger_slot(buf, &b);				/* generation 8 in slot 0 */
	ck_assert_int_eq(ledger_read(buf, sizeof(buf), &got), 0);
	ck_assert(got.gen == 8 && got.seq == 4 && got.off == 24);
	/* a write of slot 0 torn at any byte leaves slot 1's position (44..63: padding) */
	for (int at = 0; at < 44; at++) {
		buf[at] ^= 0x20;
		ck_assert_int_eq(ledger_read(buf, sizeof(buf), &got), 0);
		ck_assert(got.gen == 7 && got.seq == 3 && got.off == 4096);
		buf[at] ^= 0x20;
	}
	ck_assert_int_eq(ledger_read(buf, LEDGER_SLOT, &got), 0);	/* a file cut after slot 0 */
	ck_assert(got.gen == 8);
	buf[3] ^= 1;
	buf[LEDGER_SLOT + 3] ^= 1;
	ck_assert_int_eq(ledger_read(buf, sizeof(buf), &got), -1);
}
END_TEST

Suite *
segment_suite(void)
{
	Suite *s = suite_create("segment");
	TCase *tc = tcase_create("segment");

	tcase_add_test(tc, every_truncation);
	tcase_add_test(tc, every_flip);
	tcase_add_test(tc, known_crc);
	tcase_add_test(tc, headers);
	tcase_add_test(tc, ledger_slots);
	suite_add_tcase(s, tc);
	return s;
}
