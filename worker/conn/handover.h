/*
 * handover: on a reload or a binary upgrade, a draining worker passes its
 * plain stream connections to the workers of the next generation, which
 * read on where it stopped; and every worker takes the connections handed
 * to it.  See handover.c.
 */
#ifndef INGESTD_HANDOVER_H
#define INGESTD_HANDOVER_H

#include <stddef.h>

int	 handover_init(int inbox);
void	 handover_offer(const int *inboxes, int n, const char *listeners, size_t len);
void	 handover_start(void);
int	 handover_take_rest(void);
void	 handover_end(void);

#endif
