/*
 * fuzz_httphead: an HTTP request head parses the same however it arrives.
 *
 * The input is given whole to one parser, as a buffer that grows in two
 * steps (cut where the data says) to another, and a byte at a time to a
 * third.  All three must agree on the outcome, on where the head ends, on
 * the method, path and version, and on the status and reason of a refusal.
 * A complete head ends with a LF inside the input; its method and path lie
 * in the input (or the path is "/" for an absolute URI without one) and the
 * path holds no query; a refusal is a 400 or a 505.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "httphead.h"

struct outcome {
	int		 rc;
	struct httphead	 h;
};

/* The buffer d grows to first bytes (0: whole), then by step bytes (0: to n). */
static void
run(struct outcome *o, const char *d, size_t n, size_t first, size_t step)
{
	size_t len = first ? first : step ? step : n;

	httphead_init(&o->h);
	for (o->rc = 0; o->rc == 0; len += step ? step : n) {
		if (len > n)
			len = n;
		o->rc = httphead_feed(&o->h, d, len);
		if (len == n)
			break;
	}
}

static int
inside(const char *p, size_t plen, const char *d, size_t n)
{
	return p >= d && p + plen <= d + n;
}

static void
check(const struct outcome *o, const char *d, size_t n)
{
	const struct httphead *h = &o->h;

	if (o->rc == -1 && ((h->status != 400 && h->status != 505) || h->why == NULL))
		abort();
	if (o->rc != 1)
		return;
	if (h->len == 0 || h->len > n || d[h->len - 1] != '\n')
		abort();
	if (h->methodlen == 0 || !inside(h->method, h->methodlen, d, h->len))
		abort();
	if (h->pathlen == 0 || (!inside(h->path, h->pathlen, d, h->len) && strcmp(h->path, "/")))
		abort();
	if (memchr(h->path, '?', h->pathlen) || (h->minor != 0 && h->minor != 1))
		abort();
}

static void
same(const struct outcome *a, const struct outcome *b)
{
	if (a->rc != b->rc)
		abort();
	if (a->rc == -1 && (a->h.status != b->h.status || strcmp(a->h.why, b->h.why) != 0))
		abort();
	if (a->rc != 1)
		return;
	if (a->h.len != b->h.len || a->h.minor != b->h.minor || a->h.method != b->h.method ||
	    a->h.methodlen != b->h.methodlen || a->h.pathlen != b->h.pathlen ||
	    memcmp(a->h.path, b->h.path, a->h.pathlen) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct outcome whole, cut, bytes;
	const char *d = (const char *)data;

	if (size == 0)
		return 0;
	run(&whole, d, size, 0, 0);
	check(&whole, d, size);
	run(&cut, d, size, 1 + fnv(FNV_OFFSET, d, size) % size, 0);
	same(&whole, &cut);
	if (size <= BYTEWISE_MAX) {
		run(&bytes, d, size, 0, 1);
		same(&whole, &bytes);
	}
	return 0;
}
