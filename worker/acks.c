/*
 * acks: RELP commands, and responses held until the sinks have written
 * what they acknowledge.
 */
#include <stdlib.h>
#include <string.h>

#include "acks.h"
#include "sink.h"
#include "version.h"

/* The responses in held[..end) wait until each sink k has written up to mark[k]. */
struct ack_wait {
	size_t		 end;
	uint64_t	 mark[CFG_MAX_SINKS];
};

static const char offers[] = "200 OK\nrelp_version=0\nrelp_software=ingestd," INGESTD_VERSION
    "\ncommands=syslog";
static const char ok[] = "200 OK";

void
acks_init(struct acks *a, const struct listener_cfg *l)
{
	memset(a, 0, sizeof(*a));
	a->l = l;
	relp_init(&a->rp, l->max_record);
}

void
acks_free(struct acks *a)
{
	relp_free(&a->rp);
	free(a->held.p);
	free(a->w);
	memset(a, 0, sizeof(*a));
}

int
acks_in_frame(const struct acks *a)
{
	return relp_in_frame(&a->rp);
}

static int
respond(struct acks *a, unsigned txnr, const char *text)
{
	return relp_response(&a->held, txnr, text, strlen(text));
}

struct feed_ctx {
	struct acks	*a;
	acks_record_fn	*record;
	void		*arg;
	int		 oom;
};

static int
on_frame(void *arg, unsigned txnr, const char *cmd, const char *data, size_t len, int truncated)
{
	struct feed_ctx *f = arg;
	struct acks *a = f->a;
	const char *answer;

	if (strcmp(cmd, "syslog") == 0 && a->opened) {
		answer = f->record(f->arg, data, len, truncated) == 0 ? ok :
		    "500 a sink's queue is full: the record was dropped";
	} else if (strcmp(cmd, "open") == 0 && !a->opened) {
		a->opened = 1;
		answer = offers;
	} else if (strcmp(cmd, "close") == 0) {
		a->closing = 1;
		answer = "";
	} else if (!a->opened) {
		a->closing = 1;
		answer = "500 the session must begin with open";
	} else {
		answer = "500 unknown command";
	}
	if (respond(a, txnr, answer) == -1) {
		f->oom = 1;
		return -1;
	}
	return a->closing ? -1 : 0;
}

/*
 * Parse what a read brought; records go to record(arg, ...).  Returns -1
 * with why on a protocol error; after "close" (or a refused session) the
 * rest is ignored and closing is set.
 */
int
acks_feed(struct acks *a, const char *data, size_t n, acks_record_fn *record, void *arg,
    const char **why)
{
	struct feed_ctx f = { a, record, arg, 0 };

	*why = NULL;
	if (a->closing)
		return 0;
	if (relp_feed(&a->rp, data, n, on_frame, &f, why) == -1 && !a->closing) {
		if (f.oom)
			*why = "out of memory for responses";
		return -1;
	}
	return 0;
}

static int
reached(const struct acks *a, const struct ack_wait *w)
{
	for (int k = 0; k < a->l->nsink_idx; k++)
		if (!sink_reached(a->l->sink_idx[k], w->mark[k]))
			return 0;
	return 1;
}

/*
 * End of a read: the responses it produced wait for what the sinks hold
 * now, and the sinks are asked to write at the next turn of the loop
 * (group commit) rather than after flush_interval.
 */
int
acks_mark(struct acks *a)
{
	struct ack_wait *w;

	if (a->held.len == a->marked)
		return 0;
	if (a->nw == a->capw) {
		int cap = a->capw ? 2 * a->capw : 4;
		struct ack_wait *p = realloc(a->w, cap * sizeof(*p));

		if (p == NULL)
			return -1;
		a->w = p;
		a->capw = cap;
	}
	w = &a->w[a->nw++];
	w->end = a->held.len;
	for (int k = 0; k < a->l->nsink_idx; k++) {
		int idx = a->l->sink_idx[k];

		w->mark[k] = sink_mark(idx);
		if (!sink_reached(idx, w->mark[k]))
			sink_flush_soon(idx);
	}
	a->marked = a->held.len;
	return 0;
}

/* Move the responses whose records are written to out; -1 when out of memory. */
int
acks_release(struct acks *a, struct obuf *out)
{
	size_t n = 0;
	int i;

	for (i = 0; i < a->nw && reached(a, &a->w[i]); i++)
		n = a->w[i].end;
	if (n == 0)
		return 0;
	if (obuf_reserve(out, n) == -1)
		return -1;
	memcpy(out->p + out->len, a->held.p, n);
	out->len += n;
	a->held.len -= n;
	memmove(a->held.p, a->held.p + n, a->held.len);
	a->marked -= n;
	a->nw -= i;
	memmove(a->w, a->w + i, a->nw * sizeof(*a->w));
	for (int k = 0; k < a->nw; k++)
		a->w[k].end -= n;
	if (a->held.len == 0 && a->held.cap > 65536) {
		free(a->held.p);
		memset(&a->held, 0, sizeof(a->held));
	}
	return 0;
}

/* A draining server ends the session after answering what it has read. */
int
acks_serverclose(struct acks *a)
{
	static const char frame[] = "0 serverclose 0\n";
	struct obuf *h = &a->held;

	if (a->closing)
		return 0;
	a->closing = 1;
	if (obuf_reserve(h, sizeof(frame)) == -1)
		return -1;
	memcpy(h->p + h->len, frame, sizeof(frame) - 1);
	h->len += sizeof(frame) - 1;
	return acks_mark(a);
}
