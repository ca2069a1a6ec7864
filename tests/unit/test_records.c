/*
 * worker/pipeline/records.c: a record becomes an event that goes to the
 * sinks its listener names, each in its own form (event lines, octet-counted
 * frames, the record as it came), with the sinks behind a fake driver
 * (fake_driver.c); a full "drop" sink loses the event for itself only.
 */
#include <event2/event.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "encode.h"
#include "fake_driver.h"
#include "proc.h"
#include "records.h"
#include "sink.h"
#include "stats.h"
#include "tests.h"

static struct config *cf;
static struct encode_meta meta;

static void
load(const char *text)
{
	cf = fake_open(text, NULL);
}

static void
setup(void)
{
	cf = NULL;
	test_meta(&meta);
}

static void
teardown(void)
{
	if (cf)
		fake_close(cf);
}

static int
route(int listener, const char *rec)
{
	return records_route(&meta, &cf->listeners[listener], rec, strlen(rec), 0);
}

static const char *
output(int idx)
{
	static char text[4096];

	snprintf(text, sizeof(text), "%.*s", (int)fake.out[idx].len,
	    fake.out[idx].p ? fake.out[idx].p : "");
	return text;
}

#define EVENT(msg)	"{\"received_at\":\"2025-12-01T00:00:00.123456Z\",\"peer\":\"p\"," \
			"\"listener\":\"l\",\"msg\":\"" msg "\"}\n"

/* Every sink of the listener gets the event, and no other sink. */
START_TEST(fan_out)
{
	load("listeners = ( { name = \"l\"; listen = \"127.0.0.1:1\"; format = \"raw\"; "
	    "sinks = [ \"a\", \"c\" ]; } );\n"
	    "sinks = ( { name = \"a\"; path = \"/tmp/ingestd-unit-a\"; }, { name = \"b\"; path = \"/tmp/ingestd-unit-b\"; }, "
	    "{ name = \"c\"; path = \"/tmp/ingestd-unit-c\"; } );\n");
	ck_assert_int_eq(route(0, "hello"), 0);
	fake_run();
	ck_assert_str_eq(output(0), EVENT("hello"));
	ck_assert_str_eq(output(1), "");
	ck_assert_str_eq(output(2), EVENT("hello"));
	ck_assert_uint_eq(proc.stats->w.records, 1);
}
END_TEST

/* A forward sink's forms: octet-counted events, and the records as they came. */
START_TEST(each_sink_its_form)
{
	char frame[256];

	load("listeners = ( { name = \"l\"; listen = \"127.0.0.1:1\"; format = \"raw\"; } );\n"
	    "sinks = ( { name = \"lines\"; path = \"/tmp/ingestd-unit-a\"; },\n"
	    "{ name = \"frames\"; type = \"forward\"; upstreams = [ \"127.0.0.1:1\" ]; "
	    "framing = \"octet-counted\"; },\n"
	    "{ name = \"raw\"; type = \"forward\"; upstreams = [ \"127.0.0.1:1\" ]; "
	    "payload = \"record\"; } );\n");
	ck_assert_int_eq(route(0, "x y"), 0);
	fake_run();
	ck_assert_str_eq(output(0), EVENT("x y"));
	snprintf(frame, sizeof(frame), "%zu %.*s", strlen(EVENT("x y")) - 1,
	    (int)strlen(EVENT("x y")) - 1, EVENT("x y"));	/* "LEN SP MSG", no LF */
	ck_assert_str_eq(output(1), frame);
	ck_assert_str_eq(output(2), "x y\n");
}
END_TEST

/* A full "drop" sink loses the event (the route says so); the others still get it. */
START_TEST(drop_sink_full)
{
	load("listeners = ( { name = \"l\"; listen = \"127.0.0.1:1\"; format = \"raw\"; } );\n"
	    "sinks = ( { name = \"small\"; path = \"/tmp/ingestd-unit-a\"; queue = \"64K\"; overflow = \"drop\"; },\n"
	    "{ name = \"all\"; path = \"/tmp/ingestd-unit-b\"; } );\n");
	fake.mode = FAKE_WAIT;
	for (int i = 0; i < 2000 && sink_stats(0)->dropped == 0; i++)
		route(0, "a record of some length, to fill the small queue soon enough");
	ck_assert_uint_gt(sink_stats(0)->dropped, 0);
	ck_assert_int_eq(route(0, "one more"), -1);
	ck_assert_uint_eq(sink_stats(1)->events, sink_stats(0)->events + sink_stats(0)->dropped);
}
END_TEST

/* A record that does not parse is counted, and kept, or dropped when the listener says so. */
START_TEST(parse_errors)
{
	load("listeners = ( { name = \"keep\"; listen = \"127.0.0.1:1\"; format = \"syslog\"; },\n"
	    "{ name = \"drop\"; listen = \"127.0.0.1:2\"; format = \"syslog\"; "
	    "on_parse_error = \"drop\"; } );\n"
	    "sinks = ( { name = \"a\"; path = \"/tmp/ingestd-unit-a\"; } );\n");
	ck_assert_int_eq(route(0, "no pri"), 0);
	ck_assert_int_eq(route(1, "no pri either"), 0);
	fake_run();
	ck_assert(strstr(output(0), "\"parse_error\"") != NULL);
	ck_assert(strstr(output(0), "no pri either") == NULL);
	ck_assert_uint_eq(proc.stats->w.parse_errors, 1);
	ck_assert_uint_eq(proc.stats->w.parse_dropped, 1);
	ck_assert_uint_eq(sink_stats(0)->events, 1);
}
END_TEST

Suite *
records_suite(void)
{
	Suite *s = suite_create("records");
	TCase *tc = tcase_create("route");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, fan_out);
	tcase_add_test(tc, each_sink_its_form);
	tcase_add_test(tc, drop_sink_full);
	tcase_add_test(tc, parse_errors);
	suite_add_tcase(s, tc);
	return s;
}
