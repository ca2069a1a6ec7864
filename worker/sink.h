/*
 * sink: where a worker's events go.
 *
 * Each sink has a queue of whole JSON lines in one buffer.  Lines are
 * written in batches (SINK_BATCH bytes, or flush_interval after the first
 * line of a batch).  A file sink appends with one write(2) per batch under
 * a lock of the file, so that lines of several workers never
 * interleave, and a short write (disk full) is cut back to its last whole
 * line: the file never holds half a line.  A failing write is retried with
 * a back-off; meanwhile the queue fills, and a full "block" sink makes the
 * worker stop reading from its clients until the queue is half empty.
 */
#ifndef INGESTD_SINK_H
#define INGESTD_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "json.h"
#include "stats.h"

#define SINK_BATCH	(256 * 1024)

int		 sink_open_all(const struct config *);
struct obuf	*sink_reserve(int idx, size_t need);
void		 sink_commit(int idx);
void		 sink_dropped(int idx);
uint64_t	 sink_mark(int idx);
int		 sink_reached(int idx, uint64_t mark);
void		 sink_flush_soon(int idx);
void		 sink_reopen_all(void);
void		 sink_close_all(long deadline_ms);
const struct sink_stats *sink_stats(int idx);

#endif
