/*
 * fake_driver: the sinks' driver table of the unit tests (the build leaves
 * worker/sinks/drivers.c out of them): every sink type writes to one fake
 * destination that keeps what it was given and does what a test tells it.
 * fake_open sets up a worker's process (proc.h) and its sinks from a
 * configuration text, as a worker does; fake_close takes it all down.
 */
#ifndef INGESTD_FAKE_DRIVER_H
#define INGESTD_FAKE_DRIVER_H

#include <stddef.h>

#include "obuf.h"

enum fake_mode {
	FAKE_TAKE,	/* takes everything */
	FAKE_FAIL,	/* every write fails with EIO */
	FAKE_SHORT,	/* takes at most fake.limit bytes a write, whole units only */
	FAKE_WAIT,	/* takes nothing and waits (answers to come) */
};

struct fake {
	enum fake_mode	 mode;
	size_t		 limit;
	struct obuf	 out[8];	/* what each sink index was given, in order */
	int		 writes[8];	/* write calls per sink index */
	int		 syncs[8];
	int		 fail_sync;	/* sync fails while set */
};

extern struct fake fake;

struct config;
struct sink_hooks;

void		 fake_reset(void);
struct config	*fake_open(const char *config, const struct sink_hooks *);
void		 fake_close(struct config *);
void		 fake_run(void);		/* one turn of the loop: what is due runs */
void		 fake_run_for(long ms);		/* the loop for ms */

#endif
