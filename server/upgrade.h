/*
 * upgrade: the binary upgrade on SIGUSR2, in the old master and the new one.
 */
#ifndef INGESTD_UPGRADE_H
#define INGESTD_UPGRADE_H

#include <stddef.h>

struct event_base;

void	 upgrade_init(char *const *argv);
void	 upgrade_start(struct event_base *);
int	 upgrade_pending_ready(void);
void	 upgrade_ready(const int *inboxes, int n, const void *listeners, size_t len);
void	 upgrade_close_in_child(void);
int	 upgrade_successor(const int **inboxes, const void **listeners, size_t *len);
int	 upgrade_handed_over(void);
int	 upgrade_shared_files(void);
void	 upgrade_watch(void);

#endif
