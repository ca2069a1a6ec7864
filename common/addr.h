/*
 * addr: listen addresses ("IPv4:port", "[IPv6]:port", "*:port", "/unix/path",
 * and for datagrams "udp://IPv4:port", "udp://[IPv6]:port",
 * "unixgram:/unix/path") and printing socket addresses for logs and events.
 */
#ifndef INGESTD_ADDR_H
#define INGESTD_ADDR_H

#include <sys/socket.h>

#define ADDR_STRLEN	128	/* enough for "[v6%scope]:port", not for every unix path */

struct addr {
	struct sockaddr_storage	ss;
	socklen_t		len;
	int			type;	/* SOCK_STREAM or SOCK_DGRAM */
};

int	 addr_parse(const char *text, struct addr *, const char **why);
int	 addr_parse_stream(const char *text, struct addr *, const char **why);
int	 addr_equal(const struct addr *, const struct addr *);
char	*addr_format(const struct sockaddr *, socklen_t, char *buf, size_t size);

#endif
