/*
 * accept: the worker's side of the listening sockets.
 */
#ifndef INGESTD_ACCEPT_H
#define INGESTD_ACCEPT_H

#include "config.h"

int	 acc_init(const struct config *, const int *fds);
void	 acc_resume(void);
void	 acc_close(int take_queued);

#endif
