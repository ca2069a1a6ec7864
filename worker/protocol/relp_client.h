/*
 * relp_client: the sending side of a RELP session, as a forward sink
 * speaks it to its upstream (another ingestd, rsyslog's imrelp).
 *
 * Pure, like relp.c: frames are appended to a buffer that the caller
 * sends, and the upstream's bytes are fed in; no I/O.  A session begins
 * with "open" (transaction 1), offering the syslog command; once the
 * upstream's 200 answer is in, records go as "syslog" frames, at most
 * window of them unanswered.  Each frame in flight remembers how many
 * bytes of the caller's queue it carries (its unit); answers, in any
 * order, release units from the oldest on, so that the caller consumes its
 * queue in order.  A refusal (an answer other than 200), "serverclose",
 * or bytes that break the grammar end the session with a reason: the
 * caller drops the connection and sends what was not answered again on
 * the next one.
 */
#ifndef INGESTD_RELP_CLIENT_H
#define INGESTD_RELP_CLIENT_H

#include <stddef.h>

#include "obuf.h"
#include "relp.h"

#define RELPC_WINDOW_MAX	65536

enum { RELPC_NEW, RELPC_OPENING, RELPC_OPEN, RELPC_CLOSING, RELPC_CLOSED };

struct relpc_frame {
	unsigned	 txnr;
	int		 answered;
	size_t		 unit;		/* bytes of the caller's queue */
};

struct relp_client {
	struct relp_parser	 rp;
	struct relpc_frame	*ring;		/* the frames in flight, oldest at head */
	unsigned		 window, head, count;
	unsigned		 txnr;		/* the last one sent */
	int			 state;
	char			 why[160];	/* why the session ended */
};

int		 relpc_init(struct relp_client *, unsigned window);
void		 relpc_reset(struct relp_client *);
void		 relpc_free(struct relp_client *);
int		 relpc_open(struct relp_client *, struct obuf *out);
int		 relpc_room(const struct relp_client *);
int		 relpc_send(struct relp_client *, struct obuf *out, const char *msg, size_t len,
		    size_t unit);
int		 relpc_close(struct relp_client *, struct obuf *out);
int		 relpc_feed(struct relp_client *, const char *p, size_t n, size_t *released,
		    const char **why);

#endif
