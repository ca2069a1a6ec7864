/*
 * worker/conn/relp_session.c: a RELP session's state machine, with the
 * sinks behind it (fake_driver.c): commands in, records out, answers held
 * until the sinks have written what they acknowledge, in order, and the
 * session's errors.
 */
#include <event2/event.h>
#include <string.h>

#include "config.h"
#include "fake_driver.h"
#include "proc.h"
#include "relp_session.h"
#include "sink.h"
#include "stats.h"
#include "tests.h"
#include "version.h"

static struct config *cf;
static struct session sess;
static char records[4096];
static int nrecords, verdict;
static struct obuf out;

/* The pipeline, as far as the session sees it: the record is queued in the sink. */
static int
record(void *arg, const char *rec, size_t len, int truncated)
{
	struct obuf *q;

	(void)arg;
	(void)truncated;
	strncat(records, rec, len);
	strcat(records, "|");
	nrecords++;
	if (verdict == 0 && (q = sink_reserve(0, len + 1)) != NULL) {
		memcpy(q->p + q->len, rec, len);
		q->len += len;
		q->p[q->len++] = '\n';
		sink_commit(0);
	}
	return verdict;
}

static void
setup(void)
{
	cf = fake_open("listeners = ( { name = \"r\"; listen = \"127.0.0.1:1\"; "
	    "protocol = \"relp\"; max_record = 16; } );\n"
	    "sinks = ( { name = \"a\"; path = \"/tmp/ingestd-unit-x\"; flush_interval = 10; } );\n", NULL);
	session_init(&sess, &cf->listeners[0]);
	records[0] = '\0';
	nrecords = verdict = 0;
	memset(&out, 0, sizeof(out));
}

static void
teardown(void)
{
	session_free(&sess);
	obuf_free(&out);
	fake_close(cf);
}

/* Feed one read's bytes, then end the read as a connection does. */
static int
read_bytes(const char *data, const char **why)
{
	int rc = session_feed(&sess, data, strlen(data), record, NULL, why);

	ck_assert_int_eq(session_mark(&sess), 0);
	return rc;
}

/* What the session lets go now, as a string (out is emptied). */
static const char *
released(void)
{
	static char text[4096];

	ck_assert_int_eq(session_release(&sess, &out), 0);
	snprintf(text, sizeof(text), "%.*s", (int)out.len, out.p ? out.p : "");
	out.len = 0;
	return text;
}

START_TEST(answers_wait_for_the_sink)
{
	static const char offers[] = "200 OK\nrelp_version=0\nrelp_software=ingestd,"
	    INGESTD_VERSION "\ncommands=syslog";
	char want[256];
	const char *why;

	ck_assert_int_eq(read_bytes("1 open 0\n2 syslog 5 hello\n", &why), 0);
	ck_assert_str_eq(records, "hello|");
	/* the record is queued, not written: "open" and "syslog" both wait (one read's mark) */
	ck_assert_str_eq(released(), "");
	ck_assert(session_waiting(&sess));
	fake_run();		/* the mark asked the sink to write at the end of the turn */
	snprintf(want, sizeof(want), "1 rsp %zu %s\n2 rsp 6 200 OK\n", strlen(offers), offers);
	ck_assert_str_eq(released(), want);
	ck_assert(!session_waiting(&sess));
}
END_TEST

/* Answers leave in the order of their commands, a read's only after the reads before it. */
START_TEST(order_across_reads)
{
	const char *why;

	read_bytes("1 open 0\n", &why);
	fake_run();
	released();
	fake.mode = FAKE_WAIT;
	read_bytes("2 syslog 1 a\n", &why);
	read_bytes("3 syslog 1 b\n", &why);
	fake_run();
	ck_assert_str_eq(released(), "");
	fake.mode = FAKE_TAKE;
	sink_flush_soon(0);
	fake_run();
	ck_assert_str_eq(released(), "2 rsp 6 200 OK\n3 rsp 6 200 OK\n");
}
END_TEST

/* A record a full sink dropped is answered 500, in its turn. */
START_TEST(dropped_record_500)
{
	const char *why;

	read_bytes("1 open 0\n", &why);
	fake_run();
	released();
	verdict = -1;
	read_bytes("2 syslog 1 x\n", &why);
	fake_run();
	ck_assert_str_eq(released(), "2 rsp 50 500 a sink's queue is full: the record was dropped\n");
}
END_TEST

/* Commands before "open" end the session with an error; what follows is ignored. */
START_TEST(must_open_first)
{
	const char *why;

	ck_assert_int_eq(read_bytes("1 syslog 3 abc\n2 syslog 3 def\n", &why), 1);
	ck_assert_str_eq(why, "the session must begin with open");
	ck_assert_int_eq(nrecords, 0);
	ck_assert(sess.closing);
	fake_run();
	ck_assert_str_eq(released(), "1 rsp 36 500 the session must begin with open\n"
	    "0 serverclose 0\n");
	ck_assert(session_finished(&sess));
}
END_TEST

/* Transaction numbers go up (and wrap to 1): a repeat or a step back ends the session. */
START_TEST(txnr_in_sequence)
{
	const char *why;

	ck_assert_int_eq(read_bytes("1 open 0\n2 syslog 1 a\n2 syslog 1 b\n3 syslog 1 c\n", &why), 1);
	ck_assert_str_eq(why, "transaction number out of sequence");
	ck_assert_str_eq(records, "a|");
	fake_run();
	ck_assert(strstr(released(), "2 rsp 6 200 OK\n2 rsp 38 500 transaction number out of "
	    "sequence\n0 serverclose 0\n") != NULL);
}
END_TEST

START_TEST(txnr_step_back)
{
	const char *why;

	read_bytes("1 open 0\n5 syslog 1 a\n", &why);
	ck_assert_int_eq(read_bytes("4 syslog 1 b\n", &why), 1);
	ck_assert_str_eq(records, "a|");
}
END_TEST

START_TEST(txnr_wraps)
{
	const char *why;

	ck_assert_int_eq(read_bytes("1 open 0\n999999999 syslog 1 a\n1 syslog 1 b\n", &why), 0);
	ck_assert_str_eq(records, "a|b|");
}
END_TEST

/* A second "open" is answered with an error, and the session goes on. */
START_TEST(second_open)
{
	const char *why;

	ck_assert_int_eq(read_bytes("1 open 0\n2 open 0\n3 syslog 1 x\n", &why), 0);
	ck_assert_str_eq(records, "x|");
	ck_assert(!sess.closing);
	fake_run();
	ck_assert(strstr(released(), "2 rsp 31 500 the session is open already\n3 rsp 6 200 OK\n")
	    != NULL);
}
END_TEST

/* "close" is answered and ends the session; bytes after it are not commands. */
START_TEST(close_ends)
{
	const char *why;

	read_bytes("1 open 0\n2 close 0\n3 syslog 1 z\n", &why);
	ck_assert_int_eq(nrecords, 0);
	fake_run();
	ck_assert(strstr(released(), "2 rsp 0\n") != NULL);
	ck_assert(session_finished(&sess));
}
END_TEST

/* A draining server answers what it read, then says serverclose. */
START_TEST(serverclose_after_answers)
{
	const char *why;

	read_bytes("1 open 0\n2 syslog 2 ok\n", &why);
	ck_assert_int_eq(session_serverclose(&sess), 0);
	fake_run();
	ck_assert(strstr(released(), "2 rsp 6 200 OK\n0 serverclose 0\n") != NULL);
	ck_assert(session_finished(&sess));
}
END_TEST

/*
 * Bytes that are no RELP frame are a protocol error with a reason; the
 * answers already due (the open's) still go out, then serverclose.
 */
START_TEST(broken_frame)
{
	const char *why = NULL;

	ck_assert_int_eq(read_bytes("1 open 0\nnot relp\n", &why), 1);
	ck_assert_ptr_nonnull(why);
	const char *got;

	fake_run();
	got = released();
	ck_assert(strncmp(got, "1 rsp ", 6) == 0);
	ck_assert(strlen(got) > 16 && strcmp(got + strlen(got) - 16, "0 serverclose 0\n") == 0);
	ck_assert(session_finished(&sess));
	ck_assert_int_eq(session_release(&sess, &out), 0);
	ck_assert_uint_eq(out.len, 0);
}
END_TEST

/* A frame split across reads: a record begins (record_timeout runs) and ends. */
START_TEST(frame_across_reads)
{
	const char *why;

	read_bytes("1 open 0\n2 sys", &why);
	ck_assert(session_in_frame(&sess));
	read_bytes("log 3 abc\n", &why);
	ck_assert(!session_in_frame(&sess));
	ck_assert_str_eq(records, "abc|");
}
END_TEST

Suite *
relp_session_suite(void)
{
	Suite *s = suite_create("relp_session");
	TCase *tc = tcase_create("session");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, answers_wait_for_the_sink);
	tcase_add_test(tc, order_across_reads);
	tcase_add_test(tc, dropped_record_500);
	tcase_add_test(tc, must_open_first);
	tcase_add_test(tc, txnr_in_sequence);
	tcase_add_test(tc, txnr_step_back);
	tcase_add_test(tc, txnr_wraps);
	tcase_add_test(tc, second_open);
	tcase_add_test(tc, close_ends);
	tcase_add_test(tc, serverclose_after_answers);
	tcase_add_test(tc, broken_frame);
	tcase_add_test(tc, frame_across_reads);
	suite_add_tcase(s, tc);
	return s;
}
