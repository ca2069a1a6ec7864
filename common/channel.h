/*
 * channel: the socketpair between the master and each worker.
 *
 * One byte per message.  The master sends commands; a worker answers
 * CHAN_READY once it is accepting.  A worker that reads EOF knows its
 * master has died and drains by itself.
 */
#ifndef INGESTD_CHANNEL_H
#define INGESTD_CHANNEL_H

#define CHAN_DRAIN	'D'	/* stop accepting, finish open connections, exit */
#define CHAN_STOP	'S'	/* close everything now and exit */
#define CHAN_REOPEN	'O'	/* reopen log files */
#define CHAN_READY	'R'	/* worker -> master: accepting */

#define EXIT_FATAL	2	/* worker exit status: do not respawn */

#endif
