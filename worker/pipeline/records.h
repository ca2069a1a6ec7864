/*
 * records: route one framed record to its sinks as an event
 * (worker/pipeline/: the pipeline layer).
 *
 * The layer between the connections and the sinks: a record becomes an
 * event (encode.c), which goes to the sinks its listener names.  May use:
 * common/, protocol/, sinks/.  Pure of I/O: what it writes goes into the
 * sinks' queues.
 *
 * Routes with conditions are in routes.c, the per-client rate limits the
 * connections apply in ratelimit.c, sinks' templates in template.c.
 */
#ifndef INGESTD_RECORDS_H
#define INGESTD_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "encode.h"

int	 records_route(const struct encode_meta *, const struct listener_cfg *, const char *rec,
	    size_t len, int truncated);

#endif
