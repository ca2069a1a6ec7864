/*
 * common/cidr.c: the address blocks of allow and deny lists.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "cidr.h"
#include "tests.h"

static struct cidr
ok(const char *text)
{
	const char *why = NULL;
	struct cidr c;

	ck_assert_msg(cidr_parse(text, &c, &why) == 0, "%s refused: %s", text, why);
	return c;
}

static const struct { const char *block, *addr; int match; } matches[] = {
	{ "10.0.0.0/8", "10.255.1.2", 1 },
	{ "10.0.0.0/8", "11.0.0.0", 0 },
	{ "127.0.0.1", "127.0.0.1", 1 },
	{ "127.0.0.1", "127.0.0.2", 0 },
	{ "127.0.0.1/32", "127.0.0.1", 1 },
	{ "0.0.0.0/0", "203.0.113.9", 1 },
	{ "0.0.0.0/0", "::1", 0 },		/* families never mix */
	{ "192.168.4.0/22", "192.168.7.255", 1 },
	{ "192.168.4.0/22", "192.168.8.0", 0 },
	{ "192.168.4.0/22", "192.168.3.255", 0 },
	{ "::1", "::1", 1 },
	{ "::1", "::2", 0 },
	{ "::/0", "2001:db8::1", 1 },
	{ "::/0", "127.0.0.1", 0 },
	{ "2001:db8::/32", "2001:db8:ffff::1", 1 },
	{ "2001:db8::/32", "2001:db9::1", 0 },
	{ "2001:db8:0:1::/64", "2001:db8:0:1:ffff::1", 1 },
	{ "2001:db8:0:1::/64", "2001:db8:0:2::1", 0 },
	{ "fe80::/10", "febf::1", 1 },
	{ "fe80::/10", "fec0::1", 0 },
};

START_TEST(match)
{
	struct cidr c = ok(matches[_i].block);

	ck_assert_msg(cidr_match(&c, test_sockaddr(matches[_i].addr)) == matches[_i].match,
	    "%s in %s: expected %d", matches[_i].addr, matches[_i].block, matches[_i].match);
}
END_TEST

static const struct { const char *text, *why; } bad[] = {
	{ "", "not an IPv4 or IPv6 address" },
	{ "/8", "not an IPv4 or IPv6 address" },
	{ "localhost", "not an IPv4 or IPv6 address" },
	{ "10.0.0/8", "not an IPv4 or IPv6 address" },
	{ "10.0.0.0/33", "prefix length must be from 0 to 32" },
	{ "10.0.0.0/-1", "prefix length must be from 0 to 32" },
	{ "10.0.0.0/", "prefix length must be from 0 to 32" },
	{ "10.0.0.0/8x", "prefix length must be from 0 to 32" },
	{ "::/129", "prefix length must be from 0 to 128" },
	{ "10.1.2.3/8", "host bits are set after the prefix length" },
	{ "2001:db8::1/32", "host bits are set after the prefix length" },
	{ "192.168.5.0/22", "host bits are set after the prefix length" },
};

START_TEST(errors)
{
	const char *why = NULL;
	struct cidr c;

	ck_assert_int_eq(cidr_parse(bad[_i].text, &c, &why), -1);
	ck_assert_str_eq(why, bad[_i].why);
}
END_TEST

START_TEST(parsed_fields)
{
	struct cidr c = ok("192.168.4.0/22");

	ck_assert_int_eq(c.family, AF_INET);
	ck_assert_int_eq(c.bits, 22);
	c = ok("::1");
	ck_assert_int_eq(c.family, AF_INET6);
	ck_assert_int_eq(c.bits, 128);
}
END_TEST

Suite *
cidr_suite(void)
{
	Suite *s = suite_create("cidr");
	TCase *tc = tcase_create("cidr");

	tcase_add_loop_test(tc, match, 0, (int)(sizeof(matches) / sizeof(matches[0])));
	tcase_add_loop_test(tc, errors, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, parsed_fields);
	suite_add_tcase(s, tc);
	return s;
}
