/*
 * fuzz_framing: the records of a stream do not depend on how it is cut.
 *
 * The first byte picks the mode and max_record; the rest is fed whole to
 * one framer, in two pieces (cut where the data says) to another, in the
 * same two pieces with the framer saved and restored between them (a
 * connection handed to the next generation) to a third, and byte by byte
 * to a fourth.  All must give the same records and the same error; no
 * record may be empty or longer than max_record, and in LF mode the
 * records must be those of a plain split at LF.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "framing.h"

/* Hash a record with its length and flag, so the sequence is hashed unambiguously. */
static void
add(struct acc *a, const char *p, size_t len, int truncated)
{
	if (len == 0 || len > a->max || (truncated && len != a->max))
		abort();
	a->h = fnv(a->h, &len, sizeof(len));
	a->h = fnv(a->h, &truncated, sizeof(truncated));
	a->h = fnv(a->h, p, len);
	a->n++;
}

static void
on_record(void *arg, const char *p, size_t len, int truncated)
{
	add(arg, p, len, truncated);
}

static void
feed(struct framer *f, struct acc *a, const char *p, size_t n)
{
	if (a->rc == 0)
		a->rc = frame_feed(f, p, n, on_record, a, &a->why);
	if (frame_buffered(f) > a->max + 16)
		abort();
}

static void
finish(struct framer *f, struct acc *a)
{
	if (a->rc == 0)
		frame_finish(f, on_record, a);
	if (frame_buffered(f) != 0)
		abort();
	frame_free(f);
}

static void
acc_init(struct acc *a, struct framer *f, enum frame_mode mode, size_t max)
{
	memset(a, 0, sizeof(*a));
	a->h = FNV_OFFSET;
	a->max = max;
	frame_init(f, mode, max);
}

/* What LF framing must give: split at LF, drop one CR before it, cut, drop empties. */
static void
lf_model(struct acc *a, const char *p, size_t n)
{
	const char *end = p + n, *lf;
	size_t len;

	while (p < end) {
		lf = memchr(p, '\n', end - p);
		len = (lf != NULL ? lf : end) - p;
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len > 0)
			add(a, p, len > a->max ? a->max : len, len > a->max);
		p += (lf != NULL ? lf : end) - p + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct framer f;
	struct acc whole, cut, bytes, model;
	enum frame_mode mode;
	const char *p;
	size_t n, max, at;

	if (size == 0)
		return 0;
	mode = (enum frame_mode)(data[0] % 3);
	max = data[0] / 3 >= 80 ? 65536 : 1 + data[0] / 3 % 64;
	p = (const char *)data + 1;
	n = size - 1;

	acc_init(&whole, &f, mode, max);
	feed(&f, &whole, p, n);
	finish(&f, &whole);

	at = fnv(FNV_OFFSET, p, n) % (n + 1);
	acc_init(&cut, &f, mode, max);
	feed(&f, &cut, p, at);
	feed(&f, &cut, p + at, n - at);
	finish(&f, &cut);
	acc_same(&whole, &cut);

	acc_init(&cut, &f, mode, max);
	feed(&f, &cut, p, at);
	if (cut.rc == 0) {
		struct framer g;
		struct obuf o = { NULL, 0, 0 };

		if (frame_save(&f, &o) == -1 || frame_restore(&g, o.p, o.len, mode, max) == -1)
			abort();
		obuf_free(&o);
		frame_free(&f);
		f = g;
	}
	feed(&f, &cut, p + at, n - at);
	finish(&f, &cut);
	acc_same(&whole, &cut);

	if (n <= BYTEWISE_MAX) {
		acc_init(&bytes, &f, mode, max);
		for (size_t i = 0; i < n; i++)
			feed(&f, &bytes, p + i, 1);
		finish(&f, &bytes);
		acc_same(&whole, &bytes);
	}

	/* Only octet framing can fail. */
	if (mode != FRAME_OCTET && whole.rc != 0)
		abort();
	if (mode == FRAME_LF) {
		memset(&model, 0, sizeof(model));
		model.h = FNV_OFFSET;
		model.max = max;
		lf_model(&model, p, n);
		acc_same(&whole, &model);
	}
	return 0;
}
