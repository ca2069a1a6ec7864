/*
 * master: the supervising process.  It owns the config generation, the
 * listening sockets and the slot table, and turns signals into work.
 */
#ifndef INGESTD_MASTER_H
#define INGESTD_MASTER_H

#include <stdint.h>

#include "config.h"
#include "slots.h"

struct event_base;

struct options {
	const char	*config_path;	/* -c, or NULL for the default */
	const char	*pid_path;	/* -p, or NULL for pid_file */
	int		 foreground;	/* -f */
	char *const	*argv;		/* the command line, for a binary upgrade */
};

enum master_state { MASTER_RUNNING, MASTER_QUITTING, MASTER_STOPPING };

struct master {
	struct event_base	*base;
	struct options		 opt;
	struct config		*cf;		/* the config of gen */
	struct config		*prev_cf;	/* serving until gen is accepting */
	unsigned		 gen;		/* newest generation */
	unsigned		 serving_gen;	/* newest generation fully accepting */
	int			 nworkers;	/* wanted in gen (TTIN/TTOU change it) */
	enum master_state	 state;
	int			 exit_code;
	long			 reload_started_ms;
	uint64_t		 restarts;	/* workers respawned after dying */
	uint64_t		 reloads_ok, reloads_failed;
	struct slot_table	 slots;
};

extern struct master srv;

struct config	*master_load_config(const struct options *, char *err, size_t errlen);
const char	*master_pid_path(const struct options *, const struct config *);
int		 master_run(struct config *, const struct options *);
void		 master_generation_ready(unsigned gen);
void		 master_generation_failed(unsigned gen);
void		 master_check_exit(void);

#endif
