/*
 * proc: what every layer of a worker may know of the process it runs in:
 * its event loop, its configuration generation, its counters and its name
 * in messages.  The worker sets it once, after the fork, before any layer
 * starts; the layers below read it and never change it.  It is the small,
 * named set of global state DESIGN.md allows, in one place.
 */
#ifndef INGESTD_PROC_H
#define INGESTD_PROC_H

struct config;
struct event_base;
struct worker_stats;

struct proc {
	struct event_base	*base;		/* the process's loop */
	const struct config	*cf;		/* its configuration generation */
	struct worker_stats	*stats;		/* its counters, in shared memory */
	int			 slot;		/* its entry in the master's table: owner in conntab */
	char			 name[48];	/* "worker 3 (generation 2)": prefix of its messages */
};

extern struct proc proc;

#endif
