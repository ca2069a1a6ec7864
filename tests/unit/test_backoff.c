/*
 * server/backoff.c: the respawn delay of a worker that died.
 * 100 ms first, doubling up to a 30 s cap, reset after 60 s of stable running.
 */
#include "backoff.h"
#include "tests.h"

START_TEST(first_respawn_waits_100ms)
{
	/* A fresh slot has backoff_ms == 0. */
	ck_assert_int_eq(backoff_next(0, 0), 100);
	ck_assert_int_eq(backoff_next(0, 10), 100);
	ck_assert_int_eq(backoff_next(0, 59999), 100);
	ck_assert_int_eq(backoff_next(0, 3600000), 100);
	ck_assert_int_eq(backoff_next(-5, 10), 100);
	ck_assert_int_eq(BACKOFF_MIN_MS, 100);
}
END_TEST

START_TEST(doubles_while_crashing)
{
	ck_assert_int_eq(backoff_next(100, 0), 200);
	ck_assert_int_eq(backoff_next(200, 5), 400);
	ck_assert_int_eq(backoff_next(400, 1000), 800);
	ck_assert_int_eq(backoff_next(800, 59999), 1600);
	ck_assert_int_eq(backoff_next(1600, 0), 3200);
	ck_assert_int_eq(backoff_next(3200, 0), 6400);
	ck_assert_int_eq(backoff_next(6400, 0), 12800);
	ck_assert_int_eq(backoff_next(12800, 0), 25600);
	ck_assert_int_eq(backoff_next(14999, 0), 29998);
}
END_TEST

START_TEST(capped_at_30s)
{
	ck_assert_int_eq(BACKOFF_MAX_MS, 30000);
	ck_assert_int_eq(backoff_next(15000, 0), 30000);
	ck_assert_int_eq(backoff_next(20000, 0), 30000);	/* not 40000 */
	ck_assert_int_eq(backoff_next(25600, 0), 30000);	/* not 51200 */
	ck_assert_int_eq(backoff_next(30000, 0), 30000);
	ck_assert_int_eq(backoff_next(30000, 59999), 30000);
}
END_TEST

START_TEST(reset_after_a_minute_of_stable_running)
{
	ck_assert_int_eq(BACKOFF_STABLE_MS, 60000);
	ck_assert_int_eq(backoff_next(30000, 60000), 100);
	ck_assert_int_eq(backoff_next(30000, 60001), 100);
	ck_assert_int_eq(backoff_next(3200, 86400000), 100);
	ck_assert_int_eq(backoff_next(30000, 59999), 30000);	/* one ms short */
	ck_assert_int_eq(backoff_next(100, 59999), 200);
}
END_TEST

/* A worker that dies right after every start: the delays the operator sees. */
START_TEST(crash_loop_sequence)
{
	static const long want[] = { 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600,
	    30000, 30000, 30000, 30000 };
	long prev = 0;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		prev = backoff_next(prev, 20);
		ck_assert_msg(prev == want[i], "death %zu: waited %ld ms, expected %ld ms", i + 1,
		    prev, want[i]);
	}
	/* Then it runs for a minute, and the next crash starts over. */
	prev = backoff_next(prev, 60000);
	ck_assert_int_eq(prev, 100);
	prev = backoff_next(prev, 20);
	ck_assert_int_eq(prev, 200);
}
END_TEST

START_TEST(always_within_bounds)
{
	/* Every value a slot's backoff_ms can hold: 0 at first, then what this returned. */
	for (long prev = 0; prev <= BACKOFF_MAX_MS; prev = prev ? prev + 1 : BACKOFF_MIN_MS)
		for (long up = 0; up <= 120000; up += 7919) {
			long w = backoff_next(prev, up);

			/* ck_assert per value is too slow under ASan: test, then abort. */
			if (w < BACKOFF_MIN_MS || w > BACKOFF_MAX_MS)
				ck_abort_msg("backoff_next(%ld, %ld) = %ld", prev, up, w);
			if (up < BACKOFF_STABLE_MS && w < prev)
				ck_abort_msg("backoff_next(%ld, %ld) = %ld shrank", prev, up, w);
		}
}
END_TEST

Suite *
backoff_suite(void)
{
	Suite *s = suite_create("backoff");
	TCase *tc = tcase_create("backoff_next");

	tcase_add_test(tc, first_respawn_waits_100ms);
	tcase_add_test(tc, doubles_while_crashing);
	tcase_add_test(tc, capped_at_30s);
	tcase_add_test(tc, reset_after_a_minute_of_stable_running);
	tcase_add_test(tc, crash_loop_sequence);
	tcase_add_test(tc, always_within_bounds);
	suite_add_tcase(s, tc);
	return s;
}
