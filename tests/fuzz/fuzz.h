/*
 * fuzz.h: what the libFuzzer harnesses share: an FNV-1a hash to compare the
 * outputs of the same input fed in different pieces, and (for the framing
 * and RELP parsers) the running result those comparisons are made on.
 */
#ifndef INGESTD_FUZZ_H
#define INGESTD_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET	1469598103934665603ULL
#define FNV_PRIME	1099511628211ULL
#define BYTEWISE_MAX	4096	/* longest input also fed byte by byte */

static inline uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	while (n-- > 0)
		h = (h ^ *s++) * FNV_PRIME;
	return h;
}

/* What a parser gave for one way of feeding the input. */
struct acc {
	uint64_t	 h;	/* of everything it handed out, in order */
	size_t		 n;	/* how many records or frames */
	size_t		 max;	/* max_record */
	int		 rc;
	const char	*why;
};

/* Two ways of feeding the same input must give the same result. */
static inline void
acc_same(const struct acc *a, const struct acc *b)
{
	if (a->h != b->h || a->n != b->n || a->rc != b->rc)
		abort();
	if (a->rc != 0 && strcmp(a->why, b->why) != 0)
		abort();
}

#endif
