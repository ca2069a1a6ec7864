/*
 * stream: the handler of plain record streams (syslog over TCP, JSON or
 * raw lines): the listener's framing cuts the bytes into records, each of
 * which goes into the pipeline.  A record split across reads waits in the
 * framer; one still open when the client closes is delivered then.  A
 * reload hands the connection on with its framer (stream_save).
 */
#include <stdlib.h>

#include "framing.h"
#include "handlers.h"

static void
on_record(void *arg, const char *rec, size_t len, int truncated)
{
	conn_record(arg, rec, len, truncated);
}

static int
stream_start(struct conn *c)
{
	const struct listener_cfg *l = conn_listener(c);
	struct framer *fr = malloc(sizeof(*fr));

	if (fr == NULL)
		return -1;
	frame_init(fr, (enum frame_mode)l->framing, l->max_record);
	conn_set_state(c, fr);
	return 0;
}

static int
stream_feed(struct conn *c, const char *data, size_t n, const char **why)
{
	return frame_feed(conn_state(c), data, n, on_record, c, why);
}

static void
stream_eof(struct conn *c)
{
	frame_finish(conn_state(c), on_record, c);
}

static int
stream_in_record(const struct conn *c)
{
	return frame_in_record(conn_state(c));
}

/* A reload hands the connection over: the framer goes with it, a half-read record too. */
static int
stream_save(const struct conn *c, struct obuf *o)
{
	return frame_save(conn_state(c), o);
}

static int
stream_restore(struct conn *c, const char *p, size_t n)
{
	const struct listener_cfg *l = conn_listener(c);
	struct framer *fr = malloc(sizeof(*fr));

	if (fr == NULL)
		return -1;
	if (frame_restore(fr, p, n, (enum frame_mode)l->framing, l->max_record) == -1) {
		free(fr);
		return -1;
	}
	conn_set_state(c, fr);
	return 0;
}

static void
stream_free(struct conn *c)
{
	struct framer *fr = conn_state(c);

	if (fr != NULL)
		frame_free(fr);
	free(fr);
}

const struct conn_handler stream_handler = {
	.name = "stream",
	.start = stream_start,
	.feed = stream_feed,
	.eof = stream_eof,
	.in_record = stream_in_record,
	.free = stream_free,
	.save = stream_save,
	.restore = stream_restore,
};
