/*
 * Unit tests: one Check suite per module under test, all run by main.c.
 */
#ifndef INGESTD_TESTS_H
#define INGESTD_TESTS_H

#include <check.h>
#include <sys/socket.h>

Suite	*addr_suite(void);	/* test_addr.c:    common/addr.c */
Suite	*backoff_suite(void);	/* test_backoff.c: server/backoff.c */
Suite	*cidr_suite(void);	/* test_cidr.c:    common/cidr.c */
Suite	*cond_suite(void);	/* test_cond.c:    common/cond.c */
Suite	*config_suite(void);	/* test_config.c:  common/config.c */
Suite	*conntab_suite(void);	/* test_conntab.c: common/conntab.c */
Suite	*encode_suite(void);	/* test_encode.c: worker/pipeline/encode.c */
Suite	*filelock_suite(void);	/* test_filelock.c: common/filelock.c */
Suite	*framing_suite(void);	/* test_framing.c: worker/protocol/framing.c */
Suite	*httphead_suite(void);	/* test_httphead.c: server/httphead.c */
Suite	*json_suite(void);	/* test_json.c:    worker/protocol/json.c */
Suite	*parse_syslog_suite(void);	/* test_parse_syslog.c: worker/protocol/parse_syslog.c */
Suite	*proxy_suite(void);	/* test_proxy.c:   worker/protocol/proxy.c */
Suite	*ratelimit_suite(void);	/* test_ratelimit.c: worker/pipeline/ratelimit.c */
Suite	*records_suite(void);	/* test_records.c: worker/pipeline/records.c */
Suite	*relp_suite(void);	/* test_relp.c:    worker/protocol/relp.c */
Suite	*routes_suite(void);	/* test_routes.c:  worker/pipeline/routes.c */
Suite	*relp_client_suite(void);	/* test_relp_client.c: worker/protocol/relp_client.c */
Suite	*relp_session_suite(void);
Suite	*segment_suite(void);	/* test_segment.c: worker/sinks/segment.c */	/* test_relp_session.c: worker/conn/relp_session.c */
Suite	*safefile_suite(void);	/* test_safefile.c: common/safefile.c */
Suite	*sink_suite(void);	/* test_sink.c:    worker/sinks/sink.c */
Suite	*slots_suite(void);	/* test_slots.c:   server/slots.c */
Suite	*template_suite(void);	/* test_template.c: worker/pipeline/template.c */
Suite	*tz_suite(void);	/* test_tz.c:      common/tz.c, zoned BSD timestamps */
Suite	*tls_suite(void);	/* test_tls.c:     common/tlsctx.c, worker/conn/tls.c */

const struct sockaddr *test_sockaddr(const char *text);	/* util.c */
struct encode_meta;
void	 test_meta(struct encode_meta *);	/* util.c: peer "p", listener "l", 2025-12-01 */

#endif
