/*
 * routes: test a parsed record against the routes that look at its
 * listener, in order, and gather the sinks of those that match.
 *
 * The fields a condition names are taken from the record as it will be
 * encoded: a syslog record's parts; the whole record as msg for a raw
 * record or one that did not parse; a JSON record's members by path, read
 * from the record itself (json_member, one level at a time).  Nothing is
 * copied but a body member's value.
 */
#include <string.h>

#include "cond.h"
#include "json.h"
#include "proc.h"
#include "routes.h"
#include "stats.h"

#define BODY_VALUE_MAX	4096	/* bytes of a body member looked at; longer: cut */

/* One record's fields, as conditions see them. */
struct fields {
	const struct parsed	*pr;
	const struct listener_cfg *l;
	const struct encode_meta *m;
	const char		*rec;
	size_t			 len;
};

/* A JSON record's member at path ("a.b.c") into buf; its length, or -1 when it has none. */
static ssize_t
body_member(const char *rec, size_t len, const char *path, char *buf, size_t size)
{
	static char level[2][BODY_VALUE_MAX];
	const char *obj = rec;
	ssize_t n = (ssize_t)len;
	int k = 0;

	for (;;) {
		size_t plen = strcspn(path, ".");
		char *out = path[plen] ? level[k] : buf;

		n = json_member(obj, (size_t)n, path, plen, out, path[plen] ? BODY_VALUE_MAX : size);
		if (n < 0 || !path[plen])
			return n;
		obj = out;
		k ^= 1;
		path += plen + 1;
	}
}

/* The value of a string field, or 0 when the record has none. */
static int
string_field(const struct fields *f, const struct cond *c, const char **p, size_t *n)
{
	static char body[BODY_VALUE_MAX];
	const struct syslog_msg *sm = &f->pr->sm;
	struct slice s = { NULL, 0 };
	ssize_t len;

	switch (c->field) {
	case CF_LISTENER:
		*p = f->l->name;
		*n = strlen(*p);
		return 1;
	case CF_TLS_PEER:
		if ((*p = f->m->tls_peer) == NULL)
			return 0;
		*n = strlen(*p);
		return 1;
	case CF_BODY:
		if (f->pr->format != FORMAT_JSON ||
		    (len = body_member(f->rec, f->len, c->path, body, sizeof(body))) < 0)
			return 0;
		*p = body;
		*n = (size_t)len;
		return 1;
	case CF_MSG:
		if (!f->pr->syslog && f->pr->format != FORMAT_JSON) {
			*p = f->rec;
			*n = f->len;
			return 1;
		}
		s = f->pr->syslog ? sm->msg : s;
		break;
	case CF_APP: s = f->pr->syslog ? sm->app : s; break;
	case CF_HOST: s = f->pr->syslog ? sm->host : s; break;
	case CF_PROCID: s = f->pr->syslog ? sm->procid : s; break;
	case CF_MSGID: s = f->pr->syslog ? sm->msgid : s; break;
	default: break;
	}
	*p = s.p;
	*n = s.n;
	return s.n > 0;
}

/* a == b, n bytes each: values are short, and a call to memcmp costs more than the loop. */
static int
same(const char *a, const char *b, size_t n)
{
	while (n > 0 && *a == *b)
		a++, b++, n--;
	return n == 0;
}

static int
string_test(const struct cond *c, const char *p, size_t n)
{
	switch (c->op) {
	case CO_MATCH:
		return cond_regex_match(c, p, n);
	case CO_NOMATCH:
		return !cond_regex_match(c, p, n);
	case CO_CONTAINS:
		return memmem(p, n, c->strs[0].p, c->strs[0].n) != NULL;
	case CO_NE:
		return !(n == c->strs[0].n && same(p, c->strs[0].p, n));
	default:	/* == and in */
		for (int i = 0; i < c->nstrs; i++)
			if (n == c->strs[i].n && same(p, c->strs[i].p, n))
				return 1;
		return 0;
	}
}

static int
test(const struct cond *c, const struct fields *f)
{
	int missing_is = c->op == CO_NE || c->op == CO_NOMATCH;	/* the negations hold */
	const char *p;
	size_t n;

	switch (c->field) {
	case CF_FACILITY:
	case CF_SEVERITY:
		if (!f->pr->syslog)
			return missing_is;
		return (c->set >> (c->field == CF_FACILITY ? f->pr->sm.pri >> 3 :
		    f->pr->sm.pri & 7)) & 1;
	case CF_PEER:
		if (f->m->peer == NULL)
			return missing_is;
		for (int i = 0; i < c->ncidrs; i++)
			if (cidr_match(&c->cidrs[i], f->m->peer))
				return c->op != CO_NE;
		return c->op == CO_NE;
	default:
		if (!string_field(f, c, &p, &n))
			return missing_is;
		return string_test(c, p, n);
	}
}

static int
eval(const struct cond *c, const struct fields *f)
{
	switch (c->kind) {
	case CK_AND:
		return eval(c->a, f) && eval(c->b, f);
	case CK_OR:
		return eval(c->a, f) || eval(c->b, f);
	case CK_NOT:
		return !eval(c->a, f);
	default:
		return test(c, f);
	}
}

static int
add(int *idx, int n, int sink)
{
	for (int i = 0; i < n; i++)
		if (idx[i] == sink)
			return n;
	idx[n] = sink;
	return n + 1;
}

int
routes_pick(const struct listener_cfg *l, const struct encode_meta *m, const struct parsed *pr,
    const char *rec, size_t len, int *idx)
{
	const struct fields f = { pr, l, m, rec, len };
	int n = 0, taken = 0;

	for (int k = 0; k < l->nroute_idx; k++) {
		int ri = l->route_idx[k];
		const struct route_cfg *r = &proc.cf->routes[ri];

		if (r->cond && !eval(r->cond, &f))
			continue;
		proc.stats->route[ri].matched++;
		taken = 1;
		if (r->drop)
			return n > 0 ? n : -1;
		for (int i = 0; i < r->nsink_idx; i++)
			n = add(idx, n, r->sink_idx[i]);
		if (r->final)
			break;
	}
	if (!taken)
		for (int i = 0; i < l->nsink_idx; i++)
			idx[n++] = l->sink_idx[i];
	return n;
}
