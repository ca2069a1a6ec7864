/*
 * backoff: how long to wait before respawning a worker that died.
 *
 * The first respawn waits BACKOFF_MIN_MS; each further death doubles the
 * wait up to BACKOFF_MAX_MS, and a worker that ran BACKOFF_STABLE_MS or more
 * resets it.  A crash loop thus costs one fork per 30 s at most.
 */
#ifndef INGESTD_BACKOFF_H
#define INGESTD_BACKOFF_H

#define BACKOFF_MIN_MS		100
#define BACKOFF_MAX_MS		30000
#define BACKOFF_STABLE_MS	60000

long	backoff_next(long prev_ms, long uptime_ms);

#endif
