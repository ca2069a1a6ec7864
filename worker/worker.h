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

struct worker {
	struct event_base	*base;
	const struct config	*cf;
	unsigned		 gen;
	int			 id;
	int			 draining;
	int			 stopping;	/* fast stop: give the sinks one second */
	char			 name[48];	/* "worker 3 (generation 2)" for messages */
	struct event_meta	 meta;		/* receive time of the current read */
};

extern struct worker wrk;

void	 worker_main(const struct config *, unsigned gen, int id, int chan, const int *fds)
	    __attribute__((noreturn));
void	 worker_conn_closed(void);

#endif
