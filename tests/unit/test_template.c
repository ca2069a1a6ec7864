/*
 * worker/pipeline/template.c through records.c, sinks behind
 * fake_driver.c: a sink's fields, drop_fields, rename and static_fields
 * shape its events and no other sink's; payload = "rfc5424" rebuilds a
 * syslog line from any record; a template's configuration errors.
 */
#include <string.h>
#include <time.h>

#include "config.h"
#include "encode.h"
#include "fake_driver.h"
#include "proc.h"
#include "records.h"
#include "tests.h"

static struct config *cf;
static struct encode_meta meta;

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

static const char *
sent(int idx, const char *rec)
{
	static char text[4096];

	fake.out[idx].len = 0;
	ck_assert_int_eq(records_route(&meta, &cf->listeners[0], rec, strlen(rec), 0), 0);
	fake_run();
	snprintf(text, sizeof(text), "%.*s", (int)fake.out[idx].len, fake.out[idx].p);
	return text;
}

#define LST	"listeners = ( { name = \"l\"; listen = \"127.0.0.1:1\"; } );\n"

START_TEST(shaped_events)
{
	cf = fake_open(LST "sinks = (\n"
	    " { name = \"a\"; path = \"/tmp/ingestd-unit-a\"; fields = [ \"received_at\", \"host\", "
	    "\"msg\" ];\n   rename = [ \"msg=message\", \"host=h\\\"x\" ];\n"
	    "   static_fields = [ \"env=prod\", \"note=a=b\" ]; },\n"
	    " { name = \"b\"; path = \"/tmp/ingestd-unit-b\"; drop_fields = [ \"peer\", \"listener\", "
	    "\"received_at\", \"sd\" ]; },\n"
	    " { name = \"c\"; path = \"/tmp/ingestd-unit-c\"; } );\n", NULL);
	ck_assert_str_eq(sent(0, "<13>Oct 11 22:14:15 web1 nginx[7]: hello"),
	    "{\"received_at\":\"2025-12-01T00:00:00.123456Z\",\"h\\\"x\":\"web1\","
	    "\"message\":\"hello\",\"env\":\"prod\",\"note\":\"a=b\"}\n");
	ck_assert_str_eq(sent(1, "<13>1 2025-12-01T00:00:00Z h a 1 ID [x@1 k=\"v\"] m"),
	    "{\"facility\":\"user\",\"severity\":\"notice\",\"timestamp\":\"2025-12-01T00:00:00Z\","
	    "\"host\":\"h\",\"app\":\"a\",\"procid\":\"1\",\"msgid\":\"ID\",\"msg\":\"m\"}\n");
	/* a record with none of the fields kept: the static ones still */
	ck_assert_str_eq(sent(0, "{\"x\":1}"),
	    "{\"received_at\":\"2025-12-01T00:00:00.123456Z\",\"env\":\"prod\",\"note\":\"a=b\"}\n");
	ck_assert_str_eq(sent(2, "raw"), "{\"received_at\":\"2025-12-01T00:00:00.123456Z\","
	    "\"peer\":\"p\",\"listener\":\"l\",\"msg\":\"raw\"}\n");
}
END_TEST

START_TEST(rfc5424_lines)
{
	cf = fake_open(LST "sinks = ( { name = \"a\"; path = \"/tmp/ingestd-unit-a\"; "
	    "payload = \"rfc5424\"; } );\n", NULL);
	ck_assert_str_eq(sent(0, "<34>Oct 11 22:14:15 my machine su: failed"),
	    "<34>1 2025-10-11T22:14:15Z my - - - - machine su: failed\n");
	ck_assert_str_eq(sent(0, "<165>1 2003-10-11T22:14:15.003Z h evnt 42 ID47 "
	    "[ex@32473 iut=\"3\"] An event"),
	    "<165>1 2003-10-11T22:14:15.003Z h evnt 42 ID47 [ex@32473 iut=\"3\"] An event\n");
	ck_assert_str_eq(sent(0, "{\"a\":1}"),
	    "<13>1 2025-12-01T00:00:00.123456Z - - - - - {\"a\":1}\n");
	/* an octet-counted record may hold line breaks: one line still */
	ck_assert_str_eq(sent(0, "<13>Oct 11 22:14:15 h app: a\nb\r\nc"),
	    "<13>1 2025-10-11T22:14:15Z h app - - - a b  c\n");
}
END_TEST

Suite *
template_suite(void)
{
	Suite *s = suite_create("template");
	TCase *tc = tcase_create("shape");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, shaped_events);
	tcase_add_test(tc, rfc5424_lines);
	suite_add_tcase(s, tc);
	return s;
}
