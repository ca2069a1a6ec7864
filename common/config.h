/*
 * config: the settings table, and the immutable config of one generation.
 *
 * Every setting is a row of cfg_settings[] (name, type, default, range,
 * whether a reload may change it, and its documentation).  The table drives
 * parsing and validation, `ingestd -T`, man/ingestd.conf.5 and the sample
 * etc/ingestd.conf, so a setting cannot exist in one and be missing in
 * another.
 */
#ifndef INGESTD_CONFIG_H
#define INGESTD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "addr.h"
#include "cidr.h"

struct tz;

#define CFG_DEFAULT_PATH	"/etc/ingestd/ingestd.conf"
#define CFG_EMBEDDED_NAME	"(embedded default)"
#define CFG_MAX_LISTENERS	64
#define CFG_MAX_LISTENERS_TEXT	"64"	/* for the documentation */
#define CFG_MAX_SINKS		32
#define CFG_MAX_SINKS_TEXT	"32"
#define CFG_MAX_ROUTES		64
#define CFG_MAX_ROUTES_TEXT	"64"
#define CFG_MAX_WORKERS		512
#define CFG_STRING_MAX		4095	/* bytes in a string setting */
#define CFG_VALUE_MAX		(4 * CFG_STRING_MAX + 3)	/* a value as cfg_format writes it */

enum cfg_scope {
	CS_MAIN, CS_LOG, CS_STATS, CS_LISTENER, CS_TLS, CS_SINK, CS_SPOOL, CS_ROUTE, CS_COUNT
};
enum cfg_type {
	CT_INT, CT_SECONDS, CT_STRING, CT_ENUM, CT_WORKERS, CT_LISTEN, CT_SIZE, CT_NAMES, CT_BOOL
};
enum accept_mode { ACCEPT_SHARED, ACCEPT_REUSEPORT };
enum listener_protocol { PROTO_TCP, PROTO_RELP };
/* Listener settings; the values are the index in the table's choices. */
enum framing_mode { FRAMING_AUTO, FRAMING_LF, FRAMING_OCTET };
enum record_format { FORMAT_AUTO, FORMAT_SYSLOG, FORMAT_JSON, FORMAT_RAW };
enum parse_error_action { ON_ERROR_KEEP, ON_ERROR_DROP };
enum rate_action { RATE_THROTTLE, RATE_DROP };
/* Sink settings. */
enum sink_type { SINK_FILE, SINK_STDOUT, SINK_FORWARD, SINK_REDIS, SINK_NATS };
enum forward_mode { FORWARD_FAILOVER, FORWARD_ROUNDROBIN };
enum forward_framing { FORWARD_LF, FORWARD_OCTET };
enum forward_payload { PAYLOAD_EVENT, PAYLOAD_RECORD, PAYLOAD_RFC5424 };
enum sink_sync { SYNC_NONE, SYNC_INTERVAL, SYNC_ALWAYS };
enum sink_overflow { OVERFLOW_BLOCK, OVERFLOW_DROP };
/* TLS settings. */
enum tls_verify { VERIFY_NONE, VERIFY_OPTIONAL, VERIFY_REQUIRED };
enum tls_version { TLS_V1_2, TLS_V1_3 };

struct cfg_setting {
	const char	*name;
	enum cfg_scope	 scope;
	enum cfg_type	 type;
	const char	*def;		/* default, as written in a config file */
	long		 min, max;	/* CT_INT, CT_SIZE (bytes), CT_SECONDS (seconds) */
	const char	*choices;	/* CT_ENUM: "a|b|c", stored as the index */
	int		 reloadable;
	size_t		 offset;	/* into struct config or struct listener_cfg */
	const char	*doc;
};

struct cfg_addr {
	char		*text;
	struct addr	 addr;
};

/* A list of names; empty means "all" where the setting says so. */
struct cfg_names {
	char		**v;
	int		  n;
};

/* A unix socket file's owner, group and mode: unix listeners, the stats endpoint. */
struct sock_perm {
	char		*user, *group, *mode;		/* socket_user, socket_group, socket_mode */
	int		 uid, gid;			/* resolved; -1: leave it */
	int		 perm;				/* resolved from mode; -1: the umask's */
};

/* A tls group (listeners[i].tls, sinks[i].tls); common/tlsctx.c builds its context. */
struct tls_cfg {
	int		 enabled;	/* the group is there */
	char		*certificate, *key, *key_passphrase_file;
	char		*ca_file, *ca_dir, *crl_file;
	int		 verify;
	struct cfg_names permitted_peers;
	int		 min_protocol;
	char		*ciphers, *ciphersuites;
	long		 handshake_timeout_ms;
	char		*server_name;	/* a sink's upstream */
	void		*ctx;		/* resolved: the SSL_CTX of this generation */
};

enum spool_sync { SPOOL_SYNC_ALWAYS, SPOOL_SYNC_NONE };

/* A sink's spool group (sinks[i].spool): its disk queue, worker/sinks/spool.c. */
struct spool_cfg {
	int		 enabled;	/* the group is there */
	char		*path;		/* a directory */
	long		 max_size;
	int		 sync;
};

struct listener_cfg {
	char		*name;
	struct cfg_addr	 listen;
	int		 backlog;
	int		 accept_mode;
	int		 protocol;
	int		 proxy_protocol;	/* 0 or 1 */
	int		 framing;
	int		 format;
	long		 max_record;
	int		 on_parse_error;
	struct cfg_names sinks;
	int		 sink_idx[CFG_MAX_SINKS];	/* resolved: indices into sinks */
	int		 nsink_idx;
	int		 sinks_formatted;	/* a sink wants other than event lines */
	int		 route_idx[CFG_MAX_ROUTES];	/* resolved: the routes that look at it */
	int		 nroute_idx;
	int		 ack_idx[CFG_MAX_SINKS];	/* resolved: every sink its events may reach */
	int		 nack_idx;
	long		 idle_timeout_ms;
	long		 record_timeout_ms;
	long		 send_timeout_ms;
	int		 max_connections;
	int		 max_connections_per_ip;
	int		 ipv6_prefix;
	int		 rate_records;		/* per client and second; 0: no limit */
	long		 rate_bytes;
	long		 rate_burst_ms;
	int		 rate_action;
	char		*timezone;		/* RFC 3164 timestamps: empty, UTC */
	struct tz	*tz;			/* resolved from timezone */
	struct cfg_names allow, deny;
	struct cidr	*allow_v, *deny_v;		/* resolved from allow, deny */
	int		 nallow, ndeny;
	long		 recv_buffer;
	struct sock_perm sock;				/* unix sockets */
	int		 datagram;			/* resolved: udp:// or unixgram: */
	struct tls_cfg	 tls;
};

struct sink_cfg {
	char		*name;
	int		 type;
	char		*path;
	long		 flush_interval_ms;
	int		 sync;
	long		 queue;
	int		 overflow;
	struct cfg_names upstreams;	/* forward: addresses */
	struct addr	*upstream_v;	/* resolved from upstreams */
	int		 nupstreams;
	int		 mode;
	int		 framing;
	int		 payload;
	int		 protocol;	/* forward: PROTO_TCP or PROTO_RELP */
	int		 relp_window;
	char		*stream;	/* redis: the key; nats: the JetStream stream's name */
	int		 maxlen;
	struct cfg_names servers;	/* nats: nats://host:port URLs */
	char		*subject;	/* nats */
	char		*auth_user, *password, *token, *credentials;	/* nats */
	int		 max_pending;	/* nats: events published and not acknowledged */
	long		 publish_timeout_ms;	/* nats: an event not acknowledged goes again */
	int		 octet;		/* resolved: units are "LEN SP MSG" frames, not lines */
	int		 raw;		/* resolved: the record as it came, not the event */
	struct cfg_names fields, drop_fields, rename, static_fields;	/* the event's template */
	int		 templated;	/* resolved: one of them is set */
	char		**rename_from, **rename_to;	/* resolved from rename */
	char		*statics;	/* resolved: ,"name":"value"... as JSON */
	size_t		 template_extra;	/* resolved: most bytes a template adds */
	int		 formatted;	/* resolved: other than the event line as encoded */
	struct tls_cfg	 tls;		/* forward: to the upstreams */
	struct spool_cfg spool;
};

struct cond;

/* A route (routes[i]): events it matches go to its sinks, or are dropped. */
struct route_cfg {
	char		*name;
	struct cfg_names listeners;	/* empty: every listener */
	char		*match;		/* empty: every event */
	struct cfg_names sinks;
	int		 drop;
	int		 final;
	struct cond	*cond;		/* resolved from match; NULL: every event */
	int		 sink_idx[CFG_MAX_SINKS];	/* resolved from sinks */
	int		 nsink_idx;
};

struct config {
	int		 refs;		/* holders: the master and each worker slot */
	char		*path;		/* file name, or CFG_EMBEDDED_NAME */
	int		 workers;	/* resolved: "auto" is one per CPU */
	int		 workers_auto;
	char		*user;
	char		*group;
	char		*pid_file;
	long		 shutdown_timeout_ms;
	int		 handover;		/* hand connections to the next generation */
	int		 sandbox;		/* workers under their seccomp allow-list */
	int		 core_dumps;		/* workers may dump core */
	int		 worker_connections;
	int		 log_level;
	char		*log_target;
	char		*stats_listen;	/* empty: no stats endpoint */
	struct addr	 stats_addr;	/* resolved from stats_listen */
	struct sock_perm stats_sock;	/* stats_listen a unix socket: its file */
	struct listener_cfg *listeners;
	int		 nlisteners;
	struct sink_cfg	*sinks;
	int		 nsinks;
	struct route_cfg *routes;
	int		 nroutes;
};

extern const struct cfg_setting cfg_settings[];
extern const char *const cfg_scope_names[CS_COUNT];
extern const char cfg_embedded[];

struct config	*cfg_load(const char *path, char *err, size_t errlen);
struct config	*cfg_parse_string(const char *text, const char *name, char *err, size_t errlen);
void		 cfg_free(struct config *);
struct config	*cfg_ref(struct config *);
void		 cfg_unref(struct config *);
void		 cfg_keep_fixed(struct config *next, const struct config *cur);
void		 cfg_dump(const struct config *, FILE *);
const char	*cfg_format(const struct cfg_setting *, const void *base, char *buf, size_t size);
const char	*cfg_type_name(const struct cfg_setting *);

#endif
