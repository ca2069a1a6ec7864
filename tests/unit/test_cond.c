/*
 * common/cond.c: route conditions parse into the tree the pipeline tests,
 * with the values each comparison stands for; a bad condition says where
 * and why.
 */
#include <stdio.h>
#include <string.h>

#include "cond.h"
#include "tests.h"

static const struct { const char *text; uint32_t set; } levels[] = {
	{ "severity <= warning", 0x1f },	/* emerg..warning: warning or worse */
	{ "severity < err", 0x07 },
	{ "severity == 3", 0x08 },
	{ "severity != debug", 0x7f },
	{ "severity > notice", 0xc0 },
	{ "severity >= info", 0xc0 },
	{ "severity in [error, warn, panic]", 0x19 },
	{ "facility == local7", 1u << 23 },
	{ "facility in [auth, authpriv, 0]", (1u << 4) | (1u << 10) | 1 },
	{ "facility >= local6", (1u << 22) | (1u << 23) },
	{ "facility == \"solaris-cron\"", 1u << 15 },
};

START_TEST(level_sets)
{
	char err[256];
	struct cond *c = cond_parse(levels[_i].text, err, sizeof(err));

	ck_assert_msg(c != NULL, "%s: %s", levels[_i].text, err);
	ck_assert_int_eq(c->kind, CK_TEST);
	ck_assert_uint_eq(c->set, levels[_i].set);
	cond_free(c);
}
END_TEST

/* and binds tighter than or; not tighter than both; parentheses group. */
START_TEST(precedence)
{
	char err[256];
	struct cond *c = cond_parse("app == a or not app == b and (msg contains x or host == h)",
	    err, sizeof(err));

	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(c->kind, CK_OR);
	ck_assert_int_eq(c->a->kind, CK_TEST);
	ck_assert_int_eq(c->b->kind, CK_AND);
	ck_assert_int_eq(c->b->a->kind, CK_NOT);
	ck_assert_int_eq(c->b->b->kind, CK_OR);
	ck_assert_int_eq(c->b->b->a->op, CO_CONTAINS);
	cond_free(c);
}
END_TEST

START_TEST(values)
{
	char err[256];
	struct cond *c = cond_parse("body.user.name in [\"a \\\"b\\\"\", x]", err, sizeof(err));

	ck_assert_msg(c != NULL, "%s", err);
	ck_assert_int_eq(c->field, CF_BODY);
	ck_assert_str_eq(c->path, "user.name");
	ck_assert_int_eq(c->nstrs, 2);
	ck_assert_str_eq(c->strs[0].p, "a \"b\"");
	ck_assert_str_eq(c->strs[1].p, "x");
	cond_free(c);
	c = cond_parse("peer in [10.0.0.0/8, \"::1\"] and msg ~ \"(?i)fail(ed|ure)\"", err,
	    sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	ck_assert_int_eq(c->a->ncidrs, 2);
	ck_assert_int_eq(cond_regex_match(c->b, "login FAILED", 12), 1);
	ck_assert_int_eq(cond_regex_match(c->b, "login ok", 8), 0);
	cond_free(c);
}
END_TEST

static const struct { const char *text, *err; } bad[] = {
	{ "", "at column 1: an empty condition" },
	{ "sevrity <= err", "at column 1: unknown field \"sevrity\"" },
	{ "severity <= eror", "at column 13: \"eror\" is no severity" },
	{ "facility == 24", "at column 13: \"24\" is no facility" },
	{ "severity contains x", "at column 10: contains does not apply to this field" },
	{ "peer < 1", "at column 6: < does not apply to this field" },
	{ "app = x", "at column 5: expected an operator" },
	{ "app ==", "at column 7: expected a value" },
	{ "msg ~ \"(foo\"", "at column 7: regular expression \"(foo\": missing closing parenthesis" },
	{ "peer in [10.0.0.0/33]", "at column 10: \"10.0.0.0/33\": prefix length" },
	{ "app in [a, b", "at column 13: expected , or ] in the list" },
	{ "app in a", "at column 8: expected [ after in" },
	{ "(app == a", "at column 10: expected )" },
	{ "app == a b", "at column 10: expected and, or, or the end" },
	{ "app == \"open", "at column 8: a string without its closing \"" },
	{ "app == a and", "at column 13: expected a field" },
	{ "body.a..b == 1", "at column 1: \"body.a..b\": an empty member name" },
	{ "app == a & b", "at column 10: unexpected character '&'" },
};

START_TEST(errors)
{
	char err[256];
	struct cond *c = cond_parse(bad[_i].text, err, sizeof(err));

	ck_assert_msg(c == NULL, "%s parsed", bad[_i].text);
	ck_assert_msg(strncmp(err, bad[_i].err, strlen(bad[_i].err)) == 0, "%s: %s", bad[_i].text,
	    err);
}
END_TEST

/* Nesting is bounded, so that a hostile condition cannot exhaust the stack. */
START_TEST(depth)
{
	char text[1024], err[256];
	struct cond *c;
	int n = 0;

	for (int i = 0; i < 100; i++)
		n += snprintf(text + n, sizeof(text) - n, "(");
	snprintf(text + n, sizeof(text) - n, "app == a");
	ck_assert_ptr_null(c = cond_parse(text, err, sizeof(err)));
	ck_assert_msg(strstr(err, "nested more than 64 deep") != NULL, "%s", err);
}
END_TEST

Suite *
cond_suite(void)
{
	Suite *s = suite_create("cond");
	TCase *tc = tcase_create("parse");

	tcase_add_loop_test(tc, level_sets, 0, (int)(sizeof(levels) / sizeof(levels[0])));
	tcase_add_test(tc, precedence);
	tcase_add_test(tc, values);
	tcase_add_loop_test(tc, errors, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, depth);
	suite_add_tcase(s, tc);
	return s;
}
