/*
 * worker/protocol/relp.c: RELP frames, whole or split at any byte, errors, and the
 * response frames.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relp.h"
#include "tests.h"

#define MAXF	16

struct got {
	int		 n;
	unsigned	 txnr[MAXF];
	char		 cmd[MAXF][RELP_CMD_MAX + 1];
	char		 data[MAXF][256];
	size_t		 len[MAXF];
	int		 truncated[MAXF];
	int		 stop_after;	/* return -1 after this many frames; 0: never */
};

static int
collect(void *arg, unsigned txnr, const char *cmd, const char *data, size_t len, int truncated)
{
	struct got *g = arg;

	ck_assert_int_lt(g->n, MAXF);
	ck_assert_uint_lt(len, sizeof(g->data[0]));
	g->txnr[g->n] = txnr;
	snprintf(g->cmd[g->n], sizeof(g->cmd[0]), "%s", cmd);
	memcpy(g->data[g->n], data, len);
	g->data[g->n][len] = '\0';
	g->len[g->n] = len;
	g->truncated[g->n] = truncated;
	g->n++;
	return g->stop_after && g->n == g->stop_after ? -1 : 0;
}

/* Feed text in pieces cut at the given offsets; returns relp_feed's last result. */
static int
feed_split(const char *text, size_t max_record, size_t cut1, size_t cut2, struct got *g,
    const char **why)
{
	struct relp_parser p;
	size_t n = strlen(text), cuts[4] = { 0, cut1, cut2, n };
	int rc = 0;

	relp_init(&p, max_record);
	for (int i = 0; i < 3 && rc == 0; i++)
		if (cuts[i + 1] > cuts[i])
			rc = relp_feed(&p, text + cuts[i], cuts[i + 1] - cuts[i], collect, g, why);
	relp_free(&p);
	return rc;
}

static const char session[] =
    "1 open 36 relp_version=0\ncommands=syslog\nxyz=1\n"
    "2 syslog 13 <13>hello one\n"
    "3 syslog 3 a\nb\n"
    "999999999 close 0\n";

static void
check_session(const struct got *g)
{
	ck_assert_int_eq(g->n, 4);
	ck_assert_uint_eq(g->txnr[0], 1);
	ck_assert_str_eq(g->cmd[0], "open");
	ck_assert_str_eq(g->data[0], "relp_version=0\ncommands=syslog\nxyz=1");
	ck_assert_str_eq(g->cmd[1], "syslog");
	ck_assert_str_eq(g->data[1], "<13>hello one");
	ck_assert_str_eq(g->data[2], "a\nb");	/* LF inside data is data */
	ck_assert_uint_eq(g->txnr[3], RELP_TXNR_MAX);
	ck_assert_str_eq(g->cmd[3], "close");
	ck_assert_uint_eq(g->len[3], 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(g->truncated[i], 0);
}

START_TEST(whole)
{
	struct got g = { 0 };
	const char *why = NULL;

	ck_assert_int_eq(feed_split(session, 1024, 0, 0, &g, &why), 0);
	check_session(&g);
}
END_TEST

/* The same frames however the bytes are split: every pair of cut points. */
START_TEST(every_split)
{
	size_t n = strlen(session);

	for (size_t a = 0; a <= n; a++) {
		for (size_t b = a; b <= n; b++) {
			struct got g = { 0 };
			const char *why = NULL;

			ck_assert_int_eq(feed_split(session, 1024, a, b, &g, &why), 0);
			check_session(&g);
		}
	}
}
END_TEST

/* Data longer than max_record: cut, marked, the rest skipped, the next frame intact. */
START_TEST(truncation)
{
	static const char text[] = "5 syslog 20 0123456789abcdefghij\n6 syslog 2 ok\n";
	size_t n = strlen(text);

	for (size_t a = 0; a <= n; a++) {
		struct got g = { 0 };
		const char *why = NULL;

		ck_assert_int_eq(feed_split(text, 8, a, a, &g, &why), 0);
		ck_assert_int_eq(g.n, 2);
		ck_assert_str_eq(g.data[0], "01234567");
		ck_assert_int_eq(g.truncated[0], 1);
		ck_assert_str_eq(g.data[1], "ok");
		ck_assert_int_eq(g.truncated[1], 0);
	}
}
END_TEST

static const struct { const char *text, *why; } bad[] = {
	{ "0 open 0\n", "RELP: bad transaction number" },
	{ "01 open 0\n", "RELP: bad transaction number" },
	{ "1234567890 open 0\n", "RELP: bad transaction number" },
	{ "x open 0\n", "RELP: bad transaction number" },
	{ " open 0\n", "RELP: bad transaction number" },
	{ "1 op3n 0\n", "RELP: bad command" },
	{ "1  open 0\n", "RELP: bad command" },
	{ "1 abcdefghijabcdefghijabcdefghijabc 0\n", "RELP: bad command" },
	{ "1 open x\n", "RELP: bad data length" },
	{ "1 open 01 x\n", "RELP: bad data length" },
	{ "1 open 1\n", "RELP: bad data length" },
	{ "1 open \n", "RELP: bad data length" },
	{ "1 open 1234567890 x\n", "RELP: bad data length" },
	{ "1 syslog 2 abX", "RELP: no LF after the data" },
};

START_TEST(errors)
{
	struct got g = { 0 };
	const char *why = NULL;

	ck_assert_int_eq(feed_split(bad[_i].text, 1024, 0, 0, &g, &why), -1);
	ck_assert_ptr_nonnull(why);
	ck_assert_str_eq(why, bad[_i].why);
}
END_TEST

/* A callback that returns -1 stops the parser where it is. */
START_TEST(stop)
{
	struct got g = { .stop_after = 1 };
	const char *why = NULL;

	ck_assert_int_eq(feed_split(session, 1024, 0, 0, &g, &why), -1);
	ck_assert_int_eq(g.n, 1);
	ck_assert_ptr_null(why);
}
END_TEST

START_TEST(in_frame)
{
	struct relp_parser p;
	struct got g = { 0 };
	const char *why = NULL;

	relp_init(&p, 64);
	ck_assert_int_eq(relp_in_frame(&p), 0);
	relp_feed(&p, "7", 1, collect, &g, &why);
	ck_assert_int_eq(relp_in_frame(&p), 1);
	relp_feed(&p, " syslog 1 x\n", 12, collect, &g, &why);
	ck_assert_int_eq(relp_in_frame(&p), 0);
	ck_assert_int_eq(g.n, 1);
	relp_free(&p);
}
END_TEST

START_TEST(responses)
{
	struct obuf o = { 0 };

	ck_assert_int_eq(relp_response(&o, 12, "200 OK", 6), 0);
	ck_assert_int_eq(relp_response(&o, 13, "", 0), 0);
	ck_assert_int_eq(o.len, strlen("12 rsp 6 200 OK\n13 rsp 0\n"));
	ck_assert(memcmp(o.p, "12 rsp 6 200 OK\n13 rsp 0\n", o.len) == 0);
	free(o.p);
}
END_TEST

Suite *
relp_suite(void)
{
	Suite *s = suite_create("relp");
	TCase *tc = tcase_create("relp");

	tcase_add_test(tc, whole);
	tcase_add_test(tc, every_split);
	tcase_add_test(tc, truncation);
	tcase_add_loop_test(tc, errors, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, stop);
	tcase_add_test(tc, in_frame);
	tcase_add_test(tc, responses);
	suite_add_tcase(s, tc);
	return s;
}
