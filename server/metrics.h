/*
 * metrics: the master's /metrics (Prometheus) and /stats (JSON) endpoint.
 */
#ifndef INGESTD_METRICS_H
#define INGESTD_METRICS_H

#include "config.h"
#include "slots.h"

void	 metrics_configure(const struct config *);
void	 metrics_fold(const struct slot *);
void	 metrics_close_in_child(void);
void	 metrics_stop(void);
void	 metrics_inherit(int fd);
int	 metrics_fd(void);

#endif
