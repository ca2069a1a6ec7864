/*
 * slots: the master's table of worker processes.
 *
 * A slot is one worker process: its number within its generation (which
 * also picks its reuseport socket), the generation it belongs to, its pid,
 * its state, the master's end of its channel and the sending end of its
 * inbox (where a draining generation hands it connections).  A reload starts a new
 * generation beside the old one, so the table holds both while the old one
 * drains.
 */
#ifndef INGESTD_SLOTS_H
#define INGESTD_SLOTS_H

#include <sys/types.h>

#define SLOT_MAX	2048

enum slot_state {
	SLOT_FREE,	/* unused entry */
	SLOT_STARTING,	/* forked, not yet accepting */
	SLOT_RUNNING,	/* accepting */
	SLOT_DRAINING,	/* told to drain or stop; its exit is expected */
	SLOT_WAITING,	/* died unexpectedly; respawn after backoff_ms */
	SLOT_FAILED,	/* exited with EXIT_FATAL; never respawned */
};

struct config;
struct event;

struct slot {
	int		 id;		/* worker number in its generation */
	unsigned	 gen;
	pid_t		 pid;		/* 0 when no process */
	enum slot_state	 state;
	int		 chan;		/* master's end of the channel, -1 if none */
	int		 inbox;		/* the sending end of its hand-over inbox, -1 if none */
	struct event	*chan_ev;
	struct event	*timer;		/* respawn back-off */
	struct config	*cf;		/* config of its generation (a reference) */
	long		 backoff_ms;
	long		 started_ms;	/* monotonic, when forked */
	long		 deadline_ms;	/* draining: killed if still alive then */
};

struct slot_table {
	struct slot	 s[SLOT_MAX];
};

void		 slot_table_init(struct slot_table *);
struct slot	*slot_alloc(struct slot_table *, int id, unsigned gen);
void		 slot_release(struct slot *);
struct slot	*slot_by_pid(struct slot_table *, pid_t);
struct slot	*slot_find(struct slot_table *, unsigned gen, int id);
int		 slot_count(const struct slot_table *, unsigned gen, unsigned state_mask);
int		 slot_count_alive(const struct slot_table *);

#define SLOT_MASK(st)	(1u << (st))
#define SLOT_LIVE	(SLOT_MASK(SLOT_STARTING) | SLOT_MASK(SLOT_RUNNING) | SLOT_MASK(SLOT_DRAINING))
#define SLOT_ACTIVE	(SLOT_MASK(SLOT_STARTING) | SLOT_MASK(SLOT_RUNNING) | SLOT_MASK(SLOT_WAITING))

#endif
