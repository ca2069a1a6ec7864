/*
 * proxy: the PROXY protocol header (HAProxy's proxy-protocol.txt, versions
 * 1 and 2) that a load balancer sends before the client's bytes, to tell
 * the server who the client is.
 *
 * Pure: bytes in, an address out, no I/O, so it is unit-tested and fuzzed.
 * The header may arrive in any number of pieces; proxy_feed() takes what
 * belongs to it and says where the client's stream begins.
 *
 *   v1  "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n", or "PROXY UNKNOWN ...\r\n",
 *       at most 107 bytes; addresses in their canonical forms, ports
 *       without leading zeros.
 *   v2  the 12-byte signature, version 2 with the command LOCAL or PROXY,
 *       the family and transport, a 16-bit length and that many bytes of
 *       addresses and TLVs (which are skipped).
 *
 * The client address is taken from v1 TCP4/TCP6 and from v2 PROXY over
 * AF_INET or AF_INET6 (stream or datagram).  LOCAL (a balancer's health
 * check), UNKNOWN, and the v2 families and transports that carry no usable
 * address (AF_UNSPEC, AF_UNIX, UNSPEC) leave the connection's own peer:
 * proxy.local is set.  Anything that is not such a header, from its first
 * wrong byte on, is an error.
 */
#ifndef INGESTD_PROXY_H
#define INGESTD_PROXY_H

#include <stddef.h>
#include <sys/socket.h>

#define PROXY_V1_MAX	107	/* longest v1 line, CRLF included */
#define PROXY_V2_HEAD	16	/* signature, version and command, family, length */
#define PROXY_V2_ADDRS	36	/* the longest address block used: TCP over IPv6 */

struct proxy_parser {
	int		 version;	/* 0 until the first byte, then 1 or 2 */
	unsigned char	 buf[PROXY_V1_MAX + 1];	/* v1 line; v2 head and addresses */
	size_t		 len;		/* bytes in buf */
	size_t		 seen;		/* v2: header bytes read so far */
	size_t		 total;		/* v2: header length, once the head is in */
	/* The result, once proxy_feed() returned 1. */
	int		 local;		/* no client address: keep the socket's peer */
	struct sockaddr_storage src, dst;
	socklen_t	 srclen, dstlen;
};

void	 proxy_init(struct proxy_parser *);
int	 proxy_feed(struct proxy_parser *, const char *data, size_t n, size_t *used,
	    const char **why);
int	 proxy_started(const struct proxy_parser *);

#endif
