/*
 * bench_tls: --tls, every connection a TLS session (OpenSSL), for every
 * mode but --udp.
 *
 * A connection's SSL is kept in a table by descriptor, so the modes keep
 * passing descriptors: net_write, net_read and net_close (bench_net.c) go
 * through TLS when the descriptor has an SSL.  The handshake is
 * nonblocking: tls_step() goes as far as it can, and tls_events() says
 * what to wait for.  With --ca the server is verified against it (and
 * --server-name, when given); --cert and --key present a client
 * certificate; --resume offers the last session ticket this process got,
 * so that churn measures resumed handshakes.  A ticket comes after the
 * handshake: churn reads until the server's EOF anyway, which takes it.
 */
#include <err.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"

#define TLS_MAX_FD	65536

static SSL_CTX		*ctx;
static SSL		*by_fd[TLS_MAX_FD];
static uint32_t		 wants[TLS_MAX_FD];	/* EPOLLIN or EPOLLOUT */
static SSL_SESSION	*last_session;		/* --resume: offered to new sessions */
static int		 resume;
static const char	*server_name;

static int
on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	(void)ssl;
	SSL_SESSION_free(last_session);
	last_session = sess;
	return 1;	/* we keep the reference */
}

int
tls_setup(const struct opts *o)
{
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return -1;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	if (o->tls_ca) {
		if (SSL_CTX_load_verify_locations(ctx, o->tls_ca, NULL) != 1) {
			warnx("--ca %s: cannot load it", o->tls_ca);
			return -1;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	if (o->tls_cert && (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, o->tls_key ? o->tls_key : o->tls_cert,
	    SSL_FILETYPE_PEM) != 1)) {
		warnx("--cert %s: cannot load it or its key", o->tls_cert);
		return -1;
	}
	resume = o->tls_resume;
	server_name = o->tls_server_name;
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, on_new_session);
	return 0;
}

int
tls_on(void)
{
	return ctx != NULL;
}

/* A TLS session on fd, its connect begun; the handshake is left to tls_step. */
int
tls_start(int fd)
{
	SSL *ssl;

	if (fd >= TLS_MAX_FD || (ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1)
		errx(EX_FAILED, "TLS: no SSL for descriptor %d", fd);
	SSL_set_connect_state(ssl);
	if (server_name) {
		SSL_set_tlsext_host_name(ssl, server_name);
		SSL_set1_host(ssl, server_name);
	}
	if (resume && last_session)
		SSL_set_session(ssl, last_session);
	by_fd[fd] = ssl;
	wants[fd] = EPOLLOUT;
	return 0;
}

/* What the last operation on fd waits for: EPOLLIN or EPOLLOUT. */
uint32_t
tls_events(int fd)
{
	return wants[fd];
}

/* The handshake's next steps: 1 done, 0 waiting (tls_events), -1 failed (errno). */
int
tls_step(int fd, struct result *r)
{
	SSL *ssl = by_fd[fd];
	int rc, e;

	ERR_clear_error();
	errno = 0;
	if ((rc = SSL_do_handshake(ssl)) == 1) {
		r->tls_resumed += SSL_session_reused(ssl);
		return 1;
	}
	e = SSL_get_error(ssl, rc);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		wants[fd] = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
		return 0;
	}
	r->tls_failed++;
	if (errno == 0)
		errno = EPROTO;
	ERR_clear_error();
	return -1;
}

static ssize_t
io_result(int fd, int rc, int e)
{
	(void)rc;
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		wants[fd] = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
		errno = EAGAIN;
		return -1;
	}
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0)
		return 0;	/* EOF without close_notify */
	if (e == SSL_ERROR_SSL &&
	    ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
		ERR_clear_error();
		return 0;
	}
	if (errno == 0 || errno == EAGAIN)
		errno = ECONNRESET;
	ERR_clear_error();
	return -1;
}

/* As write(2): a count, or -1 with errno (EAGAIN: wait for tls_events). */
ssize_t
tls_write(int fd, const void *buf, size_t n)
{
	size_t k;
	int rc;

	ERR_clear_error();
	errno = 0;
	if ((rc = SSL_write_ex(by_fd[fd], buf, n, &k)) == 1)
		return (ssize_t)k;
	return io_result(fd, rc, SSL_get_error(by_fd[fd], rc));
}

/* As read(2): a count, 0 at the end (close_notify, or EOF), -1 with errno. */
ssize_t
tls_read(int fd, void *buf, size_t n)
{
	size_t k;
	int rc;

	ERR_clear_error();
	errno = 0;
	if ((rc = SSL_read_ex(by_fd[fd], buf, n, &k)) == 1)
		return (ssize_t)k;
	return io_result(fd, rc, SSL_get_error(by_fd[fd], rc));
}

/* Our end of the session: close_notify (the server then sees a clean end). */
void
tls_shutdown(int fd)
{
	if (by_fd[fd]) {
		ERR_clear_error();
		SSL_shutdown(by_fd[fd]);
		ERR_clear_error();
	}
}

int
tls_has(int fd)
{
	return fd >= 0 && fd < TLS_MAX_FD && by_fd[fd] != NULL;
}

void
tls_forget(int fd)
{
	if (tls_has(fd)) {
		SSL_free(by_fd[fd]);
		by_fd[fd] = NULL;
	}
}
