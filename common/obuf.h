/*
 * obuf: a growable output buffer of bytes, for what is built to be sent or
 * written: events in a sink's queue, RELP answers, a connection's output.
 *
 * The hot path reserves the most it may append once (obuf_reserve), then
 * appends without checks; the buffer doubles when it must grow.
 */
#ifndef INGESTD_OBUF_H
#define INGESTD_OBUF_H

#include <stddef.h>

struct obuf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

int	 obuf_reserve(struct obuf *, size_t need);
void	 obuf_consume(struct obuf *, size_t n);
void	 obuf_free(struct obuf *);

#endif
