/*
 * acks: the server side of a RELP session on one connection.
 *
 * Frames come in through relp.c; "open" is answered with our offers,
 * "syslog" hands its record to the pipeline, "close" ends the session.
 * Every response is held until each sink of the listener has written (with
 * sync = "always": synced) everything that was queued when the read that
 * brought its command ended, so "200 OK" means the record is in every
 * sink.  Responses leave in the order of their commands: the marks of one
 * read are only released after those of the reads before it.
 */
#ifndef INGESTD_ACKS_H
#define INGESTD_ACKS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "json.h"
#include "relp.h"

/* The pipeline's verdict on one record: 0 in every sink's queue, -1 dropped. */
typedef int acks_record_fn(void *arg, const char *rec, size_t len, int truncated);

struct ack_wait;

struct acks {
	const struct listener_cfg *l;
	struct relp_parser	 rp;
	int			 opened;	/* "open" received */
	int			 closing;	/* no more commands: close once answered */
	struct obuf		 held;		/* responses not yet released */
	size_t			 marked;	/* bytes of held covered by a wait */
	struct ack_wait		*w;		/* the waits, oldest first */
	int			 nw, capw;
};

void	 acks_init(struct acks *, const struct listener_cfg *);
void	 acks_free(struct acks *);
int	 acks_feed(struct acks *, const char *data, size_t n, acks_record_fn *, void *arg,
	    const char **why);
int	 acks_mark(struct acks *);
int	 acks_release(struct acks *, struct obuf *out);
int	 acks_serverclose(struct acks *);
int	 acks_in_frame(const struct acks *);

#define acks_waiting(a)		((a)->held.len > 0)
#define acks_finished(a)	((a)->closing && (a)->held.len == 0)

#endif
