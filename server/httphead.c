/*
 * httphead: parse an HTTP/1.x request head (see httphead.h).
 */
#include <string.h>
#include <strings.h>

#include "httphead.h"

/* RFC 9110 5.6.2: tchar. */
static int
tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static size_t
token_len(const char *p, const char *end)
{
	const char *s = p;

	while (p < end && tchar((unsigned char)*p))
		p++;
	return (size_t)(p - s);
}

static int
fail(struct httphead *h, int status, const char *why)
{
	h->status = status;
	h->why = why;
	return -1;
}

/* The path of a request target t of n bytes: its query cut off, its scheme and host skipped. */
static int
target(struct httphead *h, const char *t, size_t n)
{
	const char *end = t + n, *q;

	if (n == 1 && t[0] == '*') {
		h->path = t;
		h->pathlen = 1;
		return 0;
	}
	if (n > 7 && strncasecmp(t, "http://", 7) == 0)
		t += 7;
	else if (n > 8 && strncasecmp(t, "https://", 8) == 0)
		t += 8;
	else if (t[0] != '/')
		return fail(h, 400, "request target is not a path, an absolute URI or \"*\"");
	while (t < end && *t != '/' && *t != '?')
		t++;		/* the absolute form's host; none in origin form */
	for (q = t; q < end && *q != '?' && *q != '#'; q++)
		;
	if (q == t) {
		h->path = "/";
		h->pathlen = 1;
	} else {
		h->path = t;
		h->pathlen = (size_t)(q - t);
	}
	return 0;
}

static int
version(struct httphead *h, const char *v, size_t n)
{
	if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
	    v[7] < '0' || v[7] > '9')
		return fail(h, 400, "malformed HTTP version");
	if (v[5] != '1')
		return fail(h, 505, "HTTP version not supported");
	h->minor = v[7] == '0' ? 0 : 1;
	return 0;
}

/* "METHOD SP TARGET SP HTTP/1.N", one space each. */
static int
request_line(struct httphead *h, const char *p, size_t n)
{
	const char *end = p + n, *t;
	size_t m = token_len(p, end);

	if (m == 0 || m == n || p[m] != ' ')
		return fail(h, 400, "malformed method");
	h->method = p;
	h->methodlen = m;
	for (t = p + m + 1, p = t; p < end && (unsigned char)*p > ' ' && (unsigned char)*p < 0x7f;
	    p++)
		;
	if (p == t || p == end || *p != ' ')
		return fail(h, 400, "malformed request target");
	if (target(h, t, (size_t)(p - t)) == -1)
		return -1;
	p++;
	return version(h, p, (size_t)(end - p));
}

static int
header_line(struct httphead *h, const char *p, size_t n)
{
	size_t m;

	if (p[0] == ' ' || p[0] == '\t')
		return fail(h, 400, "folded header line");
	m = token_len(p, p + n);
	if (m == 0 || m == n || p[m] != ':')
		return fail(h, 400, "malformed header line");
	return 0;
}

/* One line, without its CRLF or LF: 1 when it ends the head, 0 to go on, -1 when refused. */
static int
line(struct httphead *h, const char *p, size_t n)
{
	if (!h->started) {
		if (n == 0)
			return 0;	/* RFC 9112 2.2: empty lines before the request */
		h->started = 1;
		return request_line(h, p, n);
	}
	return n == 0 ? 1 : header_line(h, p, n);
}

void
httphead_init(struct httphead *h)
{
	memset(h, 0, sizeof(*h));
}

/*
 * buf holds the len bytes received so far, the ones given before included:
 * 1 when the head is complete (h->len), 0 when more is needed, -1 when it is
 * refused (h->status, h->why).
 */
int
httphead_feed(struct httphead *h, const char *buf, size_t len)
{
	const char *nl;
	size_t end;
	int rc;

	while (h->scanned < len &&
	    (nl = memchr(buf + h->scanned, '\n', len - h->scanned)) != NULL) {
		end = (size_t)(nl - buf);
		h->scanned = end + 1;
		if (end > h->line && buf[end - 1] == '\r')
			end--;
		rc = line(h, buf + h->line, end - h->line);
		h->line = h->scanned;
		if (rc == 1)
			h->len = h->scanned;
		if (rc != 0)
			return rc;
	}
	h->scanned = len;
	return 0;
}
