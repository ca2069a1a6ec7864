/*
 * segment: spool segments and ledgers, in bytes (see segment.h).
 */
#include <string.h>

#include "segment.h"

static const char seg_magic[8] = "INGSPOOL", ledger_magic[8] = "INGLEDGR";

static void
put32(char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (char)(v >> (8 * i));
}

static void
put64(char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (char)(v >> (8 * i));
}

static uint32_t
get32(const char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | (unsigned char)p[i];
	return v;
}

static uint64_t
get64(const char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | (unsigned char)p[i];
	return v;
}

void
seg_header(char buf[SEG_HEADER], uint64_t created_ms)
{
	memcpy(buf, seg_magic, 8);
	put32(buf + 8, SEG_VERSION);
	put32(buf + 12, SEG_HEADER);
	put64(buf + 16, created_ms);
}

/* A segment's first bytes: ours, and of a version this build reads. */
int
seg_header_ok(const char *p, size_t n, const char **why)
{
	if (n < SEG_HEADER || memcmp(p, seg_magic, 8) != 0) {
		*why = "not a spool segment (no INGSPOOL header)";
		return -1;
	}
	if (get32(p + 8) != SEG_VERSION || get32(p + 12) != SEG_HEADER) {
		*why = "a spool segment of another format version";
		return -1;
	}
	return 0;
}

/*
 * CRC-32C (Castagnoli), as iSCSI and ext4 use it.  Its polynomial is the
 * one x86's SSE 4.2 computes in hardware, eight bytes an instruction: the
 * drain of a spool spent 61% of its CPU in zlib's crc32 (make bench).
 * Elsewhere a table does it a byte at a time.
 */
#define CRC32C_POLY	0x82f63b78U

static uint32_t crc_table[256];

static uint32_t
crc32c_table(uint32_t crc, const unsigned char *p, size_t n)
{
	if (crc_table[1] == 0)
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;

			for (int k = 0; k < 8; k++)
				c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
			crc_table[i] = c;
		}
	while (n-- > 0)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t
crc32c_sse42(uint32_t crc, const unsigned char *p, size_t n)
{
	uint64_t c = crc;

	for (; n >= 8; n -= 8, p += 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	crc = (uint32_t)c;
	while (n-- > 0)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return crc;
}
#endif

/* crc continued over n bytes at p (start with 0). */
static uint32_t
crc32c(uint32_t crc, const void *p, size_t n)
{
	crc = ~crc;
#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2"))
		return ~crc32c_sse42(crc, p, n);
#endif
	return ~crc32c_table(crc, p, n);
}

/* The CRC of a record: over its length, its time and its payload. */
static uint32_t
record_crc(const char *head, const char *payload, size_t len)
{
	uint32_t crc = crc32c(0, head, 4);

	crc = crc32c(crc, head + 8, 8);
	return crc32c(crc, payload, len);
}

/* Append one record; -1 when out of memory or longer than a record may be. */
int
seg_put(struct obuf *o, const char *payload, size_t len, uint64_t time_ms)
{
	char *h;

	if (len > SEG_RECORD_MAX || obuf_reserve(o, SEG_RECORD_HEAD + len) == -1)
		return -1;
	h = o->p + o->len;
	put32(h, (uint32_t)len);
	put64(h + 8, time_ms);
	memcpy(h + SEG_RECORD_HEAD, payload, len);
	put32(h + 4, record_crc(h, payload, len));
	o->len += SEG_RECORD_HEAD + len;
	return 0;
}

/* The record at p, of the n bytes there (see enum seg_result). */
enum seg_result
seg_next(const char *p, size_t n, struct seg_record *r)
{
	uint32_t len;

	memset(r, 0, sizeof(*r));
	if (n < SEG_RECORD_HEAD)
		return SEG_SHORT;
	len = get32(p);
	if (len > SEG_RECORD_MAX)
		return SEG_BAD_HEAD;
	r->size = SEG_RECORD_HEAD + (size_t)len;
	if (n < r->size)
		return SEG_SHORT;
	if (record_crc(p, p + SEG_RECORD_HEAD, len) != get32(p + 4))
		return SEG_BAD_CRC;
	r->payload = p + SEG_RECORD_HEAD;
	r->len = len;
	r->time_ms = get64(p + 8);
	return SEG_OK;
}

/*
 * After a damaged record at off: the next offset of p[0..n) where a whole
 * valid record begins (its CRC makes a false one as rare as a collision),
 * or n when there is none.
 */
size_t
seg_resync(const char *p, size_t n, size_t off)
{
	struct seg_record r;

	for (size_t at = off + 1; at < n; at++)
		if (seg_next(p + at, n - at, &r) == SEG_OK)
			return at;
	return n;
}

void
ledger_slot(char buf[LEDGER_SLOT], const struct ledger_pos *pos)
{
	memset(buf, 0, LEDGER_SLOT);
	memcpy(buf, ledger_magic, 8);
	put32(buf + 8, SEG_VERSION);
	put64(buf + 16, pos->gen);
	put64(buf + 24, pos->seq);
	put64(buf + 32, pos->off);
	put32(buf + 40, crc32c(0, buf, 40));
}

static int
slot_ok(const char *p, struct ledger_pos *pos)
{
	if (memcmp(p, ledger_magic, 8) != 0 || get32(p + 8) != SEG_VERSION ||
	    crc32c(0, p, 40) != get32(p + 40))
		return 0;
	pos->gen = get64(p + 16);
	pos->seq = get64(p + 24);
	pos->off = get64(p + 32);
	return 1;
}

/* The position of a ledger's n bytes: 0, or -1 when neither slot is valid. */
int
ledger_read(const char *p, size_t n, struct ledger_pos *pos)
{
	struct ledger_pos a, b;
	int oka = n >= LEDGER_SLOT && slot_ok(p, &a);
	int okb = n >= LEDGER_SIZE && slot_ok(p + LEDGER_SLOT, &b);

	if (!oka && !okb)
		return -1;
	*pos = oka && (!okb || a.gen >= b.gen) ? a : b;
	return 0;
}
