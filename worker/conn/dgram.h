/*
 * dgram: the worker's datagram listeners (udp://, unixgram:), each
 * datagram a record without a connection (see conn.h for the folder).
 */
#ifndef INGESTD_DGRAM_H
#define INGESTD_DGRAM_H

#include "config.h"

int	 dgram_init(const struct config *, const int *fds);
void	 dgram_set_reading(int on);
void	 dgram_close(void);

#endif
