/*
 * sink: where a worker's events go (worker/sinks/: the sinks layer).
 *
 * The layer under the pipeline.  Each sink has a queue of whole units
 * (event lines, or octet-counted frames) in one buffer, written in batches
 * (SINK_BATCH bytes, or flush_interval after the first unit of a batch, or
 * at the end of the loop's turn) by its driver: one file per destination
 * (file.c: files and stdout; forward.c: upstream collectors; redis.c: Redis
 * Streams), behind the interface of driver.h, listed in drivers.c.  A
 * failing write is retried with a back-off; meanwhile the queue fills, and
 * a full "block" sink asks the worker to stop reading from its clients
 * until the queue is half empty.
 *
 * May use: common/, protocol/.  Never calls the layers above: it tells the
 * worker through the hooks given to sink_open_all that a sink blocks or
 * unblocks reading, and that it progressed (wrote what acknowledgements
 * wait for).
 *
 * DESIGN: a disk spool goes beside the queue core here (spool.c: what the
 * queue cannot hold or the driver cannot send yet, on disk, before the
 * driver); a new destination is a driver (nats.c), one line in drivers.c
 * and its settings in the config table.
 */
#ifndef INGESTD_SINK_H
#define INGESTD_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "obuf.h"
#include "stats.h"

#define SINK_BATCH	(256 * 1024)

struct sink_hooks {
	void	(*reading)(int on);	/* 0: a "block" sink is full; 1: every one has room again */
	void	(*progressed)(void);	/* a sink wrote (and synced) more: answers may go out */
};

int		 sink_open_all(const struct config *, const struct sink_hooks *);
struct obuf	*sink_reserve(int idx, size_t need);
void		 sink_commit(int idx);
void		 sink_dropped(int idx);
uint64_t	 sink_mark(int idx);
int		 sink_reached(int idx, uint64_t mark);
void		 sink_flush_soon(int idx);
void		 sink_flush_all(void);
void		 sink_reopen_all(void);
void		 sink_close_all(long deadline_ms);
const struct sink_stats *sink_stats(int idx);

#endif
