/*
 * common/conntab.c: connection counts shared by all workers, the caps
 * checked against them, and what happens when a worker dies.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conntab.h"
#include "tests.h"

static const struct ct_limits unlimited = { 0, 0, 64 };

static void
setup(void)
{
	ck_assert_int_eq(ct_init(1024), 0);
}

static void
teardown(void)
{
	ct_free();
}

static enum ct_refusal
take(int lsn, int owner, const char *addr, const struct ct_limits *lim, struct ct_ticket *t)
{
	return ct_acquire(lsn, owner, test_sockaddr(addr), lim, t);
}

static long
count_of(int lsn, const char *addr)
{
	return ct_count(lsn, addr ? test_sockaddr(addr) : NULL, 64);
}

START_TEST(max_connections)
{
	struct ct_limits lim = { 3, 0, 64 };
	struct ct_ticket t[4];

	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(take(0, i, "10.0.0.1", &lim, &t[i]), CT_ADMIT);
	ck_assert_int_eq(take(0, 0, "10.0.0.9", &lim, &t[3]), CT_REFUSE_MAX);
	ck_assert_int_eq(count_of(0, NULL), 3);
	/* Another listener has its own count. */
	ck_assert_int_eq(take(1, 0, "10.0.0.9", &lim, &t[3]), CT_ADMIT);
	ct_release(1, &t[1]);
	ck_assert_int_eq(take(0, 2, "10.0.0.9", &lim, &t[1]), CT_ADMIT);
	ck_assert_int_eq(count_of(0, NULL), 3);
}
END_TEST

START_TEST(per_ip)
{
	struct ct_limits lim = { 0, 2, 64 };
	struct ct_ticket t;

	ck_assert_int_eq(take(0, 0, "10.0.0.1", &lim, &t), CT_ADMIT);
	ck_assert_int_eq(take(0, 1, "10.0.0.1", &lim, &t), CT_ADMIT);
	ck_assert_int_eq(take(0, 0, "10.0.0.1", &lim, &t), CT_REFUSE_PER_IP);
	ck_assert_int_eq(take(0, 0, "10.0.0.2", &lim, &t), CT_ADMIT);
	ck_assert_int_eq(take(1, 0, "10.0.0.1", &lim, &t), CT_ADMIT);
	ck_assert_int_eq(count_of(0, "10.0.0.1"), 2);
	ck_assert_int_eq(count_of(0, "10.0.0.2"), 1);
	ck_assert_int_eq(count_of(0, NULL), 3);
}
END_TEST

START_TEST(ipv6_prefix)
{
	struct ct_limits lim = { 0, 2, 64 };
	struct ct_ticket t;

	/* One /64 is one client, whatever the interface identifier. */
	ck_assert_int_eq(take(0, 0, "2001:db8::1", &lim, &t), CT_ADMIT);
	ck_assert_int_eq(take(0, 0, "2001:db8::ffff:2", &lim, &t), CT_ADMIT);
	ck_assert_int_eq(take(0, 0, "2001:db8::3", &lim, &t), CT_REFUSE_PER_IP);
	ck_assert_int_eq(take(0, 0, "2001:db8:0:1::1", &lim, &t), CT_ADMIT);
	/* ipv6_prefix = 128 counts single addresses. */
	lim.prefix6 = 128;
	ck_assert_int_eq(take(1, 0, "2001:db8::1", &lim, &t), CT_ADMIT);
	ck_assert_int_eq(take(1, 0, "2001:db8::1", &lim, &t), CT_ADMIT);
	ck_assert_int_eq(take(1, 0, "2001:db8::2", &lim, &t), CT_ADMIT);
	ck_assert_int_eq(take(1, 0, "2001:db8::1", &lim, &t), CT_REFUSE_PER_IP);
	/* An IPv4-mapped address counts as its IPv4 address. */
	ck_assert_int_eq(take(2, 0, "10.0.0.1", &lim, &t), CT_ADMIT);
	ck_assert_int_eq(take(2, 0, "::ffff:10.0.0.1", &lim, &t), CT_ADMIT);
	ck_assert_int_eq(take(2, 0, "10.0.0.1", &lim, &t), CT_REFUSE_PER_IP);
}
END_TEST

START_TEST(release_empties)
{
	struct ct_ticket t[10];

	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(take(0, i % 3, i % 2 ? "10.0.0.1" : "::1", &unlimited, &t[i]),
		    CT_ADMIT);
	ck_assert_uint_gt(ct_used(), 0);
	for (int i = 0; i < 10; i++)
		ct_release(i % 3, &t[i]);
	ck_assert_int_eq(count_of(0, NULL), 0);
	ck_assert_uint_eq(ct_used(), 0);
}
END_TEST

/* A dead worker's connections come off the totals; the others stay. */
START_TEST(forget_owner)
{
	struct ct_ticket t;

	for (int i = 0; i < 5; i++)
		take(0, 7, "10.0.0.1", &unlimited, &t);
	take(0, 7, "10.0.0.2", &unlimited, &t);
	take(0, 8, "10.0.0.1", &unlimited, &t);
	take(1, 7, "10.0.0.1", &unlimited, &t);
	ct_forget_owner(7);
	ck_assert_int_eq(count_of(0, NULL), 1);
	ck_assert_int_eq(count_of(0, "10.0.0.1"), 1);
	ck_assert_int_eq(count_of(0, "10.0.0.2"), 0);
	ck_assert_int_eq(count_of(1, NULL), 0);
	ct_release(8, &(struct ct_ticket){ 0 });	/* an uncounted ticket is a no-op */
	ct_forget_owner(8);
	ck_assert_uint_eq(ct_used(), 0);
}
END_TEST

/*
 * A PROXY listener: admitted with no address (the balancer is not counted
 * per address), then the client from the header is counted and capped;
 * releasing gives both back.
 */
START_TEST(address_later)
{
	struct ct_limits lim = { 3, 2, 64 };
	struct ct_ticket t[5];

	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(ct_acquire(0, i, NULL, &lim, &t[i]), CT_ADMIT);
	ck_assert_int_eq(ct_acquire(0, 0, NULL, &lim, &t[3]), CT_REFUSE_MAX);
	ck_assert_int_eq(count_of(0, NULL), 3);
	ck_assert_uint_eq(ct_used(), 4);	/* the listener's total and 3 owners: no address */
	ck_assert_int_eq(ct_acquire_ip(0, test_sockaddr("10.0.0.1"), &lim, &t[0]), CT_ADMIT);
	ck_assert_int_eq(ct_acquire_ip(1, test_sockaddr("10.0.0.1"), &lim, &t[1]), CT_ADMIT);
	ck_assert_int_eq(count_of(0, "10.0.0.1"), 2);
	/* A third from the same client is refused; the ticket stays without an address. */
	ck_assert_int_eq(ct_acquire_ip(2, test_sockaddr("10.0.0.1"), &lim, &t[2]),
	    CT_REFUSE_PER_IP);
	ck_assert_int_eq(t[2].per_ip, 0);
	ck_assert_int_eq(count_of(0, "10.0.0.1"), 2);
	/* Counted once only. */
	ck_assert_int_eq(ct_acquire_ip(0, test_sockaddr("10.0.0.2"), &lim, &t[0]), CT_ADMIT);
	ck_assert_int_eq(count_of(0, "10.0.0.2"), 0);
	ck_assert_int_eq(count_of(0, "10.0.0.1"), 2);
	/* Closing one lets the next from that client in. */
	ct_release(2, &t[2]);
	ct_release(1, &t[1]);
	ck_assert_int_eq(count_of(0, "10.0.0.1"), 1);
	ck_assert_int_eq(count_of(0, NULL), 1);
	ck_assert_int_eq(ct_acquire(0, 1, NULL, &lim, &t[1]), CT_ADMIT);
	ck_assert_int_eq(ct_acquire_ip(1, test_sockaddr("10.0.0.1"), &lim, &t[1]), CT_ADMIT);
	ck_assert_int_eq(count_of(0, "10.0.0.1"), 2);
	ct_release(0, &t[0]);
	ct_release(1, &t[1]);
	ck_assert_int_eq(count_of(0, NULL), 0);
	ck_assert_uint_eq(ct_used(), 0);
}
END_TEST

/* A dead worker's late-counted addresses come off the totals too. */
START_TEST(address_later_forgotten)
{
	struct ct_limits lim = { 0, 1, 64 };
	struct ct_ticket t;

	ck_assert_int_eq(ct_acquire(0, 5, NULL, &lim, &t), CT_ADMIT);
	ck_assert_int_eq(ct_acquire_ip(5, test_sockaddr("2001:db8::1"), &lim, &t), CT_ADMIT);
	ck_assert_int_eq(count_of(0, "2001:db8::2"), 1);	/* the same /64 */
	ct_forget_owner(5);
	ck_assert_int_eq(count_of(0, "2001:db8::1"), 0);
	ck_assert_int_eq(count_of(0, NULL), 0);
	ck_assert_uint_eq(ct_used(), 0);
}
END_TEST

/* With no room to count, a capped listener refuses and an uncapped one admits. */
START_TEST(table_full)
{
	struct ct_limits capped = { 0, 1000, 64 };
	struct ct_ticket t;
	char addr[32];
	int i, full = 0;

	for (i = 0; i < 1000 && !full; i++) {
		snprintf(addr, sizeof(addr), "10.0.%d.%d", i / 256, i % 256);
		full = take(0, 0, addr, &capped, &t) == CT_REFUSE_FULL;
	}
	ck_assert_msg(full, "the table never filled");
	ck_assert_int_gt(i, 300);	/* 3/4 of 1024 entries, two per address */
	ck_assert_int_eq(take(0, 0, "10.9.9.9", &unlimited, &t), CT_ADMIT);
	ck_assert_int_eq(t.counted, 0);
}
END_TEST

/*
 * Random acquires, releases and dead owners against a model of what must
 * be counted: every count matches after every step, and the table is empty
 * at the end.
 */
#define NADDR	40
#define NHELD	400

START_TEST(model)
{
	static const char *const v6[] = { "2001:db8::1", "2001:db8::2", "2001:db8:1::1", "::1" };
	struct held { struct ct_ticket t; int owner, lsn, addr; } held[NHELD];
	char addrs[NADDR][32];
	int nheld = 0;

	srandom(12345);
	for (int i = 0; i < NADDR; i++) {
		if (i < 4)
			snprintf(addrs[i], sizeof(addrs[i]), "%s", v6[i]);
		else
			snprintf(addrs[i], sizeof(addrs[i]), "192.0.2.%d", i);
	}
	for (int step = 0; step < 20000; step++) {
		int op = random() % 10;

		if (op < 5 && nheld < NHELD) {
			struct held *h = &held[nheld++];

			h->owner = random() % 4;
			h->lsn = random() % 2;
			h->addr = random() % NADDR;
			ck_assert_int_eq(ct_acquire(h->lsn, h->owner, test_sockaddr(addrs[h->addr]),
			    &unlimited, &h->t), CT_ADMIT);
		} else if (op < 9 && nheld > 0) {
			int k = random() % nheld;

			ct_release(held[k].owner, &held[k].t);
			held[k] = held[--nheld];
		} else if (op == 9) {
			int owner = random() % 4;

			ct_forget_owner(owner);
			for (int k = 0; k < nheld; k++)
				if (held[k].owner == owner)
					held[k--] = held[--nheld];
		}
		if (step % 97 != 0)
			continue;
		for (int lsn = 0; lsn < 2; lsn++) {
			long all = 0;

			for (int a = 0; a < NADDR; a++) {
				long n = 0;

				for (int k = 0; k < nheld; k++)
					n += held[k].lsn == lsn && held[k].addr == a;
				/* 2001:db8::1 and ::2 share a /64 */
				if (a == 0 || a == 1)
					for (int k = 0; k < nheld; k++)
						n += held[k].lsn == lsn && held[k].addr == 1 - a;
				ck_assert_int_eq(count_of(lsn, addrs[a]), n);
			}
			for (int k = 0; k < nheld; k++)
				all += held[k].lsn == lsn;
			ck_assert_int_eq(count_of(lsn, NULL), all);
		}
	}
	for (int k = 0; k < nheld; k++)
		ct_release(held[k].owner, &held[k].t);
	ck_assert_uint_eq(ct_used(), 0);
}
END_TEST

/*
 * A worker killed at any moment, perhaps holding the lock in the middle of
 * an update: once the master forgets it, the totals are exactly what the
 * living hold, and the table still works.
 */
START_TEST(killed_owner)
{
	struct ct_ticket mine[3];
	struct sockaddr_storage a1, a2;

	for (int i = 0; i < 3; i++)
		take(0, 0, "10.0.0.1", &unlimited, &mine[i]);
	/* made here: the child must not ck_assert (Check's channel is the parent's) */
	memcpy(&a1, test_sockaddr("10.0.0.1"), sizeof(a1));
	memcpy(&a2, test_sockaddr("10.0.0.2"), sizeof(a2));
	for (int round = 0; round < 200; round++) {
		struct timespec ts = { 0, (1 + round % 10) * 100000L };
		pid_t pid = fork();

		ck_assert_int_ne(pid, -1);
		if (pid == 0) {
			struct ct_ticket t;

			for (;;) {
				ct_acquire(0, 5, (struct sockaddr *)&a1, &unlimited, &t);
				ct_acquire(0, 5, (struct sockaddr *)&a2, &unlimited, &t);
				ct_release(5, &t);
			}
		}
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		ct_forget_owner(5);
		ck_assert_int_eq(count_of(0, NULL), 3);
		ck_assert_int_eq(count_of(0, "10.0.0.1"), 3);
		ck_assert_int_eq(count_of(0, "10.0.0.2"), 0);
		ck_assert_uint_eq(ct_used(), 4);	/* mine and their totals, once each */
	}
	for (int i = 0; i < 3; i++)
		ct_release(0, &mine[i]);
	ck_assert_uint_eq(ct_used(), 0);
}
END_TEST

Suite *
conntab_suite(void)
{
	Suite *s = suite_create("conntab");
	TCase *tc = tcase_create("conntab");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, max_connections);
	tcase_add_test(tc, per_ip);
	tcase_add_test(tc, ipv6_prefix);
	tcase_add_test(tc, release_empties);
	tcase_add_test(tc, forget_owner);
	tcase_add_test(tc, address_later);
	tcase_add_test(tc, address_later_forgotten);
	tcase_add_test(tc, table_full);
	tcase_add_test(tc, model);
	tcase_add_test(tc, killed_owner);
	suite_add_tcase(s, tc);
	return s;
}
