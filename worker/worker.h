/*
 * worker: one worker process, the top of the worker's layers.
 *
 * It creates its own event_base after the fork, accepts on the listeners
 * it was given, serves connections, and obeys its master's channel.  It is
 * the one place that knows every layer: it sets up proc (common/proc.h),
 * starts the sinks, the RELP sessions, the connections and the acceptors,
 * and wires the hooks through which the lower layers report upward:
 *
 *   sinks   --reading(on)------> connections and datagram readers stop or resume reading
 *           --progressed()-----> RELP sessions send the answers now due
 *   conn    --closed()---------> accept again, or leave the loop when draining
 *
 * On a reload its plain connections go to the next generation instead of
 * being closed (worker/conn/handover.c), to the workers the master names
 * on the channel.
 *
 * The layers, top down, each in its folder, each compiled with the include
 * paths of the layers below it only (see the Makefile):
 *
 *   worker/          this process: its loop, signals, channel, drain
 *   worker/conn/     accept, connections, their handlers (stream, RELP, PROXY),
 *                    datagram readers (UDP, unixgram)
 *   worker/pipeline/ a record becomes an event and goes to its sinks
 *   worker/sinks/    queues and the drivers that write them out
 *   worker/protocol/ pure parsers: framing, syslog, JSON, PROXY, RELP frames
 *   common/          shared with the master: config, log, stats, conntab...
 */
#ifndef INGESTD_WORKER_H
#define INGESTD_WORKER_H

#include "config.h"

/* What the master hands a new worker. */
struct worker_start {
	const struct config	*cf;
	unsigned		 gen;
	int			 id;
	int			 owner;				/* its slot in the master's table */
	int			 chan;				/* the master's channel */
	int			 inbox;				/* connections handed to it */
	int			 fds[CFG_MAX_LISTENERS];	/* socket per listener */
	int			 lsn_ids[CFG_MAX_LISTENERS];	/* conntab id per listener */
};

void	 worker_main(const struct worker_start *) __attribute__((noreturn));

#endif
