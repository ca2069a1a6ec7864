/*
 * framing: cut a connection's byte stream into records.
 *
 * worker/protocol/ is the protocol layer, the lowest of the worker's: pure
 * parsers of what comes off the wire (framing.c, parse_syslog.c, json.c,
 * proxy.c, relp.c).  Bytes in, records, fields or frames out: no I/O, no
 * events, no allocation beyond a record split across reads, so that each
 * is unit-tested and fuzzed on its own.  May use: common/ (obuf) only.
 * DESIGN: a new wire format (RFC 5426 datagrams, RELP over TLS frames are
 * the same) is parsed here before a handler above uses it.
 *
 * Pure: bytes in, records out, no I/O, so it is unit-tested and fuzzed.
 * Records that lie whole inside one read are handed out in place (no copy);
 * only a record split across reads is gathered in the framer's buffer,
 * which never grows beyond max_record and is freed when empty.
 *
 * Modes:
 *   FRAME_LF     a record ends at LF; one CR before the LF is removed.
 *   FRAME_OCTET  RFC 6587 octet counting: "LEN SP MSG", LEN a decimal with
 *                no leading zero, at most FRAME_COUNT_DIGITS digits.  A count
 *                that can never be valid (leading zero, no digit, a non-digit
 *                before the space, too many digits) is a framing error: the
 *                connection is closed.
 *   FRAME_AUTO   decided per record: octet-counted when the record starts
 *                with a count as above, one space and a syslog PRI ("<"
 *                1 to 3 digits ">"); anything else is LF-framed.  So
 *                "54 <1 minute elapsed" is a plain line, "5 <13>x" is not.
 *
 * A record longer than max_record is cut at max_record bytes and delivered
 * at once with truncated set; the rest of it, up to its LF or exactly LEN
 * bytes, is skipped.  Empty records (blank lines, a lone CR) are dropped.
 * A record still open at end of stream is delivered by frame_finish().
 *
 * frame_save() writes a framer's state, a record it holds half-read
 * included, as bytes that frame_restore() turns back into the same framer
 * in another process (a connection handed to the next generation on a
 * reload).  The bytes come from a process of the same server, but maybe of
 * another build: restore checks every field and refuses what it cannot
 * take.
 */
#ifndef INGESTD_FRAMING_H
#define INGESTD_FRAMING_H

#include <stddef.h>

#include "obuf.h"

#define FRAME_COUNT_DIGITS	9
#define FRAME_RESTORE_MAX	(16UL << 20)	/* the largest max_record frame_restore takes */

enum frame_mode { FRAME_AUTO, FRAME_LF, FRAME_OCTET };

struct framer {
	enum frame_mode	 mode;
	size_t		 max_record;
	int		 state;		/* private to framing.c */
	size_t		 count;		/* octet count being read or body bytes left */
	size_t		 skip;		/* bytes still to skip of a truncated record */
	char		*buf;		/* partial record; NULL when none */
	size_t		 len;		/* bytes in buf */
	char		 head[16];	/* bytes of a record start not yet decided (auto) */
	size_t		 headlen;
};

/* Called once per record; rec is valid only during the call. */
typedef void frame_record_fn(void *arg, const char *rec, size_t len, int truncated);

void	 frame_init(struct framer *, enum frame_mode, size_t max_record);
int	 frame_feed(struct framer *, const char *data, size_t n, frame_record_fn *, void *arg,
	    const char **why);
void	 frame_finish(struct framer *, frame_record_fn *, void *arg);
size_t	 frame_buffered(const struct framer *);
int	 frame_in_record(const struct framer *);
void	 frame_free(struct framer *);
int	 frame_save(const struct framer *, struct obuf *);
int	 frame_restore(struct framer *, const char *p, size_t n, enum frame_mode,
	    size_t max_record);

#endif
