/*
 * fuzz_frame_restore: frame_restore() takes any bytes without harm.
 *
 * The bytes a draining worker saves come to the next generation's worker
 * over a socket (worker/conn/handover.c); whatever they hold, restoring
 * them either fails, leaving a fresh framer, or gives a framer that frames
 * on within its limits: no record empty or over its max_record, never more
 * buffered than max_record and the head.
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz.h"
#include "framing.h"

static void
on_record(void *arg, const char *p, size_t len, int truncated)
{
	const struct framer *f = arg;

	(void)p;
	(void)truncated;
	if (len == 0 || len > f->max_record)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char more[] = "x\r\n5 <13>ab12 <13>abcdefgh\nlast";
	struct framer f;
	const char *why;

	frame_restore(&f, (const char *)data, size, FRAME_AUTO, 64);
	for (size_t i = 0; i < 3; i++) {
		if (frame_feed(&f, more, sizeof(more) - 1, on_record, &f, &why) == -1)
			break;
		if (frame_buffered(&f) > f.max_record + sizeof(f.head))
			abort();
	}
	frame_finish(&f, on_record, &f);
	if (frame_buffered(&f) != 0)
		abort();
	return 0;
}
