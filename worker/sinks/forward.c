/*
 * forward: the driver of forward sinks: events (or the records as they
 * came) to upstream collectors over TCP or a unix socket.
 *
 * Each worker keeps one non-blocking connection per upstream, opened when
 * there is something to send.  "failover" sends to the first upstream that
 * takes a connection and stays with it until it fails; "roundrobin" sends
 * each batch to the next upstream.  A unit (a line, or an octet-counted
 * frame) leaves the queue only once it has been written whole; when a
 * connection fails, the unit it was in the middle of is sent again, whole,
 * on the next one, so no unit is split or written twice by us.  What the
 * kernel had taken for a connection that then failed may be lost: plain
 * TCP does not say what the peer read.  An upstream that closes its side
 * first (a graceful restart: shutdown(SHUT_WR), then read to the end) loses
 * nothing: we stop writing as soon as we see its FIN.
 *
 * With a tls group, each connection is TLS (the context the master built,
 * common/tlsctx.c): after the TCP connect comes the handshake, within
 * handshake_timeout, and the upstream's certificate must verify and carry
 * server_name (or the address); one that does not is a failed upstream
 * like a refused connect, logged with the reason, and the events wait in
 * the queue for the next upstream or the next try.  Units are written with
 * SSL_write, and what the upstream sends (session tickets, its
 * close_notify) is read with SSL_read.
 *
 * With protocol = "relp", each connection is a RELP session
 * (protocol/relp_client.c): the queue holds octet-counted units, each sent
 * as one "syslog" frame, at most relp_window of them unanswered, and a
 * unit leaves the queue only when the upstream has answered it; so RELP
 * answers to our own clients wait for the upstream's.  When the connection
 * fails, is refused a record, or the upstream ends the session, every
 * unit not answered is sent again, from the oldest, on the next
 * connection: the upstream may receive one twice, never none.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "clock.h"
#include "driver.h"
#include "proc.h"
#include "relp_client.h"
#include "tlsctx.h"

#define GOODBYE_MS	500	/* at exit, for the answer to RELP's close */

enum { UP_IDLE, UP_CONNECTING, UP_HANDSHAKE, UP_OPEN };

struct upstream {
	struct sink	*s;
	const struct addr *addr;
	char		 text[ADDR_STRLEN];
	int		 fd;
	int		 state;
	struct event	 rev;		/* readable: the upstream's FIN, while connected */
	struct event	 wev;		/* writable: while connecting, or its socket is full */
	SSL		*ssl;		/* with a tls group, once connected */
	int		 write_reads;	/* the last SSL_write waits for the upstream's bytes */
	struct event	 hs_ev;		/* handshake_timeout */
	struct relp_client rc;		/* protocol = "relp": the session */
	struct obuf	 out;		/* relp: frames not yet sent */
};

struct forward {
	struct upstream	*up;
	int		 nup;
	int		 cur;		/* the upstream sending now */
	int		 fails;		/* upstreams that failed in a row */
	size_t		 partial;	/* bytes of the head unit already sent on it */
	int		 relp;		/* protocol = "relp" */
	size_t		 sent;		/* relp: bytes of the queue's head in frames not answered */
	struct log_limit downlog;
};

static void	on_readable(evutil_socket_t, short, void *);
static void	on_writable(evutil_socket_t, short, void *);
static void	on_handshake_timeout(evutil_socket_t, short, void *);

/* The connection failed or the upstream left: the next one is tried. */
static void
drop_conn(struct forward *f, struct upstream *u, const char *why)
{
	log_limited(&f->downlog, LOG_LVL_WARNING, "%s: sink %s: upstream %s: %s", proc.name,
	    u->s->cf->name, u->text, why);
	if (u->fd != -1) {
		event_del(&u->rev);
		event_del(&u->wev);
		event_del(&u->hs_ev);
		SSL_free(u->ssl);	/* no close_notify: the connection failed */
		close(u->fd);
	}
	u->ssl = NULL;
	u->fd = -1;
	u->state = UP_IDLE;
	if (f->relp) {
		if (u->rc.count > 0) {
			u->s->st->resent += u->rc.count;
			log_info("%s: sink %s: %u events %s did not answer are sent again",
			    proc.name, u->s->cf->name, u->rc.count, u->text);
		}
		relpc_reset(&u->rc);
		u->out.len = 0;
	}
	if (u != &f->up[f->cur])
		return;		/* an idle connection of roundrobin's: nothing was in progress */
	f->sent = 0;		/* relp: what was not answered goes again */
	f->partial = 0;		/* the unit in progress goes again, whole */
	f->fails++;
	f->cur = (f->cur + 1) % f->nup;
}

static int
start_connect(struct upstream *u)
{
	int fd = socket(u->addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd == -1)
		return -1;
	if (connect(fd, (const struct sockaddr *)&u->addr->ss, u->addr->len) == -1 &&
	    errno != EINPROGRESS) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	u->fd = fd;
	u->state = UP_CONNECTING;
	event_assign(&u->rev, proc.base, fd, EV_READ | EV_PERSIST, on_readable, u);
	event_assign(&u->wev, proc.base, fd, EV_WRITE | EV_PERSIST, on_writable, u);
	evtimer_assign(&u->hs_ev, proc.base, on_handshake_timeout, u);
	event_add(&u->rev, NULL);
	event_add(&u->wev, NULL);
	return 0;
}

static void
on_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *u = arg;

	(void)fd;
	(void)what;
	drop_conn(u->s->state, u, "TLS handshake_timeout");
	sink_writable(u->s);	/* the next upstream takes over */
}

/* Why a TLS call failed, in words: the certificate's verdict first. */
static const char *
tls_why(struct upstream *u, int e, char *buf, size_t size)
{
	long v = SSL_get_verify_result(u->ssl);

	if (v != X509_V_OK) {
		snprintf(buf, size, "TLS: certificate: %s", X509_verify_cert_error_string(v));
		ERR_clear_error();
	} else if (tlsctx_end(e, buf, size) != TLS_END_FAILED) {
		snprintf(buf, size, "closed by the upstream");
	}
	return buf;
}

/* Connected: the TLS session begins, if the sink has one. */
static int
start_tls(struct upstream *u)
{
	const struct tls_cfg *t = &u->s->cf->tls;
	char host[INET6_ADDRSTRLEN] = "";
	const struct sockaddr_storage *ss = &u->addr->ss;

	if (!t->enabled) {
		u->state = UP_OPEN;
		return 0;
	}
	/* the address the upstream was reached at, for its certificate without server_name */
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host, sizeof(host));
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, host, sizeof(host));
	if ((u->ssl = tlsctx_connect(t, u->fd, host)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	u->state = UP_HANDSHAKE;
	if (t->handshake_timeout_ms > 0) {
		struct timeval tv = { t->handshake_timeout_ms / 1000,
		    (t->handshake_timeout_ms % 1000) * 1000 };

		evtimer_add(&u->hs_ev, &tv);
	}
	return 0;
}

/* The handshake goes on: done (1), waiting (0), or failed (-1, the reason in why). */
static int
handshake(struct upstream *u, char *why, size_t size)
{
	int r, e;

	ERR_clear_error();
	errno = 0;
	if ((r = SSL_do_handshake(u->ssl)) == 1) {
		event_del(&u->hs_ev);
		u->state = UP_OPEN;
		return 1;
	}
	e = SSL_get_error(u->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		return 0;			/* rev is always watched */
	if (e == SSL_ERROR_WANT_WRITE) {
		event_add(&u->wev, NULL);
		return 0;
	}
	tls_why(u, e, why, size);
	return -1;
}

/* One send, plain or TLS: a count, or -1 with errno (EAGAIN: wait; *why for TLS failures). */
static ssize_t
up_send(struct upstream *u, const char *p, size_t n, char *why, size_t size)
{
	size_t k;
	int r, e;

	if (u->ssl == NULL)
		return send(u->fd, p, n, MSG_NOSIGNAL);
	ERR_clear_error();
	errno = 0;
	if ((r = SSL_write_ex(u->ssl, p, n, &k)) == 1)
		return (ssize_t)k;
	e = SSL_get_error(u->ssl, r);
	if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
		u->write_reads = e == SSL_ERROR_WANT_READ;	/* rev is watched anyway */
		errno = EAGAIN;
		return -1;
	}
	tls_why(u, e, why, size);
	errno = EPROTO;
	return -1;
}

/* A connection in progress: done (1), still going (0), or failed (-1, errno). */
static int
check_connected(struct upstream *u)
{
	struct pollfd pfd = { u->fd, POLLOUT, 0 };
	int err = 0;
	socklen_t len = sizeof(err);

	if (poll(&pfd, 1, 0) == 0)
		return 0;
	if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 || err != 0) {
		errno = err ? err : errno;
		return -1;
	}
	return start_tls(u) == -1 ? -1 : 1;
}

/*
 * An upstream to send on: the current one if it is open or connecting,
 * else the next that takes a connection (failover keeps its order).  NULL
 * with errno once every upstream failed in a row: sink.c then backs off.
 */
static struct upstream *
pick(struct sink *s)
{
	struct forward *f = s->state;

	while (f->fails < f->nup) {
		struct upstream *u = &f->up[f->cur];

		if (u->state != UP_IDLE || start_connect(u) == 0)
			return u;
		drop_conn(f, u, strerror(errno));
	}
	f->fails = 0;		/* the retry after the back-off starts afresh */
	errno = ECONNREFUSED;
	return NULL;
}

/* relp: send what u->out holds; 0 when sent or waiting for room, -1 on failure (why). */
static int
send_out(struct upstream *u, char *why, size_t size)
{
	size_t off = 0;
	ssize_t n;
	int rc = 0;

	while (off < u->out.len) {
		if ((n = up_send(u, u->out.p + off, u->out.len - off, why, size)) >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			if (!u->write_reads)
				event_add(&u->wev, NULL);
		} else {
			if (why[0] == '\0')
				snprintf(why, size, "%s", strerror(errno));
			rc = -1;
		}
		break;
	}
	obuf_consume(&u->out, off);
	return rc;
}

/*
 * relp: frame the units after those in flight, as many as the window has
 * room for, and send.  Nothing leaves the queue here: answers release it
 * (settle).  Before the session is open, only "open" goes.
 */
static ssize_t
relp_write(struct sink *s, struct forward *f, struct upstream *u, int *wait)
{
	char why[192] = "";

	*wait = 1;
	if (u->rc.state == RELPC_NEW && relpc_open(&u->rc, &u->out) == -1) {
		errno = ENOMEM;
		return -1;
	}
	while (relpc_room(&u->rc) && f->sent < s->q.len) {
		const char *p = s->q.p + f->sent;
		size_t unit = sink_unit_len(s, p, s->q.len - f->sent);
		const char *msg = (const char *)memchr(p, ' ', unit) + 1;	/* "LEN SP MSG" */

		if (relpc_send(&u->rc, &u->out, msg, unit - (size_t)(msg - p), unit) == -1) {
			errno = ENOMEM;
			return -1;
		}
		f->sent += unit;
	}
	if (send_out(u, why, sizeof(why)) == -1) {
		int saved = errno;

		drop_conn(f, u, why);
		errno = saved;
		return -1;
	}
	return 0;
}

static ssize_t
forward_write(struct sink *s, int *wait)
{
	struct forward *f = s->state;
	struct upstream *u;
	size_t done = 0, head;
	ssize_t n;
	char why[192] = "";

	*wait = 0;
	if ((u = pick(s)) == NULL)
		return -1;
	snprintf(s->where, sizeof(s->where), "%s", u->text);
	if (u->state == UP_CONNECTING) {
		int rc = check_connected(u);

		if (rc == -1) {
			drop_conn(f, u, strerror(errno));
			return forward_write(s, wait);		/* the next upstream, or -1 */
		}
		if (rc == 0) {
			*wait = 1;
			return 0;
		}
	}
	if (u->state == UP_HANDSHAKE) {
		int rc = handshake(u, why, sizeof(why));

		if (rc == -1) {
			drop_conn(f, u, why);
			return forward_write(s, wait);
		}
		if (rc == 0) {
			*wait = 1;
			return 0;
		}
	}
	if (f->relp)
		return relp_write(s, f, u, wait);
	head = sink_unit_len(s, s->q.p, s->q.len);
	while (done < s->q.len) {
		n = up_send(u, s->q.p + done + f->partial, s->q.len - done - f->partial, why,
		    sizeof(why));
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				*wait = 1;
				if (!u->write_reads)
					event_add(&u->wev, NULL);
				break;
			}
			drop_conn(f, u, why[0] ? why : strerror(errno));
			return done ? (ssize_t)done : -1;
		}
		f->fails = 0;
		f->partial += n;
		while (head > 0 && f->partial >= head) {	/* whole units leave the queue */
			done += head;
			f->partial -= head;
			head = done < s->q.len ? sink_unit_len(s, s->q.p + done, s->q.len - done) : 0;
		}
	}
	if (done == s->q.len && s->cf->mode == FORWARD_ROUNDROBIN)
		f->cur = (f->cur + 1) % f->nup;		/* the next batch goes to the next one */
	return done;
}

/*
 * One read, plain or TLS: a count, 0 at the end, or -1 with errno (EAGAIN:
 * nothing more now; else why says what ended the connection).  Over TLS,
 * what the upstream sent may be only a session ticket or its close_notify.
 */
static ssize_t
up_recv(struct upstream *u, char *buf, size_t size, char *why, size_t wsize)
{
	ssize_t n;
	size_t k;
	int r, e;

	if (u->ssl == NULL) {
		if ((n = recv(u->fd, buf, size, 0)) == -1 && errno == EINTR)
			errno = EAGAIN;		/* the event comes again */
		else if (n == -1 && errno != EAGAIN)
			snprintf(why, wsize, "%s", strerror(errno));
		return n;
	}
	ERR_clear_error();
	errno = 0;
	if ((r = SSL_read_ex(u->ssl, buf, size, &k)) == 1)
		return (ssize_t)k;
	e = SSL_get_error(u->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	tls_why(u, e, why, wsize);
	errno = EPROTO;
	return -1;
}

/*
 * relp: the units the upstream answered leave the queue; roundrobin moves
 * to the next upstream once all it was sent is answered.
 */
static void
settle(struct sink *s, struct forward *f, size_t n)
{
	f->sent -= n;
	if (f->sent == 0 && s->cf->mode == FORWARD_ROUNDROBIN)
		f->cur = (f->cur + 1) % f->nup;
	sink_consumed(s, n);
}

/*
 * Readable.  Over relp: answers, which release what they answer.  Else an
 * upstream sends nothing, so this is its FIN (or an error): it is going
 * away, and nothing more is written to it.  Over TLS, it may be the
 * handshake's next flight or a session ticket.
 */
static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *u = arg;
	struct sink *s = u->s;
	struct forward *f = s->state;
	char buf[16384], why[192] = "";
	const char *rwhy;
	size_t released = 0;
	ssize_t n;
	int over = 0;

	(void)fd;
	(void)what;
	if (u->state == UP_HANDSHAKE) {
		sink_writable(s);	/* forward_write takes the handshake further */
		return;
	}
	while (!over && (n = up_recv(u, buf, sizeof(buf), why, sizeof(why))) > 0)
		if (f->relp && relpc_feed(&u->rc, buf, (size_t)n, &released, &rwhy) == -1) {
			snprintf(why, sizeof(why), "%s", rwhy);
			over = 1;
		}
	if (!over && n == 0)
		snprintf(why, sizeof(why), "closed by the upstream");
	over = over || n == 0 || errno != EAGAIN;
	if (released > 0)
		settle(s, f, released);
	if (over)
		drop_conn(f, u, why);
	/* the next upstream takes over; the session opened or the window has room; what a
	 * blocked SSL_write waited for came */
	if (over || (f->relp && relpc_room(&u->rc) && f->sent < s->q.len) || u->write_reads) {
		u->write_reads = 0;
		sink_writable(s);
	}
}

/* Writable: connected, or room again; watched only while something waits. */
static void
on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *u = arg;

	(void)fd;
	(void)what;
	event_del(&u->wev);
	sink_writable(u->s);
}

static int
forward_start(struct sink *s)
{
	struct forward *f = calloc(1, sizeof(*f));

	if (f == NULL || (f->up = calloc(s->cf->nupstreams, sizeof(*f->up))) == NULL) {
		free(f);
		log_warn("%s: sink %s", proc.name, s->cf->name);
		return -1;
	}
	s->state = f;
	f->nup = s->cf->nupstreams;
	f->relp = s->cf->protocol == PROTO_RELP;
	for (int i = 0; i < f->nup; i++) {
		struct upstream *u = &f->up[i];

		u->s = s;
		u->addr = &s->cf->upstream_v[i];
		u->fd = -1;
		snprintf(u->text, sizeof(u->text), "%s", s->cf->upstreams.v[i]);
		if (f->relp && relpc_init(&u->rc, (unsigned)s->cf->relp_window) == -1) {
			log_warn("%s: sink %s", proc.name, s->cf->name);
			return -1;
		}
	}
	return 0;
}

/*
 * relp at exit: "close", then the upstream's answer and its end of the
 * connection (its "serverclose", or EOF) awaited for a moment: an upstream
 * whose client leaves first logs an error (rsyslog: "broken pipe", or
 * "session broken").
 */
static void
relp_goodbye(struct upstream *u)
{
	char buf[512], why[192] = "";
	const char *rwhy;
	size_t released = 0;
	long left, until = clock_ms() + GOODBYE_MS;
	ssize_t n;

	if (relpc_close(&u->rc, &u->out) == -1 || send_out(u, why, sizeof(why)) == -1)
		return;
	while ((left = until - clock_ms()) > 0) {
		struct pollfd pfd = { u->fd, u->out.len ? POLLIN | POLLOUT : POLLIN, 0 };

		if (poll(&pfd, 1, (int)left) <= 0)
			break;
		if ((pfd.revents & POLLOUT) && send_out(u, why, sizeof(why)) == -1)
			break;
		if ((pfd.revents & POLLIN) == 0)
			continue;
		if ((n = up_recv(u, buf, sizeof(buf), why, sizeof(why))) > 0) {
			if (relpc_feed(&u->rc, buf, (size_t)n, &released, &rwhy) == -1)
				break;
		} else if (n == 0 || errno != EAGAIN) {
			break;
		}
	}
}

/* The end of a connection that works: RELP's close, TLS' close_notify. */
static void
say_goodbye(struct forward *f, struct upstream *u)
{
	if (u->state != UP_OPEN)
		return;
	if (f->relp && u->rc.state == RELPC_OPEN)
		relp_goodbye(u);
	if (u->ssl)
		SSL_shutdown(u->ssl);
}

static void
forward_close(struct sink *s)
{
	struct forward *f = s->state;

	if (f == NULL)
		return;
	for (int i = 0; i < f->nup; i++) {
		struct upstream *u = &f->up[i];

		if (u->fd != -1) {
			say_goodbye(f, u);
			event_del(&u->rev);
			event_del(&u->wev);
			event_del(&u->hs_ev);
			SSL_free(u->ssl);
			close(u->fd);
		}
		relpc_free(&u->rc);
		obuf_free(&u->out);
	}
	free(f->up);
	free(f);
	s->state = NULL;
}

const struct sink_driver sink_forward_driver = {
	"forward", forward_start, forward_write, NULL, NULL, forward_close
};
