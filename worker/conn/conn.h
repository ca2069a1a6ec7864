/*
 * conn: one client connection in a worker (worker/conn/: the connections
 * layer, the top of the worker's layers but the worker itself).
 *
 * The files of this folder, top down:
 *   accept.c        takes connections off the listening sockets (caps,
 *                   allow/deny, out of descriptors) and starts each with
 *                   its listener's handlers
 *   dgram.c         beside accept.c, without connections: reads the UDP
 *                   and unixgram sockets, each datagram a record
 *   proxy_wait.c    the handler that reads a PROXY header before the stream
 *   stream.c        the handler of plain record streams: framing, records
 *   relp_session.c  the handler of RELP sessions: commands, answers held
 *                   until the sinks wrote what they acknowledge
 *   handover.c      beside accept.c: a draining worker hands its plain
 *                   connections to the next generation, and every worker
 *                   takes those handed to it (conn_save, conn_adopt)
 *   conn.c          the connection itself: reads, timers, the write path,
 *                   counting, closing
 *   transport.h     what conn.c reads and sends through: transport.c (plain)
 *                   and tls.c (TLS, with its handshake before the handler
 *                   reads, and handshake_timeout)
 *
 * A connection reads what its client sends and hands it to its handler (a
 * protocol plugged in through struct conn_handler, the only way conn.c
 * reaches the files above it).  The handler turns the bytes into records
 * (conn_record, into the pipeline) and, for RELP, answers through the
 * connection's write path (conn_out, conn_flush).
 *
 * A connection is never freed under a caller's feet: conn_close marks it
 * closed (its descriptor, events and caps are given back at once) and it is
 * released at the end of the loop's turn.  Callers that go on after a call
 * that may close check conn_closed().
 *
 * May use: common/, protocol/, pipeline/, sinks/.  Never calls the worker:
 * it tells it that connections closed through the hook given to conn_init.
 */
#ifndef INGESTD_CONN_H
#define INGESTD_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "conntab.h"
#include "obuf.h"

#define CONN_OUT_MAX	(256 * 1024)	/* unsent output before reading pauses */

struct conn;

/* A protocol: what a connection does with the bytes it reads.  NULL: nothing. */
struct conn_handler {
	const char *name;
	int	(*start)(struct conn *);	/* its state (conn_set_state); -1: no memory */
	/* Bytes from the client: 0, or -1 with *why when they break the protocol. */
	int	(*feed)(struct conn *, const char *data, size_t n, const char **why);
	void	(*eof)(struct conn *);		/* the client closed: what is pending */
	void	(*read_end)(struct conn *);	/* after one wake-up's reads */
	int	(*in_record)(const struct conn *);	/* record_timeout runs */
	int	(*want_read)(const struct conn *);	/* NULL: read whenever the sinks may take more */
	int	(*waiting)(const struct conn *);	/* the server holds it up: timers wait */
	void	(*sent)(struct conn *);		/* its output went out to the last byte */
	void	(*drain)(struct conn *);	/* the worker drains: end the session */
	void	(*free)(struct conn *);
	/* A reload hands the connection to the next generation: its state as bytes, and back. */
	int	(*save)(const struct conn *, struct obuf *);	/* NULL: it cannot go */
	int	(*restore)(struct conn *, const char *, size_t);	/* instead of start */
	const char *timeout_why;		/* what a record_timeout closes it for */
};

struct conn_hooks {
	void	(*closed)(void);	/* connections were released this turn */
};

void		 conn_init(const struct conn_hooks *);
struct conn	*conn_new(int fd, const struct listener_cfg *, const struct sockaddr *, socklen_t,
		    const struct ct_ticket *, const struct conn_handler *,
		    const struct conn_handler *next);
int		 conn_count(void);
void		 conn_set_reading(int on);
void		 conn_close(struct conn *, const char *reason);
void		 conn_close_all(const char *reason);
void		 conn_drain_all(void);
void		 conn_linger_all(void);
void		 conn_refusal(const struct listener_cfg *, const char *peer, enum ct_refusal);

/* Hand-over (handover.c, accept.c): a connection leaves as bytes and a descriptor. */
void		 conn_each(void (*fn)(struct conn *, void *), void *arg);
int		 conn_fd(const struct conn *);
int		 conn_save(const struct conn *, struct obuf *);
void		 conn_handed(struct conn *);
int		 conn_saved_peer(const char *saved, size_t n, struct sockaddr_storage *,
		    socklen_t *, int *per_ip);
struct conn	*conn_adopt(int fd, const struct listener_cfg *, const struct ct_ticket *,
		    const struct conn_handler *, const char *saved, size_t n, const char *refused);

/* For handlers. */
void		*conn_state(const struct conn *);
void		 conn_set_state(struct conn *, void *);
const struct listener_cfg *conn_listener(const struct conn *);
const char	*conn_peer(const struct conn *);
int		 conn_sockaddr(const struct conn *, struct sockaddr_storage *, socklen_t *);
int		 conn_closed(const struct conn *);
int		 conn_record(struct conn *, const char *rec, size_t len, int truncated);
void		 conn_framing_error(struct conn *, const char *why);
void		 conn_protocol_error(struct conn *, const char *why);
int		 conn_set_peer(struct conn *, const struct sockaddr *, socklen_t);
struct ct_ticket *conn_ticket(struct conn *);
int		 conn_switch(struct conn *, const char *rest, size_t n);
struct obuf	*conn_out(struct conn *);
void		 conn_flush(struct conn *);
size_t		 conn_unsent(const struct conn *);

#endif
