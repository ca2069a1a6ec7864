/*
 * parse_syslog: parse one record as RFC 5424 or RFC 3164 syslog, in place.
 *
 * Pure: no I/O, no allocation.  Every text field is a slice of the record;
 * an absent field (NILVALUE "-", or not sent) has n == 0.  The timestamp is
 * normalised into ts as RFC 3339 text.
 *
 * RFC 5424: "<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD [SP MSG]", the
 *   timestamp with its fraction and offset kept as sent (or "" for "-"),
 *   a real date (no Feb 29 of a common year), structured data checked for
 *   syntax, at most SYSLOG_SD_MAX parameters, and kept raw in sd (walk it
 *   with syslog_sd_walk), a UTF-8 BOM at the start of MSG removed.
 * RFC 3164, as real senders write it: "<PRI>", then a timestamp
 *   "Mmm dd hh:mm:ss" (day space-padded or not) or an RFC 3339 one, then
 *   optionally a host name, then "tag[pid]: msg" or "tag: msg" (app and
 *   procid), else the rest is msg.  A BSD timestamp has no year or zone:
 *   the year is taken from now (the previous year if that would put the
 *   message more than a month in the future), and the zone is the clock's
 *   (its offset written, "+01:00") or UTC ("Z").
 *   Without a timestamp, ts is empty.
 *
 * syslog_parse returns 0, or -1 with *why set ("no PRI", "PRI out of
 * range", "bad structured data", ...) when the record is not syslog.
 * syslog_parse_at does the same with what BSD timestamps need from now
 * worked out beforehand by syslog_clock_set, once for every record
 * received in the same second.
 */
#ifndef INGESTD_PARSE_SYSLOG_H
#define INGESTD_PARSE_SYSLOG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The most SD parameters (an element without any counts as one) a record may have. */
#define SYSLOG_SD_MAX		128
#define SYSLOG_SD_MAX_TEXT	"128"

struct slice {
	const char	*p;
	size_t		 n;
};

struct syslog_msg {
	int		 pri;		/* 0..191 */
	int		 version;	/* 1 for RFC 5424, 0 for RFC 3164 */
	char		 ts[40];	/* RFC 3339, "" when none */
	size_t		 tslen;		/* strlen(ts) */
	struct slice	 host, app, procid, msgid;
	struct slice	 sd;		/* raw "[id k=\"v\"]..." (5424 only) */
	struct slice	 msg;
};

/* One SD parameter; value is raw, still with its \" \\ \] escapes. */
typedef void syslog_sd_fn(void *arg, struct slice id, struct slice name, struct slice value);

struct tz;

/*
 * now's year (UTC) and the day each of its months begins, for BSD
 * timestamps; tz, when set, the zone they are in (else UTC).
 */
struct syslog_clock {
	const struct tz	*tz;
	time_t		 now;
	int64_t		 year;
	int64_t		 month_day[12];	/* days from 1970-01-01 to the 1st */
	char		 year_text[4];	/* year in 4 digits, when it has at most 4 */
};

void	 syslog_clock_set(struct syslog_clock *, time_t now);
int	 syslog_parse(const char *rec, size_t len, time_t now, struct syslog_msg *,
	    const char **why);
int	 syslog_parse_at(const char *rec, size_t len, const struct syslog_clock *,
	    struct syslog_msg *, const char **why);
/* Calls fn for every element with no parameter (name.n == 0) and every parameter. */
void	 syslog_sd_walk(struct slice sd, syslog_sd_fn *fn, void *arg);

#endif
