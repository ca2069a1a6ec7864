/*
 * metrics: the master's /metrics (Prometheus) and /stats (JSON) endpoint.
 */
#ifndef INGESTD_METRICS_H
#define INGESTD_METRICS_H

#include <stdint.h>

#include "config.h"
#include "slots.h"

struct event_base;

/* The master's own figures, asked for at each request. */
struct metrics_master {
	unsigned	 generation;	/* the one serving */
	int		 accepting;	/* a worker of it runs (/healthz) */
	uint64_t	 reloads_ok, reloads_failed;
};

void	 metrics_init(struct event_base *, void (*figures)(struct metrics_master *));
void	 metrics_configure(struct config *);
void	 metrics_fold(const struct slot *);
void	 metrics_close_in_child(void);
void	 metrics_stop(void);
void	 metrics_inherit(int fd);
int	 metrics_fd(void);

#endif
