/*
 * routes: which sinks an event goes to, by the routes of the configuration
 * (routes[i]: a condition, sinks or drop, final or falling through) and,
 * for an event no route takes, its listener's sinks.  See ROUTING in
 * ingestd.conf(5).
 */
#ifndef INGESTD_ROUTES_H
#define INGESTD_ROUTES_H

#include <stddef.h>

#include "config.h"
#include "encode.h"

/*
 * The sinks (indices) of one parsed record into idx, at most CFG_MAX_SINKS;
 * returns how many, or -1 when a route dropped it.  Counts what each route
 * matched.
 */
int	 routes_pick(const struct listener_cfg *, const struct encode_meta *,
	    const struct parsed *, const char *rec, size_t len, int *idx);

#endif
