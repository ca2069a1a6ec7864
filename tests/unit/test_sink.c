/*
 * worker/sinks/sink.c: the queue core with a fake driver (fake_driver.c):
 * batching and the end of the loop's turn, retries, back-pressure through
 * the hooks, drop queues, the marks acknowledgements wait for, sync =
 * always, and the writing out at exit.
 */
#include <event2/event.h>
#include <string.h>

#include "config.h"
#include "fake_driver.h"
#include "proc.h"
#include "sink.h"
#include "stats.h"
#include "tests.h"

static struct config *cf;
static int reading_calls, reading_on = 1, progressed;

static void
on_reading(int on)
{
	reading_calls++;
	reading_on = on;
}

static void
on_progressed(void)
{
	progressed++;
}

static const struct sink_hooks hooks = { on_reading, on_progressed };

/* Sinks from the text of a sinks list (the listener is irrelevant here), with the hooks. */
static void
open_sinks(const char *sinks)
{
	char text[2048];

	snprintf(text, sizeof(text), "listeners = ( { name = \"l\"; listen = \"127.0.0.1:1\"; } );\n"
	    "sinks = ( %s );\n", sinks);
	cf = fake_open(text, &hooks);
}

static void
setup(void)
{
	cf = NULL;
	reading_calls = progressed = 0;
	reading_on = 1;
}

static void
teardown(void)
{
	if (cf)
		fake_close(cf);
}

/* Queue one line into sink idx, as the pipeline does. */
static void
put(int idx, const char *line)
{
	size_t n = strlen(line);
	struct obuf *q = sink_reserve(idx, n);

	ck_assert_ptr_nonnull(q);
	memcpy(q->p + q->len, line, n);
	q->len += n;
	sink_commit(idx);
}

static int
got(int idx, const char *want)
{
	return fake.out[idx].len == strlen(want) && memcmp(fake.out[idx].p, want, fake.out[idx].len) == 0;
}

/* flush_interval = 0: a turn's events go out together, at the end of the turn. */
START_TEST(end_of_turn_batch)
{
	open_sinks("{ name = \"a\"; path = \"/tmp/ingestd-unit-x\"; }");
	put(0, "one\n");
	put(0, "two\n");
	ck_assert_int_eq(fake.writes[0], 0);
	fake_run();
	ck_assert_int_eq(fake.writes[0], 1);
	ck_assert(got(0, "one\ntwo\n"));
	ck_assert_uint_eq(sink_stats(0)->events, 2);
	ck_assert_uint_eq(sink_stats(0)->bytes, 8);
	ck_assert_uint_eq(sink_stats(0)->queued, 0);
}
END_TEST

/* A full batch is written at once, without waiting for the turn to end. */
START_TEST(full_batch_at_once)
{
	static char line[1024];

	open_sinks("{ name = \"a\"; path = \"/tmp/ingestd-unit-x\"; }");
	memset(line, 'x', sizeof(line) - 2);
	line[sizeof(line) - 2] = '\n';
	for (int i = 0; i < SINK_BATCH / (int)(sizeof(line) - 1) + 1; i++)
		put(0, line);
	ck_assert_int_ge(fake.writes[0], 1);
	ck_assert_uint_ge(fake.out[0].len, SINK_BATCH);
}
END_TEST

/* A failing destination: the queue is kept, errors counted, and it all goes once, in order. */
START_TEST(retry_after_failure)
{
	open_sinks("{ name = \"a\"; path = \"/tmp/ingestd-unit-x\"; }");
	fake.mode = FAKE_FAIL;
	put(0, "a\n");
	fake_run();
	ck_assert_int_eq(fake.writes[0], 1);
	ck_assert_uint_eq(sink_stats(0)->errors, 1);
	put(0, "b\n");		/* queued behind the retry, not written now */
	ck_assert_int_eq(fake.writes[0], 1);
	fake.mode = FAKE_TAKE;
	fake_run_for(300);	/* the first retry comes after 80-120 ms */
	ck_assert(got(0, "a\nb\n"));
	ck_assert_uint_eq(sink_stats(0)->queued, 0);
}
END_TEST

/* A "block" sink over its queue stops reading; half empty, it lets it go on. */
START_TEST(block_backpressure)
{
	static char line[1000];

	int n = 0;

	open_sinks("{ name = \"a\"; path = \"/tmp/ingestd-unit-x\"; queue = \"64K\"; overflow = \"block\"; }");
	memset(line, 'y', sizeof(line) - 2);
	line[sizeof(line) - 2] = '\n';
	fake.mode = FAKE_WAIT;
	while (reading_on && n < 200) {
		put(0, line);
		n++;
	}
	ck_assert_int_eq(reading_on, 0);
	ck_assert_int_eq(n, 66);	/* 66 x 999 bytes: the first past 64 KiB */
	fake.mode = FAKE_TAKE;
	sink_flush_soon(0);
	fake_run();
	ck_assert_int_eq(reading_on, 1);
	ck_assert_uint_eq(fake.out[0].len, n * (sizeof(line) - 1));
}
END_TEST

/* A "drop" sink over its queue refuses new events, and counts them. */
START_TEST(drop_when_full)
{
	static char line[1000];
	int refused = 0;

	open_sinks("{ name = \"a\"; path = \"/tmp/ingestd-unit-x\"; queue = \"64K\"; overflow = \"drop\"; }");
	memset(line, 'z', sizeof(line) - 2);
	line[sizeof(line) - 2] = '\n';
	fake.mode = FAKE_WAIT;
	for (int i = 0; i < 100; i++) {
		if (sink_reserve(0, sizeof(line)) == NULL) {
			sink_dropped(0);
			refused++;
			continue;
		}
		put(0, line);
	}
	ck_assert_int_eq(refused, 100 - 66);	/* room until the queue holds 64 KiB */
	ck_assert_uint_eq(sink_stats(0)->dropped, (uint64_t)refused);
	ck_assert_int_eq(reading_calls, 0);	/* a drop sink never stops the clients */
}
END_TEST

/* A mark is reached only once what was queued before it is written; progress is told. */
START_TEST(marks)
{
	uint64_t m;

	open_sinks("{ name = \"a\"; path = \"/tmp/ingestd-unit-x\"; flush_interval = 10; }");
	put(0, "first\n");
	m = sink_mark(0);
	ck_assert(!sink_reached(0, m));
	sink_flush_soon(0);	/* an acknowledgement waits: no flush_interval */
	fake_run();
	ck_assert(sink_reached(0, m));
	ck_assert_int_ge(progressed, 1);
	put(0, "second\n");
	ck_assert(sink_reached(0, m));
	ck_assert(!sink_reached(0, sink_mark(0)));
}
END_TEST

/* sync = "always": written is not enough, the mark waits for a sync that succeeds. */
START_TEST(sync_always)
{
	uint64_t m;

	open_sinks("{ name = \"a\"; path = \"/tmp/ingestd-unit-x\"; sync = \"always\"; }");
	fake.fail_sync = 1;
	put(0, "x\n");
	m = sink_mark(0);
	fake_run();
	ck_assert(got(0, "x\n"));
	ck_assert(!sink_reached(0, m));
	fake.fail_sync = 0;
	fake_run_for(300);
	ck_assert_int_ge(fake.syncs[0], 2);
	ck_assert(sink_reached(0, m));
}
END_TEST

/* A destination that takes part of a batch: whole units only, the rest stays in order. */
START_TEST(short_writes_whole_units)
{
	open_sinks("{ name = \"a\"; path = \"/tmp/ingestd-unit-x\"; }");
	fake.mode = FAKE_SHORT;
	fake.limit = 7;
	put(0, "abc\n");
	put(0, "defg\n");
	put(0, "h\n");
	fake_run_for(1000);
	ck_assert(got(0, "abc\ndefg\nh\n"));
}
END_TEST

/* Octet-counted units ("LEN SP MSG") are whole to the queue too. */
START_TEST(octet_units)
{
	open_sinks("{ name = \"a\"; type = \"forward\"; upstreams = [ \"127.0.0.1:1\" ]; "
	    "framing = \"octet-counted\"; }");
	fake.mode = FAKE_SHORT;
	fake.limit = 8;
	put(0, "3 abc");
	put(0, "4 d\ne\n");
	fake_run_for(1000);
	ck_assert(got(0, "3 abc4 d\ne\n"));
}
END_TEST

/* At exit, what is queued is written, the driver retried until the deadline. */
START_TEST(close_writes_the_queue)
{
	open_sinks("{ name = \"a\"; path = \"/tmp/ingestd-unit-x\"; flush_interval = 10; }");
	put(0, "last\n");
	sink_close_all(0);
	ck_assert(got(0, "last\n"));
}
END_TEST

Suite *
sink_suite(void)
{
	Suite *s = suite_create("sink");
	TCase *tc = tcase_create("queue");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, end_of_turn_batch);
	tcase_add_test(tc, full_batch_at_once);
	tcase_add_test(tc, retry_after_failure);
	tcase_add_test(tc, block_backpressure);
	tcase_add_test(tc, drop_when_full);
	tcase_add_test(tc, marks);
	tcase_add_test(tc, sync_always);
	tcase_add_test(tc, short_writes_whole_units);
	tcase_add_test(tc, octet_units);
	tcase_add_test(tc, close_writes_the_queue);
	suite_add_tcase(s, tc);
	return s;
}
