/*
 * accept: the worker's side of the listening sockets: new connections, each
 * started with its listener's handlers (see conn.h for the folder).
 */
#ifndef INGESTD_ACCEPT_H
#define INGESTD_ACCEPT_H

#include <stddef.h>

#include "addr.h"
#include "config.h"

int	 acc_init(const struct config *, const int *fds, const int *lsn_ids);
void	 acc_resume(void);
void	 acc_close(int take_queued);
int	 acc_adopt(int fd, const struct addr *listen, const char *saved, size_t n);

#endif
