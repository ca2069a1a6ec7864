/*
 * addr: parse the listen address forms of the config, print socket addresses.
 *
 * "*:PORT" means every IPv4 address, as in nginx; "[::]:PORT" every IPv6
 * address (the socket is IPV6_V6ONLY so that both may be configured).  A
 * prefix names the transport: "tcp://" (the default), "udp://", "unix:"
 * (the default for a path) and "unixgram:".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "addr.h"

static int
parse_port(const char *s, in_port_t *port)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end != '\0' || v < 1 || v > 65535)
		return -1;
	*port = htons((in_port_t)v);
	return 0;
}

static int
parse_unix(const char *text, struct addr *a, const char **why)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&a->ss;

	if (strlen(text) >= sizeof(sun->sun_path)) {
		*why = "unix socket path is too long";
		return -1;
	}
	sun->sun_family = AF_UNIX;
	strcpy(sun->sun_path, text);
	a->len = sizeof(*sun);
	return 0;
}

static int
parse_inet6(const char *text, struct addr *a, const char **why)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
	const char *close = strchr(text, ']');
	char host[INET6_ADDRSTRLEN];
	size_t n;

	if (close == NULL || close[1] != ':') {
		*why = "expected [IPv6]:port";
		return -1;
	}
	n = close - (text + 1);
	if (n == 0 || n >= sizeof(host)) {
		*why = "not an IPv6 address";
		return -1;
	}
	memcpy(host, text + 1, n);
	host[n] = '\0';
	sin6->sin6_family = AF_INET6;
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
		*why = "not an IPv6 address";
		return -1;
	}
	if (parse_port(close + 2, &sin6->sin6_port) == -1) {
		*why = "port must be a number from 1 to 65535";
		return -1;
	}
	a->len = sizeof(*sin6);
	return 0;
}

static int
parse_inet(const char *text, struct addr *a, const char **why)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
	const char *colon = strrchr(text, ':');
	char host[INET_ADDRSTRLEN];
	size_t n;

	if (colon == NULL) {
		*why = "expected IPv4:port, [IPv6]:port, *:port or an absolute unix socket path "
		    "(after udp:// or unixgram: for datagrams)";
		return -1;
	}
	n = colon - text;
	sin->sin_family = AF_INET;
	if (n == 1 && text[0] == '*') {
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
	} else {
		if (n == 0 || n >= sizeof(host)) {
			*why = "not an IPv4 address (host names are not resolved)";
			return -1;
		}
		memcpy(host, text, n);
		host[n] = '\0';
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			*why = "not an IPv4 address (host names are not resolved)";
			return -1;
		}
	}
	if (parse_port(colon + 1, &sin->sin_port) == -1) {
		*why = "port must be a number from 1 to 65535";
		return -1;
	}
	a->len = sizeof(*sin);
	return 0;
}

/* text without its transport prefix, and the socket type that prefix names. */
static const char *
transport(const char *text, int *type)
{
	static const struct { const char *prefix; int type; } known[] = {
		{ "tcp://", SOCK_STREAM }, { "udp://", SOCK_DGRAM },
		{ "unix:", SOCK_STREAM }, { "unixgram:", SOCK_DGRAM },
	};

	*type = SOCK_STREAM;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		size_t n = strlen(known[i].prefix);

		if (strncmp(text, known[i].prefix, n) == 0) {
			*type = known[i].type;
			return text + n;
		}
	}
	return text;
}

int
addr_parse(const char *text, struct addr *a, const char **why)
{
	const char *rest;
	int unix_only, inet_only;

	memset(a, 0, sizeof(*a));
	rest = transport(text, &a->type);
	unix_only = strncmp(text, "unix", 4) == 0;
	inet_only = rest != text && !unix_only;
	if (rest[0] == '/' && !inet_only)
		return parse_unix(rest, a, why);
	if (unix_only) {
		*why = "expected an absolute unix socket path after unix: or unixgram:";
		return -1;
	}
	if (rest[0] == '[')
		return parse_inet6(rest, a, why);
	return parse_inet(rest, a, why);
}

/* An address for a byte stream: what connects or is connected to, never udp:// or unixgram:. */
int
addr_parse_stream(const char *text, struct addr *a, const char **why)
{
	if (addr_parse(text, a, why) == -1)
		return -1;
	if (a->type != SOCK_STREAM) {
		*why = "only listeners take datagrams; this needs a TCP address or a unix stream socket";
		return -1;
	}
	return 0;
}

int
addr_equal(const struct addr *a, const struct addr *b)
{
	return a->type == b->type && a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

char *
addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];

	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, size, "%s:%u", host, ntohs(sin->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
		break;
	}
	case AF_UNIX: {
		const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;

		if (len > offsetof(struct sockaddr_un, sun_path) && sun->sun_path[0])
			snprintf(buf, size, "%s", sun->sun_path);
		else
			snprintf(buf, size, "unix");
		break;
	}
	default:
		snprintf(buf, size, "unknown");
	}
	return buf;
}
