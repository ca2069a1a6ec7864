/*
 * relp: a RELP frame parser that takes bytes as they arrive, and the
 * frames a server or a client sends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relp.h"

enum { S_TXNR, S_CMD, S_LEN, S_DATA, S_TRAILER };

void
relp_init(struct relp_parser *p, size_t max_record)
{
	memset(p, 0, sizeof(*p));
	p->max_record = max_record;
	p->state = S_TXNR;
}

void
relp_free(struct relp_parser *p)
{
	free(p->buf);
	p->buf = NULL;
	p->len = 0;
}

/* A frame has begun and is not finished. */
int
relp_in_frame(const struct relp_parser *p)
{
	return p->state != S_TXNR || p->digits > 0;
}

static int
fail(const char **why, const char *reason)
{
	*why = reason;
	return -1;
}

/* Add a digit to *v, at most RELP_DIGITS of them; no leading zero unless alone. */
static int
digit(struct relp_parser *p, size_t *v, char ch)
{
	if (p->digits == RELP_DIGITS || (p->digits == 1 && *v == 0))
		return -1;
	*v = *v * 10 + (size_t)(ch - '0');
	p->digits++;
	return 0;
}

static int
is_cmd_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}

/* Keep split data, up to max_record bytes; returns -1 when out of memory. */
static int
gather(struct relp_parser *p, const char *data, size_t n)
{
	size_t room = p->max_record > p->len ? p->max_record - p->len : 0;

	if (n > room)
		n = room;
	if (n == 0)
		return 0;
	if (p->buf == NULL && (p->buf = malloc(p->max_record)) == NULL)
		return -1;
	memcpy(p->buf + p->len, data, n);
	p->len += n;
	return 0;
}

static int
deliver(struct relp_parser *p, const char *data, size_t len, relp_frame_fn *fn, void *arg)
{
	int truncated = p->datalen > p->max_record, rc;

	if (truncated && len > p->max_record)
		len = p->max_record;
	rc = fn(arg, p->txnr, p->cmd, data, len, truncated);
	relp_free(p);
	return rc;
}

static void
next_frame(struct relp_parser *p)
{
	p->state = S_TXNR;
	p->txnr = 0;
	p->digits = 0;
	p->cmdlen = 0;
	p->datalen = 0;
	p->left = 0;
}

int
relp_feed(struct relp_parser *p, const char *data, size_t n, relp_frame_fn *fn, void *arg,
    const char **why)
{
	const char *end = data + n;
	size_t v;

	while (data < end) {
		char ch = *data;

		switch (p->state) {
		case S_TXNR:
			if (ch >= '0' && ch <= '9') {
				v = p->txnr;
				if (digit(p, &v, ch) == -1)
					return fail(why, "RELP: bad transaction number");
				p->txnr = (unsigned)v;
			} else if (ch == ' ' && p->digits > 0 && (p->txnr > 0 || p->zero_txnr)) {
				p->state = S_CMD;
				p->digits = 0;
			} else if (ch == '\n' && p->digits == 0) {
				;	/* tolerated between frames */
			} else {
				return fail(why, "RELP: bad transaction number");
			}
			data++;
			break;
		case S_CMD:
			if (is_cmd_char(ch) && p->cmdlen < RELP_CMD_MAX) {
				p->cmd[p->cmdlen++] = ch;
			} else if (ch == ' ' && p->cmdlen > 0) {
				p->cmd[p->cmdlen] = '\0';
				p->state = S_LEN;
			} else {
				return fail(why, "RELP: bad command");
			}
			data++;
			break;
		case S_LEN:
			if (ch >= '0' && ch <= '9') {
				if (digit(p, &p->datalen, ch) == -1)
					return fail(why, "RELP: bad data length");
				data++;
				break;
			}
			if (p->digits == 0 || (ch != ' ' && ch != '\n') ||
			    (ch == '\n' && p->datalen != 0))
				return fail(why, "RELP: bad data length");
			if (ch == '\n') {	/* DATALEN 0, no data */
				data++;
				if (deliver(p, "", 0, fn, arg) == -1)
					return -1;
				next_frame(p);
				break;
			}
			data++;
			p->left = p->datalen;
			p->state = S_DATA;
			break;
		case S_DATA: {
			size_t take = (size_t)(end - data) < p->left ? (size_t)(end - data) : p->left;

			if (take == p->left && p->len == 0) {
				/* whole in this read: in place */
				p->left = 0;
				p->state = S_TRAILER;
				if (deliver(p, data, take, fn, arg) == -1)
					return -1;
			} else {
				if (gather(p, data, take) == -1)
					return fail(why, "RELP: out of memory");
				p->left -= take;
				if (p->left == 0) {
					p->state = S_TRAILER;
					if (deliver(p, p->buf ? p->buf : "", p->len, fn, arg) == -1)
						return -1;
				}
			}
			data += take;
			break;
		}
		case S_TRAILER:
			if (ch != '\n')
				return fail(why, "RELP: no LF after the data");
			data++;
			next_frame(p);
			break;
		}
	}
	return 0;
}

/* Append "TXNR rsp LEN DATA\n" (or "TXNR rsp 0\n"); -1 when out of memory. */
/* Append one frame: "TXNR CMD LEN[ DATA]\n". */
int
relp_frame(struct obuf *o, unsigned txnr, const char *cmd, const char *data, size_t len)
{
	size_t need = RELP_FRAME_MAX(len);
	int n;

	if (obuf_reserve(o, need) == -1)
		return -1;
	if (len == 0)
		n = snprintf(o->p + o->len, need, "%u %s 0\n", txnr, cmd);
	else
		n = snprintf(o->p + o->len, need, "%u %s %zu ", txnr, cmd, len);
	o->len += n;
	if (len) {
		memcpy(o->p + o->len, data, len);
		o->len += len;
		o->p[o->len++] = '\n';
	}
	return 0;
}

int
relp_response(struct obuf *o, unsigned txnr, const char *data, size_t len)
{
	return relp_frame(o, txnr, "rsp", data, len);
}
