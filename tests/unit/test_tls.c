/*
 * TLS: the tls group of a listener (common/config.c, common/tlsctx.c) and
 * the TLS transport (worker/conn/tls.c) driven over a socketpair by an
 * in-process client whose bytes the test delivers one at a time, with
 * garbage, truncated records and a close_notify inside the stream.  The
 * certificates are made once by the openssl command in a temp directory.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "tests.h"
#include "tlsctx.h"
#include "transport.h"

static char dir[64];

static void
run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0) {
		fprintf(stderr, "test_tls: failed: %s\n", cmd);
		abort();
	}
}

#define EC	"-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

/* ca.pem; server.pem/.key signed by it; other.key, a key of no certificate here. */
static void
make_certs(void)
{
	strcpy(dir, "/tmp/ingestd-unit-tls-XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	run("cd %s && openssl req -x509 " EC " -keyout ca.key -out ca.pem -days 2 -subj /CN=ca "
	    "-addext basicConstraints=critical,CA:true 2>/dev/null && "
	    "openssl req " EC " -keyout server.key -out server.csr -subj /CN=ingestd.test 2>/dev/null && "
	    "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
	    "-out server.pem 2>/dev/null && openssl genpkey -algorithm ec "
	    "-pkeyopt ec_paramgen_curve:P-256 -out other.key 2>/dev/null", dir);
}

static void
remove_certs(void)
{
	run("rm -rf %s", dir);
}

static struct config *
load(const char *tls, const char *more, char *err, size_t errlen)
{
	char text[4096];

	snprintf(text, sizeof(text), "listeners = (\n  { %s\n    tls = { %s };\n  }\n);\n",
	    more[0] ? more : "listen = \"127.0.0.1:6514\";", tls);
	err[0] = '\0';
	return cfg_parse_string(text, "t.conf", err, errlen);
}

static char *
files(const char *fmt)
{
	static char buf[2048];

	snprintf(buf, sizeof(buf), fmt, dir, dir, dir, dir);
	return buf;
}

#define IDENTITY	"certificate = \"%s/server.pem\"; key = \"%s/server.key\";"

/* The message must end with want (the line and setting come before it). */
#define ASSERT_REFUSED(tls, more, want) do {						\
	char err_[1024];								\
	struct config *cf_ = load((tls), (more), err_, sizeof(err_));			\
											\
	ck_assert_msg(cf_ == NULL, "accepted: %s", (tls));				\
	ck_assert_msg(strstr(err_, (want)) != NULL, "error \"%s\", expected \"%s\"",	\
	    err_, (want));								\
} while (0)

/* A config with one forward (or other: more) sink whose tls group is tls. */
static struct config *
load_sink(const char *tls, const char *more, char *err, size_t errlen)
{
	char text[4096];

	snprintf(text, sizeof(text), "listeners = ( { listen = \"127.0.0.1:5514\"; } );\n"
	    "sinks = ( { name = \"up\"; %s\n    tls = { %s };\n  } );\n",
	    more[0] ? more : "type = \"forward\"; upstreams = [ \"127.0.0.1:6514\" ];", tls);
	err[0] = '\0';
	return cfg_parse_string(text, "t.conf", err, errlen);
}

#define ASSERT_SINK_REFUSED(tls, more, want) do {					\
	char err_[1024];								\
	struct config *cf_ = load_sink((tls), (more), err_, sizeof(err_));		\
											\
	ck_assert_msg(cf_ == NULL, "accepted: %s", (tls));				\
	ck_assert_msg(strstr(err_, (want)) != NULL, "error \"%s\", expected \"%s\"",	\
	    err_, (want));								\
} while (0)

START_TEST(sink_group)
{
	char err[1024], *text = NULL;
	size_t len = 0;
	struct config *cf = load_sink(files("ca_file = \"%s/ca.pem\"; server_name = \"a.test\";"),
	    "", err, sizeof(err)), *again;
	FILE *fp;

	ck_assert_msg(cf != NULL, "%s", err);
	ck_assert(cf->sinks[0].tls.enabled && cf->sinks[0].tls.ctx != NULL);
	ck_assert_int_eq(cf->sinks[0].tls.verify, VERIFY_REQUIRED);	/* a sink's default */
	fp = open_memstream(&text, &len);
	cfg_dump(cf, fp);
	fclose(fp);
	again = cfg_parse_string(text, "dump", err, sizeof(err));
	ck_assert_msg(again != NULL, "%s\n%s", err, text);
	ck_assert_str_eq(again->sinks[0].tls.server_name, "a.test");
	cfg_free(again);
	cfg_free(cf);
	free(text);
	cf = load_sink("verify = \"none\";", "", err, sizeof(err));
	ck_assert_msg(cf != NULL, "%s", err);
	ck_assert_int_eq(cf->sinks[0].tls.verify, VERIFY_NONE);
	cfg_free(cf);
	cf = load_sink(files(IDENTITY), "", err, sizeof(err));	/* a client certificate */
	ck_assert_msg(cf != NULL, "%s", err);
	cfg_free(cf);
	ASSERT_SINK_REFUSED("", "type = \"redis\"; upstreams = [ \"127.0.0.1:6379\" ];",
	    "sinks[0].tls: Debian 12's hiredis has no TLS");
	ASSERT_SINK_REFUSED("", "type = \"file\"; path = \"/tmp/x.jsonl\";",
	    "sinks[0].tls: only forward and nats sinks connect over TLS");
	ASSERT_SINK_REFUSED("permitted_peers = [ \"a\" ];", "",
	    "sinks[0].tls.permitted_peers: listeners only");
	ASSERT_SINK_REFUSED("", "type = \"forward\"; upstreams = [ \"/run/up.sock\" ];",
	    "sinks[0].tls.server_name: upstream /run/up.sock is a unix socket");
	ASSERT_SINK_REFUSED(files("certificate = \"%s/server.pem\"; key = \"%s/other.key\";"), "",
	    "does not match certificate");
	ASSERT_REFUSED(files(IDENTITY " server_name = \"x\";"), "",
	    "listeners[0].tls.server_name: forward sinks only");
}
END_TEST

START_TEST(fingerprints)
{
	unsigned char md[64];
	int n;
	char colons[200] = "SHA256:", plain[80] = "sha256:";

	for (int i = 0; i < 32; i++) {
		snprintf(colons + strlen(colons), 4, "%s%02X", i ? ":" : "", i * 7);
		snprintf(plain + strlen(plain), 3, "%02x", i * 7);
	}
	ck_assert_int_eq(tlsctx_fingerprint(colons, md, &n), 0);
	ck_assert_int_eq(n, 32);
	ck_assert_int_eq(md[31], 31 * 7);
	ck_assert_int_eq(tlsctx_fingerprint(plain, md, &n), 0);
	ck_assert_int_eq(md[1], 7);
	ck_assert_int_eq(tlsctx_fingerprint("sha1:00112233445566778899aabbccddeeff00112233", md, &n), 0);
	ck_assert_int_eq(n, 20);
	ck_assert_int_eq(tlsctx_fingerprint("client.example.com", md, &n), 1);
	ck_assert_int_eq(tlsctx_fingerprint("*.example.com", md, &n), 1);
	ck_assert_int_eq(tlsctx_fingerprint("sha1:0011", md, &n), -1);		/* short */
	ck_assert_int_eq(tlsctx_fingerprint("sha256:zz", md, &n), -1);
	plain[strlen(plain) - 1] = '\0';					/* odd digits */
	ck_assert_int_eq(tlsctx_fingerprint(plain, md, &n), -1);
	strcat(plain, "000");							/* long */
	ck_assert_int_eq(tlsctx_fingerprint(plain, md, &n), -1);
}
END_TEST

START_TEST(group_loads_and_dumps)
{
	char err[1024], *text = NULL;
	size_t len = 0;
	struct config *cf = load(files(IDENTITY " verify = \"optional\"; ca_file = \"%s/ca.pem\"; "
	    "permitted_peers = [ \"*.example.com\", \"sha1:00112233445566778899aabbccddeeff00112233\" ];"
	    " min_protocol = \"TLSv1.3\"; handshake_timeout = 2.5;"), "", err, sizeof(err));
	struct config *again;
	FILE *fp;

	ck_assert_msg(cf != NULL, "%s", err);
	ck_assert(cf->listeners[0].tls.enabled);
	ck_assert_ptr_nonnull(cf->listeners[0].tls.ctx);
	ck_assert_int_eq(cf->listeners[0].tls.verify, VERIFY_OPTIONAL);
	ck_assert_int_eq(cf->listeners[0].tls.min_protocol, TLS_V1_3);
	ck_assert_int_eq(cf->listeners[0].tls.handshake_timeout_ms, 2500);
	fp = open_memstream(&text, &len);
	cfg_dump(cf, fp);
	fclose(fp);
	ck_assert_msg(strstr(text, "\t\ttls = {\n\t\t\tcertificate = ") != NULL, "%s", text);
	again = cfg_parse_string(text, "dump", err, sizeof(err));
	ck_assert_msg(again != NULL, "the dump does not load: %s\n%s", err, text);
	ck_assert(again->listeners[0].tls.enabled);
	ck_assert_int_eq(again->listeners[0].tls.permitted_peers.n, 2);
	ck_assert_int_eq(again->listeners[0].tls.handshake_timeout_ms, 2500);
	cfg_free(again);
	cfg_free(cf);
	free(text);
	cf = load("", "", err, sizeof(err));	/* no group: a plain listener */
	ck_assert_ptr_null(cf);
	cf = cfg_parse_string("listeners = ( { listen = \"127.0.0.1:1\"; } );", "t", err, sizeof(err));
	ck_assert(cf && !cf->listeners[0].tls.enabled && cf->listeners[0].tls.ctx == NULL);
	cfg_free(cf);
}
END_TEST

START_TEST(group_errors)
{
	ASSERT_REFUSED("", "", "listeners[0].tls.certificate: a listener's tls group needs a certificate");
	ASSERT_REFUSED("certificate = \"/nonexistent/x.pem\";", "",
	    "listeners[0].tls: certificate /nonexistent/x.pem: No such file or directory");
	ASSERT_REFUSED(files("certificate = \"%s/server.pem\"; key = \"%s/other.key\";"), "",
	    "does not match certificate");
	ASSERT_REFUSED(files("certificate = \"%s/server.pem\"; key = \"%s/nope.key\";"), "",
	    "nope.key: No such file or directory");
	ASSERT_REFUSED(files(IDENTITY " verify = \"required\";"), "",
	    "listeners[0].tls.verify: client certificates need ca_file");
	ASSERT_REFUSED(files(IDENTITY " permitted_peers = [ \"sha256:abcd\" ];"), "",
	    "listeners[0].tls.permitted_peers: \"sha256:abcd\": a fingerprint is");
	ASSERT_REFUSED(files(IDENTITY " ciphersuites = \"TLS_NOPE\";"), "",
	    "ciphersuites \"TLS_NOPE\"");
	ASSERT_REFUSED(files(IDENTITY " verify = \"sometimes\";"), "",
	    "listeners[0].tls.verify: \"sometimes\" is not one of none|optional|required");
	ASSERT_REFUSED(files(IDENTITY " cert = \"x\";"), "", "listeners[0].tls.cert: unknown setting");
	ASSERT_REFUSED(files(IDENTITY), "listen = \"udp://127.0.0.1:514\";",
	    "listeners[0].tls: TLS needs a stream");
	ASSERT_REFUSED(files(IDENTITY " verify = \"optional\"; ca_file = \"%s/ca.pem\"; "
	    "crl_file = \"%s/ca.key\";"), "", "/ca.key: no CRL read from it");
}
END_TEST

/* The transport over a socketpair: sv[0] the server's, the test carries the client's bytes. */
struct pair {
	struct config	*cf;
	struct transport *tr;
	int		 sv[2];
	SSL_CTX		*cctx;
	SSL		*cli;
	BIO		*cin, *cout;	/* the client's input and output */
};

static void
pair_open(struct pair *p)
{
	char err[1024];

	p->cf = load(files(IDENTITY), "", err, sizeof(err));
	ck_assert_msg(p->cf != NULL, "%s", err);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, p->sv), 0);
	for (int i = 0; i < 2; i++)
		fcntl(p->sv[i], F_SETFL, O_NONBLOCK);
	p->tr = tls_transport_new(&p->cf->listeners[0].tls, NULL, 0);
	p->cctx = SSL_CTX_new(TLS_client_method());
	p->cli = SSL_new(p->cctx);
	p->cin = BIO_new(BIO_s_mem());
	p->cout = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(p->cin, -1);
	SSL_set_bio(p->cli, p->cin, p->cout);
	SSL_set_connect_state(p->cli);
}

static void
pair_close(struct pair *p)
{
	p->tr->ops->free(p->tr);
	SSL_free(p->cli);
	SSL_CTX_free(p->cctx);
	close(p->sv[0]);
	close(p->sv[1]);
	cfg_free(p->cf);
}

/* What the server wrote, into the client. */
static void
to_client(struct pair *p)
{
	char buf[16384];
	ssize_t n;

	while ((n = read(p->sv[1], buf, sizeof(buf))) > 0)
		BIO_write(p->cin, buf, (int)n);
}

/* What the client wrote: bytes taken from its output, sent one at a time with step() after each. */
static int
to_server(struct pair *p, int (*step)(struct pair *))
{
	char b;
	int r = 0, calls = 0;

	while (BIO_read(p->cout, &b, 1) == 1) {
		ck_assert_int_eq(write(p->sv[1], &b, 1), 1);
		r = step(p);
		calls++;
	}
	return calls ? r : step(p);
}

static int
server_handshake(struct pair *p)
{
	return p->tr->ops->handshake(p->tr, p->sv[0]);
}

static void
handshake(struct pair *p)
{
	int done = 0, r;

	for (int round = 0; round < 10 && !done; round++) {
		ERR_clear_error();
		r = SSL_do_handshake(p->cli);
		if (r != 1)
			ck_assert_int_eq(SSL_get_error(p->cli, r), SSL_ERROR_WANT_READ);
		done = to_server(p, server_handshake) == 1 && r == 1;
		if (!done) {
			ck_assert_int_eq(p->tr->ops->waits(p->tr, 0), EV_READ);
			to_client(p);
		}
	}
	ck_assert_msg(done, "no handshake in 10 rounds");
}

static char got[65536];
static size_t ngot;

/* One server read: its bytes kept in got; the result of recv. */
static int
server_read(struct pair *p)
{
	ssize_t n = p->tr->ops->recv(p->tr, p->sv[0], got + ngot, sizeof(got) - ngot);

	if (n > 0)
		ngot += n;
	else if (n == -1 && errno == EAGAIN)
		ck_assert(!p->tr->ops->pending(p->tr));	/* nothing to read that epoll would miss */
	return n > 0 ? 1 : n == 0 ? 0 : errno == EAGAIN ? -1 : -2;
}

START_TEST(records_byte_by_byte)
{
	struct pair p;
	const char msg[] = "<13>one record, its TLS bytes one at a time\n";
	size_t k;

	pair_open(&p);
	handshake(&p);
	ngot = 0;
	SSL_write_ex(p.cli, msg, sizeof(msg) - 1, &k);
	ck_assert_int_eq(to_server(&p, server_read), 1);	/* only the last byte yields it */
	ck_assert_uint_eq(ngot, sizeof(msg) - 1);
	ck_assert(memcmp(got, msg, ngot) == 0);
	ck_assert_int_eq(server_read(&p), -1);			/* nothing more: wait */
	ck_assert_int_eq(p.tr->ops->waits(p.tr, 0), EV_READ);
	/* A close_notify after half a record: its bytes, then the end, said how. */
	SSL_write_ex(p.cli, "<13>cut", 7, &k);
	SSL_shutdown(p.cli);
	to_server(&p, server_read);
	ck_assert_uint_eq(ngot, sizeof(msg) - 1 + 7);
	ck_assert_int_eq(server_read(&p), 0);
	ck_assert_str_eq(p.tr->ops->truncation(p.tr), "TLS close_notify inside a record");
	pair_close(&p);
}
END_TEST

START_TEST(garbage_after_handshake)
{
	struct pair p;
	unsigned int seed = 12345;
	char junk[512];
	int r = -1, calls = 0;

	pair_open(&p);
	handshake(&p);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)rand_r(&seed);
	junk[0] = 0x17;		/* application data */
	junk[1] = 0x03;
	junk[2] = 0x03;
	junk[3] = 0x01;		/* 256 bytes: a whole record, which cannot decrypt */
	junk[4] = 0x00;
	ck_assert_int_eq(write(p.sv[1], junk, sizeof(junk)), (ssize_t)sizeof(junk));
	while (r == -1 && calls++ < 10)
		r = server_read(&p);
	ck_assert_int_eq(r, -2);	/* a failure, found within a few reads, not a wait */
	ck_assert_ptr_nonnull(p.tr->why);
	pair_close(&p);
}
END_TEST

START_TEST(not_tls_at_all)
{
	struct pair p;

	pair_open(&p);
	ck_assert_int_eq(server_handshake(&p), 0);	/* nothing yet: wait */
	ck_assert_int_eq(write(p.sv[1], "<13>hello\n", 10), 10);
	ck_assert_int_eq(server_handshake(&p), -1);
	ck_assert_int_eq(p.tr->failure, TLSF_NOT_TLS);
	ck_assert_str_eq(p.tr->why, "not TLS (plain-text syslog?)");
	pair_close(&p);
}
END_TEST

/* A truncated handshake: every prefix of a ClientHello leaves the server waiting. */
START_TEST(hello_in_pieces)
{
	struct pair p;
	char hello[4096];
	int n;

	pair_open(&p);
	SSL_do_handshake(p.cli);
	n = BIO_read(p.cout, hello, sizeof(hello));
	ck_assert_int_gt(n, 100);
	for (int i = 0; i < n - 1; i++) {
		ck_assert_int_eq(write(p.sv[1], hello + i, 1), 1);
		ck_assert_int_eq(server_handshake(&p), 0);
		ck_assert_int_eq(p.tr->ops->waits(p.tr, 0), EV_READ);
	}
	pair_close(&p);
}
END_TEST

Suite *
tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("tls");

	tcase_add_unchecked_fixture(tc, make_certs, remove_certs);
	tcase_add_test(tc, fingerprints);
	tcase_add_test(tc, group_loads_and_dumps);
	tcase_add_test(tc, group_errors);
	tcase_add_test(tc, sink_group);
	tcase_add_test(tc, records_byte_by_byte);
	tcase_add_test(tc, garbage_after_handshake);
	tcase_add_test(tc, not_tls_at_all);
	tcase_add_test(tc, hello_in_pieces);
	suite_add_tcase(s, tc);
	return s;
}
