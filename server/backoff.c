#include "backoff.h"

long
backoff_next(long prev_ms, long uptime_ms)
{
	if (prev_ms <= 0 || uptime_ms >= BACKOFF_STABLE_MS)
		return BACKOFF_MIN_MS;
	if (prev_ms >= BACKOFF_MAX_MS / 2)
		return BACKOFF_MAX_MS;
	return prev_ms * 2;
}
