/*
 * http: a small HTTP/1.0 and 1.1 server in the master's event loop, for the
 * stats endpoint.  It knows nothing of what it serves: a handler given the
 * path of a GET or HEAD request puts the body in an evbuffer, names its
 * content type and returns the status.
 *
 * Everything it holds is bounded, whatever the clients do: at most
 * HTTP_MAX_CONNS connections, each with a fixed HTTP_HEAD_MAX-byte buffer
 * for its request head and one response; a head must be complete within
 * HTTP_HEAD_MS of the accept (bytes that trickle in do not extend it) and a
 * response written within HTTP_SEND_MS.  Every response closes its
 * connection, and nothing after the head (a body, a pipelined request) is
 * read.  See http.c for what each refusal looks like to the client.
 */
#ifndef INGESTD_HTTP_H
#define INGESTD_HTTP_H

#include <stddef.h>
#include <stdint.h>

/*
 * 32 connections: a scraper or two and an operator's curl need a handful;
 * the cap bounds the master's share to 32 request buffers and responses.
 */
#define HTTP_MAX_CONNS	32
#define HTTP_HEAD_MAX	8192	/* request line and header lines, in bytes */
#define HTTP_HEAD_MS	5000	/* from the accept to the end of the head */
#define HTTP_SEND_MS	10000	/* from the end of the head to the response's last byte */

struct event_base;
struct evbuffer;
struct http_server;

/* The status (200, 404...); body and *type are the response's.  path is not NUL-terminated. */
typedef int http_handler_fn(void *arg, const char *path, size_t pathlen, struct evbuffer *body,
    const char **type);

/* Connections closed by a limit, for the life of the server. */
struct http_counts {
	uint64_t	 evicted;	/* head incomplete, made room for a new connection */
	uint64_t	 busy;		/* closed at accept: every connection was being answered */
	uint64_t	 request_timeouts;	/* head not complete within HTTP_HEAD_MS */
	uint64_t	 send_timeouts;	/* response not written within HTTP_SEND_MS */
	uint64_t	 too_large;	/* head larger than HTTP_HEAD_MAX: 431 */
	uint64_t	 bad_requests;	/* malformed: 400, 505 */
};

struct http_server	*http_new(struct event_base *, const char *name, http_handler_fn *,
			    void *arg);
int			 http_listen(struct http_server *, int fd);
int			 http_fd(const struct http_server *);
const struct http_counts *http_counts(const struct http_server *);
void			 http_close_in_child(const struct http_server *);
void			 http_free(struct http_server *);

#endif
