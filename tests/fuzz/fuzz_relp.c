/*
 * fuzz_relp: the frames of a RELP stream do not depend on how it is cut.
 *
 * The first byte picks max_record; the rest is fed whole to one parser, in
 * two pieces (cut where the data says) to another, and byte by byte to a
 * third.  All three must give the same frames and the same error; no data
 * may be longer than max_record, truncated data must be exactly
 * max_record bytes, and a response frame must parse back as sent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "relp.h"

static int
on_frame(void *arg, unsigned txnr, const char *cmd, const char *data, size_t len, int truncated)
{
	struct acc *a = arg;
	size_t cl = strlen(cmd);

	if (txnr == 0 || txnr > RELP_TXNR_MAX || cl == 0 || cl > RELP_CMD_MAX ||
	    len > a->max || (truncated && len != a->max))
		abort();
	a->h = fnv(a->h, &txnr, sizeof(txnr));
	a->h = fnv(a->h, cmd, cl + 1);
	a->h = fnv(a->h, &len, sizeof(len));
	a->h = fnv(a->h, &truncated, sizeof(truncated));
	a->h = fnv(a->h, data, len);
	a->n++;
	return 0;
}

static void
feed(struct relp_parser *p, struct acc *a, const char *d, size_t n)
{
	if (a->rc == 0)
		a->rc = relp_feed(p, d, n, on_frame, a, &a->why);
	if (p->len > a->max)
		abort();
}

static void
start(struct acc *a, struct relp_parser *p, size_t max)
{
	memset(a, 0, sizeof(*a));
	a->h = FNV_OFFSET;
	a->max = max;
	relp_init(p, max);
}

/* A response carrying the input as data parses back into one "rsp" frame. */
static int
check_rsp(void *arg, unsigned txnr, const char *cmd, const char *data, size_t len, int truncated)
{
	const struct obuf *sent = arg;

	if (txnr != 42 || strcmp(cmd, "rsp") != 0 || truncated || len != sent->len ||
	    memcmp(data, sent->p, len) != 0)
		abort();
	return 0;
}

static void
round_trip(const char *d, size_t n)
{
	struct relp_parser p;
	struct obuf o = { 0 }, sent = { (char *)d, n, n };
	const char *why = NULL;

	if (n > 999999999 || relp_response(&o, 42, d, n) == -1)
		return;
	relp_init(&p, n + 1);
	if (relp_feed(&p, o.p, o.len, check_rsp, &sent, &why) != 0 || relp_in_frame(&p))
		abort();
	relp_free(&p);
	free(o.p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relp_parser p;
	struct acc whole, cut, bytes;
	const char *d;
	size_t n, max, at;

	if (size == 0)
		return 0;
	max = data[0] >= 128 ? 65536 : 1 + data[0] % 64;
	d = (const char *)data + 1;
	n = size - 1;

	start(&whole, &p, max);
	feed(&p, &whole, d, n);
	relp_free(&p);

	at = fnv(FNV_OFFSET, d, n) % (n + 1);
	start(&cut, &p, max);
	feed(&p, &cut, d, at);
	feed(&p, &cut, d + at, n - at);
	relp_free(&p);
	acc_same(&whole, &cut);

	if (n <= BYTEWISE_MAX) {
		start(&bytes, &p, max);
		for (size_t i = 0; i < n; i++)
			feed(&p, &bytes, d + i, 1);
		relp_free(&p);
		acc_same(&whole, &bytes);
	}
	round_trip(d, n);
	return 0;
}
