/*
 * accept: take connections off the listening sockets.
 *
 * A readable listener is accepted until EAGAIN, or ACCEPTS_PER_WAKE
 * connections: conn.c reads a new connection's first bytes at once, and a
 * burst of connections must not hold up the clients already connected (the
 * listener stays readable, so the rest come at the next turn).  Accepting
 * pauses when the worker holds worker_connections connections (it resumes
 * when one closes) and when the process runs out of descriptors
 * (EMFILE/ENFILE): then the reserve descriptor is given up to accept and
 * close the connection at the head of the queue, so that its client is
 * told at once instead of hanging, and accepting resumes after
 * ACCEPT_PAUSE_MS.  Nothing spins.
 *
 * A peer that the listener's allow/deny lists refuse, or one more than
 * max_connections or max_connections_per_ip allow (counted across all
 * workers in conntab), is closed before any read, counted by reason, and
 * logged at most once a second per reason for the whole server.  On a
 * proxy_protocol listener the peer is the load balancer: allow/deny and
 * max_connections apply to it here, but its address is not counted for
 * max_connections_per_ip; the client named in the PROXY header is, once
 * proxy_wait.c has read it.
 *
 * Each connection starts with its listener's handler (handlers.h): RELP
 * or a plain stream, after a PROXY header on a proxy_protocol listener.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "accept.h"
#include "addr.h"
#include "conn.h"
#include "conntab.h"
#include "handlers.h"
#include "log.h"
#include "proc.h"

#define ACCEPT_PAUSE_MS		100
#define ACCEPTS_PER_WAKE	64

struct acceptor {
	int			 fd;
	int			 lsn_id;	/* in conntab */
	struct event		*ev;
	const struct listener_cfg *l;
	struct ct_limits	 limits;
	const struct conn_handler *first, *then;	/* a new connection's handlers */
};

static struct acceptor	 acc[CFG_MAX_LISTENERS];
static int		 nacc;
static int		 nknown;	/* acc[] entries, kept after acc_close for acc_adopt */
static int		 paused;
static int		 reserve_fd = -1;
static struct event	*resume_timer;
static struct log_limit	 emfile_limit, full_limit;

static void
refuse(int fd, const struct acceptor *a, const struct sockaddr *sa, socklen_t len,
    enum ct_refusal why)
{
	char peer[ADDR_STRLEN];

	close(fd);
	conn_refusal(a->l, addr_format(sa, len, peer, sizeof(peer)), why);
}

/* Let a new connection in, or close it with the reason. */
static void
admit(struct acceptor *a, int fd, const struct sockaddr *sa, socklen_t len)
{
	struct ct_ticket t;
	enum ct_refusal why;

	if (!cidr_permitted(a->l->allow_v, a->l->nallow, a->l->deny_v, a->l->ndeny, sa)) {
		refuse(fd, a, sa, len, CT_REFUSE_ACL);
		return;
	}
	if ((why = ct_acquire(a->lsn_id, proc.slot, a->l->proxy_protocol ? NULL : sa, &a->limits,
	    &t)) != CT_ADMIT) {
		refuse(fd, a, sa, len, why);
		return;
	}
	conn_new(fd, a->l, sa, len, &t, a->first, a->then);
}

static void
set_enabled(int on)
{
	for (int i = 0; i < nacc; i++) {
		if (acc[i].ev == NULL)
			continue;
		if (on)
			event_add(acc[i].ev, NULL);
		else
			event_del(acc[i].ev);
	}
}

static void
pause_accepting(void)
{
	paused = 1;
	set_enabled(0);
}

void
acc_resume(void)
{
	if (!paused || nacc == 0 || conn_count() >= proc.cf->worker_connections)
		return;
	if (reserve_fd == -1)
		reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (reserve_fd == -1)
		return;		/* still out of descriptors: the timer tries again */
	paused = 0;
	set_enabled(1);
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	acc_resume();
	if (paused && reserve_fd == -1) {
		struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };

		evtimer_add(resume_timer, &tv);
	}
}

static void
out_of_descriptors(struct acceptor *a)
{
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
	int fd;

	log_limited(&emfile_limit, LOG_LVL_WARNING, "%s: listener %s: accept: %s; pausing for %d ms",
	    proc.name, a->l->name, strerror(errno), ACCEPT_PAUSE_MS);
	if (reserve_fd != -1) {
		close(reserve_fd);
		reserve_fd = -1;
		if ((fd = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC)) != -1)
			close(fd);
	}
	pause_accepting();
	evtimer_add(resume_timer, &tv);
}

/* Accept at most max connections from a's listener, or until EAGAIN. */
static void
accept_some(struct acceptor *a, int max)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	for (int i = 0; i < max && !paused; i++) {
		if (conn_count() >= proc.cf->worker_connections) {
			log_limited(&full_limit, LOG_LVL_WARNING,
			    "%s: worker_connections (%d) reached; pausing accept", proc.name,
			    proc.cf->worker_connections);
			pause_accepting();
			return;
		}
		len = sizeof(ss);
		fd = accept4(a->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE)
				out_of_descriptors(a);
			else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("%s: listener %s: accept", proc.name, a->l->name);
			if (errno != ECONNABORTED && errno != EINTR)
				return;
			continue;
		}
		admit(a, fd, (struct sockaddr *)&ss, len);
	}
}

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	(void)lfd;
	(void)what;
	accept_some(arg, ACCEPTS_PER_WAKE);
}

/* The protocol a listener's connections speak, after a PROXY header when it takes one. */
static void
pick_handlers(struct acceptor *a)
{
	const struct conn_handler *proto = a->l->protocol == PROTO_RELP ? &relp_handler :
	    &stream_handler;

	a->first = a->l->proxy_protocol ? &proxy_wait_handler : proto;
	a->then = a->l->proxy_protocol ? proto : NULL;
}

/*
 * Accept on the listening sockets fds (one per listener of cf, lsn_ids their
 * conntab ids); the datagram listeners' sockets are dgram.c's.
 */
int
acc_init(const struct config *cf, const int *fds, const int *lsn_ids)
{
	if ((reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("%s: /dev/null", proc.name);
		return -1;
	}
	resume_timer = evtimer_new(proc.base, on_resume, NULL);
	nacc = nknown = 0;
	for (int i = 0; i < cf->nlisteners; i++) {
		struct acceptor *a = &acc[nacc];

		if (cf->listeners[i].datagram)
			continue;	/* dgram.c reads those */
		nacc = ++nknown;
		a->fd = fds[i];
		a->lsn_id = lsn_ids[i];
		a->l = &cf->listeners[i];
		a->limits.max_total = a->l->max_connections;
		a->limits.max_per_ip = a->l->max_connections_per_ip;
		a->limits.prefix6 = a->l->ipv6_prefix;
		pick_handlers(a);
		a->ev = event_new(proc.base, a->fd, EV_READ | EV_PERSIST, on_accept, a);
		if (a->ev == NULL || event_add(a->ev, NULL) == -1) {
			log_warnx("%s: listener %s: cannot watch the socket", proc.name, a->l->name);
			return -1;
		}
	}
	return 0;
}

/*
 * Stop accepting for good.  A draining worker first takes the connections
 * queued on its reuseport sockets: nobody else accepts from those, and the
 * kernel would reset them when the socket is retired.  A shared socket's
 * queue is left to the workers that keep accepting.
 */
void
acc_close(int take_queued)
{
	for (int i = 0; i < nacc; i++) {
		if (take_queued && !paused && acc[i].l->accept_mode == ACCEPT_REUSEPORT)
			accept_some(&acc[i], INT_MAX);
		if (acc[i].ev) {
			event_free(acc[i].ev);
			acc[i].ev = NULL;
		}
		close(acc[i].fd);
	}
	nacc = 0;
	if (resume_timer)
		evtimer_del(resume_timer);
}

/* The plain stream listener at listen, or NULL. */
static struct acceptor *
stream_listener(const struct addr *listen)
{
	for (int i = 0; i < nknown; i++) {
		struct acceptor *a = &acc[i];
		const struct conn_handler *h = a->then ? a->then : a->first;

		if (addr_equal(&a->l->listen.addr, listen) && h->restore && !a->l->tls.enabled)
			return a;
	}
	return NULL;
}

/*
 * A connection a draining worker handed to this one (handover.c): it goes
 * on on this worker's listener at the same address, as if accepted here,
 * under this generation's allow/deny and caps.  One they refuse, or one
 * over worker_connections, is closed gracefully.  -1 when no listener here
 * can take it: fd is the caller's still.
 */
int
acc_adopt(int fd, const struct addr *listen, const char *saved, size_t n)
{
	struct acceptor *a = stream_listener(listen);
	struct sockaddr_storage peer, sock;
	socklen_t peerlen, socklen = sizeof(sock);
	struct ct_ticket t = { .counted = 0 };
	enum ct_refusal why = CT_ADMIT;
	const char *refused = NULL;
	int per_ip;

	if (a == NULL || conn_saved_peer(saved, n, &peer, &peerlen, &per_ip) == -1)
		return -1;
	if (getpeername(fd, (struct sockaddr *)&sock, &socklen) == -1) {
		memcpy(&sock, &peer, sizeof(sock));	/* the client is gone: what it sent is read */
		socklen = peerlen;
	}
	if (!cidr_permitted(a->l->allow_v, a->l->nallow, a->l->deny_v, a->l->ndeny,
	    (struct sockaddr *)&sock))
		why = CT_REFUSE_ACL;
	else
		why = ct_acquire(a->lsn_id, proc.slot, per_ip ? (struct sockaddr *)&peer : NULL,
		    &a->limits, &t);
	if (why != CT_ADMIT) {
		char text[ADDR_STRLEN];

		conn_refusal(a->l, addr_format((struct sockaddr *)&peer, peerlen, text,
		    sizeof(text)), why);
		refused = ct_reason_name(why);
	} else if (conn_count() >= proc.cf->worker_connections) {
		log_limited(&full_limit, LOG_LVL_WARNING, "%s: worker_connections (%d) reached; "
		    "closing a connection handed over", proc.name, proc.cf->worker_connections);
		refused = "worker_connections";
	}
	conn_adopt(fd, a->l, &t, a->then ? a->then : a->first, saved, n, refused);
	return 0;
}
