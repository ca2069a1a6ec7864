/*
 * tls: the TLS transport of a connection (OpenSSL 3, the context its
 * listener's generation built in the master: common/tlsctx.c).
 *
 * Nothing is allocated for TLS until the client's first byte is here: a
 * connection that stays silent costs no SSL object, and one whose first
 * byte cannot begin a TLS record (a plain-text client on a TLS port) is
 * refused without one.  After a PROXY header, the bytes read with it are
 * the SSL's first source (a memory BIO), then the socket.
 *
 * Readiness: an operation that must wait says which way (rd_wait, wr_wait;
 * TLS may need to write to read, after a KeyUpdate).  Bytes OpenSSL holds
 * that epoll cannot see are reported by pending(), but never half a record
 * after a read that wanted more: waiting for the socket is then right, and
 * reporting it would spin.
 */
#include <errno.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tlsctx.h"
#include "transport.h"

#define TLS_HANDSHAKE_RECORD	0x16	/* the first byte of a ClientHello */

struct tls_transport {
	struct transport	 base;
	const struct tls_cfg	*cf;
	SSL			*ssl;		/* NULL until the first byte */
	BIO			*early;		/* bytes read before TLS began, until used */
	BIO			*sock;
	struct tls_peer		*peer;		/* during the handshake (its verification) */
	char			*id;		/* after it: the client's identity, or NULL */
	short			 rd_wait, wr_wait;
	unsigned		 rd_again:1;	/* the last read wanted more from the socket */
	unsigned		 done:1;	/* the handshake completed */
	unsigned		 failed:1;	/* no close_notify from us after this */
	unsigned		 shut:1;	/* our close_notify is out */
	unsigned		 end:2;		/* enum tls_end: NONE, NOTIFY or EOF */
};

/*
 * A failure's words, read by conn.c at once (it logs and closes): one
 * buffer for the worker, not one per connection, which idle connections
 * would carry for nothing.
 */
static char	 why_buf[160];

static void
fail(struct tls_transport *t, const char *why)
{
	t->failed = 1;
	snprintf(why_buf, sizeof(why_buf), "%s", why);
	t->base.why = why_buf;
}

/* The SSL, once the client's first byte says it speaks TLS. */
static int
start_ssl(struct tls_transport *t, int fd)
{
	if ((t->ssl = SSL_new(t->cf->ctx)) == NULL ||
	    (t->peer = calloc(1, sizeof(*t->peer))) == NULL ||
	    (t->sock = BIO_new_socket(fd, BIO_NOCLOSE)) == NULL) {
		SSL_free(t->ssl);	/* no BIO is its yet: the early bytes stay ours */
		t->ssl = NULL;
		t->base.failure = TLSF_PROTOCOL;
		fail(t, "out of memory for TLS");
		return -1;
	}
	if (t->early) {
		SSL_set0_rbio(t->ssl, t->early);
		SSL_set0_wbio(t->ssl, t->sock);
	} else {
		SSL_set_bio(t->ssl, t->sock, t->sock);
	}
	SSL_set_accept_state(t->ssl);
	t->peer->cf = t->cf;
	tlsctx_attach(t->ssl, t->peer);
	return 0;
}

/* The early bytes are used up: read from the socket from now on.  0: they were not. */
static int
use_socket(struct tls_transport *t)
{
	if (t->early == NULL || BIO_ctrl_pending(t->early) > 0)
		return 0;
	BIO_up_ref(t->sock);
	SSL_set0_rbio(t->ssl, t->sock);	/* frees the memory BIO */
	t->early = NULL;
	return 1;
}

/* Before the SSL: the first byte must begin a handshake record. */
static int
first_byte(struct tls_transport *t, int fd)
{
	unsigned char b;
	ssize_t n;

	if (t->early) {
		char *p;

		n = BIO_get_mem_data(t->early, &p) > 0;
		b = n ? (unsigned char)p[0] : 0;
	} else {
		n = recv(fd, &b, 1, MSG_PEEK);
	}
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	t->base.failure = n == 1 ? TLSF_NOT_TLS : TLSF_CLOSED;
	if (n == 0)
		fail(t, "closed before the handshake");
	else if (n == -1)
		fail(t, strerror(errno));
	else if (b != TLS_HANDSHAKE_RECORD)
		fail(t, b == '<' || (b >= '0' && b <= '9') ? "not TLS (plain-text syslog?)" :
		    b == '{' ? "not TLS (plain-text JSON?)" : "not TLS");
	else
		return start_ssl(t, fd) == -1 ? -1 : 1;
	return -1;
}

static int
tls_handshake(struct transport *base, int fd)
{
	struct tls_transport *t = (struct tls_transport *)base;
	char detail[128];
	int r, e;

	if (t->ssl == NULL && (r = first_byte(t, fd)) != 1)
		return r;
	for (;;) {
		ERR_clear_error();
		if ((r = SSL_do_handshake(t->ssl)) == 1)
			break;
		e = SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_WANT_READ && use_socket(t))
			continue;
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			t->rd_wait = e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
			return 0;
		}
		t->base.failure = tlsctx_failure(t->ssl, t->peer, e, detail, sizeof(detail));
		fail(t, detail);
		return -1;
	}
	if (tlsctx_identify(t->ssl, t->peer) == -1) {
		t->base.failure = TLSF_NOT_PERMITTED;
		fail(t, "resumed session: certificate not in permitted_peers");
		return -1;
	}
	t->done = 1;
	t->rd_wait = EV_READ;
	t->base.resumed = SSL_session_reused(t->ssl);
	/* what verified the client is kept as its identity, the rest let go */
	if (t->peer->id[0] && (t->id = strdup(t->peer->id)) == NULL) {
		t->base.failure = TLSF_PROTOCOL;
		fail(t, "out of memory");
		return -1;
	}
	t->base.peer_id = t->id;
	tlsctx_attach(t->ssl, NULL);
	free(t->peer);
	t->peer = NULL;
	return 1;
}

/* A read that cannot go on: the end of the stream, or a failure. */
static void
read_stopped(struct tls_transport *t, int e)
{
	char why[128];
	enum tls_end end = tlsctx_end(e, why, sizeof(why));

	if (end == TLS_END_FAILED)
		fail(t, why);
	else
		t->end = end;
}

/*
 * Fill buf with what the client sent (one SSL_read yields at most one TLS
 * record), so that a short count means the socket is drained, as it does
 * for the plain transport.  An end or a failure met after some bytes is
 * reported by the next call.
 */
static ssize_t
tls_recv(struct transport *base, int fd, char *buf, size_t n)
{
	struct tls_transport *t = (struct tls_transport *)base;
	size_t got = 0, k;

	(void)fd;
	while (got < n && !t->end && !t->failed) {
		int r, e;

		ERR_clear_error();
		errno = 0;
		if ((r = SSL_read_ex(t->ssl, buf + got, n - got, &k)) == 1) {
			got += k;
			t->rd_again = 0;
			continue;
		}
		e = SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_WANT_READ && use_socket(t))
			continue;
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			t->rd_wait = e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
			t->rd_again = 1;
			break;
		}
		read_stopped(t, e);
	}
	if (got > 0)
		return (ssize_t)got;
	if (t->failed) {
		errno = EPROTO;
		return -1;
	}
	if (t->end)
		return 0;
	errno = EAGAIN;
	return -1;
}

static ssize_t
tls_send(struct transport *base, int fd, const char *buf, size_t n)
{
	struct tls_transport *t = (struct tls_transport *)base;
	size_t k;
	int r, e;

	(void)fd;
	ERR_clear_error();
	errno = 0;
	if ((r = SSL_write_ex(t->ssl, buf, n, &k)) == 1)
		return (ssize_t)k;
	e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
		t->wr_wait = e == SSL_ERROR_WANT_WRITE ? EV_WRITE : EV_READ;
		errno = EAGAIN;
		return -1;
	}
	read_stopped(t, e);
	t->failed = 1;
	if (errno == 0)
		errno = EPIPE;
	return -1;
}

static short
tls_waits(const struct transport *base, int sending)
{
	const struct tls_transport *t = (const struct tls_transport *)base;

	return sending ? t->wr_wait : t->rd_wait;
}

static int
tls_pending(const struct transport *base)
{
	const struct tls_transport *t = (const struct tls_transport *)base;

	if (t->ssl == NULL || !t->done)
		return 0;
	return t->end || t->failed || SSL_pending(t->ssl) > 0 ||
	    (!t->rd_again && SSL_has_pending(t->ssl));
}

static int
tls_partial(const struct transport *base)
{
	const struct tls_transport *t = (const struct tls_transport *)base;

	return t->done && t->rd_again && SSL_has_pending(t->ssl);
}

static const char *
tls_truncation(const struct transport *base)
{
	const struct tls_transport *t = (const struct tls_transport *)base;

	return t->end == TLS_END_NOTIFY ? "TLS close_notify inside a record" :
	    t->end == TLS_END_EOF ? "TLS ended without close_notify inside a record" : NULL;
}

/* Our end: close_notify (when the session is sound), then FIN. */
static int
tls_shutdown(struct transport *base, int fd)
{
	struct tls_transport *t = (struct tls_transport *)base;

	if (t->done && !t->failed && !t->shut) {
		ERR_clear_error();
		SSL_shutdown(t->ssl);
		ERR_clear_error();
		t->shut = 1;
	}
	return shutdown(fd, SHUT_WR);
}

static void
tls_free(struct transport *base)
{
	struct tls_transport *t = (struct tls_transport *)base;

	if (t->ssl) {
		if (t->done && !t->failed && !t->shut && t->end != TLS_END_EOF) {
			ERR_clear_error();
			SSL_shutdown(t->ssl);	/* a goodbye, not waited for */
			ERR_clear_error();
		}
		SSL_free(t->ssl);	/* with its BIOs */
	} else {
		BIO_free(t->early);
	}
	free(t->peer);
	free(t->id);
	free(t);
}

static const struct transport_ops tls_ops = {
	.handshake = tls_handshake,
	.recv = tls_recv,
	.send = tls_send,
	.waits = tls_waits,
	.pending = tls_pending,
	.partial = tls_partial,
	.truncation = tls_truncation,
	.shutdown = tls_shutdown,
	.free = tls_free,
};

/* A TLS transport for a connection; rest: bytes already read (after a PROXY header). */
struct transport *
tls_transport_new(const struct tls_cfg *cf, const char *rest, size_t n)
{
	struct tls_transport *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->base.ops = &tls_ops;
	t->cf = cf;
	t->rd_wait = EV_READ;
	t->wr_wait = EV_WRITE;
	if (n > 0 && ((t->early = BIO_new(BIO_s_mem())) == NULL ||
	    BIO_write(t->early, rest, (int)n) != (int)n)) {
		BIO_free(t->early);
		free(t);
		return NULL;
	}
	if (t->early)
		BIO_set_mem_eof_return(t->early, -1);	/* empty: "retry", not the end */
	return &t->base;
}
