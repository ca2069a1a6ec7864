/*
 * bench_hist: a log-bucketed histogram of durations in microseconds.
 *
 * Values below HIST_SUB are counted exactly; above, each power of two is
 * split into HIST_SUB buckets, so a percentile is within 1/HIST_SUB (1.6%)
 * of the true value over the whole range (up to 2^40 us, 12 days), in a
 * fixed array that the results of several processes add up in.
 */
#ifndef INGESTD_BENCH_HIST_H
#define INGESTD_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS	6
#define HIST_SUB	(1 << HIST_SUB_BITS)
#define HIST_MAX_BITS	40
#define HIST_BUCKETS	((HIST_MAX_BITS - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
	uint64_t	 n, min, max;
	uint64_t	 b[HIST_BUCKETS];
};

void		 hist_add(struct hist *, uint64_t);
void		 hist_merge(struct hist *, const struct hist *);
uint64_t	 hist_pct(const struct hist *, double);

#endif
