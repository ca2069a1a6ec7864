/*
 * stats: what the workers count, in memory the master maps before the first
 * fork and every worker shares.
 *
 * One slot per entry of the master's worker table, aligned to cache lines
 * and written only by the worker in it, so workers never contend; the
 * master reads every slot to serve /metrics and /stats.  Counters are
 * aligned 64-bit words with one writer each: a reader never sees a torn
 * value.  When a worker dies, the master folds its slot into totals that
 * outlive it, then clears the slot for the next worker.
 */
#ifndef INGESTD_STATS_H
#define INGESTD_STATS_H

#include <stdint.h>

#include "config.h"
#include "conntab.h"

struct conn_totals {
	uint64_t	accepted;
	uint64_t	closed;
	uint64_t	bytes;
	uint64_t	framing_errors;	/* connections closed for a bad frame */
	uint64_t	idle_timeouts;
	uint64_t	record_timeouts;
	uint64_t	send_timeouts;
};

struct record_stats {
	uint64_t	records;
	uint64_t	truncated;
	uint64_t	parse_errors;	/* delivered with parse_error */
	uint64_t	parse_dropped;	/* dropped by on_parse_error = "drop" */
};

struct sink_stats {
	uint64_t	events;		/* lines queued */
	uint64_t	bytes;		/* bytes written */
	uint64_t	dropped;	/* lost to a full "drop" queue, or refused by Redis */
	uint64_t	errors;		/* failed writes */
	uint64_t	queued;		/* bytes in the queue now (a gauge) */
};

struct worker_stats {
	struct conn_totals	 conn;
	struct record_stats	 rec;
	uint64_t		 refused[CT_NREASONS];
	uint64_t		 lsn_records[CFG_MAX_LISTENERS];	/* by listener index */
	uint64_t		 lsn_bytes[CFG_MAX_LISTENERS];
	struct sink_stats	 sink[CFG_MAX_SINKS];		/* by sink index */
} __attribute__((aligned(64)));

int			 stats_init(int nslots);
struct worker_stats	*stats_slot(int slot);
void			 stats_clear(int slot);

#endif
