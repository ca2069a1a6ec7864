/*
 * proxy_wait: the handler of a proxy_protocol listener's connection until
 * its PROXY header (protocol/proxy.c) is in; then the listener's own
 * handler takes over with the bytes after it.
 *
 * Until then the peer is the load balancer, and record_timeout runs from
 * the accept, so a header that never comes or trickles in is cut off like
 * a slow record.  Then the client it names becomes the peer of the
 * connection's events and log lines, and is counted, and capped, for
 * max_connections_per_ip.  LOCAL and UNKNOWN headers (a balancer's health
 * check) keep the balancer as the peer.  A stream that is no header is a
 * framing error.
 */
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "handlers.h"
#include "log.h"
#include "proc.h"
#include "proxy.h"

struct proxy_wait {
	struct proxy_parser	 parser;
	struct sockaddr_storage	 sock;		/* the socket's own peer: the balancer */
	socklen_t		 socklen;
};

static int
proxy_start(struct conn *c)
{
	struct proxy_wait *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return -1;
	proxy_init(&w->parser);
	w->socklen = sizeof(w->sock);
	if (conn_sockaddr(c, &w->sock, &w->socklen) == -1)
		w->sock.ss_family = AF_UNSPEC;	/* gone already: counted for no address */
	conn_set_state(c, w);
	return 0;
}

/*
 * The header is in: the client it names (or the balancer, for LOCAL and
 * UNKNOWN) is the peer from now on, and is counted, and capped, for
 * max_connections_per_ip.  Returns -1 when the connection was closed.
 */
static int
header_done(struct conn *c, struct proxy_wait *w)
{
	const struct listener_cfg *l = conn_listener(c);
	const struct proxy_parser *p = &w->parser;
	const struct sockaddr *sa = p->local ? (const struct sockaddr *)&w->sock :
	    (const struct sockaddr *)&p->src;
	struct ct_limits lim = { 0, l->max_connections_per_ip, l->ipv6_prefix };
	char via[ADDR_STRLEN];
	enum ct_refusal why;

	snprintf(via, sizeof(via), "%s", conn_peer(c));
	if (!p->local && conn_set_peer(c, sa, p->srclen) == -1) {
		log_warn("%s: %s: out of memory for a connection", proc.name, l->name);
		conn_close(c, "out of memory");
		return -1;
	}
	if ((why = ct_acquire_ip(proc.slot, sa, &lim, conn_ticket(c))) != CT_ADMIT) {
		conn_refusal(l, conn_peer(c), why);
		conn_close(c, ct_reason_name(why));
		return -1;
	}
	if (p->local)
		log_debug("%s: %s %s: PROXY header without a client address (LOCAL or UNKNOWN)",
		    proc.name, l->name, conn_peer(c));
	else
		log_debug("%s: %s %s: client named by the PROXY header from %s", proc.name,
		    l->name, conn_peer(c), via);
	return 0;
}

static int
proxy_wait_feed(struct conn *c, const char *data, size_t n, const char **why)
{
	struct proxy_wait *w = conn_state(c);
	size_t used = 0;

	switch (proxy_feed(&w->parser, data, n, &used, why)) {
	case 0:
		return 0;
	case 1:
		if (header_done(c, w) == -1)
			return 0;	/* closed, and said why */
		conn_switch(c, data + used, n - used);
		return 0;
	default:
		return -1;
	}
}

static void
proxy_eof(struct conn *c)
{
	struct proxy_wait *w = conn_state(c);

	if (proxy_started(&w->parser))
		conn_framing_error(c, "closed inside the PROXY header");
}

static int
proxy_in_record(const struct conn *c)
{
	(void)c;
	return 1;	/* the header is due from the accept */
}

static void
proxy_free(struct conn *c)
{
	free(conn_state(c));
}

const struct conn_handler proxy_wait_handler = {
	.name = "proxy",
	.start = proxy_start,
	.feed = proxy_wait_feed,
	.eof = proxy_eof,
	.in_record = proxy_in_record,
	.free = proxy_free,
	.timeout_why = "record_timeout: no complete PROXY header",
};
