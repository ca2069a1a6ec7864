/*
 * cidr: parse address blocks and match peers against them.  Pure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"

static void
clear_host_bits(struct cidr *c)
{
	int len = c->family == AF_INET ? 4 : 16;

	for (int i = 0; i < len; i++) {
		int keep = c->bits - 8 * i;

		if (keep <= 0)
			c->addr[i] = 0;
		else if (keep < 8)
			c->addr[i] &= (uint8_t)(0xff << (8 - keep));
	}
}

/*
 * "ADDR" or "ADDR/BITS".  Host bits set in ADDR are an error: "10.1.2.3/8"
 * is almost always a typing mistake for what the operator meant.
 */
int
cidr_parse(const char *text, struct cidr *c, const char **why)
{
	char host[INET6_ADDRSTRLEN];
	const char *slash = strchr(text, '/');
	size_t n = slash ? (size_t)(slash - text) : strlen(text);
	uint8_t orig[16];
	char *end;
	long bits;

	memset(c, 0, sizeof(*c));
	if (n == 0 || n >= sizeof(host)) {
		*why = "not an IPv4 or IPv6 address";
		return -1;
	}
	memcpy(host, text, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, c->addr) == 1)
		c->family = AF_INET;
	else if (inet_pton(AF_INET6, host, c->addr) == 1)
		c->family = AF_INET6;
	else {
		*why = "not an IPv4 or IPv6 address";
		return -1;
	}
	bits = c->family == AF_INET ? 32 : 128;
	if (slash) {
		errno = 0;
		bits = strtol(slash + 1, &end, 10);
		if (errno || end == slash + 1 || *end != '\0' || bits < 0 ||
		    bits > (c->family == AF_INET ? 32 : 128)) {
			*why = c->family == AF_INET ? "prefix length must be from 0 to 32" :
			    "prefix length must be from 0 to 128";
			return -1;
		}
	}
	c->bits = (int)bits;
	memcpy(orig, c->addr, sizeof(orig));
	clear_host_bits(c);
	if (memcmp(orig, c->addr, sizeof(orig)) != 0) {
		*why = "host bits are set after the prefix length";
		return -1;
	}
	return 0;
}

int
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	const uint8_t *a;
	int full, rest;

	if (sa->sa_family != c->family)
		return 0;
	a = c->family == AF_INET ? (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr :
	    (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	full = c->bits / 8;
	rest = c->bits % 8;
	if (memcmp(a, c->addr, full) != 0)
		return 0;
	return rest == 0 || ((a[full] ^ c->addr[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

static int
listed(const struct cidr *v, int n, const struct sockaddr *sa)
{
	for (int i = 0; i < n; i++)
		if (cidr_match(&v[i], sa))
			return 1;
	return 0;
}

/*
 * Whether an allow and a deny list let sa in: deny wins, an empty allow
 * list allows every address, and what is not IPv4 or IPv6 (a unix peer)
 * passes.
 */
int
cidr_permitted(const struct cidr *allow, int nallow, const struct cidr *deny, int ndeny,
    const struct sockaddr *sa)
{
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return 1;
	if (listed(deny, ndeny, sa))
		return 0;
	return nallow == 0 || listed(allow, nallow, sa);
}
