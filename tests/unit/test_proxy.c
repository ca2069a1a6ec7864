/*
 * worker/protocol/proxy.c: PROXY protocol v1 and v2 headers, whole, cut at every
 * byte, followed by the client's stream, and malformed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "proxy.h"
#include "tests.h"

#define STREAM	"<13>the client's first record\n"
#define SIG	"\r\n\r\n\0\r\nQUIT\n"

/* A literal with NUL bytes in it, and its length. */
#define BYTES(s)	s, sizeof(s) - 1

struct header {
	const char	*data;
	size_t		 len;
	const char	*src;		/* NULL: local */
	const char	*dst;
};

/* A v1 line of exactly 107 bytes: "PROXY UNKNOWN " and padding, then CRLF. */
static char longest_v1[PROXY_V1_MAX + 1];

static const struct header good[] = {
	{ BYTES("PROXY TCP4 192.0.2.10 198.51.100.1 40000 5514\r\n"),
	  "192.0.2.10:40000", "198.51.100.1:5514" },
	{ BYTES("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"),
	  "0.0.0.0:0", "255.255.255.255:65535" },
	{ BYTES("PROXY TCP6 2001:db8::7 2001:DB8:0:0:0:0:0:1 1 2\r\n"),
	  "[2001:db8::7]:1", "[2001:db8::1]:2" },
	{ BYTES("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
	  "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
	  "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535" },
	{ BYTES("PROXY UNKNOWN\r\n"), NULL, NULL },
	{ BYTES("PROXY UNKNOWN anything at all, even ::: or 999\r\n"), NULL, NULL },
	/* v2 PROXY, TCP over IPv4: 12 bytes of addresses */
	{ BYTES(SIG "\x21\x11\x00\x0c" "\xc0\x00\x02\x0a" "\xc6\x33\x64\x01" "\x9c\x40" "\x15\x8a"),
	  "192.0.2.10:40000", "198.51.100.1:5514" },
	/* v2 PROXY, UDP over IPv4, with 3 bytes of TLV after the addresses */
	{ BYTES(SIG "\x21\x12\x00\x0f" "\xc0\x00\x02\x0a" "\xc6\x33\x64\x01" "\x00\x01" "\x00\x02"
	  "\x04\x00\x00"), "192.0.2.10:1", "198.51.100.1:2" },
	/* v2 PROXY, TCP over IPv6, with a 7-byte TLV */
	{ BYTES(SIG "\x21\x21\x00\x2b"
	  "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x07"
	  "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
	  "\x00\x01" "\x15\x8a" "\x01\x00\x04" "h2/x"), "[2001:db8::7]:1", "[2001:db8::1]:5514" },
	/* v2 LOCAL (a health check): no addresses, or some to skip, any family */
	{ BYTES(SIG "\x20\x00\x00\x00"), NULL, NULL },
	{ BYTES(SIG "\x20\x11\x00\x0c" "\xc0\x00\x02\x0a" "\xc6\x33\x64\x01" "\x9c\x40" "\x15\x8a"),
	  NULL, NULL },
	{ BYTES(SIG "\x20\xff\x00\x01" "x"), NULL, NULL },
	/* v2 PROXY without a usable address: AF_UNSPEC, UNSPEC transport, AF_UNIX */
	{ BYTES(SIG "\x21\x00\x00\x00"), NULL, NULL },
	{ BYTES(SIG "\x21\x10\x00\x0c" "\xc0\x00\x02\x0a" "\xc6\x33\x64\x01" "\x9c\x40" "\x15\x8a"),
	  NULL, NULL },
	{ BYTES(SIG "\x21\x31\x00\x02" "/x"), NULL, NULL },
	{ NULL, 0, NULL, NULL },	/* longest_v1, filled in by setup */
};

#define NGOOD	(sizeof(good) / sizeof(good[0]))

static void
make_longest_v1(void)
{
	memset(longest_v1, 'x', PROXY_V1_MAX);
	memcpy(longest_v1, "PROXY UNKNOWN ", 14);
	memcpy(longest_v1 + PROXY_V1_MAX - 2, "\r\n", 3);
}

static struct header
good_header(int i)
{
	struct header h = good[i];

	if (h.data == NULL) {
		make_longest_v1();
		h.data = longest_v1;
		h.len = PROXY_V1_MAX;
	}
	return h;
}

static void
check_result(const struct proxy_parser *p, const struct header *h)
{
	char buf[ADDR_STRLEN];

	if (h->src == NULL) {
		ck_assert_int_eq(p->local, 1);
		return;
	}
	ck_assert_int_eq(p->local, 0);
	ck_assert_str_eq(addr_format((const struct sockaddr *)&p->src, p->srclen, buf,
	    sizeof(buf)), h->src);
	ck_assert_str_eq(addr_format((const struct sockaddr *)&p->dst, p->dstlen, buf,
	    sizeof(buf)), h->dst);
}

/*
 * The header and the stream after it, cut at one point: the header ends
 * where it should, whichever piece it ends in, and the rest is stream.
 */
static void
feed_cut(const struct header *h, size_t cut)
{
	char in[PROXY_V1_MAX + 256];
	size_t n = h->len + strlen(STREAM), used;
	struct proxy_parser p;
	const char *why = "not set";
	int rc = 0;

	memcpy(in, h->data, h->len);
	memcpy(in + h->len, STREAM, strlen(STREAM));
	proxy_init(&p);
	ck_assert_int_eq(proxy_started(&p), 0);
	if (cut > 0) {
		rc = proxy_feed(&p, in, cut, &used, &why);
		ck_assert_int_eq(proxy_started(&p), 1);
	}
	if (rc == 0) {
		rc = proxy_feed(&p, in + cut, n - cut, &used, &why);
		used += cut;
	}
	ck_assert_msg(rc == 1, "cut at %zu: proxy_feed gave %d (%s)", cut, rc, why);
	ck_assert_msg(used == h->len, "cut at %zu: the header took %zu bytes, not %zu", cut, used,
	    h->len);
	check_result(&p, h);
}

START_TEST(every_split)
{
	struct header h = good_header(_i);

	for (size_t cut = 0; cut <= h.len + strlen(STREAM); cut++)
		feed_cut(&h, cut);
}
END_TEST

START_TEST(byte_by_byte)
{
	struct header h = good_header(_i);
	struct proxy_parser p;
	const char *why = NULL;
	size_t used;
	int rc = 0;

	proxy_init(&p);
	for (size_t i = 0; i < h.len; i++) {
		rc = proxy_feed(&p, h.data + i, 1, &used, &why);
		ck_assert_int_eq(used, 1);
		ck_assert_msg(rc == (i + 1 == h.len), "byte %zu of %zu: %d (%s)", i, h.len, rc, why);
	}
	check_result(&p, &h);
}
END_TEST

struct bad {
	const char	*data;
	size_t		 len;
	const char	*why;
};

static const struct bad bad[] = {
	{ BYTES("<13>no header at all\n"), "no PROXY header" },
	{ BYTES("GET / HTTP/1.0\r\n\r\n"), "no PROXY header" },
	{ BYTES("PROXZ TCP4 192.0.2.1 192.0.2.2 1 2\r\n"), "no PROXY header" },
	{ BYTES("proxy TCP4 192.0.2.1 192.0.2.2 1 2\r\n"), "no PROXY header" },
	{ BYTES("PROXY\r\n"), "no PROXY header" },
	{ BYTES("PROXY  TCP4 192.0.2.1 192.0.2.2 1 2\r\n"),
	  "PROXY v1 header: protocol is not TCP4, TCP6 or UNKNOWN" },
	{ BYTES("PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n"),
	  "PROXY v1 header: protocol is not TCP4, TCP6 or UNKNOWN" },
	{ BYTES("PROXY UNKNOWNX\r\n"), "PROXY v1 header: protocol is not TCP4, TCP6 or UNKNOWN" },
	{ BYTES("PROXY TCP4\r\n"), "PROXY v1 header: protocol is not TCP4, TCP6 or UNKNOWN" },
	{ BYTES("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n"), "PROXY v1 header: LF without CR" },
	{ BYTES("PROXY UNKNOWN\n"), "PROXY v1 header: LF without CR" },
	{ BYTES("PROXY TCP4 192.0.2.1\r192.0.2.2 1 2\r\n"), "PROXY v1 header: CR without LF" },
	{ BYTES("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\r\n"), "PROXY v1 header: CR without LF" },
	{ BYTES("PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n"),
	  "PROXY v1 header: expected SRC DST SPORT DPORT" },
	{ BYTES("PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n"),
	  "PROXY v1 header: expected SRC DST SPORT DPORT" },
	{ BYTES("PROXY TCP4 192.0.2.1  192.0.2.2 1 2\r\n"),
	  "PROXY v1 header: expected SRC DST SPORT DPORT" },
	{ BYTES("PROXY TCP4 192.0.2.1 192.0.2.2 1 2 \r\n"),
	  "PROXY v1 header: expected SRC DST SPORT DPORT" },
	{ BYTES("PROXY TCP4 \r\n"), "PROXY v1 header: expected SRC DST SPORT DPORT" },
	{ BYTES("PROXY TCP4 192.0.2.01 192.0.2.2 1 2\r\n"), "PROXY v1 header: bad IPv4 address" },
	{ BYTES("PROXY TCP4 192.0.2 192.0.2.2 1 2\r\n"), "PROXY v1 header: bad IPv4 address" },
	{ BYTES("PROXY TCP4 192.0.2.1 256.0.2.2 1 2\r\n"), "PROXY v1 header: bad IPv4 address" },
	{ BYTES("PROXY TCP4 ::1 ::1 1 2\r\n"), "PROXY v1 header: bad IPv4 address" },
	{ BYTES("PROXY TCP6 192.0.2.1 ::1 1 2\r\n"), "PROXY v1 header: bad IPv6 address" },
	{ BYTES("PROXY TCP6 ::1 fe80::1%lo 1 2\r\n"), "PROXY v1 header: bad IPv6 address" },
	{ BYTES("PROXY TCP4 192.0.2.1 192.0.2.2 01 2\r\n"), "PROXY v1 header: bad port" },
	{ BYTES("PROXY TCP4 192.0.2.1 192.0.2.2 1 65536\r\n"), "PROXY v1 header: bad port" },
	{ BYTES("PROXY TCP4 192.0.2.1 192.0.2.2 -1 2\r\n"), "PROXY v1 header: bad port" },
	{ BYTES("PROXY TCP4 192.0.2.1 192.0.2.2 1 100000\r\n"), "PROXY v1 header: bad port" },
	{ BYTES("PROXY TCP4 192.0.2.1 192.0.2.2 1 2x\r\n"), "PROXY v1 header: bad port" },
	{ BYTES("PROXY TCP4 192.0.2.1\0 192.0.2.2 1 2\r\n"),
	  "PROXY v1 header: expected SRC DST SPORT DPORT" },
	/* v2 */
	{ BYTES("\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c"), "no PROXY header" },
	{ BYTES("\r\nGET"), "no PROXY header" },
	{ BYTES("\r\n"), NULL },	/* incomplete: not an error yet */
	{ BYTES(SIG "\x11\x11\x00\x0c"), "PROXY v2 header: version is not 2" },
	{ BYTES(SIG "\x31\x11\x00\x0c"), "PROXY v2 header: version is not 2" },
	{ BYTES(SIG "\x22\x11\x00\x0c"), "PROXY v2 header: command is neither LOCAL nor PROXY" },
	{ BYTES(SIG "\x2f\x11\x00\x0c"), "PROXY v2 header: command is neither LOCAL nor PROXY" },
	{ BYTES(SIG "\x21\x41\x00\x0c"), "PROXY v2 header: unknown address family or transport" },
	{ BYTES(SIG "\x21\x13\x00\x0c"), "PROXY v2 header: unknown address family or transport" },
	{ BYTES(SIG "\x21\x11\x00\x0b"), "PROXY v2 header: address block too short" },
	{ BYTES(SIG "\x21\x21\x00\x23"), "PROXY v2 header: address block too short" },
	{ BYTES(SIG "\x21\x11\x00\x00"), "PROXY v2 header: address block too short" },
};

static int
bad_feed(const struct bad *b, size_t cut, const char **why)
{
	struct proxy_parser p;
	size_t used;
	int rc = 0;

	proxy_init(&p);
	if (cut > 0)
		rc = proxy_feed(&p, b->data, cut, &used, why);
	if (rc == 0 && cut < b->len)
		rc = proxy_feed(&p, b->data + cut, b->len - cut, &used, why);
	return rc;
}

/* Refused with the same reason however the bytes are cut; nothing is accepted. */
START_TEST(malformed)
{
	const struct bad *b = &bad[_i];

	for (size_t cut = 0; cut <= b->len; cut++) {
		const char *why = NULL;
		int rc = bad_feed(b, cut, &why);

		if (b->why == NULL) {
			ck_assert_int_eq(rc, 0);
			continue;
		}
		ck_assert_msg(rc == -1, "case %d cut at %zu: %d, expected an error", _i, cut, rc);
		ck_assert_str_eq(why, b->why);
	}
}
END_TEST

/* A line one byte longer than the longest v1 header is refused at that byte. */
START_TEST(v1_too_long)
{
	char line[PROXY_V1_MAX + 2];
	struct proxy_parser p;
	const char *why = NULL;
	size_t used;

	memset(line, 'x', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	memcpy(line + PROXY_V1_MAX - 1, "\r\n", 2);	/* CRLF as bytes 107 and 108 */
	proxy_init(&p);
	ck_assert_int_eq(proxy_feed(&p, line, sizeof(line), &used, &why), -1);
	ck_assert_str_eq(why, "PROXY v1 header: no CRLF within 107 bytes");
	ck_assert_int_eq(used, PROXY_V1_MAX);
}
END_TEST

/* The stream stops being read at the first byte that is no header. */
START_TEST(refused_at_first_wrong_byte)
{
	struct proxy_parser p;
	const char *why = NULL;
	size_t used;

	proxy_init(&p);
	ck_assert_int_eq(proxy_feed(&p, "PROXY", 5, &used, &why), 0);
	ck_assert_int_eq(proxy_feed(&p, "-and the rest", 13, &used, &why), -1);
	ck_assert_int_eq(used, 1);
	proxy_init(&p);
	ck_assert_int_eq(proxy_feed(&p, "x", 1, &used, &why), -1);
	ck_assert_str_eq(why, "no PROXY header");
}
END_TEST

/* TLVs up to the 16-bit length are skipped without being kept. */
START_TEST(v2_long_tlvs)
{
	size_t tlv = 65535 - 12, n = PROXY_V2_HEAD + 65535 + strlen(STREAM);
	char *in = calloc(1, n);
	struct header h = { NULL, PROXY_V2_HEAD + 65535, "192.0.2.10:40000", "198.51.100.1:5514" };
	struct proxy_parser p;
	const char *why = NULL;
	size_t used, at = 0;
	int rc = 0;

	ck_assert_ptr_nonnull(in);
	memcpy(in, SIG "\x21\x11\xff\xff" "\xc0\x00\x02\x0a" "\xc6\x33\x64\x01" "\x9c\x40" "\x15\x8a",
	    PROXY_V2_HEAD + 12);
	memset(in + PROXY_V2_HEAD + 12, 0xee, tlv);
	memcpy(in + h.len, STREAM, strlen(STREAM));
	proxy_init(&p);
	while (rc == 0) {	/* in pieces of 1000 */
		size_t piece = n - at < 1000 ? n - at : 1000;

		rc = proxy_feed(&p, in + at, piece, &used, &why);
		at += used;
	}
	ck_assert_int_eq(rc, 1);
	ck_assert_int_eq(at, h.len);
	check_result(&p, &h);
	free(in);
}
END_TEST

Suite *
proxy_suite(void)
{
	Suite *s = suite_create("proxy");
	TCase *tc = tcase_create("proxy");

	tcase_add_loop_test(tc, every_split, 0, (int)NGOOD);
	tcase_add_loop_test(tc, byte_by_byte, 0, (int)NGOOD);
	tcase_add_loop_test(tc, malformed, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, v1_too_long);
	tcase_add_test(tc, refused_at_first_wrong_byte);
	tcase_add_test(tc, v2_long_tlvs);
	suite_add_tcase(s, tc);
	return s;
}
