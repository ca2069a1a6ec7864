/*
 * cond: parse a route's condition (see cond.h for the grammar) into a tree.
 *
 * A recursive descent over tokens read one at a time; every error says
 * where (the column, counted from 1) and what was expected.  Depth is
 * bounded (COND_DEPTH) so that a hostile configuration cannot exhaust the
 * stack of `ingestd -t`.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <ctype.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cond.h"

#define COND_DEPTH	64	/* nested not and parentheses */
#define TOKEN_MAX	4096	/* bytes of a string or word */

enum token { T_END, T_WORD, T_STRING, T_OP, T_LPAREN, T_RPAREN, T_LBRACKET, T_RBRACKET,
	T_COMMA, T_BAD };

struct parser {
	const char	*text, *p;
	enum token	 tok;
	const char	*at;		/* where tok begins */
	char		 word[TOKEN_MAX + 1];	/* T_WORD, T_STRING (decoded), T_OP */
	size_t		 len;
	int		 depth;
	char		*err;
	size_t		 errsize;
	int		 failed;
};

static const char *const facilities[] = {
	"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
	"authpriv", "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1",
	"local2", "local3", "local4", "local5", "local6", "local7", NULL
};
static const char *const severities[] = {
	"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", NULL
};
static const struct { const char *name; enum cond_field f; } fields[] = {
	{ "facility", CF_FACILITY }, { "severity", CF_SEVERITY }, { "app", CF_APP },
	{ "host", CF_HOST }, { "procid", CF_PROCID }, { "msgid", CF_MSGID }, { "msg", CF_MSG },
	{ "listener", CF_LISTENER }, { "tls_peer", CF_TLS_PEER }, { "peer", CF_PEER },
};
static const char *const ops[] = {
	"==", "!=", "<", "<=", ">", ">=", "contains", "~", "!~", "in"
};

static void __attribute__((format(printf, 2, 3)))
error(struct parser *ps, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	if (ps->failed)
		return;
	ps->failed = 1;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(ps->err, ps->errsize, "at column %d: %s", (int)(ps->at - ps->text) + 1, why);
}

static int
word_char(int c)
{
	return isalnum(c) || c == '_' || c == '.' || c == '-' || c == '/' || c == ':';
}

/* A "quoted string" at ps->p, decoded into word. */
static void
read_string(struct parser *ps)
{
	const char *p = ps->p + 1;

	ps->len = 0;
	for (; *p && *p != '"'; p++) {
		if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
			p++;
		if (ps->len == TOKEN_MAX) {
			ps->tok = T_BAD;
			error(ps, "a string longer than %d bytes", TOKEN_MAX);
			return;
		}
		ps->word[ps->len++] = *p;
	}
	ps->word[ps->len] = '\0';
	if (*p != '"') {
		ps->tok = T_BAD;
		error(ps, "a string without its closing \"");
		return;
	}
	ps->tok = T_STRING;
	ps->p = p + 1;
}

/* The next token into ps->tok (and word). */
static void
next(struct parser *ps)
{
	static const char punct[] = "()[],";
	static const enum token ptok[] = { T_LPAREN, T_RPAREN, T_LBRACKET, T_RBRACKET, T_COMMA };
	const char *p = ps->p, *q;

	while (isspace((unsigned char)*p))
		p++;
	ps->at = ps->p = p;
	if (*p == '\0') {
		ps->tok = T_END;
	} else if ((q = strchr(punct, *p)) != NULL) {
		ps->tok = ptok[q - punct];
		ps->p = p + 1;
	} else if (*p == '"') {
		read_string(ps);
	} else if (strchr("=!<>~", *p)) {
		size_t n = (p[1] == '=' || (p[0] == '!' && p[1] == '~')) ? 2 : 1;

		memcpy(ps->word, p, n);
		ps->word[n] = '\0';
		ps->len = n;
		ps->tok = T_OP;
		ps->p = p + n;
	} else if (word_char((unsigned char)*p)) {
		for (q = p; word_char((unsigned char)*q); q++)
			;
		if ((size_t)(q - p) > TOKEN_MAX) {
			ps->tok = T_BAD;
			error(ps, "a word longer than %d bytes", TOKEN_MAX);
			return;
		}
		ps->len = (size_t)(q - p);
		memcpy(ps->word, p, ps->len);
		ps->word[ps->len] = '\0';
		ps->tok = T_WORD;
		ps->p = q;
	} else {
		ps->tok = T_BAD;
		error(ps, "unexpected character '%c'", *p);
	}
}

static int
is_word(const struct parser *ps, const char *w)
{
	return ps->tok == T_WORD && strcmp(ps->word, w) == 0;
}

static struct cond *
node(enum cond_kind kind, struct cond *a, struct cond *b)
{
	struct cond *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		cond_free(a);
		cond_free(b);
		return NULL;
	}
	c->kind = kind;
	c->a = a;
	c->b = b;
	return c;
}

static int
name_index(const char *const *names, const char *w)
{
	for (int i = 0; names[i]; i++)
		if (strcmp(names[i], w) == 0)
			return i;
	return -1;
}

/* A facility or severity: a name (error, warn and panic as rsyslog takes them) or a number. */
static int
level_value(struct parser *ps, enum cond_field f)
{
	int max = f == CF_FACILITY ? 23 : 7, v;
	char *end;

	if (ps->tok != T_WORD && ps->tok != T_STRING) {
		error(ps, "expected a %s", f == CF_FACILITY ? "facility" : "severity");
		return -1;
	}
	if (f == CF_SEVERITY && strcmp(ps->word, "error") == 0)
		v = 3;
	else if (f == CF_SEVERITY && strcmp(ps->word, "warn") == 0)
		v = 4;
	else if (f == CF_SEVERITY && strcmp(ps->word, "panic") == 0)
		v = 0;
	else if ((v = name_index(f == CF_FACILITY ? facilities : severities, ps->word)) < 0) {
		long n = strtol(ps->word, &end, 10);

		v = *ps->word && *end == '\0' && n >= 0 && n <= max ? (int)n : -1;
	}
	if (v < 0)
		error(ps, "\"%s\" is no %s (a name such as %s, or 0 to %d)", ps->word,
		    f == CF_FACILITY ? "facility" : "severity",
		    f == CF_FACILITY ? "local0" : "warning", max);
	return v;
}

/* The values of facility OP v or severity OP v (the lower, the more severe). */
static uint32_t
level_set(enum cond_op op, int v, int max)
{
	uint32_t all = (2u << max) - 1, bit = 1u << v, below = bit - 1;

	switch (op) {
	case CO_EQ: return bit;
	case CO_NE: return all & ~bit;
	case CO_LT: return below;
	case CO_LE: return below | bit;
	case CO_GT: return all & ~(below | bit);
	default: return all & ~below;	/* CO_GE */
	}
}

static int
add_string(struct parser *ps, struct cond *c)
{
	struct cond_str *v = reallocarray(c->strs, c->nstrs + 1, sizeof(*v));

	if (v == NULL)
		return -1;
	c->strs = v;
	if ((v[c->nstrs].p = malloc(ps->len + 1)) == NULL)
		return -1;
	memcpy(v[c->nstrs].p, ps->word, ps->len + 1);
	v[c->nstrs++].n = ps->len;
	return 0;
}

static int
add_cidr(struct parser *ps, struct cond *c)
{
	struct cidr *v = reallocarray(c->cidrs, c->ncidrs + 1, sizeof(*v));
	const char *why = NULL;

	if (v == NULL)
		return -1;
	c->cidrs = v;
	if (cidr_parse(ps->word, &v[c->ncidrs], &why) == -1) {
		error(ps, "\"%s\": %s", ps->word, why ? why : "not an address or CIDR block");
		return -1;
	}
	c->ncidrs++;
	return 0;
}

static int
compile_regex(struct parser *ps, struct cond *c)
{
	PCRE2_UCHAR msg[256];
	PCRE2_SIZE off;
	uint32_t type, unit;
	int rc;

	c->re = pcre2_compile((PCRE2_SPTR)ps->word, ps->len, 0, &rc, &off, NULL);
	if (c->re == NULL) {
		pcre2_get_error_message(rc, msg, sizeof(msg));
		error(ps, "regular expression \"%s\": %s at offset %zu", ps->word, (char *)msg,
		    (size_t)off);
		return -1;
	}
	c->jit = pcre2_jit_compile(c->re, PCRE2_JIT_COMPLETE) == 0;	/* else interpreted */
	c->first = -1;
	if (pcre2_pattern_info(c->re, PCRE2_INFO_FIRSTCODETYPE, &type) == 0 && type == 1 &&
	    pcre2_pattern_info(c->re, PCRE2_INFO_FIRSTCODEUNIT, &unit) == 0 && unit < 256)
		c->first = (int)unit;
	return 0;
}

/* One value of a test into c; -1 on error. */
static int
value(struct parser *ps, struct cond *c)
{
	int v;

	if (ps->tok != T_WORD && ps->tok != T_STRING) {
		error(ps, "expected a value (a word or a \"string\")");
		return -1;
	}
	if (c->field == CF_FACILITY || c->field == CF_SEVERITY) {
		if ((v = level_value(ps, c->field)) < 0)
			return -1;
		c->set |= c->op == CO_IN ? 1u << v : level_set(c->op, v,
		    c->field == CF_FACILITY ? 23 : 7);
		return 0;
	}
	if (c->field == CF_PEER)
		return add_cidr(ps, c);
	if (c->op == CO_MATCH || c->op == CO_NOMATCH)
		return compile_regex(ps, c);
	return add_string(ps, c);
}

/* The field of a test, into c; -1 on error. */
static int
field(struct parser *ps, struct cond *c)
{
	if (ps->tok != T_WORD) {
		error(ps, "expected a field (severity, app, msg, body.PATH, ...)");
		return -1;
	}
	if (strncmp(ps->word, "body.", 5) == 0 && ps->len > 5) {
		c->field = CF_BODY;
		if ((c->path = strdup(ps->word + 5)) == NULL)
			return -1;
		if (strstr(c->path, "..") || c->path[strlen(c->path) - 1] == '.') {
			error(ps, "\"%s\": an empty member name in the path", ps->word);
			return -1;
		}
		return 0;
	}
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strcmp(ps->word, fields[i].name) == 0) {
			c->field = fields[i].f;
			return 0;
		}
	error(ps, "unknown field \"%s\" (facility, severity, app, host, procid, msgid, msg, "
	    "listener, tls_peer, peer or body.PATH)", ps->word);
	return -1;
}

/* Whether op applies to the field of c. */
static int
op_fits(const struct cond *c)
{
	switch (c->field) {
	case CF_FACILITY:
	case CF_SEVERITY:
		return c->op <= CO_GE || c->op == CO_IN;
	case CF_PEER:
		return c->op == CO_EQ || c->op == CO_NE || c->op == CO_IN;
	default:
		return c->op == CO_EQ || c->op == CO_NE || c->op >= CO_CONTAINS;
	}
}

static struct cond *
test(struct parser *ps)
{
	struct cond *c = node(CK_TEST, NULL, NULL);
	int op = -1;

	if (c == NULL || field(ps, c) == -1)
		goto bad;
	next(ps);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if ((ps->tok == T_OP || ps->tok == T_WORD) && strcmp(ps->word, ops[i]) == 0)
			op = (int)i;
	if (op < 0) {
		error(ps, "expected an operator (== != < <= > >= contains ~ !~ in)");
		goto bad;
	}
	c->op = op;
	if (!op_fits(c)) {
		error(ps, "%s does not apply to this field", ps->word);
		goto bad;
	}
	next(ps);
	if (c->op != CO_IN) {
		if (value(ps, c) == -1)
			goto bad;
		next(ps);
		return c;
	}
	if (ps->tok != T_LBRACKET) {
		error(ps, "expected [ after in");
		goto bad;
	}
	do {
		next(ps);
		if (value(ps, c) == -1)
			goto bad;
		next(ps);
	} while (ps->tok == T_COMMA);
	if (ps->tok != T_RBRACKET) {
		error(ps, "expected , or ] in the list");
		goto bad;
	}
	next(ps);
	return c;
bad:
	if (!ps->failed)
		error(ps, "out of memory");
	cond_free(c);
	return NULL;
}

static struct cond *or_expr(struct parser *);

static struct cond *
unary(struct parser *ps)
{
	struct cond *c;

	if (++ps->depth > COND_DEPTH) {
		error(ps, "nested more than %d deep", COND_DEPTH);
		return NULL;
	}
	if (is_word(ps, "not")) {
		next(ps);
		c = (c = unary(ps)) ? node(CK_NOT, c, NULL) : NULL;
	} else if (ps->tok == T_LPAREN) {
		next(ps);
		if ((c = or_expr(ps)) != NULL && ps->tok != T_RPAREN) {
			error(ps, "expected )");
			cond_free(c);
			c = NULL;
		}
		next(ps);
	} else {
		c = test(ps);
	}
	ps->depth--;
	return c;
}

/* operand { word operand }, left to right: and, or. */
static struct cond *
chain(struct parser *ps, const char *word, enum cond_kind kind,
    struct cond *(*operand)(struct parser *))
{
	struct cond *c = operand(ps);

	while (c && is_word(ps, word)) {
		next(ps);
		c = node(kind, c, operand(ps));
		if (c && c->b == NULL) {
			cond_free(c);
			c = NULL;
		}
	}
	return c;
}

static struct cond *
and_expr(struct parser *ps)
{
	return chain(ps, "and", CK_AND, unary);
}

static struct cond *
or_expr(struct parser *ps)
{
	return chain(ps, "or", CK_OR, and_expr);
}

struct cond *
cond_parse(const char *text, char *err, size_t size)
{
	struct parser ps = { .text = text, .p = text, .err = err, .errsize = size };
	struct cond *c;

	next(&ps);
	if (ps.tok == T_END) {
		ps.at = text;
		error(&ps, "an empty condition");
		return NULL;
	}
	if ((c = or_expr(&ps)) != NULL && ps.tok != T_END) {
		error(&ps, "expected and, or, or the end of the condition");
		cond_free(c);
		return NULL;
	}
	if (c == NULL && !ps.failed)
		error(&ps, "out of memory");
	return c;
}

void
cond_free(struct cond *c)
{
	if (c == NULL)
		return;
	cond_free(c->a);
	cond_free(c->b);
	free(c->path);
	for (int i = 0; i < c->nstrs; i++)
		free(c->strs[i].p);
	free(c->strs);
	free(c->cidrs);
	pcre2_code_free(c->re);
	free(c);
}

/*
 * A value without the byte every match begins with cannot match: most
 * values are ruled out by memchr(3) alone, without the call into PCRE2.
 */
static int
cannot_match(const struct cond *c, const char *s, size_t n)
{
	int other = c->first >= 'a' && c->first <= 'z' ? c->first - 32 :
	    c->first >= 'A' && c->first <= 'Z' ? c->first + 32 : -1;

	return c->first >= 0 && memchr(s, c->first, n) == NULL &&
	    (other < 0 || memchr(s, other, n) == NULL);
}

int
cond_regex_match(const struct cond *c, const char *s, size_t n)
{
	static pcre2_match_data *md;
	int rc;

	if (cannot_match(c, s, n))
		return 0;
	if (md == NULL && (md = pcre2_match_data_create(1, NULL)) == NULL)
		return 0;
	rc = c->jit ? pcre2_jit_match(c->re, (PCRE2_SPTR)s, n, 0, 0, md, NULL) :
	    pcre2_match(c->re, (PCRE2_SPTR)s, n, 0, 0, md, NULL);
	return rc >= 0;		/* 0: matched, the vector too small for the groups */
}
