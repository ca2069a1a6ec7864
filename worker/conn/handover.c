/*
 * handover: connections that outlive their generation.
 *
 * Every worker has an inbox: a SOCK_SEQPACKET socket whose other end its
 * master keeps.  When a generation drains because a newer one accepts (a
 * reload, or the new master of a binary upgrade), the master sends each of
 * its draining workers an offer on the channel: copies of the inboxes of
 * the workers that now accept, and the addresses of the listeners they
 * serve as plain streams.  The draining worker sends each connection it
 * can hand over (conn_save: a plain stream past its PROXY header, not
 * ending) whose listener's address is offered, one message per
 * connection, to one inbox after the other: its descriptor (SCM_RIGHTS),
 * the address, and its state (conn_save's bytes; when they are more than
 * HO_INLINE_MAX, a half-read long record, they travel in a memfd beside
 * it).  Once the message is out the connection leaves this worker without
 * a FIN: the kernel keeps the socket, and what its client sends meanwhile,
 * until the receiver reads the message.
 *
 * A full inbox is waited on until writable; one whose worker died is
 * dropped and the next one tried; with none left, what is still here
 * drains as it always did, and closes gracefully at shutdown_timeout.
 *
 * The receiver admits each connection on its own listener at the same
 * address (accept.c: this generation's allow/deny and caps; one refused is
 * closed gracefully) and reads on.  The sender writes out its sinks' queues
 * first, so that in a file the records it read come before those the
 * receiver reads (upstreams of forward and Redis sinks see each worker's
 * connection apart: no order between the two is promised there).  A
 * receiver that is draining itself hands on what it takes, to the offer it
 * got.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "accept.h"
#include "channel.h"
#include "fdmsg.h"
#include "conn.h"
#include "framing.h"
#include "handover.h"
#include "log.h"
#include "proc.h"
#include "sink.h"

#define HO_MAGIC		0x646e6168	/* "hand" */
#define HO_VERSION		1
#define HO_INLINE_MAX		(32 * 1024)	/* a larger state travels in a memfd */
#define HO_STATE_MAX		(FRAME_RESTORE_MAX + 4096)
#define HO_TAKES_PER_WAKE	64

_Static_assert(1 + CFG_MAX_LISTENERS * sizeof(struct addr) <= CHAN_MSG_MAX,
    "an offer fits a channel message");

/* The head of a message; the state follows, or is in the memfd. */
struct ho_head {
	uint32_t	 magic;
	uint16_t	 version;
	uint16_t	 in_memfd;
	uint64_t	 len;		/* bytes of the connection's state */
	struct addr	 listen;	/* its listener's address */
};

static struct {
	int		 inbox;				/* ours, to take from */
	struct event	*inbox_ev;
	int		 to[CHAN_MAX_INBOXES];		/* the next generation's */
	int		 nto;
	unsigned	 next;				/* round robin over to[] */
	struct addr	 served[CFG_MAX_LISTENERS];	/* their plain stream listeners */
	int		 nserved;
	int		 draining;
	int		 stuck;				/* this pass: every inbox full or gone */
	struct event	*wait_ev;			/* a full inbox, until writable */
	struct obuf	 state;
} ho = { .inbox = -1 };

static void	on_inbox(evutil_socket_t, short, void *);
static void	on_writable(evutil_socket_t, short, void *);

/* Take connections from inbox, this worker's end of its inbox. */
int
handover_init(int inbox)
{
	ho.inbox = inbox;
	ho.inbox_ev = event_new(proc.base, inbox, EV_READ | EV_PERSIST, on_inbox, NULL);
	ho.wait_ev = event_new(proc.base, -1, 0, on_writable, NULL);
	if (ho.inbox_ev == NULL || ho.wait_ev == NULL || event_add(ho.inbox_ev, NULL) == -1) {
		log_warnx("%s: cannot watch the hand-over inbox", proc.name);
		return -1;
	}
	return 0;
}

static int
offered(const struct listener_cfg *l)
{
	for (int i = 0; i < ho.nserved; i++)
		if (addr_equal(&ho.served[i], &l->listen.addr))
			return 1;
	return 0;
}

/* A state too large for one message, in a memfd; -1 on failure. */
static int
to_memfd(const char *p, size_t n)
{
	int fd = memfd_create("ingestd-handover", MFD_CLOEXEC);

	while (fd != -1 && n > 0) {
		ssize_t w = write(fd, p, n);

		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return fd;
}

static void
drop_inbox(int i, int err)
{
	log_info("%s: a worker of the next generation takes no more connections: %s", proc.name,
	    strerror(err));
	close(ho.to[i]);
	ho.to[i] = ho.to[--ho.nto];
	if (ho.nto == 0)
		log_notice("%s: no worker of the next generation takes connections; %d drain here",
		    proc.name, conn_count());
}

/* Until it is writable, the inbox that was full. */
static void
wait_for(int fd)
{
	event_del(ho.wait_ev);
	event_assign(ho.wait_ev, proc.base, fd, EV_WRITE, on_writable, NULL);
	event_add(ho.wait_ev, NULL);
}

/*
 * Send the message in ho.state (its head, then the state unless that is in
 * the memfd fds[1]) and the descriptors to the next inbox.  0: it went;
 * -1: it did not (a full inbox is waited for, a dead one dropped).
 */
static int
send_conn(int *fds)
{
	struct ho_head *h = (struct ho_head *)ho.state.p;

	while (ho.nto > 0) {
		unsigned i = ho.next % (unsigned)ho.nto;
		size_t n = sizeof(*h) + (h->in_memfd ? 0 : h->len);

		if (fdmsg_send(ho.to[i], ho.state.p, n, fds, 1 + h->in_memfd) != -1) {
			ho.next++;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == ENOBUFS) {
			wait_for(ho.to[i]);
			return -1;
		}
		if (errno == EMSGSIZE && !h->in_memfd) {	/* a small socket buffer */
			if ((fds[1] = to_memfd(ho.state.p + sizeof(*h), h->len)) == -1)
				return -1;
			h->in_memfd = 1;
			continue;
		}
		drop_inbox((int)i, errno);
	}
	return -1;
}

/* Hand c over if it can go.  When it cannot go now (every inbox full or gone), ho.stuck. */
static void
give(struct conn *c, void *arg)
{
	struct ho_head h = { .magic = HO_MAGIC, .version = HO_VERSION };
	int fds[2] = { conn_fd(c), -1 };

	(void)arg;
	if (ho.stuck || !offered(conn_listener(c)))
		return;
	ho.state.len = 0;
	if (obuf_reserve(&ho.state, sizeof(h)) == -1)
		return;
	ho.state.len = sizeof(h);
	if (conn_save(c, &ho.state) == -1)
		return;		/* not a connection that can go: it drains here */
	h.len = ho.state.len - sizeof(h);
	h.listen = conn_listener(c)->listen.addr;
	if (h.len > HO_INLINE_MAX) {
		if ((fds[1] = to_memfd(ho.state.p + sizeof(h), h.len)) == -1) {
			log_warn("%s: hand-over: memfd", proc.name);
			return;
		}
		h.in_memfd = 1;
	}
	memcpy(ho.state.p, &h, sizeof(h));
	if (send_conn(fds) == 0)
		conn_handed(c);
	else
		ho.stuck = 1;
	if (fds[1] != -1)
		close(fds[1]);
}

/* Hand over every connection that can go, until an inbox is full. */
static void
pump(void)
{
	if (!ho.draining || ho.nto == 0 || event_pending(ho.wait_ev, EV_WRITE, NULL))
		return;
	sink_flush_all();	/* a file has the records read here before the next worker's */
	ho.stuck = 0;
	conn_each(give, NULL);
}

static void
on_writable(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	pump();
}

/*
 * The master's offer (a channel message): the inboxes of the workers that
 * take over, and listeners, the addresses they serve as plain streams.
 * It replaces an earlier one.
 */
void
handover_offer(const int *inboxes, int n, const char *listeners, size_t len)
{
	for (int i = 0; i < ho.nto; i++)
		close(ho.to[i]);
	ho.nto = 0;
	event_del(ho.wait_ev);
	for (int i = 0; i < n; i++) {
		if (ho.nto < CHAN_MAX_INBOXES)
			ho.to[ho.nto++] = inboxes[i];
		else
			close(inboxes[i]);
	}
	ho.nserved = (int)(len / sizeof(struct addr));
	if (ho.nserved > CFG_MAX_LISTENERS)
		ho.nserved = CFG_MAX_LISTENERS;
	memcpy(ho.served, listeners, ho.nserved * sizeof(struct addr));
	log_debug("%s: connections go to %d workers of the next generation, on %d listeners",
	    proc.name, ho.nto, ho.nserved);
	pump();
}

/* The worker drains: what can go, goes. */
void
handover_start(void)
{
	ho.draining = 1;
	pump();
}

/* A state that came in a memfd; NULL on failure. */
static char *
from_memfd(int fd, size_t n)
{
	char *p = malloc(n ? n : 1);
	size_t got = 0;

	while (p != NULL && got < n) {
		ssize_t r = pread(fd, p + got, n - got, (off_t)got);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(p);
			return NULL;
		}
		got += (size_t)r;
	}
	return p;
}

/* What a message is not, or NULL when it is a connection this build takes. */
static const char *
check_msg(const struct ho_head *h, size_t n, int truncated, int nfds)
{
	if (truncated)
		return "truncated (out of descriptors?)";
	if (n < sizeof(*h) || h->magic != HO_MAGIC)
		return "not a hand-over message";
	if (h->version != HO_VERSION)
		return "a hand-over message of another version";
	if (nfds != 1 + (h->in_memfd != 0) || h->len > HO_STATE_MAX ||
	    (!h->in_memfd && h->len != n - sizeof(*h)))
		return "a malformed hand-over message";
	return NULL;
}

/* One message taken: the connection goes on here, or is closed with a word why. */
static void
take(const char *buf, size_t n, int truncated, const int *fds, int nfds)
{
	struct ho_head h;
	const char *why;
	char *state = NULL;

	memset(&h, 0, sizeof(h));
	memcpy(&h, buf, n < sizeof(h) ? n : sizeof(h));
	if ((why = check_msg(&h, n, truncated, nfds)) == NULL && h.in_memfd &&
	    (state = from_memfd(fds[1], h.len)) == NULL)
		why = "its state could not be read";
	if (why == NULL && acc_adopt(fds[0], &h.listen, state ? state : buf + sizeof(h),
	    h.len) == -1)
		why = "no plain stream listener here serves its address";
	if (why != NULL) {
		log_warnx("%s: a connection handed over: %s; closed", proc.name, why);
		if (nfds > 0)
			shutdown(fds[0], SHUT_WR);
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
	} else if (nfds > 1) {
		close(fds[1]);
	}
	free(state);
}

/* Take one message from the inbox: 1, or 0 when it is empty. */
static int
take_one(void)
{
	static char buf[sizeof(struct ho_head) + HO_INLINE_MAX];
	int fds[FDMSG_MAX_FDS], nfds, truncated;
	ssize_t n = fdmsg_recv(ho.inbox, buf, sizeof(buf), fds, &nfds, &truncated);

	if (n == -1) {
		if (errno != EAGAIN && errno != EINTR)
			log_warn("%s: hand-over inbox", proc.name);
		return 0;
	}
	if (n == 0) {	/* no sender is left: the master is gone */
		event_del(ho.inbox_ev);
		return 0;
	}
	take(buf, (size_t)n, truncated, fds, nfds);
	return 1;
}

static void
on_inbox(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	for (int i = 0; i < HO_TAKES_PER_WAKE && take_one(); i++)
		;
	pump();		/* a draining receiver hands on what it took */
}

/*
 * A draining worker about to exit: what is still in its inbox (a worker of
 * an older generation handed it over while this one drained) is taken,
 * and handed on, rather than closed with the inbox.  Returns how many.
 */
int
handover_take_rest(void)
{
	int n = 0;

	while (ho.inbox != -1 && take_one())
		n++;
	if (n)
		pump();
	return n;
}

void
handover_end(void)
{
	for (int i = 0; i < ho.nto; i++)
		close(ho.to[i]);
	ho.nto = 0;
	if (ho.wait_ev)
		event_free(ho.wait_ev);
	if (ho.inbox_ev)
		event_free(ho.inbox_ev);
	ho.wait_ev = ho.inbox_ev = NULL;
	if (ho.inbox != -1)
		close(ho.inbox);
	ho.inbox = -1;
	obuf_free(&ho.state);
}
