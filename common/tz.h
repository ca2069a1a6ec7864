/*
 * tz: a time zone of the tz database (a listener's timezone), read from
 * the system's zoneinfo (TZif files, RFC 8536) when the configuration is
 * loaded, for the RFC 3164 timestamps of senders that log local time.
 *
 * The file's transitions cover the past and, in Debian's "fat" files, up
 * to 2037; later instants follow its footer, a POSIX TZ rule, when that
 * is of the usual "Mm.w.d" form (else the last transition's offset holds).
 */
#ifndef INGESTD_TZ_H
#define INGESTD_TZ_H

#include <stddef.h>
#include <stdint.h>

struct tz;

/* The zone name (e.g. "Europe/Berlin") from $TZDIR or /usr/share/zoneinfo; NULL with err. */
struct tz	*tz_load(const char *name, char *err, size_t size);
/* The zone a TZif file's bytes describe, or NULL when they are none (version 2 or later). */
struct tz	*tz_from(const unsigned char *, size_t);
void		 tz_free(struct tz *);
/* Seconds east of UTC at the UTC instant utc. */
int32_t		 tz_offset_utc(const struct tz *, int64_t utc);
/*
 * The offset of a wall-clock time (seconds since 1970-01-01T00:00 as if
 * it were UTC): in a gap (clocks put forward), the offset before it; in
 * an overlap (clocks put back), the first of the two, the earlier instant.
 */
int32_t		 tz_offset_local(const struct tz *, int64_t local);

#endif
