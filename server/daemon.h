/*
 * daemon: detach from the terminal, and tell the starting shell whether
 * the master came up.
 */
#ifndef INGESTD_DAEMON_H
#define INGESTD_DAEMON_H

int	 daemon_start(void);
void	 daemon_ready(int ok);
void	 daemon_close_in_child(void);

#endif
