/*
 * worker/pipeline/routes.c: the routes pick an event's sinks: in order, a
 * match ends the search unless the route falls through, drop stops it, an
 * event no route takes goes to its listener's sinks; each field a
 * condition names, as the event has it (sinks behind fake_driver.c).
 */
#include <netinet/in.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "encode.h"
#include "fake_driver.h"
#include "proc.h"
#include "records.h"
#include "stats.h"
#include "tests.h"

static struct config *cf;
static struct encode_meta meta;

#define SINKS	"sinks = ( { name = \"a\"; path = \"/tmp/ingestd-unit-a\"; },\n" \
		"  { name = \"b\"; path = \"/tmp/ingestd-unit-b\"; },\n" \
		"  { name = \"c\"; path = \"/tmp/ingestd-unit-c\"; } );\n"
#define LISTENERS "listeners = ( { name = \"l\"; listen = \"127.0.0.1:1\"; sinks = [ \"c\" ]; },\n" \
		"  { name = \"m\"; listen = \"127.0.0.1:2\"; sinks = [ \"c\" ]; } );\n"

static void
setup(void)
{
	struct timespec ts = { 1764547200, 0 };

	cf = NULL;
	memset(&meta, 0, sizeof(meta));
	encode_set_time(&meta, &ts);
	meta.prefix = "";
	meta.peer = test_sockaddr("10.1.2.3");
	meta.tls_peer = "client.test";
}

static void
teardown(void)
{
	if (cf)
		fake_close(cf);
}

static void
load(const char *routes)
{
	char text[4096];

	snprintf(text, sizeof(text), "%s%sroutes = ( %s );\n", LISTENERS, SINKS, routes);
	cf = fake_open(text, NULL);
}

/* Which sinks got the record, as "abc" letters: each record sent alone. */
static const char *
sent(int listener, const char *rec)
{
	static char got[4];
	int n = 0;

	for (int i = 0; i < 3; i++)
		fake.out[i].len = 0;
	ck_assert_int_eq(records_route(&meta, &cf->listeners[listener], rec, strlen(rec), 0), 0);
	fake_run();
	for (int i = 0; i < 3; i++)
		if (fake.out[i].len > 0)
			got[n++] = 'a' + i;
	got[n] = '\0';
	return got;
}

START_TEST(order_final_fall_through)
{
	load("{ name = \"errors\"; match = \"severity <= err\"; sinks = [ \"a\" ]; final = false; },\n"
	    "{ name = \"ssh\"; match = \"app == sshd\"; sinks = [ \"b\" ]; },\n"
	    "{ name = \"late\"; match = \"app == sshd or app == cron\"; sinks = [ \"c\" ]; }");
	ck_assert_str_eq(sent(0, "<11>Oct 11 22:14:15 h app: e"), "a");	/* taken: not c */
	ck_assert_str_eq(sent(0, "<11>Oct 11 22:14:15 h sshd: e"), "ab");	/* final: not late */
	ck_assert_str_eq(sent(0, "<14>Oct 11 22:14:15 h sshd: i"), "b");
	ck_assert_str_eq(sent(0, "<14>Oct 11 22:14:15 h cron: i"), "c");
	ck_assert_str_eq(sent(0, "<14>Oct 11 22:14:15 h other: i"), "c");	/* the listener's */
	ck_assert_uint_eq(proc.stats->route[0].matched, 2);
	ck_assert_uint_eq(proc.stats->route[1].matched, 2);
	ck_assert_uint_eq(proc.stats->route[2].matched, 1);
}
END_TEST

START_TEST(drop)
{
	load("{ name = \"all\"; sinks = [ \"a\" ]; final = false; },\n"
	    "{ name = \"noise\"; match = \"msg contains health\"; drop = true; },\n"
	    "{ name = \"b\"; sinks = [ \"b\" ]; }");
	ck_assert_str_eq(sent(0, "GET /health 200"), "a");	/* dropped after a fell through */
	ck_assert_str_eq(sent(0, "GET /x 200"), "ab");
	ck_assert_uint_eq(proc.stats->route[1].matched, 1);
	fake_close(cf);
	load("{ name = \"noise\"; match = \"msg contains health\"; drop = true; }");
	ck_assert_str_eq(sent(0, "GET /health 200"), "");
	ck_assert_uint_eq(proc.stats->route[0].matched, 1);
	ck_assert_uint_eq(proc.stats->w.records, 1);
}
END_TEST

START_TEST(listeners)
{
	load("{ name = \"only_m\"; listeners = [ \"m\" ]; sinks = [ \"a\" ]; }");
	ck_assert_str_eq(sent(0, "x"), "c");
	ck_assert_str_eq(sent(1, "x"), "a");
}
END_TEST

/* Each field, as the encoded event has it; tests of a missing field are false, != true. */
static const struct { const char *match, *rec; int hit; } fields[] = {
	{ "facility == local0 and severity == notice", "<133>Oct 11 22:14:15 h a: m", 1 },
	{ "severity <= warning", "<133>Oct 11 22:14:15 h a: m", 0 },
	{ "host == web1 and app == nginx and procid == 7", "<13>Oct 11 22:14:15 web1 nginx[7]: m", 1 },
	{ "msgid == ID47 and msg == \"hi there\"", "<13>1 2025-12-01T00:00:00Z h a 1 ID47 - hi there",
	  1 },
	{ "msg ~ \"^GET /[a-z]+ 5\\\\d\\\\d$\"", "GET /index 503", 1 },
	{ "msg !~ \"^GET\"", "GET /index 503", 0 },
	{ "msg contains \"index\"", "<13>Oct 11 22:14:15 h a: the index", 1 },
	{ "listener == l", "x", 1 },
	{ "tls_peer == client.test", "x", 1 },
	{ "tls_peer ~ \"^other\"", "x", 0 },
	{ "peer in [10.0.0.0/8]", "x", 1 },
	{ "peer == 10.1.2.3", "x", 1 },
	{ "peer != 10.1.2.3", "x", 0 },
	{ "peer in [192.168.0.0/16, \"::1\"]", "x", 0 },
	{ "body.user.id == 42 and body.level == \"warn\"", "{\"level\":\"warn\",\"user\":{\"id\":42}}",
	  1 },
	{ "body.user.name in [ann, bob]", "{\"user\":{\"name\":\"bob\"}}", 1 },
	{ "body.user.name == bob", "{\"user\":\"bob\"}", 0 },
	{ "app == x", "raw text", 0 },
	{ "app != x", "raw text", 1 },
	{ "severity != debug", "raw text", 1 },
	{ "severity == debug", "raw text", 0 },
	{ "not (app == x)", "raw text", 1 },
	{ "msg == \"<999>bad\"", "<999>bad", 1 },	/* did not parse: msg is the record */
};

START_TEST(each_field)
{
	char route[512], esc[256];
	size_t n = 0;

	for (const char *p = fields[_i].match; *p && n + 2 < sizeof(esc); p++) {
		if (*p == '"' || *p == '\\')
			esc[n++] = '\\';
		esc[n++] = *p;
	}
	esc[n] = '\0';
	snprintf(route, sizeof(route), "{ name = \"r\"; match = \"%s\"; sinks = [ \"a\" ]; }", esc);
	load(route);
	ck_assert_msg(strcmp(sent(0, fields[_i].rec), fields[_i].hit ? "a" : "c") == 0,
	    "%s on %s", fields[_i].match, fields[_i].rec);
}
END_TEST

Suite *
routes_suite(void)
{
	Suite *s = suite_create("routes");
	TCase *tc = tcase_create("pick");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, order_final_fall_through);
	tcase_add_test(tc, drop);
	tcase_add_test(tc, listeners);
	tcase_add_loop_test(tc, each_field, 0, (int)(sizeof(fields) / sizeof(fields[0])));
	suite_add_tcase(s, tc);
	return s;
}
