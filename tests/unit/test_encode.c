/*
 * worker/pipeline/encode.c: the event line of a record, and the receive
 * time that encode_set_time keeps from one read to the next.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "encode.h"
#include "tests.h"

#define NOW	((time_t)1795521600)	/* 2026-11-24T12:00:00Z */
#define PEER	",\"peer\":\"127.0.0.1:40000\",\"listener\":\"l\""

/* received_at as encode.c wrote it in one snprintf before it kept seconds. */
static void
want_time(char *buf, size_t size, const struct timespec *ts)
{
	struct tm tm;

	gmtime_r(&ts->tv_sec, &tm);
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts->tv_nsec / 1000);
}

/* The event of rec as a string (the caller frees it), and its result. */
static char *
encode(const struct encode_meta *m, int format, const char *rec, enum encode_result *r)
{
	struct listener_cfg l;
	struct obuf o = { NULL, 0, 0 };
	size_t len = strlen(rec);
	char *s;

	memset(&l, 0, sizeof(l));
	l.format = format;
	l.on_parse_error = ON_ERROR_KEEP;
	ck_assert_int_eq(obuf_reserve(&o, ENCODE_MAX(len, m->prefixlen)), 0);
	*r = encode_event(&o, m, &l, rec, len, 0);
	ck_assert_ptr_nonnull(s = strndup(o.p, o.len));
	free(o.p);
	return s;
}

static void
meta_init(struct encode_meta *m)
{
	memset(m, 0, sizeof(*m));
	m->prefix = PEER;
	m->prefixlen = strlen(PEER);
}

/*
 * Reads in the same second change only the microseconds; a new second,
 * forward or back, changes the rest.  Every time, the text is what one
 * snprintf of the whole time makes.
 */
START_TEST(time_per_read)
{
	static const struct timespec times[] = {
		{ NOW, 0 }, { NOW, 999 }, { NOW, 1000 }, { NOW, 123456789 }, { NOW, 999999999 },
		{ NOW + 1, 5000 }, { NOW + 1, 5000 }, { NOW, 7000 }, { NOW + 86400 * 40, 1 },
		{ 0, 0 }, { 0, 1000 }, { -1, 999999000 }, { 253402300799, 500000000 },
		{ 253402300800, 0 }, { 253402300800, 42000 },
		/* not what clock_gettime gives: snprintf's text all the same */
		{ NOW, -1000 }, { NOW, 1000000000 }, { NOW, 25000 }, { NOW, -5000000 },
	};
	struct encode_meta m;
	char want[64];

	meta_init(&m);
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		encode_set_time(&m, &times[i]);
		want_time(want, sizeof(want), &times[i]);
		ck_assert_str_eq(m.received_at, want);
		ck_assert_uint_eq(m.received_atlen, strlen(want));
		ck_assert_int_eq(m.now, times[i].tv_sec);
	}
}
END_TEST

/* Microseconds of every width in one second: the digits are all rewritten. */
START_TEST(time_digits)
{
	struct encode_meta m;
	struct timespec ts = { NOW, 0 };
	char want[64];

	meta_init(&m);
	for (long us = 999999; us > 0; us /= 7) {
		ts.tv_nsec = us * 1000;
		encode_set_time(&m, &ts);
		want_time(want, sizeof(want), &ts);
		ck_assert_str_eq(m.received_at, want);
	}
}
END_TEST

/* Every PRI names its facility and severity. */
START_TEST(pri_names)
{
	static const char *const fac[24] = {
		"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp",
		"cron", "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
		"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
	};
	static const char *const sev[8] = {
		"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
	};
	struct timespec ts = { NOW, 182398000 };
	struct encode_meta m;
	enum encode_result r;
	char rec[64], want[256], *got;

	meta_init(&m);
	encode_set_time(&m, &ts);
	for (int pri = 0; pri < 192; pri++) {
		snprintf(rec, sizeof(rec), "<%d>hi", pri);
		snprintf(want, sizeof(want), "{\"received_at\":\"2026-11-24T12:00:00.182398Z\"" PEER
		    ",\"facility\":\"%s\",\"severity\":\"%s\",\"msg\":\"hi\"}\n",
		    fac[pri >> 3], sev[pri & 7]);
		got = encode(&m, FORMAT_AUTO, rec, &r);
		ck_assert_int_eq(r, ENCODE_OK);
		ck_assert_str_eq(got, want);
		free(got);
	}
}
END_TEST

/* The benchmark's record, whole: a BSD timestamp gets now's year. */
START_TEST(bsd_event)
{
	struct timespec ts = { NOW, 182398000 };
	struct encode_meta m;
	enum encode_result r;
	char *got;

	meta_init(&m);
	encode_set_time(&m, &ts);
	got = encode(&m, FORMAT_AUTO, "<13>Nov 24 05:30:31 localhost ingestd-bench: c=0 s=0 "
	    "the quick brown fox", &r);
	ck_assert_int_eq(r, ENCODE_OK);
	ck_assert_str_eq(got, "{\"received_at\":\"2026-11-24T12:00:00.182398Z\"" PEER
	    ",\"facility\":\"user\",\"severity\":\"notice\",\"timestamp\":\"2026-11-24T05:30:31Z\""
	    ",\"host\":\"localhost\",\"app\":\"ingestd-bench\",\"msg\":\"c=0 s=0 the quick brown fox\"}\n");
	free(got);
	/* the clock moves with the second: December is last year's in January */
	ts.tv_sec = (time_t)1799107200;	/* 2027-01-05 */
	encode_set_time(&m, &ts);
	got = encode(&m, FORMAT_AUTO, "<13>Dec 31 23:59:59 h a: x", &r);
	ck_assert_ptr_nonnull(strstr(got, "\"timestamp\":\"2026-12-31T23:59:59Z\""));
	free(got);
	got = encode(&m, FORMAT_AUTO, "<13>Jan  4 23:59:59 h a: x", &r);
	ck_assert_ptr_nonnull(strstr(got, "\"timestamp\":\"2027-01-04T23:59:59Z\""));
	free(got);
}
END_TEST

/* The sd object of rec's event, as text (static). */
static const char *
sd_of(const char *rec)
{
	static char buf[2048];
	struct timespec ts = { NOW, 0 };
	struct encode_meta m;
	enum encode_result r;
	char *got, *sd, *end;

	meta_init(&m);
	encode_set_time(&m, &ts);
	got = encode(&m, FORMAT_AUTO, rec, &r);
	ck_assert_int_eq(r, ENCODE_OK);
	ck_assert_ptr_nonnull(sd = strstr(got, ",\"sd\":"));
	ck_assert_ptr_nonnull(end = strstr(sd, ",\"msg\":"));
	snprintf(buf, sizeof(buf), "%.*s", (int)(end - sd - 6), sd + 6);
	free(got);
	return buf;
}

/*
 * A JSON object never has a key twice: a name repeated in an element
 * gives a list of its values, an SD-ID repeated in the record (RFC 5424
 * forbids it, senders do it) one object with all its parameters.
 */
START_TEST(sd_no_duplicate_keys)
{
	ck_assert_str_eq(sd_of("<13>1 - h a - - [ex@1 a=\"1\" b=\"2\"] x"),
	    "{\"ex@1\":{\"a\":\"1\",\"b\":\"2\"}}");
	ck_assert_str_eq(sd_of("<13>1 - h a - - [ex@1 a=\"1\" b=\"2\" a=\"3\"] x"),
	    "{\"ex@1\":{\"a\":[\"1\",\"3\"],\"b\":\"2\"}}");
	ck_assert_str_eq(sd_of("<13>1 - h a - - [ex@1 a=\"1\"][y@2][ex@1 a=\"2\" c=\"\\]\"] x"),
	    "{\"ex@1\":{\"a\":[\"1\",\"2\"],\"c\":\"]\"},\"y@2\":{}}");
	ck_assert_str_eq(sd_of("<13>1 - h a - - [e a=\"\"][e][e a=\"\"] x"),
	    "{\"e\":{\"a\":[\"\",\"\"]}}");
}
END_TEST

/* The prefix fits ENCODE_PREFIX_MAX exactly in the worst case, and escapes what it must. */
START_TEST(prefix)
{
	struct obuf o = { NULL, 0, 0 };
	char worst[16], *text;

	o.cap = ENCODE_PREFIX_MAX(15, 1, 0);
	ck_assert_ptr_nonnull(o.p = malloc(o.cap));
	memset(worst, 1, 15);		/* a control byte: six bytes each, \u0001 */
	worst[15] = '\0';
	encode_prefix(&o, worst, "\001", NULL);
	ck_assert_uint_eq(o.len, o.cap);
	o.len = 0;
	encode_prefix(&o, "[::1]:9", "a\"b", ",\"peer_pid\":7");
	ck_assert_ptr_nonnull(text = strndup(o.p, o.len));
	ck_assert_str_eq(text, ",\"peer\":\"[::1]:9\",\"listener\":\"a\\\"b\",\"peer_pid\":7");
	free(text);
	free(o.p);
}
END_TEST

Suite *
encode_suite(void)
{
	Suite *s = suite_create("encode");
	TCase *tc = tcase_create("encode");

	tcase_add_test(tc, time_per_read);
	tcase_add_test(tc, time_digits);
	tcase_add_test(tc, pri_names);
	tcase_add_test(tc, bsd_event);
	tcase_add_test(tc, sd_no_duplicate_keys);
	tcase_add_test(tc, prefix);
	suite_add_tcase(s, tc);
	return s;
}
