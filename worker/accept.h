/*
 * accept: the worker's side of the listening sockets.
 */
#ifndef INGESTD_ACCEPT_H
#define INGESTD_ACCEPT_H

#include <stdint.h>

#include "conntab.h"
#include "worker.h"

int	 acc_init(const struct worker_start *);
void	 acc_resume(void);
void	 acc_close(int take_queued);
uint64_t acc_refused(enum ct_refusal);
void	 acc_refusal(const struct listener_cfg *, const char *peer, enum ct_refusal);

#endif
