/*
 * master: the supervising process.  It owns the configuration generations,
 * the listening sockets and the workers (through server/procs.c), and
 * turns signals into work.
 *
 * The files of server/, top down:
 *   main.c        the command line
 *   control.c     ingestd -s: signal the running master, the upgrade's wait
 *   master.c      start-up, the signal table, the loop, shutdown
 *   generation.c  reload by generations: ready, failed, rollback, resize
 *   procs.c       the worker processes as a mechanism: spawn, channels,
 *                 reap, respawn (slots.c: the table, backoff.c: the waits)
 *   listeners.c   the listening sockets; upgrade.c the binary upgrade;
 *   metrics.c     /metrics and /stats over http.c (httphead.c parses);
 *   pidfile.c, daemon.c, notify.c (systemd)
 */
#ifndef INGESTD_MASTER_H
#define INGESTD_MASTER_H

#include "config.h"
#include "options.h"

const char	*master_pid_path(const struct options *, const struct config *);
int		 master_run(struct config *, const struct options *);

#endif
