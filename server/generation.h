/*
 * generation: the master's configuration generations, and reload by
 * generations (nginx's): start-up, reload, ready, failed and rollback, and
 * one worker more or fewer.
 */
#ifndef INGESTD_GENERATION_H
#define INGESTD_GENERATION_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "options.h"

/* The master's configuration generations: the master's state, in one place. */
struct generations {
	struct config	*cf;		/* the config of gen */
	struct config	*prev_cf;	/* serving until gen is accepting */
	unsigned	 gen;		/* newest generation */
	unsigned	 serving_gen;	/* newest generation fully accepting */
	int		 nworkers;	/* wanted in gen (TTIN/TTOU change it) */
	long		 reload_started_ms;
	uint64_t	 reloads_ok, reloads_failed;
	int		 ending;	/* the master shuts down: no reload, nothing retired */
};

extern struct generations gens;

struct config	*gen_load_config(const struct options *, char *err, size_t errlen);
void		 gen_init(const struct options *, struct config *);
void		 gen_prepare(const struct config *);
void		 gen_apply_log(const struct config *);
void		 gen_first(void);
void		 gen_reload(void);
int		 gen_changed(unsigned gen);
void		 gen_resize(int delta);
void		 gen_retire_listeners(void);
void		 gen_end(void);

#endif
