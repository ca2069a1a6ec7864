/*
 * procs: the worker processes seen from the master, as a mechanism: the
 * slot table, forking, the channels, reaping, respawning with back-off.
 *
 *   fork -> STARTING --ready--> RUNNING --drain/stop--> DRAINING -> reaped, FREE
 *   STARTING/RUNNING --died--> WAITING --back-off--> fork again
 *                    --exit 2-> FAILED (never respawned)
 *
 * It knows nothing of the master's state, of what a generation is for, or
 * of what a worker runs: it tells the master through the hooks given to
 * procs_init, and the master decides (server/generation.c).  Commands go
 * over a slot's channel; when the channel is gone the same command is sent
 * as a signal (QUIT drain, TERM stop, USR1 reopen).
 *
 * Each worker also has an inbox (SOCK_SEQPACKET) whose sending end the
 * master keeps: procs_offer passes copies of a generation's inboxes to a
 * worker about to drain, which hands its connections through them.
 */
#ifndef INGESTD_PROCS_H
#define INGESTD_PROCS_H

#include <stddef.h>
#include <stdint.h>

#include "slots.h"

struct event_base;

struct procs_hooks {
	int	(*prepare)(struct slot *);	/* before a fork; -1: not now, try after a back-off */
	/* In the child: become the worker of the slot, with its ends of the channel and inbox. */
	void	(*run)(struct slot *, int chan, int inbox) __attribute__((noreturn));
	void	(*exited)(struct slot *, int status);	/* reaped; s->pid is still the child's */
	void	(*changed)(unsigned gen);	/* a slot of gen is ready, dead or given up */
	void	(*reaped)(void);		/* after each reaping pass */
	/* Why a reaped worker ended, in buf, when its process knows better than its status; 0: not. */
	int	(*cause)(const struct slot *, int status, char *buf, size_t size);
};

void		 procs_init(struct event_base *, const struct procs_hooks *);
struct slot	*procs_start(unsigned gen, int id, struct config *);
void		 procs_drain(struct slot *, long timeout_ms);
void		 procs_stop(struct slot *);
void		 procs_broadcast(char cmd);
int		 procs_inboxes(unsigned gen, int *fds, int max);
void		 procs_offer(struct slot *, const int *inboxes, int n, const void *listeners,
		    size_t len);
void		 procs_reap(void);
void		 procs_kill_late(void);
void		 procs_close_in_child(void);
struct slot_table *procs_table(void);
uint64_t	 procs_restarts(void);

#endif
