/*
 * cidr: IPv4 and IPv6 address blocks ("10.0.0.0/8", "2001:db8::/32", or
 * one address) for the allow and deny lists of a listener.
 */
#ifndef INGESTD_CIDR_H
#define INGESTD_CIDR_H

#include <stdint.h>
#include <sys/socket.h>

struct cidr {
	int	 family;	/* AF_INET or AF_INET6 */
	int	 bits;		/* prefix length */
	uint8_t	 addr[16];	/* network address, host bits zero */
};

int	 cidr_parse(const char *text, struct cidr *, const char **why);
int	 cidr_match(const struct cidr *, const struct sockaddr *);
int	 cidr_permitted(const struct cidr *allow, int nallow, const struct cidr *deny, int ndeny,
	    const struct sockaddr *);

#endif
