/*
 * segment: the on-disk format of a sink's spool (spool.c), pure: records
 * into and out of byte buffers, and the ledger's slots; no I/O, so it is
 * unit-tested at every truncation point and fuzzed.
 *
 * A segment file is a header, then records, all integers little-endian:
 *
 *   header = "INGSPOOL" | version u32 | header size u32 | created ms u64   (24 bytes)
 *   record = length u32 | crc u32 | time ms u64 | payload (length bytes)
 *   crc    = CRC-32C of the length, the time and the payload
 *
 * A payload is one unit of the sink's queue, as the driver sends it.  A
 * record is valid only when its CRC matches: a length that runs past what
 * the file holds is a torn tail (a crash in the middle of a write), one
 * beyond SEG_RECORD_MAX a damaged header, after which nothing more of the
 * segment can be trusted.
 *
 * The ledger of an owner says how far its segments were delivered: two
 * slots of LEDGER_SLOT bytes, written in turn, each
 *
 *   "INGLEDGR" | version u32 | 0 u32 | generation u64 | segment u64 | offset u64 | crc u32
 *
 * The valid slot with the larger generation holds; a write torn by a
 * crash spoils at most the slot it was writing, so the other, one step
 * behind, still holds (what lies between is delivered again).
 */
#ifndef INGESTD_SEGMENT_H
#define INGESTD_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "obuf.h"

#define SEG_VERSION	1
#define SEG_HEADER	24
#define SEG_RECORD_HEAD	16
#define SEG_RECORD_MAX	(64 * 1024 * 1024)
#define LEDGER_SLOT	64
#define LEDGER_SIZE	(2 * LEDGER_SLOT)

enum seg_result {
	SEG_OK,		/* a valid record */
	SEG_SHORT,	/* the buffer ends inside the record: more bytes, or a torn tail */
	SEG_BAD_CRC,	/* a record whose bytes do not match its CRC: skip size bytes */
	SEG_BAD_HEAD,	/* a length no record has: the rest cannot be read */
};

struct seg_record {
	const char	*payload;
	size_t		 len;
	uint64_t	 time_ms;
	size_t		 size;		/* SEG_RECORD_HEAD + len */
};

struct ledger_pos {
	uint64_t	 gen;
	uint64_t	 seq;		/* the segment */
	uint64_t	 off;		/* delivered up to this offset in it */
};

void		 seg_header(char buf[SEG_HEADER], uint64_t created_ms);
int		 seg_header_ok(const char *p, size_t n, const char **why);
int		 seg_put(struct obuf *, const char *payload, size_t len, uint64_t time_ms);
enum seg_result	 seg_next(const char *p, size_t n, struct seg_record *);
size_t		 seg_resync(const char *p, size_t n, size_t off);
void		 ledger_slot(char buf[LEDGER_SLOT], const struct ledger_pos *);
int		 ledger_read(const char *p, size_t n, struct ledger_pos *);

#endif
