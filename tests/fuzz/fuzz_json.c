/*
 * libFuzzer target for worker/protocol/json.c.
 *
 * Whatever the bytes: json_copy_object either rejects them or writes an
 * object that it accepts again unchanged, on one line; json_string and
 * json_sd_value always write a valid JSON string within JSON_STRING_MAX.
 * Inputs and outputs are exact-size heap copies, so ASan sees any access
 * past the bounds the contract gives.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static struct obuf
obuf_new(size_t room)
{
	struct obuf out;

	out.p = malloc(room ? room : 1);
	if (out.p == NULL)
		abort();
	out.len = 0;
	out.cap = room;
	return out;
}

static char *
dup_exact(const uint8_t *data, size_t size)
{
	char *p = malloc(size ? size : 1);

	if (p == NULL)
		abort();
	memcpy(p, data, size);
	return p;
}

static void
check_copy(const uint8_t *data, size_t size)
{
	char *rec = dup_exact(data, size), *again;
	struct obuf out = obuf_new(size), out2;
	const char *why = NULL;
	size_t i;

	if (json_copy_object(&out, rec, size, &why) == -1) {
		if (out.len != 0 || why == NULL)
			abort();
		goto done;
	}
	if (out.len > size || out.len < 2 || out.p[0] != '{' || out.p[out.len - 1] != '}')
		abort();
	for (i = 0; i < out.len; i++)
		if ((unsigned char)out.p[i] < 0x20)
			abort();
	again = dup_exact((const uint8_t *)out.p, out.len);
	out2 = obuf_new(out.len);
	if (json_copy_object(&out2, again, out.len, &why) == -1)
		abort();
	if (out2.len != out.len || memcmp(out2.p, out.p, out.len) != 0)
		abort();
	free(out2.p);
	free(again);
done:
	free(out.p);
	free(rec);
}

/* s must be a JSON string: {"k":s} is an object and copies unchanged. */
static void
check_string(void (*fn)(struct obuf *, const char *, size_t),
    const uint8_t *data, size_t size)
{
	char *s = dup_exact(data, size), *wrap;
	struct obuf out = obuf_new(JSON_STRING_MAX(size)), back;
	const char *why = NULL;
	size_t n;

	fn(&out, s, size);
	if (out.len > JSON_STRING_MAX(size) || out.len < 2)
		abort();
	n = out.len + 6;
	wrap = malloc(n);
	if (wrap == NULL)
		abort();
	memcpy(wrap, "{\"k\":", 5);
	memcpy(wrap + 5, out.p, out.len);
	wrap[n - 1] = '}';
	back = obuf_new(n);
	if (json_copy_object(&back, wrap, n, &why) == -1)
		abort();
	if (back.len != n || memcmp(back.p, wrap, n) != 0)
		abort();
	free(back.p);
	free(wrap);
	free(out.p);
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_copy(data, size);
	check_string(json_string, data, size);
	check_string(json_sd_value, data, size);
	return 0;
}
