/*
 * fdmsg: one message with descriptors (SCM_RIGHTS) on a SOCK_SEQPACKET
 * socket: the master's channels, a worker's hand-over inbox, the socket
 * between the two masters of a binary upgrade.
 */
#ifndef INGESTD_FDMSG_H
#define INGESTD_FDMSG_H

#include <stddef.h>
#include <sys/types.h>

#define FDMSG_MAX_FDS	64

ssize_t	 fdmsg_send(int sock, const void *p, size_t n, const int *fds, int nfds);
ssize_t	 fdmsg_recv(int sock, void *buf, size_t size, int *fds, int *nfds, int *truncated);

#endif
