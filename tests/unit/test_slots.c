/*
 * server/slots.c: the master's table of worker processes.
 */
#include <stdlib.h>

#include "slots.h"
#include "tests.h"

static struct slot_table *t;

static void
setup(void)
{
	ck_assert_ptr_nonnull(t = malloc(sizeof(*t)));
	slot_table_init(t);
}

static void
teardown(void)
{
	free(t);
	t = NULL;
}

/* A slot of generation gen in a given state, with a process if pid > 0. */
static struct slot *
add(int id, unsigned gen, enum slot_state st, pid_t pid)
{
	struct slot *s = slot_alloc(t, id, gen);

	ck_assert_ptr_nonnull(s);
	s->state = st;
	s->pid = pid;
	return s;
}

START_TEST(init_is_empty)
{
	for (int i = 0; i < SLOT_MAX; i++) {
		ck_assert_int_eq(t->s[i].state, SLOT_FREE);
		ck_assert_int_eq(t->s[i].chan, -1);
		ck_assert_int_eq(t->s[i].pid, 0);
	}
	ck_assert_int_eq(slot_count_alive(t), 0);
	ck_assert_int_eq(slot_count(t, 0, ~0u), 0);
	ck_assert_int_eq(slot_count(t, 1, ~0u), 0);
	ck_assert_ptr_null(slot_find(t, 0, 0));
}
END_TEST

START_TEST(alloc_sets_up_a_waiting_slot)
{
	struct slot *s = slot_alloc(t, 3, 5);

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(s->id, 3);
	ck_assert_uint_eq(s->gen, 5);
	ck_assert_int_eq(s->state, SLOT_WAITING);
	ck_assert_int_eq(s->pid, 0);
	ck_assert_int_eq(s->chan, -1);
	ck_assert_ptr_null(s->chan_ev);
	ck_assert_ptr_null(s->timer);
	ck_assert_ptr_null(s->cf);
	ck_assert_int_eq(s->backoff_ms, 0);	/* so the first respawn waits BACKOFF_MIN_MS */
	ck_assert_int_eq(slot_count(t, 5, SLOT_MASK(SLOT_WAITING)), 1);
	ck_assert_int_eq(slot_count(t, 5, SLOT_ACTIVE), 1);
	ck_assert_int_eq(slot_count(t, 5, SLOT_LIVE), 0);
	ck_assert_int_eq(slot_count_alive(t), 0);	/* no process yet */
}
END_TEST

START_TEST(alloc_gives_distinct_slots)
{
	struct slot *a = slot_alloc(t, 0, 1), *b = slot_alloc(t, 1, 1);

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_ne(a, b);
	ck_assert_int_eq(slot_count(t, 1, SLOT_ACTIVE), 2);
}
END_TEST

START_TEST(release_frees_and_reuses)
{
	struct slot *a = add(0, 1, SLOT_RUNNING, 4242), *b;

	a->chan = 9;
	a->backoff_ms = 800;
	slot_release(a);
	ck_assert_int_eq(a->state, SLOT_FREE);
	ck_assert_int_eq(a->chan, -1);
	ck_assert_int_eq(a->pid, 0);
	ck_assert_int_eq(slot_count(t, 1, ~0u), 0);
	ck_assert_int_eq(slot_count_alive(t), 0);
	ck_assert_ptr_null(slot_by_pid(t, 4242));
	ck_assert_ptr_null(slot_find(t, 1, 0));

	b = slot_alloc(t, 2, 3);
	ck_assert_ptr_eq(b, a);	/* the freed entry is the first free one */
	ck_assert_int_eq(b->id, 2);
	ck_assert_uint_eq(b->gen, 3);
	ck_assert_int_eq(b->backoff_ms, 0);	/* nothing left from the old worker */
	ck_assert_int_eq(b->state, SLOT_WAITING);
}
END_TEST

START_TEST(by_pid)
{
	struct slot *a = add(0, 1, SLOT_RUNNING, 100);
	struct slot *b = add(1, 1, SLOT_STARTING, 101);
	struct slot *c = add(0, 2, SLOT_DRAINING, 102);

	ck_assert_ptr_eq(slot_by_pid(t, 100), a);
	ck_assert_ptr_eq(slot_by_pid(t, 101), b);
	ck_assert_ptr_eq(slot_by_pid(t, 102), c);	/* draining workers are still reaped */
	ck_assert_ptr_null(slot_by_pid(t, 103));
	ck_assert_ptr_null(slot_by_pid(t, -1));
	slot_release(b);
	ck_assert_ptr_null(slot_by_pid(t, 101));
}
END_TEST

START_TEST(find_skips_draining)
{
	struct slot *old = add(2, 1, SLOT_DRAINING, 200);
	struct slot *cur;

	ck_assert_ptr_null(slot_find(t, 1, 2));
	/* TTOU drained worker 2, TTIN starts a new worker 2 in the same generation. */
	cur = add(2, 1, SLOT_STARTING, 201);
	ck_assert_ptr_eq(slot_find(t, 1, 2), cur);
	ck_assert_ptr_ne(slot_find(t, 1, 2), old);
	cur->state = SLOT_RUNNING;
	ck_assert_ptr_eq(slot_find(t, 1, 2), cur);
	cur->state = SLOT_WAITING;
	cur->pid = 0;
	ck_assert_ptr_eq(slot_find(t, 1, 2), cur);
	cur->state = SLOT_FAILED;
	ck_assert_ptr_eq(slot_find(t, 1, 2), cur);
	ck_assert_ptr_null(slot_find(t, 2, 2));	/* other generation */
	ck_assert_ptr_null(slot_find(t, 1, 3));	/* other id */
}
END_TEST

START_TEST(count_by_state_and_generation)
{
	add(0, 1, SLOT_STARTING, 10);
	add(1, 1, SLOT_RUNNING, 11);
	add(2, 1, SLOT_RUNNING, 12);
	add(3, 1, SLOT_DRAINING, 13);
	add(4, 1, SLOT_WAITING, 0);
	add(5, 1, SLOT_FAILED, 0);
	add(0, 2, SLOT_RUNNING, 20);

	ck_assert_int_eq(slot_count(t, 1, SLOT_MASK(SLOT_STARTING)), 1);
	ck_assert_int_eq(slot_count(t, 1, SLOT_MASK(SLOT_RUNNING)), 2);
	ck_assert_int_eq(slot_count(t, 1, SLOT_MASK(SLOT_DRAINING)), 1);
	ck_assert_int_eq(slot_count(t, 1, SLOT_MASK(SLOT_WAITING)), 1);
	ck_assert_int_eq(slot_count(t, 1, SLOT_MASK(SLOT_FAILED)), 1);
	ck_assert_int_eq(slot_count(t, 1, SLOT_MASK(SLOT_FREE)), 0);	/* free is never counted */
	ck_assert_int_eq(slot_count(t, 1, SLOT_LIVE), 4);		/* starting, running, draining */
	ck_assert_int_eq(slot_count(t, 1, SLOT_ACTIVE), 4);		/* starting, running, waiting */
	ck_assert_int_eq(slot_count(t, 1, ~0u), 6);
	ck_assert_int_eq(slot_count(t, 1, 0), 0);
	ck_assert_int_eq(slot_count(t, 2, SLOT_MASK(SLOT_RUNNING)), 1);
	ck_assert_int_eq(slot_count(t, 2, SLOT_ACTIVE), 1);
	ck_assert_int_eq(slot_count(t, 3, ~0u), 0);
}
END_TEST

START_TEST(count_alive_counts_processes)
{
	add(0, 1, SLOT_RUNNING, 10);
	add(1, 1, SLOT_DRAINING, 11);
	add(2, 1, SLOT_WAITING, 0);	/* dead, waiting for its respawn */
	add(3, 1, SLOT_FAILED, 0);
	add(0, 2, SLOT_STARTING, 20);
	ck_assert_int_eq(slot_count_alive(t), 3);
}
END_TEST

START_TEST(table_full)
{
	static struct slot *got[SLOT_MAX];

	for (int i = 0; i < SLOT_MAX; i++) {
		got[i] = slot_alloc(t, i, 1);
		ck_assert_msg(got[i] != NULL, "slot_alloc %d of %d failed", i + 1, SLOT_MAX);
		for (int j = 0; j < i; j += 97)
			ck_assert_ptr_ne(got[i], got[j]);
	}
	ck_assert_int_eq(slot_count(t, 1, ~0u), SLOT_MAX);
	ck_assert_ptr_null(slot_alloc(t, SLOT_MAX, 1));
	ck_assert_ptr_null(slot_alloc(t, 0, 2));
	slot_release(got[1000]);
	ck_assert_ptr_eq(slot_alloc(t, 4000, 2), got[1000]);
	ck_assert_ptr_null(slot_alloc(t, 4001, 2));
	ck_assert_int_eq(slot_count(t, 2, ~0u), 1);
}
END_TEST

/*
 * The reload picture: generation 1 (4 workers) was told to drain while
 * generation 2 (4 workers) starts and then runs; gen 1 workers exit one by one.
 */
START_TEST(reload_two_generations)
{
	struct slot *old[4], *cur[4];

	for (int i = 0; i < 4; i++)
		old[i] = add(i, 1, SLOT_RUNNING, 1000 + i);
	for (int i = 0; i < 4; i++)
		cur[i] = add(i, 2, SLOT_STARTING, 2000 + i);
	ck_assert_int_eq(slot_count(t, 2, SLOT_MASK(SLOT_STARTING) | SLOT_MASK(SLOT_WAITING)), 4);
	ck_assert_int_eq(slot_count(t, 1, SLOT_ACTIVE), 4);

	/* gen 2 ready; gen 1 drains */
	for (int i = 0; i < 4; i++) {
		cur[i]->state = SLOT_RUNNING;
		old[i]->state = SLOT_DRAINING;
	}
	ck_assert_int_eq(slot_count(t, 2, SLOT_ACTIVE), 4);
	ck_assert_int_eq(slot_count(t, 2, SLOT_MASK(SLOT_RUNNING)), 4);
	ck_assert_int_eq(slot_count(t, 1, SLOT_ACTIVE), 0);
	ck_assert_int_eq(slot_count(t, 1, SLOT_LIVE), 4);
	ck_assert_int_eq(slot_count(t, 1, SLOT_MASK(SLOT_DRAINING)), 4);
	ck_assert_int_eq(slot_count_alive(t), 8);
	for (int i = 0; i < 4; i++) {
		ck_assert_ptr_eq(slot_find(t, 2, i), cur[i]);
		ck_assert_ptr_null(slot_find(t, 1, i));
		ck_assert_ptr_eq(slot_by_pid(t, 1000 + i), old[i]);
		ck_assert_ptr_eq(slot_by_pid(t, 2000 + i), cur[i]);
	}

	/* The old workers exit and are released. */
	for (int i = 0; i < 4; i++) {
		slot_release(slot_by_pid(t, 1000 + i));
		ck_assert_int_eq(slot_count_alive(t), 8 - i - 1);
	}
	ck_assert_int_eq(slot_count(t, 1, ~0u), 0);
	ck_assert_int_eq(slot_count(t, 2, SLOT_ACTIVE), 4);
}
END_TEST

Suite *
slots_suite(void)
{
	Suite *s = suite_create("slots");
	TCase *tc = tcase_create("slot_table");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, init_is_empty);
	tcase_add_test(tc, alloc_sets_up_a_waiting_slot);
	tcase_add_test(tc, alloc_gives_distinct_slots);
	tcase_add_test(tc, release_frees_and_reuses);
	tcase_add_test(tc, by_pid);
	tcase_add_test(tc, find_skips_draining);
	tcase_add_test(tc, count_by_state_and_generation);
	tcase_add_test(tc, count_alive_counts_processes);
	tcase_add_test(tc, table_full);
	tcase_add_test(tc, reload_two_generations);
	suite_add_tcase(s, tc);
	return s;
}
