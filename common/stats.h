/*
 * stats: what the workers count, in memory the master maps before the first
 * fork and every worker shares.
 *
 * One slot per entry of the master's worker table, aligned to cache lines
 * and written only by the worker in it, so workers never contend; the
 * master reads every slot to serve /metrics and /stats.  Counters are
 * aligned 64-bit words with one writer each: a reader never sees a torn
 * value.  When a worker dies, the master folds its slot into totals that
 * outlive it, then clears the slot for the next worker.
 *
 * Every counter is described once, in the tables below: its field in the
 * slot, its Prometheus metric, its place in the /stats JSON and its part of
 * the worker's exit lines all come from its row.  A new counter is a row
 * here and the line of code that counts it.
 *
 *   X(field, metric, label, path, help, line, text)
 *     field   the member of the slot's struct (and the name in the code)
 *     metric  Prometheus name after "ingestd_", NULL: not exported; rows
 *             that share a metric and a label are summed
 *     label   the value of its reason="..." label, or NULL
 *     path    its key in /stats, under the group of the table, "a.b" for
 *             a nested object, NULL: not in /stats
 *     help    the metric's HELP text (the first row of a metric gives it)
 *     line    which exit line it is part of (STAT_LINE_*), or STAT_LINE_NONE
 *     text    its part of that line: one %llu, and what comes before it
 */
#ifndef INGESTD_STATS_H
#define INGESTD_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum stat_line { STAT_LINE_NONE, STAT_LINE_EXIT, STAT_LINE_CLOSED, STAT_LINE_REFUSED };

/*
 * A worker's own counters.  Connections accepted and open are also
 * exported by worker number, from accepted, taken_over and closed
 * (server/metrics.c); a connection handed over is closed where it leaves.
 */
#define STATS_WORKER(X)								\
	X(accepted, NULL, NULL, "connections.accepted", NULL, STAT_LINE_EXIT,	\
	    "%llu connections")							\
	X(closed, NULL, NULL, NULL, NULL, STAT_LINE_NONE, NULL)			\
	X(bytes, NULL, NULL, NULL, NULL, STAT_LINE_EXIT, ", %llu bytes")		\
	X(records, NULL, NULL, "records.total", NULL, STAT_LINE_EXIT,		\
	    ", %llu records")							\
	X(truncated, "records_truncated_total", NULL, "records.truncated",	\
	    "Records cut to max_record.", STAT_LINE_EXIT, " (%llu truncated")	\
	X(parse_errors, "parse_errors_total", NULL, "records.parse_errors",	\
	    "Records that did not parse (delivered with parse_error, or dropped).", \
	    STAT_LINE_EXIT, ", %llu parse errors")					\
	X(parse_dropped, "parse_errors_total", NULL, "records.parse_dropped",	\
	    NULL, STAT_LINE_EXIT, ", %llu dropped by on_parse_error)")		\
	X(taken_over, "connections_taken_over_total", NULL, "connections.taken_over", \
	    "Connections a draining generation handed to this one (reload, upgrade).", \
	    STAT_LINE_EXIT, "; %llu connections taken over")			\
	X(handed_over, "connections_handed_over_total", NULL,			\
	    "connections.handed_over",						\
	    "Connections handed to the next generation instead of closed.",	\
	    STAT_LINE_EXIT, ", %llu handed over")					\
	X(refused_acl, "connections_refused_total", "allow_deny",		\
	    "connections.refused.allow_deny",					\
	    "Connections closed at accept, by reason.", STAT_LINE_REFUSED,	\
	    "refused %llu connections by allow/deny")				\
	X(refused_max, "connections_refused_total", "max_connections",		\
	    "connections.refused.max_connections", NULL, STAT_LINE_REFUSED,	\
	    ", %llu by max_connections")						\
	X(refused_per_ip, "connections_refused_total", "max_connections_per_ip", \
	    "connections.refused.max_connections_per_ip", NULL, STAT_LINE_REFUSED, \
	    ", %llu by max_connections_per_ip")					\
	X(refused_full, "connections_refused_total", "table_full",		\
	    "connections.refused.table_full", NULL, STAT_LINE_REFUSED,		\
	    ", %llu with the connection table full")				\
	X(idle_timeouts, "connections_closed_total", "idle_timeout",		\
	    "connections.closed.idle_timeout",					\
	    "Connections closed by a defence, by reason.", STAT_LINE_CLOSED,	\
	    "closed %llu connections for idle_timeout")				\
	X(record_timeouts, "connections_closed_total", "record_timeout",	\
	    "connections.closed.record_timeout", NULL, STAT_LINE_CLOSED,	\
	    ", %llu for record_timeout")						\
	X(send_timeouts, "connections_closed_total", "send_timeout",		\
	    "connections.closed.send_timeout", NULL, STAT_LINE_CLOSED,		\
	    ", %llu for send_timeout")						\
	X(framing_errors, "connections_closed_total", "framing_error",		\
	    "connections.closed.framing_error", NULL, STAT_LINE_CLOSED,		\
	    ", %llu for framing errors")						\
	X(stalls_100ms, "loop_stalls_total", "over_100ms", "loop.stalls.over_100ms", \
	    "Times a worker's event loop came back late by more than 100 ms or 1 s (a tick "	\
	    "every 100 ms that ran that late: the loop was blocked, or starved of CPU), by " \
	    "threshold.", STAT_LINE_NONE, NULL)					\
	X(stalls_1s, "loop_stalls_total", "over_1s", "loop.stalls.over_1s", NULL,	\
	    STAT_LINE_NONE, NULL)

/*
 * What each listener received (metrics labelled listener="name", /stats under
 * "listeners").  kernel_drops is the kernel's count, which the master fills
 * in when it serves the figures; workers leave it at 0.
 */
#define STATS_LISTENER(X)							\
	X(records, "records_total", NULL, "records", "Records received, by listener.", \
	    STAT_LINE_NONE, NULL)							\
	X(bytes, "bytes_total", NULL, "bytes", "Bytes received, by listener.",	\
	    STAT_LINE_NONE, NULL)							\
	X(datagrams, "datagrams_total", NULL, "datagrams",			\
	    "Datagrams read (refused ones too), by listener (udp:// and unixgram:).", \
	    STAT_LINE_NONE, NULL)							\
	X(datagrams_refused, "datagrams_refused_total", NULL, "datagrams_refused", \
	    "Datagrams dropped by allow/deny, by listener.", STAT_LINE_NONE, NULL)	\
	X(kernel_drops, "datagrams_dropped_total", NULL, "datagrams_dropped",	\
	    "Datagrams the kernel dropped because a socket's receive buffer was full, " \
	    "by listener (UDP; the master asks the kernel for them).",		\
	    STAT_LINE_NONE, NULL)							\
	X(tls_handshakes, "tls_handshakes_total", NULL, "tls.handshakes",	\
	    "TLS handshakes completed, by listener.", STAT_LINE_NONE, NULL)	\
	X(tls_resumed, "tls_resumed_total", NULL, "tls.resumed",		\
	    "TLS handshakes that resumed a session (a ticket), by listener.",	\
	    STAT_LINE_NONE, NULL)							\
	X(tls_truncated, "tls_truncated_total", NULL, "tls.truncated",		\
	    "TLS connections that ended inside a record, by listener.", STAT_LINE_NONE, NULL) \
	TLS_FAILURE(X, no_certificate, "TLS handshakes that failed, by listener and reason.") \
	TLS_FAILURE(X, untrusted, NULL) TLS_FAILURE(X, expired, NULL)		\
	TLS_FAILURE(X, revoked, NULL) TLS_FAILURE(X, not_permitted, NULL)	\
	TLS_FAILURE(X, not_tls, NULL) TLS_FAILURE(X, no_shared_params, NULL)	\
	TLS_FAILURE(X, protocol, NULL) TLS_FAILURE(X, closed, NULL)		\
	TLS_FAILURE(X, handshake_timeout, NULL)					\
	X(rate_throttled, "ratelimit_throttled_total", NULL, "ratelimit.throttled",	\
	    "Times a client's connection was held back by its listener's rate limit "	\
	    "(rate_action = throttle), by listener.", STAT_LINE_NONE, NULL)	\
	X(rate_dropped, "ratelimit_dropped_total", NULL, "ratelimit.dropped",	\
	    "Records dropped by the listener's rate limit (rate_action = drop), by listener.", \
	    STAT_LINE_NONE, NULL)

/* One reason of ingestd_tls_handshake_failures_total (enum tls_failure, common/tlsctx.h). */
#define TLS_FAILURE(X, why, help)						\
	X(tls_failed_##why, "tls_handshake_failures_total", #why,		\
	    "tls.handshake_failures." #why, help, STAT_LINE_NONE, NULL)

/* What each sink did (labelled sink="name", /stats under "sinks", its own exit line). */
#define STATS_SINK(X)								\
	X(events, "sink_events_total", NULL, "events", "Events queued, by sink.",	\
	    STAT_LINE_EXIT, "%llu events")						\
	X(bytes, "sink_bytes_total", NULL, "bytes", "Bytes written, by sink.",	\
	    STAT_LINE_EXIT, ", %llu bytes written")					\
	X(dropped, "sink_dropped_total", NULL, "dropped",			\
	    "Events a full \"drop\" queue discarded, or the destination refused for good, " \
	    "by sink.", STAT_LINE_EXIT, ", %llu dropped")				\
	X(errors, "sink_write_errors_total", NULL, "write_errors",		\
	    "Failed writes (retried), by sink.", STAT_LINE_EXIT, ", %llu failed writes") \
	X(resent, "sink_resent_total", NULL, "resent",				\
	    "Events sent again because the upstream did not answer them (forward over RELP, " \
	    "nats), by sink.", STAT_LINE_EXIT, ", %llu sent again")			\
	X(duplicates, "sink_duplicates_total", NULL, "duplicates",		\
	    "Events sent again that the destination already held and kept once (a nats "	\
	    "sink: JetStream's duplicate window dropped the copy), by sink.",	\
	    STAT_LINE_EXIT, ", %llu duplicates dropped by the destination")	\
	X(spool_bytes, "sink_spool_bytes", NULL, "spool.bytes",			\
	    "Bytes of spool segments on disk, by sink.", STAT_LINE_NONE, NULL)	\
	X(spool_records, "sink_spool_records", NULL, "spool.records",		\
	    "Events in the spool not yet delivered (those of spools taken over once read), " \
	    "by sink.", STAT_LINE_NONE, NULL)					\
	X(spool_segments, "sink_spool_segments", NULL, "spool.segments",	\
	    "Spool segment files, by sink.", STAT_LINE_NONE, NULL)			\
	X(spool_oldest_age, "sink_spool_oldest_age_seconds", NULL, "spool.oldest_age_seconds", \
	    "Age of the oldest event read from the spool and not yet delivered (the largest " \
	    "of the workers'), by sink.", STAT_LINE_NONE, NULL)			\
	X(spool_corrupt, "sink_spool_corrupt_total", NULL, "spool.corrupt",	\
	    "Spool records skipped as torn or corrupt (and segments or ledgers unreadable), " \
	    "by sink.", STAT_LINE_EXIT, ", %llu spool records skipped")		\
	X(spool_taken_over, "sink_spool_taken_over_total", NULL, "spool.taken_over", \
	    "Spools of workers gone that a worker took over, by sink.", STAT_LINE_NONE, NULL) \
	X(spool_recovered, "sink_spool_recovered_total", NULL, "spool.recovered", \
	    "Events read from spools taken over (some may have been delivered before the " \
	    "crash that left them: at least once), by sink.", STAT_LINE_EXIT,	\
	    ", %llu recovered from spools taken over")				\
	X(queued, "sink_queue_bytes", NULL, "queue_bytes",			\
	    "Bytes waiting in the workers' queues, by sink.", STAT_LINE_NONE, NULL)

/* What each route took (metrics labelled route="name", /stats under "routes"). */
#define STATS_ROUTE(X)								\
	X(matched, "route_matched_total", NULL, "matched",			\
	    "Events a route matched (and sent to its sinks, or dropped), by route.", \
	    STAT_LINE_NONE, NULL)

#define STAT_FIELD(field, ...)	uint64_t field;

struct worker_counts	{ STATS_WORKER(STAT_FIELD) };
struct listener_counts	{ STATS_LISTENER(STAT_FIELD) };
struct sink_stats	{ STATS_SINK(STAT_FIELD) };
struct route_counts	{ STATS_ROUTE(STAT_FIELD) };

struct worker_stats {
	struct worker_counts	 w;
	struct listener_counts	 lsn[CFG_MAX_LISTENERS];	/* by listener index */
	struct sink_stats	 sink[CFG_MAX_SINKS];		/* by sink index */
	struct route_counts	 route[CFG_MAX_ROUTES];		/* by route index */
	uint64_t		 forbidden_call;		/* killed by its sandbox: the call's number + 1 */
} __attribute__((aligned(64)));

/* One row of a table above, for the code that reads every counter. */
struct stat_desc {
	size_t		 off;		/* in its struct */
	const char	*metric, *label, *path, *help;
	enum stat_line	 line;
	const char	*text;
};

extern const struct stat_desc stats_worker[], stats_listener[], stats_sink[], stats_route[];
extern const int stats_nworker, stats_nlistener, stats_nsink, stats_nroute;

/* The counter a row describes, in one struct of its table. */
#define STAT_VALUE(base, d)	(*(const uint64_t *)((const char *)(base) + (d)->off))
#define STAT_REF(base, d)	(*(uint64_t *)((char *)(base) + (d)->off))

int			 stats_init(int nslots);
struct worker_stats	*stats_slot(int slot);
void			 stats_clear(int slot);
uint64_t		 stats_sink_sum(int sink, size_t off);
uint64_t		*stats_refused(struct worker_counts *, int why);
uint64_t		*stats_tls_failed(struct listener_counts *, int why);
size_t			 stats_line(const struct stat_desc *, int n, const void *base, enum stat_line,
			    char *buf, size_t size);

#endif
