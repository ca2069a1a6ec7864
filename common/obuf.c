/*
 * obuf: growable output buffers.
 */
#include <stdlib.h>
#include <string.h>

#include "obuf.h"

/* Room for need more bytes, doubling the buffer (4 KiB first); -1 when out of memory. */
int
obuf_reserve(struct obuf *o, size_t need)
{
	size_t cap = o->cap ? o->cap : 4096;
	char *p;

	if (o->len + need <= o->cap)
		return 0;
	while (cap < o->len + need)
		cap *= 2;
	if ((p = realloc(o->p, cap)) == NULL)
		return -1;
	o->p = p;
	o->cap = cap;
	return 0;
}

/* The first n bytes are done with: the rest moves to the front. */
void
obuf_consume(struct obuf *o, size_t n)
{
	o->len -= n;
	memmove(o->p, o->p + n, o->len);
}

void
obuf_free(struct obuf *o)
{
	free(o->p);
	o->p = NULL;
	o->len = o->cap = 0;
}
