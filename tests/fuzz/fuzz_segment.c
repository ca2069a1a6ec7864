/*
 * fuzz_segment: a spool segment or ledger as a crash or a disk may leave
 * it.  The input is read as the spool reads a segment: its header, then
 * records; after a damaged one (bad CRC or header) reading resumes where
 * seg_resync finds the next valid record, and a torn tail ends the scan.
 * Every valid record lies inside the input, and written again it reads
 * back the same; the first bytes read as a ledger give a slot's position
 * or none.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "segment.h"

static void
round_trip(const struct seg_record *r)
{
	struct obuf o = { 0 };
	struct seg_record back;

	if (seg_put(&o, r->payload, r->len, r->time_ms) == -1)
		abort();
	if (seg_next(o.p, o.len, &back) != SEG_OK || back.len != r->len ||
	    back.time_ms != r->time_ms || back.size != o.len ||
	    memcmp(back.payload, r->payload, r->len) != 0)
		abort();
	obuf_free(&o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *why;
	size_t off = SEG_HEADER;
	struct seg_record r;
	struct ledger_pos pos;

	if (ledger_read(p, size, &pos) == 0 && size < LEDGER_SLOT)
		abort();
	if (seg_header_ok(p, size, &why) == -1)
		off = 0;	/* read the records anyway: the reader must not care */
	while (off < size) {
		enum seg_result res = seg_next(p + off, size - off, &r);

		if (res == SEG_SHORT)
			break;
		if (res != SEG_OK) {
			size_t at = seg_resync(p, size, off);

			if (at <= off || at > size || (at < size &&
			    seg_next(p + at, size - at, &r) != SEG_OK))
				abort();
			off = at;
			continue;
		}
		if (r.size < SEG_RECORD_HEAD || r.size > size - off ||
		    r.payload != p + off + SEG_RECORD_HEAD || r.len != r.size - SEG_RECORD_HEAD)
			abort();
		round_trip(&r);
		off += r.size;
	}
	return 0;
}
