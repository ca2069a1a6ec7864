/*
 * handlers: the protocols a connection can speak (struct conn_handler in
 * conn.h), one file each.  accept.c starts each connection with its
 * listener's.
 */
#ifndef INGESTD_HANDLERS_H
#define INGESTD_HANDLERS_H

#include "conn.h"

extern const struct conn_handler stream_handler;	/* stream.c: records over TCP */
extern const struct conn_handler relp_handler;		/* relp_session.c: RELP */
extern const struct conn_handler proxy_wait_handler;	/* proxy_wait.c: a PROXY header first */

void	 relp_sessions_init(void);
void	 relp_sessions_progressed(void);

#endif
