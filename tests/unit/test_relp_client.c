/*
 * worker/protocol/relp_client.c: a forward sink's RELP session: the frames
 * it sends, the window, answers in and out of order releasing units from
 * the oldest, and what ends a session.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relp_client.h"
#include "tests.h"

static const char open_ok[] = "1 rsp 53 200 OK\nrelp_version=0\nrelp_software=x\ncommands=syslog\n";

/* A session opened with window, its frames in out (cleared after open). */
static void
opened(struct relp_client *c, struct obuf *out, unsigned window)
{
	size_t released = 0;
	const char *why = NULL;

	ck_assert_int_eq(relpc_init(c, window), 0);
	memset(out, 0, sizeof(*out));
	ck_assert_int_eq(relpc_room(c), 0);
	ck_assert_int_eq(relpc_open(c, out), 0);
	ck_assert(out->len > 0 && strncmp(out->p, "1 open ", 7) == 0);
	ck_assert(memmem(out->p, out->len, "\ncommands=syslog\n", 17) != NULL);
	ck_assert_int_eq(relpc_room(c), 0);	/* nothing before the answer to open */
	ck_assert_int_eq(relpc_feed(c, open_ok, strlen(open_ok), &released, &why), 0);
	ck_assert_uint_eq(released, 0);
	ck_assert_int_eq(relpc_room(c), 1);
	out->len = 0;
}

static int
feed(struct relp_client *c, const char *text, size_t *released, const char **why)
{
	*released = 0;
	return relpc_feed(c, text, strlen(text), released, why);
}

START_TEST(frames_and_window)
{
	struct relp_client c;
	struct obuf out;
	size_t released;
	const char *why = NULL;

	opened(&c, &out, 3);
	ck_assert_int_eq(relpc_send(&c, &out, "<13>one", 7, 10), 0);
	ck_assert_int_eq(relpc_send(&c, &out, "", 0, 2), 0);
	ck_assert_int_eq(relpc_send(&c, &out, "three", 5, 30), 0);
	ck_assert_int_eq(relpc_room(&c), 0);
	ck_assert_int_eq(relpc_send(&c, &out, "four", 4, 1), -1);	/* the window is full */
	ck_assert_uint_eq(out.len, strlen("2 syslog 7 <13>one\n3 syslog 0\n4 syslog 5 three\n"));
	ck_assert(memcmp(out.p, "2 syslog 7 <13>one\n3 syslog 0\n4 syslog 5 three\n", out.len) == 0);
	/* the second answered first: nothing leaves until the first is */
	ck_assert_int_eq(feed(&c, "3 rsp 6 200 OK\n", &released, &why), 0);
	ck_assert_uint_eq(released, 0);
	ck_assert_int_eq(relpc_room(&c), 0);
	ck_assert_int_eq(feed(&c, "2 rsp 6 200 OK\n", &released, &why), 0);
	ck_assert_uint_eq(released, 12);
	ck_assert_int_eq(relpc_room(&c), 1);
	ck_assert_int_eq(feed(&c, "4 rsp 3 200\n", &released, &why), 0);
	ck_assert_uint_eq(released, 30);
	out.len = 0;
	ck_assert_int_eq(relpc_close(&c, &out), 0);
	ck_assert(out.len == 10 && memcmp(out.p, "5 close 0\n", 10) == 0);
	ck_assert_int_eq(feed(&c, "5 rsp 0\n", &released, &why), 0);
	ck_assert_int_eq(c.state, RELPC_CLOSED);
	ck_assert_int_eq(feed(&c, "0 serverclose 0\n", &released, &why), -1);
	relpc_free(&c);
	obuf_free(&out);
}
END_TEST

/* Answers split at every byte release the same units. */
START_TEST(answers_split_anywhere)
{
	static const char answers[] = "2 rsp 6 200 OK\n3 rsp 16 200 OK\nmore text\n";

	for (size_t cut = 0; cut <= strlen(answers); cut++) {
		struct relp_client c;
		struct obuf out;
		size_t released = 0, total;
		const char *why = NULL;

		opened(&c, &out, 8);
		ck_assert_int_eq(relpc_send(&c, &out, "a", 1, 5), 0);
		ck_assert_int_eq(relpc_send(&c, &out, "b", 1, 7), 0);
		ck_assert_int_eq(relpc_feed(&c, answers, cut, &released, &why), 0);
		total = released;
		released = 0;
		ck_assert_int_eq(relpc_feed(&c, answers + cut, strlen(answers) - cut, &released,
		    &why), 0);
		ck_assert_uint_eq(total + released, 12);
		relpc_free(&c);
		obuf_free(&out);
	}
}
END_TEST

/* Transaction numbers wrap from 999999999 to 1, and answers find their frames across it. */
START_TEST(txnr_wraps)
{
	struct relp_client c;
	struct obuf out;
	size_t released;
	const char *why = NULL;

	opened(&c, &out, 4);
	c.txnr = RELP_TXNR_MAX - 2;
	ck_assert_int_eq(relpc_send(&c, &out, "x", 1, 1), 0);
	ck_assert_int_eq(relpc_send(&c, &out, "y", 1, 2), 0);
	ck_assert_int_eq(relpc_send(&c, &out, "z", 1, 4), 0);
	ck_assert(memmem(out.p, out.len, "\n1 syslog 1 z\n", 14) != NULL);
	ck_assert_int_eq(feed(&c, "1 rsp 3 200\n999999999 rsp 3 200\n", &released, &why), 0);
	ck_assert_uint_eq(released, 0);
	ck_assert_int_eq(feed(&c, "999999998 rsp 3 200\n", &released, &why), 0);
	ck_assert_uint_eq(released, 7);
	relpc_free(&c);
	obuf_free(&out);
}
END_TEST

/* What ends a session, and the reason it gives. */
static const struct {
	const char	*text;
	const char	*why;
} endings[] = {
	{ "2 rsp 26 500 a sink's queue is full\n", "refused a record: 500 a sink's queue is full" },
	{ "0 serverclose 0\n", "serverclose" },
	{ "7 rsp 6 200 OK\n", "no record in flight" },
	{ "2 rsp 6 200 OK\n2 rsp 6 200 OK\n", "no record in flight" },
	{ "2 syslog 3 abc\n", "unexpected command" },
	{ "2 rsp x\n", "bad data length from the upstream" },
	{ "junk\n", "bad transaction number from the upstream" },
};

START_TEST(session_ends)
{
	struct relp_client c;
	struct obuf out;
	size_t released;
	const char *why = NULL;

	opened(&c, &out, 4);
	ck_assert_int_eq(relpc_send(&c, &out, "a", 1, 5), 0);
	ck_assert_int_eq(feed(&c, endings[_i].text, &released, &why), -1);
	ck_assert_msg(why && strstr(why, endings[_i].why), "\"%s\": %s", endings[_i].text, why);
	/* the end sticks until the next connection */
	ck_assert_int_eq(feed(&c, "2 rsp 6 200 OK\n", &released, &why), -1);
	relpc_reset(&c);
	ck_assert_int_eq(c.count, 0);
	ck_assert_int_eq(c.state, RELPC_NEW);
	relpc_free(&c);
	obuf_free(&out);
}
END_TEST

/* The answer to open: refused, or without the syslog command. */
START_TEST(open_refused)
{
	static const char *answers[] = {
		"1 rsp 20 500 not today, sorry\n",
		"1 rsp 38 200 OK\nrelp_version=0\ncommands=syslogx\n",
		"1 rsp 42 200 OK\nrelp_version=0\ncommands=foo,bar,baz\n",
	};
	static const char ok_list[] = "1 rsp 43 200 OK\nrelp_version=0\ncommands=foo,syslog,x\n";

	for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
		struct relp_client c;
		struct obuf out = { 0 };
		size_t released;
		const char *why = NULL;

		ck_assert_int_eq(relpc_init(&c, 2), 0);
		ck_assert_int_eq(relpc_open(&c, &out), 0);
		ck_assert_int_eq(feed(&c, answers[i], &released, &why), -1);
		ck_assert(strstr(why, i == 0 ? "refused the session: 500 not today" :
		    "does not offer the syslog command") != NULL);
		relpc_reset(&c);
		ck_assert_int_eq(relpc_open(&c, &out), 0);
		ck_assert_int_eq(feed(&c, ok_list, &released, &why), 0);
		ck_assert_int_eq(relpc_room(&c), 1);
		relpc_free(&c);
		obuf_free(&out);
	}
	{
		struct relp_client c;

		ck_assert_int_eq(relpc_init(&c, 0), -1);
		ck_assert_int_eq(relpc_init(&c, RELPC_WINDOW_MAX + 1), -1);
	}
}
END_TEST

Suite *
relp_client_suite(void)
{
	Suite *s = suite_create("relp_client");
	TCase *tc = tcase_create("relp_client");

	tcase_add_test(tc, frames_and_window);
	tcase_add_test(tc, answers_split_anywhere);
	tcase_add_test(tc, txnr_wraps);
	tcase_add_loop_test(tc, session_ends, 0, (int)(sizeof(endings) / sizeof(endings[0])));
	tcase_add_test(tc, open_refused);
	suite_add_tcase(s, tc);
	return s;
}
