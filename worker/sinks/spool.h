/*
 * spool: a sink's queue on disk, beside the queue core (sink.c).
 *
 * With a spool, every unit the sink takes is written to it (spool_put,
 * spool_write, spool_sync: group-committed, one fdatasync per turn of the
 * loop) and counts as written once it is there; the driver is fed from it
 * (spool_read, oldest first) and a unit leaves it only when the driver
 * wrote it (spool_delivered).  The format is segment.c's.
 *
 * Ownership.  Each worker is an owner: it appends to segments of its own,
 * "OWNER-SEQ.seg", and keeps how far they were delivered in its ledger,
 * "OWNER.ledger", which it holds locked (flock) for its life; nothing else
 * is shared, so the hot path takes no lock.  A ledger whose lock is free
 * belongs to a worker that is gone (exited, killed, or from another
 * generation or master): whoever finds it first (at start, then every
 * second) takes its lock and its segments over, delivers them before its
 * own, and deletes them with their ledger when done.  A ledger is created
 * under another name and renamed once locked, so that it is never seen
 * unlocked while its owner lives.
 *
 * Crash safety.  A segment is deleted only after the ledger that passes
 * it is synced, and the directory is synced after a segment is created or
 * deleted.  After a crash, what the ledger does not pass is delivered
 * again (at least once).  A torn tail or a corrupt record is skipped, with
 * one log line and a count, never more.  Nothing reads a backlog at start:
 * the reader follows the ledger, a chunk at a time.
 */
#ifndef INGESTD_SPOOL_H
#define INGESTD_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "obuf.h"
#include "stats.h"

struct spool;

struct spool	*spool_open(const struct sink_cfg *, int idx, struct sink_stats *,
		    void (*more)(void *), void *arg);
int		 spool_put(struct spool *, const char *unit, size_t len);
void		 spool_unput(struct spool *);
int		 spool_write(struct spool *);
int		 spool_sync(struct spool *);
size_t		 spool_read(struct spool *, struct obuf *q, size_t want);
int		 spool_unread(const struct spool *);
void		 spool_delivered(struct spool *, size_t n);
void		 spool_close(struct spool *);

#endif
