/*
 * cond: the conditions of routes (routes[i].match), parsed once per
 * configuration into a tree; worker/pipeline/routes.c tests events on it.
 *
 *   cond  = or
 *   or    = and { "or" and }
 *   and   = unary { "and" unary }
 *   unary = "not" unary | "(" cond ")" | test
 *   test  = FIELD OP VALUE | FIELD "in" "[" VALUE { "," VALUE } "]"
 *
 * Fields: facility and severity (names or numbers; == != < <= > >= in),
 * app, host, procid, msgid, msg, listener, tls_peer (the identity a TLS
 * client's certificate matched) and body.PATH, a member of a JSON record
 * by a dotted path (== != contains ~ !~ in), peer (the client
 * address: in, == and != against addresses and CIDR blocks).  ~ and !~
 * take a PCRE2 regular expression, compiled (and JIT-compiled where the
 * library can) here.  Strings are "quoted" (\" and \\ inside), or a bare
 * word.  A test of a field the event lacks is false, and its negation
 * (!=, !~) true.  Pure: no I/O.  The full description: ROUTING in
 * ingestd.conf(5).
 */
#ifndef INGESTD_COND_H
#define INGESTD_COND_H

#include <stddef.h>
#include <stdint.h>

#include "cidr.h"

enum cond_kind { CK_AND, CK_OR, CK_NOT, CK_TEST };
enum cond_field {
	CF_FACILITY, CF_SEVERITY, CF_APP, CF_HOST, CF_PROCID, CF_MSGID, CF_MSG, CF_LISTENER,
	CF_TLS_PEER, CF_BODY, CF_PEER
};
enum cond_op { CO_EQ, CO_NE, CO_LT, CO_LE, CO_GT, CO_GE, CO_CONTAINS, CO_MATCH, CO_NOMATCH, CO_IN };

/* A value of a string test. */
struct cond_str {
	char		*p;
	size_t		 n;
};

struct cond {
	enum cond_kind	 kind;
	struct cond	*a, *b;		/* and, or: both; not: a */
	/* a test */
	enum cond_field	 field;
	enum cond_op	 op;
	char		*path;		/* body: "a.b", the member path */
	uint32_t	 set;		/* facility, severity: the values tested (bit n: n) */
	struct cond_str	*strs;		/* == != contains in: the strings */
	int		 nstrs;
	struct cidr	*cidrs;		/* peer */
	int		 ncidrs;
	void		*re;		/* ~ !~: a pcre2_code */
	int		 jit;		/* re was JIT-compiled */
	int		 first;		/* a byte every match begins with (either case), or -1 */
};

/* The tree of text, or NULL with err (at most size bytes) saying why and where. */
struct cond	*cond_parse(const char *text, char *err, size_t size);
void		 cond_free(struct cond *);
/* Whether a ~ or !~ test's regular expression matches s (n bytes). */
int		 cond_regex_match(const struct cond *, const char *s, size_t n);

#endif
