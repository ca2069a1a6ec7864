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

#include "conntab.h"
#include "http.h"
#include "listeners.h"
#include "log.h"
#include "metrics.h"
#include "procs.h"
#include "stats.h"
#include "version.h"

#define MAX_NAMES	256	/* listener and sink names kept over the server's life */

struct named {
	const char		*name;
	struct listener_counts	 lsn;	/* a listener's */
	struct sink_stats	 st;	/* a sink's */
	struct route_counts	 rt;	/* a route's */
};

/* What the workers counted, summed. */
struct agg {
	struct worker_counts	 w;
	uint64_t		 accepted[CFG_MAX_WORKERS];	/* by worker number */
	uint64_t		 open[CFG_MAX_WORKERS];
	int			 nworkers;
	struct named		 lsn[MAX_NAMES], sink[MAX_NAMES], route[MAX_NAMES];
	int			 nlsn, nsink, nroute;
};

static struct agg		 gone;		/* workers that exited */
static struct event_base	*base;
static struct config		*current;	/* the configuration serving (a reference) */
static void			(*master_figures)(struct metrics_master *);
static struct http_server	*http;
static char			*bound_text;	/* stats.listen served; NULL when none */
static struct sock_perm		 bound_sock;	/* its owner and mode, a unix socket's */
static int			 inherited = -1;	/* from the master a binary upgrade replaces */

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

/* A gauge says how things are now: a worker that is gone adds nothing to it. */
static int
gauge(const struct stat_desc *d)
{
	size_t n = d->metric ? strlen(d->metric) : 0;

	return n > 0 && (n < 6 || strcmp(d->metric + n - 6, "_total") != 0);
}

/* An age: the workers' largest, not their sum. */
static int
oldest(const struct stat_desc *d)
{
	size_t n = d->metric ? strlen(d->metric) : 0;

	return n > 12 && strcmp(d->metric + n - 12, "_age_seconds") == 0;
}

/* to += from, row by row of a table; a worker gone (keep) leaves its gauges out. */
static void
add_rows(void *to, const void *from, const struct stat_desc *d, int n, int keep)
{
	for (int i = 0; i < n; i++) {
		if (keep && gauge(&d[i]))
			continue;
		if (oldest(&d[i]) && STAT_VALUE(from, &d[i]) < STAT_REF(to, &d[i]))
			continue;
		STAT_REF(to, &d[i]) = oldest(&d[i]) ? STAT_VALUE(from, &d[i]) :
		    STAT_REF(to, &d[i]) + STAT_VALUE(from, &d[i]);
	}
}

/* Add one worker's slot; keep: names outlive its config (folding). */
static void
add(struct agg *a, const struct worker_stats *w, const struct config *cf, int id, int keep)
{
	struct named *e;

	add_rows(&a->w, &w->w, stats_worker, stats_nworker, keep);
	if (id >= 0 && id < CFG_MAX_WORKERS) {
		a->accepted[id] += w->w.accepted;
		if (!keep)
			a->open[id] += w->w.accepted + w->w.taken_over - w->w.closed;
		if (id + 1 > a->nworkers)
			a->nworkers = id + 1;
	}
	for (int i = 0; i < cf->nlisteners; i++)
		if ((e = lookup(a->lsn, &a->nlsn, cf->listeners[i].name, keep)) != NULL)
			add_rows(&e->lsn, &w->lsn[i], stats_listener, stats_nlistener, keep);
	for (int i = 0; i < cf->nsinks; i++)
		if ((e = lookup(a->sink, &a->nsink, cf->sinks[i].name, keep)) != NULL)
			add_rows(&e->st, &w->sink[i], stats_sink, stats_nsink, keep);
	for (int i = 0; i < cf->nroutes; i++)
		if ((e = lookup(a->route, &a->nroute, cf->routes[i].name, keep)) != NULL)
			add_rows(&e->rt, &w->route[i], stats_route, stats_nroute, keep);
}

/* A worker exited: keep what it counted, and clear its slot for the next one. */
void
metrics_fold(const struct slot *s)
{
	int i = (int)(s - procs_table()->s);

	add(&gone, stats_slot(i), s->cf, s->id, 1);
	stats_clear(i);
}

static void
collect(struct agg *a)
{
	struct named *e;

	*a = gone;
	for (int i = 0; i < SLOT_MAX; i++) {
		const struct slot *s = &procs_table()->s[i];

		if (s->state != SLOT_FREE && s->pid > 0)
			add(a, stats_slot(i), s->cf, s->id, 0);
	}
	for (int i = 0; current && i < current->nlisteners; i++)
		if (current->listeners[i].datagram &&
		    (e = lookup(a->lsn, &a->nlsn, current->listeners[i].name, 0)) != NULL)
			e->lsn.kernel_drops = lsn_drops(&current->listeners[i]);
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

/* Whether an earlier row of d than i has the same metric (and label, with same_label). */
static int
seen(const struct stat_desc *d, int i, int same_label)
{
	for (int j = 0; j < i; j++)
		if (d[j].metric && strcmp(d[j].metric, d[i].metric) == 0 && (!same_label ||
		    (d[j].label == NULL ? d[i].label == NULL :
		    d[i].label != NULL && strcmp(d[j].label, d[i].label) == 0)))
			return 1;
	return 0;
}

/* The HELP of d[i]'s metric: the first of its rows that has one. */
static const char *
help_of(const struct stat_desc *d, int n, int i)
{
	for (int j = i; j < n; j++)
		if (strcmp(d[j].metric, d[i].metric) == 0 && d[j].help)
			return d[j].help;
	return "";
}

/* The worker table's metrics, each label's value the sum of its rows. */
static void
worker_metrics(struct evbuffer *b, const struct worker_counts *w)
{
	const struct stat_desc *d = stats_worker;
	char name[128];

	for (int i = 0; i < stats_nworker; i++) {
		uint64_t v = 0;

		if (d[i].metric == NULL || seen(d, i, 1))
			continue;
		snprintf(name, sizeof(name), "ingestd_%s", d[i].metric);
		if (!seen(d, i, 0))
			head(b, name, gauge(&d[i]) ? "gauge" : "counter", help_of(d, stats_nworker, i));
		for (int j = i; j < stats_nworker; j++)
			if (d[j].metric && !strcmp(d[j].metric, d[i].metric) && (d[i].label == NULL ?
			    d[j].label == NULL : d[j].label && !strcmp(d[j].label, d[i].label)))
				v += STAT_VALUE(w, &d[j]);
		if (d[i].label)
			labelled(b, name, "reason", d[i].label, v);
		else
			evbuffer_add_printf(b, "%s %llu\n", name, (unsigned long long)v);
	}
}

/*
 * A table's metrics for each named thing (listener="...", sink="..."), and
 * by reason where rows share a metric; base: its counts in v.
 */
static void
named_metrics(struct evbuffer *b, const struct stat_desc *d, int n, const char *key,
    const struct named *v, int nv, size_t base)
{
	char name[128];

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "ingestd_%s", d[i].metric);
		if (!seen(d, i, 0))
			head(b, name, gauge(&d[i]) ? "gauge" : "counter", help_of(d, n, i));
		for (int k = 0; k < nv; k++) {
			evbuffer_add_printf(b, "%s{%s=\"", name, key);
			label(b, v[k].name);
			if (d[i].label)
				evbuffer_add_printf(b, "\",reason=\"%s", d[i].label);
			evbuffer_add_printf(b, "\"} %llu\n", (unsigned long long)
			    STAT_VALUE((const char *)&v[k] + base, &d[i]));
		}
	}
}

/*
 * From the connection table, for the listeners of the configuration
 * serving: connections open now, across every worker and both generations
 * of a reload; and how much of the table is used.
 */
static void
table_metrics(struct evbuffer *b)
{
	const char *name = "ingestd_listener_connections";

	head(b, name, "gauge", "Connections open now, by listener (every worker, every generation).");
	for (int i = 0; current && i < current->nlisteners; i++) {
		const struct listener_cfg *l = &current->listeners[i];

		labelled(b, name, "listener", l->name,
		    (uint64_t)ct_count(lsn_id(l), NULL, l->ipv6_prefix));
	}
	one(b, "ingestd_connection_table_entries", "gauge",
	    "Entries in use in the table that counts connections for the caps.", ct_used());
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
prometheus(struct evbuffer *b, const struct agg *a, const struct metrics_master *m)
{
	per_worker(b, a, a->accepted, "ingestd_connections_accepted_total", "counter",
	    "Connections accepted, by worker number.");
	per_worker(b, a, a->open, "ingestd_connections_open", "gauge",
	    "Connections open now, by worker number.");
	worker_metrics(b, &a->w);
	named_metrics(b, stats_listener, stats_nlistener, "listener", a->lsn, a->nlsn,
	    offsetof(struct named, lsn));
	named_metrics(b, stats_sink, stats_nsink, "sink", a->sink, a->nsink,
	    offsetof(struct named, st));
	named_metrics(b, stats_route, stats_nroute, "route", a->route, a->nroute,
	    offsetof(struct named, rt));
	table_metrics(b);
	one(b, "ingestd_worker_restarts_total", "counter",
	    "Workers that died unexpectedly and were respawned.", procs_restarts());
	head(b, "ingestd_reloads_total", "counter", "Reloads, by result.");
	labelled(b, "ingestd_reloads_total", "result", "ok", m->reloads_ok);
	labelled(b, "ingestd_reloads_total", "result", "failed", m->reloads_failed);
	endpoint(b);
	one(b, "ingestd_generation", "gauge", "The generation serving.", m->generation);
	one(b, "ingestd_workers", "gauge", "Worker processes alive.",
	    (uint64_t)slot_count_alive(procs_table()));
}

/* A JSON string (names are config strings: escape what JSON needs). */
static void
jstr(struct evbuffer *b, const char *s, size_t n)
{
	evbuffer_add(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\')
			evbuffer_add_printf(b, "\\%c", ch);
		else if (ch < 0x20)
			evbuffer_add_printf(b, "\\u%04x", ch);
		else
			evbuffer_add(b, &s[i], 1);
	}
	evbuffer_add(b, "\"", 1);
}

/* Whether a row of d before i has a path that begins with the same len bytes as p. */
static int
path_seen(const struct stat_desc *d, int i, const char *p, size_t len)
{
	for (int j = 0; j < i; j++)
		if (d[j].path && strncmp(d[j].path, p, len) == 0 &&
		    (d[j].path[len] == '\0' || d[j].path[len] == '.'))
			return 1;
	return 0;
}

/*
 * The members of a table's rows whose path begins with prefix (empty, or
 * ending in '.'), nested by the dots of their paths, in the order of the
 * table; base holds the values.  *comma: whether a member was written.
 */
static void
json_members(struct evbuffer *b, const struct stat_desc *d, int n, const void *base,
    const char *prefix, int *comma)
{
	size_t pl = strlen(prefix);

	for (int i = 0; i < n; i++) {
		const char *p = d[i].path, *seg, *dot;
		size_t end;

		if (p == NULL || strncmp(p, prefix, pl) != 0)
			continue;
		seg = p + pl;
		dot = strchr(seg, '.');
		end = dot ? (size_t)(dot - p) : strlen(p);
		if (path_seen(d, i, p, end))
			continue;
		evbuffer_add_printf(b, "%s", *comma ? "," : "");
		*comma = 1;
		jstr(b, seg, p + end - seg);
		if (dot == NULL) {
			evbuffer_add_printf(b, ":%llu", (unsigned long long)STAT_VALUE(base, &d[i]));
		} else {
			char sub[128];
			int inner = 0;

			snprintf(sub, sizeof(sub), "%.*s", (int)(end + 1), p);
			evbuffer_add(b, ":{", 2);
			json_members(b, d, n, base, sub, &inner);
			evbuffer_add(b, "}", 1);
		}
	}
}

/* Each named thing's counts as an object of objects: "listeners":{"name":{...}}. */
static void
json_named(struct evbuffer *b, const char *key, const struct stat_desc *d, int n,
    const struct named *v, int nv, size_t base)
{
	evbuffer_add_printf(b, ",\"%s\":{", key);
	for (int k = 0; k < nv; k++) {
		int comma = 0;

		evbuffer_add_printf(b, "%s", k ? "," : "");
		jstr(b, v[k].name, strlen(v[k].name));
		evbuffer_add(b, ":{", 2);
		json_members(b, d, n, (const char *)&v[k] + base, "", &comma);
		evbuffer_add(b, "}", 1);
	}
	evbuffer_add(b, "}", 1);
}

/* The worker table's top-level groups ("connections", "records"), with the per-worker figures. */
static void
json_groups(struct evbuffer *b, const struct agg *a)
{
	const struct stat_desc *d = stats_worker;
	unsigned long long open = 0;

	for (int i = 0; i < a->nworkers; i++)
		open += a->open[i];
	for (int i = 0; i < stats_nworker; i++) {
		const char *p = d[i].path, *dot = p ? strchr(p, '.') : NULL;
		size_t len = dot ? (size_t)(dot - p) : 0;
		char prefix[64];
		int comma = 0;

		if (dot == NULL || path_seen(d, i, p, len))
			continue;
		snprintf(prefix, sizeof(prefix), "%.*s", (int)(len + 1), p);
		evbuffer_add_printf(b, ",\"%.*s\":{", (int)len, p);
		json_members(b, d, stats_nworker, &a->w, prefix, &comma);
		if (strcmp(prefix, "connections.") == 0) {
			evbuffer_add_printf(b, ",\"open\":%llu,\"per_worker\":[", open);
			for (int k = 0; k < a->nworkers; k++)
				evbuffer_add_printf(b, "%s{\"accepted\":%llu,\"open\":%llu}",
				    k ? "," : "", (unsigned long long)a->accepted[k],
				    (unsigned long long)a->open[k]);
			evbuffer_add(b, "]", 1);
		}
		evbuffer_add(b, "}", 1);
	}
}

static void
json(struct evbuffer *b, const struct agg *a, const struct metrics_master *m)
{
	const struct http_counts *n = http_counts(http);

	evbuffer_add_printf(b, "{\"version\":\"%s\",\"generation\":%u,\"workers\":%d,"
	    "\"worker_restarts\":%llu,\"reloads\":{\"ok\":%llu,\"failed\":%llu}",
	    INGESTD_VERSION, m->generation, slot_count_alive(procs_table()),
	    (unsigned long long)procs_restarts(), (unsigned long long)m->reloads_ok,
	    (unsigned long long)m->reloads_failed);
	json_groups(b, a);
	json_named(b, "listeners", stats_listener, stats_nlistener, a->lsn, a->nlsn,
	    offsetof(struct named, lsn));
	json_named(b, "sinks", stats_sink, stats_nsink, a->sink, a->nsink,
	    offsetof(struct named, st));
	json_named(b, "routes", stats_route, stats_nroute, a->route, a->nroute,
	    offsetof(struct named, rt));
	evbuffer_add_printf(b, ",\"stats_endpoint\":{\"closed\":{\"evicted\":%llu,\"busy\":%llu,"
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

/*
 * /healthz: 200 while a worker of the serving generation runs; 503 while
 * none does (a start whose workers keep failing, all of them respawning).
 */
static int
health(const struct metrics_master *m, struct evbuffer *b, const char **type)
{
	*type = "text/plain; charset=utf-8";
	if (m->accepting) {
		evbuffer_add_printf(b, "ok: generation %u accepting\n", m->generation);
		return 200;
	}
	evbuffer_add_printf(b, "unavailable: no worker of generation %u runs\n", m->generation);
	return 503;
}

/* The http server's handler: /metrics, /stats and /healthz. */
static int
serve(void *arg, const char *path, size_t len, struct evbuffer *b, const char **type)
{
	static struct agg a;	/* large: not on the stack */
	struct metrics_master m = { 0, 0, 0, 0 };
	int prom = is_path(path, len, "/metrics");

	(void)arg;
	master_figures(&m);
	if (is_path(path, len, "/healthz"))
		return health(&m, b, type);
	if (!prom && !is_path(path, len, "/stats")) {
		evbuffer_add_printf(b, "Try /metrics, /stats or /healthz\n");
		return 404;
	}
	collect(&a);
	if (prom) {
		prometheus(b, &a, &m);
		*type = "text/plain; version=0.0.4; charset=utf-8";
	} else {
		json(b, &a, &m);
		*type = "application/json";
	}
	return 200;
}

static int
bind_stats(const struct config *cf)
{
	const struct addr *a = &cf->stats_addr;
	int on = 1, fd;

	int unix_path = a->ss.ss_family == AF_UNIX;

	if (unix_path && lsn_clear_unix_path(a, cf->stats_listen) == -1)
		return -1;
	if ((fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if ((!unix_path && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1) ||
	    (unix_path ? lsn_bind_unix(fd, a, "stats", cf->stats_listen, &cf->stats_sock) :
	    bind(fd, (const struct sockaddr *)&a->ss, a->len)) == -1 || listen(fd, 128) == -1) {
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

/* The master's loop, and how to ask for its own figures at each request. */
void
metrics_init(struct event_base *b, void (*figures)(struct metrics_master *))
{
	base = b;
	master_figures = figures;
}

/*
 * cf is the configuration now (its listeners are the ones counted per
 * listener).  Start, move or stop the endpoint to match it; the running
 * one stays if the new one fails.
 */
void
metrics_configure(struct config *cf)
{
	int fd;

	cfg_ref(cf);
	cfg_unref(current);
	current = cf;
	if (bound_text && strcmp(bound_text, cf->stats_listen) == 0) {
		if (cf->stats_addr.ss.ss_family == AF_UNIX)
			lsn_update_unix(&cf->stats_addr, "stats", bound_text, &bound_sock,
			    &cf->stats_sock);
		return;
	}
	if (cf->stats_listen[0] == '\0') {
		if (bound_text)
			log_notice("stats: %s closed", bound_text);
		unbind();
		if (inherited != -1)
			close(inherited);
		inherited = -1;
		return;
	}
	if (http == NULL && (http = http_new(base, "stats", serve, NULL)) == NULL)
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
	/* The names are the configuration's; only the resolved figures are kept. */
	bound_sock = (struct sock_perm){ NULL, NULL, NULL, cf->stats_sock.uid, cf->stats_sock.gid,
	    cf->stats_sock.perm };
	log_info("stats: serving /metrics, /stats and /healthz on %s", cf->stats_listen);
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
	cfg_unref(current);
	current = NULL;
	http_free(http);
	http = NULL;
	free(bound_text);
	bound_text = NULL;
}
