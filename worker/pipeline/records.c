/*
 * records: a record becomes one event, encoded straight into the queue of
 * the first sink that takes it and copied to the listener's other sinks.
 * When a sink wants something else (octet-counted frames, or the records as
 * they came: a forward sink's settings), the event is encoded once aside
 * and each sink gets it, or the record, in its own form.
 */
#include <stdio.h>
#include <string.h>

#include "proc.h"
#include "records.h"
#include "sink.h"
#include "stats.h"

/* The event line (with its LF) or the record, framed as sink idx wants. */
static int
put(int idx, const char *line, size_t linelen, const char *rec, size_t reclen)
{
	const struct sink_cfg *sc = &proc.cf->sinks[idx];
	int octet = sc->octet, raw = sc->raw;
	const char *p = raw ? rec : line;
	size_t n = raw ? reclen : linelen - 1;
	struct obuf *q = sink_reserve(idx, n + 24);

	if (q == NULL) {
		sink_dropped(idx);
		return -1;
	}
	if (octet)
		q->len += snprintf(q->p + q->len, 24, "%zu ", n);
	memcpy(q->p + q->len, p, n);
	q->len += n;
	if (!octet)
		q->p[q->len++] = '\n';
	sink_commit(idx);
	return 0;
}

static int
route_formatted(const struct encode_meta *m, const struct listener_cfg *l, const char *rec,
    size_t len, int truncated)
{
	static struct obuf ev;
	enum encode_result r;
	int rc = 0;

	ev.len = 0;
	if (obuf_reserve(&ev, ENCODE_MAX(len, m->prefixlen)) == -1)
		return -1;
	r = encode_event(&ev, m, l, rec, len, truncated);
	if (r == ENCODE_DROPPED) {
		proc.stats->w.parse_dropped++;
		return 0;
	}
	proc.stats->w.parse_errors += r == ENCODE_PARSE_ERROR;
	for (int k = 0; k < l->nsink_idx; k++)
		if (put(l->sink_idx[k], ev.p, ev.len, rec, len) == -1)
			rc = -1;
	return rc;
}

/*
 * Returns 0 when every sink of the listener queued the event (or
 * on_parse_error dropped it on purpose), -1 when a full sink dropped it.
 */
int
records_route(const struct encode_meta *m, const struct listener_cfg *l, const char *rec,
    size_t len, int truncated)
{
	size_t need = ENCODE_MAX(len, m->prefixlen), start;
	struct worker_counts *stats = &proc.stats->w;
	enum encode_result r;
	struct obuf *q = NULL;
	int k, rc = 0;

	stats->records++;
	stats->truncated += truncated != 0;
	if (l->sinks_formatted)
		return route_formatted(m, l, rec, len, truncated);
	for (k = 0; k < l->nsink_idx; k++) {
		if ((q = sink_reserve(l->sink_idx[k], need)) != NULL)
			break;
		sink_dropped(l->sink_idx[k]);
		rc = -1;
	}
	if (q == NULL)
		return -1;
	start = q->len;
	r = encode_event(q, m, l, rec, len, truncated);
	if (r == ENCODE_DROPPED) {
		stats->parse_dropped++;
		return 0;
	}
	stats->parse_errors += r == ENCODE_PARSE_ERROR;
	/* Copy before committing: a commit may write the batch out. */
	for (int j = k + 1; j < l->nsink_idx; j++)
		if (put(l->sink_idx[j], q->p + start, q->len - start, rec, len) == -1)
			rc = -1;
	sink_commit(l->sink_idx[k]);
	return rc;
}
