/*
 * worker: one worker process.  It creates its own event_base after the
 * fork, accepts on the listeners it was given, serves connections, and
 * obeys its master's channel.
 */
#ifndef INGESTD_WORKER_H
#define INGESTD_WORKER_H

#include "config.h"
#include "event.h"

struct event_base;
struct worker_stats;

struct worker {
	struct event_base	*base;
	const struct config	*cf;
	unsigned		 gen;
	int			 id;
	int			 owner;		/* its slot, owner of its counts in conntab */
	struct worker_stats	*stats;		/* its counters, in shared memory */
	int			 draining;
	int			 stopping;	/* fast stop: give the sinks one second */
	char			 name[48];	/* "worker 3 (generation 2)" for messages */
	struct event_meta	 meta;		/* receive time of the current read */
};

/* What the master hands a new worker. */
struct worker_start {
	const struct config	*cf;
	unsigned		 gen;
	int			 id;
	int			 owner;
	int			 chan;				/* the master's channel */
	int			 fds[CFG_MAX_LISTENERS];	/* socket per listener */
	int			 lsn_ids[CFG_MAX_LISTENERS];	/* conntab id per listener */
};

extern struct worker wrk;

void	 worker_main(const struct worker_start *) __attribute__((noreturn));
void	 worker_conn_closed(void);

#endif
