/*
 * fuzz_proxy: a PROXY protocol header parses the same however it is cut.
 *
 * The input is fed whole to one parser, in two pieces (cut where the data
 * says) to another, and byte by byte to a third.  All three must agree on
 * the outcome, on where the header ends, on its reason when it is refused
 * and on the addresses; a header never ends beyond 107 bytes (v1) or
 * 16 + its length (v2), and an address found is IPv4 or IPv6.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proxy.h"

struct outcome {
	int		 rc;
	size_t		 used;		/* header bytes, when rc is 1 */
	const char	*why;
	struct proxy_parser p;
};

/* Feed d in pieces of at most step bytes (0: whole) after a first one of first bytes. */
static void
run(struct outcome *o, const char *d, size_t n, size_t first, size_t step)
{
	size_t at = 0;

	memset(o, 0, sizeof(*o));
	proxy_init(&o->p);
	while (o->rc == 0 && at < n) {
		size_t piece = at == 0 && first ? first : step ? step : n - at, used = 0;

		if (piece > n - at)
			piece = n - at;
		o->rc = proxy_feed(&o->p, d + at, piece, &used, &o->why);
		if (used > piece)
			abort();
		at += used;
		if (o->rc == 0 && used != piece)
			abort();	/* more wanted, yet not everything taken */
	}
	o->used = at;
}

static void
check(const struct outcome *o)
{
	const struct proxy_parser *p = &o->p;

	if (o->rc == -1 && o->why == NULL)
		abort();
	if (o->rc != 1)
		return;
	if (p->version == 1 && o->used > PROXY_V1_MAX)
		abort();
	if (p->version == 2 && o->used != p->total)
		abort();
	if (!p->local && p->src.ss_family != AF_INET && p->src.ss_family != AF_INET6)
		abort();
	if (!p->local && p->src.ss_family != p->dst.ss_family)
		abort();
}

static void
same(const struct outcome *a, const struct outcome *b)
{
	if (a->rc != b->rc)
		abort();
	if (a->rc == -1 && strcmp(a->why, b->why) != 0)
		abort();
	if (a->rc != 1)
		return;
	if (a->used != b->used || a->p.local != b->p.local)
		abort();
	if (!a->p.local && (a->p.srclen != b->p.srclen ||
	    memcmp(&a->p.src, &b->p.src, a->p.srclen) != 0 ||
	    memcmp(&a->p.dst, &b->p.dst, a->p.dstlen) != 0))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct outcome whole, cut, bytes;
	const char *d = (const char *)data;

	run(&whole, d, size, 0, 0);
	check(&whole);
	run(&cut, d, size, 1 + fnv(FNV_OFFSET, d, size) % (size + 1), 0);
	same(&whole, &cut);
	if (size <= 4096) {
		run(&bytes, d, size, 0, 1);
		same(&whole, &bytes);
	}
	return 0;
}
