/*
 * Runs every unit suite in one SRunner (fork mode, so a crashing test is
 * reported as an error instead of ending the run).  Exit status 1 when any
 * check failed or errored.
 */
#include <stdlib.h>

#include "tests.h"

int
main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_add_suite(sr, addr_suite());
	srunner_add_suite(sr, backoff_suite());
	srunner_add_suite(sr, cidr_suite());
	srunner_add_suite(sr, cond_suite());
	srunner_add_suite(sr, conntab_suite());
	srunner_add_suite(sr, encode_suite());
	srunner_add_suite(sr, filelock_suite());
	srunner_add_suite(sr, framing_suite());
	srunner_add_suite(sr, httphead_suite());
	srunner_add_suite(sr, json_suite());
	srunner_add_suite(sr, parse_syslog_suite());
	srunner_add_suite(sr, proxy_suite());
	srunner_add_suite(sr, ratelimit_suite());
	srunner_add_suite(sr, records_suite());
	srunner_add_suite(sr, relp_suite());
	srunner_add_suite(sr, routes_suite());
	srunner_add_suite(sr, relp_client_suite());
	srunner_add_suite(sr, relp_session_suite());
	srunner_add_suite(sr, segment_suite());
	srunner_add_suite(sr, safefile_suite());
	srunner_add_suite(sr, sink_suite());
	srunner_add_suite(sr, slots_suite());
	srunner_add_suite(sr, template_suite());
	srunner_add_suite(sr, tls_suite());
	srunner_add_suite(sr, tz_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
