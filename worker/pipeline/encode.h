/*
 * encode: one record becomes one event, a line of JSON (NDJSON).
 *
 *   {"received_at":"2026-11-24T00:43:19.318123Z","peer":"127.0.0.1:40112",
 *    "listener":"syslog","facility":"user","severity":"notice",
 *    "timestamp":"...","host":"...","app":"...","procid":"...","msgid":"...",
 *    "sd":{"id":{"name":"value"}},"msg":"..."}
 *
 * A JSON record becomes "body":{...}; a raw record "msg"; a record that
 * fails to parse keeps its text in "msg" with the reason in "parse_error";
 * a truncated one has "truncated":true.  Absent fields are left out.
 * Output is valid UTF-8 JSON whatever the input bytes.
 */
#ifndef INGESTD_ENCODE_H
#define INGESTD_ENCODE_H

#include <stddef.h>
#include <time.h>

#include "config.h"
#include "json.h"
#include "parse_syslog.h"

/* Most bytes encode_event appends: every field is an escaped slice of the record. */
#define ENCODE_MAX(len, metalen)	(8 * (len) + (metalen) + 512)

enum encode_result { ENCODE_OK, ENCODE_PARSE_ERROR, ENCODE_DROPPED };

/*
 * The time of a read (encode_set_time) and the connection's prefix.  What
 * depends only on the second is worked out when the second changes.
 */
struct encode_meta {
	char		 received_at[64];	/* RFC 3339 UTC, microseconds */
	size_t		 received_atlen;	/* 0 before the first encode_set_time */
	size_t		 secondlen;	/* of received_at up to the microseconds */
	time_t		 now;
	struct syslog_clock clock;	/* for BSD timestamps, at now */
	const char	*prefix;	/* ,"peer":"...","listener":"..." pre-encoded */
	size_t		 prefixlen;
	const struct sockaddr *peer;	/* the client's address (routes' peer), or NULL */
	const char	*tls_peer;	/* the identity its certificate matched, or NULL */
};

/* A record as parsed, before it is encoded (what routes look at). */
struct parsed {
	int		 format;	/* FORMAT_SYSLOG, FORMAT_JSON or FORMAT_RAW */
	int		 syslog;	/* a syslog record that parsed: sm holds it */
	struct syslog_msg sm;
	const char	*why;		/* syslog: why it did not parse */
};

/* Most bytes encode_prefix appends for a peer, a listener name and more of these lengths. */
#define ENCODE_PREFIX_MAX(peerlen, namelen, morelen) \
	(JSON_STRING_MAX(peerlen) + JSON_STRING_MAX(namelen) + (morelen) + 20)

struct sockaddr;

void			 encode_set_time(struct encode_meta *, const struct timespec *);
void			 encode_parse(struct parsed *, const struct encode_meta *,
			    const struct listener_cfg *, const char *rec, size_t len);
enum encode_result	 encode_put(struct obuf *, const struct encode_meta *,
			    const struct listener_cfg *, const struct parsed *, const char *rec,
			    size_t len, int truncated);
void			 encode_prefix(struct obuf *, const char *peer, const char *listener,
			    const char *more);
enum encode_result	 encode_event(struct obuf *, const struct encode_meta *,
			    const struct listener_cfg *, const char *rec, size_t len, int truncated);

#endif
