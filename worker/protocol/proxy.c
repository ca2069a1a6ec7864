/*
 * proxy: parse a PROXY protocol header, v1 or v2, as its bytes arrive.
 *
 * The first byte decides the version: CR begins the v2 signature, anything
 * else must be the "P" of v1.  Each byte is checked as it comes, so a
 * stream that is no such header is refused at its first wrong byte rather
 * than after a timeout.  A v1 line is kept whole (107 bytes at most) and
 * decoded at its CRLF, as the specification asks; of a v2 header only the
 * 16-byte head and the addresses it needs are kept, and the TLVs after
 * them are counted off without being stored.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy.h"

#define V1_SIG		"PROXY "
#define V1_SIGLEN	(sizeof(V1_SIG) - 1)
#define V2_SIGLEN	12
#define V2_KEEP		(PROXY_V2_HEAD + PROXY_V2_ADDRS)

#define V2_LOCAL	0x0
#define V2_PROXY	0x1
#define V2_AF_INET	0x1
#define V2_AF_INET6	0x2
#define V2_AF_MAX	0x3	/* AF_UNIX: valid, but no address we can use */
#define V2_TR_UNSPEC	0x0
#define V2_TR_MAX	0x2	/* DGRAM */

static const unsigned char v2_sig[V2_SIGLEN] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

static int
fail(const char **why, const char *reason)
{
	*why = reason;
	return -1;
}

void
proxy_init(struct proxy_parser *p)
{
	memset(p, 0, sizeof(*p));
}

/* Whether any byte of a header has been read. */
int
proxy_started(const struct proxy_parser *p)
{
	return p->version != 0;
}

/* Decimal 0 to 65535 without leading zeros, in network order. */
static int
parse_port(const char *s, in_port_t *port)
{
	size_t n = strspn(s, "0123456789");
	long v = 0;

	if (n == 0 || n > 5 || s[n] != '\0' || (s[0] == '0' && n > 1))
		return -1;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	if (v > 65535)
		return -1;
	*port = htons((uint16_t)v);
	return 0;
}

/* A v1 address and port; inet_pton refuses IPv4 numbers with leading zeros. */
static int
v1_addr(int family, const char *host, const char *port, struct sockaddr_storage *ss,
    socklen_t *len, const char **why)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		*len = sizeof(*sin);
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return fail(why, "PROXY v1 header: bad IPv4 address");
		if (parse_port(port, &sin->sin_port) == -1)
			return fail(why, "PROXY v1 header: bad port");
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		*len = sizeof(*sin6);
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return fail(why, "PROXY v1 header: bad IPv6 address");
		if (parse_port(port, &sin6->sin6_port) == -1)
			return fail(why, "PROXY v1 header: bad port");
	}
	return 0;
}

/* Exactly n non-empty fields, each followed by one space but the last. */
static int
split(char *s, char **f, int n)
{
	for (int i = 0; i < n; i++) {
		f[i] = s;
		s += strcspn(s, " ");
		if (s == f[i])
			return -1;
		if (i < n - 1) {
			if (*s != ' ')
				return -1;
			*s++ = '\0';
		}
	}
	return *s == '\0' ? 0 : -1;
}

/* The line after "PROXY ", without its CRLF. */
static int
v1_decode(struct proxy_parser *p, char *s, const char **why)
{
	char *f[4];
	int family;

	if (strncmp(s, "UNKNOWN", 7) == 0 && (s[7] == '\0' || s[7] == ' ')) {
		p->local = 1;		/* whatever follows is ignored */
		return 1;
	}
	if (strncmp(s, "TCP4 ", 5) == 0)
		family = AF_INET;
	else if (strncmp(s, "TCP6 ", 5) == 0)
		family = AF_INET6;
	else
		return fail(why, "PROXY v1 header: protocol is not TCP4, TCP6 or UNKNOWN");
	if (split(s + 5, f, 4) == -1)
		return fail(why, "PROXY v1 header: expected SRC DST SPORT DPORT");
	if (v1_addr(family, f[0], f[2], &p->src, &p->srclen, why) == -1 ||
	    v1_addr(family, f[1], f[3], &p->dst, &p->dstlen, why) == -1)
		return -1;
	return 1;
}

/* One byte of a v1 line: 1 at its end, 0 for more, -1 when it cannot be one. */
static int
v1_byte(struct proxy_parser *p, unsigned char b, const char **why)
{
	if (p->len < V1_SIGLEN && b != (unsigned char)V1_SIG[p->len])
		return fail(why, "no PROXY header");
	if (p->len > 0 && p->buf[p->len - 1] == '\r' && b != '\n')
		return fail(why, "PROXY v1 header: CR without LF");
	if (b == '\n') {
		if (p->buf[p->len - 1] != '\r')
			return fail(why, "PROXY v1 header: LF without CR");
		p->buf[p->len - 1] = '\0';
		return v1_decode(p, (char *)p->buf + V1_SIGLEN, why);
	}
	if (p->len == PROXY_V1_MAX - 1)
		return fail(why, "PROXY v1 header: no CRLF within 107 bytes");
	p->buf[p->len++] = b;
	return 0;
}

/* Whether a complete v2 head announces an address we take. */
static int
v2_has_addr(const struct proxy_parser *p)
{
	int fam = p->buf[13] >> 4, tr = p->buf[13] & 0xf;

	return (p->buf[12] & 0xf) == V2_PROXY && tr != V2_TR_UNSPEC &&
	    (fam == V2_AF_INET || fam == V2_AF_INET6);
}

/* One byte of the 16-byte v2 head, checked where it stands. */
static int
v2_head_byte(struct proxy_parser *p, unsigned char b, const char **why)
{
	size_t at = p->seen;

	if (at < V2_SIGLEN && b != v2_sig[at])
		return fail(why, "no PROXY header");
	if (at == 12 && (b >> 4) != 2)
		return fail(why, "PROXY v2 header: version is not 2");
	if (at == 12 && (b & 0xf) != V2_LOCAL && (b & 0xf) != V2_PROXY)
		return fail(why, "PROXY v2 header: command is neither LOCAL nor PROXY");
	/* LOCAL ignores the family; PROXY must name a defined one. */
	if (at == 13 && (p->buf[12] & 0xf) == V2_PROXY && ((b >> 4) > V2_AF_MAX ||
	    (b & 0xf) > V2_TR_MAX))
		return fail(why, "PROXY v2 header: unknown address family or transport");
	p->buf[p->len++] = b;
	p->seen++;
	if (p->seen < PROXY_V2_HEAD)
		return 0;
	p->total = PROXY_V2_HEAD + ((size_t)p->buf[14] << 8 | p->buf[15]);
	if (v2_has_addr(p) && p->total < PROXY_V2_HEAD +
	    ((p->buf[13] >> 4) == V2_AF_INET ? 12 : 36))
		return fail(why, "PROXY v2 header: address block too short");
	return 0;
}

static void
v2_decode(struct proxy_parser *p)
{
	const unsigned char *a = p->buf + PROXY_V2_HEAD;

	if (!v2_has_addr(p)) {
		p->local = 1;
		return;
	}
	memset(&p->src, 0, sizeof(p->src));
	memset(&p->dst, 0, sizeof(p->dst));
	if ((p->buf[13] >> 4) == V2_AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&p->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&p->dst;

		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);
		memcpy(&d->sin_port, a + 10, 2);
		p->srclen = p->dstlen = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&p->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&p->dst;

		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
		p->srclen = p->dstlen = sizeof(*s);
	}
}

/* v2: the head byte by byte, then the rest of the header in bulk. */
static int
v2_feed(struct proxy_parser *p, const unsigned char *d, size_t n, size_t *used,
    const char **why)
{
	size_t i = 0, take, keep;

	while (i < n && p->seen < PROXY_V2_HEAD)
		if (v2_head_byte(p, d[i++], why) == -1) {
			*used = i;
			return -1;
		}
	*used = i;
	if (p->seen < PROXY_V2_HEAD)
		return 0;
	take = p->total - p->seen < n - i ? p->total - p->seen : n - i;
	keep = V2_KEEP - p->len < take ? V2_KEEP - p->len : take;
	memcpy(p->buf + p->len, d + i, keep);
	p->len += keep;
	p->seen += take;
	*used = i + take;
	if (p->seen < p->total)
		return 0;
	v2_decode(p);
	return 1;
}

/*
 * Feed n bytes.  Returns 1 when the header is complete: *used of the n
 * bytes were its last ones, and what follows them is the client's stream;
 * 0 when all n bytes belong to the header and more must come; -1 when the
 * bytes are not a valid header (*why says why).  Not to be called again
 * after 1 or -1.
 */
int
proxy_feed(struct proxy_parser *p, const char *data, size_t n, size_t *used, const char **why)
{
	const unsigned char *d = (const unsigned char *)data;
	size_t i = 0;
	int rc = 0;

	if (n > 0 && p->version == 0)
		p->version = d[0] == v2_sig[0] ? 2 : 1;
	if (p->version == 2)
		return v2_feed(p, d, n, used, why);
	while (i < n && rc == 0)
		rc = v1_byte(p, d[i++], why);
	*used = i;
	return rc;
}
