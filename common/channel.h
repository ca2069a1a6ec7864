/*
 * channel: the socketpair between the master and each worker.
 *
 * A SOCK_SEQPACKET pair: one command per message, one byte.  The master
 * sends commands; a worker answers CHAN_READY once it is accepting.  A
 * worker that reads EOF knows its master has died and drains by itself.
 *
 * CHAN_HANDOVER, sent before CHAN_DRAIN when a newer generation takes over,
 * carries more: SCM_RIGHTS copies of the inboxes of the workers that take
 * the connections (at most CHAN_MAX_INBOXES), and after the byte, an array
 * of struct addr, the listener addresses they serve as plain streams
 * (worker/conn/handover.c).
 */
#ifndef INGESTD_CHANNEL_H
#define INGESTD_CHANNEL_H

#include "fdmsg.h"

#define CHAN_DRAIN	'D'	/* stop accepting, finish open connections, exit */
#define CHAN_STOP	'S'	/* close everything now and exit */
#define CHAN_REOPEN	'O'	/* reopen log files */
#define CHAN_READY	'R'	/* worker -> master: accepting */
#define CHAN_HANDOVER	'H'	/* where connections go when draining */

#define CHAN_MAX_INBOXES	FDMSG_MAX_FDS
#define CHAN_MSG_MAX	(1 + 64 * 160)	/* CHAN_HANDOVER with CFG_MAX_LISTENERS addresses */

#define EXIT_FATAL	2	/* worker exit status: do not respawn */

#endif
