/*
 * server/httphead.c: HTTP/1.x request heads, whole, cut at every byte and
 * grown a byte at a time; malformed ones refused with their status when
 * the line that shows it ends, not before.
 */
#include <string.h>

#include "httphead.h"
#include "tests.h"

/* A literal with NUL bytes in it, and its length. */
#define BYTES(s)	s, sizeof(s) - 1

struct good {
	const char	*data;
	size_t		 n;
	const char	*method, *path;
	int		 minor;
	size_t		 len;		/* of the head; 0: all of data */
};

static const struct good good[] = {
	{ BYTES("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9514\r\nAccept: */*\r\n\r\n"),
	  "GET", "/metrics", 1, 0 },
	{ BYTES("HEAD /stats HTTP/1.0\r\n\r\n"), "HEAD", "/stats", 0, 0 },
	{ BYTES("GET /metrics?name[]=x&y HTTP/1.1\n\n"), "GET", "/metrics", 1, 0 },
	{ BYTES("\r\n\nGET / HTTP/1.1\r\n\r\n"), "GET", "/", 1, 0 },
	{ BYTES("GET http://h:9514/stats?q HTTP/1.1\r\nHost: h\r\n\r\n"), "GET", "/stats", 1, 0 },
	{ BYTES("GET HTTPS://h HTTP/1.1\r\n\r\n"), "GET", "/", 1, 0 },
	{ BYTES("GET http://h?q=/x HTTP/1.1\r\n\r\n"), "GET", "/", 1, 0 },
	{ BYTES("OPTIONS * HTTP/1.1\r\n\r\n"), "OPTIONS", "*", 1, 0 },
	{ BYTES("GET /a#frag HTTP/1.1\r\n\r\n"), "GET", "/a", 1, 0 },
	{ BYTES("GET / HTTP/1.9\r\nA:\r\nB: c d\r\n\r\n"), "GET", "/", 1, 0 },
	{ BYTES("GET / HTTP/1.1\r\nX-Any: \r\x01\x80\0 value bytes are not looked at\r\n\r\n"),
	  "GET", "/", 1, 0 },
	{ BYTES("M-SEARCH /%6detrics HTTP/1.1\r\n\n"), "M-SEARCH", "/%6detrics", 1, 0 },
	/* What follows the head is not the head's. */
	{ BYTES("POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"), "POST", "/metrics",
	  1, 45 },
	{ BYTES("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"), "GET", "/a", 1, 19 },
};

#define NGOOD	(sizeof(good) / sizeof(good[0]))

struct bad {
	const char	*data;
	size_t		 n;
	int		 status;
	const char	*why;
};

static const struct bad bad[] = {
	{ BYTES("GET  /metrics HTTP/1.1\r\n"), 400, "malformed request target" },
	{ BYTES(" GET / HTTP/1.1\r\n"), 400, "malformed method" },
	{ BYTES("GET\0 / HTTP/1.1\r\n"), 400, "malformed method" },
	{ BYTES("GET\r\n"), 400, "malformed method" },
	{ BYTES("GET /\r\n"), 400, "malformed request target" },		/* HTTP/0.9 */
	{ BYTES("GET /\x01 HTTP/1.1\r\n"), 400, "malformed request target" },
	{ BYTES("GET /\xc3\xa9 HTTP/1.1\r\n"), 400, "malformed request target" },
	{ BYTES("GET metrics HTTP/1.1\r\n"), 400,
	  "request target is not a path, an absolute URI or \"*\"" },
	{ BYTES("GET http:// HTTP/1.1\r\n"), 400,
	  "request target is not a path, an absolute URI or \"*\"" },
	{ BYTES("GET /a b HTTP/1.1\r\n"), 400, "malformed HTTP version" },
	{ BYTES("GET / HTTP/1.1 \r\n"), 400, "malformed HTTP version" },
	{ BYTES("GET / http/1.1\r\n"), 400, "malformed HTTP version" },
	{ BYTES("GET / HTTP/1.1\r\r\n"), 400, "malformed HTTP version" },
	{ BYTES("GET / HTTP/11\r\n"), 400, "malformed HTTP version" },
	{ BYTES("GET / HTTP/2.0\r\n"), 505, "HTTP version not supported" },
	{ BYTES("GET / HTTP/0.9\r\n"), 505, "HTTP version not supported" },
	{ BYTES("GET / HTTP/1.1\r\nNo colon\r\n"), 400, "malformed header line" },
	{ BYTES("GET / HTTP/1.1\r\nHost : x\r\n"), 400, "malformed header line" },
	{ BYTES("GET / HTTP/1.1\r\n: x\r\n"), 400, "malformed header line" },
	{ BYTES("GET / HTTP/1.1\r\nA: b\r\n  folded\r\n"), 400, "folded header line" },
	{ BYTES("GET / HTTP/1.1\r\nA: b\r\n\tfolded\r\n"), 400, "folded header line" },
};

#define NBAD	(sizeof(bad) / sizeof(bad[0]))

static size_t
head_len(const struct good *g)
{
	return g->len ? g->len : g->n;
}

static void
check_good(const struct httphead *h, const struct good *g, const char *how)
{
	ck_assert_msg(h->methodlen == strlen(g->method) &&
	    memcmp(h->method, g->method, h->methodlen) == 0, "%s: method %.*s, expected %s", how,
	    (int)h->methodlen, h->method, g->method);
	ck_assert_msg(h->pathlen == strlen(g->path) && memcmp(h->path, g->path, h->pathlen) == 0,
	    "%s: path %.*s, expected %s", how, (int)h->pathlen, h->path, g->path);
	ck_assert_int_eq(h->minor, g->minor);
	ck_assert_uint_eq(h->len, head_len(g));
}

START_TEST(whole)
{
	const struct good *g = &good[_i];
	struct httphead h;

	httphead_init(&h);
	ck_assert_int_eq(httphead_feed(&h, g->data, g->n), 1);
	check_good(&h, g, "whole");
}
END_TEST

/* The buffer grows a byte at a time: nothing until the head's last byte. */
START_TEST(byte_by_byte)
{
	const struct good *g = &good[_i];
	struct httphead h;

	httphead_init(&h);
	for (size_t i = 1; i < head_len(g); i++)
		ck_assert_msg(httphead_feed(&h, g->data, i) == 0, "complete after %zu of %zu bytes",
		    i, head_len(g));
	ck_assert_int_eq(httphead_feed(&h, g->data, head_len(g)), 1);
	check_good(&h, g, "byte by byte");
}
END_TEST

START_TEST(every_split)
{
	const struct good *g = &good[_i];
	struct httphead h;

	for (size_t cut = 1; cut < g->n; cut++) {
		int rc;

		httphead_init(&h);
		if ((rc = httphead_feed(&h, g->data, cut)) == 0)
			rc = httphead_feed(&h, g->data, g->n);
		ck_assert_msg(rc == 1, "cut at %zu: %d", cut, rc);
		check_good(&h, g, "split");
	}
}
END_TEST

/* Refused when the offending line ends, whole or a byte at a time. */
START_TEST(malformed)
{
	const struct bad *b = &bad[_i];
	struct httphead h;
	int rc = 0;
	size_t i;

	for (i = 1; i <= b->n && rc == 0; i++) {
		if (i == 1)
			httphead_init(&h);
		rc = httphead_feed(&h, b->data, i);
	}
	ck_assert_msg(rc == -1, "case %d: %d, expected a refusal", _i, rc);
	ck_assert_msg(i - 1 == b->n, "case %d: refused after %zu of %zu bytes", _i, i - 1, b->n);
	ck_assert_int_eq(h.status, b->status);
	ck_assert_str_eq(h.why, b->why);
	httphead_init(&h);
	ck_assert_int_eq(httphead_feed(&h, b->data, b->n), -1);
	ck_assert_int_eq(h.status, b->status);
	ck_assert_str_eq(h.why, b->why);
}
END_TEST

/* However long, a head without its empty line is not complete, and no error either. */
START_TEST(incomplete)
{
	static char buf[65536];
	struct httphead h;
	size_t n = strlen("GET /metrics HTTP/1.1\r\n");

	memcpy(buf, "GET /metrics HTTP/1.1\r\n", n);
	for (; n + 12 <= sizeof(buf); n += 12)
		memcpy(buf + n, "X-Pad: 123\r\n", 12);
	httphead_init(&h);
	ck_assert_int_eq(httphead_feed(&h, buf, 23), 0);
	ck_assert_int_eq(httphead_feed(&h, buf, n), 0);
	ck_assert_uint_eq(h.scanned, n);
	memset(buf, 'x', sizeof(buf));		/* one endless line */
	httphead_init(&h);
	ck_assert_int_eq(httphead_feed(&h, buf, sizeof(buf)), 0);
}
END_TEST

Suite *
httphead_suite(void)
{
	Suite *s = suite_create("httphead");
	TCase *tc = tcase_create("httphead");

	tcase_add_loop_test(tc, whole, 0, (int)NGOOD);
	tcase_add_loop_test(tc, byte_by_byte, 0, (int)NGOOD);
	tcase_add_loop_test(tc, every_split, 0, (int)NGOOD);
	tcase_add_loop_test(tc, malformed, 0, (int)NBAD);
	tcase_add_test(tc, incomplete);
	suite_add_tcase(s, tc);
	return s;
}
