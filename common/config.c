/*
 * config: parse and validate a libconfig file into a struct config, driven
 * by the settings table below.
 *
 * Every error names the file, the line and the setting:
 *   /etc/ingestd/ingestd.conf:12: listeners[0].backlog: must be from 1 to 65535
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <libconfig.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cond.h"
#include "config.h"
#include "log.h"
#include "tlsctx.h"
#include "tz.h"

#define M(f)	offsetof(struct config, f)
#define L(f)	offsetof(struct listener_cfg, f)
#define S(f)	offsetof(struct sink_cfg, f)
#define T(f)	offsetof(struct tls_cfg, f)
#define P(f)	offsetof(struct spool_cfg, f)
#define R(f)	offsetof(struct route_cfg, f)
#define KIB	1024L
#define MIB	(1024L * KIB)
#define GIB	(1024L * MIB)

const struct cfg_setting cfg_settings[] = {
	{ "workers", CS_MAIN, CT_WORKERS, "auto", 1, CFG_MAX_WORKERS, NULL, 1, M(workers),
	  "Number of worker processes: \"auto\" starts one per online CPU." },
	{ "worker_connections", CS_MAIN, CT_INT, "10000", 1, 1000000, NULL, 1, M(worker_connections),
	  "Most connections one worker holds open at once; at the limit it stops "
	  "accepting until one closes. The master raises RLIMIT_NOFILE to fit." },
	{ "user", CS_MAIN, CT_STRING, "", 0, 0, NULL, 1, M(user),
	  "When started as root, workers switch to this user after the master has "
	  "bound the listeners. Empty: workers keep the master's user." },
	{ "group", CS_MAIN, CT_STRING, "", 0, 0, NULL, 1, M(group),
	  "Group for the workers; empty means the primary group of user." },
	{ "pid_file", CS_MAIN, CT_STRING, "/run/ingestd/ingestd.pid", 0, 0, NULL, 0, M(pid_file),
	  "File holding the master's process id, used by ingestd -s. "
	  "A missing parent directory is created. It must not be a symbolic link, "
	  "and its directory should be one only root may write." },
	{ "shutdown_timeout", CS_MAIN, CT_SECONDS, "30", 0, 86400, NULL, 1, M(shutdown_timeout_ms),
	  "Seconds a draining worker (graceful stop or reload) keeps serving its open "
	  "connections before it closes them, gracefully (see RELOAD in ingestd(8)), "
	  "and exits." },
	{ "handover", CS_MAIN, CT_BOOL, "true", 0, 0, NULL, 1, M(handover),
	  "On a reload or a binary upgrade, the draining workers hand their open plain "
	  "TCP and unix stream connections (PROXY protocol ones too) to the workers of "
	  "the new generation, which read on where they stopped: long-lived clients are "
	  "not cut. RELP and TLS connections, and those whose listener address the new "
	  "configuration no longer serves as a plain stream, drain as before. The "
	  "setting of the new generation decides. See RELOAD in ingestd(8)." },
	{ "sandbox", CS_MAIN, CT_BOOL, "true", 0, 0, NULL, 1, M(sandbox),
	  "Workers run under a seccomp allow-list of the system calls they need; any "
	  "other call kills the worker, and the master logs which call it was and "
	  "respawns it. false turns the filter off: a debugging aid, for finding the "
	  "call a new setup needs (see SECURITY in ingestd(8)), not a way to run." },
	{ "core_dumps", CS_MAIN, CT_BOOL, "false", 0, 0, NULL, 1, M(core_dumps),
	  "A crashing worker may leave a core dump (as RLIMIT_CORE and the system's "
	  "core_pattern allow). Off by default: a worker's memory holds clients' records "
	  "and TLS session keys." },
	{ "level", CS_LOG, CT_ENUM, "info", 0, 0, "error|warning|notice|info|debug", 1, M(log_level),
	  "Least severe message that is logged." },
	{ "target", CS_LOG, CT_STRING, "syslog", 0, 0, NULL, 1, M(log_target),
	  "Where ingestd logs: \"syslog\" (facility daemon), \"stderr\", or a file "
	  "path (reopened on SIGUSR1), never a symbolic link, in a directory only root "
	  "may write. The -f option always logs to stderr." },
	{ "listen", CS_STATS, CT_STRING, "", 0, 0, NULL, 1, M(stats_listen),
	  "Address of the master's HTTP endpoint: Prometheus text at /metrics, JSON at "
	  "/stats (\"IPv4:port\", \"[IPv6]:port\" or a unix socket path). Empty: none. "
	  "Anyone who can connect can read it: keep it on loopback or a private address. "
	  "Its limits (32 connections, 8 KiB requests, 5 s to send one): METRICS in ingestd(8)." },
	{ "socket_user", CS_STATS, CT_STRING, "", 0, 0, NULL, 1, M(stats_sock.user),
	  "listen a unix socket path: the owner of the socket file, e.g. the local "
	  "Prometheus agent's user. Empty: the master's user." },
	{ "socket_group", CS_STATS, CT_STRING, "", 0, 0, NULL, 1, M(stats_sock.group),
	  "listen a unix socket path: the group of the socket file. Empty: the master's group." },
	{ "socket_mode", CS_STATS, CT_STRING, "", 0, 0, NULL, 1, M(stats_sock.mode),
	  "listen a unix socket path: the permissions of the socket file, in octal, such as "
	  "\"0660\"; who may read the figures needs write permission. Empty: what the "
	  "master's umask leaves (0755 under umask 022: only the master's user may connect)." },
	{ "name", CS_LISTENER, CT_STRING, "", 0, 0, NULL, 1, L(name),
	  "Name of the listener in log messages; empty means the listen address. "
	  "Names are unique." },
	{ "listen", CS_LISTENER, CT_LISTEN, NULL, 0, 0, NULL, 1, L(listen),
	  "Required. TCP: \"IPv4:port\", \"[IPv6]:port\", \"*:port\" (every IPv4 "
	  "address), optionally after \"tcp://\"; a unix stream socket: an absolute path, "
	  "optionally after \"unix:\". Datagrams: \"udp://IPv4:port\", \"udp://[IPv6]:port\" "
	  "(RFC 5426 syslog over UDP: one SO_REUSEPORT socket per worker), or "
	  "\"unixgram:/path\" (a local datagram socket such as /dev/log, read by every "
	  "worker). A datagram is one record (several if it holds LF-separated lines); "
	  "framing, protocol, proxy_protocol, the connection caps and the timeouts do not "
	  "apply to datagrams." },
	{ "backlog", CS_LISTENER, CT_INT, "4096", 1, 65535, NULL, 1, L(backlog),
	  "Length of the kernel's queue of connections not yet accepted "
	  "(capped by net.core.somaxconn)." },
	{ "accept_mode", CS_LISTENER, CT_ENUM, "shared", 0, 0, "shared|reuseport", 0, L(accept_mode),
	  "\"shared\": one socket polled by every worker. \"reuseport\": one SO_REUSEPORT "
	  "socket per worker slot, kept across reloads; the kernel spreads connections "
	  "evenly, but a busy worker delays its own queue." },
	{ "protocol", CS_LISTENER, CT_ENUM, "tcp", 0, 0, "tcp|relp", 1, L(protocol),
	  "\"tcp\": plain records, cut by framing; nothing is sent back. \"relp\": RELP "
	  "(rsyslog's omrelp): each record is acknowledged once every sink of the listener "
	  "has written it (with sync = \"always\", synced), so the client re-sends what "
	  "was not; framing does not apply." },
	{ "proxy_protocol", CS_LISTENER, CT_BOOL, "false", 0, 0, NULL, 1, L(proxy_protocol),
	  "true: every connection must begin with a PROXY protocol header, v1 or v2, as a "
	  "load balancer such as HAProxy sends it (send-proxy, send-proxy-v2), and the client "
	  "address in it becomes the connection's peer in events and logs; LOCAL and UNKNOWN "
	  "headers keep the balancer's address. A connection whose first bytes are not a "
	  "valid header, or whose header is not complete within record_timeout, is closed. "
	  "allow and deny check the balancer that connects, max_connections_per_ip the "
	  "client in the header. false: a PROXY header is not interpreted; it is data like "
	  "any other." },
	{ "framing", CS_LISTENER, CT_ENUM, "auto", 0, 0, "auto|lf|octet-counted", 1, L(framing),
	  "How the byte stream is cut into records: \"lf\" (a record ends at LF; a CR "
	  "before it is removed), \"octet-counted\" (RFC 6587: \"LEN SP MSG\"; an invalid "
	  "count closes the connection), or \"auto\": a record that starts with a count, "
	  "a space and a syslog PRI such as \"<13>\" is octet-counted, any other is "
	  "LF-framed, so \"54 <1 minute elapsed\" is a plain line." },
	{ "format", CS_LISTENER, CT_ENUM, "auto", 0, 0, "auto|syslog|json|raw", 1, L(format),
	  "How a record is parsed: RFC 5424 or RFC 3164 syslog, a JSON object, or raw "
	  "text. \"auto\" decides per record: \"<\" is syslog, \"{\" is JSON, "
	  "anything else raw." },
	{ "max_record", CS_LISTENER, CT_SIZE, "64K", 16, 16 * MIB, NULL, 1, L(max_record),
	  "Longest record kept: a longer one is cut to this size, marked "
	  "\"truncated\":true, and the rest of it is skipped; the connection goes on." },
	{ "on_parse_error", CS_LISTENER, CT_ENUM, "keep", 0, 0, "keep|drop", 1, L(on_parse_error),
	  "A record that fails to parse is delivered with its raw text in msg and the "
	  "reason in parse_error (\"keep\"), or counted and dropped (\"drop\")." },
	{ "sinks", CS_LISTENER, CT_NAMES, "", 0, 0, NULL, 1, L(sinks),
	  "Names of the sinks this listener's events go to, e.g. [ \"archive\", "
	  "\"stream\" ]; empty means every sink." },
	{ "idle_timeout", CS_LISTENER, CT_SECONDS, "300", 0, 86400, NULL, 1, L(idle_timeout_ms),
	  "A connection that sends nothing for this many seconds is closed; 0: never. "
	  "Frees the descriptors of clients that connect and go quiet." },
	{ "record_timeout", CS_LISTENER, CT_SECONDS, "10", 0, 3600, NULL, 1, L(record_timeout_ms),
	  "A record that has begun must be complete within this many seconds, however "
	  "its bytes trickle in, or the connection is closed; 0: no limit. This stops "
	  "slowloris clients, which keep connections open by sending a byte now and then." },
	{ "send_timeout", CS_LISTENER, CT_SECONDS, "30", 0, 3600, NULL, 1, L(send_timeout_ms),
	  "A client that takes this many seconds to read what ingestd sends it (RELP "
	  "acknowledgements) without taking a byte is closed; 0: no limit. Stops clients "
	  "that send but never read, which would pin their responses in memory." },
	{ "max_connections", CS_LISTENER, CT_INT, "0", 0, 10000000, NULL, 1, L(max_connections),
	  "Most connections open on this listener in the whole server, counted across "
	  "all workers and generations; one more is closed as soon as it is accepted. "
	  "0: no cap beyond worker_connections per worker." },
	{ "max_connections_per_ip", CS_LISTENER, CT_INT, "0", 0, 10000000, NULL, 1,
	  L(max_connections_per_ip),
	  "Most connections open on this listener from one client: one IPv4 address, "
	  "or one IPv6 prefix of ipv6_prefix bits. One more is closed as soon as it is "
	  "accepted; with proxy_protocol, the client is the address in the PROXY header, "
	  "and one more is closed once its header is read. 0: no cap." },
	{ "ipv6_prefix", CS_LISTENER, CT_INT, "64", 1, 128, NULL, 1, L(ipv6_prefix),
	  "Length of the IPv6 prefix that max_connections_per_ip and the rate limits count as "
	  "one client: a host usually holds a whole /64, so counting single addresses would "
	  "not cap it." },
	{ "timezone", CS_LISTENER, CT_STRING, "", 0, 0, NULL, 1, L(timezone),
	  "The time zone of the senders' RFC 3164 timestamps, which carry none: a tz database "
	  "name such as \"Europe/Berlin\" (the system's zoneinfo, or $TZDIR), read when the "
	  "configuration is loaded. The event's timestamp then has that zone's offset at that "
	  "time (\"2026-03-29T01:30:00+01:00\"), daylight saving time included: a time the "
	  "clocks skipped takes the offset before the change, a time they repeated the first "
	  "of its two. Empty: UTC (\"Z\"). Timestamps with an offset (RFC 5424, RFC 3339) "
	  "keep theirs." },
	{ "rate_records", CS_LISTENER, CT_INT, "0", 0, 100000000, NULL, 1, L(rate_records),
	  "Most records a second one client may send on this listener (a client: one IPv4 "
	  "address, one IPv6 prefix of ipv6_prefix bits, the client in the PROXY header behind "
	  "a balancer; every client of a unix socket counts as one), over all its connections "
	  "to one worker: each worker holds the limit for the connections it serves, so a "
	  "client spread over N workers may send up to N times as much. 0: no limit. "
	  "Stream listeners only. See rate_action." },
	{ "rate_bytes", CS_LISTENER, CT_SIZE, "0", 0, 1024 * GIB, NULL, 1, L(rate_bytes),
	  "Most bytes a second one client may send on this listener, counted as rate_records "
	  "is; 0: no limit." },
	{ "rate_burst", CS_LISTENER, CT_SECONDS, "1", 0, 3600, NULL, 1, L(rate_burst_ms),
	  "How much a client quiet for a while may send at once: this many seconds of its "
	  "rates (the depth of its token bucket), at least one record." },
	{ "rate_action", CS_LISTENER, CT_ENUM, "throttle", 0, 0, "throttle|drop", 1,
	  L(rate_action),
	  "Over its rate, a client's connections are not read from until it is back under it "
	  "(\"throttle\": TCP pushes back on that client alone, nothing is lost), or its records "
	  "are dropped and counted (\"drop\"; on a RELP listener they are answered, as "
	  "on_parse_error = \"drop\" does). Counted in ingestd_ratelimit_throttled_total and "
	  "ingestd_ratelimit_dropped_total." },
	{ "allow", CS_LISTENER, CT_NAMES, "", 0, 0, NULL, 1, L(allow),
	  "IPv4 and IPv6 addresses or CIDR blocks, e.g. [ \"10.0.0.0/8\", \"::1\" ], that "
	  "may connect; empty: every address not denied. Does not apply to unix sockets. "
	  "On a UDP listener, checked for every datagram: one refused is dropped and counted "
	  "(ingestd_datagrams_refused_total). UDP source addresses are easily forged, so on "
	  "UDP this keeps out mistakes and noise, not an attacker." },
	{ "deny", CS_LISTENER, CT_NAMES, "", 0, 0, NULL, 1, L(deny),
	  "Addresses or CIDR blocks whose connections are closed as soon as they are "
	  "accepted, before anything is read; deny wins over allow. With proxy_protocol, "
	  "allow and deny apply to the address that connects (the load balancer), not to "
	  "the client named in the PROXY header: list the balancers in allow." },
	{ "recv_buffer", CS_LISTENER, CT_SIZE, "4M", 4 * KIB, 1 * GIB, NULL, 1, L(recv_buffer),
	  "Datagram listeners: the kernel's receive buffer of each socket (SO_RCVBUF; "
	  "SO_RCVBUFFORCE when the master runs as root, so net.core.rmem_max does not cap "
	  "it). It holds the datagrams that arrive while the workers are busy; what does "
	  "not fit is dropped by the kernel, counted in "
	  "ingestd_datagrams_dropped_total and logged. Not used by stream listeners." },
	{ "socket_user", CS_LISTENER, CT_STRING, "", 0, 0, NULL, 1, L(sock.user),
	  "Unix socket listeners (stream and datagram): the owner of the socket file. "
	  "Empty: the master's user." },
	{ "socket_group", CS_LISTENER, CT_STRING, "", 0, 0, NULL, 1, L(sock.group),
	  "Unix socket listeners: the group of the socket file. Empty: the master's group." },
	{ "socket_mode", CS_LISTENER, CT_STRING, "", 0, 0, NULL, 1, L(sock.mode),
	  "Unix socket listeners: the permissions of the socket file, in octal, such as "
	  "\"0660\"; who may send needs write permission. Empty: 0666 for a unixgram: socket "
	  "(as systemd's SocketMode=: every local program may log, as /dev/log must), and "
	  "for a unix stream socket what the master's umask leaves (0755 under umask 022: "
	  "only root may connect)." },
	{ "certificate", CS_TLS, CT_STRING, "", 0, 0, NULL, 1, T(certificate),
	  "Listeners (required): PEM file of the server's certificate, followed by the "
	  "intermediate certificates that lead to the CA clients trust. Forward sinks "
	  "(optional): the client certificate presented to upstreams that ask for one. "
	  "The master reads it "
	  "(and key) as it loads the configuration, before it drops privileges, so the files "
	  "may be readable by root only. A certificate that has expired, or is not yet valid, "
	  "is an error; one that expires within 30 days is a warning." },
	{ "key", CS_TLS, CT_STRING, "", 0, 0, NULL, 1, T(key),
	  "PEM file of the private key of certificate; it must match it. Empty: the key is "
	  "in the certificate file." },
	{ "key_passphrase_file", CS_TLS, CT_STRING, "", 0, 0, NULL, 1, T(key_passphrase_file),
	  "File whose first line is the passphrase of an encrypted key. Empty: the key is "
	  "not encrypted." },
	{ "ca_file", CS_TLS, CT_STRING, "", 0, 0, NULL, 1, T(ca_file),
	  "PEM file of the CA certificates that the peer's certificate is verified against: "
	  "clients' (a listener with verify \"optional\" or \"required\"), or the upstream's "
	  "(a forward sink; empty: the system's CAs, /etc/ssl/certs)." },
	{ "ca_dir", CS_TLS, CT_STRING, "", 0, 0, NULL, 1, T(ca_dir),
	  "Directory of CA certificates named by their subject hash, as openssl rehash(1) "
	  "makes it, searched besides ca_file." },
	{ "crl_file", CS_TLS, CT_STRING, "", 0, 0, NULL, 1, T(crl_file),
	  "PEM file of certificate revocation lists, one for each CA of the chain: a "
	  "peer certificate it revokes is refused. With a CRL file, every CA in a client's "
	  "chain must have a CRL in it. Read again on every reload." },
	{ "verify", CS_TLS, CT_ENUM, "none", 0, 0, "none|optional|required", 1, T(verify),
	  "Listeners: client certificates (mutual TLS). \"none\": none is asked for. \"optional\": one is "
	  "asked for; a client without one is admitted, a client whose certificate does not "
	  "verify (chain, dates, CRL, permitted_peers) is refused. \"required\": a client "
	  "without a certificate is refused too. \"optional\" and \"required\" need ca_file, "
	  "ca_dir or fingerprints in permitted_peers. Forward sinks: the upstream's "
	  "certificate is verified (against ca_file, ca_dir or the system's CAs, and "
	  "server_name) unless verify is \"none\"; a sink's default is \"required\"." },
	{ "permitted_peers", CS_TLS, CT_NAMES, "", 0, 0, NULL, 1, T(permitted_peers),
	  "Which verified client certificates are admitted, as RFC 5425 authorizes syslog "
	  "clients: names, matched against the certificate's subjectAltName DNS names (its "
	  "common name when it has none), where \"*.example.com\" admits one label in place of "
	  "the star (a.example.com, not a.b.example.com) and a wildcard in the certificate is "
	  "honoured the same way; and fingerprints of the certificate itself, \"sha256:\" or "
	  "\"sha1:\" and its hexadecimal digits, colons and case as openssl x509 -fingerprint "
	  "prints them. A fingerprint admits its certificate even when it is self-signed or its "
	  "CA is not in ca_file (its dates are still checked). The name or fingerprint that "
	  "matched becomes the event's tls_peer. Empty: every certificate that verifies "
	  "against the CAs is admitted. Listeners only." },
	{ "server_name", CS_TLS, CT_STRING, "", 0, 0, NULL, 1, T(server_name),
	  "Forward sinks: the name the upstream's certificate must carry (subjectAltName "
	  "DNS name, or its common name without one), also sent as the TLS server name "
	  "(SNI). Empty: the upstream's IP address, which the certificate must then carry "
	  "as an IP subjectAltName. Listeners do not use it." },
	{ "min_protocol", CS_TLS, CT_ENUM, "TLSv1.2", 0, 0, "TLSv1.2|TLSv1.3", 1, T(min_protocol),
	  "The oldest TLS version accepted. TLS 1.3 is always offered; SSL 3, TLS 1.0 and "
	  "TLS 1.1 never are." },
	{ "ciphers", CS_TLS, CT_STRING, "ECDHE+AESGCM:ECDHE+CHACHA20", 0, 0, NULL, 1, T(ciphers),
	  "TLS 1.2 cipher suites, in OpenSSL's cipher list syntax (ciphers(1)). The default "
	  "keeps forward-secret AEAD suites only." },
	{ "ciphersuites", CS_TLS, CT_STRING,
	  "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256", 0, 0, NULL,
	  1, T(ciphersuites),
	  "TLS 1.3 cipher suites, colon-separated, in order of preference." },
	{ "handshake_timeout", CS_TLS, CT_SECONDS, "5", 0, 3600, NULL, 1, T(handshake_timeout_ms),
	  "A client must finish its TLS handshake within this many seconds of connecting (or of "
	  "its PROXY header), or it is closed and counted "
	  "(ingestd_tls_handshake_failures_total, reason handshake_timeout); 0: no limit. "
	  "Stops clients that open connections and never finish a handshake. Forward sinks: "
	  "an upstream that does not finish the handshake in time counts as failed." },
	{ "name", CS_SINK, CT_STRING, NULL, 0, 0, NULL, 1, S(name),
	  "Required. Name of the sink, used in listeners' sinks and in log messages. "
	  "Names are unique." },
	{ "type", CS_SINK, CT_ENUM, "file", 0, 0, "file|stdout|forward|redis|nats", 1,
	  S(type),
	  "\"file\": append to path. \"stdout\": write to standard output (with -f). "
	  "\"forward\": send to upstream collectors over TCP (another ingestd, rsyslog, "
	  "syslog-ng...). \"redis\": append each event to a Redis Stream (XADD) on the "
	  "one server in upstreams, over plain TCP: Debian 12's hiredis (0.14) has no TLS, so "
	  "keep Redis on the same host or a private network, or put a TLS tunnel in front. "
	  "\"nats\": publish each event to a NATS JetStream stream on the cluster of servers, "
	  "on subject, and wait for the stream's acknowledgement (see SCALING OUT in "
	  "ingestd(8))." },
	{ "path", CS_SINK, CT_STRING, "ingestd-events.jsonl", 0, 0, NULL, 1, S(path),
	  "File the events are appended to, one JSON object per line. strftime(3) "
	  "patterns such as %Y%m%d in the file name are expanded in UTC when a batch is "
	  "written, which rotates the file by time; the directory has none, and must "
	  "exist and be writable by user when the configuration is loaded (-t, start, "
	  "reload). A relative path is relative to the directory ingestd was started "
	  "in. Every worker appends whole lines to the same file." },
	{ "flush_interval", CS_SINK, CT_SECONDS, "0", 0, 60, NULL, 1, S(flush_interval_ms),
	  "Events are written in batches: when 256 KiB are waiting, and at the latest "
	  "this many seconds after the first event of a batch. With 0, a batch is "
	  "written at the end of each turn of the worker's event loop with what that "
	  "turn read: a record is in the sink a fraction of a millisecond after it "
	  "arrived, and batches grow with the load by themselves. A larger value "
	  "means fewer, larger writes under moderate load (about a sixth less CPU per "
	  "record at 30,000 records/s over 1,000 connections) for that much latency." },
	{ "sync", CS_SINK, CT_ENUM, "none", 0, 0, "none|interval|always", 1, S(sync),
	  "When written data is forced to disk with fdatasync(2): never (\"none\", the "
	  "kernel decides), after the batches of each flush_interval (\"interval\"), or "
	  "after every batch (\"always\")." },
	{ "queue", CS_SINK, CT_SIZE, "16M", 64 * KIB, 4 * GIB, NULL, 1, S(queue),
	  "Bytes of events a worker holds for this sink while they cannot be written "
	  "(a slow or full disk). When the queue is full, see overflow." },
	{ "overflow", CS_SINK, CT_ENUM, "block", 0, 0, "block|drop", 1, S(overflow),
	  "What a full queue does: \"block\" stops reading from the worker's clients "
	  "(TCP flow control pushes back on them) until half the queue is written; "
	  "\"drop\" discards new events and counts them." },
	{ "upstreams", CS_SINK, CT_NAMES, "", 0, 0, NULL, 1, S(upstreams),
	  "A forward sink's collectors: \"IPv4:port\", \"[IPv6]:port\" or unix socket "
	  "paths, e.g. [ \"10.0.0.5:5514\", \"10.0.0.6:5514\" ]. Each worker connects "
	  "when it first has events to send, and again after a failure, waiting 100 ms "
	  "doubling to 5 s (with jitter) while every upstream fails." },
	{ "mode", CS_SINK, CT_ENUM, "failover", 0, 0, "failover|roundrobin", 1, S(mode),
	  "\"failover\": send to the first upstream that accepts a connection and stay "
	  "with it until it fails. \"roundrobin\": send each batch to the next upstream." },
	{ "framing", CS_SINK, CT_ENUM, "lf", 0, 0, "lf|octet-counted", 1, S(framing),
	  "How a forward sink frames what it sends: one per line (\"lf\"), or RFC 6587 "
	  "octet counting (\"LEN SP MSG\")." },
	{ "payload", CS_SINK, CT_ENUM, "event", 0, 0, "event|record|rfc5424", 1, S(payload),
	  "What a file, stdout or forward sink writes: the JSON event (shaped by fields, "
	  "drop_fields, rename and static_fields), the record as it was received (a relay, "
	  "or an archive of originals), or an RFC 5424 line rebuilt from the event, for "
	  "collectors that want syslog (TEMPLATES in ingestd.conf(5)). redis and nats sinks write "
	  "events." },
	{ "fields", CS_SINK, CT_NAMES, "", 0, 0, NULL, 1, S(fields),
	  "The event's fields this sink writes, in the event's order, e.g. [ \"received_at\", "
	  "\"host\", \"msg\" ]; empty: all of them." },
	{ "drop_fields", CS_SINK, CT_NAMES, "", 0, 0, NULL, 1, S(drop_fields),
	  "The event's fields this sink leaves out, e.g. [ \"peer\", \"sd\" ]." },
	{ "rename", CS_SINK, CT_NAMES, "", 0, 0, NULL, 1, S(rename),
	  "Fields written under another name, as \"old=new\", e.g. [ \"msg=message\" ]." },
	{ "static_fields", CS_SINK, CT_NAMES, "", 0, 0, NULL, 1, S(static_fields),
	  "Fields with a fixed text added at the end of each event, as \"name=value\", e.g. "
	  "[ \"env=prod\", \"dc=fra1\" ]." },
	{ "protocol", CS_SINK, CT_ENUM, "tcp", 0, 0, "tcp|relp", 1, S(protocol),
	  "How a forward sink talks to its upstreams. \"tcp\": a stream of records, cut by "
	  "framing; an event leaves the queue once the kernel took it, so what an upstream "
	  "that dies had not read is lost. \"relp\": RELP (another ingestd's or rsyslog's "
	  "imrelp RELP listener): an event leaves the queue, and counts as written for the "
	  "answers of RELP listeners, only once the upstream answered it; what was not "
	  "answered when a connection ends is sent again on the next (the upstream may get "
	  "an event twice, counted in ingestd_sink_resent_total, never none). framing does "
	  "not apply." },
	{ "relp_window", CS_SINK, CT_INT, "1024", 1, 65536, NULL, 1, S(relp_window),
	  "protocol = \"relp\": how many events a worker sends without their answers; a "
	  "larger window keeps a distant upstream busy." },
	{ "stream", CS_SINK, CT_STRING, "ingestd", 0, 0, NULL, 1, S(stream),
	  "A nats sink: the name of the JetStream stream that captures subject; each worker "
	  "looks at it when it connects and logs whether it does (creating it is the "
	  "operator's, see SCALING OUT in ingestd(8)). A redis sink: its stream key, e.g. \"logs:${host}\": ${field} is the event's own "
	  "top-level field (a JSON record's fields are under body, an SD parameter under sd: "
	  "neither counts), a string with its escapes undone (\\u0000 is a NUL byte: keys "
	  "are binary-safe), another value as its JSON text, nothing when the event has no "
	  "such field. A key is cut at 256 bytes. Each value makes its own stream, and a "
	  "sender chooses its host, app and msg, and the port in its peer: as many streams "
	  "as it likes, each costing Redis memory (maxlen bounds a stream's length, not "
	  "their number). Take fields a sender cannot choose (listener), or confine the keys with "
	  "a Redis ACL key pattern (~logs:*) for the user ingestd connects as: a key it "
	  "refuses is an event dropped." },
	{ "maxlen", CS_SINK, CT_INT, "0", 0, 2000000000, NULL, 1, S(maxlen),
	  "A redis sink trims each stream to about this many entries (XADD MAXLEN ~); "
	  "0: no trimming." },
	{ "servers", CS_SINK, CT_NAMES, "", 0, 0, NULL, 1, S(servers),
	  "A nats sink's servers: one or more URLs, \"nats://host:port\" (or "
	  "\"tls://host:port\", which asks for TLS like a tls group), e.g. "
	  "[ \"nats://10.0.0.7:4222\", \"nats://10.0.0.8:4222\" ]. Each worker connects to "
	  "one of them at random and learns the cluster's other members from it; when its "
	  "server goes away it connects to another, forever, 250 ms apart (with jitter). "
	  "A server that stops answering is given up after two missed pings, a second apart. "
	  "A tls group applies as on a forward sink (ca_file, certificate, key, server_name, "
	  "verify, the ciphers), but the workers read its files when they connect (the NATS "
	  "client library loads them), so they must be readable by user." },
	{ "subject", CS_SINK, CT_STRING, "ingestd", 0, 0, NULL, 1, S(subject),
	  "A nats sink's subject, e.g. \"logs.${host}\": ${field} as in a redis sink's "
	  "stream, where a value's characters that a subject may not carry (white space, "
	  "\"*\", \">\", control characters) become \"_\" and an empty value or token "
	  "becomes \"_\"; a dot in a value makes more tokens (host \"a.example\": "
	  "logs.a.example). A subject is cut at 256 bytes. The stream must capture every "
	  "subject made (\"logs.>\"): an event no stream takes is sent again until one does." },
	{ "user", CS_SINK, CT_STRING, "", 0, 0, NULL, 1, S(auth_user),
	  "A nats sink's user name, with password, for servers that authenticate users. At "
	  "most one of user, token and credentials is set." },
	{ "password", CS_SINK, CT_STRING, "", 0, 0, NULL, 1, S(password),
	  "The password of user. Keep the configuration file readable by root only when it "
	  "holds one." },
	{ "token", CS_SINK, CT_STRING, "", 0, 0, NULL, 1, S(token),
	  "A nats sink's authentication token, for servers that authenticate by token." },
	{ "credentials", CS_SINK, CT_STRING, "", 0, 0, NULL, 1, S(credentials),
	  "A nats sink's credentials file (a user JWT and its NKey seed, as nsc(1) writes "
	  "it), for servers in operator mode. The workers read it at each connection, so "
	  "it must be readable by user." },
	{ "max_pending", CS_SINK, CT_INT, "4096", 1, 65536, NULL, 1, S(max_pending),
	  "A nats sink: how many events a worker publishes without their acknowledgements. "
	  "When that many wait, the rest stay in the queue (and a full queue applies overflow)." },
	{ "publish_timeout", CS_SINK, CT_SECONDS, "5", 1, 3600, NULL, 1,
	  S(publish_timeout_ms),
	  "A nats sink: an event whose acknowledgement has not come this many seconds after "
	  "it was published is published again, under the same message id (Nats-Msg-Id), so "
	  "that the stream keeps one copy (within its duplicate window, 2 minutes by default)." },
	{ "path", CS_SPOOL, CT_STRING, "", 0, 0, NULL, 1, P(path),
	  "Required. The directory of the sink's spool: one per sink, existing, and writable by "
	  "the workers' user (checked when the configuration is loaded). Each worker keeps its "
	  "own segment files and ledger there; see SPOOL in ingestd(8) for what they are and "
	  "how to inspect or discard them." },
	{ "max_size", CS_SPOOL, CT_SIZE, "1G", 1 * MIB, 1024 * GIB, NULL, 1, P(max_size),
	  "Bytes of segment files the sink's workers together may keep. A full spool (or a "
	  "full disk) is a full queue: the sink's overflow applies, block or drop." },
	{ "sync", CS_SPOOL, CT_ENUM, "always", 0, 0, "always|none", 1, P(sync),
	  "\"always\": what a turn of a worker's loop spooled is forced to disk with one "
	  "fdatasync(2) before it counts as written (the answers of RELP listeners wait for "
	  "it), so an answered record survives a power cut. \"none\": written is enough; "
	  "what the kernel had not written when the machine stops is lost, a crash of "
	  "ingestd loses nothing." },
	{ "name", CS_ROUTE, CT_STRING, NULL, 0, 0, NULL, 1, R(name),
	  "Required. Name of the route, unique: its events are counted under it "
	  "(ingestd_route_matched_total{route=\"name\"})." },
	{ "listeners", CS_ROUTE, CT_NAMES, "", 0, 0, NULL, 1, R(listeners),
	  "Names of the listeners whose events the route looks at; empty means every "
	  "listener." },
	{ "match", CS_ROUTE, CT_STRING, "", 0, 0, NULL, 1, R(match),
	  "The condition an event must meet, e.g. \"severity <= warning and app == sshd\" "
	  "(the language: ROUTING in ingestd.conf(5)); checked by ingestd -t. Empty: every "
	  "event." },
	{ "sinks", CS_ROUTE, CT_NAMES, "", 0, 0, NULL, 1, R(sinks),
	  "Names of the sinks the events it matches go to. Required unless drop is true." },
	{ "drop", CS_ROUTE, CT_BOOL, "false", 0, 0, NULL, 1, R(drop),
	  "true: the events it matches go no further (the routes after it do not see them, "
	  "and they reach only the sinks of routes before it that fell through), counted "
	  "in ingestd_route_matched_total." },
	{ "final", CS_ROUTE, CT_BOOL, "true", 0, 0, NULL, 1, R(final),
	  "true: an event it matches is not looked at by the routes after it. false: it "
	  "falls through, and the next routes that match add their sinks." },
	{ NULL, 0, 0, NULL, 0, 0, NULL, 0, 0, NULL }
};

const char *const cfg_scope_names[CS_COUNT] = {
	"", "log", "stats", "listeners", "tls", "sinks", "spool", "routes"
};

const char cfg_embedded[] =
    "pid_file = \"ingestd.pid\";\n"
    "listeners = ( { name = \"default\"; listen = \"127.0.0.1:5514\"; } );\n"
    "sinks = ( { name = \"default\"; type = \"file\"; path = \"ingestd-events.jsonl\"; } );\n";

struct ctx {
	const char	*file;
	char		*err;
	size_t		 errlen;
};

/*
 * Where a message about a setting points: "file:line: setting: why", or
 * "file: setting: why" at the file as a whole when where is NULL (a setting
 * missing altogether has no line).  libconfig knows the file of each
 * setting, so messages about @include files name that file.
 */
static void
locate(const struct ctx *c, const config_setting_t *where, const char *setting, const char *why,
    char *buf, size_t size)
{
	const char *file = where ? config_setting_source_file(where) : NULL;
	int line = where ? config_setting_source_line(where) : 0;

	if (file == NULL)
		file = c->file;
	if (line > 0)
		snprintf(buf, size, "%s:%d: %s: %s", file, line, setting, why);
	else
		snprintf(buf, size, "%s: %s: %s", file, setting, why);
}

/* An error at a setting: loading stops. */
static int
fail(struct ctx *c, const config_setting_t *where, const char *setting, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	locate(c, where, setting, why, c->err, c->errlen);
	return -1;
}

/* A setting that is valid but does nothing here: said once, where it is, and loading goes on. */
static void
warn_at(struct ctx *c, const config_setting_t *where, const char *setting, const char *why)
{
	char text[1024];

	locate(c, where, setting, why, text, sizeof(text));
	log_warnx("%s", text);
}

static int
enum_index(const char *choices, const char *word)
{
	size_t n = strlen(word);
	int i = 0;

	for (const char *p = choices; *p; i++) {
		size_t len = strcspn(p, "|");

		if (len == n && strncmp(p, word, n) == 0)
			return i;
		p += len + (p[len] == '|');
	}
	return -1;
}

static const char *
enum_word(const char *choices, int index, char *buf, size_t size)
{
	const char *p = choices;
	size_t len;

	while (index-- > 0)
		p += strcspn(p, "|") + 1;
	len = strcspn(p, "|");
	snprintf(buf, size, "%.*s", (int)len, p);
	return buf;
}

static void
store_string(void *field, const char *s)
{
	char **dst = field;

	free(*dst);
	if ((*dst = strdup(s)) == NULL)
		fatal("strdup");
}

static int
set_int(struct ctx *c, const struct cfg_setting *s, void *field, long v,
    const config_setting_t *where, const char *name)
{
	if (v < s->min || v > s->max)
		return fail(c, where, name, "must be from %ld to %ld", s->min, s->max);
	*(int *)field = (int)v;
	return 0;
}

static int
set_seconds(struct ctx *c, const struct cfg_setting *s, void *field, double v,
    const config_setting_t *where, const char *name)
{
	if (!(v >= s->min && v <= s->max))
		return fail(c, where, name, "must be from %ld to %ld seconds", s->min, s->max);
	*(long *)field = (long)(v * 1000 + 0.5);
	return 0;
}

static int
set_enum(struct ctx *c, const struct cfg_setting *s, void *field, const char *word,
    const config_setting_t *where, const char *name)
{
	int i = enum_index(s->choices, word);

	if (i == -1)
		return fail(c, where, name, "\"%s\" is not one of %s", word, s->choices);
	*(int *)field = i;
	return 0;
}

static int
set_listen(struct ctx *c, void *field, const char *text, const config_setting_t *where,
    const char *name)
{
	struct cfg_addr *a = field;
	const char *why;

	if (addr_parse(text, &a->addr, &why) == -1)
		return fail(c, where, name, "\"%s\": %s", text, why);
	store_string(&a->text, text);
	return 0;
}

/* "65536", "64K", "16M", "1G": binary multiples. */
static int
parse_size(const char *text, long *v)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(text, &end, 10);
	if (errno || end == text || n < 0)
		return -1;
	switch (*end) {
	case 'K': case 'k': n = n > LONG_MAX / KIB ? -1 : n * KIB; end++; break;
	case 'M': case 'm': n = n > LONG_MAX / MIB ? -1 : n * MIB; end++; break;
	case 'G': case 'g': n = n > LONG_MAX / GIB ? -1 : n * GIB; end++; break;
	}
	if (*end != '\0' || n < 0)
		return -1;
	*v = n;
	return 0;
}

static int
set_size(struct ctx *c, const struct cfg_setting *s, void *field, config_setting_t *v,
    const char *name)
{
	int t = config_setting_type(v);
	long n;

	if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
		n = config_setting_get_int64(v);
	else if (t != CONFIG_TYPE_STRING || parse_size(config_setting_get_string(v), &n) == -1)
		return fail(c, v, name, "expected %s", cfg_type_name(s));
	if (n < s->min || n > s->max)
		return fail(c, v, name, "must be from %ld to %ld bytes", s->min, s->max);
	*(long *)field = n;
	return 0;
}

static void
free_names(struct cfg_names *nm)
{
	for (int i = 0; i < nm->n; i++)
		free(nm->v[i]);
	free(nm->v);
	nm->v = NULL;
	nm->n = 0;
}

static int
set_names(struct ctx *c, const struct cfg_setting *s, void *field, config_setting_t *v,
    const char *name)
{
	struct cfg_names *nm = field;
	int n;

	if (!config_setting_is_array(v) && !config_setting_is_list(v))
		return fail(c, v, name, "expected %s", cfg_type_name(s));
	free_names(nm);
	n = config_setting_length(v);
	if ((nm->v = calloc(n + 1, sizeof(*nm->v))) == NULL)
		fatal("calloc");
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(v, i);

		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return fail(c, e, name, "expected %s", cfg_type_name(s));
		nm->n = i + 1;
		store_string(&nm->v[i], config_setting_get_string(e));
	}
	return 0;
}

static int
set_workers(struct ctx *c, const struct cfg_setting *s, struct config *cf, long v,
    const config_setting_t *where, const char *name)
{
	cf->workers_auto = 0;
	return set_int(c, s, &cf->workers, v, where, name);
}

static const char *const type_names[] = {
	[CT_INT] = "an integer", [CT_SECONDS] = "a number of seconds",
	[CT_STRING] = "a string", [CT_ENUM] = "a string", [CT_WORKERS] = "\"auto\" or an integer",
	[CT_LISTEN] = "an address string", [CT_SIZE] = "a size (65536, \"64K\", \"16M\", \"1G\")",
	[CT_NAMES] = "a list of strings", [CT_BOOL] = "true or false",
};

const char *
cfg_type_name(const struct cfg_setting *s)
{
	return type_names[s->type];
}

/* Store one value read from the file, checking its type and range. */
static int
set_from_file(struct ctx *c, const struct cfg_setting *s, void *base, config_setting_t *v,
    const char *name)
{
	int t = config_setting_type(v);
	void *field = (char *)base + s->offset;
	int is_int = t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;

	switch (s->type) {
	case CT_INT:
		if (is_int)
			return set_int(c, s, field, config_setting_get_int64(v), v, name);
		break;
	case CT_SECONDS:
		if (is_int || t == CONFIG_TYPE_FLOAT)
			return set_seconds(c, s, field, is_int ? (double)config_setting_get_int64(v) :
			    config_setting_get_float(v), v, name);
		break;
	case CT_WORKERS:
		if (is_int)
			return set_workers(c, s, base, config_setting_get_int64(v), v, name);
		if (t == CONFIG_TYPE_STRING && strcmp(config_setting_get_string(v), "auto") == 0) {
			((struct config *)base)->workers_auto = 1;
			return 0;
		}
		break;
	case CT_STRING:
		if (t != CONFIG_TYPE_STRING)
			break;
		if (strlen(config_setting_get_string(v)) > CFG_STRING_MAX)
			return fail(c, v, name, "longer than %d bytes", CFG_STRING_MAX);
		store_string(field, config_setting_get_string(v));
		return 0;
	case CT_ENUM:
		if (t == CONFIG_TYPE_STRING)
			return set_enum(c, s, field, config_setting_get_string(v), v, name);
		break;
	case CT_LISTEN:
		if (t == CONFIG_TYPE_STRING)
			return set_listen(c, field, config_setting_get_string(v), v, name);
		break;
	case CT_SIZE:
		return set_size(c, s, field, v, name);
	case CT_NAMES:
		return set_names(c, s, field, v, name);
	case CT_BOOL:
		if (t == CONFIG_TYPE_BOOL) {
			*(int *)field = config_setting_get_bool(v);
			return 0;
		}
		break;
	}
	return fail(c, v, name, "expected %s", cfg_type_name(s));
}

/* Store a setting's default; the table's defaults are known to be valid. */
static void
set_default(const struct cfg_setting *s, void *base)
{
	void *field = (char *)base + s->offset;

	switch (s->type) {
	case CT_INT:
		*(int *)field = atoi(s->def);
		break;
	case CT_SECONDS:
		*(long *)field = (long)(strtod(s->def, NULL) * 1000);
		break;
	case CT_WORKERS:
		((struct config *)base)->workers_auto = 1;
		break;
	case CT_STRING:
		store_string(field, s->def);
		break;
	case CT_ENUM:
		*(int *)field = enum_index(s->choices, s->def);
		break;
	case CT_SIZE:
		parse_size(s->def, (long *)field);
		break;
	case CT_BOOL:
		*(int *)field = strcmp(s->def, "true") == 0;
		break;
	case CT_LISTEN:
	case CT_NAMES:
		break;
	}
}

static int
is_known(enum cfg_scope scope, const char *name)
{
	for (const struct cfg_setting *s = cfg_settings; s->name; s++)
		if (s->scope == scope && strcmp(s->name, name) == 0)
			return 1;
	return 0;
}

/* The groups inside a scope's group, which have their own scopes. */
static int
is_subgroup(enum cfg_scope scope, const char *name)
{
	static const struct { enum cfg_scope scope; const char *name; } sub[] = {
		{ CS_MAIN, "log" }, { CS_MAIN, "stats" }, { CS_MAIN, "listeners" },
		{ CS_MAIN, "sinks" }, { CS_LISTENER, "tls" }, { CS_SINK, "tls" },
		{ CS_SINK, "spool" }, { CS_MAIN, "routes" },
	};

	for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++)
		if (sub[i].scope == scope && strcmp(sub[i].name, name) == 0)
			return 1;
	return 0;
}

/* Every setting of a scope at its default (those without one are left alone). */
static void
set_defaults(enum cfg_scope scope, void *base)
{
	for (const struct cfg_setting *s = cfg_settings; s->name; s++)
		if (s->scope == scope && s->def != NULL)
			set_default(s, base);
}

/*
 * Fill base from one group of the file: reject names the table does not
 * know, then set every setting of the scope from the file or its default.
 */
static int
load_group(struct ctx *c, config_setting_t *group, enum cfg_scope scope, void *base,
    const char *prefix)
{
	char name[128];
	int n = group ? config_setting_length(group) : 0;

	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(group, i);

		if (is_subgroup(scope, e->name))
			continue;
		if (!is_known(scope, e->name)) {
			snprintf(name, sizeof(name), "%s%s", prefix, e->name);
			return fail(c, e, name, "unknown setting");
		}
	}
	for (const struct cfg_setting *s = cfg_settings; s->name; s++) {
		config_setting_t *v;

		if (s->scope != scope)
			continue;
		snprintf(name, sizeof(name), "%s%s", prefix, s->name);
		v = group ? config_setting_get_member(group, s->name) : NULL;
		if (v != NULL) {
			if (set_from_file(c, s, base, v, name) == -1)
				return -1;
		} else if (s->def != NULL) {
			set_default(s, base);
		} else {
			return fail(c, group, name, "required setting is missing");
		}
	}
	return 0;
}

/*
 * Load a list of groups ("listeners", "sinks") into an array of elements
 * of size elsize, each filled from the table's scope.
 */
static int
load_list(struct ctx *c, config_setting_t *list, const char *what, const char *noun,
    enum cfg_scope scope, size_t elsize, int max, void **array, int *count)
{
	int n;

	if (!config_setting_is_list(list) && !config_setting_is_array(list))
		return fail(c, list, what, "expected a list: ( { ... }, { ... } )");
	if ((n = config_setting_length(list)) == 0)
		return fail(c, list, what, "at least one %s is required", noun);
	if (n > max)
		return fail(c, list, what, "at most %d %ss", max, noun);
	if ((*array = calloc(n, elsize)) == NULL)
		fatal("calloc");
	for (int i = 0; i < n; i++) {
		config_setting_t *g = config_setting_get_elem(list, i);
		char prefix[32];

		*count = i + 1;
		snprintf(prefix, sizeof(prefix), "%s[%d].", what, i);
		if (!config_setting_is_group(g))
			return fail(c, g, what, "expected a group { ... } for each %s", noun);
		if (load_group(c, g, scope, (char *)*array + i * elsize, prefix) == -1)
			return -1;
	}
	return 0;
}

/*
 * The tls group of what[i] (a listener's or a sink's), or the defaults
 * without one.  A sink verifies its upstream unless told not to.
 */
static int
load_tls(struct ctx *c, config_setting_t *g, const char *what, int i, struct tls_cfg *t)
{
	config_setting_t *tls = g ? config_setting_get_member(g, "tls") : NULL;
	char prefix[48];

	snprintf(prefix, sizeof(prefix), "%s[%d].tls.", what, i);
	if (tls == NULL) {
		set_defaults(CS_TLS, t);
		return 0;
	}
	if (!config_setting_is_group(tls))
		return fail(c, tls, prefix, "expected a group { certificate = ...; }");
	if (load_group(c, tls, CS_TLS, t, prefix) == -1)
		return -1;
	if (strcmp(what, "sinks") == 0 && config_setting_get_member(tls, "verify") == NULL)
		t->verify = VERIFY_REQUIRED;
	t->enabled = 1;
	return 0;
}

/* The spool group of sinks[i], or none. */
static int
load_spool(struct ctx *c, config_setting_t *g, int i, struct spool_cfg *sp)
{
	config_setting_t *spool = g ? config_setting_get_member(g, "spool") : NULL;
	char prefix[48];

	set_defaults(CS_SPOOL, sp);
	if (spool == NULL)
		return 0;
	snprintf(prefix, sizeof(prefix), "sinks[%d].spool.", i);
	if (!config_setting_is_group(spool))
		return fail(c, spool, prefix, "expected a group { path = ...; }");
	if (load_group(c, spool, CS_SPOOL, sp, prefix) == -1)
		return -1;
	sp->enabled = 1;
	return 0;
}

static int
load_listeners(struct ctx *c, struct config *cf, config_setting_t *list)
{
	if (list == NULL)
		return fail(c, NULL, "listeners", "at least one listener is required");
	if (load_list(c, list, "listeners", "listener", CS_LISTENER, sizeof(*cf->listeners), CFG_MAX_LISTENERS,
	    (void **)&cf->listeners, &cf->nlisteners) == -1)
		return -1;
	for (int i = 0; i < cf->nlisteners; i++) {
		struct listener_cfg *l = &cf->listeners[i];

		if (l->name[0] == '\0')
			store_string(&l->name, l->listen.text);
		if (load_tls(c, config_setting_get_elem(list, i), "listeners", i, &l->tls) == -1)
			return -1;
	}
	return 0;
}

/* Without a sinks list, events go to one file sink named "default". */
static int
load_sinks(struct ctx *c, struct config *cf, config_setting_t *list)
{
	if (list != NULL) {
		if (load_list(c, list, "sinks", "sink", CS_SINK, sizeof(*cf->sinks), CFG_MAX_SINKS,
		    (void **)&cf->sinks, &cf->nsinks) == -1)
			return -1;
		for (int i = 0; i < cf->nsinks; i++)
			if (load_tls(c, config_setting_get_elem(list, i), "sinks", i,
			    &cf->sinks[i].tls) == -1 ||
			    load_spool(c, config_setting_get_elem(list, i), i, &cf->sinks[i].spool) == -1)
				return -1;
		return 0;
	}
	if ((cf->sinks = calloc(1, sizeof(*cf->sinks))) == NULL)
		fatal("calloc");
	cf->nsinks = 1;
	set_defaults(CS_SINK, &cf->sinks[0]);
	set_defaults(CS_TLS, &cf->sinks[0].tls);
	set_defaults(CS_SPOOL, &cf->sinks[0].spool);
	store_string(&cf->sinks[0].name, "default");
	return 0;
}


/*
 * Whether a subject (or a subject template: its ${field}s are taken as
 * tokens) may be published to: tokens cut by dots, none empty, no white
 * space and no wildcard.
 */
static const char *
subject_error(const char *t)
{
	if (*t == '\0')
		return "a subject is needed";
	if (*t == '.' || t[strlen(t) - 1] == '.' || strstr(t, "..") != NULL)
		return "a subject's tokens (between dots) may not be empty";
	for (; *t; t++) {
		if (t[0] == '$' && t[1] == '{' && strchr(t, '}') != NULL) {
			t = strchr(t, '}');
			continue;
		}
		if (*t == '*' || *t == '>')
			return "wildcards (* and >) subscribe, they cannot be published to";
		if ((unsigned char)*t <= ' ' || *t == 0x7f)
			return "a subject has no white space or control characters";
	}
	return NULL;
}

/* A nats sink's servers, subject, stream and authentication. */
static int
check_nats(struct ctx *c, const struct sink_cfg *s, const config_setting_t *g, int i)
{
	const char *why;
	char name[64];

	snprintf(name, sizeof(name), "sinks[%d].servers", i);
	if (s->servers.n == 0)
		return fail(c, g, name, "a nats sink needs at least one server");
	for (int k = 0; k < s->servers.n; k++) {
		const char *u = s->servers.v[k];

		if ((strncmp(u, "nats://", 7) != 0 && strncmp(u, "tls://", 6) != 0) ||
		    strchr(strstr(u, "//") + 2, ':') == NULL || strpbrk(u, " \t") != NULL)
			return fail(c, config_setting_get_member(g, "servers"), name, "\"%s\": a "
			    "server is a URL, nats://host:port or tls://host:port", u);
	}
	snprintf(name, sizeof(name), "sinks[%d].subject", i);
	if ((why = subject_error(s->subject)) != NULL)
		return fail(c, config_setting_get_member(g, "subject"), name, "\"%s\": %s",
		    s->subject, why);
	snprintf(name, sizeof(name), "sinks[%d].stream", i);
	if (s->stream[0] == '\0' || strpbrk(s->stream, ".*> \t/\\$") != NULL)
		return fail(c, config_setting_get_member(g, "stream"), name, "\"%s\": a JetStream "
		    "stream's name has no dots, wildcards, spaces, slashes or ${field}", s->stream);
	snprintf(name, sizeof(name), "sinks[%d].user", i);
	if (!!s->auth_user[0] + !!s->token[0] + !!s->credentials[0] > 1)
		return fail(c, g, name, "set one of user (and password), token and credentials");
	if (s->password[0] && !s->auth_user[0])
		return fail(c, g, name, "a password goes with a user");
	snprintf(name, sizeof(name), "sinks[%d].credentials", i);
	if (s->credentials[0] && access(s->credentials, F_OK) == -1)
		return fail(c, config_setting_get_member(g, "credentials"), name, "%s: %s",
		    s->credentials, strerror(errno));
	return 0;
}

/* text appended to *out (*len bytes so far). */
static void
append(char **out, size_t *len, const char *text)
{
	size_t n = strlen(text);
	char *p = realloc(*out, *len + n + 1);

	if (p == NULL)
		fatal("realloc");
	memcpy(p + *len, text, n + 1);
	*out = p;
	*len += n;
}

/*
 * s quoted into buf (size bytes; cut short before it would not fit): " and
 * backslash escaped, a control byte as ctl says (libconfig's \xNN, JSON's
 * \u00NN).
 */
static void
escape(const char *s, char *buf, size_t size, const char *ctl)
{
	size_t o = 0;

	buf[o++] = '"';
	for (; *s && o + 6 < size; s++) {
		unsigned char ch = *s;

		if (ch == '"' || ch == '\\')
			o += snprintf(buf + o, size - o, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			o += snprintf(buf + o, size - o, ctl, ch);
		else
			buf[o++] = ch;
	}
	buf[o++] = '"';
	buf[o] = '\0';
}

/* A field name or value as JSON string text (quotes included) appended to *out. */
static void
json_text(char **out, size_t *len, const char *s)
{
	size_t need = 6 * strlen(s) + 3;
	char *p = realloc(*out, *len + need);

	if (p == NULL)
		fatal("realloc");
	escape(s, p + *len, need, "\\u%04x");
	*out = p;
	*len += strlen(p + *len);
}

/* "a=b" into a and b (copies); -1 when either is empty. */
static int
split_pair(const char *text, char **a, char **b)
{
	const char *eq = strchr(text, '=');

	if (eq == NULL || eq == text || eq[1] == '\0')
		return -1;
	if ((*a = strndup(text, eq - text)) == NULL || (*b = strdup(eq + 1)) == NULL)
		fatal("strdup");
	return 0;
}

/*
 * A sink's template (fields, drop_fields, rename, static_fields): only for
 * events, and for sinks that write them as lines; the renames and static
 * fields resolved into what the pipeline writes.
 */
static int
check_template(struct ctx *c, struct sink_cfg *s, const config_setting_t *g, int i)
{
	char name[64];
	size_t n = 0;

	s->templated = s->fields.n || s->drop_fields.n || s->rename.n || s->static_fields.n;
	snprintf(name, sizeof(name), "sinks[%d].payload", i);
	if (s->payload != PAYLOAD_EVENT && (s->type == SINK_REDIS || s->type == SINK_NATS))
		return fail(c, config_setting_get_member(g, "payload"), name,
		    "redis and nats sinks write events");
	if (s->templated && s->payload != PAYLOAD_EVENT)
		return fail(c, config_setting_get_member(g, "payload"), name,
		    "fields, drop_fields, rename and static_fields shape events, not \"%s\"",
		    s->payload == PAYLOAD_RECORD ? "record" : "rfc5424");
	if (s->templated && (s->type == SINK_REDIS || s->type == SINK_NATS))
		return fail(c, g, name, "a template is for file, stdout and forward sinks");
	snprintf(name, sizeof(name), "sinks[%d].rename", i);
	if (s->rename.n && ((s->rename_from = calloc(s->rename.n, sizeof(char *))) == NULL ||
	    (s->rename_to = calloc(s->rename.n, sizeof(char *))) == NULL))
		fatal("calloc");
	for (int k = 0; k < s->rename.n; k++) {
		char *to = NULL;

		if (split_pair(s->rename.v[k], &s->rename_from[k], &to) == -1)
			return fail(c, config_setting_get_member(g, "rename"), name,
			    "\"%s\" is not \"old=new\"", s->rename.v[k]);
		json_text(&s->rename_to[k], &n, to);
		n = 0;
		free(to);
		s->template_extra += strlen(s->rename_to[k]) + 1;
	}
	snprintf(name, sizeof(name), "sinks[%d].static_fields", i);
	for (int k = 0; k < s->static_fields.n; k++) {
		char *key = NULL, *val = NULL;

		if (split_pair(s->static_fields.v[k], &key, &val) == -1)
			return fail(c, config_setting_get_member(g, "static_fields"), name,
			    "\"%s\" is not \"name=value\"", s->static_fields.v[k]);
		append(&s->statics, &n, ",");
		json_text(&s->statics, &n, key);
		append(&s->statics, &n, ":");
		json_text(&s->statics, &n, val);
		free(key);
		free(val);
	}
	s->template_extra += n;
	return 0;
}

static int
check_sinks(struct ctx *c, struct config *cf, const config_setting_t *list)
{
	for (int i = 0; i < cf->nsinks; i++) {
		struct sink_cfg *a = &cf->sinks[i];
		const config_setting_t *g = list ? config_setting_get_elem(list, i) : NULL;
		char name[64];

		snprintf(name, sizeof(name), "sinks[%d].path", i);
		if (a->type == SINK_FILE && a->path[0] == '\0')
			return fail(c, g, name, "a file sink needs a path");
		for (int j = 0; j < i; j++) {
			const struct sink_cfg *b = &cf->sinks[j];

			if (a->type == SINK_FILE && b->type == SINK_FILE && strcmp(a->path, b->path) == 0)
				return fail(c, g, name, "\"%s\" is already the path of sinks[%d]",
				    a->path, j);
			if (strcmp(a->name, b->name) == 0) {
				snprintf(name, sizeof(name), "sinks[%d].name", i);
				return fail(c, g, name, "\"%s\" is already the name of sinks[%d]",
				    a->name, j);
			}
		}
		snprintf(name, sizeof(name), "sinks[%d].protocol", i);
		if (a->protocol == PROTO_RELP && a->type != SINK_FORWARD)
			return fail(c, g, name, "protocol = \"relp\" is for forward sinks");
		if (a->type == SINK_NATS && check_nats(c, a, g, i) == -1)
			return -1;
		if (check_template(c, a, g, i) == -1)
			return -1;
	}
	return 0;
}

/* The index of the element named name of an array of n listeners or sinks (size bytes each). */
static int
name_index(const void *v, size_t size, size_t name_off, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(*(char *const *)((const char *)v + i * size + name_off), name) == 0)
			return i;
	return -1;
}

static int
sink_index(const struct config *cf, const char *name)
{
	return name_index(cf->sinks, sizeof(*cf->sinks), S(name), cf->nsinks, name);
}

/* What a sink's queue holds: octet-counted frames or lines, of events or records. */
static int
resolve_units(struct config *cf)
{
	for (int i = 0; i < cf->nsinks; i++) {
		struct sink_cfg *s = &cf->sinks[i];

		s->octet = s->type == SINK_FORWARD &&
		    (s->framing == FORWARD_OCTET || s->protocol == PROTO_RELP);
		s->raw = s->payload == PAYLOAD_RECORD;
		s->formatted = s->octet || s->raw || s->templated || s->payload == PAYLOAD_RFC5424;
	}
	return 0;
}

/* Turn each listener's sink names into indices; no names means every sink. */
static int
resolve_sinks(struct ctx *c, struct config *cf, const config_setting_t *list)
{
	for (int i = 0; i < cf->nlisteners; i++) {
		struct listener_cfg *l = &cf->listeners[i];
		const config_setting_t *g = config_setting_get_elem(list, i);
		const config_setting_t *where = config_setting_get_member(g, "sinks");
		char name[64];

		snprintf(name, sizeof(name), "listeners[%d].sinks", i);
		l->nsink_idx = 0;
		for (int k = 0; k < (l->sinks.n ? l->sinks.n : cf->nsinks); k++) {
			int idx = l->sinks.n ? sink_index(cf, l->sinks.v[k]) : k;

			if (idx == -1)
				return fail(c, where, name, "no sink is named \"%s\"", l->sinks.v[k]);
			for (int j = 0; j < l->nsink_idx; j++)
				if (l->sink_idx[j] == idx)
					return fail(c, where, name, "\"%s\" is listed twice",
					    l->sinks.v[k]);
			l->sink_idx[l->nsink_idx++] = idx;
			l->sinks_formatted |= cf->sinks[idx].formatted;
		}
	}
	return 0;
}

/* The routes list, if any (an empty one is as none). */
static int
load_routes(struct ctx *c, struct config *cf, config_setting_t *list)
{
	if (list == NULL || (config_setting_length(list) == 0 &&
	    (config_setting_is_list(list) || config_setting_is_array(list))))
		return 0;
	return load_list(c, list, "routes", "route", CS_ROUTE, sizeof(*cf->routes),
	    CFG_MAX_ROUTES, (void **)&cf->routes, &cf->nroutes);
}

/* idx into v[*n] unless it is there already. */
static void
add_index(int *v, int *n, int idx)
{
	for (int i = 0; i < *n; i++)
		if (v[i] == idx)
			return;
	v[(*n)++] = idx;
}

/* One route: its condition parsed, its sinks and listeners as indices. */
static int
resolve_route(struct ctx *c, struct config *cf, int i, const config_setting_t *g)
{
	struct route_cfg *r = &cf->routes[i];
	char name[64], why[600];

	snprintf(name, sizeof(name), "routes[%d].name", i);
	for (int k = 0; k < i; k++)
		if (strcmp(cf->routes[k].name, r->name) == 0)
			return fail(c, config_setting_get_member(g, "name"), name,
			    "\"%s\" is the name of routes[%d] too", r->name, k);
	snprintf(name, sizeof(name), "routes[%d].match", i);
	if (r->match[0] && (r->cond = cond_parse(r->match, why, sizeof(why))) == NULL)
		return fail(c, config_setting_get_member(g, "match"), name, "%s", why);
	snprintf(name, sizeof(name), "routes[%d].sinks", i);
	if (r->drop == (r->sinks.n > 0))
		return fail(c, g, name, r->drop ? "a route with drop = true has no sinks" :
		    "required: the sinks its events go to (or drop = true)");
	for (int k = 0; k < r->sinks.n; k++) {
		int idx = sink_index(cf, r->sinks.v[k]);

		if (idx == -1)
			return fail(c, config_setting_get_member(g, "sinks"), name,
			    "no sink is named \"%s\"", r->sinks.v[k]);
		add_index(r->sink_idx, &r->nsink_idx, idx);
	}
	snprintf(name, sizeof(name), "routes[%d].listeners", i);
	for (int k = 0; k < r->listeners.n; k++)
		if (name_index(cf->listeners, sizeof(*cf->listeners), L(name), cf->nlisteners,
		    r->listeners.v[k]) == -1)
			return fail(c, config_setting_get_member(g, "listeners"), name,
			    "no listener is named \"%s\"", r->listeners.v[k]);
	return 0;
}

static int
route_applies(const struct route_cfg *r, const struct listener_cfg *l)
{
	for (int k = 0; k < r->listeners.n; k++)
		if (strcmp(r->listeners.v[k], l->name) == 0)
			return 1;
	return r->listeners.n == 0;
}

/*
 * The routes, resolved; then for each listener the routes that look at its
 * events, and every sink those may reach (its own sinks, for events no
 * route takes, and the routes'): what a RELP answer waits for.
 */
static int
resolve_routes(struct ctx *c, struct config *cf, const config_setting_t *list)
{
	for (int i = 0; i < cf->nroutes; i++)
		if (resolve_route(c, cf, i, config_setting_get_elem(list, i)) == -1)
			return -1;
	for (int i = 0; i < cf->nlisteners; i++) {
		struct listener_cfg *l = &cf->listeners[i];

		l->nack_idx = 0;
		for (int k = 0; k < l->nsink_idx; k++)
			add_index(l->ack_idx, &l->nack_idx, l->sink_idx[k]);
		for (int r = 0; r < cf->nroutes; r++) {
			if (!route_applies(&cf->routes[r], l))
				continue;
			l->route_idx[l->nroute_idx++] = r;
			for (int k = 0; k < cf->routes[r].nsink_idx; k++) {
				int idx = cf->routes[r].sink_idx[k];

				add_index(l->ack_idx, &l->nack_idx, idx);
				l->sinks_formatted |= cf->sinks[idx].formatted;
			}
		}
	}
	return 0;
}

/* A forward sink's upstreams, as addresses. */
static int
resolve_upstreams(struct ctx *c, struct config *cf, const config_setting_t *sinks)
{
	for (int i = 0; i < cf->nsinks; i++) {
		struct sink_cfg *s = &cf->sinks[i];
		const config_setting_t *g;
		const char *why;
		char name[64];

		if (s->type != SINK_FORWARD && s->type != SINK_REDIS)
			continue;	/* (the default sink has no list element) */
		g = config_setting_get_elem(sinks, i);
		snprintf(name, sizeof(name), "sinks[%d].upstreams", i);
		if (s->upstreams.n == 0)
			return fail(c, g, name, "a %s sink needs at least one upstream",
			    s->type == SINK_REDIS ? "redis" : "forward");
		if (s->type == SINK_REDIS && s->upstreams.n > 1)
			return fail(c, g, name, "a redis sink has one server");
		if ((s->upstream_v = calloc(s->upstreams.n, sizeof(*s->upstream_v))) == NULL)
			fatal("calloc");
		for (s->nupstreams = 0; s->nupstreams < s->upstreams.n; s->nupstreams++)
			if (addr_parse_stream(s->upstreams.v[s->nupstreams],
			    &s->upstream_v[s->nupstreams], &why) == -1)
				return fail(c, config_setting_get_member(g, "upstreams"), name,
				    "\"%s\": %s", s->upstreams.v[s->nupstreams], why);
	}
	return 0;
}

static int
parse_cidrs(struct ctx *c, const struct cfg_names *nm, struct cidr **v, int *n,
    const config_setting_t *where, const char *name)
{
	const char *why;

	if ((*v = calloc(nm->n + 1, sizeof(**v))) == NULL)
		fatal("calloc");
	for (*n = 0; *n < nm->n; (*n)++)
		if (cidr_parse(nm->v[*n], &(*v)[*n], &why) == -1)
			return fail(c, where, name, "\"%s\": %s", nm->v[*n], why);
	return 0;
}

/* Turn each listener's allow and deny lists into address blocks. */
static int
resolve_acls(struct ctx *c, struct config *cf, const config_setting_t *list)
{
	for (int i = 0; i < cf->nlisteners; i++) {
		struct listener_cfg *l = &cf->listeners[i];
		const config_setting_t *g = config_setting_get_elem(list, i);
		char name[64];

		snprintf(name, sizeof(name), "listeners[%d].allow", i);
		if (parse_cidrs(c, &l->allow, &l->allow_v, &l->nallow,
		    config_setting_get_member(g, "allow"), name) == -1)
			return -1;
		snprintf(name, sizeof(name), "listeners[%d].deny", i);
		if (parse_cidrs(c, &l->deny, &l->deny_v, &l->ndeny,
		    config_setting_get_member(g, "deny"), name) == -1)
			return -1;
	}
	return 0;
}

/* Two unix sockets, of whatever type, cannot have one path. */
static int
same_unix_path(const struct addr *a, const struct addr *b)
{
	return a->ss.ss_family == AF_UNIX && b->ss.ss_family == AF_UNIX &&
	    strcmp(((const struct sockaddr_un *)&a->ss)->sun_path,
	    ((const struct sockaddr_un *)&b->ss)->sun_path) == 0;
}

/* Connection settings set on a datagram listener: said, and ignored. */
static void
warn_unused(struct ctx *c, const config_setting_t *g, int i)
{
	static const char *const conn_only[] = {
		"backlog", "accept_mode", "framing", "idle_timeout", "record_timeout",
		"send_timeout", "max_connections", "max_connections_per_ip", "ipv6_prefix",
	};
	char name[64];

	for (size_t k = 0; k < sizeof(conn_only) / sizeof(conn_only[0]); k++) {
		const config_setting_t *v = config_setting_get_member(g, conn_only[k]);

		if (v == NULL)
			continue;
		snprintf(name, sizeof(name), "listeners[%d].%s", i, conn_only[k]);
		warn_at(c, v, name, "does not apply to a datagram listener; ignored");
	}
}

/*
 * A unix socket's owner, group and mode (the settings socket_user,
 * socket_group and socket_mode of group g, named prefix.NAME in errors),
 * resolved; -1 where they stay as bind(2) made them, or perm for the mode.
 */
static int
socket_identity(struct ctx *c, struct sock_perm *sp, const config_setting_t *g,
    const char *prefix, int perm)
{
	struct passwd *pw = NULL;
	struct group *gr = NULL;
	char name[64], *end;
	long mode;

	sp->uid = sp->gid = -1;
	snprintf(name, sizeof(name), "%s.socket_user", prefix);
	if (sp->user[0] && (pw = getpwnam(sp->user)) == NULL)
		return fail(c, config_setting_get_member(g, "socket_user"), name,
		    "no such user \"%s\"", sp->user);
	if (sp->user[0])
		sp->uid = (int)pw->pw_uid;
	snprintf(name, sizeof(name), "%s.socket_group", prefix);
	if (sp->group[0] && (gr = getgrnam(sp->group)) == NULL)
		return fail(c, config_setting_get_member(g, "socket_group"), name,
		    "no such group \"%s\"", sp->group);
	if (sp->group[0])
		sp->gid = (int)gr->gr_gid;
	snprintf(name, sizeof(name), "%s.socket_mode", prefix);
	if (sp->mode[0] == '\0') {
		sp->perm = perm;
		return 0;
	}
	mode = strtol(sp->mode, &end, 8);
	if (*end != '\0' || mode < 0 || mode > 0777)
		return fail(c, config_setting_get_member(g, "socket_mode"), name,
		    "\"%s\" is not a mode from 0 to 0777 in octal", sp->mode);
	sp->perm = (int)mode;
	return 0;
}

/*
 * What a listener's transport allows: RELP and PROXY headers need a
 * stream; a UDP listener has a socket per worker (reuseport), a unixgram
 * one one socket that every worker reads.
 */
static int
check_transport(struct ctx *c, struct listener_cfg *l, const config_setting_t *g, int i)
{
	char name[64], prefix[32], why[512];

	l->datagram = l->listen.addr.type == SOCK_DGRAM;
	snprintf(prefix, sizeof(prefix), "listeners[%d]", i);
	if (socket_identity(c, &l->sock, g, prefix, l->datagram ? 0666 : -1) == -1)
		return -1;
	snprintf(name, sizeof(name), "listeners[%d].timezone", i);
	if (l->timezone[0] && (l->tz = tz_load(l->timezone, why, sizeof(why))) == NULL)
		return fail(c, config_setting_get_member(g, "timezone"), name, "%s", why);
	snprintf(name, sizeof(name), "listeners[%d].rate_burst", i);
	if ((l->rate_records > 0 || l->rate_bytes > 0) && l->rate_burst_ms == 0)
		return fail(c, config_setting_get_member(g, "rate_burst"), name,
		    "must be more than 0 with a rate limit");
	if (!l->datagram)
		return 0;
	snprintf(name, sizeof(name), "listeners[%d].rate_records", i);
	if (l->rate_records > 0 || l->rate_bytes > 0)
		return fail(c, g, name, "rate limits hold back streams; %s is a datagram listener",
		    l->listen.text);
	snprintf(name, sizeof(name), "listeners[%d].protocol", i);
	if (l->protocol != PROTO_TCP)
		return fail(c, config_setting_get_member(g, "protocol"), name,
		    "RELP needs a stream; %s is a datagram listener", l->listen.text);
	snprintf(name, sizeof(name), "listeners[%d].proxy_protocol", i);
	if (l->proxy_protocol)
		return fail(c, config_setting_get_member(g, "proxy_protocol"), name,
		    "PROXY headers come on streams; %s is a datagram listener", l->listen.text);
	warn_unused(c, g, i);
	l->accept_mode = l->listen.addr.ss.ss_family == AF_UNIX ? ACCEPT_SHARED : ACCEPT_REUSEPORT;
	return 0;
}

static int
check_listeners(struct ctx *c, struct config *cf, const config_setting_t *list)
{
	for (int i = 0; i < cf->nlisteners; i++) {
		struct listener_cfg *a = &cf->listeners[i];
		const config_setting_t *g = config_setting_get_elem(list, i);
		char name[64];

		if (check_transport(c, a, g, i) == -1)
			return -1;

		if (a->accept_mode == ACCEPT_REUSEPORT && a->listen.addr.ss.ss_family == AF_UNIX) {
			snprintf(name, sizeof(name), "listeners[%d].accept_mode", i);
			return fail(c, g, name, "reuseport needs a TCP address, not a unix socket");
		}
		for (int j = 0; j < i; j++) {
			const struct listener_cfg *b = &cf->listeners[j];

			if (addr_equal(&a->listen.addr, &b->listen.addr) ||
			    same_unix_path(&a->listen.addr, &b->listen.addr)) {
				snprintf(name, sizeof(name), "listeners[%d].listen", i);
				return fail(c, g, name, "%s is already used by listeners[%d]",
				    a->listen.text, j);
			}
			if (strcmp(a->name, b->name) == 0) {
				snprintf(name, sizeof(name), "listeners[%d].name", i);
				return fail(c, g, name, "\"%s\" is already the name of listeners[%d]",
				    a->name, j);
			}
		}
	}
	return 0;
}

/* A listener's tls group, beyond what its context checks: fingerprints, what verifies. */
static int
check_server_tls(struct ctx *c, const struct tls_cfg *t, const config_setting_t *tg, int i)
{
	const config_setting_t *v = config_setting_get_member(tg, "permitted_peers");
	unsigned char md[64];
	int mdlen, pins = 0;
	char name[64];

	snprintf(name, sizeof(name), "listeners[%d].tls.certificate", i);
	if (t->certificate[0] == '\0')
		return fail(c, tg, name, "a listener's tls group needs a certificate");
	snprintf(name, sizeof(name), "listeners[%d].tls.server_name", i);
	if (t->server_name[0])
		return fail(c, config_setting_get_member(tg, "server_name"), name,
		    "forward sinks only: a listener's name is in its certificate");
	snprintf(name, sizeof(name), "listeners[%d].tls.permitted_peers", i);
	for (int k = 0; k < t->permitted_peers.n; k++) {
		switch (tlsctx_fingerprint(t->permitted_peers.v[k], md, &mdlen)) {
		case 0:
			pins++;
			break;
		case -1:
			return fail(c, v, name, "\"%s\": a fingerprint is \"sha256:\" and 64 "
			    "hexadecimal digits, or \"sha1:\" and 40", t->permitted_peers.v[k]);
		}
	}
	snprintf(name, sizeof(name), "listeners[%d].tls.verify", i);
	if (t->verify != VERIFY_NONE && !t->ca_file[0] && !t->ca_dir[0] && pins == 0)
		return fail(c, config_setting_get_member(tg, "verify"), name, "client certificates "
		    "need ca_file, ca_dir or fingerprints in permitted_peers to verify against");
	return 0;
}

/* A sink's tls group: forward sinks only; an upstream is known by its name or address. */
static int
check_client_tls(struct ctx *c, const struct sink_cfg *s, const config_setting_t *tg, int i)
{
	char name[64];

	snprintf(name, sizeof(name), "sinks[%d].tls", i);
	if (s->type == SINK_REDIS)
		return fail(c, tg, name, "Debian 12's hiredis has no TLS: a redis sink connects in "
		    "clear text");
	if (s->type != SINK_FORWARD && s->type != SINK_NATS)
		return fail(c, tg, name, "only forward and nats sinks connect over TLS");
	if (s->type == SINK_NATS && (s->tls.key_passphrase_file[0] || s->tls.ca_dir[0] ||
	    s->tls.crl_file[0]))
		return fail(c, tg, name, "the NATS client library takes ca_file, certificate, key, "
		    "server_name, verify and the ciphers; not key_passphrase_file, ca_dir or crl_file");
	snprintf(name, sizeof(name), "sinks[%d].tls.permitted_peers", i);
	if (s->tls.permitted_peers.n)
		return fail(c, config_setting_get_member(tg, "permitted_peers"), name,
		    "listeners only: a sink checks its upstream's server_name");
	snprintf(name, sizeof(name), "sinks[%d].tls.server_name", i);
	for (int k = 0; k < s->nupstreams && s->tls.verify != VERIFY_NONE; k++)
		if (!s->tls.server_name[0] && s->upstream_v[k].ss.ss_family == AF_UNIX)
			return fail(c, tg, name, "upstream %s is a unix socket: name the certificate "
			    "it must carry", s->upstreams.v[k]);
	return 0;
}

/*
 * Each tls group's context, built now: -t then checks the certificates and
 * keys as the master will, and the master (as root) has them before it
 * forks the generation.
 */
static int
resolve_tls(struct ctx *c, struct config *cf, const config_setting_t *list,
    const config_setting_t *sinks)
{
	char name[48], why[512];

	for (int i = 0; i < cf->nlisteners; i++) {
		struct listener_cfg *l = &cf->listeners[i];
		const config_setting_t *tg = config_setting_get_member(config_setting_get_elem(list, i),
		    "tls");

		if (!l->tls.enabled)
			continue;
		snprintf(name, sizeof(name), "listeners[%d].tls", i);
		if (l->datagram)
			return fail(c, tg, name, "TLS needs a stream; %s is a datagram listener",
			    l->listen.text);
		if (check_server_tls(c, &l->tls, tg, i) == -1)
			return -1;
		if ((l->tls.ctx = tlsctx_server(&l->tls, why, sizeof(why))) == NULL)
			return fail(c, tg, name, "%s", why);
	}
	for (int i = 0; i < cf->nsinks; i++) {
		struct sink_cfg *s = &cf->sinks[i];
		const config_setting_t *tg;

		if (!s->tls.enabled)
			continue;
		tg = config_setting_get_member(config_setting_get_elem(sinks, i), "tls");
		snprintf(name, sizeof(name), "sinks[%d].tls", i);
		if (check_client_tls(c, s, tg, i) == -1)
			return -1;
		if ((s->tls.ctx = tlsctx_client(&s->tls, why, sizeof(why))) == NULL)
			return fail(c, tg, name, "%s", why);
	}
	return 0;
}

static int
check_identity(struct ctx *c, const struct config *cf, config_t *lc)
{
	config_setting_t *v;

	if (cf->user[0] && getpwnam(cf->user) == NULL) {
		v = config_lookup(lc, "user");
		return fail(c, v, "user",
		    "no such user \"%s\"", cf->user);
	}
	if (cf->group[0] && getgrnam(cf->group) == NULL) {
		v = config_lookup(lc, "group");
		return fail(c, v, "group",
		    "no such group \"%s\"", cf->group);
	}
	return 0;
}

/* Whether gid is the group of user (primary gid) or one of its other groups. */
static int
member_of(const char *user, gid_t primary, gid_t gid)
{
	gid_t groups[256];
	int n = 256;

	if (gid == primary)
		return 1;
	if (user == NULL || getgrouplist(user, primary, groups, &n) == -1)
		return 0;
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			return 1;
	return 0;
}

/*
 * Whether the workers, running as uid/gid (and user's other groups), may
 * create files in the directory st describes.  Access lists are not read:
 * with one, the sink finds out when it writes.
 */
static int
writable_by(const struct stat *st, uid_t uid, gid_t gid, const char *user)
{
	mode_t want;

	if (uid == 0)
		return 1;
	if (st->st_uid == uid)
		want = S_IWUSR | S_IXUSR;
	else if (member_of(user, gid, st->st_gid))
		want = S_IWGRP | S_IXGRP;
	else
		want = S_IWOTH | S_IXOTH;
	return (st->st_mode & want) == want;
}

/* The user and group the workers will run as (uid -1: the master's own). */
static void
workers_identity(const struct config *cf, uid_t *uid, gid_t *gid)
{
	struct passwd *pw = cf->user[0] ? getpwnam(cf->user) : NULL;
	struct group *gr = cf->group[0] ? getgrnam(cf->group) : NULL;

	*uid = geteuid();
	*gid = getegid();
	if (*uid != 0)
		return;		/* user and group apply only when started as root */
	if (pw) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
	}
	if (gr)
		*gid = gr->gr_gid;
}

/*
 * A file sink's directory must exist and take new files from the workers:
 * a sink that can never write is a mistake -t should show, not a queue
 * that fills at run time.  strftime patterns go in the file name only.
 */
/* dir exists, and the workers (uid, gid) may create files in it. */
static int
check_dir(struct ctx *c, const struct config *cf, const config_setting_t *where,
    const char *name, const char *dir, uid_t uid, gid_t gid)
{
	struct stat st;

	if (stat(dir, &st) == -1)
		return fail(c, where, name, "directory %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return fail(c, where, name, "%s is not a directory", dir);
	if (uid == geteuid() ? access(dir, W_OK | X_OK) == -1 :
	    !writable_by(&st, uid, gid, cf->user[0] ? cf->user : NULL))
		return fail(c, where, name, "directory %s: the workers (%s) may not create "
		    "files in it", dir, cf->user[0] && uid != geteuid() ? cf->user : "this user");
	return 0;
}

/* sinks[i]'s spool: a network sink's, in a directory of its own the workers may write. */
static int
check_spool(struct ctx *c, const struct config *cf, int i, const config_setting_t *g,
    uid_t uid, gid_t gid)
{
	const struct sink_cfg *s = &cf->sinks[i];
	const config_setting_t *sg = g ? config_setting_get_member(g, "spool") : NULL;
	const config_setting_t *where = sg ? config_setting_get_member(sg, "path") : NULL;
	char name[64];

	snprintf(name, sizeof(name), "sinks[%d].spool", i);
	if (s->type != SINK_FORWARD && s->type != SINK_REDIS && s->type != SINK_NATS)
		return fail(c, sg, name, "a spool is for forward, redis and nats sinks (a file is "
		    "its own)");
	snprintf(name, sizeof(name), "sinks[%d].spool.path", i);
	if (s->spool.path[0] == '\0')
		return fail(c, sg, name, "a spool needs a path (a directory)");
	for (int j = 0; j < i; j++)
		if (cf->sinks[j].spool.enabled && strcmp(cf->sinks[j].spool.path, s->spool.path) == 0)
			return fail(c, where, name, "\"%s\" is already the spool of sinks[%d]",
			    s->spool.path, j);
	return check_dir(c, cf, where ? where : sg, name, s->spool.path, uid, gid);
}

static int
check_sink_dirs(struct ctx *c, const struct config *cf, const config_setting_t *list)
{
	uid_t uid;
	gid_t gid;

	workers_identity(cf, &uid, &gid);
	for (int i = 0; i < cf->nsinks; i++) {
		const struct sink_cfg *s = &cf->sinks[i];
		const config_setting_t *g = list ? config_setting_get_elem(list, i) : NULL;
		const config_setting_t *where = g ? config_setting_get_member(g, "path") : NULL;
		const char *slash = strrchr(s->path, '/');
		char dir[PATH_MAX], name[64];

		if (s->spool.enabled && check_spool(c, cf, i, g, uid, gid) == -1)
			return -1;
		if (s->type != SINK_FILE)
			continue;
		snprintf(name, sizeof(name), "sinks[%d].path", i);
		snprintf(dir, sizeof(dir), "%.*s", slash == NULL ? 1 : slash == s->path ? 1 :
		    (int)(slash - s->path), slash == NULL ? "." : s->path);
		if (strchr(dir, '%') != NULL)
			return fail(c, where ? where : g, name, "\"%s\": a strftime pattern in the "
			    "directory; put it in the file name", s->path);
		if (check_dir(c, cf, where ? where : g, name, dir, uid, gid) == -1)
			return -1;
	}
	return 0;
}

static int
check_stats(struct ctx *c, struct config *cf, config_setting_t *stats)
{
	const char *why;

	if (cf->stats_listen[0] != '\0' &&
	    addr_parse_stream(cf->stats_listen, &cf->stats_addr, &why) == -1)
		return fail(c, config_setting_get_member(stats, "listen"), "stats.listen",
		    "\"%s\": %s", cf->stats_listen, why);
	return socket_identity(c, &cf->stats_sock, stats, "stats", -1);
}

static struct config *
load(config_t *lc, const char *name, char *err, size_t errlen)
{
	struct ctx c = { name, err, errlen };
	config_setting_t *root = config_root_setting(lc), *log, *stats, *list, *sinks, *routes;
	struct config *cf;

	if ((cf = calloc(1, sizeof(*cf))) == NULL || (cf->path = strdup(name)) == NULL)
		fatal("calloc");
	cf->refs = 1;
	log = config_setting_get_member(root, "log");
	stats = config_setting_get_member(root, "stats");
	list = config_setting_get_member(root, "listeners");
	sinks = config_setting_get_member(root, "sinks");
	routes = config_setting_get_member(root, "routes");
	if (log != NULL && !config_setting_is_group(log)) {
		fail(&c, log, "log", "expected a group { level = ...; }");
		goto bad;
	}
	if (stats != NULL && !config_setting_is_group(stats)) {
		fail(&c, stats, "stats", "expected a group { listen = ...; }");
		goto bad;
	}
	if (load_group(&c, root, CS_MAIN, cf, "") == -1 ||
	    load_group(&c, log, CS_LOG, cf, "log.") == -1 ||
	    load_group(&c, stats, CS_STATS, cf, "stats.") == -1 ||
	    check_stats(&c, cf, stats) == -1 ||
	    load_listeners(&c, cf, list) == -1 ||
	    check_listeners(&c, cf, list) == -1 ||
	    load_sinks(&c, cf, sinks) == -1 ||
	    check_sinks(&c, cf, sinks) == -1 ||
	    resolve_units(cf) == -1 ||
	    resolve_sinks(&c, cf, list) == -1 ||
	    load_routes(&c, cf, routes) == -1 ||
	    resolve_routes(&c, cf, routes) == -1 ||
	    resolve_acls(&c, cf, list) == -1 ||
	    resolve_upstreams(&c, cf, sinks) == -1 ||
	    resolve_tls(&c, cf, list, sinks) == -1 ||
	    check_identity(&c, cf, lc) == -1 ||
	    check_sink_dirs(&c, cf, sinks) == -1)
		goto bad;
	if (cf->workers_auto) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		cf->workers = n < 1 ? 1 : n > CFG_MAX_WORKERS ? CFG_MAX_WORKERS : (int)n;
	}
	return cf;
bad:
	cfg_free(cf);
	return NULL;
}

static struct config *
read_error(config_t *lc, const char *name, char *err, size_t errlen)
{
	const char *file = config_error_file(lc);

	if (config_error_type(lc) == CONFIG_ERR_FILE_IO && config_error_line(lc) == 0)
		snprintf(err, errlen, "%s: cannot read: %s", file ? file : name, strerror(errno));
	else
		snprintf(err, errlen, "%s:%d: syntax: %s", file ? file : name,
		    config_error_line(lc), config_error_text(lc));
	config_destroy(lc);
	return NULL;
}

struct config *
cfg_load(const char *path, char *err, size_t errlen)
{
	struct config *cf;
	config_t lc;

	config_init(&lc);
	if (config_read_file(&lc, path) != CONFIG_TRUE)
		return read_error(&lc, path, err, errlen);
	cf = load(&lc, path, err, errlen);
	config_destroy(&lc);
	return cf;
}

struct config *
cfg_parse_string(const char *text, const char *name, char *err, size_t errlen)
{
	struct config *cf;
	config_t lc;

	config_init(&lc);
	if (config_read_string(&lc, text) != CONFIG_TRUE)
		return read_error(&lc, name, err, errlen);
	cf = load(&lc, name, err, errlen);
	config_destroy(&lc);
	return cf;
}

static void
free_strings(enum cfg_scope scope, void *base)
{
	for (const struct cfg_setting *s = cfg_settings; s->name; s++) {
		if (s->scope != scope)
			continue;
		if (s->type == CT_STRING)
			free(*(char **)((char *)base + s->offset));
		else if (s->type == CT_LISTEN)
			free(((struct cfg_addr *)((char *)base + s->offset))->text);
		else if (s->type == CT_NAMES)
			free_names((struct cfg_names *)((char *)base + s->offset));
	}
}

void
cfg_free(struct config *cf)
{
	if (cf == NULL)
		return;
	for (int i = 0; i < cf->nlisteners; i++) {
		free_strings(CS_LISTENER, &cf->listeners[i]);
		free_strings(CS_TLS, &cf->listeners[i].tls);
		tlsctx_free(cf->listeners[i].tls.ctx);
		free(cf->listeners[i].allow_v);
		free(cf->listeners[i].deny_v);
		tz_free(cf->listeners[i].tz);
	}
	free(cf->listeners);
	for (int i = 0; i < cf->nsinks; i++) {
		for (int k = 0; cf->sinks[i].rename_from && k < cf->sinks[i].rename.n; k++) {
			free(cf->sinks[i].rename_from[k]);	/* before free_strings empties rename */
			free(cf->sinks[i].rename_to[k]);
		}
		free(cf->sinks[i].rename_from);
		free(cf->sinks[i].rename_to);
		free(cf->sinks[i].statics);
		free_strings(CS_SINK, &cf->sinks[i]);
		free_strings(CS_TLS, &cf->sinks[i].tls);
		free_strings(CS_SPOOL, &cf->sinks[i].spool);
		tlsctx_free(cf->sinks[i].tls.ctx);
		free(cf->sinks[i].upstream_v);
	}
	free(cf->sinks);
	for (int i = 0; i < cf->nroutes; i++) {
		free_strings(CS_ROUTE, &cf->routes[i]);
		cond_free(cf->routes[i].cond);
	}
	free(cf->routes);
	free_strings(CS_MAIN, cf);
	free_strings(CS_LOG, cf);
	free_strings(CS_STATS, cf);
	free(cf->path);
	free(cf);
}

struct config *
cfg_ref(struct config *cf)
{
	cf->refs++;
	return cf;
}

void
cfg_unref(struct config *cf)
{
	if (cf != NULL && --cf->refs == 0)
		cfg_free(cf);
}

static void
quote(const char *s, char *buf, size_t size)
{
	escape(s, buf, size, "\\x%02x");	/* libconfig's escape of a byte */
}

static void
format_size(long v, char *buf, size_t size)
{
	if (v >= GIB && v % GIB == 0)
		snprintf(buf, size, "\"%ldG\"", v / GIB);
	else if (v >= MIB && v % MIB == 0)
		snprintf(buf, size, "\"%ldM\"", v / MIB);
	else if (v >= KIB && v % KIB == 0)
		snprintf(buf, size, "\"%ldK\"", v / KIB);
	else
		snprintf(buf, size, "%ld", v);
}

/* [ "a", "b" ]; [ ] when empty. */
static void
format_names(const struct cfg_names *nm, char *buf, size_t size)
{
	size_t o = snprintf(buf, size, "[ ");

	for (int i = 0; i < nm->n && o + 8 < size; i++) {
		quote(nm->v[i], buf + o, size - o - 4);
		o += strlen(buf + o);
		if (i + 1 < nm->n)
			o += snprintf(buf + o, size - o, ", ");
	}
	snprintf(buf + o, size - o, "%s]", nm->n ? " " : "");
}

/* A value as it would be written in the config file. */
const char *
cfg_format(const struct cfg_setting *s, const void *base, char *buf, size_t size)
{
	const void *field = (const char *)base + s->offset;
	char word[64];

	switch (s->type) {
	case CT_INT:
		snprintf(buf, size, "%d", *(const int *)field);
		break;
	case CT_SECONDS: {
		long ms = *(const long *)field;
		size_t n;

		/* exact milliseconds, without trailing zeros: 2.5, 1000.001, 30 */
		if (ms % 1000 == 0) {
			snprintf(buf, size, "%ld", ms / 1000);
			break;
		}
		snprintf(buf, size, "%ld.%03ld", ms / 1000, ms % 1000);
		for (n = strlen(buf); n > 0 && buf[n - 1] == '0'; n--)
			buf[n - 1] = '\0';
		break;
	}
	case CT_WORKERS:
		if (((const struct config *)base)->workers_auto)
			snprintf(buf, size, "\"auto\"");
		else
			snprintf(buf, size, "%d", *(const int *)field);
		break;
	case CT_STRING:
		quote(*(char *const *)field, buf, size);
		break;
	case CT_ENUM:
		quote(enum_word(s->choices, *(const int *)field, word, sizeof(word)), buf, size);
		break;
	case CT_LISTEN:
		quote(((const struct cfg_addr *)field)->text, buf, size);
		break;
	case CT_SIZE:
		format_size(*(const long *)field, buf, size);
		break;
	case CT_NAMES:
		format_names(field, buf, size);
		break;
	case CT_BOOL:
		snprintf(buf, size, "%s", *(const int *)field ? "true" : "false");
		break;
	}
	return buf;
}

static void
keep_scope(enum cfg_scope scope, void *next, const void *cur, const char *prefix)
{
	char a[CFG_VALUE_MAX], b[CFG_VALUE_MAX];

	for (const struct cfg_setting *s = cfg_settings; s->name; s++) {
		if (s->reloadable || s->scope != scope)
			continue;
		if (strcmp(cfg_format(s, next, a, sizeof(a)), cfg_format(s, cur, b, sizeof(b))) == 0)
			continue;
		log_warnx("reload: %s%s cannot change without a restart; keeping %s", prefix,
		    s->name, b);
		if (s->type == CT_STRING)
			store_string((char *)next + s->offset, *(char *const *)((const char *)cur + s->offset));
		else
			memcpy((char *)next + s->offset, (const char *)cur + s->offset,
			    s->type == CT_SECONDS ? sizeof(long) : sizeof(int));
	}
}

/*
 * A reload cannot change a setting that is not reloadable: keep the running
 * value and say so.  For a listener, "running" means the listener with the
 * same address in the running config.
 */
void
cfg_keep_fixed(struct config *next, const struct config *cur)
{
	keep_scope(CS_MAIN, next, cur, "");
	keep_scope(CS_LOG, next, cur, "log.");
	keep_scope(CS_STATS, next, cur, "stats.");
	for (int i = 0; i < next->nlisteners; i++) {
		struct listener_cfg *l = &next->listeners[i];
		char prefix[64];

		snprintf(prefix, sizeof(prefix), "listeners[%d].", i);
		for (int j = 0; j < cur->nlisteners; j++)
			if (addr_equal(&l->listen.addr, &cur->listeners[j].listen.addr))
				keep_scope(CS_LISTENER, l, &cur->listeners[j], prefix);
	}
}

static void
dump_scope(const void *base, enum cfg_scope scope, const char *indent, FILE *fp)
{
	char buf[CFG_VALUE_MAX];

	for (const struct cfg_setting *s = cfg_settings; s->name; s++)
		if (s->scope == scope)
			fprintf(fp, "%s%s = %s;\n", indent, s->name, cfg_format(s, base, buf, sizeof(buf)));
}

static void
dump_tls(const struct tls_cfg *t, FILE *fp)
{
	if (!t->enabled)
		return;
	fprintf(fp, "\t\ttls = {\n");
	dump_scope(t, CS_TLS, "\t\t\t", fp);
	fprintf(fp, "\t\t};\n");
}

static void
dump_spool(const struct spool_cfg *sp, FILE *fp)
{
	if (!sp->enabled)
		return;
	fprintf(fp, "\t\tspool = {\n");
	dump_scope(sp, CS_SPOOL, "\t\t\t", fp);
	fprintf(fp, "\t\t};\n");
}

void
cfg_dump(const struct config *cf, FILE *fp)
{
	fprintf(fp, "# effective configuration from %s\n", cf->path);
	if (cf->workers_auto)
		fprintf(fp, "# workers: \"auto\" is %d on this machine\n", cf->workers);
	dump_scope(cf, CS_MAIN, "", fp);
	fprintf(fp, "log = {\n");
	dump_scope(cf, CS_LOG, "\t", fp);
	fprintf(fp, "};\nstats = {\n");
	dump_scope(cf, CS_STATS, "\t", fp);
	fprintf(fp, "};\nlisteners = (\n");
	for (int i = 0; i < cf->nlisteners; i++) {
		fprintf(fp, "\t{\n");
		dump_scope(&cf->listeners[i], CS_LISTENER, "\t\t", fp);
		dump_tls(&cf->listeners[i].tls, fp);
		fprintf(fp, "\t}%s\n", i + 1 < cf->nlisteners ? "," : "");
	}
	fprintf(fp, ");\nsinks = (\n");
	for (int i = 0; i < cf->nsinks; i++) {
		fprintf(fp, "\t{\n");
		dump_scope(&cf->sinks[i], CS_SINK, "\t\t", fp);
		dump_tls(&cf->sinks[i].tls, fp);
		dump_spool(&cf->sinks[i].spool, fp);
		fprintf(fp, "\t}%s\n", i + 1 < cf->nsinks ? "," : "");
	}
	fprintf(fp, ");\n");
	if (cf->nroutes == 0)
		return;
	fprintf(fp, "routes = (\n");
	for (int i = 0; i < cf->nroutes; i++) {
		fprintf(fp, "\t{\n");
		dump_scope(&cf->routes[i], CS_ROUTE, "\t\t", fp);
		fprintf(fp, "\t}%s\n", i + 1 < cf->nroutes ? "," : "");
	}
	fprintf(fp, ");\n");
}
