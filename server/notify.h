/*
 * notify: systemd readiness, reload and stop notifications, the watchdog,
 * and socket activation.
 */
#ifndef INGESTD_NOTIFY_H
#define INGESTD_NOTIFY_H

struct event_base;

void	 notify_take_sockets(void);
void	 notify_ready(unsigned gen, int nworkers);
void	 notify_reloading(void);
void	 notify_stopping(void);
void	 notify_start_watchdog(struct event_base *, int (*alive)(unsigned *gen));
void	 notify_stop_watchdog(void);

#endif
