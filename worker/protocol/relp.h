/*
 * relp: the frames of RELP, the Reliable Event Logging Protocol that
 * rsyslog's omrelp speaks.
 *
 *   FRAME   = TXNR SP COMMAND SP DATALEN [SP DATA] TRAILER
 *   TXNR    = 1 to 9 digits, 1 .. 999999999
 *   COMMAND = 1 to 32 letters or "_"
 *   DATALEN = 1 to 9 digits; 0 has no SP DATA after it
 *   TRAILER = LF
 *
 * Pure: bytes in, frames out, no I/O, so it is unit-tested and fuzzed.  As
 * with framing, data that lies whole inside one read is handed out in place;
 * only data split across reads is gathered, never beyond max_record bytes:
 * the rest of longer data is skipped and the frame delivered with truncated
 * set.  Anything else that breaks the grammar is an error that ends the
 * connection.
 */
#ifndef INGESTD_RELP_H
#define INGESTD_RELP_H

#include <stddef.h>

#include "obuf.h"

#define RELP_TXNR_MAX	999999999U
#define RELP_DIGITS	9
#define RELP_CMD_MAX	32

struct relp_parser {
	size_t		 max_record;
	int		 zero_txnr;	/* a client's: the server's "0 serverclose" is valid */
	int		 state;		/* private to relp.c */
	unsigned	 txnr;
	int		 digits;
	char		 cmd[RELP_CMD_MAX + 1];
	int		 cmdlen;
	size_t		 datalen;
	size_t		 left;		/* data bytes still to come */
	char		*buf;		/* data split across reads; NULL when none */
	size_t		 len;
};

/*
 * Called once per frame, data valid only during the call.  Returning -1
 * stops the parser (relp_feed returns -1 without a reason).
 */
typedef int relp_frame_fn(void *arg, unsigned txnr, const char *cmd, const char *data,
    size_t len, int truncated);

void	 relp_init(struct relp_parser *, size_t max_record);
int	 relp_feed(struct relp_parser *, const char *data, size_t n, relp_frame_fn *, void *arg,
	    const char **why);
int	 relp_in_frame(const struct relp_parser *);
void	 relp_free(struct relp_parser *);
int	 relp_frame(struct obuf *, unsigned txnr, const char *cmd, const char *data, size_t len);
int	 relp_response(struct obuf *, unsigned txnr, const char *data, size_t len);

/* What relp_frame (a command of RELP_CMD_MAX at most) or relp_response appends at most. */
#define RELP_FRAME_MAX(len)	((len) + 64)

#endif
