/*
 * Helpers shared by the unit suites.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>

#include "encode.h"
#include "tests.h"

/* What a read of peer "p" on listener "l" at 2025-12-01T00:00:00.123456Z gives records. */
void
test_meta(struct encode_meta *m)
{
	struct timespec ts = { 1764547200, 123456000 };

	memset(m, 0, sizeof(*m));
	encode_set_time(m, &ts);
	m->prefix = ",\"peer\":\"p\",\"listener\":\"l\"";
	m->prefixlen = strlen(m->prefix);
}

/* "10.1.2.3" or "2001:db8::1" as a socket address (port 0), in a static buffer. */
const struct sockaddr *
test_sockaddr(const char *text)
{
	static struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, text, &sin->sin_addr), 1);
	}
	return (const struct sockaddr *)&ss;
}
