/*
 * tlsctx: the TLS contexts of a configuration (OpenSSL 3), and how a
 * client's certificate is authorized.
 *
 * The master builds a listener's context while it loads the configuration
 * (as root, so keys may be readable by root only) and before it forks the
 * generation: every worker of the generation shares it, with its session
 * ticket keys, so a client that resumes lands on any worker.  A reload
 * builds new contexts; the running generation keeps its own until it ends.
 *
 * Authorization follows RFC 5425: the chain is verified against the CAs
 * (and the CRLs), then permitted_peers must list one of the certificate's
 * names or its fingerprint; a listed fingerprint also admits a certificate
 * no CA vouches for (self-signed).  What matched is the peer's identity.
 */
#ifndef INGESTD_TLSCTX_H
#define INGESTD_TLSCTX_H

#include <stddef.h>

#include "config.h"

#define TLS_ID_MAX	256	/* bytes of an identity kept (with its NUL) */

typedef struct ssl_st SSL;

/* Why a handshake failed: the reason label of ingestd_tls_handshake_failures_total. */
enum tls_failure {
	TLSF_NO_CERTIFICATE, TLSF_UNTRUSTED, TLSF_EXPIRED, TLSF_REVOKED, TLSF_NOT_PERMITTED,
	TLSF_NOT_TLS, TLSF_NO_SHARED_PARAMS, TLSF_PROTOCOL, TLSF_CLOSED, TLSF_TIMEOUT
};

/* How a TLS stream ended (tlsctx_end). */
enum tls_end { TLS_END_NONE, TLS_END_NOTIFY, TLS_END_EOF, TLS_END_FAILED };

/* What the handshake found out about the client, kept with its connection. */
struct tls_peer {
	const struct tls_cfg *cf;
	int		 fp_match;	/* its fingerprint is listed */
	int		 verify_err;	/* X509_V_ERR_*, or 0 */
	char		 id[TLS_ID_MAX];	/* the identity; empty: no certificate */
};

void		*tlsctx_server(const struct tls_cfg *, char *err, size_t errlen);
void		*tlsctx_client(const struct tls_cfg *, char *err, size_t errlen);
SSL		*tlsctx_connect(const struct tls_cfg *, int fd, const char *host);
void		 tlsctx_free(void *ctx);
int		 tlsctx_fingerprint(const char *text, unsigned char *md, int *mdlen);
void		 tlsctx_attach(SSL *, struct tls_peer *);
int		 tlsctx_identify(SSL *, struct tls_peer *);
enum tls_failure tlsctx_failure(SSL *, const struct tls_peer *, int ssl_error, char *detail,
		    size_t size);
const char	*tlsctx_failure_name(enum tls_failure);
enum tls_end	 tlsctx_end(int ssl_error, char *why, size_t size);

#endif
