/*
 * relp_session: the server side of a RELP session on one connection.
 *
 * Frames come in through protocol/relp.c; "open" is answered with our
 * offers, "syslog" hands its record to the pipeline, "close" ends the
 * session.  Every answer is held until each sink of the listener has
 * written (with sync = "always": synced) everything that was queued when
 * the read that brought its command ended, so "200 OK" means the record is
 * in every sink.  Answers leave in the order of their commands: the marks
 * of one read are only released after those of the reads before it.
 *
 * The session is the handler relp_handler of a RELP listener's
 * connections (handlers.h); its functions below are its state machine,
 * which knows nothing of connections (unit-tested on its own).
 */
#ifndef INGESTD_RELP_SESSION_H
#define INGESTD_RELP_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "obuf.h"
#include "relp.h"

/* The pipeline's verdict on one record: 0 in every sink's queue, -1 dropped. */
typedef int session_record_fn(void *arg, const char *rec, size_t len, int truncated);

struct session_wait;

struct session {
	const struct listener_cfg *l;
	struct relp_parser	 rp;
	int			 opened;	/* "open" received */
	unsigned		 last_txnr;	/* of the last command, 0 before any */
	int			 closing;	/* no more commands: close once answered */
	struct obuf		 held;		/* answers not yet released */
	size_t			 marked;	/* bytes of held covered by a wait */
	struct session_wait	*w;		/* the waits, oldest first */
	int			 nw, capw;
};

void	 session_init(struct session *, const struct listener_cfg *);
void	 session_free(struct session *);
int	 session_feed(struct session *, const char *data, size_t n, session_record_fn *,
	    void *arg, const char **why);
int	 session_mark(struct session *);
int	 session_release(struct session *, struct obuf *out);
int	 session_serverclose(struct session *);
int	 session_in_frame(const struct session *);

#define session_waiting(s)	((s)->held.len > 0)
#define session_finished(s)	((s)->closing && (s)->held.len == 0)

#endif
