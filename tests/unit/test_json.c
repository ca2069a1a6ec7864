/*
 * worker/protocol/json.c: checking and compacting JSON objects, writing JSON strings.
 *
 * Every input is an exact-size malloc'd copy and every output buffer has
 * exactly the room the contract promises (after a prefix that must survive),
 * so AddressSanitizer catches a read past len or a write past the bound.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "tests.h"

#define B(s)	s, sizeof(s) - 1	/* a byte string literal and its length */
#define PREFIX	"x,"			/* already in the buffer: appended after */
#define PLEN	(sizeof(PREFIX) - 1)

struct res {
	int		 rc;
	const char	*why;
	char		*out;	/* NUL-terminated copy of what was appended */
	size_t		 len;
};

static char *
dup_exact(const char *s, size_t len)
{
	char *p = malloc(len);

	ck_assert_ptr_nonnull(p);
	memcpy(p, s, len);
	return p;
}

static struct obuf
obuf_new(size_t room)
{
	struct obuf out;

	out.cap = PLEN + room;
	out.p = malloc(out.cap);
	ck_assert_ptr_nonnull(out.p);
	memcpy(out.p, PREFIX, PLEN);
	out.len = PLEN;
	return out;
}

/* Take what was appended to out, check the prefix, and free out. */
static void
obuf_take(struct obuf *out, struct res *r)
{
	ck_assert_mem_eq(out->p, PREFIX, PLEN);
	ck_assert_uint_ge(out->len, PLEN);
	ck_assert_uint_le(out->len, out->cap);
	r->len = out->len - PLEN;
	r->out = malloc(r->len + 1);
	ck_assert_ptr_nonnull(r->out);
	memcpy(r->out, out->p + PLEN, r->len);
	r->out[r->len] = '\0';
	free(out->p);
}

static struct res
copy(const char *in, size_t len)
{
	char *rec = dup_exact(in, len);
	struct obuf out = obuf_new(len);
	struct res r;

	r.why = NULL;
	r.rc = json_copy_object(&out, rec, len, &r.why);
	if (r.rc == -1) {
		ck_assert_uint_eq(out.len, PLEN);
		ck_assert_ptr_nonnull(r.why);
	} else
		ck_assert_int_eq(r.rc, 0);
	obuf_take(&out, &r);
	free(rec);
	return r;
}

/*
 * Run json_string or json_sd_value, then check that the result is a valid
 * JSON string by wrapping it as {"k":...} and copying that object back.
 */
static struct res
str(void (*fn)(struct obuf *, const char *, size_t), const char *in, size_t len)
{
	char *s = dup_exact(in, len), *wrap;
	struct obuf out = obuf_new(JSON_STRING_MAX(len));
	struct res r, back;
	size_t n;

	fn(&out, s, len);
	free(s);
	obuf_take(&out, &r);
	r.rc = 0;
	r.why = NULL;
	ck_assert_uint_le(r.len, JSON_STRING_MAX(len));
	n = r.len + 6;
	wrap = malloc(n + 1);
	ck_assert_ptr_nonnull(wrap);
	snprintf(wrap, n + 1, "{\"k\":%s}", r.out);
	back = copy(wrap, n);
	ck_assert_msg(back.rc == 0, "json_string output rejected (%s): %s", back.why, wrap);
	ck_assert_str_eq(back.out, wrap);
	free(back.out);
	free(wrap);
	return r;
}

struct ok_case {
	const char	*in;
	size_t		 len;
	const char	*want;
};

struct err_case {
	const char	*in;
	size_t		 len;
	const char	*why;
};

static const struct ok_case valid[] = {
	{ B("{}"), "{}" },
	{ B(" \t\r\n{ \t\r\n} \t\r\n"), "{}" },
	{ B("{\n \"a\" : [ 1 , 2 ]\n}\r\n"), "{\"a\":[1,2]}" },
	{ B("{\"a\":{}}"), "{\"a\":{}}" },
	{ B("{\"a\":[]}"), "{\"a\":[]}" },
	{ B("{ \"a\" : [ ] , \"b\" : { } }"), "{\"a\":[],\"b\":{}}" },
	{ B("{\"a\":[1,[2,{\"b\":[null]}]],\"c\":{\"d\":{\"e\":\"f\"}}}"),
	  "{\"a\":[1,[2,{\"b\":[null]}]],\"c\":{\"d\":{\"e\":\"f\"}}}" },
	{ B("{\"t\":true,\"f\":false,\"n\":null}"), "{\"t\":true,\"f\":false,\"n\":null}" },
	{ B("{\"a\":[true , false , null]}"), "{\"a\":[true,false,null]}" },
	{ B("{\"n\":[0,-0,1,-1,10,1e10,1E10,1.5E-3,1.5e+3,-0.0,0e0,0.5]}"),
	  "{\"n\":[0,-0,1,-1,10,1e10,1E10,1.5E-3,1.5e+3,-0.0,0e0,0.5]}" },
	{ B("{\"n\":123456789012345678901234567890,\"m\":-9223372036854775809}"),
	  "{\"n\":123456789012345678901234567890,\"m\":-9223372036854775809}" },
	{ B("{\"n\":-1.25e-300}"), "{\"n\":-1.25e-300}" },
	/* Escapes are kept as sent, surrogate pairs in both cases of hex. */
	{ B("{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}"), "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}" },
	{ B("{\"s\":\"\\u0000\\u001f\\u00e9\\uFFFF\\ud83d\\ude00\\uDBFF\\uDFFF\"}"),
	  "{\"s\":\"\\u0000\\u001f\\u00e9\\uFFFF\\ud83d\\ude00\\uDBFF\\uDFFF\"}" },
	/* UTF-8 of 2, 3 and 4 bytes, in keys and values. */
	{ B("{\"\xc3\xa9\":\"\xe2\x82\xac\xf0\x9f\x98\x80\"}"),
	  "{\"\xc3\xa9\":\"\xe2\x82\xac\xf0\x9f\x98\x80\"}" },
	/* The edges: U+0080 U+07FF U+0800 U+D7FF U+E000 U+FFFF U+10000 U+10FFFF. */
	{ B("{\"s\":\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
	    "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"}"),
	  "{\"s\":\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
	  "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"}" },
	{ B("{\"s\":\"\x7f\"}"), "{\"s\":\"\x7f\"}" },
	/* Whitespace inside strings is data. */
	{ B("{ \"a b\" : \" \\t x \" }"), "{\"a b\":\" \\t x \"}" },
	{ B("{\"a\":1,\"a\":2}"), "{\"a\":1,\"a\":2}" },
	{ B("{\"\":\"\"}"), "{\"\":\"\"}" },
	{ B("{\"a\":[[[]],[{}]]}"), "{\"a\":[[[]],[{}]]}" },
	{ B("{\"a\":\"}\",\"b\":\"]\",\"c\":\"{[,:\"}"), "{\"a\":\"}\",\"b\":\"]\",\"c\":\"{[,:\"}" },
};

static const struct err_case invalid[] = {
	{ B(""), "unexpected end" },
	{ B(" \r\n\t"), "unexpected end" },
	{ B("[1]"), "not an object" },
	{ B("\"x\""), "not an object" },
	{ B("1"), "not an object" },
	{ B("null"), "not an object" },
	{ B("\f{}"), "not an object" },
	{ B("\xef\xbb\xbf{}"), "not an object" },
	{ B("{"), "unexpected end" },
	{ B("{\"a\""), "unexpected end" },
	{ B("{\"a\":"), "unexpected end" },
	{ B("{\"a\":1"), "unexpected end" },
	{ B("{\"a\":[1,"), "unexpected end" },
	{ B("{\"a\":nul"), "unexpected end" },
	{ B("{\"a\" 1}"), "expected ':'" },
	{ B("{\"a\"=1}"), "expected ':'" },
	{ B("{\"a\":1 \"b\":2}"), "expected ',' or '}'" },
	{ B("{\"a\":1;\"b\":2}"), "expected ',' or '}'" },
	{ B("{\"a\":1]"), "expected ',' or '}'" },
	{ B("{\"a\":truex}"), "bad literal" },
	{ B("{\"a\":[1 2]}"), "expected ',' or ']'" },
	{ B("{\"a\":[1}"), "expected ',' or ']'" },
	{ B("{1:2}"), "expected string key" },
	{ B("{a:1}"), "expected string key" },
	{ B("{'a':1}"), "expected string key" },
	{ B("{,}"), "expected string key" },
	{ B("{\f}"), "expected string key" },
	{ B("{\"a\":'x'}"), "unexpected character" },
	{ B("{\"a\":}"), "unexpected character" },
	{ B("{\"a\":[,1]}"), "unexpected character" },
	{ B("{\"a\":NaN}"), "unexpected character" },
	{ B("{\"a\":Infinity}"), "unexpected character" },
	{ B("{\"a\":True}"), "unexpected character" },
	{ B("{\"a\":1,}"), "trailing comma" },
	{ B("{\"a\":[1,]}"), "trailing comma" },
	{ B("{\"a\":[1 , ] }"), "trailing comma" },
	{ B("{\"a\":01}"), "bad number" },
	{ B("{\"a\":-01}"), "bad number" },
	{ B("{\"a\":00}"), "bad number" },
	{ B("{\"a\":1.}"), "bad number" },
	{ B("{\"a\":1.e5}"), "bad number" },
	{ B("{\"a\":.5}"), "bad number" },
	{ B("{\"a\":+1}"), "bad number" },
	{ B("{\"a\":-}"), "bad number" },
	{ B("{\"a\":-a}"), "bad number" },
	{ B("{\"a\":1e}"), "bad number" },
	{ B("{\"a\":1e+}"), "bad number" },
	{ B("{\"a\":1E-}"), "bad number" },
	{ B("{\"a\":--1}"), "bad number" },
	{ B("{\"a\":0x10}"), "bad number" },
	{ B("{\"a\":1.5.3}"), "bad number" },
	{ B("{\"a\":1e5e5}"), "bad number" },
	{ B("{\"a\":2-1}"), "bad number" },
	{ B("{\"a\":-Infinity}"), "bad number" },
	{ B("{\"a\":-"), "bad number" },
	{ B("{\"a\":tru}"), "bad literal" },
	{ B("{\"a\":nulL}"), "bad literal" },
	{ B("{\"a\":fals}"), "bad literal" },
	{ B("{\"a\":nulll}"), "bad literal" },
	{ B("{\"a"), "unterminated string" },
	{ B("{\"a\":\"x"), "unterminated string" },
	{ B("{\"a\":\"x\\"), "unterminated string" },
	{ B("{\"a\":\"x\\\"}"), "unterminated string" },
	{ B("{\"a\":\"\\u12"), "unterminated string" },
	{ B("{\"a\":\"\x01\"}"), "control character in string" },
	{ B("{\"a\":\"\n\"}"), "control character in string" },
	{ B("{\"a\":\"\t\"}"), "control character in string" },
	{ B("{\"a\":\"\x1f\"}"), "control character in string" },
	{ B("{\"a\":\"\0\"}"), "control character in string" },
	{ B("{\"\r\":1}"), "control character in string" },
	{ B("{\"a\":\"\\x41\"}"), "bad escape" },
	{ B("{\"a\":\"\\a\"}"), "bad escape" },
	{ B("{\"a\":\"\\'\"}"), "bad escape" },
	{ B("{\"a\":\"\\U0041\"}"), "bad escape" },
	{ B("{\"a\":\"\\u12G4\"}"), "bad escape" },
	{ B("{\"a\":\"\\u 123\"}"), "bad escape" },
	{ B("{\"a\":\"\\u00e\"}"), "bad escape" },
	{ B("{\"a\":\"\\\n\"}"), "bad escape" },
	{ B("{\"a\":\"\\ud800\"}"), "unpaired surrogate" },
	{ B("{\"a\":\"\\ud800x\"}"), "unpaired surrogate" },
	{ B("{\"a\":\"\\ud800\\u0041\"}"), "unpaired surrogate" },
	{ B("{\"a\":\"\\ud800\\ud800\"}"), "unpaired surrogate" },
	{ B("{\"a\":\"\\udbff\\ue000\"}"), "unpaired surrogate" },
	{ B("{\"a\":\"\\ud800\\n\"}"), "unpaired surrogate" },
	{ B("{\"a\":\"\\udc00\"}"), "unpaired surrogate" },
	{ B("{\"a\":\"\\udfff\\ud800\"}"), "unpaired surrogate" },
	/* Lone continuation bytes. */
	{ B("{\"a\":\"\x80\"}"), "invalid UTF-8 in string" },
	{ B("{\"a\":\"\xbf\"}"), "invalid UTF-8 in string" },
	{ B("{\"a\":\"\xc3\xa9\xa9\"}"), "invalid UTF-8 in string" },
	/* Truncated sequences, also at the end of the input. */
	{ B("{\"a\":\"\xc3\"}"), "invalid UTF-8 in string" },
	{ B("{\"a\":\"\xe2\x82\"}"), "invalid UTF-8 in string" },
	{ B("{\"a\":\"\xf0\x9f\x98\"}"), "invalid UTF-8 in string" },
	{ B("{\"a\":\"\xe2" "A\"}"), "invalid UTF-8 in string" },
	{ B("{\"a\":\"\xe2\x82"), "invalid UTF-8 in string" },
	/* Overlong forms. */
	{ B("{\"a\":\"\xc0\x80\"}"), "invalid UTF-8 in string" },
	{ B("{\"a\":\"\xc1\xbf\"}"), "invalid UTF-8 in string" },
	{ B("{\"a\":\"\xe0\x80\x80\"}"), "invalid UTF-8 in string" },
	{ B("{\"a\":\"\xe0\x9f\xbf\"}"), "invalid UTF-8 in string" },
	{ B("{\"a\":\"\xf0\x80\x80\x80\"}"), "invalid UTF-8 in string" },
	{ B("{\"a\":\"\xf0\x8f\xbf\xbf\"}"), "invalid UTF-8 in string" },
	/* Surrogates. */
	{ B("{\"a\":\"\xed\xa0\x80\"}"), "invalid UTF-8 in string" },
	{ B("{\"a\":\"\xed\xbf\xbf\"}"), "invalid UTF-8 in string" },
	/* Beyond U+10FFFF, and bytes that never occur. */
	{ B("{\"a\":\"\xf4\x90\x80\x80\"}"), "invalid UTF-8 in string" },
	{ B("{\"a\":\"\xf5\x80\x80\x80\"}"), "invalid UTF-8 in string" },
	{ B("{\"a\":\"\xf8\x88\x80\x80\x80\"}"), "invalid UTF-8 in string" },
	{ B("{\"a\":\"\xfe\"}"), "invalid UTF-8 in string" },
	{ B("{\"a\":\"\xff\"}"), "invalid UTF-8 in string" },
	{ B("{\"\xff\":1}"), "invalid UTF-8 in string" },
	{ B("{}x"), "trailing data" },
	{ B("{}{}"), "trailing data" },
	{ B("{} 1"), "trailing data" },
	{ B("{}\0"), "trailing data" },
	{ B("{}\n\n,"), "trailing data" },
	{ B("{}}"), "trailing data" },
};

START_TEST(copy_valid)
{
	const struct ok_case *c = &valid[_i];
	struct res r = copy(c->in, c->len);

	ck_assert_msg(r.rc == 0, "case %d rejected: %s", _i, r.why);
	ck_assert_str_eq(r.out, c->want);
	ck_assert_uint_le(r.len, c->len);
	free(r.out);
}
END_TEST

START_TEST(copy_invalid)
{
	const struct err_case *c = &invalid[_i];
	struct res r = copy(c->in, c->len);

	ck_assert_msg(r.rc == -1, "case %d accepted: %s", _i, r.out);
	ck_assert_msg(strcmp(r.why, c->why) == 0, "case %d: got \"%s\", want \"%s\"",
	    _i, r.why, c->why);
	ck_assert_uint_eq(r.len, 0);
	free(r.out);
}
END_TEST

/* Compacting compact output changes nothing. */
START_TEST(copy_idempotent)
{
	const struct ok_case *c = &valid[_i];
	struct res r = copy(c->in, c->len), again;

	ck_assert_int_eq(r.rc, 0);
	again = copy(r.out, r.len);
	ck_assert_int_eq(again.rc, 0);
	ck_assert_str_eq(again.out, r.out);
	free(again.out);
	free(r.out);
}
END_TEST

/* {"a": then depth - 1 more containers (objects or arrays) around a 1. */
static char *
nested(int depth, int objects, size_t *len)
{
	size_t n = 8 + (size_t)depth * 7, i;
	char *s = malloc(n), *p = s;

	ck_assert_ptr_nonnull(s);
	p += sprintf(p, "{\"a\":");
	for (i = 1; i < (size_t)depth; i++)
		p += sprintf(p, "%s", objects ? "{\"a\":" : "[");
	*p++ = '1';
	for (i = 1; i < (size_t)depth; i++)
		*p++ = objects ? '}' : ']';
	*p++ = '}';
	*len = p - s;
	return s;
}

START_TEST(depth_limit)
{
	int objects;

	for (objects = 0; objects < 2; objects++) {
		size_t len;
		char *s = nested(JSON_MAX_DEPTH, objects, &len);
		struct res r = copy(s, len);

		ck_assert_msg(r.rc == 0, "depth %d rejected: %s", JSON_MAX_DEPTH, r.why);
		ck_assert_mem_eq(r.out, s, len);
		free(r.out);
		free(s);
		s = nested(JSON_MAX_DEPTH + 1, objects, &len);
		r = copy(s, len);
		ck_assert_int_eq(r.rc, -1);
		ck_assert_str_eq(r.why, "nested too deeply");
		free(r.out);
		free(s);
	}
}
END_TEST

/* A deep record costs neither stack nor time: it fails at depth 65. */
START_TEST(depth_huge)
{
	size_t n = 100000;
	char *s = malloc(n + 5);
	struct res r;

	ck_assert_ptr_nonnull(s);
	memcpy(s, "{\"a\":", 5);
	memset(s + 5, '[', n);
	r = copy(s, n + 5);
	ck_assert_int_eq(r.rc, -1);
	ck_assert_str_eq(r.why, "nested too deeply");
	free(r.out);
	r = copy(s + 5, n);
	ck_assert_int_eq(r.rc, -1);
	ck_assert_str_eq(r.why, "not an object");
	free(r.out);
	free(s);
}
END_TEST

/* On error, out->len and the bytes before it are as they were. */
START_TEST(error_keeps_output)
{
	char buf[64];
	struct obuf out = { buf, 3, sizeof(buf) };
	const char *why = NULL;

	memcpy(buf, "ab,", 3);
	ck_assert_int_eq(json_copy_object(&out, B("{ \"a\" : 1 }"), &why), 0);
	ck_assert_uint_eq(out.len, 10);
	ck_assert_mem_eq(buf, "ab,{\"a\":1}", 10);
	ck_assert_int_eq(json_copy_object(&out, B("{ \"b\" : [1, 2 }"), &why), -1);
	ck_assert_str_eq(why, "expected ',' or ']'");
	ck_assert_uint_eq(out.len, 10);
	ck_assert_mem_eq(buf, "ab,{\"a\":1}", 10);
}
END_TEST

/* The record is read only up to len: what follows is not looked at. */
START_TEST(copy_stops_at_len)
{
	const char rec[] = "{\"a\":1}garbage";
	char buf[32];
	struct obuf out = { buf, 0, sizeof(buf) };
	const char *why = NULL;

	ck_assert_int_eq(json_copy_object(&out, rec, 7, &why), 0);
	ck_assert_uint_eq(out.len, 7);
	ck_assert_int_eq(json_copy_object(&out, rec, 6, &why), -1);
	ck_assert_str_eq(why, "unexpected end");
	ck_assert_uint_eq(out.len, 7);
}
END_TEST

static const struct ok_case strings[] = {
	{ B(""), "\"\"" },
	{ B("hello, world"), "\"hello, world\"" },
	{ B("a\"b\\c/d"), "\"a\\\"b\\\\c/d\"" },
	{ B("\0"), "\"\\u0000\"" },
	{ B("\x7f"), "\"\x7f\"" },
	{ B("tab\there\r\n"), "\"tab\\there\\r\\n\"" },
	{ B("\b\f\x1b[0m"), "\"\\b\\f\\u001b[0m\"" },
	/* Valid UTF-8 goes through, the edges included. */
	{ B("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"), "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"" },
	{ B("\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
	    "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"),
	  "\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
	  "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"" },
	/* Each byte not in valid UTF-8 is one U+FFFD. */
	{ B("\x80"), "\"\\ufffd\"" },
	{ B("a\xbf" "b"), "\"a\\ufffdb\"" },
	{ B("\xc3"), "\"\\ufffd\"" },
	{ B("\xc3" "A"), "\"\\ufffdA\"" },
	{ B("\xe2\x82"), "\"\\ufffd\\ufffd\"" },
	{ B("\xe2\x82" "A\xe2\x82\xac"), "\"\\ufffd\\ufffdA\xe2\x82\xac\"" },
	{ B("\xf0\x9f\x98"), "\"\\ufffd\\ufffd\\ufffd\"" },
	{ B("\xc0\x80"), "\"\\ufffd\\ufffd\"" },
	{ B("\xc1\xbf"), "\"\\ufffd\\ufffd\"" },
	{ B("\xe0\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\"" },
	{ B("\xf0\x80\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" },
	{ B("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"" },
	{ B("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" },
	{ B("\xf5\x80\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" },
	{ B("\xfe\xff"), "\"\\ufffd\\ufffd\"" },
	/* An invalid lead does not swallow the valid sequence after it. */
	{ B("\xe2\xc3\xa9"), "\"\\ufffd\xc3\xa9\"" },
};

START_TEST(string_cases)
{
	const struct ok_case *c = &strings[_i];
	struct res r = str(json_string, c->in, c->len);

	ck_assert_str_eq(r.out, c->want);
	free(r.out);
}
END_TEST

/* Every single byte, against what RFC 8259 says it must become. */
START_TEST(string_every_byte)
{
	unsigned char c = _i;
	char want[16];
	struct res r = str(json_string, (const char *)&c, 1);

	switch (c) {
	case '\b': strcpy(want, "\"\\b\""); break;
	case '\t': strcpy(want, "\"\\t\""); break;
	case '\n': strcpy(want, "\"\\n\""); break;
	case '\f': strcpy(want, "\"\\f\""); break;
	case '\r': strcpy(want, "\"\\r\""); break;
	case '"':  strcpy(want, "\"\\\"\""); break;
	case '\\': strcpy(want, "\"\\\\\""); break;
	default:
		if (c < 0x20)
			snprintf(want, sizeof(want), "\"\\u%04x\"", c);
		else if (c < 0x80)
			snprintf(want, sizeof(want), "\"%c\"", c);
		else
			strcpy(want, "\"\\ufffd\"");	/* alone, never valid */
	}
	ck_assert_str_eq(r.out, want);
	free(r.out);
}
END_TEST

/* The bound is exact: 6 bytes for each of these, plus the quotes. */
START_TEST(string_worst_case)
{
	static const unsigned char worst[] = { 0x01, 0x1f, 0x80, 0xc0, 0xff };
	size_t n = 1000, i;
	char *s = malloc(n);
	struct res r;

	ck_assert_ptr_nonnull(s);
	for (i = 0; i < sizeof(worst); i++) {
		memset(s, worst[i], n);
		r = str(json_string, s, n);
		ck_assert_uint_eq(r.len, JSON_STRING_MAX(n));
		free(r.out);
		r = str(json_sd_value, s, n);
		ck_assert_uint_eq(r.len, JSON_STRING_MAX(n));
		free(r.out);
	}
	free(s);
}
END_TEST

/* Pseudo-random bytes, many of them invalid, always give valid JSON. */
START_TEST(string_random)
{
	unsigned int seed = 12345;
	char buf[512];
	size_t len, i;
	int round;
	struct res r;

	for (round = 0; round < 500; round++) {
		len = (size_t)round % sizeof(buf);
		for (i = 0; i < len; i++) {
			seed = seed * 1103515245 + 12345;
			buf[i] = (char)(seed >> 16);
			if (round % 3 == 0)
				buf[i] |= 0x80;	/* mostly non-ASCII */
		}
		r = str(json_string, buf, len);
		free(r.out);
		r = str(json_sd_value, buf, len);
		free(r.out);
	}
}
END_TEST

/*
 * What json_string must write, byte by byte, without json.c's table or
 * word tricks: RFC 3629 for what is valid UTF-8, RFC 8259 for escapes.
 */
static size_t
ref_utf8(const unsigned char *p, size_t left)
{
	unsigned long cp;
	size_t n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (left < n)
		return 0;
	cp = p[0] & (0x7f >> n);
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static char *
ref_string(const unsigned char *s, size_t len)
{
	char *out = malloc(JSON_STRING_MAX(len) + 1), *o = out;
	size_t i = 0, n;

	ck_assert_ptr_nonnull(out);
	*o++ = '"';
	while (i < len) {
		unsigned char c = s[i];

		if (c >= 0x80 && (n = ref_utf8(s + i, len - i)) != 0) {
			memcpy(o, s + i, n);
			o += n;
			i += n;
			continue;
		}
		i++;
		if (c == '"' || c == '\\')
			o += sprintf(o, "\\%c", c);
		else if (c == '\b')
			o += sprintf(o, "\\b");
		else if (c == '\t')
			o += sprintf(o, "\\t");
		else if (c == '\n')
			o += sprintf(o, "\\n");
		else if (c == '\f')
			o += sprintf(o, "\\f");
		else if (c == '\r')
			o += sprintf(o, "\\r");
		else if (c < 0x20)
			o += sprintf(o, "\\u%04x", c);
		else if (c >= 0x80)
			o += sprintf(o, "\\ufffd");
		else
			*o++ = c;
	}
	*o++ = '"';
	*o = '\0';
	return out;
}

/* json_string of len bytes at s + align in a buffer of other bytes, against ref_string. */
static void
ck_string_at(const unsigned char *s, size_t len, size_t align)
{
	unsigned char buf[64];
	char *want = ref_string(s, len);
	struct obuf out = obuf_new(JSON_STRING_MAX(len));
	struct res r;

	ck_assert_uint_le(align + len + 8, sizeof(buf));
	/* around the string, bytes that would change the output if read as part of it */
	memset(buf, '"', sizeof(buf));
	memcpy(buf + align, s, len);
	json_string(&out, (const char *)buf + align, len);
	obuf_take(&out, &r);
	ck_assert_msg(r.len == strlen(want) && memcmp(r.out, want, r.len) == 0,
	    "len %zu align %zu: got %s want %s", len, align, r.out, want);
	free(r.out);
	if (align == 0) {
		r = str(json_string, (const char *)s, len);	/* exact size: ASan sees overreads */
		ck_assert_str_eq(r.out, want);
		free(r.out);
	}
	free(want);
}

/*
 * json.c takes 8 plain bytes at a time, and the last few with a word that
 * overlaps what went before: every length from 0 to 17 (no word, one, two,
 * and tails of every size) at every alignment, and each kind of byte that
 * must stop a word at each position, alone and followed by another, at an
 * alignment that turns with the position and the byte (every one, for
 * ASan's sake, would take too long).
 */
START_TEST(string_words)
{
	static const unsigned char stops[] = {
		0x00, '\n', 0x1f, '"', '\\', 0x80, 0xbf, 0xc3, 0xe2, 0xff,
		/* plain, at the edges of the ranges the word test checks */
		0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f,
	};
	unsigned char s[32];
	size_t len, align, pos, k;

	for (len = 0; len <= 17; len++) {
		for (pos = 0; pos < len; pos++)
			s[pos] = 'a' + pos;
		for (align = 0; align < 8; align++)
			ck_string_at(s, len, align);
		for (pos = 0; pos < len; pos++)
			for (k = 0; k < sizeof(stops); k++) {
				for (size_t i = 0; i < len; i++)
					s[i] = 'a' + i;
				s[pos] = stops[k];
				ck_string_at(s, len, (pos + k) % 8);
				s[len - 1] = stops[(k + 3) % sizeof(stops)];
				ck_string_at(s, len, (pos + k + 1) % 8);
			}
	}
}
END_TEST

/* Valid UTF-8 in the middle of plain text is copied as it is, wherever it falls. */
START_TEST(string_words_utf8)
{
	static const char *const seqs[] = { "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
	    "\xed\xa0\x80", "\xe2\x82" };
	unsigned char s[32];
	size_t len, pos, k, n;

	for (len = 0; len <= 17; len++)
		for (k = 0; k < sizeof(seqs) / sizeof(seqs[0]); k++)
			for (pos = 0; pos + (n = strlen(seqs[k])) <= len; pos++) {
				for (size_t i = 0; i < len; i++)
					s[i] = 'A' + i;
				memcpy(s + pos, seqs[k], n);
				ck_string_at(s, len, pos % 8);
			}
}
END_TEST

/*
 * The JSON checker skips plain string bytes 8 at a time too: a byte that
 * is not plain is found at every position of a word.
 */
START_TEST(copy_words)
{
	char rec[64];
	struct res r;
	size_t len, pos;

	for (len = 1; len <= 17; len++)
		for (pos = 0; pos < len; pos++) {
			int n;

			memset(rec, 0, sizeof(rec));
			n = snprintf(rec, sizeof(rec), "{\"k\":\"%.*s\"}", (int)len,
			    "abcdefghijklmnopq");
			rec[6 + pos] = '\x01';
			r = copy(rec, n);
			ck_assert_int_eq(r.rc, -1);
			ck_assert_str_eq(r.why, "control character in string");
			free(r.out);
			rec[6 + pos] = '\xff';
			r = copy(rec, n);
			ck_assert_int_eq(r.rc, -1);
			ck_assert_str_eq(r.why, "invalid UTF-8 in string");
			free(r.out);
			rec[6 + pos] = '\x7f';
			r = copy(rec, n);
			ck_assert_int_eq(r.rc, 0);
			ck_assert_str_eq(r.out, rec);
			free(r.out);
			rec[6 + pos] = '"';	/* the string ends early */
			r = copy(rec, n);
			ck_assert_int_eq(r.rc, -1);
			ck_assert_str_eq(r.why, "expected ',' or '}'");
			free(r.out);
			/* cut before that quote: the scan runs into the end of the record */
			r = copy(rec, 6 + pos);
			ck_assert_int_eq(r.rc, -1);
			ck_assert_str_eq(r.why, "unterminated string");
			free(r.out);
		}
}
END_TEST

static const struct ok_case sd_values[] = {
	{ B(""), "\"\"" },
	{ B("plain"), "\"plain\"" },
	{ B("a\\\"b"), "\"a\\\"b\"" },			/* a\"b is a"b */
	{ B("a\\\\b"), "\"a\\\\b\"" },			/* a\\b is a\b */
	{ B("a\\]b"), "\"a]b\"" },			/* a\]b is a]b */
	{ B("a\\nb"), "\"a\\\\nb\"" },			/* a\nb stays a\nb */
	{ B("a\\"), "\"a\\\\\"" },			/* a lone backslash at the end */
	{ B("\\"), "\"\\\\\"" },
	{ B("\\\\\\]"), "\"\\\\]\"" },			/* \\\] is \] */
	{ B("\\\\\\"), "\"\\\\\\\\\"" },		/* \\\ is \\ */
	{ B("\\\xc3\xa9"), "\"\\\\\xc3\xa9\"" },	/* not an escape */
	{ B("\\\xff"), "\"\\\\\\ufffd\"" },
	{ B("x\\\"\x01\\]"), "\"x\\\"\\u0001]\"" },
};

START_TEST(sd_value_cases)
{
	const struct ok_case *c = &sd_values[_i];
	struct res r = str(json_sd_value, c->in, c->len);

	ck_assert_str_eq(r.out, c->want);
	free(r.out);
}
END_TEST

/*
 * json_member: the event's own top-level member, decoded.  Each input is an
 * exact-size copy and out has exactly size bytes, for AddressSanitizer.
 */
struct member_case {
	const char	*in;
	size_t		 len;
	const char	*name;
	const char	*value;		/* want bytes */
	ssize_t		 want;		/* length, or -1 */
	size_t		 size;		/* room in out; 0: 64 */
};

#define NONE	"", -1

static const struct member_case members[] = {
	{ B("{\"host\":\"a\"}"), "host", B("a"), 0 },
	{ B("{\"host\":\"\"}"), "host", B(""), 0 },
	/* Only the top level counts: nested members and text in strings do not. */
	{ B("{\"body\":{\"host\":\"evil\"},\"host\":\"good\"}"), "host", B("good"), 0 },
	{ B("{\"body\":{\"host\":\"evil\"}}"), "host", NONE, 0 },
	{ B("{\"sd\":{\"id\":{\"host\":\"x\"}},\"msg\":\"m\"}"), "host", NONE, 0 },
	{ B("{\"sd\":{\"id\":{\"host\":\"x\"}},\"msg\":\"m\"}"), "msg", B("m"), 0 },
	{ B("{\"a\":[{\"host\":\"x\"},\"host\"],\"host\":\"y\"}"), "host", B("y"), 0 },
	{ B("{\"msg\":\"\\\"host\\\":\\\"evil\\\"\"}"), "host", NONE, 0 },
	{ B("{\"msg\":\"\\\"host\\\":\\\"evil\\\"\",\"host\":\"h\"}"), "host", B("h"), 0 },
	{ B("{\"a\":\"}\",\"b\":\"]\",\"c\":\"{[,:\",\"d\":\"ok\"}"), "d", B("ok"), 0 },
	{ B("{\"a\":\"x\\\"\",\"b\":\"y\"}"), "b", B("y"), 0 },
	{ B("{\"a\":\"x\\\\\",\"b\":\"y\"}"), "b", B("y"), 0 },
	{ B("{\"a\":[\"}\",\"{\",[]],\"b\":{\"c\":\"}\"},\"d\":\"ok\"}"), "d", B("ok"), 0 },
	/* Names: whole, decoded, the first match. */
	{ B("{\"hostname\":\"x\",\"hos\":\"y\",\"host\":\"z\"}"), "host", B("z"), 0 },
	{ B("{\"h\\u006fst\":\"x\"}"), "host", B("x"), 0 },
	{ B("{\"a\":\"1\",\"a\":\"2\"}"), "a", B("1"), 0 },
	{ B("{\"\":\"e\"}"), "", B("e"), 0 },
	{ B("{\"a\":\"1\"}"), "", NONE, 0 },
	{ B("{\"\xc3\xa9\":\"x\"}"), "\xc3\xa9", B("x"), 0 },
	/* Escapes decoded. */
	{ B("{\"s\":\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\"}"), "s",
	  B("a\"b\\c/d\be\ff\ng\rh\ti"), 0 },
	{ B("{\"s\":\"a\\u0000b\"}"), "s", B("a\0b"), 0 },
	{ B("{\"s\":\"\\u0041\\u00e9\\u20ac\\uFFFD\"}"), "s",
	  B("A\xc3\xa9\xe2\x82\xac\xef\xbf\xbd"), 0 },
	{ B("{\"s\":\"\\ud83d\\ude00\\uDBFF\\uDFFF\"}"), "s",
	  B("\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"), 0 },
	{ B("{\"s\":\"\\ud800x\\udc00\"}"), "s", B("\xef\xbf\xbdx\xef\xbf\xbd"), 0 },
	{ B("{\"s\":\"\\ud800\\u0041\"}"), "s", B("\xef\xbf\xbd" "A"), 0 },
	{ B("{\"s\":\"\xe2\x82\xac\x7f\"}"), "s", B("\xe2\x82\xac\x7f"), 0 },
	/* Other values: their text. */
	{ B("{\"n\":-12.5e3,\"t\":true}"), "n", B("-12.5e3"), 0 },
	{ B("{\"n\":-12.5e3,\"t\":true}"), "t", B("true"), 0 },
	{ B("{\"z\":null}"), "z", B("null"), 0 },
	{ B("{\"o\":{\"a\":[1,\"]\"]},\"b\":2}"), "o", B("{\"a\":[1,\"]\"]}"), 0 },
	{ B("{\"a\":[]}"), "a", B("[]"), 0 },
	/* Whitespace around everything. */
	{ B(" { \"a\" : 1 , \"b\" : \" x \" , \"c\" : [ 1 ] } "), "b", B(" x "), 0 },
	{ B(" { \"a\" : 1 , \"b\" : \" x \" , \"c\" : [ 1 ] } "), "a", B("1"), 0 },
	{ B(" { \"a\" : 1 , \"b\" : \" x \" , \"c\" : [ 1 ] } "), "c", B("[ 1 ]"), 0 },
	/* Cut at size, a decoded character never split. */
	{ B("{\"s\":\"abcdef\"}"), "s", B("abc"), 3 },
	{ B("{\"s\":\"x\\u00e9\"}"), "s", B("x"), 2 },
	{ B("{\"s\":\"x\\u00e9\"}"), "s", B("x\xc3\xa9"), 3 },
	{ B("{\"n\":12345}"), "n", B("12"), 2 },
	/* Not an object, or broken before the member: none. */
	{ B(""), "a", NONE, 0 },
	{ B("[\"a\"]"), "a", NONE, 0 },
	{ B("\"a\""), "a", NONE, 0 },
	{ B("{"), "a", NONE, 0 },
	{ B("{}"), "a", NONE, 0 },
	{ B("{\"a\""), "a", NONE, 0 },
	{ B("{\"a\" \"b\"}"), "a", NONE, 0 },
	{ B("{\"b\":1 \"a\":2}"), "a", NONE, 0 },
	{ B("{\"b\":{\"c\":1}"), "a", NONE, 0 },
	{ B("{\"b\":\"x"), "a", NONE, 0 },
	{ B("{\"b\":\"x\\"), "a", NONE, 0 },
	{ B("{\"a\":\"x"), "a", NONE, 0 },
	{ B("{\"a\":\"\\q\"}"), "a", NONE, 0 },
	{ B("{\"a\":\"\\u12\"}"), "a", NONE, 0 },
	{ B("{\"a\":\"\\u12g4\"}"), "a", NONE, 0 },
	{ B("{\"\\x\":1,\"a\":2}"), "a", NONE, 0 },
};

START_TEST(member_cases)
{
	const struct member_case *c = &members[_i];
	size_t size = c->size ? c->size : 64;
	char *in = dup_exact(c->in, c->len), *out = malloc(size);
	ssize_t n;

	ck_assert_ptr_nonnull(out);
	n = json_member(in, c->len, c->name, strlen(c->name), out, size);
	ck_assert_msg(n == c->want, "case %d: %zd bytes, expected %zd", _i, n, c->want);
	if (n > 0)
		ck_assert_mem_eq(out, c->value, n);
	free(in);
	free(out);
}
END_TEST

/* Every prefix of an event, and pseudo-random bytes: never a read or write out of bounds. */
START_TEST(member_any_bytes)
{
	static const char ev[] = "{\"received_at\":\"t\","
	    "\"body\":{\"host\":\"x\",\"a\":[1,\"]\\\"\"]},"
	    "\"sd\":{\"i\":{\"host\":\"y\"}},\"host\":\"h\\u00e9\\ud83d\\ude00\\u0000\",\"n\":12}";
	unsigned int seed = 777;
	char out[8], *in;
	size_t len, i;
	ssize_t n;

	for (len = 0; len < sizeof(ev); len++) {
		in = dup_exact(ev, len);
		n = json_member(in, len, "host", 4, out, sizeof(out));
		ck_assert(n == -1 || (n >= 0 && (size_t)n <= sizeof(out)));
		n = json_member(in, len, "n", 1, out, sizeof(out));
		ck_assert(n == -1 || (n >= 1 && n <= 2));
		free(in);
	}
	in = dup_exact(ev, sizeof(ev) - 1);
	ck_assert_int_eq(json_member(in, sizeof(ev) - 1, "host", 4, out, sizeof(out)), 8);
	ck_assert_mem_eq(out, "h\xc3\xa9\xf0\x9f\x98\x80\0", 8);
	free(in);
	for (i = 0; i < 20000; i++) {
		char buf[64];

		len = i % sizeof(buf);
		for (size_t k = 0; k < len; k++) {
			seed = seed * 1103515245 + 12345;
			buf[k] = "{}[]\":,\\u0a \xc3"[(seed >> 16) % 14];
		}
		in = dup_exact(buf, len);
		n = json_member(in, len, "a", 1, out, sizeof(out));
		ck_assert(n >= -1 && n <= (ssize_t)sizeof(out));
		free(in);
	}
}
END_TEST

/* Replaces spaces by '_', and an empty value by "-". */
static size_t
underscores(char *p, size_t n, size_t size)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == ' ')
			p[i] = '_';
	if (n == 0 && size > 0) {
		*p = '-';
		return 1;
	}
	return n;
}

/* json_fill: ${field}s from the event, the rest as written, a cleaner, the size. */
START_TEST(fill_template)
{
	static const char ev[] = "{\"host\":\"web 1\",\"app\":\"a\\\"b\",\"n\":12}";
	char out[32];
	size_t n;

	n = json_fill("logs.${host}.${app}", ev, sizeof(ev) - 1, out, sizeof(out), NULL);
	ck_assert_mem_eq(out, "logs.web 1.a\"b", n);
	ck_assert_uint_eq(n, 14);
	n = json_fill("x.${n}.${none}.${host", ev, sizeof(ev) - 1, out, sizeof(out), NULL);
	ck_assert_mem_eq(out, "x.12..${host", n);
	ck_assert_uint_eq(n, 12);
	n = json_fill("${host}.${none}", ev, sizeof(ev) - 1, out, sizeof(out), underscores);
	ck_assert_mem_eq(out, "web_1.-", n);
	ck_assert_uint_eq(n, 7);
	n = json_fill("long.${host}", ev, sizeof(ev) - 1, out, 8, NULL);
	ck_assert_mem_eq(out, "long.web", n);
	ck_assert_uint_eq(n, 8);
}
END_TEST

Suite *
json_suite(void)
{
	Suite *s = suite_create("json");
	TCase *obj = tcase_create("json_copy_object");
	TCase *strs = tcase_create("json_string");
	TCase *sd = tcase_create("json_sd_value");
	TCase *mem = tcase_create("json_member");
	TCase *fill = tcase_create("json_fill");

	tcase_add_loop_test(obj, copy_valid, 0, sizeof(valid) / sizeof(valid[0]));
	tcase_add_loop_test(obj, copy_invalid, 0, sizeof(invalid) / sizeof(invalid[0]));
	tcase_add_loop_test(obj, copy_idempotent, 0, sizeof(valid) / sizeof(valid[0]));
	tcase_add_test(obj, depth_limit);
	tcase_add_test(obj, depth_huge);
	tcase_add_test(obj, error_keeps_output);
	tcase_add_test(obj, copy_stops_at_len);
	suite_add_tcase(s, obj);
	tcase_add_loop_test(strs, string_cases, 0, sizeof(strings) / sizeof(strings[0]));
	tcase_add_loop_test(strs, string_every_byte, 0, 256);
	tcase_add_test(strs, string_worst_case);
	tcase_add_test(strs, string_random);
	tcase_add_test(strs, string_words);
	tcase_add_test(strs, string_words_utf8);
	tcase_add_test(obj, copy_words);
	suite_add_tcase(s, strs);
	tcase_add_loop_test(sd, sd_value_cases, 0, sizeof(sd_values) / sizeof(sd_values[0]));
	suite_add_tcase(s, sd);
	tcase_add_loop_test(mem, member_cases, 0, sizeof(members) / sizeof(members[0]));
	tcase_add_test(mem, member_any_bytes);
	suite_add_tcase(s, mem);
	tcase_add_test(fill, fill_template);
	suite_add_tcase(s, fill);
	return s;
}
