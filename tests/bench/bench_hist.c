/*
 * bench_hist: a log-bucketed histogram of microseconds (see bench_hist.h).
 */
#include "bench_hist.h"

static unsigned
bucket(uint64_t v)
{
	unsigned e;

	if (v < HIST_SUB)
		return v;
	if (v >> HIST_MAX_BITS)
		v = (1ULL << HIST_MAX_BITS) - 1;
	e = 63 - __builtin_clzll(v);	/* v's highest bit, >= HIST_SUB_BITS */
	return (e - HIST_SUB_BITS + 1) * HIST_SUB +
	    ((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

/* The highest value that falls in bucket i. */
static uint64_t
bucket_high(unsigned i)
{
	unsigned e;

	if (i < HIST_SUB)
		return i;
	e = i / HIST_SUB - 1 + HIST_SUB_BITS;
	return ((uint64_t)(HIST_SUB + i % HIST_SUB) << (e - HIST_SUB_BITS)) +
	    (1ULL << (e - HIST_SUB_BITS)) - 1;
}

void
hist_add(struct hist *h, uint64_t v)
{
	if (h->n == 0 || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->n++;
	h->b[bucket(v)]++;
}

void
hist_merge(struct hist *h, const struct hist *o)
{
	if (o->n == 0)
		return;
	if (h->n == 0 || o->min < h->min)
		h->min = o->min;
	if (o->max > h->max)
		h->max = o->max;
	h->n += o->n;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		h->b[i] += o->b[i];
}

/*
 * The value at quantile q (0.5, 0.99, 0.999): the highest value of the
 * bucket that holds it, but never above the largest value seen nor below
 * the smallest.  0 for an empty histogram.
 */
uint64_t
hist_pct(const struct hist *h, double q)
{
	uint64_t rank, seen = 0, v;

	if (h->n == 0)
		return 0;
	rank = (uint64_t)(q * h->n);
	if (rank < q * h->n || rank < 1)
		rank++;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			v = bucket_high(i);
			return v > h->max ? h->max : v < h->min ? h->min : v;
		}
	}
	return h->max;
}
