/*
 * fuzz_relp_client: what an upstream sends to a forward sink's RELP
 * session.  The first byte picks the window; a session is opened and that
 * many records sent (record i stands for i + 1 bytes of queue), then the
 * rest of the input is fed as the upstream's answers: whole, in two pieces
 * and byte by byte, which must all release the same bytes and end the same
 * way.  What is released is always a run of whole units from the oldest,
 * never more than was sent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "relp_client.h"

static const char open_ok[] = "1 rsp 22 200 OK\ncommands=syslog\n";

/* A session with window records in flight; out is only what it sends. */
static void
start(struct relp_client *c, unsigned window)
{
	struct obuf out = { 0 };
	size_t released = 0;
	const char *why;

	if (relpc_init(c, window) == -1 || relpc_open(c, &out) == -1 ||
	    relpc_feed(c, open_ok, sizeof(open_ok) - 1, &released, &why) == -1)
		abort();
	for (unsigned i = 0; i < window; i++)
		if (relpc_send(c, &out, "<13>x", 5, i + 1) == -1)
			abort();
	if (relpc_room(c) || released != 0)
		abort();
	obuf_free(&out);
}

/* Released bytes are 1 + 2 + ... + k for the k oldest units: a whole prefix. */
static void
check_prefix(size_t released, unsigned window)
{
	size_t sum = 0;
	unsigned k = 0;

	while (sum < released && k < window)
		sum += ++k;
	if (sum != released)
		abort();
}

/* The reasons of the three ways, kept: each session's own text goes with it. */
static char whys[3][sizeof(((struct relp_client *)0)->why)];

static void
feed(struct relp_client *c, struct acc *a, char *keep, const char *d, size_t n)
{
	size_t released = 0;
	const char *why;

	if (a->rc != 0)
		return;
	a->rc = relpc_feed(c, d, n, &released, &why);
	a->n += released;
	if (a->rc != 0) {
		strcpy(keep, why);
		a->why = keep;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relp_client c;
	struct acc whole = { 0 }, cut = { 0 }, bytes = { 0 };
	unsigned window;
	const char *d;
	size_t n, at;

	if (size == 0)
		return 0;
	window = 1 + data[0] % 16;
	d = (const char *)data + 1;
	n = size - 1;

	start(&c, window);
	feed(&c, &whole, whys[0], d, n);
	check_prefix(whole.n, window);
	relpc_free(&c);

	at = fnv(FNV_OFFSET, d, n) % (n + 1);
	start(&c, window);
	feed(&c, &cut, whys[1], d, at);
	feed(&c, &cut, whys[1], d + at, n - at);
	relpc_free(&c);
	acc_same(&whole, &cut);

	if (n <= BYTEWISE_MAX) {
		start(&c, window);
		for (size_t i = 0; i < n; i++)
			feed(&c, &bytes, whys[2], d + i, 1);
		relpc_free(&c);
		acc_same(&whole, &bytes);
	}
	return 0;
}
