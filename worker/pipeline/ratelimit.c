/*
 * ratelimit: token buckets per (listener, client address), in a table of
 * RL_SLOTS entries that each worker keeps for the clients it serves.
 *
 * A bucket holds records and bytes in thousandths, so that refilling by
 * the millisecond keeps the fractions: a rate of r per second adds r
 * thousandths a millisecond, up to r * rate_burst.  A client in debt (a
 * read brings many records at once) pays it off at its rate.  A new entry
 * holds a full bucket; should a client's RL_PROBE neighbours all be taken,
 * the one quiet the longest is given to it, and the client it served
 * starts again from a full bucket when it comes back.
 */
#include <string.h>

#include "conntab.h"
#include "proc.h"
#include "ratelimit.h"

#define RL_SLOTS	4096	/* clients a worker tracks at once; a power of 2 */
#define RL_PROBE	8	/* entries looked at for a client */

struct rl_entry {
	uint8_t		 key[16];	/* the address as counted (conntab's form) */
	int		 lsn;		/* listener index + 1; 0: free */
	int64_t		 last_ms;	/* the last refill */
	int64_t		 records, bytes;	/* thousandths */
};

static struct rl_entry table[RL_SLOTS];

int
ratelimit_on(const struct listener_cfg *l)
{
	return l->rate_records > 0 || l->rate_bytes > 0;
}

static uint32_t
hash(const uint8_t key[16], int lsn)
{
	uint32_t h = 2166136261u ^ (uint32_t)lsn;

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h;
}

/* What a full bucket of l's holds: rate_burst of its rates, and at least one record. */
static int64_t
cap_records(const struct listener_cfg *l)
{
	int64_t n = (int64_t)l->rate_records * l->rate_burst_ms;

	return n > 1000 ? n : 1000;
}

static int64_t
cap_bytes(const struct listener_cfg *l)
{
	return (int64_t)l->rate_bytes * l->rate_burst_ms;
}

/* A full bucket, for a client new (or quiet for rate_burst). */
static void
fill(struct rl_entry *e, const struct listener_cfg *l, int64_t now_ms)
{
	e->records = cap_records(l);
	e->bytes = cap_bytes(l);
	e->last_ms = now_ms;
}

/* Refill by the time passed since the last, up to the burst. */
static void
refill(struct rl_entry *e, const struct listener_cfg *l, int64_t now_ms)
{
	int64_t dt = now_ms - e->last_ms, rcap = cap_records(l), bcap = cap_bytes(l);

	if (dt <= 0)
		return;
	if (dt > 86400000)	/* a day: full whatever the debt, and no overflow */
		dt = 86400000;
	e->records += (int64_t)l->rate_records * dt;
	e->bytes += (int64_t)l->rate_bytes * dt;
	if (e->records > rcap)
		e->records = rcap;
	if (e->bytes > bcap)
		e->bytes = bcap;
	e->last_ms = now_ms;
}

/* sa's bucket on l, refilled to now. */
static struct rl_entry *
bucket(const struct listener_cfg *l, const struct sockaddr *sa, int64_t now_ms)
{
	int lsn = (int)(l - proc.cf->listeners) + 1;
	struct rl_entry *e, *spare = NULL;
	uint8_t key[16];
	uint32_t h;

	ct_addr_key(sa, l->ipv6_prefix, key);
	h = hash(key, lsn);
	for (int i = 0; i < RL_PROBE; i++) {
		e = &table[(h + i) & (RL_SLOTS - 1)];
		if (e->lsn == lsn && memcmp(e->key, key, 16) == 0) {
			refill(e, l, now_ms);
			return e;
		}
		if (spare == NULL || e->lsn == 0 || (spare->lsn != 0 && e->last_ms < spare->last_ms))
			spare = e;
	}
	memcpy(spare->key, key, 16);
	spare->lsn = lsn;
	fill(spare, l, now_ms);
	return spare;
}

/* The ms until a bucket in debt is out of it (d thousandths at rate thousandths a ms). */
static long
wait_ms(int64_t d, long rate)
{
	return d >= 0 || rate <= 0 ? 0 : (long)((-d + rate - 1) / rate);
}

long
ratelimit_charge(const struct listener_cfg *l, const struct sockaddr *sa, uint64_t records,
    size_t bytes, int64_t now_ms)
{
	struct rl_entry *e = bucket(l, sa, now_ms);
	long a, b;

	if (l->rate_records > 0)
		e->records -= (int64_t)records * 1000;
	if (l->rate_bytes > 0)
		e->bytes -= (int64_t)bytes * 1000;
	a = wait_ms(e->records, l->rate_records);
	b = wait_ms(e->bytes, l->rate_bytes);
	return a > b ? a : b;
}

int
ratelimit_admit(const struct listener_cfg *l, const struct sockaddr *sa, size_t len,
    int64_t now_ms)
{
	struct rl_entry *e = bucket(l, sa, now_ms);

	if ((l->rate_records > 0 && e->records < 1000) ||
	    (l->rate_bytes > 0 && e->bytes < (int64_t)len * 1000))
		return 0;
	if (l->rate_records > 0)
		e->records -= 1000;
	if (l->rate_bytes > 0)
		e->bytes -= (int64_t)len * 1000;
	return 1;
}
