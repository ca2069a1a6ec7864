/*
 * json: check a JSON record and write JSON text, for events.
 *
 * Pure: no I/O.  Output goes to a struct obuf the caller sized: each
 * function states the most it writes, so the hot path never allocates.
 */
#ifndef INGESTD_JSON_H
#define INGESTD_JSON_H

#include <stddef.h>
#include <sys/types.h>

#include "obuf.h"

#define JSON_MAX_DEPTH	64

/*
 * Validate rec as one JSON object (RFC 8259: strict grammar, valid UTF-8,
 * no control characters in strings, nesting at most JSON_MAX_DEPTH,
 * whitespace around it allowed) and append it without the whitespace
 * outside strings, so that it fits on one line.  Writes at most len bytes.
 * Returns 0, or -1 with *why set and out->len unchanged.
 */
int	 json_copy_object(struct obuf *out, const char *rec, size_t len, const char **why);

/*
 * Append s as a JSON string, quotes included, for ANY bytes: '"', '\\'
 * and control characters are escaped (\n \r \t \b \f, else \u00XX), each
 * byte that is not part of valid UTF-8 (bad lead or continuation bytes,
 * overlong forms, surrogates, beyond U+10FFFF) becomes U+FFFD (\ufffd).
 * Writes at most JSON_STRING_MAX(len) bytes.
 */
#define JSON_STRING_MAX(len)	(6 * (len) + 2)
void	 json_string(struct obuf *out, const char *s, size_t len);

/*
 * Append the value of an RFC 5424 SD-PARAM (escapes \" \\ \] undone) as a
 * JSON string, with the same guarantees as json_string.
 */
void	 json_sd_value(struct obuf *out, const char *s, size_t len);

/*
 * The value of the member named name (nlen bytes) of the JSON object
 * obj..obj+len, at its top level only (members of nested objects, and text
 * inside strings, are skipped), into out, at most size bytes: a string's
 * value decoded (\" \\ \/ \b \f \n \r \t, and \uXXXX to UTF-8 with
 * surrogate pairs joined: \u0000 is a NUL byte, a lone surrogate U+FFFD),
 * any other value as its JSON text.  Member names are compared decoded; the
 * first match is taken.  A longer value is cut at size bytes.  Returns the
 * bytes written, or -1 when the object has no such member, or when it is
 * not well-formed as far as it was read: obj is meant to be JSON that was
 * checked or written by this module, and any bytes are safe.
 */
ssize_t	 json_member(const char *obj, size_t len, const char *name, size_t nlen, char *out,
	    size_t size);

/*
 * The template tmpl into out (at most size bytes), each ${field} replaced
 * by the object's top-level member of that name (json_member), nothing when
 * it has none; clean, when given, rewrites each such value in place (n bytes
 * at p, room for size) and returns its new length.  Returns the length.
 */
/*
 * The next top-level member of a JSON object, from *pos (0: the object's
 * start) on: its name as it stands in the text (between its quotes, not
 * decoded) and its value's text.  Returns 1, 0 after the last member, -1
 * when the text is not an object this module wrote or checked.
 */
int	 json_next_member(const char *obj, size_t len, size_t *pos, const char **name,
	    size_t *nlen, const char **value, size_t *vlen);

size_t	 json_fill(const char *tmpl, const char *obj, size_t len, char *out, size_t size,
	    size_t (*clean)(char *p, size_t n, size_t size));

#endif
