/*
 * supervise: fork workers into slots, talk to them over their channels,
 * reap them, and respawn the ones that die unexpectedly.
 */
#ifndef INGESTD_SUPERVISE_H
#define INGESTD_SUPERVISE_H

#include "slots.h"

void	 sup_start(unsigned gen, int n);
void	 sup_reap(void);
void	 sup_drain(struct slot *, long timeout_ms);
void	 sup_stop(struct slot *);
void	 sup_drain_older(unsigned gen);
void	 sup_broadcast(char cmd);
void	 sup_discard_gen(unsigned gen);
void	 sup_resize(int delta);
void	 sup_kill_late(void);
void	 sup_retire_listeners(void);

#endif
