/*
 * driver: what the sinks' queue core (sink.c) shares with the drivers that
 * write to one kind of destination, and the driver table (drivers.c).
 *
 * sink.c owns the queue (whole units: lines, or octet-counted frames),
 * batching, retries with back-off, back-pressure and the counters; a
 * driver only writes from the head of the queue, and keeps what it needs
 * (descriptors, connections, its client library's context) in a state of
 * its own that start() allocates and close() frees.
 */
#ifndef INGESTD_SINK_DRIVER_H
#define INGESTD_SINK_DRIVER_H

#include <event2/event.h>
#include <limits.h>
#include <sys/types.h>

#include "config.h"
#include "log.h"
#include "obuf.h"
#include "stats.h"

struct sink;

struct sink_driver {
	const char	*name;
	/* Set s->state up; on failure the sink stays, and its writes fail and retry. */
	int	(*start)(struct sink *);
	/*
	 * Write from the head of s->q.  Returns the bytes of whole units now
	 * written (consumed from the queue), or -1 with errno set (the queue is
	 * kept and retried after a back-off).  A driver that waits for its
	 * destination (a socket full or still connecting, answers to come)
	 * sets *wait, and calls sink_writable() or sink_consumed() later.
	 */
	ssize_t	(*write)(struct sink *, int *wait);
	int	(*sync)(struct sink *);		/* NULL: nothing to sync */
	void	(*reopen)(struct sink *);	/* SIGUSR1; NULL: nothing to reopen */
	void	(*close)(struct sink *);
};

struct sink {
	const struct sink_cfg	*cf;
	const struct sink_driver *drv;
	void			*state;		/* the driver's own */
	struct obuf		 q;		/* whole units not yet written */
	char			 where[PATH_MAX];	/* for messages: a path or an address */
	struct event		*timer;		/* flush_interval, or retry back-off */
	struct event		*spill;		/* with a spool: flush_interval of in */
	long			 retry_ms;	/* 0 while writes succeed */
	int			 failing;	/* said so in the log, not yet that it recovered */
	int			 blocked;	/* a "block" sink over its queue */
	int			 unsynced;	/* written since the last sync */
	uint64_t		 done;		/* bytes written (with sync = always: synced) */
	/* with a spool: units are taken into in, written to the spool, read back into q */
	struct spool		*spool;		/* NULL: none, or not open yet */
	struct obuf		 in;		/* taken, not yet in the spool */
	uint64_t		 spooled;	/* bytes of in written to the spool (and synced) */
	int			 closing;	/* exit: the spool is read no more */
	struct sink_stats	*st;		/* in the worker's stats slot */
	struct log_limit	 errlog, droplog;
};

/* The driver table: the driver of a sink type (enum sink_type). */
const struct sink_driver *sink_driver_of(int type);

extern const struct sink_driver sink_file_driver, sink_forward_driver, sink_redis_driver,
    sink_nats_driver;

void	 sink_writable(struct sink *);
void	 sink_consumed(struct sink *, size_t n);
void	 sink_failed(struct sink *);
void	 sink_retry_soon(struct sink *, long ms);
size_t	 sink_unit_len(const struct sink *, const char *p, size_t avail);

#endif
