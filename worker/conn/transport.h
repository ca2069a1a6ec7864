/*
 * transport: how a connection's bytes cross the wire, plain (transport.c)
 * or TLS (tls.c).  conn.c reads, sends, shuts and frees through these
 * operations only, so it has no TLS branches of its own.
 *
 * recv and send return a count, 0 at the end of the stream (recv), or -1
 * with errno: EAGAIN when the operation must wait for the readiness that
 * waits() names (TLS may read to send, or send to read), anything else a
 * failure that closes the connection (t->why says what, when errno cannot).
 */
#ifndef INGESTD_TRANSPORT_H
#define INGESTD_TRANSPORT_H

#include <sys/types.h>

#include "config.h"

struct transport;

struct transport_ops {
	/* 1 done, 0 waiting for waits(t, 0), -1 failed (t->why, t->failure) */
	int	(*handshake)(struct transport *, int fd);
	ssize_t	(*recv)(struct transport *, int fd, char *, size_t);
	ssize_t	(*send)(struct transport *, int fd, const char *, size_t);
	short	(*waits)(const struct transport *, int sending);	/* EV_READ or EV_WRITE */
	int	(*pending)(const struct transport *);	/* bytes to read that epoll cannot see */
	int	(*partial)(const struct transport *);	/* part of a record held: its clock runs */
	const char *(*truncation)(const struct transport *);	/* how a stream ended, if not cleanly */
	int	(*shutdown)(struct transport *, int fd);	/* our end of the stream (FIN) */
	void	(*free)(struct transport *);	/* TLS: close_notify first, unless it failed */
};

struct transport {
	const struct transport_ops *ops;
	const char	*why;		/* a failure, in words */
	int		 failure;	/* a failed handshake: enum tls_failure */
	const char	*peer_id;	/* a TLS client's identity, once known; NULL: none */
	int		 resumed;	/* the handshake resumed a session */
};

extern struct transport plain_transport;	/* shared by every plain connection */

struct transport *tls_transport_new(const struct tls_cfg *, const char *rest, size_t n);

#endif
