/*
 * records: route one framed record to its listener's sinks as an event.
 */
#ifndef INGESTD_RECORDS_H
#define INGESTD_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"
#include "stats.h"

int	 records_route(const struct event_meta *, const struct listener_cfg *, const char *rec,
	    size_t len, int truncated);
const struct record_stats *records_stats(void);

#endif
