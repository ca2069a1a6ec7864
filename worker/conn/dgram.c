/*
 * dgram: the worker's datagram listeners, beside accept.c: UDP (RFC 5426
 * syslog, one SO_REUSEPORT socket per worker) and local datagram sockets
 * (unixgram:, such as /dev/log, one socket that every worker reads).
 *
 * There is no connection: each datagram is one record, or several when it
 * holds LF-separated lines (a trailing LF or NUL, and a CR before an LF,
 * are dropped; empty lines are skipped), and goes into the pipeline with the
 * sender as its peer.  A UDP sender is checked against allow/deny for every
 * datagram, since any datagram may come from anyone; a unixgram sender's
 * pid, uid and gid (SO_PASSCRED, vouched for by the kernel) go into its
 * events as peer_pid, peer_uid and peer_gid.
 *
 * Datagrams are read with recvmmsg(2), DGRAM_BATCH at a time and at most
 * DGRAM_BATCHES_PER_WAKE batches per wake-up, so a flood on a UDP port
 * does not starve the worker's TCP clients.  A busy socket (more than
 * DGRAM_BUSY datagrams in the last DGRAM_WINDOW_MS) is not watched once
 * it is read empty, but read again DGRAM_COALESCE_US later: at tens of
 * thousands of datagrams a second, waking up for each one or two costs
 * more than reading them (a context switch each); this way a wake-up reads
 * dozens, for at most half a millisecond more latency.  The wait is a
 * timerfd of the worker's, not a libevent timer, whose clock has the
 * kernel's tick (4 ms) for resolution.  A quiet socket is read as each
 * datagram comes.  One set of buffers serves
 * every socket of the worker; a datagram longer than DGRAM_MAX, or a line
 * longer than max_record, is cut and marked truncated.  While a sink is
 * full (dgram_set_reading) nothing is read: the datagrams wait in the
 * socket's receive buffer (recv_buffer) and what does not fit there is
 * dropped by the kernel, which counts it (the master logs and exports the
 * count).
 *
 * A batch is routed datagram by datagram, and stops when a sink fills up
 * or when the wake-up has routed DGRAM_RECORDS_PER_WAKE records (one
 * datagram of many short lines is many records: a sender must not hold
 * the worker, nor grow a full queue, by a whole batch of those).  The rest
 * stays in the buffers ("held"), and no socket is read until it is routed:
 * at the next turn, or once the sinks have room.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "cidr.h"
#include "clock.h"
#include "dgram.h"
#include "encode.h"
#include "log.h"
#include "obuf.h"
#include "proc.h"
#include "records.h"
#include "stats.h"

#define DGRAM_BATCH		32
#define DGRAM_BATCHES_PER_WAKE	8
#define DGRAM_MAX		65536	/* a UDP datagram's payload is at most 65,507 bytes */
#define DGRAM_CMSG		CMSG_SPACE(sizeof(struct ucred))
#define DGRAM_WINDOW_MS		10
#define DGRAM_BUSY		64	/* in DGRAM_WINDOW_MS: 6,400 a second */
#define DGRAM_COALESCE_US	500
#define DGRAM_RECORDS_PER_WAKE	8192	/* a datagram of many short lines is many records */

struct reader {
	int			 fd;
	struct event		*ev;
	int			 waiting;	/* busy: not watched until the timerfd expires */
	long			 window_ms;	/* start of the window that counts ... */
	unsigned		 window_n;	/* ... these datagrams */
	int			 busy;		/* the last window had DGRAM_BUSY or more */
	const struct listener_cfg *l;
	struct listener_counts	*counts;
	/* The prefix of the last sender's events: most datagrams come from the sender before. */
	struct sockaddr_storage	 src;
	socklen_t		 srclen;
	struct ucred		 cred;
	int			 has_cred;
	struct obuf		 prefix;
};

static struct reader	 rd[CFG_MAX_LISTENERS];
static int		 nrd;
static int		 reading = 1;
static struct encode_meta meta;
static struct mmsghdr	 msgs[DGRAM_BATCH];
static struct iovec	 iov[DGRAM_BATCH];
static struct sockaddr_storage names[DGRAM_BATCH];
static char		*bufs;		/* DGRAM_BATCH x DGRAM_MAX, touched only as datagrams fill it */
static union {
	char		 b[DGRAM_CMSG];
	struct cmsghdr	 align;
} ctl[DGRAM_BATCH];
static struct log_limit	 refused_limit, nomem_limit;
static unsigned		 budget;	/* records this wake-up may still route */
static struct {				/* a batch read but not all routed yet */
	struct reader	*r;		/* NULL: none */
	int		 next, n;
} held;
static struct event	*resume_ev;	/* routes the held batch */
static int		 later_fd = -1;	/* timerfd: the busy sockets are read again */
static struct event	*later_ev;
static int		 later_armed;

/* ,"peer":"...","listener":"..." and, from a unix sender, its credentials. */
static int
build_prefix(struct reader *r)
{
	char peer[ADDR_STRLEN], creds[96] = "";
	struct obuf *o = &r->prefix;

	if (r->src.ss_family == AF_UNIX)
		snprintf(peer, sizeof(peer), "unix");
	else
		addr_format((struct sockaddr *)&r->src, r->srclen, peer, sizeof(peer));
	if (r->has_cred)
		snprintf(creds, sizeof(creds), ",\"peer_pid\":%ld,\"peer_uid\":%lu,\"peer_gid\":%lu",
		    (long)r->cred.pid, (unsigned long)r->cred.uid, (unsigned long)r->cred.gid);
	o->len = 0;
	if (obuf_reserve(o, ENCODE_PREFIX_MAX(strlen(peer), strlen(r->l->name), strlen(creds))) == -1)
		return -1;
	encode_prefix(o, peer, r->l->name, creds);
	return 0;
}

/* A unix sender's pid, uid and gid, as the kernel says (SO_PASSCRED). */
static int
sender_cred(struct msghdr *h, struct ucred *cred)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			memcpy(cred, CMSG_DATA(c), sizeof(*cred));
			return 1;
		}
	}
	return 0;
}

/* The events of this sender carry the prefix of r; built again when the sender changes. */
static int
use_sender(struct reader *r, const struct msghdr *h, const struct ucred *cred, int has_cred)
{
	if (r->prefix.len && h->msg_namelen == r->srclen &&
	    memcmp(h->msg_name, &r->src, r->srclen) == 0 && has_cred == r->has_cred &&
	    (!has_cred || memcmp(cred, &r->cred, sizeof(*cred)) == 0))
		return 0;
	memset(&r->src, 0, sizeof(r->src));
	memcpy(&r->src, h->msg_name, h->msg_namelen);
	r->srclen = h->msg_namelen;
	r->cred = has_cred ? *cred : (struct ucred){ 0, 0, 0 };
	r->has_cred = has_cred;
	if (r->src.ss_family == 0)
		r->src.ss_family = AF_UNIX;	/* an unbound unix sender has no name */
	if (build_prefix(r) == 0)
		return 0;
	r->prefix.len = 0;
	log_limited(&nomem_limit, LOG_LVL_WARNING, "%s: listener %s: out of memory; a datagram "
	    "is lost", proc.name, r->l->name);
	return -1;
}

/* One line of a datagram into the pipeline, cut to max_record. */
static void
record(struct reader *r, const char *p, size_t n, int truncated)
{
	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (n == 0)
		return;
	if (n > (size_t)r->l->max_record) {
		n = (size_t)r->l->max_record;
		truncated = 1;
	}
	r->counts->records++;
	budget -= budget > 0;
	records_route(&meta, r->l, p, n, truncated);
}

/* A datagram: its lines, each a record; the last one cut when the datagram was. */
static void
datagram(struct reader *r, struct mmsghdr *m)
{
	const char *p = m->msg_hdr.msg_iov->iov_base, *end = p + m->msg_len;
	int cut = (m->msg_hdr.msg_flags & MSG_TRUNC) != 0, has_cred;
	struct ucred cred;

	while (end > p && end[-1] == '\0')
		end--;		/* BSD syslog(3) and Python's SysLogHandler end with one */
	r->counts->datagrams++;
	r->counts->bytes += m->msg_len;
	if (!cidr_permitted(r->l->allow_v, r->l->nallow, r->l->deny_v, r->l->ndeny,
	    m->msg_hdr.msg_name)) {
		char peer[ADDR_STRLEN];

		r->counts->datagrams_refused++;
		log_limited(&refused_limit, LOG_LVL_NOTICE, "%s: listener %s: refused a datagram "
		    "from %s: allow_deny", proc.name, r->l->name, addr_format(m->msg_hdr.msg_name,
		    m->msg_hdr.msg_namelen, peer, sizeof(peer)));
		return;
	}
	has_cred = sender_cred(&m->msg_hdr, &cred);
	if (use_sender(r, &m->msg_hdr, &cred, has_cred) == -1)
		return;
	meta.prefix = r->prefix.p;
	meta.prefixlen = r->prefix.len;
	meta.peer = (const struct sockaddr *)&r->src;
	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));

		if (lf == NULL) {
			record(r, p, (size_t)(end - p), cut);
			break;
		}
		record(r, p, (size_t)(lf - p), 0);
		p = lf + 1;
	}
}

static void
set_time(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	encode_set_time(&meta, &now);
}

/* Up to DGRAM_BATCH datagrams from r's socket into the buffers: how many, 0 when none waits. */
static int
read_batch(struct reader *r)
{
	int n;

	for (int i = 0; i < DGRAM_BATCH; i++) {
		names[i].ss_family = AF_UNSPEC;	/* an unbound unix sender leaves it */
		msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
		msgs[i].msg_hdr.msg_controllen = sizeof(ctl[i]);
		msgs[i].msg_hdr.msg_flags = 0;
	}
	n = recvmmsg(r->fd, msgs, DGRAM_BATCH, MSG_DONTWAIT, NULL);
	if (n == -1) {
		if (errno != EAGAIN && errno != EINTR)
			log_warn("%s: listener %s: recvmmsg", proc.name, r->l->name);
		return 0;
	}
	set_time();
	return n;
}

static void
set_events(int on)
{
	for (int i = 0; i < nrd; i++) {
		if (on && !rd[i].waiting && held.r == NULL)
			event_add(rd[i].ev, NULL);
		else if (!on)
			event_del(rd[i].ev);
	}
}

/*
 * Datagrams from..n-1 of the buffers, r's, into the pipeline: 0, or -1
 * when the sinks filled up or the wake-up's budget ran out first.  Then
 * the rest is held, no socket is read (the buffers are taken), and
 * on_resume goes on: at the next turn, or once the sinks have room.
 * force: all of them, whatever the sinks say (the worker is leaving).
 */
static int
route_batch(struct reader *r, int from, int n, int force)
{
	for (int i = from; i < n; i++) {
		if (!force && (!reading || budget == 0)) {
			held.r = r;
			held.next = i;
			held.n = n;
			set_events(0);
			if (reading)
				event_active(resume_ev, EV_TIMEOUT, 1);
			return -1;
		}
		datagram(r, &msgs[i]);
	}
	held.r = NULL;
	return 0;
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (held.r == NULL || !reading)
		return;
	budget = DGRAM_RECORDS_PER_WAKE;
	set_time();
	if (route_batch(held.r, held.next, held.n, 0) == 0)
		set_events(1);
}

/* Whether r's socket has been busy: counted over windows of DGRAM_WINDOW_MS. */
static int
busy(struct reader *r, unsigned n)
{
	long now = clock_ms();

	if (now - r->window_ms >= DGRAM_WINDOW_MS) {
		r->busy = r->window_n >= DGRAM_BUSY;
		r->window_ms = now;
		r->window_n = 0;
	}
	r->window_n += n;
	return r->busy;
}

/* r's socket is read empty and busy: stop watching it, and read it again a little later. */
static void
wait_a_little(struct reader *r)
{
	struct itimerspec its = { { 0, 0 }, { 0, DGRAM_COALESCE_US * 1000 } };

	if (!later_armed && timerfd_settime(later_fd, 0, &its, NULL) == -1)
		return;		/* cannot happen: then it is read as datagrams come */
	later_armed = 1;
	event_del(r->ev);
	r->waiting = 1;
}

static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct reader *r = arg;
	unsigned total = 0;
	int n = DGRAM_BATCH;

	(void)fd;
	(void)what;
	if (held.r)
		return;
	budget = DGRAM_RECORDS_PER_WAKE;
	for (int i = 0; i < DGRAM_BATCHES_PER_WAKE && reading && n == DGRAM_BATCH; i++) {
		total += (unsigned)(n = read_batch(r));
		if (route_batch(r, 0, n, 0) == -1)
			return;
	}
	if (busy(r, total) && n < DGRAM_BATCH && reading && later_fd != -1)
		wait_a_little(r);
}

/* The timerfd expired: the busy sockets are watched and read again. */
static void
on_later(evutil_socket_t fd, short what, void *arg)
{
	uint64_t expirations;

	(void)what;
	(void)arg;
	if (read(fd, &expirations, sizeof(expirations)) == -1)
		return;
	later_armed = 0;
	for (int i = 0; i < nrd; i++) {
		struct reader *r = &rd[i];

		if (!r->waiting)
			continue;
		r->waiting = 0;
		if (!reading || held.r)
			continue;	/* dgram_set_reading or on_resume watches it again */
		event_add(r->ev, NULL);
		on_readable(r->fd, EV_READ, r);
	}
}

/* Stop or resume reading datagrams: the sinks are full, or have room again. */
void
dgram_set_reading(int on)
{
	if (on == reading)
		return;
	reading = on;
	if (on && held.r)
		event_active(resume_ev, EV_TIMEOUT, 1);
	else
		set_events(on);
}

static int
alloc_buffers(void)
{
	if (bufs == NULL && (bufs = malloc((size_t)DGRAM_BATCH * DGRAM_MAX)) == NULL)
		return -1;
	for (int i = 0; i < DGRAM_BATCH; i++) {
		iov[i].iov_base = bufs + (size_t)i * DGRAM_MAX;
		iov[i].iov_len = DGRAM_MAX;
		msgs[i].msg_hdr = (struct msghdr){ .msg_name = &names[i], .msg_iov = &iov[i],
		    .msg_iovlen = 1, .msg_control = ctl[i].b };
	}
	return 0;
}

/* The timerfd that brings busy sockets back; without it, every socket is read as datagrams come. */
static int
open_later(void)
{
	later_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (later_fd == -1) {
		log_warn("%s: timerfd_create", proc.name);
		return 0;
	}
	later_armed = 0;
	later_ev = event_new(proc.base, later_fd, EV_READ | EV_PERSIST, on_later, NULL);
	if (later_ev == NULL || event_add(later_ev, NULL) == -1) {
		log_warnx("%s: cannot watch the datagram timer", proc.name);
		return -1;
	}
	return 0;
}

/* Read the datagram listeners of cf, whose sockets are fds (one per listener; others ignored). */
int
dgram_init(const struct config *cf, const int *fds)
{
	nrd = 0;
	reading = 1;
	held.r = NULL;
	if ((resume_ev = event_new(proc.base, -1, 0, on_resume, NULL)) == NULL)
		return -1;
	for (int i = 0; i < cf->nlisteners; i++) {
		struct reader *r = &rd[nrd];

		if (!cf->listeners[i].datagram)
			continue;
		if (bufs == NULL && alloc_buffers() == -1) {
			log_warnx("%s: no memory for datagram buffers", proc.name);
			return -1;
		}
		memset(r, 0, sizeof(*r));
		r->fd = fds[i];
		r->l = &cf->listeners[i];
		r->counts = &proc.stats->lsn[i];
		r->ev = event_new(proc.base, r->fd, EV_READ | EV_PERSIST, on_readable, r);
		if (r->ev == NULL || event_add(r->ev, NULL) == -1) {
			log_warnx("%s: listener %s: cannot watch the socket", proc.name, r->l->name);
			return -1;
		}
		nrd++;
	}
	return nrd ? open_later() : 0;
}

/*
 * Stop reading for good (the worker drains or stops).  A batch read and
 * not yet routed goes into the sinks now.  The sockets stay with the
 * master: what is queued in them is read by the worker that replaces this
 * one (UDP) or by the other workers (unixgram).
 */
void
dgram_close(void)
{
	if (held.r) {
		set_time();
		route_batch(held.r, held.next, held.n, 1);
	}
	event_free(resume_ev);
	resume_ev = NULL;
	for (int i = 0; i < nrd; i++) {
		event_free(rd[i].ev);
		close(rd[i].fd);
		obuf_free(&rd[i].prefix);
	}
	nrd = 0;
	if (later_ev)
		event_free(later_ev);
	if (later_fd != -1)
		close(later_fd);
	later_ev = NULL;
	later_fd = -1;
}
