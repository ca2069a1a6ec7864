/*
 * ratelimit: each listener's per-client limits (rate_records, rate_bytes,
 * rate_burst): a token bucket per client address (an IPv6 prefix of
 * ipv6_prefix bits counts as one; behind a balancer, the client in the
 * PROXY header), held by each worker for the clients it serves.
 *
 * "throttle": what a read brought is charged, and a client in debt is not
 * read from until its bucket is full enough again (ratelimit_charge gives
 * the wait).  "drop": each record must find its tokens (ratelimit_admit),
 * or it is dropped.
 */
#ifndef INGESTD_RATELIMIT_H
#define INGESTD_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

/* Whether listener l limits its clients at all. */
int	 ratelimit_on(const struct listener_cfg *);
/* Charge records and bytes to sa's bucket on l: the ms to hold sa back, 0 if none. */
long	 ratelimit_charge(const struct listener_cfg *, const struct sockaddr *, uint64_t records,
	    size_t bytes, int64_t now_ms);
/* Whether one record of len bytes from sa may pass on l now (charged if so). */
int	 ratelimit_admit(const struct listener_cfg *, const struct sockaddr *, size_t len,
	    int64_t now_ms);

#endif
