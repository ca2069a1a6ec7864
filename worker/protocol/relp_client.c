/*
 * relp_client: a RELP session from the client's side (see relp_client.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relp_client.h"
#include "version.h"

#define ANSWER_MAX	(64 * 1024)	/* bytes of an answer kept: its text is only logged */

static const char offer[] = "relp_version=0\nrelp_software=ingestd," INGESTD_VERSION
    "\ncommands=syslog";

int
relpc_init(struct relp_client *c, unsigned window)
{
	memset(c, 0, sizeof(*c));
	if (window < 1 || window > RELPC_WINDOW_MAX ||
	    (c->ring = calloc(window, sizeof(*c->ring))) == NULL)
		return -1;
	c->window = window;
	relpc_reset(c);
	return 0;
}

/* A new connection: a new session, nothing in flight. */
void
relpc_reset(struct relp_client *c)
{
	relp_free(&c->rp);
	relp_init(&c->rp, ANSWER_MAX);
	c->rp.zero_txnr = 1;
	c->head = c->count = 0;
	c->txnr = 0;
	c->state = RELPC_NEW;
	c->why[0] = '\0';
}

void
relpc_free(struct relp_client *c)
{
	relp_free(&c->rp);
	free(c->ring);
	memset(c, 0, sizeof(*c));
}

static unsigned
next_txnr(const struct relp_client *c)
{
	return c->txnr == RELP_TXNR_MAX ? 1 : c->txnr + 1;
}

int
relpc_open(struct relp_client *c, struct obuf *out)
{
	if (relp_frame(out, 1, "open", offer, sizeof(offer) - 1) == -1)
		return -1;
	c->txnr = 1;
	c->state = RELPC_OPENING;
	return 0;
}

/* The session is open and one more record may go. */
int
relpc_room(const struct relp_client *c)
{
	return c->state == RELPC_OPEN && c->count < c->window;
}

/* Send msg as a syslog frame; unit is the caller's queue bytes it stands for. */
int
relpc_send(struct relp_client *c, struct obuf *out, const char *msg, size_t len, size_t unit)
{
	unsigned txnr = next_txnr(c);
	struct relpc_frame *f;

	if (!relpc_room(c) || relp_frame(out, txnr, "syslog", msg, len) == -1)
		return -1;
	f = &c->ring[(c->head + c->count++) % c->window];
	f->txnr = c->txnr = txnr;
	f->answered = 0;
	f->unit = unit;
	return 0;
}

/* "close": the upstream answers it and closes the connection. */
int
relpc_close(struct relp_client *c, struct obuf *out)
{
	unsigned txnr = next_txnr(c);

	if (relp_frame(out, txnr, "close", "", 0) == -1)
		return -1;
	c->txnr = txnr;
	c->state = RELPC_CLOSING;
	return 0;
}

/* The frame in flight with txnr (they go out one number apart), or NULL. */
static struct relpc_frame *
in_flight(struct relp_client *c, unsigned txnr)
{
	unsigned first, d;
	struct relpc_frame *f;

	if (c->count == 0)
		return NULL;
	first = c->ring[c->head].txnr;
	d = txnr >= first ? txnr - first : txnr + (RELP_TXNR_MAX - first);
	if (d >= c->count)
		return NULL;
	f = &c->ring[(c->head + d) % c->window];
	return f->txnr == txnr ? f : NULL;
}

struct feed {
	struct relp_client	*c;
	size_t			*released;
};

/* The session ends: why, with up to 60 bytes of the upstream's text. */
static int
end(struct relp_client *c, const char *what, const char *data, size_t len)
{
	size_t n = len > 60 ? 60 : len;

	for (size_t i = 0; i < n; i++)
		if (data[i] == '\n' || data[i] == '\r')
			n = i;
	snprintf(c->why, sizeof(c->why), "RELP: %s%s%.*s", what, n ? ": " : "", (int)n, data);
	return -1;
}

static int
ok(const char *data, size_t len)
{
	return len >= 3 && memcmp(data, "200", 3) == 0 && (len == 3 || data[3] == ' ' ||
	    data[3] == '\n');
}

/* The answer to open: 200, and syslog among the commands if it lists them. */
static int
opened(struct relp_client *c, const char *data, size_t len)
{
	static const char key[] = "\ncommands=";
	const char *p = memmem(data, len, key, sizeof(key) - 1), *e;

	if (!ok(data, len))
		return end(c, "the upstream refused the session", data, len);
	if (p != NULL) {
		p += sizeof(key) - 1;
		e = memchr(p, '\n', len - (size_t)(p - data));
		e = e ? e : data + len;
		for (const char *w = p; w < e; w++)
			if ((w == p || w[-1] == ',') && e - w >= 6 && memcmp(w, "syslog", 6) == 0 &&
			    (e - w == 6 || w[6] == ','))
				goto found;
		return end(c, "the upstream does not offer the syslog command", "", 0);
	}
found:
	c->state = RELPC_OPEN;
	return 0;
}

static int
on_frame(void *arg, unsigned txnr, const char *cmd, const char *data, size_t len, int truncated)
{
	struct feed *fd = arg;
	struct relp_client *c = fd->c;
	struct relpc_frame *f;

	(void)truncated;
	if (strcmp(cmd, "serverclose") == 0)
		return end(c, "the upstream ends the session (serverclose)", "", 0);
	if (strcmp(cmd, "rsp") != 0)
		return end(c, "unexpected command from the upstream", cmd, strlen(cmd));
	if (c->state == RELPC_OPENING && txnr == 1)
		return opened(c, data, len);
	if (c->state == RELPC_CLOSING && txnr == c->txnr) {
		c->state = RELPC_CLOSED;
		return 0;
	}
	if ((f = in_flight(c, txnr)) == NULL || f->answered)
		return end(c, "an answer to no record in flight", "", 0);
	if (!ok(data, len))
		return end(c, "the upstream refused a record", data, len);
	f->answered = 1;
	while (c->count > 0 && c->ring[c->head].answered) {
		*fd->released += c->ring[c->head].unit;
		c->head = (c->head + 1) % c->window;
		c->count--;
	}
	return 0;
}

/*
 * The upstream's bytes: *released grows by the units of the records now
 * answered, oldest first.  Returns -1 when the session is over, with why.
 */
int
relpc_feed(struct relp_client *c, const char *p, size_t n, size_t *released, const char **why)
{
	struct feed fd = { c, released };
	const char *perr = NULL;

	if (c->why[0] != '\0') {
		*why = c->why;
		return -1;
	}
	if (relp_feed(&c->rp, p, n, on_frame, &fd, &perr) == 0)
		return 0;
	if (perr != NULL)
		snprintf(c->why, sizeof(c->why), "%s from the upstream", perr);
	*why = c->why;
	return -1;
}
