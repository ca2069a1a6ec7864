/*
 * worker/pipeline/ratelimit.c: token buckets per client, by the clock the
 * caller gives: a burst passes, then the rate; a read that overdraws holds
 * the client back until it is paid off; clients are apart, but one IPv6
 * prefix is one client.
 */
#include <string.h>

#include "config.h"
#include "proc.h"
#include "ratelimit.h"
#include "tests.h"

static struct listener_cfg lst[2];
static struct config cf = { .listeners = lst, .nlisteners = 2 };

static void
setup(void)
{
	memset(lst, 0, sizeof(lst));
	lst[0].ipv6_prefix = 64;
	lst[0].rate_burst_ms = 1000;
	lst[1] = lst[0];
	proc.cf = &cf;
}

static const struct sockaddr *
at(const char *addr)
{
	static struct sockaddr_storage ss[4];
	static int k;
	const struct sockaddr *sa = test_sockaddr(addr);

	memcpy(&ss[k], sa, sizeof(ss[k]));
	return (const struct sockaddr *)&ss[k++ % 4];
}

/* 10 a second, a burst of 1 s: 10 pass at once, then one per 100 ms. */
START_TEST(admit_burst_then_rate)
{
	const struct sockaddr *a = at("10.0.0.1");
	int64_t t = 1000000;

	lst[0].rate_records = 10;
	ck_assert(ratelimit_on(&lst[0]));
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(ratelimit_admit(&lst[0], a, 100, t), 1);
	ck_assert_int_eq(ratelimit_admit(&lst[0], a, 100, t), 0);
	ck_assert_int_eq(ratelimit_admit(&lst[0], a, 100, t + 99), 0);
	ck_assert_int_eq(ratelimit_admit(&lst[0], a, 100, t + 100), 1);
	ck_assert_int_eq(ratelimit_admit(&lst[0], a, 100, t + 100), 0);
	/* quiet for long: a full bucket again, not more */
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(ratelimit_admit(&lst[0], a, 100, t + 60000), 1);
	ck_assert_int_eq(ratelimit_admit(&lst[0], a, 100, t + 60000), 0);
}
END_TEST

/* A read of 25 records at 10 a second: 15 owed, 1.5 s; then no wait. */
START_TEST(charge_overdraws)
{
	const struct sockaddr *a = at("10.0.0.2");
	int64_t t = 2000000;

	lst[0].rate_records = 10;
	ck_assert_int_eq(ratelimit_charge(&lst[0], a, 5, 500, t), 0);
	ck_assert_int_eq(ratelimit_charge(&lst[0], a, 20, 2000, t), 1500);
	ck_assert_int_eq(ratelimit_charge(&lst[0], a, 0, 0, t + 1000), 500);
	ck_assert_int_eq(ratelimit_charge(&lst[0], a, 0, 0, t + 1500), 0);
}
END_TEST

/* Bytes: 1000 a second; the first of the two limits to run out decides. */
START_TEST(bytes)
{
	const struct sockaddr *a = at("10.0.0.3");
	int64_t t = 3000000;

	lst[0].rate_bytes = 1000;
	lst[0].rate_records = 100;
	ck_assert_int_eq(ratelimit_admit(&lst[0], a, 600, t), 1);
	ck_assert_int_eq(ratelimit_admit(&lst[0], a, 600, t), 0);
	ck_assert_int_eq(ratelimit_admit(&lst[0], a, 600, t + 200), 1);
	ck_assert_int_eq(ratelimit_charge(&lst[0], a, 1, 3000, t + 200), 3000);
}
END_TEST

/* Two addresses, two buckets; two in one /64, one bucket; listeners apart. */
START_TEST(clients)
{
	const struct sockaddr *a = at("10.0.0.4"), *b = at("10.0.0.5");
	const struct sockaddr *c = at("2001:db8::1"), *d = at("2001:db8::2");
	int64_t t = 4000000;

	lst[0].rate_records = 1;
	lst[1].rate_records = 1;
	ck_assert_int_eq(ratelimit_admit(&lst[0], a, 1, t), 1);
	ck_assert_int_eq(ratelimit_admit(&lst[0], a, 1, t), 0);
	ck_assert_int_eq(ratelimit_admit(&lst[0], b, 1, t), 1);
	ck_assert_int_eq(ratelimit_admit(&lst[1], a, 1, t), 1);
	ck_assert_int_eq(ratelimit_admit(&lst[0], c, 1, t), 1);
	ck_assert_int_eq(ratelimit_admit(&lst[0], d, 1, t), 0);
	lst[0].ipv6_prefix = 128;
	ck_assert_int_eq(ratelimit_admit(&lst[0], d, 1, t), 1);
}
END_TEST

Suite *
ratelimit_suite(void)
{
	Suite *s = suite_create("ratelimit");
	TCase *tc = tcase_create("buckets");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, admit_burst_then_rate);
	tcase_add_test(tc, charge_overdraws);
	tcase_add_test(tc, bytes);
	tcase_add_test(tc, clients);
	suite_add_tcase(s, tc);
	return s;
}
