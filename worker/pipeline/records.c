/*
 * records: a record is parsed, its sinks are picked (its listener's, or
 * those of the routes that match it: routes.c), and it becomes one event,
 * encoded straight into the queue of the first sink that takes it and
 * copied to the others.  When a sink wants something else (octet-counted
 * frames, or the records as they came: a forward sink's settings), the
 * event is encoded once aside and each sink gets it, or the record, in its
 * own form.
 */
#include <stdio.h>
#include <string.h>

#include "proc.h"
#include "records.h"
#include "routes.h"
#include "sink.h"
#include "template.h"
#include "stats.h"

/*
 * What sink sc writes of the record: the event line (without its LF),
 * shaped by its template or not, the record, or an RFC 5424 line; in *p,
 * *n bytes.
 */
static int
payload(const struct sink_cfg *sc, const struct encode_meta *m, const struct parsed *pr,
    const char *line, size_t linelen, const char *rec, size_t reclen, const char **p,
    size_t *n)
{
	static struct obuf shaped;

	*p = sc->raw ? rec : line;
	*n = sc->raw ? reclen : linelen - 1;
	if (sc->payload == PAYLOAD_RFC5424) {
		shaped.len = 0;
		if (obuf_reserve(&shaped, TEMPLATE_RFC5424_MAX(reclen)) == -1)
			return -1;
		*n = template_rfc5424(m, pr, rec, reclen, shaped.p);
		*p = shaped.p;
	} else if (sc->templated) {
		shaped.len = 0;
		if (obuf_reserve(&shaped, *n + sc->template_extra + 2) == -1)
			return -1;
		*n = template_event(sc, line, linelen - 1, shaped.p);
		*p = shaped.p;
	}
	return 0;
}

/* The record as sink idx wants it (payload), framed as it wants it. */
static int
put(int idx, const struct encode_meta *m, const struct parsed *pr, const char *line,
    size_t linelen, const char *rec, size_t reclen)
{
	const struct sink_cfg *sc = &proc.cf->sinks[idx];
	int octet = sc->octet;
	const char *p;
	size_t n;
	struct obuf *q = NULL;

	if (payload(sc, m, pr, line, linelen, rec, reclen, &p, &n) == 0)
		q = sink_reserve(idx, n + 24);

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

/* Into a buffer aside, then to each sink in its own form. */
static int
deliver_formatted(const struct encode_meta *m, const struct listener_cfg *l,
    const struct parsed *pr, const int *idx, int n, const char *rec, size_t len, int truncated)
{
	static struct obuf ev;
	enum encode_result r;
	int rc = 0;

	ev.len = 0;
	if (obuf_reserve(&ev, ENCODE_MAX(len, m->prefixlen)) == -1)
		return -1;
	r = encode_put(&ev, m, l, pr, rec, len, truncated);
	if (r == ENCODE_DROPPED) {
		proc.stats->w.parse_dropped++;
		return 0;
	}
	proc.stats->w.parse_errors += r == ENCODE_PARSE_ERROR;
	for (int k = 0; k < n; k++)
		if (put(idx[k], m, pr, ev.p, ev.len, rec, len) == -1)
			rc = -1;
	return rc;
}

/* The event into the queue of the first sink of idx that takes it, copied to the others. */
static int
deliver(const struct encode_meta *m, const struct listener_cfg *l, const struct parsed *pr,
    const int *idx, int n, const char *rec, size_t len, int truncated)
{
	size_t need = ENCODE_MAX(len, m->prefixlen), start;
	struct worker_counts *stats = &proc.stats->w;
	enum encode_result r;
	struct obuf *q = NULL;
	int k, rc = 0;

	if (l->sinks_formatted)
		return deliver_formatted(m, l, pr, idx, n, rec, len, truncated);
	for (k = 0; k < n; k++) {
		if ((q = sink_reserve(idx[k], need)) != NULL)
			break;
		sink_dropped(idx[k]);
		rc = -1;
	}
	if (q == NULL)
		return n == 0 ? 0 : -1;
	start = q->len;
	r = encode_put(q, m, l, pr, rec, len, truncated);
	if (r == ENCODE_DROPPED) {
		stats->parse_dropped++;
		return 0;
	}
	stats->parse_errors += r == ENCODE_PARSE_ERROR;
	/* Copy before committing: a commit may write the batch out. */
	for (int j = k + 1; j < n; j++)
		if (put(idx[j], m, pr, q->p + start, q->len - start, rec, len) == -1)
			rc = -1;
	sink_commit(idx[k]);
	return rc;
}

/*
 * Returns 0 when every sink of the record queued the event (or
 * on_parse_error or a route dropped it on purpose), -1 when a full sink
 * dropped it.
 */
int
records_route(const struct encode_meta *m, const struct listener_cfg *l, const char *rec,
    size_t len, int truncated)
{
	int idx[CFG_MAX_SINKS], n;
	struct parsed pr;

	proc.stats->w.records++;
	proc.stats->w.truncated += truncated != 0;
	encode_parse(&pr, m, l, rec, len);
	if (l->nroute_idx == 0)
		return deliver(m, l, &pr, l->sink_idx, l->nsink_idx, rec, len, truncated);
	if ((n = routes_pick(l, m, &pr, rec, len, idx)) < 0)
		return 0;
	return deliver(m, l, &pr, idx, n, rec, len, truncated);
}
