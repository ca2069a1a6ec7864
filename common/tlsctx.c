/*
 * tlsctx: build a listener's SSL_CTX from its tls group, and authorize the
 * certificates clients present (RFC 5425: names, fingerprints).
 *
 * Every error names the file and OpenSSL's reason; the caller puts the
 * setting's place in front of it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "tlsctx.h"

#define EXPIRY_WARN_DAYS	30

static int peer_index = -1;	/* the SSL's ex_data slot of its struct tls_peer */

static const char *const failure_names[] = {
	[TLSF_NO_CERTIFICATE] = "no_certificate", [TLSF_UNTRUSTED] = "untrusted",
	[TLSF_EXPIRED] = "expired", [TLSF_REVOKED] = "revoked",
	[TLSF_NOT_PERMITTED] = "not_permitted", [TLSF_NOT_TLS] = "not_tls",
	[TLSF_NO_SHARED_PARAMS] = "no_shared_params", [TLSF_PROTOCOL] = "protocol",
	[TLSF_CLOSED] = "closed", [TLSF_TIMEOUT] = "handshake_timeout",
};

const char *
tlsctx_failure_name(enum tls_failure f)
{
	return failure_names[f];
}

/* OpenSSL's last error, as text, and the queue cleared. */
static const char *
ssl_reason(char *buf, size_t size)
{
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		snprintf(buf, size, "%s", errno ? strerror(errno) : "unknown error");
	else if (ERR_GET_LIB(e) == ERR_LIB_SYS)
		snprintf(buf, size, "%s", strerror(ERR_GET_REASON(e)));
	else
		snprintf(buf, size, "%s", ERR_reason_error_string(e) ? ERR_reason_error_string(e) :
		    "unknown error");
	ERR_clear_error();
	return buf;
}

/* A file the context reads must be readable: say so with errno, not OpenSSL's words. */
static int
readable(const char *what, const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "r");

	if (fp == NULL) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	fclose(fp);
	return 0;
}

/*
 * "sha256:AB:CD..." or "sha1:..." (any case, colons optional): the digest
 * in md (32 bytes of room), its length in *mdlen.  Returns 0, 1 when text
 * is not a fingerprint (a name), -1 when it is one written wrong.
 */
int
tlsctx_fingerprint(const char *text, unsigned char *md, int *mdlen)
{
	int want, n = 0;
	const char *p;

	if (strncasecmp(text, "sha256:", 7) == 0) {
		want = 32;
		p = text + 7;
	} else if (strncasecmp(text, "sha1:", 5) == 0) {
		want = 20;
		p = text + 5;
	} else {
		return 1;
	}
	while (*p) {
		if (*p == ':') {
			p++;
			continue;
		}
		if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]) || n == want)
			return -1;
		sscanf(p, "%2hhx", &md[n++]);
		p += 2;
	}
	*mdlen = want;
	return n == want ? 0 : -1;
}

/* Whether pattern admits name: equal, or "*.rest" for one label then ".rest" (any case). */
static int
name_matches(const char *pattern, const char *name, size_t namelen)
{
	size_t plen = strlen(pattern);
	const char *label_end;

	if (strncmp(pattern, "*.", 2) != 0)
		return plen == namelen && strncasecmp(pattern, name, namelen) == 0;
	if (namelen <= plen - 1 ||
	    strncasecmp(name + namelen - (plen - 1), pattern + 1, plen - 1) != 0)
		return 0;
	label_end = memchr(name, '.', namelen);
	return label_end == name + namelen - (plen - 1);	/* one label before the suffix */
}

/* A "*.example.com" pattern against the certificate's DNS names, or its CNs without any. */
static int
wildcard_admits(X509 *leaf, const char *pattern)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	X509_NAME *subj = X509_get_subject_name(leaf);
	int dns = 0, ok = 0;

	for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && !ok; i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);

		if (g->type != GEN_DNS)
			continue;
		dns = 1;
		ok = name_matches(pattern, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
		    ASN1_STRING_length(g->d.dNSName));
	}
	GENERAL_NAMES_free(sans);
	for (int i = -1; !dns && !ok &&
	    (i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0;) {
		ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));

		ok = name_matches(pattern, (const char *)ASN1_STRING_get0_data(cn),
		    ASN1_STRING_length(cn));
	}
	return ok;
}

/* Whether an entry of permitted_peers admits leaf; its identity into p->id. */
static int
admits(const char *entry, X509 *leaf, struct tls_peer *p)
{
	unsigned char want[EVP_MAX_MD_SIZE], got[EVP_MAX_MD_SIZE];
	unsigned int gotlen;
	char *peername = NULL;
	int wantlen;

	switch (tlsctx_fingerprint(entry, want, &wantlen)) {
	case 0:
		if (!X509_digest(leaf, wantlen == 32 ? EVP_sha256() : EVP_sha1(), got, &gotlen) ||
		    (int)gotlen != wantlen || memcmp(want, got, gotlen) != 0)
			return 0;
		snprintf(p->id, sizeof(p->id), "%s:", wantlen == 32 ? "sha256" : "sha1");
		for (unsigned i = 0; i < gotlen; i++)
			snprintf(p->id + strlen(p->id), sizeof(p->id) - strlen(p->id), "%02x", got[i]);
		return 1;
	case 1:
		break;
	default:
		return 0;
	}
	if (strncmp(entry, "*.", 2) == 0) {
		if (!wildcard_admits(leaf, entry))
			return 0;
		snprintf(p->id, sizeof(p->id), "%s", entry);
		return 1;
	}
	if (X509_check_host(leaf, entry, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, &peername) != 1)
		return 0;
	snprintf(p->id, sizeof(p->id), "%s", peername ? peername : entry);
	OPENSSL_free(peername);
	return 1;
}

/* The certificate's subject, RFC 2253, as the identity when no list names it. */
static void
subject_id(X509 *leaf, struct tls_peer *p)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n;

	p->id[0] = '\0';
	if (b == NULL)
		return;
	X509_NAME_print_ex(b, X509_get_subject_name(leaf), 0, XN_FLAG_RFC2253);
	n = BIO_read(b, p->id, sizeof(p->id) - 1);
	p->id[n > 0 ? n : 0] = '\0';
	BIO_free(b);
}

static int
permitted(const struct tls_cfg *cf, X509 *leaf, struct tls_peer *p)
{
	if (cf->permitted_peers.n == 0) {
		subject_id(leaf, p);
		return 1;
	}
	for (int i = 0; i < cf->permitted_peers.n; i++)
		if (admits(cf->permitted_peers.v[i], leaf, p))
			return 1;
	return 0;
}

/* Whether leaf's fingerprint is one permitted_peers lists (a pinned certificate). */
static int
pinned(const struct tls_cfg *cf, X509 *leaf)
{
	struct tls_peer scratch;
	unsigned char md[EVP_MAX_MD_SIZE];
	int mdlen;

	for (int i = 0; i < cf->permitted_peers.n; i++)
		if (tlsctx_fingerprint(cf->permitted_peers.v[i], md, &mdlen) == 0 &&
		    admits(cf->permitted_peers.v[i], leaf, &scratch))
			return 1;
	return 0;
}

static struct tls_peer *
peer_of(X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());

	return ssl ? SSL_get_ex_data(ssl, peer_index) : NULL;
}

/*
 * Each step of the chain's verification.  A pinned leaf needs no CA: the
 * errors that say no CA vouches for it are waived (its dates are not).
 */
static int
verify_cb(int ok, X509_STORE_CTX *x)
{
	struct tls_peer *p = peer_of(x);
	int e = X509_STORE_CTX_get_error(x);

	if (ok || p == NULL)
		return ok;
	if (p->fp_match && X509_STORE_CTX_get_error_depth(x) == 0 &&
	    (e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
	    e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
	    e == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE || e == X509_V_ERR_CERT_UNTRUSTED ||
	    e == X509_V_ERR_UNABLE_TO_GET_CRL))
		return 1;
	if (p->verify_err == 0)
		p->verify_err = e;
	return 0;
}

/* The client's chain: pinned or verified, then permitted. */
static int
authorize_cb(X509_STORE_CTX *x, void *arg)
{
	const struct tls_cfg *cf = arg;
	struct tls_peer *p = peer_of(x);
	X509 *leaf = X509_STORE_CTX_get0_cert(x);

	if (p == NULL || leaf == NULL)
		return 0;
	p->fp_match = pinned(cf, leaf);
	if (X509_verify_cert(x) <= 0)
		return 0;
	if (!permitted(cf, leaf, p)) {
		p->verify_err = X509_V_ERR_APPLICATION_VERIFICATION;
		X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	return 1;
}

void
tlsctx_attach(SSL *ssl, struct tls_peer *p)
{
	SSL_set_ex_data(ssl, peer_index, p);
}

/*
 * After a handshake: the client's identity in p->id.  A resumed session
 * ran no verification: its certificate is checked against the list again
 * (a reload may have changed it).  Returns -1 when it is not permitted.
 */
int
tlsctx_identify(SSL *ssl, struct tls_peer *p)
{
	X509 *leaf;

	if (!SSL_session_reused(ssl) || p->cf->verify == VERIFY_NONE)
		return 0;
	if ((leaf = SSL_get0_peer_certificate(ssl)) == NULL)
		return p->cf->verify == VERIFY_REQUIRED ? -1 : 0;
	if (!permitted(p->cf, leaf, p)) {
		p->verify_err = X509_V_ERR_APPLICATION_VERIFICATION;
		return -1;
	}
	return 0;
}

static enum tls_failure
verify_failure(int e)
{
	switch (e) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return TLSF_EXPIRED;
	case X509_V_ERR_CERT_REVOKED:
	case X509_V_ERR_UNABLE_TO_GET_CRL:
	case X509_V_ERR_CRL_HAS_EXPIRED:
	case X509_V_ERR_CRL_NOT_YET_VALID:
	case X509_V_ERR_CRL_SIGNATURE_FAILURE:
		return TLSF_REVOKED;
	case X509_V_ERR_APPLICATION_VERIFICATION:
		return TLSF_NOT_PERMITTED;
	default:
		return TLSF_UNTRUSTED;
	}
}

/* Why a handshake failed, from its verification or OpenSSL's error queue; the detail in words. */
enum tls_failure
tlsctx_failure(SSL *ssl, const struct tls_peer *p, int ssl_error, char *detail, size_t size)
{
	unsigned long e = ERR_peek_last_error();
	int r = ERR_GET_REASON(e);

	(void)ssl;
	if (p->verify_err) {
		snprintf(detail, size, "certificate: %s",
		    p->verify_err == X509_V_ERR_APPLICATION_VERIFICATION ?
		    "not in permitted_peers" : X509_verify_cert_error_string(p->verify_err));
		ERR_clear_error();
		return verify_failure(p->verify_err);
	}
	if (ssl_error == SSL_ERROR_ZERO_RETURN || (ssl_error == SSL_ERROR_SYSCALL && e == 0) ||
	    r == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
		snprintf(detail, size, "closed during the handshake");
		ERR_clear_error();
		return TLSF_CLOSED;
	}
	ssl_reason(detail, size);
	if (ERR_GET_LIB(e) != ERR_LIB_SSL)
		return TLSF_PROTOCOL;
	switch (r) {
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		return TLSF_NO_CERTIFICATE;
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_HTTP_REQUEST:
	case SSL_R_HTTPS_PROXY_REQUEST:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_UNKNOWN_PROTOCOL:
		return TLSF_NOT_TLS;
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_NO_SHARED_CIPHER:
	case SSL_R_NO_SHARED_GROUPS:
	case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
	case SSL_R_VERSION_TOO_LOW:
	case SSL_R_NO_PROTOCOLS_AVAILABLE:
		return TLSF_NO_SHARED_PARAMS;
	default:
		return TLSF_PROTOCOL;
	}
}

/*
 * After a read or write failed with ssl_error (SSL_get_error, not a WANT):
 * the peer's close_notify, its end of the stream without one, or a failure,
 * then in words in why.  errno is the call's; the error queue is cleared.
 */
enum tls_end
tlsctx_end(int ssl_error, char *why, size_t size)
{
	unsigned long err = ERR_peek_last_error();
	enum tls_end end = TLS_END_FAILED;

	if (ssl_error == SSL_ERROR_ZERO_RETURN)
		end = TLS_END_NOTIFY;
	else if ((ssl_error == SSL_ERROR_SSL &&
	    ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING) ||
	    (ssl_error == SSL_ERROR_SYSCALL && err == 0 && errno == 0))
		end = TLS_END_EOF;
	else if (ssl_error == SSL_ERROR_SYSCALL && err == 0)
		snprintf(why, size, "%s", strerror(errno));
	else
		snprintf(why, size, "TLS: %s", err && ERR_reason_error_string(err) ?
		    ERR_reason_error_string(err) : "protocol error");
	ERR_clear_error();
	return end;
}

/* The first line of a key's passphrase file, for OpenSSL's password callback. */
static int
passphrase_cb(char *buf, int size, int rwflag, void *arg)
{
	FILE *fp = fopen(arg, "r");
	size_t n;

	(void)rwflag;
	if (fp == NULL || fgets(buf, size, fp) == NULL) {
		if (fp)
			fclose(fp);
		return 0;
	}
	fclose(fp);
	n = strcspn(buf, "\r\n");
	buf[n] = '\0';
	return (int)n;
}

/* The server's certificate and key, matching, and valid today. */
static int
load_identity(SSL_CTX *ctx, const struct tls_cfg *cf, char *err, size_t errlen)
{
	const char *key = cf->key[0] ? cf->key : cf->certificate;
	char why[256];
	X509 *leaf;
	time_t soon = time(NULL) + EXPIRY_WARN_DAYS * 86400;
	int days, secs;

	if (readable("certificate", cf->certificate, err, errlen) == -1 ||
	    readable("key", key, err, errlen) == -1 ||
	    (cf->key_passphrase_file[0] &&
	    readable("key_passphrase_file", cf->key_passphrase_file, err, errlen) == -1))
		return -1;
	if (SSL_CTX_use_certificate_chain_file(ctx, cf->certificate) != 1) {
		snprintf(err, errlen, "certificate %s: %s", cf->certificate, ssl_reason(why, sizeof(why)));
		return -1;
	}
	if (cf->key_passphrase_file[0]) {
		SSL_CTX_set_default_passwd_cb(ctx, passphrase_cb);
		SSL_CTX_set_default_passwd_cb_userdata(ctx, cf->key_passphrase_file);
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH ||
		    ERR_peek_last_error() == 0)
			snprintf(err, errlen, "key %s does not match certificate %s", key,
			    cf->certificate);
		else
			snprintf(err, errlen, "key %s: %s", key, ssl_reason(why, sizeof(why)));
		ERR_clear_error();
		return -1;
	}
	SSL_CTX_set_default_passwd_cb(ctx, NULL);
	SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
	leaf = SSL_CTX_get0_certificate(ctx);
	if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) {
		snprintf(err, errlen, "certificate %s is not valid yet", cf->certificate);
		return -1;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
		snprintf(err, errlen, "certificate %s has expired", cf->certificate);
		return -1;
	}
	if (X509_cmp_time(X509_get0_notAfter(leaf), &soon) < 0 &&
	    ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(leaf)))
		log_warnx("certificate %s expires in %d days", cf->certificate, days);
	return 0;
}

/* The CAs and CRLs a peer's certificate is verified against. */
static int
load_cas(SSL_CTX *ctx, const struct tls_cfg *cf, char *err, size_t errlen)
{
	X509_STORE *st = SSL_CTX_get_cert_store(ctx);
	char why[256];

	if ((cf->ca_file[0] && readable("ca_file", cf->ca_file, err, errlen) == -1) ||
	    (cf->crl_file[0] && readable("crl_file", cf->crl_file, err, errlen) == -1))
		return -1;
	if ((cf->ca_file[0] || cf->ca_dir[0]) && SSL_CTX_load_verify_locations(ctx,
	    cf->ca_file[0] ? cf->ca_file : NULL, cf->ca_dir[0] ? cf->ca_dir : NULL) != 1) {
		snprintf(err, errlen, "%s %s: %s", cf->ca_file[0] ? "ca_file" : "ca_dir",
		    cf->ca_file[0] ? cf->ca_file : cf->ca_dir, ssl_reason(why, sizeof(why)));
		return -1;
	}
	if (cf->crl_file[0]) {
		X509_LOOKUP *lu = X509_STORE_add_lookup(st, X509_LOOKUP_file());

		if (lu == NULL || X509_load_crl_file(lu, cf->crl_file, X509_FILETYPE_PEM) <= 0) {
			snprintf(err, errlen, "crl_file %s: no CRL read from it (%s)", cf->crl_file,
			    ssl_reason(why, sizeof(why)));
			return -1;
		}
		X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	}
	return 0;
}

/* A listener's CAs and CRLs, and the callbacks that authorize a client's certificate. */
static int
load_verify(SSL_CTX *ctx, const struct tls_cfg *cf, char *err, size_t errlen)
{
	if (cf->verify == VERIFY_NONE)
		return 0;
	if (load_cas(ctx, cf, err, errlen) == -1)
		return -1;
	if (cf->ca_file[0])	/* the CAs a client may choose its certificate by */
		SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(cf->ca_file));
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (cf->verify == VERIFY_REQUIRED ?
	    SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), verify_cb);
	SSL_CTX_set_cert_verify_callback(ctx, authorize_cb, (void *)cf);
	return 0;
}

/*
 * Sessions resume by tickets only (stateless: any worker of the generation
 * decrypts them with the keys it inherited), never from a per-process
 * cache.  The session id context ties a session to what authorized it.
 */
static void
set_sessions(SSL_CTX *ctx, const struct tls_cfg *cf)
{
	unsigned char sid[32];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int n = 0;
	char verify = '0' + cf->verify;

	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL |
	    SSL_SESS_CACHE_NO_AUTO_CLEAR);
	SSL_CTX_set_num_tickets(ctx, 1);
	if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		EVP_DigestUpdate(md, &verify, 1);
		EVP_DigestUpdate(md, cf->ca_file, strlen(cf->ca_file) + 1);
		EVP_DigestUpdate(md, cf->ca_dir, strlen(cf->ca_dir) + 1);
		for (int i = 0; i < cf->permitted_peers.n; i++)
			EVP_DigestUpdate(md, cf->permitted_peers.v[i],
			    strlen(cf->permitted_peers.v[i]) + 1);
		EVP_DigestFinal_ex(md, sid, &n);
	}
	EVP_MD_CTX_free(md);
	SSL_CTX_set_session_id_context(ctx, sid, n);
}

/* A context with the versions, ciphers and modes of both sides. */
static SSL_CTX *
new_ctx(const SSL_METHOD *method, const struct tls_cfg *cf, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	char why[256];

	if (peer_index == -1 &&
	    (peer_index = SSL_get_ex_new_index(0, "ingestd tls_peer", NULL, NULL, NULL)) == -1)
		fatalx("SSL_get_ex_new_index failed");
	if ((ctx = SSL_CTX_new(method)) == NULL) {
		snprintf(err, errlen, "%s", ssl_reason(why, sizeof(why)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, cf->min_protocol == TLS_V1_3 ? TLS1_3_VERSION :
	    TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_NO_COMPRESSION);
	/* idle connections hold no buffers; sends resume from a buffer that moved */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_set_cipher_list(ctx, cf->ciphers) != 1) {
		snprintf(err, errlen, "ciphers \"%s\": %s", cf->ciphers, ssl_reason(why, sizeof(why)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_set_ciphersuites(ctx, cf->ciphersuites) != 1) {
		snprintf(err, errlen, "ciphersuites \"%s\": %s", cf->ciphersuites,
		    ssl_reason(why, sizeof(why)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* A listener's context, or NULL with the reason in err. */
void *
tlsctx_server(const struct tls_cfg *cf, char *err, size_t errlen)
{
	SSL_CTX *ctx = new_ctx(TLS_server_method(), cf, err, errlen);

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_read_ahead(ctx, 1);
	if (load_identity(ctx, cf, err, errlen) == -1 || load_verify(ctx, cf, err, errlen) == -1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	set_sessions(ctx, cf);
	return ctx;
}

/*
 * A forward sink's context: its client certificate, if any, and the CAs
 * its upstreams' certificates are verified against (the system's without
 * ca_file or ca_dir).  The name is checked per connection (tlsctx_connect).
 */
void *
tlsctx_client(const struct tls_cfg *cf, char *err, size_t errlen)
{
	SSL_CTX *ctx = new_ctx(TLS_client_method(), cf, err, errlen);
	char why[256];

	if (ctx == NULL)
		return NULL;
	if (cf->certificate[0] && load_identity(ctx, cf, err, errlen) == -1)
		goto bad;
	if (cf->verify != VERIFY_NONE) {
		if (cf->ca_file[0] || cf->ca_dir[0] || cf->crl_file[0]) {
			if (load_cas(ctx, cf, err, errlen) == -1)
				goto bad;
		} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			snprintf(err, errlen, "the system's CAs: %s", ssl_reason(why, sizeof(why)));
			goto bad;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	return ctx;
bad:
	SSL_CTX_free(ctx);
	return NULL;
}

/*
 * A client SSL on fd for a sink's upstream: SNI and the name its
 * certificate must carry (server_name, else the address it was reached at).
 */
SSL *
tlsctx_connect(const struct tls_cfg *cf, int fd, const char *host)
{
	SSL *ssl = SSL_new(cf->ctx);
	const char *name = cf->server_name[0] ? cf->server_name : host;
	unsigned char ip[16];
	int literal = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;

	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_connect_state(ssl);
	if (!literal)
		SSL_set_tlsext_host_name(ssl, name);	/* RFC 6066: no IP literals */
	if (cf->verify != VERIFY_NONE) {
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1 :
		    SSL_set1_host(ssl, name) != 1) {
			SSL_free(ssl);
			return NULL;
		}
	}
	return ssl;
}

void
tlsctx_free(void *ctx)
{
	SSL_CTX_free(ctx);
}
