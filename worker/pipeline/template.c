/*
 * template: shape an event line member by member (json_next_member: the
 * line is what encode.c wrote, so names need no decoding), and rebuild an
 * RFC 5424 line from a parsed record.
 */
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "template.h"

/* Whether the NUL-terminated v is name (n bytes): no strlen, names are short. */
static int
same_name(const char *v, const char *name, size_t n)
{
	size_t i = 0;

	while (i < n && v[i] == name[i])
		i++;
	return i == n && v[i] == '\0';
}

static int
listed(const struct cfg_names *nm, const char *name, size_t n)
{
	for (int i = 0; i < nm->n; i++)
		if (same_name(nm->v[i], name, n))
			return 1;
	return 0;
}

static void
put(char *out, size_t *o, const char *p, size_t n)
{
	memcpy(out + *o, p, n);
	*o += n;
}

size_t
template_event(const struct sink_cfg *s, const char *ev, size_t len, char *out)
{
	const char *name, *value;
	size_t pos = 0, nlen, vlen, o = 0;
	int k, r;

	out[o++] = '{';
	while ((r = json_next_member(ev, len, &pos, &name, &nlen, &value, &vlen)) == 1) {
		if ((s->fields.n && !listed(&s->fields, name, nlen)) ||
		    listed(&s->drop_fields, name, nlen))
			continue;
		if (o > 1)
			out[o++] = ',';
		for (k = 0; k < s->rename.n; k++)
			if (same_name(s->rename_from[k], name, nlen))
				break;
		if (k < s->rename.n) {
			put(out, &o, s->rename_to[k], strlen(s->rename_to[k]));
		} else {
			out[o++] = '"';
			put(out, &o, name, nlen);
			out[o++] = '"';
		}
		out[o++] = ':';
		put(out, &o, value, vlen);
	}
	if (r == -1) {			/* cannot be: encode.c wrote it; as it came */
		memcpy(out, ev, len);
		return len;
	}
	if (s->statics)
		put(out, &o, s->statics + (o == 1), strlen(s->statics) - (o == 1));
	out[o++] = '}';
	return o;
}

/*
 * A header field: printable US-ASCII without spaces, at most max bytes,
 * "-" when empty (RFC 5424's NILVALUE).
 */
static void
field(char *out, size_t *o, const char *p, size_t n, size_t max)
{
	if (n > max)
		n = max;
	if (n == 0) {
		out[(*o)++] = '-';
		return;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = p[i];

		out[(*o)++] = ch > ' ' && ch < 0x7f ? ch : '_';
	}
}

size_t
template_rfc5424(const struct encode_meta *m, const struct parsed *pr, const char *rec,
    size_t len, char *out)
{
	const struct syslog_msg *sm = &pr->sm;
	int pri = pr->syslog ? sm->pri : 13;	/* user.notice, as logger's */
	size_t o = 0;
	char head[8];

	o += (size_t)snprintf(head, sizeof(head), "<%d>1 ", pri);
	memcpy(out, head, o);
	if (pr->syslog && sm->tslen)
		put(out, &o, sm->ts, sm->tslen);
	else
		put(out, &o, m->received_at, m->received_atlen);
	out[o++] = ' ';
	field(out, &o, pr->syslog ? sm->host.p : NULL, pr->syslog ? sm->host.n : 0, 255);
	out[o++] = ' ';
	field(out, &o, pr->syslog ? sm->app.p : NULL, pr->syslog ? sm->app.n : 0, 48);
	out[o++] = ' ';
	field(out, &o, pr->syslog ? sm->procid.p : NULL, pr->syslog ? sm->procid.n : 0, 128);
	out[o++] = ' ';
	field(out, &o, pr->syslog ? sm->msgid.p : NULL, pr->syslog ? sm->msgid.n : 0, 32);
	out[o++] = ' ';
	if (pr->syslog && sm->sd.n)
		put(out, &o, sm->sd.p, sm->sd.n);
	else
		out[o++] = '-';
	if (pr->syslog ? sm->msg.n : len) {
		const char *p = pr->syslog ? sm->msg.p : rec;
		size_t n = pr->syslog ? sm->msg.n : len;

		out[o++] = ' ';
		for (size_t i = 0; i < n; i++)	/* one line: a line break would cut it */
			out[o++] = p[i] == '\n' || p[i] == '\r' ? ' ' : p[i];
	}
	return o;
}
