/*
 * sink_driver: what sink.c shares with the code that writes to one kind of
 * destination (sink_file.c: files and stdout; sink_forward.c: upstream
 * collectors over TCP or a unix socket).
 *
 * sink.c owns the queue (whole units: lines, or octet-counted frames),
 * batching, retries with back-off, back-pressure and the counters; a driver
 * only writes from the head of the queue.
 */
#ifndef INGESTD_SINK_DRIVER_H
#define INGESTD_SINK_DRIVER_H

#include <event2/event.h>
#include <limits.h>
#include <sys/types.h>

#include "json.h"
#include "log.h"
#include "sink.h"

struct sink;

struct sink_driver {
	int	(*start)(struct sink *);	/* NULL: nothing before the first write */
	/*
	 * Write from the head of s->q.  Returns the bytes of whole units now
	 * written (consumed from the queue), or -1 with errno set (the queue is
	 * kept and retried after a back-off).  A driver that is waiting for its
	 * destination (a socket that is full or still connecting) sets *wait,
	 * and calls sink_writable() when it can take more.
	 */
	ssize_t	(*write)(struct sink *, int *wait);
	int	(*sync)(struct sink *);		/* NULL: nothing to sync */
	void	(*reopen)(struct sink *);	/* SIGUSR1 */
	void	(*close)(struct sink *);
};

struct sink {
	const struct sink_cfg	*cf;
	const struct sink_driver *drv;
	struct obuf		 q;		/* whole units not yet written */
	int			 fd;		/* sink_file.c */
	struct filelock		*lock;		/* sink_file.c: fd's, for a pipe or socket */
	int			 regular;	/* sink_file.c: fd is a regular file */
	uint64_t		 key;		/* sink_file.c: fd's, for a regular file */
	void			*priv;		/* sink_forward.c */
	char			 where[PATH_MAX];	/* for messages: a path or an address */
	struct event		*timer;		/* flush_interval, or retry back-off */
	long			 retry_ms;	/* 0 while writes succeed */
	int			 failing;	/* said so in the log, not yet that it recovered */
	int			 blocked;	/* a "block" sink over its queue */
	int			 unsynced;	/* written since the last sync */
	uint64_t		 done;		/* bytes written (with sync = always: synced) */
	struct sink_stats	*st;		/* in the worker's stats slot */
	struct log_limit	 errlog, droplog;
};

extern const struct sink_driver sink_file_driver, sink_forward_driver, sink_redis_driver;

void	 sink_writable(struct sink *);
void	 sink_consumed(struct sink *, size_t n);
void	 sink_failed(struct sink *);
void	 sink_retry_soon(struct sink *, long ms);
size_t	 sink_unit_len(const struct sink *, const char *p, size_t avail);

#endif
