/*
 * notify: systemd readiness, reload and stop notifications, the watchdog,
 * and socket activation.
 */
#ifndef INGESTD_NOTIFY_H
#define INGESTD_NOTIFY_H

void	 notify_take_sockets(void);
void	 notify_ready(void);
void	 notify_reloading(void);
void	 notify_stopping(void);
void	 notify_start_watchdog(void);
void	 notify_stop_watchdog(void);

#endif
