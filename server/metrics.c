/*
 * metrics: the master's HTTP endpoint on stats.listen, Prometheus text at
 * /metrics and JSON at /stats (served by http.c, in the master's loop).
 *
 * Figures are the sum of the live workers' slots (common/stats.c) and of
 * what workers that are gone counted: when a worker exits, its slot is
 * folded into those totals, so counters never go back when a worker is
 * respawned or a generation retires.  Listeners and sinks are labelled by
 * name, so a reload that keeps a name keeps adding to the same series.
 */
#include <stddef.h>
#include <stdlib.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "http.h"
#include "listeners.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "stats.h"
#include "version.h"

#define MAX_NAMES	256	/* listener and sink names kept over the server's life */

struct named {
	const char	*name;
	uint64_t	 records, bytes;	/* listeners */
	struct sink_stats st;			/* sinks */
};

/* What the workers counted, summed. */
struct agg {
	struct conn_totals	 conn;
	struct record_stats	 rec;
	uint64_t		 refused[CT_NREASONS];
	uint64_t		 accepted[CFG_MAX_WORKERS];	/* by worker number */
	uint64_t		 open[CFG_MAX_WORKERS];
	int			 nworkers;
	struct named		 lsn[MAX_NAMES], sink[MAX_NAMES];
	int			 nlsn, nsink;
};

static struct agg		 gone;		/* workers that exited */
static struct http_server	*http;
static char			*bound_text;	/* stats.listen served; NULL when none */
static int			 inherited = -1;	/* from the master a binary upgrade replaces */

static const char *const reason_labels[CT_NREASONS] = {
	"admitted", "allow_deny", "max_connections", "max_connections_per_ip", "table_full",
};

/* The entry for name, added (with the name copied if keep) when new; NULL when full. */
static struct named *
lookup(struct named *v, int *n, const char *name, int keep)
{
	for (int i = 0; i < *n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	if (*n == MAX_NAMES)
		return NULL;
	memset(&v[*n], 0, sizeof(v[*n]));
	if ((v[*n].name = keep ? strdup(name) : name) == NULL)
		return NULL;
	return &v[(*n)++];
}

static void
add_sink(struct sink_stats *to, const struct sink_stats *from, int live)
{
	to->events += from->events;
	to->bytes += from->bytes;
	to->dropped += from->dropped;
	to->errors += from->errors;
	if (live)
		to->queued += from->queued;
}

/* Add one worker's slot; keep: names outlive its config (folding). */
static void
add(struct agg *a, const struct worker_stats *w, const struct config *cf, int id, int keep)
{
	struct named *e;

	a->conn.accepted += w->conn.accepted;
	a->conn.closed += w->conn.closed;
	a->conn.bytes += w->conn.bytes;
	a->conn.framing_errors += w->conn.framing_errors;
	a->conn.idle_timeouts += w->conn.idle_timeouts;
	a->conn.record_timeouts += w->conn.record_timeouts;
	a->conn.send_timeouts += w->conn.send_timeouts;
	a->rec.records += w->rec.records;
	a->rec.truncated += w->rec.truncated;
	a->rec.parse_errors += w->rec.parse_errors;
	a->rec.parse_dropped += w->rec.parse_dropped;
	for (int r = 0; r < CT_NREASONS; r++)
		a->refused[r] += w->refused[r];
	if (id >= 0 && id < CFG_MAX_WORKERS) {
		a->accepted[id] += w->conn.accepted;
		if (!keep)
			a->open[id] += w->conn.accepted - w->conn.closed;
		if (id + 1 > a->nworkers)
			a->nworkers = id + 1;
	}
	for (int i = 0; i < cf->nlisteners; i++) {
		if ((e = lookup(a->lsn, &a->nlsn, cf->listeners[i].name, keep)) == NULL)
			continue;
		e->records += w->lsn_records[i];
		e->bytes += w->lsn_bytes[i];
	}
	for (int i = 0; i < cf->nsinks; i++)
		if ((e = lookup(a->sink, &a->nsink, cf->sinks[i].name, keep)) != NULL)
			add_sink(&e->st, &w->sink[i], !keep);
}

/* A worker exited: keep what it counted, and clear its slot for the next one. */
void
metrics_fold(const struct slot *s)
{
	int i = (int)(s - srv.slots.s);

	add(&gone, stats_slot(i), s->cf, s->id, 1);
	stats_clear(i);
}

static void
collect(struct agg *a)
{
	*a = gone;
	for (int i = 0; i < SLOT_MAX; i++) {
		const struct slot *s = &srv.slots.s[i];

		if (s->state != SLOT_FREE && s->pid > 0)
			add(a, stats_slot(i), s->cf, s->id, 0);
	}
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void
label(struct evbuffer *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			evbuffer_add_printf(b, "\\%c", *v);
		else if (*v == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, v, 1);
	}
}

static void
head(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
one(struct evbuffer *b, const char *name, const char *type, const char *help, uint64_t v)
{
	head(b, name, type, help);
	evbuffer_add_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void
labelled(struct evbuffer *b, const char *name, const char *key, const char *value, uint64_t v)
{
	evbuffer_add_printf(b, "%s{%s=\"", name, key);
	label(b, value);
	evbuffer_add_printf(b, "\"} %llu\n", (unsigned long long)v);
}

static void
per_worker(struct evbuffer *b, const struct agg *a, const uint64_t *v, const char *name,
    const char *type, const char *help)
{
	char id[16];

	head(b, name, type, help);
	for (int i = 0; i < a->nworkers; i++) {
		snprintf(id, sizeof(id), "%d", i);
		labelled(b, name, "worker", id, v[i]);
	}
}

/* One field of struct sink_stats (at offset off) for every sink. */
static void
per_sink(struct evbuffer *b, const struct agg *a, size_t off, const char *metric,
    const char *type, const char *help)
{
	head(b, metric, type, help);
	for (int i = 0; i < a->nsink; i++)
		labelled(b, metric, "sink", a->sink[i].name,
		    *(const uint64_t *)((const char *)&a->sink[i].st + off));
}

/* This endpoint's own defences: what http.c closed, by reason. */
static void
endpoint(struct evbuffer *b)
{
	const struct http_counts *n = http_counts(http);
	const char *name = "ingestd_stats_connections_closed_total";

	head(b, name, "counter", "Connections to this endpoint closed by a limit, by reason.");
	labelled(b, name, "reason", "evicted", n->evicted);
	labelled(b, name, "reason", "busy", n->busy);
	labelled(b, name, "reason", "request_timeout", n->request_timeouts);
	labelled(b, name, "reason", "send_timeout", n->send_timeouts);
	labelled(b, name, "reason", "request_too_large", n->too_large);
	labelled(b, name, "reason", "bad_request", n->bad_requests);
}

static void
prometheus(struct evbuffer *b, const struct agg *a)
{
	per_worker(b, a, a->accepted, "ingestd_connections_accepted_total", "counter",
	    "Connections accepted, by worker number.");
	per_worker(b, a, a->open, "ingestd_connections_open", "gauge",
	    "Connections open now, by worker number.");
	head(b, "ingestd_connections_refused_total", "counter",
	    "Connections closed at accept, by reason.");
	for (int r = CT_REFUSE_ACL; r < CT_NREASONS; r++)
		labelled(b, "ingestd_connections_refused_total", "reason", reason_labels[r],
		    a->refused[r]);
	head(b, "ingestd_connections_closed_total", "counter",
	    "Connections closed by a defence, by reason.");
	labelled(b, "ingestd_connections_closed_total", "reason", "idle_timeout",
	    a->conn.idle_timeouts);
	labelled(b, "ingestd_connections_closed_total", "reason", "record_timeout",
	    a->conn.record_timeouts);
	labelled(b, "ingestd_connections_closed_total", "reason", "send_timeout",
	    a->conn.send_timeouts);
	labelled(b, "ingestd_connections_closed_total", "reason", "framing_error",
	    a->conn.framing_errors);
	head(b, "ingestd_records_total", "counter", "Records received, by listener.");
	for (int i = 0; i < a->nlsn; i++)
		labelled(b, "ingestd_records_total", "listener", a->lsn[i].name, a->lsn[i].records);
	head(b, "ingestd_bytes_total", "counter", "Bytes received, by listener.");
	for (int i = 0; i < a->nlsn; i++)
		labelled(b, "ingestd_bytes_total", "listener", a->lsn[i].name, a->lsn[i].bytes);
	one(b, "ingestd_parse_errors_total", "counter",
	    "Records that did not parse (delivered with parse_error, or dropped).",
	    a->rec.parse_errors + a->rec.parse_dropped);
	one(b, "ingestd_records_truncated_total", "counter",
	    "Records cut to max_record.", a->rec.truncated);
	per_sink(b, a, offsetof(struct sink_stats, events), "ingestd_sink_events_total", "counter", "Events queued, by sink.");
	per_sink(b, a, offsetof(struct sink_stats, bytes), "ingestd_sink_bytes_total", "counter", "Bytes written, by sink.");
	per_sink(b, a, offsetof(struct sink_stats, dropped), "ingestd_sink_dropped_total", "counter",
	    "Events a full \"drop\" queue discarded, or Redis refused for good, by sink.");
	per_sink(b, a, offsetof(struct sink_stats, errors), "ingestd_sink_write_errors_total", "counter",
	    "Failed writes (retried), by sink.");
	per_sink(b, a, offsetof(struct sink_stats, queued), "ingestd_sink_queue_bytes", "gauge",
	    "Bytes waiting in the workers' queues, by sink.");
	one(b, "ingestd_worker_restarts_total", "counter",
	    "Workers that died unexpectedly and were respawned.", srv.restarts);
	head(b, "ingestd_reloads_total", "counter", "Reloads, by result.");
	labelled(b, "ingestd_reloads_total", "result", "ok", srv.reloads_ok);
	labelled(b, "ingestd_reloads_total", "result", "failed", srv.reloads_failed);
	endpoint(b);
	one(b, "ingestd_generation", "gauge", "The generation serving.", srv.serving_gen);
	one(b, "ingestd_workers", "gauge", "Worker processes alive.",
	    (uint64_t)slot_count_alive(&srv.slots));
}

/* A JSON string (names are config strings: escape what JSON needs). */
static void
jstr(struct evbuffer *b, const char *s)
{
	evbuffer_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			evbuffer_add_printf(b, "\\%c", ch);
		else if (ch < 0x20)
			evbuffer_add_printf(b, "\\u%04x", ch);
		else
			evbuffer_add(b, s, 1);
	}
	evbuffer_add(b, "\"", 1);
}

static void
json(struct evbuffer *b, const struct agg *a)
{
	const struct http_counts *n = http_counts(http);
	unsigned long long open = 0, accepted = 0;

	for (int i = 0; i < a->nworkers; i++) {
		open += a->open[i];
		accepted += a->accepted[i];
	}
	evbuffer_add_printf(b, "{\"version\":\"%s\",\"generation\":%u,\"workers\":%d,"
	    "\"worker_restarts\":%llu,\"reloads\":{\"ok\":%llu,\"failed\":%llu},"
	    "\"connections\":{\"accepted\":%llu,\"open\":%llu,\"per_worker\":[",
	    INGESTD_VERSION, srv.serving_gen, slot_count_alive(&srv.slots),
	    (unsigned long long)srv.restarts, (unsigned long long)srv.reloads_ok,
	    (unsigned long long)srv.reloads_failed, accepted, open);
	for (int i = 0; i < a->nworkers; i++)
		evbuffer_add_printf(b, "%s{\"accepted\":%llu,\"open\":%llu}", i ? "," : "",
		    (unsigned long long)a->accepted[i], (unsigned long long)a->open[i]);
	evbuffer_add_printf(b, "],\"refused\":{");
	for (int r = CT_REFUSE_ACL; r < CT_NREASONS; r++)
		evbuffer_add_printf(b, "%s\"%s\":%llu", r > CT_REFUSE_ACL ? "," : "",
		    reason_labels[r], (unsigned long long)a->refused[r]);
	evbuffer_add_printf(b, "},\"closed\":{\"idle_timeout\":%llu,\"record_timeout\":%llu,"
	    "\"send_timeout\":%llu,\"framing_error\":%llu}},\"records\":{\"total\":%llu,"
	    "\"truncated\":%llu,\"parse_errors\":%llu,\"parse_dropped\":%llu},\"listeners\":{",
	    (unsigned long long)a->conn.idle_timeouts, (unsigned long long)a->conn.record_timeouts,
	    (unsigned long long)a->conn.send_timeouts, (unsigned long long)a->conn.framing_errors,
	    (unsigned long long)a->rec.records, (unsigned long long)a->rec.truncated,
	    (unsigned long long)a->rec.parse_errors, (unsigned long long)a->rec.parse_dropped);
	for (int i = 0; i < a->nlsn; i++) {
		evbuffer_add_printf(b, "%s", i ? "," : "");
		jstr(b, a->lsn[i].name);
		evbuffer_add_printf(b, ":{\"records\":%llu,\"bytes\":%llu}",
		    (unsigned long long)a->lsn[i].records, (unsigned long long)a->lsn[i].bytes);
	}
	evbuffer_add_printf(b, "},\"sinks\":{");
	for (int i = 0; i < a->nsink; i++) {
		const struct sink_stats *st = &a->sink[i].st;

		evbuffer_add_printf(b, "%s", i ? "," : "");
		jstr(b, a->sink[i].name);
		evbuffer_add_printf(b, ":{\"events\":%llu,\"bytes\":%llu,\"dropped\":%llu,"
		    "\"write_errors\":%llu,\"queue_bytes\":%llu}", (unsigned long long)st->events,
		    (unsigned long long)st->bytes, (unsigned long long)st->dropped,
		    (unsigned long long)st->errors, (unsigned long long)st->queued);
	}
	evbuffer_add_printf(b, "},\"stats_endpoint\":{\"closed\":{\"evicted\":%llu,\"busy\":%llu,"
	    "\"request_timeout\":%llu,\"send_timeout\":%llu,\"request_too_large\":%llu,"
	    "\"bad_request\":%llu}}}\n", (unsigned long long)n->evicted,
	    (unsigned long long)n->busy, (unsigned long long)n->request_timeouts,
	    (unsigned long long)n->send_timeouts, (unsigned long long)n->too_large,
	    (unsigned long long)n->bad_requests);
}

static int
is_path(const char *path, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(path, want, len) == 0;
}

/* The http server's handler: /metrics and /stats. */
static int
serve(void *arg, const char *path, size_t len, struct evbuffer *b, const char **type)
{
	static struct agg a;	/* large: not on the stack */
	int prom = is_path(path, len, "/metrics");

	(void)arg;
	if (!prom && !is_path(path, len, "/stats")) {
		evbuffer_add_printf(b, "Try /metrics or /stats\n");
		return 404;
	}
	collect(&a);
	if (prom) {
		prometheus(b, &a);
		*type = "text/plain; version=0.0.4; charset=utf-8";
	} else {
		json(b, &a);
		*type = "application/json";
	}
	return 200;
}

static int
bind_stats(const struct config *cf)
{
	const struct addr *a = &cf->stats_addr;
	int on = 1, fd;

	if (a->ss.ss_family == AF_UNIX && lsn_clear_unix_path(a, cf->stats_listen) == -1)
		return -1;
	if ((fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if ((a->ss.ss_family != AF_UNIX &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1) ||
	    bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1 || listen(fd, 128) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
unbind(void)
{
	if (http == NULL || http_fd(http) == -1)
		return;
	http_listen(http, -1);		/* closes the socket */
	free(bound_text);
	bound_text = NULL;
}

/* Start, move or stop the endpoint to match cf; the running one stays if the new one fails. */
void
metrics_configure(const struct config *cf)
{
	int fd;

	if (bound_text && strcmp(bound_text, cf->stats_listen) == 0)
		return;
	if (cf->stats_listen[0] == '\0') {
		if (bound_text)
			log_notice("stats: %s closed", bound_text);
		unbind();
		if (inherited != -1)
			close(inherited);
		inherited = -1;
		return;
	}
	if (http == NULL && (http = http_new(srv.base, "stats", serve, NULL)) == NULL)
		return;
	if (inherited != -1) {
		fd = inherited;		/* the old master's, on the same config */
		inherited = -1;
	} else if ((fd = bind_stats(cf)) == -1) {
		log_warn("stats: cannot listen on %s%s", cf->stats_listen,
		    bound_text ? "; the endpoint stays where it was" : "");
		return;
	}
	unbind();
	if (http_listen(http, fd) == -1) {
		log_warnx("stats: cannot serve on %s", cf->stats_listen);
		close(fd);
		return;
	}
	bound_text = strdup(cf->stats_listen);
	log_info("stats: serving /metrics and /stats on %s", cf->stats_listen);
}

/* A binary upgrade hands over the endpoint's socket; the next configure uses it. */
void
metrics_inherit(int fd)
{
	evutil_make_socket_nonblocking(fd);
	evutil_make_socket_closeonexec(fd);
	inherited = fd;
}

/* The endpoint's socket, for a new binary; -1 when there is none. */
int
metrics_fd(void)
{
	return http ? http_fd(http) : -1;
}

/* In a new worker: the endpoint's sockets are the master's. */
void
metrics_close_in_child(void)
{
	if (http)
		http_close_in_child(http);
}

void
metrics_stop(void)
{
	http_free(http);
	http = NULL;
	free(bound_text);
	bound_text = NULL;
}
