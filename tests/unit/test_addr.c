/*
 * common/addr.c: the listen address forms and printing socket addresses.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "addr.h"
#include "tests.h"

#define WHY_FORM	"expected IPv4:port, [IPv6]:port, *:port or an absolute unix socket path " \
			"(after udp:// or unixgram: for datagrams)"
#define WHY_UNIX_FORM	"expected an absolute unix socket path after unix: or unixgram:"
#define WHY_STREAM	"only listeners take datagrams; this needs a TCP address or a unix stream socket"
#define WHY_V4		"not an IPv4 address (host names are not resolved)"
#define WHY_V6_FORM	"expected [IPv6]:port"
#define WHY_V6		"not an IPv6 address"
#define WHY_PORT	"port must be a number from 1 to 65535"
#define WHY_UNIX_LONG	"unix socket path is too long"

static const struct sockaddr_in *
v4(const struct addr *a)
{
	return (const struct sockaddr_in *)&a->ss;
}

static const struct sockaddr_in6 *
v6(const struct addr *a)
{
	return (const struct sockaddr_in6 *)&a->ss;
}

START_TEST(ipv4)
{
	struct addr a;
	const char *why = NULL;

	ck_assert_int_eq(addr_parse("127.0.0.1:5514", &a, &why), 0);
	ck_assert_int_eq(a.ss.ss_family, AF_INET);
	ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in));
	ck_assert_uint_eq(ntohs(v4(&a)->sin_port), 5514);
	ck_assert_uint_eq(ntohl(v4(&a)->sin_addr.s_addr), 0x7f000001);

	ck_assert_int_eq(addr_parse("10.1.2.3:1", &a, &why), 0);
	ck_assert_uint_eq(ntohl(v4(&a)->sin_addr.s_addr), 0x0a010203);
	ck_assert_uint_eq(ntohs(v4(&a)->sin_port), 1);
}
END_TEST

START_TEST(ipv4_any)
{
	struct addr a, b;
	const char *why = NULL;

	ck_assert_int_eq(addr_parse("*:80", &a, &why), 0);
	ck_assert_int_eq(a.ss.ss_family, AF_INET);
	ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in));
	ck_assert_uint_eq(v4(&a)->sin_addr.s_addr, htonl(INADDR_ANY));
	ck_assert_uint_eq(ntohs(v4(&a)->sin_port), 80);
	ck_assert_int_eq(addr_parse("0.0.0.0:80", &b, &why), 0);
	ck_assert(addr_equal(&a, &b));	/* two spellings, one address */
}
END_TEST

START_TEST(ipv6)
{
	struct addr a;
	const char *why = NULL;
	struct in6_addr any = IN6ADDR_ANY_INIT, lo = IN6ADDR_LOOPBACK_INIT;

	ck_assert_int_eq(addr_parse("[::]:5514", &a, &why), 0);
	ck_assert_int_eq(a.ss.ss_family, AF_INET6);
	ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in6));
	ck_assert_mem_eq(&v6(&a)->sin6_addr, &any, sizeof(any));
	ck_assert_uint_eq(ntohs(v6(&a)->sin6_port), 5514);

	ck_assert_int_eq(addr_parse("[::1]:65535", &a, &why), 0);
	ck_assert_mem_eq(&v6(&a)->sin6_addr, &lo, sizeof(lo));
	ck_assert_uint_eq(ntohs(v6(&a)->sin6_port), 65535);

	ck_assert_int_eq(addr_parse("[2001:db8::7]:443", &a, &why), 0);
	ck_assert_uint_eq(v6(&a)->sin6_addr.s6_addr[0], 0x20);
	ck_assert_uint_eq(v6(&a)->sin6_addr.s6_addr[15], 7);

	ck_assert_int_eq(addr_parse("[::ffff:192.0.2.1]:9", &a, &why), 0);
	ck_assert_int_eq(a.ss.ss_family, AF_INET6);
}
END_TEST

START_TEST(unix_path)
{
	struct addr a;
	const char *why = NULL;
	const struct sockaddr_un *sun = (const struct sockaddr_un *)&a.ss;

	ck_assert_int_eq(addr_parse("/run/ingestd/in.sock", &a, &why), 0);
	ck_assert_int_eq(a.ss.ss_family, AF_UNIX);
	ck_assert_uint_eq(a.len, sizeof(struct sockaddr_un));
	ck_assert_str_eq(sun->sun_path, "/run/ingestd/in.sock");

	/* A colon in a path is part of the path, not a port. */
	ck_assert_int_eq(addr_parse("/tmp/a:80", &a, &why), 0);
	ck_assert_int_eq(a.ss.ss_family, AF_UNIX);
	ck_assert_str_eq(sun->sun_path, "/tmp/a:80");
}
END_TEST

START_TEST(unix_path_length)
{
	struct sockaddr_un sun;
	char path[sizeof(sun.sun_path) + 2];
	struct addr a;
	const char *why = NULL;

	/* The longest path that fits with its NUL: sizeof(sun_path) - 1 bytes. */
	memset(path, 'x', sizeof(path));
	path[0] = '/';
	path[sizeof(sun.sun_path) - 1] = '\0';
	ck_assert_int_eq(addr_parse(path, &a, &why), 0);
	ck_assert_str_eq(((struct sockaddr_un *)&a.ss)->sun_path, path);

	path[sizeof(sun.sun_path) - 1] = 'x';
	path[sizeof(sun.sun_path)] = '\0';
	ck_assert_int_eq(addr_parse(path, &a, &why), -1);
	ck_assert_str_eq(why, WHY_UNIX_LONG);
}
END_TEST

START_TEST(port_bounds)
{
	struct addr a;
	const char *why = NULL;

	ck_assert_int_eq(addr_parse("127.0.0.1:65535", &a, &why), 0);
	ck_assert_uint_eq(ntohs(v4(&a)->sin_port), 65535);
	ck_assert_int_eq(addr_parse("127.0.0.1:1", &a, &why), 0);
	ck_assert_int_eq(addr_parse("127.0.0.1:0080", &a, &why), 0);	/* decimal, not octal */
	ck_assert_uint_eq(ntohs(v4(&a)->sin_port), 80);
}
END_TEST

/* Inputs that must be refused, and the reason the operator reads. */
static const struct {
	const char *text, *why;
} bad[] = {
	{ "127.0.0.1:0", WHY_PORT },
	{ "*:0", WHY_PORT },
	{ "[::1]:0", WHY_PORT },
	{ "127.0.0.1:65536", WHY_PORT },
	{ "[::1]:65536", WHY_PORT },
	{ "127.0.0.1:99999999999999999999", WHY_PORT },
	{ "127.0.0.1:http", WHY_PORT },
	{ "127.0.0.1:-1", WHY_PORT },
	{ "127.0.0.1:+80", WHY_PORT },
	{ "127.0.0.1: 80", WHY_PORT },
	{ "127.0.0.1:", WHY_PORT },		/* missing port */
	{ "[::1]:", WHY_PORT },
	{ "*:", WHY_PORT },
	{ "1.2.3.4:80x", WHY_PORT },		/* trailing garbage */
	{ "[::1]:80x", WHY_PORT },
	{ "1.2.3.4:80 ", WHY_PORT },
	{ "127.0.0.1", WHY_FORM },		/* no port at all */
	{ "", WHY_FORM },
	{ "relative/path.sock", WHY_FORM },
	{ "localhost:80", WHY_V4 },		/* host names are not resolved */
	{ "example.com:514", WHY_V4 },
	{ ":80", WHY_V4 },
	{ "1.2.3.4.5:80", WHY_V4 },		/* five octets */
	{ "1.2.3:80", WHY_V4 },
	{ "256.1.1.1:80", WHY_V4 },
	{ "**:80", WHY_V4 },
	{ "::1:80", WHY_V4 },			/* IPv6 needs brackets */
	{ "1.2.3.4:80:81", WHY_V4 },
	{ "[::1]80", WHY_V6_FORM },
	{ "[::1", WHY_V6_FORM },
	{ "[::1]", WHY_V6_FORM },
	{ "[nonsense]:1", WHY_V6 },
	{ "[]:80", WHY_V6 },
	{ "[127.0.0.1]:80", WHY_V6 },
	{ "[fe80::1%lo]:80", WHY_V6 },
	{ "[1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa]:80", WHY_V6 },	/* too long */
	{ "udp:///dev/log", WHY_FORM },		/* a path after udp:// */
	{ "tcp:///run/a.sock", WHY_FORM },
	{ "udp://", WHY_FORM },
	{ "udp://localhost:514", WHY_V4 },
	{ "udp://[::1]", WHY_V6_FORM },
	{ "UDP://127.0.0.1:514", WHY_V4 },	/* prefixes are lower case */
	{ "unixgram:127.0.0.1:514", WHY_UNIX_FORM },
	{ "unixgram:", WHY_UNIX_FORM },
	{ "unix:relative.sock", WHY_UNIX_FORM },
};

START_TEST(rejected)
{
	struct addr a;
	const char *why = NULL;

	ck_assert_msg(addr_parse(bad[_i].text, &a, &why) == -1, "\"%s\" was accepted", bad[_i].text);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(strcmp(why, bad[_i].why) == 0, "\"%s\": why is \"%s\", expected \"%s\"",
	    bad[_i].text, why, bad[_i].why);
}
END_TEST

/* A prefix names the transport; the rest is the address as without one. */
static const struct {
	const char *text;
	int type, family;
	const char *same;	/* the same address without a prefix */
} transports[] = {
	{ "udp://127.0.0.1:514", SOCK_DGRAM, AF_INET, "127.0.0.1:514" },
	{ "udp://*:514", SOCK_DGRAM, AF_INET, "*:514" },
	{ "udp://[::1]:514", SOCK_DGRAM, AF_INET6, "[::1]:514" },
	{ "unixgram:/dev/log", SOCK_DGRAM, AF_UNIX, "/dev/log" },
	{ "tcp://10.0.0.1:6514", SOCK_STREAM, AF_INET, "10.0.0.1:6514" },
	{ "tcp://[::]:6514", SOCK_STREAM, AF_INET6, "[::]:6514" },
	{ "unix:/run/in.sock", SOCK_STREAM, AF_UNIX, "/run/in.sock" },
	{ "127.0.0.1:514", SOCK_STREAM, AF_INET, "127.0.0.1:514" },
	{ "/run/in.sock", SOCK_STREAM, AF_UNIX, "/run/in.sock" },
};

START_TEST(transport)
{
	struct addr a, b;
	const char *why = NULL;

	ck_assert_int_eq(addr_parse(transports[_i].text, &a, &why), 0);
	ck_assert_int_eq(a.type, transports[_i].type);
	ck_assert_int_eq(a.ss.ss_family, transports[_i].family);
	ck_assert_int_eq(addr_parse(transports[_i].same, &b, &why), 0);
	ck_assert_int_eq(a.len, b.len);
	ck_assert(memcmp(&a.ss, &b.ss, a.len) == 0);
	/* one address, two transports: two sockets */
	ck_assert(addr_equal(&a, &b) == (a.type == SOCK_STREAM));
	if (a.type == SOCK_DGRAM) {
		ck_assert_int_eq(addr_parse_stream(transports[_i].text, &a, &why), -1);
		ck_assert_str_eq(why, WHY_STREAM);
	} else {
		ck_assert_int_eq(addr_parse_stream(transports[_i].text, &a, &why), 0);
	}
}
END_TEST

START_TEST(equal)
{
	struct addr a, b;
	const char *why;

	ck_assert_int_eq(addr_parse("127.0.0.1:80", &a, &why), 0);
	ck_assert_int_eq(addr_parse("127.0.0.1:80", &b, &why), 0);
	ck_assert(addr_equal(&a, &b));
	ck_assert_int_eq(addr_parse("127.0.0.1:81", &b, &why), 0);
	ck_assert(!addr_equal(&a, &b));
	ck_assert_int_eq(addr_parse("127.0.0.2:80", &b, &why), 0);
	ck_assert(!addr_equal(&a, &b));
	ck_assert_int_eq(addr_parse("[::ffff:127.0.0.1]:80", &b, &why), 0);
	ck_assert(!addr_equal(&a, &b));		/* another family */

	ck_assert_int_eq(addr_parse("[::]:80", &a, &why), 0);
	ck_assert_int_eq(addr_parse("*:80", &b, &why), 0);
	ck_assert(!addr_equal(&a, &b));		/* both may be configured */
	ck_assert_int_eq(addr_parse("[0:0::0]:80", &b, &why), 0);
	ck_assert(addr_equal(&a, &b));		/* two spellings of :: */

	ck_assert_int_eq(addr_parse("/tmp/a.sock", &a, &why), 0);
	ck_assert_int_eq(addr_parse("/tmp/a.sock", &b, &why), 0);
	ck_assert(addr_equal(&a, &b));
	ck_assert_int_eq(addr_parse("/tmp/b.sock", &b, &why), 0);
	ck_assert(!addr_equal(&a, &b));
}
END_TEST

/* Parse, print, and parse the printed form again: the same address. */
static const struct {
	const char *text, *printed;
} round_trips[] = {
	{ "127.0.0.1:5514", "127.0.0.1:5514" },
	{ "*:514", "0.0.0.0:514" },
	{ "255.255.255.255:65535", "255.255.255.255:65535" },
	{ "127.0.0.1:0080", "127.0.0.1:80" },
	{ "[::]:5514", "[::]:5514" },
	{ "[::1]:1", "[::1]:1" },
	{ "[2001:DB8:0:0:0:0:0:7]:443", "[2001:db8::7]:443" },
	{ "[::ffff:192.0.2.1]:9", "[::ffff:192.0.2.1]:9" },
	{ "/run/ingestd/in.sock", "/run/ingestd/in.sock" },
	{ "/", "/" },
};

START_TEST(format_round_trip)
{
	struct addr a, b;
	const char *why = NULL;
	char buf[ADDR_STRLEN];

	ck_assert_int_eq(addr_parse(round_trips[_i].text, &a, &why), 0);
	ck_assert_ptr_eq(addr_format((struct sockaddr *)&a.ss, a.len, buf, sizeof(buf)), buf);
	ck_assert_str_eq(buf, round_trips[_i].printed);
	ck_assert_int_eq(addr_parse(buf, &b, &why), 0);
	ck_assert(addr_equal(&a, &b));
}
END_TEST

START_TEST(format_other)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(8080) };
	struct sockaddr sa = { .sa_family = AF_APPLETALK };
	char buf[ADDR_STRLEN], small[8];

	/* An unnamed unix peer (what accept() returns for a unix client). */
	ck_assert_str_eq(addr_format((struct sockaddr *)&sun, offsetof(struct sockaddr_un, sun_path),
	    buf, sizeof(buf)), "unix");
	ck_assert_str_eq(addr_format((struct sockaddr *)&sun, sizeof(sun), buf, sizeof(buf)), "unix");
	ck_assert_str_eq(addr_format(&sa, sizeof(sa), buf, sizeof(buf)), "unknown");
	/* The biggest IPv6 form fits ADDR_STRLEN. */
	memset(&sin6.sin6_addr, 0xab, sizeof(sin6.sin6_addr));
	ck_assert_str_eq(addr_format((struct sockaddr *)&sin6, sizeof(sin6), buf, sizeof(buf)),
	    "[abab:abab:abab:abab:abab:abab:abab:abab]:8080");
	/* A short buffer truncates, still NUL-terminated. */
	ck_assert_str_eq(addr_format((struct sockaddr *)&sin6, sizeof(sin6), small, sizeof(small)),
	    "[abab:a");
}
END_TEST

Suite *
addr_suite(void)
{
	Suite *s = suite_create("addr");
	TCase *parse = tcase_create("addr_parse");
	TCase *fmt = tcase_create("addr_equal_format");

	tcase_add_test(parse, ipv4);
	tcase_add_test(parse, ipv4_any);
	tcase_add_test(parse, ipv6);
	tcase_add_test(parse, unix_path);
	tcase_add_test(parse, unix_path_length);
	tcase_add_test(parse, port_bounds);
	tcase_add_loop_test(parse, rejected, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_loop_test(parse, transport, 0, sizeof(transports) / sizeof(transports[0]));
	suite_add_tcase(s, parse);
	tcase_add_test(fmt, equal);
	tcase_add_loop_test(fmt, format_round_trip, 0, sizeof(round_trips) / sizeof(round_trips[0]));
	tcase_add_test(fmt, format_other);
	suite_add_tcase(s, fmt);
	return s;
}
