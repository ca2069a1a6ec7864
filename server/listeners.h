/*
 * listeners: the listening sockets, owned by the master.
 *
 * A socket is keyed by its address and accept mode, so a reload that keeps
 * a listener keeps its socket and the connections queued on it.  A shared
 * listener has one socket; a reuseport listener has one per worker number.
 * Sockets that neither the current config nor a live worker's config names
 * are closed.
 */
#ifndef INGESTD_LISTENERS_H
#define INGESTD_LISTENERS_H

#include <stdint.h>

#include "config.h"

int	 lsn_open(const struct config *, int nworkers);
int	 lsn_fd(const struct listener_cfg *, int worker_id);
int	 lsn_id(const struct listener_cfg *);
uint64_t lsn_drops(const struct listener_cfg *);
void	 lsn_watch_drops(void);
void	 lsn_retire(const struct config *const *live, int nlive, int nworkers_live);
void	 lsn_close_others(const int *keep, int nkeep);
void	 lsn_close_all(int unlink_paths);
int	 lsn_inherit(int fd);
int	 lsn_all_fds(int *fds, int max);
void	 lsn_inherit_done(void);
int	 lsn_clear_unix_path(const struct addr *, const char *text);
int	 lsn_bind_unix(int fd, const struct addr *, const char *what, const char *text,
	    const struct sock_perm *);
void	 lsn_update_unix(const struct addr *, const char *what, const char *text,
	    struct sock_perm *now, const struct sock_perm *);

#endif
