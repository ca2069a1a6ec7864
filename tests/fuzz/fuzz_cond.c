/*
 * fuzz_cond: any text given as a route's condition either parses into a
 * well-formed tree or is refused with a message that says where; nothing
 * crashes, leaks or recurses without bound.  Each regular expression that
 * compiles is also run on the input itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cond.h"
#include "fuzz.h"

#define TEXT_MAX	8192

/* Every node of c is what the parser makes; returns the tests in it. */
static int
check(const struct cond *c, const char *text, size_t n)
{
	switch (c->kind) {
	case CK_AND:
	case CK_OR:
		if (c->a == NULL || c->b == NULL)
			abort();
		return check(c->a, text, n) + check(c->b, text, n);
	case CK_NOT:
		if (c->a == NULL || c->b != NULL)
			abort();
		return check(c->a, text, n);
	case CK_TEST:
		if (c->a || c->b || (c->field == CF_BODY) != (c->path != NULL))
			abort();
		if ((c->op == CO_MATCH || c->op == CO_NOMATCH) != (c->re != NULL))
			abort();
		if ((c->field == CF_FACILITY || c->field == CF_SEVERITY) &&
		    (c->set >> (c->field == CF_FACILITY ? 24 : 8)) != 0)
			abort();
		if (c->re)
			(void)cond_regex_match(c, text, n);
		return 1;
	}
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char text[TEXT_MAX + 1];
	char err[600];
	struct cond *c;

	if (size > TEXT_MAX)
		size = TEXT_MAX;
	memcpy(text, data, size);
	text[size] = '\0';
	err[0] = '\0';
	if ((c = cond_parse(text, err, sizeof(err))) == NULL) {
		if (strncmp(err, "at column ", 10) != 0)
			abort();
		return 0;
	}
	if (check(c, text, strlen(text)) < 1)
		abort();
	cond_free(c);
	return 0;
}
