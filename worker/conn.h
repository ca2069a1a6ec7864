/*
 * conn: one client connection in a worker.
 *
 * A connection reads what its client sends, cuts it into records with its
 * listener's framing, and hands each record to the record pipeline.
 */
#ifndef INGESTD_CONN_H
#define INGESTD_CONN_H

#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "conntab.h"
#include "stats.h"

void	 conn_init(void);
int	 conn_new(int fd, const struct listener_cfg *, const struct sockaddr *, socklen_t,
	    const struct ct_ticket *);
int	 conn_count(void);
void	 conn_set_reading(int on);
void	 conn_close_all(const char *reason);
void	 conn_sinks_progressed(void);
void	 conn_end_sessions(void);
const struct conn_totals *conn_totals(void);

#endif
