/*
 * Helpers shared by the unit suites.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "tests.h"

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
