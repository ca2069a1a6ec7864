/*
 * records: a record becomes one event, encoded straight into the queue of
 * the first sink that takes it and copied to the listener's other sinks.
 */
#include <string.h>

#include "records.h"
#include "sink.h"
#include "worker.h"


static int
copy_to(int idx, const char *line, size_t len)
{
	struct obuf *q = sink_reserve(idx, len);

	if (q == NULL) {
		sink_dropped(idx);
		return -1;
	}
	memcpy(q->p + q->len, line, len);
	q->len += len;
	sink_commit(idx);
	return 0;
}

/*
 * Returns 0 when every sink of the listener queued the event (or
 * on_parse_error dropped it on purpose), -1 when a full sink dropped it.
 */
int
records_route(const struct event_meta *m, const struct listener_cfg *l, const char *rec,
    size_t len, int truncated)
{
	size_t need = EVENT_MAX(len, m->prefixlen), start;
	struct record_stats *stats = &wrk.stats->rec;
	enum event_result r;
	struct obuf *q = NULL;
	int k, rc = 0;

	stats->records++;
	stats->truncated += truncated != 0;
	for (k = 0; k < l->nsink_idx; k++) {
		if ((q = sink_reserve(l->sink_idx[k], need)) != NULL)
			break;
		sink_dropped(l->sink_idx[k]);
		rc = -1;
	}
	if (q == NULL)
		return -1;
	start = q->len;
	r = event_encode(q, m, l, rec, len, truncated);
	if (r == EVENT_DROPPED) {
		stats->parse_dropped++;
		return 0;
	}
	stats->parse_errors += r == EVENT_PARSE_ERROR;
	/* Copy before committing: a commit may write the batch out. */
	for (int j = k + 1; j < l->nsink_idx; j++)
		if (copy_to(l->sink_idx[j], q->p + start, q->len - start) == -1)
			rc = -1;
	sink_commit(l->sink_idx[k]);
	return rc;
}

const struct record_stats *
records_stats(void)
{
	return &wrk.stats->rec;
}
