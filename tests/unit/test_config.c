/*
 * common/config.c: parsing and validating ingestd.conf, the settings table,
 * cfg_dump (ingestd -T), cfg_format and cfg_keep_fixed (reload).
 *
 * Config files are written to temp files so that every error message names a
 * real file and line:  FILE:LINE: setting: what is wrong
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "log.h"
#include "tests.h"

/* Two lines before the line under test, and a valid listener. */
#define H2	"# ingestd.conf for a unit test\n\n"
#define LST	"listeners = ( { listen = \"127.0.0.1:5514\"; } );\n"

static char path[64];	/* the temp file of the last load_text() */

static void
write_file(const char *text)
{
	size_t n = strlen(text);
	int fd;

	strcpy(path, "/tmp/ingestd-unit-XXXXXX");
	fd = mkstemp(path);
	ck_assert_msg(fd != -1, "mkstemp: %s", strerror(errno));
	ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
	close(fd);
}

/* cfg_load() of text written to a temp file; path keeps its name. */
static struct config *
load_text(const char *text, char *err, size_t errlen)
{
	struct config *cf;

	write_file(text);
	err[0] = '\0';
	cf = cfg_load(path, err, errlen);
	unlink(path);
	return cf;
}

static struct config *
load_ok(const char *text)
{
	char err[1024];
	struct config *cf = load_text(text, err, sizeof(err));

	ck_assert_msg(cf != NULL, "refused: %s\n--- config:\n%s", err, text);
	return cf;
}

/* The text must be refused with exactly "TMPFILE:line: setting: what". */
#define ASSERT_ERROR(text, line, setting, what) do {					\
	char err_[1024], want_[1024];							\
	struct config *cf_ = load_text((text), err_, sizeof(err_));			\
											\
	if (cf_ != NULL) {								\
		cfg_free(cf_);								\
		ck_abort_msg("accepted:\n%s", (text));					\
	}										\
	snprintf(want_, sizeof(want_), "%s:%d: %s: %s", path, (line), (setting), (what)); \
	ck_assert_str_eq(err_, want_);							\
} while (0)

static long
online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > CFG_MAX_WORKERS ? CFG_MAX_WORKERS : n;
}

static const struct cfg_setting *
setting(enum cfg_scope scope, const char *name)
{
	for (const struct cfg_setting *s = cfg_settings; s->name; s++)
		if (s->scope == scope && strcmp(s->name, name) == 0)
			return s;
	ck_abort_msg("no setting %s in scope %d", name, scope);
	return NULL;
}

/* Every setting of a and b, as the config file would spell it, is the same. */
static void
assert_cfg_equal(const struct config *a, const struct config *b)
{
	char x[2048], y[2048];

	ck_assert_int_eq(a->workers, b->workers);
	ck_assert_int_eq(a->workers_auto, b->workers_auto);
	ck_assert_int_eq(a->nlisteners, b->nlisteners);
	ck_assert_int_eq(a->nsinks, b->nsinks);
	for (int i = 0; i < a->nsinks; i++) {
		for (const struct cfg_setting *s = cfg_settings; s->name; s++) {
			const void *pa = s->scope == CS_TLS ? (const void *)&a->sinks[i].tls :
			    s->scope == CS_SPOOL ? (const void *)&a->sinks[i].spool : &a->sinks[i];
			const void *pb = s->scope == CS_TLS ? (const void *)&b->sinks[i].tls :
			    s->scope == CS_SPOOL ? (const void *)&b->sinks[i].spool : &b->sinks[i];

			if (s->scope != CS_SINK && s->scope != CS_TLS && s->scope != CS_SPOOL)
				continue;
			ck_assert_msg(strcmp(cfg_format(s, pa, x, sizeof(x)),
			    cfg_format(s, pb, y, sizeof(y))) == 0,
			    "sinks[%d].%s%s: %s != %s", i, s->scope == CS_SINK ? "" :
			    s->scope == CS_TLS ? "tls." : "spool.", s->name, x, y);
		}
		ck_assert_int_eq(a->sinks[i].tls.enabled, b->sinks[i].tls.enabled);
		ck_assert_int_eq(a->sinks[i].spool.enabled, b->sinks[i].spool.enabled);
	}
	ck_assert_int_eq(a->nroutes, b->nroutes);
	for (int i = 0; i < a->nroutes; i++)
		for (const struct cfg_setting *s = cfg_settings; s->name; s++)
			if (s->scope == CS_ROUTE)
				ck_assert_msg(strcmp(cfg_format(s, &a->routes[i], x, sizeof(x)),
				    cfg_format(s, &b->routes[i], y, sizeof(y))) == 0,
				    "routes[%d].%s: %s != %s", i, s->name, x, y);
	for (const struct cfg_setting *s = cfg_settings; s->name; s++) {
		if (s->scope == CS_LISTENER || s->scope == CS_TLS || s->scope == CS_SINK ||
		    s->scope == CS_SPOOL || s->scope == CS_ROUTE)
			continue;
		ck_assert_msg(strcmp(cfg_format(s, a, x, sizeof(x)), cfg_format(s, b, y, sizeof(y))) == 0,
		    "%s%s%s: %s != %s", cfg_scope_names[s->scope], s->scope ? "." : "", s->name, x, y);
	}
	ck_assert_int_eq(a->shutdown_timeout_ms, b->shutdown_timeout_ms);
	for (int i = 0; i < a->nlisteners; i++) {
		const struct listener_cfg *la = &a->listeners[i], *lb = &b->listeners[i];

		for (const struct cfg_setting *s = cfg_settings; s->name; s++) {
			const void *pa = s->scope == CS_TLS ? (const void *)&la->tls : la;
			const void *pb = s->scope == CS_TLS ? (const void *)&lb->tls : lb;

			if (s->scope != CS_LISTENER && s->scope != CS_TLS)
				continue;
			ck_assert_msg(strcmp(cfg_format(s, pa, x, sizeof(x)),
			    cfg_format(s, pb, y, sizeof(y))) == 0,
			    "listeners[%d].%s%s: %s != %s", i, s->scope == CS_TLS ? "tls." : "",
			    s->name, x, y);
		}
		ck_assert_int_eq(la->tls.enabled, lb->tls.enabled);
		ck_assert_msg(addr_equal(&la->listen.addr, &lb->listen.addr),
		    "listeners[%d].listen: addresses differ", i);
	}
}

/* cfg_dump() of cf into a temp file, loaded again. */
static struct config *
dump_and_reload(const struct config *cf)
{
	char err[1024];
	struct config *again;
	FILE *fp;
	int fd;

	strcpy(path, "/tmp/ingestd-unit-dump-XXXXXX");
	fd = mkstemp(path);
	ck_assert_msg(fd != -1, "mkstemp: %s", strerror(errno));
	fp = fdopen(fd, "w");
	ck_assert_ptr_nonnull(fp);
	cfg_dump(cf, fp);
	ck_assert_int_eq(fclose(fp), 0);
	again = cfg_load(path, err, sizeof(err));
	unlink(path);
	ck_assert_msg(again != NULL, "the dump does not load: %s", err);
	return again;
}

static char *
dump_to_string(const struct config *cf)
{
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);

	ck_assert_ptr_nonnull(fp);
	cfg_dump(cf, fp);
	ck_assert_int_eq(fclose(fp), 0);
	return text;
}

/* ------------------------------------------------------------------ */
/* Reading the file                                                     */

START_TEST(missing_file)
{
	char dir[] = "/tmp/ingestd-unit-dir-XXXXXX", file[128], err[1024], want[1024];
	struct config *cf;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/ingestd.conf", dir);
	cf = cfg_load(file, err, sizeof(err));
	rmdir(dir);
	ck_assert_ptr_null(cf);
	snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", file);
	ck_assert_str_eq(err, want);
}
END_TEST

/* libconfig's own message, after FILE:LINE: syntax: */
static void
assert_syntax_error(const char *text, int line)
{
	char err[1024], want[1024];
	struct config *cf = load_text(text, err, sizeof(err));

	if (cf != NULL) {
		cfg_free(cf);
		ck_abort_msg("accepted:\n%s", text);
	}
	snprintf(want, sizeof(want), "%s:%d: syntax: ", path, line);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "\"%s\" does not start with \"%s\"",
	    err, want);
	ck_assert_msg(strlen(err) > strlen(want), "no reason after \"%s\"", want);
}

START_TEST(syntax_error)
{
	char err[1024], want[1024];
	struct config *cf = load_text(H2 "workers = ;\n" LST, err, sizeof(err));

	ck_assert_ptr_null(cf);
	snprintf(want, sizeof(want), "%s:3: syntax: syntax error", path);
	ck_assert_str_eq(err, want);

	assert_syntax_error(H2 "\n\nlisteners = ( { listen = \"127.0.0.1:1\" } ;\n", 5);
	assert_syntax_error(H2 LST "log = { level = \"info\"\n", 5);	/* unclosed at EOF */
	/* A setting given twice: libconfig refuses it while reading. */
	assert_syntax_error("workers = 2;\n" H2 "workers = 3;\n" LST, 4);
}
END_TEST

START_TEST(syntax_error_in_string)
{
	char err[1024];
	struct config *cf = cfg_parse_string("workers = ;\n", "inline.conf", err, sizeof(err));

	ck_assert_ptr_null(cf);
	ck_assert_str_eq(err, "inline.conf:1: syntax: syntax error");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Every error path: file, line, setting and reason                     */

struct bad_conf {
	const char	*text;
	int		 line;
	const char	*setting;
	const char	*what;
};

static const struct bad_conf unknown[] = {
	{ H2 "bogus = 1;\n" LST, 3, "bogus", "unknown setting" },
	{ H2 "Workers = 2;\n" LST, 3, "Workers", "unknown setting" },	/* names are exact */
	{ H2 "level = \"info\";\n" LST, 3, "level", "unknown setting" },	/* belongs in log */
	{ H2 "listen = \"127.0.0.1:1\";\n" LST, 3, "listen", "unknown setting" },
	{ H2 "stats = { bogus = 1; };\n" LST, 3, "stats.bogus", "unknown setting" },
	{ LST "log = {\n\tlevel = \"info\";\n\tbogus = 1;\n};\n", 4, "log.bogus",
	  "unknown setting" },
	{ LST H2 "log = { workers = 2; };\n", 4, "log.workers", "unknown setting" },
	{ H2 "listeners = (\n"
	  "  { listen = \"127.0.0.1:1\"; },\n"
	  "  { listen = \"127.0.0.1:2\"; bogus = 1; }\n"
	  ");\n", 5, "listeners[1].bogus", "unknown setting" },
	{ "listeners = (\n"
	  "  { listen = \"127.0.0.1:1\";\n"
	  "    log = { level = \"debug\"; }; }\n"
	  ");\n", 3, "listeners[0].log", "unknown setting" },
};

START_TEST(unknown_setting)
{
	const struct bad_conf *b = &unknown[_i];

	ASSERT_ERROR(b->text, b->line, b->setting, b->what);
}
END_TEST

static const struct bad_conf wrong_type[] = {
	/* CT_INT */
	{ H2 "worker_connections = \"many\";\n" LST, 3, "worker_connections", "expected an integer" },
	{ H2 "worker_connections = 1.5;\n" LST, 3, "worker_connections", "expected an integer" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; backlog = \"10\"; } );\n", 3,
	  "listeners[0].backlog", "expected an integer" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; backlog = true; } );\n", 3,
	  "listeners[0].backlog", "expected an integer" },
	/* CT_SECONDS */
	{ H2 "shutdown_timeout = \"30\";\n" LST, 3, "shutdown_timeout", "expected a number of seconds" },
	{ H2 "shutdown_timeout = true;\n" LST, 3, "shutdown_timeout", "expected a number of seconds" },
	{ H2 "shutdown_timeout = [ 30 ];\n" LST, 3, "shutdown_timeout", "expected a number of seconds" },
	/* CT_STRING */
	{ H2 "user = 0;\n" LST, 3, "user", "expected a string" },
	{ H2 "pid_file = [ \"a.pid\" ];\n" LST, 3, "pid_file", "expected a string" },
	{ H2 "log = { target = 2; };\n" LST, 3, "log.target", "expected a string" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; name = 7; } );\n", 3,
	  "listeners[0].name", "expected a string" },
	/* CT_ENUM */
	{ H2 "log = { level = 3; };\n" LST, 3, "log.level", "expected a string" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; accept_mode = 1; } );\n", 3,
	  "listeners[0].accept_mode", "expected a string" },
	/* CT_WORKERS */
	{ H2 "workers = \"many\";\n" LST, 3, "workers", "expected \"auto\" or an integer" },
	{ H2 "workers = \"AUTO\";\n" LST, 3, "workers", "expected \"auto\" or an integer" },
	{ H2 "workers = 2.0;\n" LST, 3, "workers", "expected \"auto\" or an integer" },
	{ H2 "workers = true;\n" LST, 3, "workers", "expected \"auto\" or an integer" },
	/* CT_BOOL */
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; proxy_protocol = 1; } );\n", 3,
	  "listeners[0].proxy_protocol", "expected true or false" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; proxy_protocol = \"true\"; } );\n", 3,
	  "listeners[0].proxy_protocol", "expected true or false" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; proxy_protocol = \"on\"; } );\n", 3,
	  "listeners[0].proxy_protocol", "expected true or false" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; proxy_protocol = [ true ]; } );\n", 3,
	  "listeners[0].proxy_protocol", "expected true or false" },
	/* CT_LISTEN */
	{ H2 "listeners = ( { listen = 5514; } );\n", 3, "listeners[0].listen",
	  "expected an address string" },
	{ H2 "listeners = ( { listen = [ \"127.0.0.1:1\" ]; } );\n", 3, "listeners[0].listen",
	  "expected an address string" },
	/* groups and lists */
	{ H2 "log = \"stderr\";\n" LST, 3, "log", "expected a group { level = ...; }" },
	{ H2 "log = ( { level = \"info\"; } );\n" LST, 3, "log", "expected a group { level = ...; }" },
	{ H2 "listeners = \"127.0.0.1:5514\";\n", 3, "listeners",
	  "expected a list: ( { ... }, { ... } )" },
	{ H2 "listeners = { listen = \"127.0.0.1:5514\"; };\n", 3, "listeners",
	  "expected a list: ( { ... }, { ... } )" },
	{ H2 "listeners = (\n  { listen = \"127.0.0.1:1\"; },\n  \"127.0.0.1:2\" );\n", 5,
	  "listeners", "expected a group { ... } for each listener" },
	{ H2 "listeners = [ \"127.0.0.1:2\" ];\n", 3,
	  "listeners", "expected a group { ... } for each listener" },
};

START_TEST(type_error)
{
	const struct bad_conf *b = &wrong_type[_i];

	ASSERT_ERROR(b->text, b->line, b->setting, b->what);
}
END_TEST

static const struct bad_conf out_of_range[] = {
	{ H2 "workers = 0;\n" LST, 3, "workers", "must be from 1 to 512" },
	{ H2 "workers = 513;\n" LST, 3, "workers", "must be from 1 to 512" },
	{ H2 "workers = -1;\n" LST, 3, "workers", "must be from 1 to 512" },
	{ H2 "worker_connections = 0;\n" LST, 3, "worker_connections", "must be from 1 to 1000000" },
	{ H2 "worker_connections = 1000001;\n" LST, 3, "worker_connections",
	  "must be from 1 to 1000000" },
	{ H2 "worker_connections = 4294967296L;\n" LST, 3, "worker_connections",
	  "must be from 1 to 1000000" },	/* a 64-bit value is not truncated to int */
	{ H2 "shutdown_timeout = -1;\n" LST, 3, "shutdown_timeout", "must be from 0 to 86400 seconds" },
	{ H2 "shutdown_timeout = 86401;\n" LST, 3, "shutdown_timeout",
	  "must be from 0 to 86400 seconds" },
	{ H2 "shutdown_timeout = -0.5;\n" LST, 3, "shutdown_timeout",
	  "must be from 0 to 86400 seconds" },
	{ H2 "shutdown_timeout = 86400.5;\n" LST, 3, "shutdown_timeout",
	  "must be from 0 to 86400 seconds" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; backlog = 0; } );\n", 3,
	  "listeners[0].backlog", "must be from 1 to 65535" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; backlog = 65536; } );\n", 3,
	  "listeners[0].backlog", "must be from 1 to 65535" },
	{ H2 "listeners = (\n  { listen = \"127.0.0.1:1\"; },\n"
	  "  { listen = \"127.0.0.1:2\";\n    backlog = -5; }\n);\n", 6,
	  "listeners[1].backlog", "must be from 1 to 65535" },
};

START_TEST(range_error)
{
	const struct bad_conf *b = &out_of_range[_i];

	ASSERT_ERROR(b->text, b->line, b->setting, b->what);
}
END_TEST

static const struct bad_conf bad_enum[] = {
	{ H2 "log = { level = \"loud\"; };\n" LST, 3, "log.level",
	  "\"loud\" is not one of error|warning|notice|info|debug" },
	{ H2 "log = { level = \"INFO\"; };\n" LST, 3, "log.level",
	  "\"INFO\" is not one of error|warning|notice|info|debug" },
	{ H2 "log = { level = \"\"; };\n" LST, 3, "log.level",
	  "\"\" is not one of error|warning|notice|info|debug" },
	{ H2 "log = { level = \"info|debug\"; };\n" LST, 3, "log.level",
	  "\"info|debug\" is not one of error|warning|notice|info|debug" },
	{ H2 "log = { level = \"inf\"; };\n" LST, 3, "log.level",
	  "\"inf\" is not one of error|warning|notice|info|debug" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; accept_mode = \"x\"; } );\n", 3,
	  "listeners[0].accept_mode", "\"x\" is not one of shared|reuseport" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; accept_mode = \"sharedx\"; } );\n", 3,
	  "listeners[0].accept_mode", "\"sharedx\" is not one of shared|reuseport" },
};

START_TEST(enum_error)
{
	const struct bad_conf *b = &bad_enum[_i];

	ASSERT_ERROR(b->text, b->line, b->setting, b->what);
}
END_TEST

/* 108 bytes: one more than sun_path holds with its NUL */
#define LONG_SOCK	"/tmp/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
			"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.sock"

static const struct bad_conf bad_listen[] = {
	{ H2 LST "sinks = ( { name = \"f\"; type = \"forward\"; upstreams = [ \"udp://127.0.0.1:1\" "
	  "]; } );\n", 4, "sinks[0].upstreams", "\"udp://127.0.0.1:1\": only listeners take "
	  "datagrams; this needs a TCP address or a unix stream socket" },
	{ H2 "stats = { listen = \"unixgram:/tmp/s\"; };\n" LST, 3, "stats.listen",
	  "\"unixgram:/tmp/s\": only listeners take datagrams; this needs a TCP address or a "
	  "unix stream socket" },
	{ H2 "listeners = ( { listen = \"udp://127.0.0.1:514\"; protocol = \"relp\"; } );\n", 3,
	  "listeners[0].protocol", "RELP needs a stream; udp://127.0.0.1:514 is a datagram listener" },
	{ H2 "listeners = ( { listen = \"unixgram:/dev/log\"; proxy_protocol = true; } );\n", 3,
	  "listeners[0].proxy_protocol",
	  "PROXY headers come on streams; unixgram:/dev/log is a datagram listener" },
	{ H2 "listeners = ( { listen = \"/run/a.sock\"; socket_mode = \"0888\"; } );\n", 3,
	  "listeners[0].socket_mode", "\"0888\" is not a mode from 0 to 0777 in octal" },
	{ H2 "listeners = ( { listen = \"/run/a.sock\"; socket_mode = \"01777\"; } );\n", 3,
	  "listeners[0].socket_mode", "\"01777\" is not a mode from 0 to 0777 in octal" },
	{ H2 "listeners = ( { listen = \"/run/a.sock\"; socket_mode = \"rw\"; } );\n", 3,
	  "listeners[0].socket_mode", "\"rw\" is not a mode from 0 to 0777 in octal" },
	{ H2 "listeners = ( { listen = \"/run/a.sock\"; },\n{ listen = \"unixgram:/run/a.sock\"; } );\n",
	  4, "listeners[1].listen", "unixgram:/run/a.sock is already used by listeners[0]" },
	{ H2 "listeners = ( { listen = \"/run/a.sock\"; socket_user = \"no-such-user-x\"; } );\n",
	  3, "listeners[0].socket_user", "no such user \"no-such-user-x\"" },
	{ H2 "listeners = ( { listen = \"/run/a.sock\"; socket_group = \"no-such-group-x\"; } );\n",
	  3, "listeners[0].socket_group", "no such group \"no-such-group-x\"" },
	{ H2 "stats = { listen = \"/run/s.sock\"; socket_mode = \"0866\"; };\n" LST, 3,
	  "stats.socket_mode", "\"0866\" is not a mode from 0 to 0777 in octal" },
	{ H2 "stats = { listen = \"/run/s.sock\"; socket_user = \"no-such-user-x\"; };\n" LST, 3,
	  "stats.socket_user", "no such user \"no-such-user-x\"" },
	{ H2 "stats = { listen = \"/run/s.sock\"; socket_group = \"no-such-group-x\"; };\n" LST,
	  3, "stats.socket_group", "no such group \"no-such-group-x\"" },
	{ H2 "listeners = ( { listen = \"udp://127.0.0.1:514\"; recv_buffer = \"1K\"; } );\n", 3,
	  "listeners[0].recv_buffer", "must be from 4096 to 1073741824 bytes" },
	{ H2 LST "sinks = ( { name = \"f\"; type = \"forward\"; } );\n", 4, "sinks[0].upstreams",
	  "a forward sink needs at least one upstream" },
	{ H2 LST "sinks = ( { name = \"r\"; type = \"redis\"; upstreams = [ \"127.0.0.1:1\", "
	  "\"127.0.0.1:2\" ]; } );\n", 4, "sinks[0].upstreams", "a redis sink has one server" },
	{ H2 LST "sinks = ( { name = \"r\"; type = \"redis\"; upstreams = [ \"127.0.0.1:1\" ];\n"
	  "protocol = \"relp\"; } );\n", 4, "sinks[0].protocol",
	  "protocol = \"relp\" is for forward sinks" },
	{ H2 LST "sinks = ( { name = \"f\"; type = \"forward\"; upstreams = [ \"127.0.0.1:1\" ];\n"
	  "protocol = \"relp\"; relp_window = 0; } );\n", 5, "sinks[0].relp_window",
	  "must be from 1 to 65536" },
	{ H2 LST "sinks = ( { name = \"a\"; path = \"/tmp/a.jsonl\";\n"
	  "spool = { path = \"/tmp\"; }; } );\n", 5, "sinks[0].spool",
	  "a spool is for forward, redis and nats sinks (a file is its own)" },
	{ H2 LST "sinks = ( { name = \"n\"; type = \"nats\"; } );\n", 4, "sinks[0].servers",
	  "a nats sink needs at least one server" },
	{ H2 LST "sinks = ( { name = \"n\"; type = \"nats\"; servers = [ \"10.0.0.1:4222\" ]; } );\n",
	  4, "sinks[0].servers", "\"10.0.0.1:4222\": a server is a URL, nats://host:port or "
	  "tls://host:port" },
	{ H2 LST "sinks = ( { name = \"n\"; type = \"nats\"; servers = [ \"nats://a:1\" ];\n"
	  "subject = \"logs.>\"; } );\n", 5, "sinks[0].subject", "\"logs.>\": wildcards (* and >) "
	  "subscribe, they cannot be published to" },
	{ H2 LST "sinks = ( { name = \"n\"; type = \"nats\"; servers = [ \"nats://a:1\" ];\n"
	  "subject = \"logs..${host}\"; } );\n", 5, "sinks[0].subject", "\"logs..${host}\": a "
	  "subject's tokens (between dots) may not be empty" },
	{ H2 LST "sinks = ( { name = \"n\"; type = \"nats\"; servers = [ \"nats://a:1\" ];\n"
	  "subject = \"logs ${host}\"; } );\n", 5, "sinks[0].subject", "\"logs ${host}\": a "
	  "subject has no white space or control characters" },
	{ H2 LST "sinks = ( { name = \"n\"; type = \"nats\"; servers = [ \"nats://a:1\" ];\n"
	  "stream = \"logs.${host}\"; } );\n", 5, "sinks[0].stream", "\"logs.${host}\": a "
	  "JetStream stream's name has no dots, wildcards, spaces, slashes or ${field}" },
	{ H2 LST "sinks = ( { name = \"n\"; type = \"nats\"; servers = [ \"nats://a:1\" ];\n"
	  "user = \"u\"; token = \"t\"; } );\n", 4, "sinks[0].user",
	  "set one of user (and password), token and credentials" },
	{ H2 LST "sinks = ( { name = \"n\"; type = \"nats\"; servers = [ \"nats://a:1\" ];\n"
	  "password = \"p\"; } );\n", 4, "sinks[0].user", "a password goes with a user" },
	{ H2 LST "sinks = ( { name = \"n\"; type = \"nats\"; servers = [ \"nats://a:1\" ];\n"
	  "credentials = \"/nonexistent/x.creds\"; } );\n", 5, "sinks[0].credentials",
	  "/nonexistent/x.creds: No such file or directory" },
	{ H2 LST "sinks = ( { name = \"n\"; type = \"nats\"; servers = [ \"nats://a:1\" ];\n"
	  "tls = { crl_file = \"/etc/passwd\"; }; } );\n", 5, "sinks[0].tls",
	  "the NATS client library takes ca_file, certificate, key, server_name, verify and the "
	  "ciphers; not key_passphrase_file, ca_dir or crl_file" },
	{ H2 LST "sinks = ( { name = \"f\"; type = \"forward\"; upstreams = [ \"127.0.0.1:1\" ];\n"
	  "spool = { max_size = \"1G\"; }; } );\n", 5, "sinks[0].spool.path",
	  "a spool needs a path (a directory)" },
	{ H2 LST "sinks = ( { name = \"f\"; type = \"forward\"; upstreams = [ \"127.0.0.1:1\" ];\n"
	  "spool = { path = \"/etc/passwd\"; }; } );\n", 5, "sinks[0].spool.path",
	  "/etc/passwd is not a directory" },
	{ H2 LST "sinks = ( { name = \"f\"; type = \"forward\"; upstreams = [ \"127.0.0.1:1\" ];\n"
	  "spool = { path = \"/tmp\"; }; },\n{ name = \"g\"; type = \"redis\"; "
	  "upstreams = [ \"127.0.0.1:1\" ];\nspool = { path = \"/tmp\"; }; } );\n", 7,
	  "sinks[1].spool.path", "\"/tmp\" is already the spool of sinks[0]" },
	{ H2 LST "sinks = ( { name = \"f\"; type = \"forward\"; upstreams = [ \"127.0.0.1:1\" ];\n"
	  "spool = \"/tmp\"; } );\n", 5, "sinks[0].spool.", "expected a group { path = ...; }" },
	{ H2 LST "sinks = ( { name = \"f\"; type = \"forward\"; upstreams = [ \"up:1\" ]; } );\n", 4,
	  "sinks[0].upstreams", "\"up:1\": not an IPv4 address (host names are not resolved)" },
	{ H2 "stats = { listen = \"localhost:9514\"; };\n" LST, 3, "stats.listen",
	  "\"localhost:9514\": not an IPv4 address (host names are not resolved)" },
	{ H2 "stats = \"127.0.0.1:9514\";\n" LST, 3, "stats", "expected a group { listen = ...; }" },
	{ H2 "listeners = ( { listen = \"localhost:5514\"; } );\n", 3, "listeners[0].listen",
	  "\"localhost:5514\": not an IPv4 address (host names are not resolved)" },
	{ H2 "listeners = ( { listen = \"1.2.3.4.5:80\"; } );\n", 3, "listeners[0].listen",
	  "\"1.2.3.4.5:80\": not an IPv4 address (host names are not resolved)" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:0\"; } );\n", 3, "listeners[0].listen",
	  "\"127.0.0.1:0\": port must be a number from 1 to 65535" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:65536\"; } );\n", 3, "listeners[0].listen",
	  "\"127.0.0.1:65536\": port must be a number from 1 to 65535" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:80x\"; } );\n", 3, "listeners[0].listen",
	  "\"127.0.0.1:80x\": port must be a number from 1 to 65535" },
	{ H2 "listeners = ( { listen = \"127.0.0.1\"; } );\n", 3, "listeners[0].listen",
	  "\"127.0.0.1\": expected IPv4:port, [IPv6]:port, *:port or an absolute unix socket path "
	  "(after udp:// or unixgram: for datagrams)" },
	{ H2 "listeners = ( { listen = \"\"; } );\n", 3, "listeners[0].listen",
	  "\"\": expected IPv4:port, [IPv6]:port, *:port or an absolute unix socket path "
	  "(after udp:// or unixgram: for datagrams)" },
	{ H2 "listeners = ( { listen = \"run/in.sock\"; } );\n", 3, "listeners[0].listen",
	  "\"run/in.sock\": expected IPv4:port, [IPv6]:port, *:port or an absolute unix socket path "
	  "(after udp:// or unixgram: for datagrams)" },
	{ H2 "listeners = ( { listen = \"[::1]80\"; } );\n", 3, "listeners[0].listen",
	  "\"[::1]80\": expected [IPv6]:port" },
	{ H2 "listeners = ( { listen = \"[nonsense]:1\"; } );\n", 3, "listeners[0].listen",
	  "\"[nonsense]:1\": not an IPv6 address" },
	{ H2 "listeners = (\n  { listen = \"127.0.0.1:1\"; },\n  { listen = \"" LONG_SOCK "\"; }\n);\n",
	  5, "listeners[1].listen", "\"" LONG_SOCK "\": unix socket path is too long" },
};

START_TEST(listen_error)
{
	const struct bad_conf *b = &bad_listen[_i];

	ASSERT_ERROR(b->text, b->line, b->setting, b->what);
}
END_TEST

static const struct bad_conf bad_listeners[] = {
	/* missing listen: the line of the listener's group */
	{ H2 "listeners = ( { name = \"a\"; backlog = 10; } );\n", 3, "listeners[0].listen",
	  "required setting is missing" },
	{ H2 "listeners = (\n  { listen = \"127.0.0.1:1\"; },\n  { name = \"b\"; }\n);\n", 5,
	  "listeners[1].listen", "required setting is missing" },
	{ H2 "listeners = ( { } );\n", 3, "listeners[0].listen", "required setting is missing" },
	/* empty list, or an empty array */
	{ H2 "listeners = ( );\n", 3, "listeners", "at least one listener is required" },
	{ H2 "listeners = [ ];\n", 3, "listeners", "at least one listener is required" },
	/* duplicates: the line of the second listener */
	{ H2 "listeners = (\n"
	  "  { name = \"in\"; listen = \"127.0.0.1:1\"; },\n"
	  "  { name = \"in\"; listen = \"127.0.0.1:2\"; }\n"
	  ");\n", 5, "listeners[1].name", "\"in\" is already the name of listeners[0]" },
	{ H2 "listeners = (\n"
	  "  { name = \"a\"; listen = \"127.0.0.1:1\"; },\n"
	  "  { name = \"b\"; listen = \"127.0.0.1:2\"; },\n"
	  "  { name = \"c\"; listen = \"127.0.0.1:1\"; }\n"
	  ");\n", 6, "listeners[2].listen", "127.0.0.1:1 is already used by listeners[0]" },
	/* one address, two spellings */
	{ H2 "listeners = (\n"
	  "  { name = \"a\"; listen = \"*:5514\"; },\n"
	  "  { name = \"b\"; listen = \"0.0.0.0:5514\"; }\n"
	  ");\n", 5, "listeners[1].listen", "0.0.0.0:5514 is already used by listeners[0]" },
	{ H2 "listeners = (\n"
	  "  { name = \"a\"; listen = \"[::]:5514\"; },\n"
	  "  { name = \"b\"; listen = \"[0::0]:5514\"; }\n"
	  ");\n", 5, "listeners[1].listen", "[0::0]:5514 is already used by listeners[0]" },
	{ H2 "listeners = (\n"
	  "  { name = \"a\"; listen = \"/tmp/in.sock\"; },\n"
	  "  { name = \"b\"; listen = \"/tmp/in.sock\"; }\n"
	  ");\n", 5, "listeners[1].listen", "/tmp/in.sock is already used by listeners[0]" },
	/* an explicit name that is another listener's default name */
	{ H2 "listeners = (\n"
	  "  { listen = \"127.0.0.1:1\"; },\n"
	  "  { name = \"127.0.0.1:1\"; listen = \"127.0.0.1:2\"; }\n"
	  ");\n", 5, "listeners[1].name", "\"127.0.0.1:1\" is already the name of listeners[0]" },
};

/* The pipeline settings of listeners and the sinks list. */
static const struct bad_conf bad_pipeline[] = {
	{ H2 "listeners = ( { listen = \"/tmp/u.sock\"; accept_mode = \"reuseport\"; } );\n",
	  3, "listeners[0].accept_mode", "reuseport needs a TCP address, not a unix socket" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; framing = \"cr\"; } );\n",
	  3, "listeners[0].framing", "\"cr\" is not one of auto|lf|octet-counted" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; max_record = \"64Q\"; } );\n", 3,
	  "listeners[0].max_record", "expected a size (65536, \"64K\", \"16M\", \"1G\")" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; max_record = 15; } );\n", 3,
	  "listeners[0].max_record", "must be from 16 to 16777216 bytes" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; max_record = \"17M\"; } );\n", 3,
	  "listeners[0].max_record", "must be from 16 to 16777216 bytes" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; sinks = \"a\"; } );\n", 3,
	  "listeners[0].sinks", "expected a list of strings" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\";\n sinks = [ \"nope\" ]; } );\n", 4,
	  "listeners[0].sinks", "no sink is named \"nope\"" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\";\n sinks = ( \"default\", 1 ); } );\n", 4,
	  "listeners[0].sinks", "expected a list of strings" },
	{ H2 LST "sinks = ( { name = \"a\"; },\n { name = \"b\"; path = \"x\"; },\n"
	  " { name = \"a\"; path = \"y\"; } );\n", 6, "sinks[2].name",
	  "\"a\" is already the name of sinks[0]" },
	{ H2 LST "sinks = ( { name = \"a\"; path = \"/tmp/e.jsonl\"; },\n"
	  " { name = \"b\"; path = \"/tmp/e.jsonl\"; } );\n", 5, "sinks[1].path",
	  "\"/tmp/e.jsonl\" is already the path of sinks[0]" },
	{ H2 LST "sinks = ( { name = \"a\"; path = \"\"; } );\n", 4, "sinks[0].path",
	  "a file sink needs a path" },
	{ H2 LST "sinks = ( { path = \"x\"; } );\n", 4, "sinks[0].name",
	  "required setting is missing" },
	{ H2 LST "sinks = ( { name = \"a\"; queue = \"1K\"; } );\n", 4, "sinks[0].queue",
	  "must be from 65536 to 4294967296 bytes" },
	{ H2 LST "sinks = ( { name = \"a\"; sync = \"often\"; } );\n", 4, "sinks[0].sync",
	  "\"often\" is not one of none|interval|always" },
	{ H2 LST "sinks = ( { name = \"a\"; bogus = 1; } );\n", 4, "sinks[0].bogus",
	  "unknown setting" },
	{ H2 LST "sinks = ( );\n", 4, "sinks", "at least one sink is required" },
	{ H2 LST "sinks = ( 1 );\n", 4, "sinks", "expected a group { ... } for each sink" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\";\n allow = [ \"10.1.2.3/8\" ]; } );\n", 4,
	  "listeners[0].allow", "\"10.1.2.3/8\": host bits are set after the prefix length" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\";\n deny = [ \"::1\", \"x\" ]; } );\n", 4,
	  "listeners[0].deny", "\"x\": not an IPv4 or IPv6 address" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; record_timeout = 3601; } );\n", 3,
	  "listeners[0].record_timeout", "must be from 0 to 3600 seconds" },
	{ H2 LST "routes = ( { name = \"r\";\n match = \"severity <= eror\"; sinks = [ \"default\" ]; } );\n",
	  5, "routes[0].match", "at column 13: \"eror\" is no severity (a name such as warning, or "
	  "0 to 7)" },
	{ H2 LST "routes = ( { name = \"r\";\n match = \"msg ~ \\\"a(\\\"\"; sinks = [ \"default\" ]; } );\n",
	  5, "routes[0].match", "at column 7: regular expression \"a(\": missing closing parenthesis "
	  "at offset 2" },
	{ H2 LST "routes = ( { name = \"r\"; sinks = [ \"default\" ]; },\n"
	  " { name = \"r\"; drop = true; } );\n", 5, "routes[1].name",
	  "\"r\" is the name of routes[0] too" },
	{ H2 LST "routes = ( { name = \"r\";\n sinks = [ \"nope\" ]; } );\n", 5, "routes[0].sinks",
	  "no sink is named \"nope\"" },
	{ H2 LST "routes = ( { name = \"r\"; } );\n", 4, "routes[0].sinks",
	  "required: the sinks its events go to (or drop = true)" },
	{ H2 LST "routes = ( { name = \"r\"; drop = true; sinks = [ \"default\" ]; } );\n", 4,
	  "routes[0].sinks", "a route with drop = true has no sinks" },
	{ H2 LST "routes = ( { name = \"r\"; drop = true;\n listeners = [ \"x\" ]; } );\n", 5,
	  "routes[0].listeners", "no listener is named \"x\"" },
	{ H2 LST "routes = ( { drop = true; } );\n", 4, "routes[0].name",
	  "required setting is missing" },
	{ H2 LST "routes = ( { name = \"r\"; drop = true; fallthrough = true; } );\n", 4,
	  "routes[0].fallthrough", "unknown setting" },
	{ H2 "listeners = ( { listen = \"udp://127.0.0.1:1\"; rate_records = 5; } );\n", 3,
	  "listeners[0].rate_records", "rate limits hold back streams; udp://127.0.0.1:1 is a "
	  "datagram listener" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\";\n rate_bytes = \"1M\"; rate_burst = 0; } );\n",
	  4, "listeners[0].rate_burst", "must be more than 0 with a rate limit" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\";\n timezone = \"Mars/Olympus\"; } );\n", 4,
	  "listeners[0].timezone", "no time zone \"Mars/Olympus\" (/usr/share/zoneinfo/Mars/Olympus: "
	  "No such file or directory)" },
	{ H2 LST "sinks = ( { name = \"a\";\n rename = [ \"msg\" ]; } );\n", 5, "sinks[0].rename",
	  "\"msg\" is not \"old=new\"" },
	{ H2 LST "sinks = ( { name = \"a\";\n static_fields = [ \"=x\" ]; } );\n", 5,
	  "sinks[0].static_fields", "\"=x\" is not \"name=value\"" },
	{ H2 LST "sinks = ( { name = \"a\"; fields = [ \"msg\" ];\n payload = \"record\"; } );\n",
	  5, "sinks[0].payload", "fields, drop_fields, rename and static_fields shape events, "
	  "not \"record\"" },
	{ H2 LST "sinks = ( { name = \"a\"; type = \"redis\";\n payload = \"rfc5424\"; } );\n", 5,
	  "sinks[0].payload", "redis and nats sinks write events" },
	{ H2 "listeners = ( { listen = \"127.0.0.1:1\"; rate_action = \"block\"; } );\n", 3,
	  "listeners[0].rate_action", "\"block\" is not one of throttle|drop" },
};

START_TEST(pipeline_error)
{
	const struct bad_conf *b = &bad_pipeline[_i];

	ASSERT_ERROR(b->text, b->line, b->setting, b->what);
}
END_TEST

/* Sizes, sink lists and the default sink. */
START_TEST(pipeline_settings)
{
	struct config *cf = load_ok(
	    "listeners = ( { listen = \"127.0.0.1:1\"; max_record = \"1M\"; sinks = [ \"b\" ]; },\n"
	    "  { listen = \"127.0.0.1:2\"; max_record = 100; framing = \"octet-counted\";\n"
	    "    format = \"json\"; on_parse_error = \"drop\"; proxy_protocol = true; } );\n"
	    "sinks = ( { name = \"a\"; }, { name = \"b\"; path = \"b.jsonl\"; queue = \"2G\"; } );\n");

	ck_assert_int_eq(cf->listeners[0].max_record, 1048576);
	ck_assert_int_eq(cf->listeners[0].nsink_idx, 1);
	ck_assert_int_eq(cf->listeners[0].sink_idx[0], 1);
	ck_assert_int_eq(cf->listeners[1].max_record, 100);
	ck_assert_int_eq(cf->listeners[1].framing, FRAMING_OCTET);
	ck_assert_int_eq(cf->listeners[1].format, FORMAT_JSON);
	ck_assert_int_eq(cf->listeners[1].on_parse_error, ON_ERROR_DROP);
	ck_assert_int_eq(cf->listeners[0].proxy_protocol, 0);
	ck_assert_int_eq(cf->listeners[1].proxy_protocol, 1);
	ck_assert_int_eq(cf->listeners[1].nsink_idx, 2);	/* no list: every sink */
	ck_assert_int_eq(cf->nsinks, 2);
	ck_assert_int_eq(cf->sinks[1].queue, 2L * 1024 * 1024 * 1024);
	ck_assert_int_eq(cf->sinks[0].queue, 16 * 1024 * 1024);
	ck_assert_int_eq(cf->sinks[0].flush_interval_ms, 0);
	ck_assert_str_eq(cf->sinks[0].path, "ingestd-events.jsonl");
	cfg_free(cf);

	cf = load_ok(LST);		/* no sinks list: one file sink, "default" */
	ck_assert_int_eq(cf->nsinks, 1);
	ck_assert_str_eq(cf->sinks[0].name, "default");
	ck_assert_int_eq(cf->sinks[0].type, SINK_FILE);
	ck_assert_int_eq(cf->listeners[0].nsink_idx, 1);
	cfg_free(cf);
}
END_TEST

START_TEST(listeners_error)
{
	const struct bad_conf *b = &bad_listeners[_i];

	ASSERT_ERROR(b->text, b->line, b->setting, b->what);
}
END_TEST

/* No listeners at all: there is no line to name. */
START_TEST(missing_listeners)
{
	char err[1024], want[1024];
	struct config *cf = load_text(H2 "workers = 2;\n", err, sizeof(err));

	ck_assert_ptr_null(cf);
	snprintf(want, sizeof(want), "%s: listeners: at least one listener is required", path);
	ck_assert_str_eq(err, want);

	cf = cfg_parse_string("", "empty.conf", err, sizeof(err));
	ck_assert_ptr_null(cf);
	ck_assert_str_eq(err, "empty.conf: listeners: at least one listener is required");
}
END_TEST

static const struct bad_conf bad_identity[] = {
	{ H2 "user = \"ingestd-unit-no-such-user\";\n" LST, 3, "user",
	  "no such user \"ingestd-unit-no-such-user\"" },
	{ LST H2 "group = \"ingestd-unit-no-such-group\";\n", 4, "group",
	  "no such group \"ingestd-unit-no-such-group\"" },
	{ H2 "user = \"root\";\ngroup = \"ingestd-unit-no-such-group\";\n" LST, 4, "group",
	  "no such group \"ingestd-unit-no-such-group\"" },
};

START_TEST(identity_error)
{
	const struct bad_conf *b = &bad_identity[_i];

	ASSERT_ERROR(b->text, b->line, b->setting, b->what);
}
END_TEST

/* The first error in the file is the one reported; nothing leaks on the way out. */
START_TEST(error_after_partial_load)
{
	ASSERT_ERROR("user = \"root\";\npid_file = \"/tmp/x.pid\";\nlog = { target = \"stderr\"; };\n"
	    "listeners = (\n  { name = \"a\"; listen = \"127.0.0.1:1\"; },\n"
	    "  { name = \"b\"; listen = \"127.0.0.1:2\"; backlog = 0; }\n);\n",
	    6, "listeners[1].backlog", "must be from 1 to 65535");
	ASSERT_ERROR("pid_file = \"/tmp/x.pid\";\nworkers = 0;\n" LST, 2, "workers",
	    "must be from 1 to 512");
}
END_TEST

START_TEST(error_message_is_truncated_safely)
{
	char err[16];
	struct config *cf = cfg_parse_string("workers = 0;\n" LST, "a-long-file-name.conf", err,
	    sizeof(err));

	ck_assert_ptr_null(cf);
	ck_assert_str_eq(err, "a-long-file-nam");
}
END_TEST

/* ------------------------------------------------------------------ */
/* What a good config gives                                             */

START_TEST(defaults)
{
	struct config *cf = load_ok(H2 LST);
	const struct listener_cfg *l = &cf->listeners[0];
	char buf[ADDR_STRLEN];

	ck_assert_str_eq(cf->path, path);
	ck_assert_int_eq(cf->refs, 1);
	ck_assert_int_eq(cf->workers_auto, 1);
	ck_assert_int_eq(cf->workers, online_cpus());
	ck_assert_int_eq(cf->worker_connections, 10000);
	ck_assert_str_eq(cf->user, "");
	ck_assert_str_eq(cf->group, "");
	ck_assert_str_eq(cf->pid_file, "/run/ingestd/ingestd.pid");
	ck_assert_int_eq(cf->shutdown_timeout_ms, 30000);
	ck_assert_int_eq(cf->log_level, LOG_LVL_INFO);
	ck_assert_str_eq(cf->log_target, "syslog");
	ck_assert_int_eq(cf->nlisteners, 1);
	ck_assert_str_eq(l->name, "127.0.0.1:5514");	/* the listen text */
	ck_assert_str_eq(l->listen.text, "127.0.0.1:5514");
	ck_assert_str_eq(addr_format((struct sockaddr *)&l->listen.addr.ss, l->listen.addr.len, buf,
	    sizeof(buf)), "127.0.0.1:5514");
	ck_assert_int_eq(l->backlog, 4096);
	ck_assert_int_eq(l->accept_mode, ACCEPT_SHARED);
	cfg_free(cf);
}
END_TEST

START_TEST(empty_log_group_gives_defaults)
{
	struct config *cf = load_ok("log = { };\n" LST);

	ck_assert_int_eq(cf->log_level, LOG_LVL_INFO);
	ck_assert_str_eq(cf->log_target, "syslog");
	cfg_free(cf);
}
END_TEST

START_TEST(everything_set)
{
	struct config *cf = load_ok(
	    "workers = 3;\n"
	    "worker_connections = 250;\n"
	    "user = \"root\";\n"
	    "group = \"root\";\n"
	    "pid_file = \"/tmp/ingestd-unit.pid\";\n"
	    "shutdown_timeout = 0.5;\n"
	    "log = { level = \"debug\"; target = \"stderr\"; };\n"
	    "listeners = (\n"
	    "  { name = \"syslog\"; listen = \"*:5514\"; backlog = 128; accept_mode = \"reuseport\"; },\n"
	    "  { listen = \"[::1]:6514\"; accept_mode = \"shared\"; },\n"
	    "  { name = \"local\"; listen = \"/tmp/ingestd-unit.sock\"; }\n"
	    ");\n");

	ck_assert_int_eq(cf->workers, 3);
	ck_assert_int_eq(cf->workers_auto, 0);
	ck_assert_int_eq(cf->worker_connections, 250);
	ck_assert_str_eq(cf->user, "root");
	ck_assert_str_eq(cf->group, "root");
	ck_assert_str_eq(cf->pid_file, "/tmp/ingestd-unit.pid");
	ck_assert_int_eq(cf->shutdown_timeout_ms, 500);
	ck_assert_int_eq(cf->log_level, LOG_LVL_DEBUG);
	ck_assert_str_eq(cf->log_target, "stderr");
	ck_assert_int_eq(cf->nlisteners, 3);
	ck_assert_str_eq(cf->listeners[0].name, "syslog");
	ck_assert_str_eq(cf->listeners[0].listen.text, "*:5514");
	ck_assert_int_eq(cf->listeners[0].listen.addr.ss.ss_family, AF_INET);
	ck_assert_int_eq(cf->listeners[0].backlog, 128);
	ck_assert_int_eq(cf->listeners[0].accept_mode, ACCEPT_REUSEPORT);
	ck_assert_str_eq(cf->listeners[1].name, "[::1]:6514");
	ck_assert_int_eq(cf->listeners[1].listen.addr.ss.ss_family, AF_INET6);
	ck_assert_int_eq(cf->listeners[1].accept_mode, ACCEPT_SHARED);
	ck_assert_int_eq(cf->listeners[1].backlog, 4096);
	ck_assert_str_eq(cf->listeners[2].name, "local");
	ck_assert_int_eq(cf->listeners[2].listen.addr.ss.ss_family, AF_UNIX);
	cfg_free(cf);
}
END_TEST

START_TEST(workers)
{
	struct config *cf;

	cf = load_ok("workers = 3;\n" LST);
	ck_assert_int_eq(cf->workers, 3);
	ck_assert_int_eq(cf->workers_auto, 0);
	cfg_free(cf);
	cf = load_ok("workers = \"auto\";\n" LST);
	ck_assert_int_eq(cf->workers_auto, 1);
	ck_assert_int_eq(cf->workers, online_cpus());
	cfg_free(cf);
	cf = load_ok("workers = 1;\n" LST);
	ck_assert_int_eq(cf->workers, 1);
	cfg_free(cf);
	cf = load_ok("workers = 512;\n" LST);
	ck_assert_int_eq(cf->workers, 512);
	cfg_free(cf);
	cf = load_ok("workers = 4L;\n" LST);
	ck_assert_int_eq(cf->workers, 4);
	cfg_free(cf);
}
END_TEST

START_TEST(seconds)
{
	static const struct {
		const char	*value;
		long		 ms;
	} v[] = {
		{ "0.5", 500 }, { "0", 0 }, { "0.0", 0 }, { "1", 1000 }, { "2.25", 2250 },
		{ "0.001", 1 }, { "0.1", 100 }, { "86400", 86400000 }, { "86400.0", 86400000 },
		{ "30L", 30000 },
	};
	char text[256];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct config *cf;

		snprintf(text, sizeof(text), "shutdown_timeout = %s;\n" LST, v[i].value);
		cf = load_ok(text);
		ck_assert_msg(cf->shutdown_timeout_ms == v[i].ms, "shutdown_timeout = %s gave %ld ms",
		    v[i].value, cf->shutdown_timeout_ms);
		cfg_free(cf);
	}
}
END_TEST

START_TEST(range_bounds_accepted)
{
	struct config *cf = load_ok(
	    "worker_connections = 1;\nshutdown_timeout = 0;\n"
	    "listeners = ( { listen = \"127.0.0.1:1\"; backlog = 1; },\n"
	    "  { listen = \"127.0.0.1:2\"; backlog = 65535; } );\n");

	ck_assert_int_eq(cf->worker_connections, 1);
	ck_assert_int_eq(cf->shutdown_timeout_ms, 0);
	ck_assert_int_eq(cf->listeners[0].backlog, 1);
	ck_assert_int_eq(cf->listeners[1].backlog, 65535);
	cfg_free(cf);
	cf = load_ok("worker_connections = 1000000;\nshutdown_timeout = 86400;\n" LST);
	ck_assert_int_eq(cf->worker_connections, 1000000);
	ck_assert_int_eq(cf->shutdown_timeout_ms, 86400000);
	cfg_free(cf);
}
END_TEST

START_TEST(log_levels)
{
	static const char *const names[] = { "error", "warning", "notice", "info", "debug" };
	static const int levels[] = { LOG_LVL_ERROR, LOG_LVL_WARNING, LOG_LVL_NOTICE, LOG_LVL_INFO,
	    LOG_LVL_DEBUG };
	char text[256];

	for (int i = 0; i < 5; i++) {
		struct config *cf;

		snprintf(text, sizeof(text), "log = { level = \"%s\"; };\n" LST, names[i]);
		cf = load_ok(text);
		ck_assert_int_eq(cf->log_level, levels[i]);
		cfg_free(cf);
	}
}
END_TEST

START_TEST(embedded_default)
{
	char err[1024] = "";
	struct config *cf = cfg_parse_string(cfg_embedded, CFG_EMBEDDED_NAME, err, sizeof(err));

	ck_assert_msg(cf != NULL, "%s", err);
	ck_assert_str_eq(cf->path, "(embedded default)");
	ck_assert_str_eq(cf->pid_file, "ingestd.pid");
	ck_assert_int_eq(cf->workers_auto, 1);
	ck_assert_int_eq(cf->nlisteners, 1);
	ck_assert_str_eq(cf->listeners[0].name, "default");
	ck_assert_str_eq(cf->listeners[0].listen.text, "127.0.0.1:5514");
	ck_assert_int_eq(cf->listeners[0].accept_mode, ACCEPT_SHARED);
	cfg_free(cf);
}
END_TEST

START_TEST(identity_ok)
{
	struct config *cf = load_ok("user = \"root\";\ngroup = \"root\";\n" LST);

	ck_assert_str_eq(cf->user, "root");
	ck_assert_str_eq(cf->group, "root");
	cfg_free(cf);
}
END_TEST

START_TEST(refs)
{
	struct config *cf = load_ok(LST);

	ck_assert_ptr_eq(cfg_ref(cf), cf);
	ck_assert_int_eq(cf->refs, 2);
	cfg_unref(cf);
	ck_assert_int_eq(cf->refs, 1);
	cfg_unref(cf);		/* freed: LeakSanitizer would tell otherwise */
	cfg_unref(NULL);
	cfg_free(NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The settings table, cfg_format, cfg_dump, cfg_keep_fixed             */

START_TEST(table_is_consistent)
{
	int n = 0;

	for (const struct cfg_setting *s = cfg_settings; s->name; s++, n++) {
		ck_assert_msg(s->doc && s->doc[0], "%s: no documentation", s->name);
		ck_assert_msg(s->scope < CS_COUNT, "%s: scope", s->name);
		ck_assert_ptr_nonnull(cfg_type_name(s));
		for (const struct cfg_setting *t = cfg_settings; t < s; t++)
			ck_assert_msg(t->scope != s->scope || strcmp(t->name, s->name) != 0,
			    "%s: twice in one scope", s->name);
		if (s->type == CT_INT || s->type == CT_SECONDS || s->type == CT_WORKERS)
			ck_assert_msg(s->min <= s->max, "%s: min > max", s->name);
		if (s->type == CT_ENUM) {
			size_t len = strlen(s->def);
			const char *p = strstr(s->choices, s->def);

			ck_assert_msg(p && (p == s->choices || p[-1] == '|') &&
			    (p[len] == '|' || p[len] == '\0'), "%s: default not a choice", s->name);
		}
		if (s->type == CT_BOOL)
			ck_assert_msg(strcmp(s->def, "true") == 0 || strcmp(s->def, "false") == 0,
			    "%s: default is neither true nor false", s->name);
		if (s->type == CT_INT) {
			long d = atol(s->def);

			ck_assert_msg(d >= s->min && d <= s->max, "%s: default out of range", s->name);
		}
		ck_assert_msg(s->def != NULL || s->type == CT_LISTEN ||
		    ((s->scope == CS_SINK || s->scope == CS_ROUTE) && strcmp(s->name, "name") == 0),
		    "%s: no default", s->name);
	}
	ck_assert_int_eq(n, 92);
	ck_assert_str_eq(cfg_scope_names[CS_MAIN], "");
	ck_assert_str_eq(cfg_scope_names[CS_LOG], "log");
	ck_assert_str_eq(cfg_scope_names[CS_STATS], "stats");
	ck_assert_str_eq(cfg_scope_names[CS_LISTENER], "listeners");
	ck_assert_str_eq(cfg_scope_names[CS_TLS], "tls");
	ck_assert_str_eq(cfg_scope_names[CS_SINK], "sinks");
	ck_assert_str_eq(cfg_scope_names[CS_SPOOL], "spool");
	ck_assert_str_eq(cfg_scope_names[CS_ROUTE], "routes");
}
END_TEST

/* The defaults written in the table are what a config without them gets. */
START_TEST(table_defaults_are_applied)
{
	struct config *cf = load_ok(LST "routes = ( { name = \"r\"; drop = true; } );\n");
	char buf[256], want[256];

	for (const struct cfg_setting *s = cfg_settings; s->name; s++) {
		const void *base = s->scope == CS_LISTENER ? (const void *)&cf->listeners[0] :
		    s->scope == CS_TLS ? (const void *)&cf->listeners[0].tls :
		    s->scope == CS_SINK ? (const void *)&cf->sinks[0] :
		    s->scope == CS_SPOOL ? (const void *)&cf->sinks[0].spool :
		    s->scope == CS_ROUTE ? (const void *)&cf->routes[0] : (const void *)cf;

		if (s->def == NULL || (s->scope == CS_ROUTE && strcmp(s->name, "drop") == 0))
			continue;
		if (s->scope == CS_LISTENER && strcmp(s->name, "name") == 0)
			continue;	/* empty means the listen text */
		if (s->type == CT_STRING || s->type == CT_ENUM || s->type == CT_WORKERS ||
		    (s->type == CT_SIZE && strcmp(s->def, "0") != 0))
			snprintf(want, sizeof(want), "\"%s\"", s->def);
		else if (s->type == CT_NAMES)
			snprintf(want, sizeof(want), "[ ]");
		else
			snprintf(want, sizeof(want), "%s", s->def);
		ck_assert_msg(strcmp(cfg_format(s, base, buf, sizeof(buf)), want) == 0,
		    "%s: default %s, got %s", s->name, want, buf);
	}
	cfg_free(cf);
}
END_TEST

START_TEST(type_names)
{
	ck_assert_str_eq(cfg_type_name(setting(CS_LISTENER, "backlog")), "an integer");
	ck_assert_str_eq(cfg_type_name(setting(CS_MAIN, "shutdown_timeout")), "a number of seconds");
	ck_assert_str_eq(cfg_type_name(setting(CS_MAIN, "pid_file")), "a string");
	ck_assert_str_eq(cfg_type_name(setting(CS_LOG, "level")), "a string");
	ck_assert_str_eq(cfg_type_name(setting(CS_MAIN, "workers")), "\"auto\" or an integer");
	ck_assert_str_eq(cfg_type_name(setting(CS_LISTENER, "listen")), "an address string");
	ck_assert_str_eq(cfg_type_name(setting(CS_LISTENER, "proxy_protocol")), "true or false");
}
END_TEST

START_TEST(format)
{
	struct config *cf = load_ok(
	    "workers = 3;\nshutdown_timeout = 2.5;\n"
	    "pid_file = \"/tmp/a \\\"b\\\" \\\\ c\\td\";\n"
	    "log = { level = \"warning\"; };\n"
	    "listeners = ( { listen = \"[::1]:1\"; accept_mode = \"reuseport\"; backlog = 77; } );\n");
	const struct listener_cfg *l = &cf->listeners[0];
	char buf[256], tiny[8];

	ck_assert_str_eq(cfg_format(setting(CS_MAIN, "workers"), cf, buf, sizeof(buf)), "3");
	ck_assert_str_eq(cfg_format(setting(CS_MAIN, "worker_connections"), cf, buf, sizeof(buf)),
	    "10000");
	ck_assert_str_eq(cfg_format(setting(CS_MAIN, "shutdown_timeout"), cf, buf, sizeof(buf)), "2.5");
	ck_assert_str_eq(cfg_format(setting(CS_MAIN, "pid_file"), cf, buf, sizeof(buf)),
	    "\"/tmp/a \\\"b\\\" \\\\ c\\x09d\"");
	ck_assert_str_eq(cfg_format(setting(CS_MAIN, "user"), cf, buf, sizeof(buf)), "\"\"");
	ck_assert_str_eq(cfg_format(setting(CS_LOG, "level"), cf, buf, sizeof(buf)), "\"warning\"");
	ck_assert_str_eq(cfg_format(setting(CS_LOG, "target"), cf, buf, sizeof(buf)), "\"syslog\"");
	ck_assert_str_eq(cfg_format(setting(CS_LISTENER, "listen"), l, buf, sizeof(buf)),
	    "\"[::1]:1\"");
	ck_assert_str_eq(cfg_format(setting(CS_LISTENER, "name"), l, buf, sizeof(buf)), "\"[::1]:1\"");
	ck_assert_str_eq(cfg_format(setting(CS_LISTENER, "accept_mode"), l, buf, sizeof(buf)),
	    "\"reuseport\"");
	ck_assert_str_eq(cfg_format(setting(CS_LISTENER, "backlog"), l, buf, sizeof(buf)), "77");
	ck_assert_str_eq(cfg_format(setting(CS_LISTENER, "proxy_protocol"), l, buf, sizeof(buf)),
	    "false");
	/* A small buffer: cut short but still a closed, terminated string. */
	ck_assert_str_eq(cfg_format(setting(CS_MAIN, "pid_file"), cf, tiny, sizeof(tiny)), "\"/\"");
	cf->workers_auto = 1;
	ck_assert_str_eq(cfg_format(setting(CS_MAIN, "workers"), cf, buf, sizeof(buf)), "\"auto\"");
	cfg_free(cf);
}
END_TEST

/* What `ingestd -T` prints, exactly. */
START_TEST(dump_text)
{
	struct config *cf = load_ok(
	    "workers = 3;\nworker_connections = 250;\nuser = \"root\";\ngroup = \"root\";\n"
	    "pid_file = \"/tmp/x.pid\";\nshutdown_timeout = 0.5;\n"
	    "log = { level = \"debug\"; target = \"stderr\"; };\n"
	    "listeners = (\n"
	    "  { name = \"syslog\"; listen = \"*:5514\"; backlog = 128; accept_mode = \"reuseport\";\n"
	    "    framing = \"lf\"; format = \"syslog\"; max_record = 1000; sinks = [ \"b\", \"a\" ]; },\n"
	    "  { listen = \"[::1]:6514\"; on_parse_error = \"drop\"; max_record = \"1M\";\n"
	    "    idle_timeout = 0; record_timeout = 2.5; allow = [ \"10.0.0.0/8\", \"::1\" ];\n"
	    "    deny = [ \"10.1.0.0/16\" ]; max_connections = 500; max_connections_per_ip = 20;\n"
	    "    ipv6_prefix = 56; protocol = \"relp\"; send_timeout = 0.5; proxy_protocol = true; }\n"
	    ");\n"
	    "sinks = ( { name = \"a\"; path = \"/tmp/a-%Y.jsonl\"; queue = 1048576; },\n"
	    "  { name = \"b\"; type = \"stdout\"; flush_interval = 1.25; sync = \"always\";\n"
	    "    overflow = \"drop\"; } );\n");
	char *text = dump_to_string(cf), want[4096];

	snprintf(want, sizeof(want),
	    "# effective configuration from %s\n"
	    "workers = 3;\n"
	    "worker_connections = 250;\n"
	    "user = \"root\";\n"
	    "group = \"root\";\n"
	    "pid_file = \"/tmp/x.pid\";\n"
	    "shutdown_timeout = 0.5;\n"
	    "handover = true;\n"
	    "sandbox = true;\n"
	    "core_dumps = false;\n"
	    "log = {\n"
	    "\tlevel = \"debug\";\n"
	    "\ttarget = \"stderr\";\n"
	    "};\n"
	    "stats = {\n"
	    "\tlisten = \"\";\n"
	    "\tsocket_user = \"\";\n"
	    "\tsocket_group = \"\";\n"
	    "\tsocket_mode = \"\";\n"
	    "};\n"
	    "listeners = (\n"
	    "\t{\n"
	    "\t\tname = \"syslog\";\n"
	    "\t\tlisten = \"*:5514\";\n"
	    "\t\tbacklog = 128;\n"
	    "\t\taccept_mode = \"reuseport\";\n"
	    "\t\tprotocol = \"tcp\";\n"
	    "\t\tproxy_protocol = false;\n"
	    "\t\tframing = \"lf\";\n"
	    "\t\tformat = \"syslog\";\n"
	    "\t\tmax_record = 1000;\n"
	    "\t\ton_parse_error = \"keep\";\n"
	    "\t\tsinks = [ \"b\", \"a\" ];\n"
	    "\t\tidle_timeout = 300;\n"
	    "\t\trecord_timeout = 10;\n"
	    "\t\tsend_timeout = 30;\n"
	    "\t\tmax_connections = 0;\n"
	    "\t\tmax_connections_per_ip = 0;\n"
	    "\t\tipv6_prefix = 64;\n"
	    "\t\ttimezone = \"\";\n"
	    "\t\trate_records = 0;\n"
	    "\t\trate_bytes = 0;\n"
	    "\t\trate_burst = 1;\n"
	    "\t\trate_action = \"throttle\";\n"
	    "\t\tallow = [ ];\n"
	    "\t\tdeny = [ ];\n"
	    "\t\trecv_buffer = \"4M\";\n"
	    "\t\tsocket_user = \"\";\n"
	    "\t\tsocket_group = \"\";\n"
	    "\t\tsocket_mode = \"\";\n"
	    "\t},\n"
	    "\t{\n"
	    "\t\tname = \"[::1]:6514\";\n"
	    "\t\tlisten = \"[::1]:6514\";\n"
	    "\t\tbacklog = 4096;\n"
	    "\t\taccept_mode = \"shared\";\n"
	    "\t\tprotocol = \"relp\";\n"
	    "\t\tproxy_protocol = true;\n"
	    "\t\tframing = \"auto\";\n"
	    "\t\tformat = \"auto\";\n"
	    "\t\tmax_record = \"1M\";\n"
	    "\t\ton_parse_error = \"drop\";\n"
	    "\t\tsinks = [ ];\n"
	    "\t\tidle_timeout = 0;\n"
	    "\t\trecord_timeout = 2.5;\n"
	    "\t\tsend_timeout = 0.5;\n"
	    "\t\tmax_connections = 500;\n"
	    "\t\tmax_connections_per_ip = 20;\n"
	    "\t\tipv6_prefix = 56;\n"
	    "\t\ttimezone = \"\";\n"
	    "\t\trate_records = 0;\n"
	    "\t\trate_bytes = 0;\n"
	    "\t\trate_burst = 1;\n"
	    "\t\trate_action = \"throttle\";\n"
	    "\t\tallow = [ \"10.0.0.0/8\", \"::1\" ];\n"
	    "\t\tdeny = [ \"10.1.0.0/16\" ];\n"
	    "\t\trecv_buffer = \"4M\";\n"
	    "\t\tsocket_user = \"\";\n"
	    "\t\tsocket_group = \"\";\n"
	    "\t\tsocket_mode = \"\";\n"
	    "\t}\n"
	    ");\n"
	    "sinks = (\n"
	    "\t{\n"
	    "\t\tname = \"a\";\n"
	    "\t\ttype = \"file\";\n"
	    "\t\tpath = \"/tmp/a-%%Y.jsonl\";\n"
	    "\t\tflush_interval = 0;\n"
	    "\t\tsync = \"none\";\n"
	    "\t\tqueue = \"1M\";\n"
	    "\t\toverflow = \"block\";\n"
	    "\t\tupstreams = [ ];\n"
	    "\t\tmode = \"failover\";\n"
	    "\t\tframing = \"lf\";\n"
	    "\t\tpayload = \"event\";\n"
	    "\t\tfields = [ ];\n"
	    "\t\tdrop_fields = [ ];\n"
	    "\t\trename = [ ];\n"
	    "\t\tstatic_fields = [ ];\n"
	    "\t\tprotocol = \"tcp\";\n"
	    "\t\trelp_window = 1024;\n"
	    "\t\tstream = \"ingestd\";\n"
	    "\t\tmaxlen = 0;\n"
	    "\t\tservers = [ ];\n"
	    "\t\tsubject = \"ingestd\";\n"
	    "\t\tuser = \"\";\n"
	    "\t\tpassword = \"\";\n"
	    "\t\ttoken = \"\";\n"
	    "\t\tcredentials = \"\";\n"
	    "\t\tmax_pending = 4096;\n"
	    "\t\tpublish_timeout = 5;\n"
	    "\t},\n"
	    "\t{\n"
	    "\t\tname = \"b\";\n"
	    "\t\ttype = \"stdout\";\n"
	    "\t\tpath = \"ingestd-events.jsonl\";\n"
	    "\t\tflush_interval = 1.25;\n"
	    "\t\tsync = \"always\";\n"
	    "\t\tqueue = \"16M\";\n"
	    "\t\toverflow = \"drop\";\n"
	    "\t\tupstreams = [ ];\n"
	    "\t\tmode = \"failover\";\n"
	    "\t\tframing = \"lf\";\n"
	    "\t\tpayload = \"event\";\n"
	    "\t\tfields = [ ];\n"
	    "\t\tdrop_fields = [ ];\n"
	    "\t\trename = [ ];\n"
	    "\t\tstatic_fields = [ ];\n"
	    "\t\tprotocol = \"tcp\";\n"
	    "\t\trelp_window = 1024;\n"
	    "\t\tstream = \"ingestd\";\n"
	    "\t\tmaxlen = 0;\n"
	    "\t\tservers = [ ];\n"
	    "\t\tsubject = \"ingestd\";\n"
	    "\t\tuser = \"\";\n"
	    "\t\tpassword = \"\";\n"
	    "\t\ttoken = \"\";\n"
	    "\t\tcredentials = \"\";\n"
	    "\t\tmax_pending = 4096;\n"
	    "\t\tpublish_timeout = 5;\n"
	    "\t}\n"
	    ");\n", path);
	ck_assert_str_eq(text, want);
	free(text);
	cfg_free(cf);
}
END_TEST

START_TEST(dump_text_auto_workers)
{
	struct config *cf = load_ok(LST);
	char *text = dump_to_string(cf), want[256];

	snprintf(want, sizeof(want), "# effective configuration from %s\n"
	    "# workers: \"auto\" is %ld on this machine\n"
	    "workers = \"auto\";\n", path, online_cpus());
	ck_assert_msg(strncmp(text, want, strlen(want)) == 0, "dump starts:\n%s", text);
	free(text);
	cfg_free(cf);
}
END_TEST

static const char *const round_trip_confs[] = {
	LST,
	"workers = 3;\nworker_connections = 250;\nuser = \"root\";\ngroup = \"root\";\n"
	"pid_file = \"/tmp/ingestd \\\"quoted\\\" \\\\ dir/x.pid\";\nshutdown_timeout = 0.5;\n"
	"log = { level = \"error\"; target = \"/var/log/ingestd.log\"; };\n"
	"listeners = (\n"
	"  { name = \"syslog\"; listen = \"*:5514\"; backlog = 128; accept_mode = \"reuseport\"; },\n"
	"  { listen = \"[::1]:6514\"; },\n"
	"  { name = \"local\\tsock\\x01\"; listen = \"/tmp/ingestd-unit.sock\"; }\n"
	");\n",
	("workers = 512;\nshutdown_timeout = 86400;\nlog = { level = \"notice\"; };\n"
	"listeners = ( { listen = \"[::]:1\"; backlog = 65535; } );\n"),
	"shutdown_timeout = 0;\nlisteners = ( { listen = \"127.0.0.1:1\"; } );\n",
	"listeners = ( { listen = \"127.0.0.1:1\"; proxy_protocol = true; },\n"
	"  { listen = \"127.0.0.1:2\"; proxy_protocol = false; } );\n",
	"shutdown_timeout = 2.25;\nlisteners = ( { listen = \"127.0.0.1:1\"; } );\n",
	"shutdown_timeout = 0.001;\nlisteners = ( { listen = \"127.0.0.1:1\"; } );\n",
	"shutdown_timeout = 999.999;\nlisteners = ( { listen = \"127.0.0.1:1\"; } );\n",
	LST "sinks = ( { name = \"f\"; type = \"forward\"; upstreams = [ \"127.0.0.1:1\" ];\n"
	"  protocol = \"relp\"; spool = { path = \"/tmp\"; max_size = \"2G\"; sync = \"none\"; }; } );\n",
	LST "routes = ( { name = \"noise\"; match = \"msg ~ \\\"^GET /(health|ping)\\\\\\\\b\\\"\";\n"
	"  drop = true; },\n { name = \"r\"; listeners = [ \"127.0.0.1:5514\" ];\n"
	"  match = \"severity <= warning and not app in [\\\"a b\\\", c]\"; sinks = [ \"default\" ];\n"
	"  final = false; } );\n",
};

START_TEST(dump_round_trip)
{
	struct config *cf = load_ok(round_trip_confs[_i]);
	struct config *again = dump_and_reload(cf);

	assert_cfg_equal(cf, again);
	cfg_free(again);
	cfg_free(cf);
}
END_TEST

START_TEST(dump_round_trip_embedded)
{
	char err[1024];
	struct config *cf = cfg_parse_string(cfg_embedded, CFG_EMBEDDED_NAME, err, sizeof(err));
	struct config *again;

	ck_assert_msg(cf != NULL, "%s", err);
	again = dump_and_reload(cf);
	assert_cfg_equal(cf, again);
	cfg_free(again);
	cfg_free(cf);
}
END_TEST

/* Seconds keep their milliseconds whatever their size (no "%g" rounding). */
START_TEST(dump_keeps_milliseconds_of_shutdown_timeout)
{
	struct config *cf = load_ok("shutdown_timeout = 1000.001;\n" LST);
	struct config *again;
	char buf[64];

	ck_assert_int_eq(cf->shutdown_timeout_ms, 1000001);
	ck_assert_str_eq(cfg_format(setting(CS_MAIN, "shutdown_timeout"), cf, buf, sizeof(buf)),
	    "1000.001");
	again = dump_and_reload(cf);
	ck_assert_int_eq(again->shutdown_timeout_ms, 1000001);
	cfg_free(again);
	cfg_free(cf);
}
END_TEST

/*
 * Two unnamed listeners on one address: the name defaults to the listen
 * text, but the error must blame the address the operator wrote.
 */
START_TEST(duplicate_address_of_unnamed_listeners_names_listen)
{
	ASSERT_ERROR(H2 "listeners = (\n"
	    "  { listen = \"127.0.0.1:1\"; },\n"
	    "  { listen = \"127.0.0.1:1\"; }\n"
	    ");\n", 5, "listeners[1].listen", "127.0.0.1:1 is already used by listeners[0]");
}
END_TEST

/* A long pid_file is compared whole on reload, not as a truncated prefix. */
START_TEST(long_pid_file_kept_whole_on_reload)
{
	char a[1400], b[1400], text[1600];
	struct config *cur, *next;

	memset(a, 'a', sizeof(a));
	memcpy(a, "/tmp/", 5);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[sizeof(b) - 5] = 'b';		/* differs near the end only */
	snprintf(text, sizeof(text), "pid_file = \"%s\";\n" LST, a);
	cur = load_ok(text);
	snprintf(text, sizeof(text), "pid_file = \"%s\";\n" LST, b);
	next = load_ok(text);
	cfg_keep_fixed(next, cur);
	ck_assert_msg(strcmp(next->pid_file, a) == 0,
	    "pid_file changed on reload: byte %zu is '%c', the running value has '%c'",
	    sizeof(b) - 5, next->pid_file[sizeof(b) - 5], a[sizeof(b) - 5]);
	cfg_free(next);
	cfg_free(cur);
}
END_TEST

START_TEST(keep_fixed)
{
	struct config *cur = load_ok(
	    "workers = 2;\npid_file = \"/tmp/ingestd-unit-a.pid\";\nshutdown_timeout = 30;\n"
	    "worker_connections = 100;\nlog = { level = \"info\"; target = \"syslog\"; };\n" LST);
	struct config *next = load_ok(
	    "workers = 4;\npid_file = \"/tmp/ingestd-unit-b.pid\";\nshutdown_timeout = 5;\n"
	    "worker_connections = 200;\nuser = \"root\";\n"
	    "log = { level = \"debug\"; target = \"stderr\"; };\n"
	    "listeners = ( { name = \"n\"; listen = \"127.0.0.1:6000\"; backlog = 9; } );\n");

	cfg_keep_fixed(next, cur);
	/* not reloadable: the running value stays */
	ck_assert_str_eq(next->pid_file, "/tmp/ingestd-unit-a.pid");
	ck_assert_ptr_ne(next->pid_file, cur->pid_file);	/* its own copy */
	/* reloadable: the new values */
	ck_assert_int_eq(next->workers, 4);
	ck_assert_int_eq(next->shutdown_timeout_ms, 5000);
	ck_assert_int_eq(next->worker_connections, 200);
	ck_assert_str_eq(next->user, "root");
	ck_assert_int_eq(next->log_level, LOG_LVL_DEBUG);
	ck_assert_str_eq(next->log_target, "stderr");
	ck_assert_str_eq(next->listeners[0].name, "n");
	ck_assert_str_eq(next->listeners[0].listen.text, "127.0.0.1:6000");
	ck_assert_int_eq(next->listeners[0].backlog, 9);
	/* the running config is untouched */
	ck_assert_str_eq(cur->pid_file, "/tmp/ingestd-unit-a.pid");
	ck_assert_int_eq(cur->workers, 2);
	ck_assert_int_eq(cur->log_level, LOG_LVL_INFO);
	cfg_free(next);
	cfg_free(cur);
}
END_TEST

START_TEST(keep_fixed_no_change)
{
	struct config *cur = load_ok("pid_file = \"/tmp/p.pid\";\n" LST);
	struct config *next = load_ok("pid_file = \"/tmp/p.pid\";\nworkers = 7;\n" LST);
	char *before = next->pid_file;

	cfg_keep_fixed(next, cur);
	ck_assert_ptr_eq(next->pid_file, before);	/* not even reallocated */
	ck_assert_str_eq(next->pid_file, "/tmp/p.pid");
	ck_assert_int_eq(next->workers, 7);
	cfg_free(next);
	cfg_free(cur);
}
END_TEST

/* The stats endpoint on a unix socket: its file's owner and mode, resolved; none set: -1. */
START_TEST(stats_unix_socket)
{
	struct config *cf = load_ok(
	    "stats = { listen = \"/run/ingestd/stats.sock\"; socket_user = \"root\"; "
	    "socket_group = \"root\"; socket_mode = \"0660\"; };\n" LST);
	struct config *plain = load_ok("stats = { listen = \"/run/ingestd/stats.sock\"; };\n" LST);

	ck_assert_int_eq(cf->stats_addr.ss.ss_family, AF_UNIX);
	ck_assert_int_eq(cf->stats_sock.uid, 0);
	ck_assert_int_eq(cf->stats_sock.gid, 0);
	ck_assert_int_eq(cf->stats_sock.perm, 0660);
	ck_assert_int_eq(plain->stats_sock.uid, -1);
	ck_assert_int_eq(plain->stats_sock.gid, -1);
	ck_assert_int_eq(plain->stats_sock.perm, -1);
	cfg_free(cf);
	cfg_free(plain);
}
END_TEST

/*
 * A UDP listener has a socket per worker (reuseport), a unixgram one a
 * socket every worker reads (shared), whatever accept_mode says; unix
 * sockets get their mode (0666 unless set) and owner.
 */
START_TEST(datagram_listeners)
{
	struct config *cf = load_ok(
	    "listeners = ( { listen = \"udp://127.0.0.1:514\"; accept_mode = \"shared\"; },\n"
	    "  { listen = \"unixgram:/tmp/log.sock\"; accept_mode = \"reuseport\"; "
	    "socket_mode = \"0620\"; socket_user = \"root\"; },\n"
	    "  { listen = \"/tmp/in.sock\"; },\n"
	    "  { listen = \"tcp://127.0.0.1:514\"; } );\n");

	ck_assert_int_eq(cf->nlisteners, 4);
	ck_assert(cf->listeners[0].datagram && cf->listeners[1].datagram);
	ck_assert(!cf->listeners[2].datagram && !cf->listeners[3].datagram);
	ck_assert_int_eq(cf->listeners[0].accept_mode, ACCEPT_REUSEPORT);
	ck_assert_int_eq(cf->listeners[1].accept_mode, ACCEPT_SHARED);
	ck_assert_int_eq(cf->listeners[0].recv_buffer, 4L << 20);
	ck_assert_int_eq(cf->listeners[1].sock.perm, 0620);
	ck_assert_int_eq(cf->listeners[1].sock.uid, 0);
	ck_assert_int_eq(cf->listeners[1].sock.gid, -1);
	ck_assert_int_eq(cf->listeners[2].sock.perm, -1);	/* the umask's */
	ck_assert_int_eq(cf->listeners[2].sock.uid, -1);
	ck_assert_int_eq(cf->listeners[0].sock.perm, 0666);
	/* the same port over UDP and TCP: two listeners, two sockets */
	ck_assert(!addr_equal(&cf->listeners[0].listen.addr, &cf->listeners[3].listen.addr));
	cfg_free(cf);
}
END_TEST

START_TEST(only_pid_file_and_accept_mode_need_a_restart)
{
	for (const struct cfg_setting *s = cfg_settings; s->name; s++)
		ck_assert_msg(s->reloadable == (strcmp(s->name, "pid_file") != 0 &&
		    strcmp(s->name, "accept_mode") != 0), "%s: reloadable is %d", s->name,
		    s->reloadable);
}
END_TEST

/*
 * A listener that stays on its address keeps its accept_mode on reload (the
 * socket is kept); a new address takes what the file says.
 */
START_TEST(keep_fixed_accept_mode_of_kept_listener)
{
	struct config *cur = load_ok("listeners = ( { listen = \"127.0.0.1:6000\"; } );\n");
	struct config *next = load_ok("listeners = (\n"
	    "  { listen = \"127.0.0.1:6000\"; accept_mode = \"reuseport\"; backlog = 5; },\n"
	    "  { listen = \"127.0.0.1:6001\"; accept_mode = \"reuseport\"; }\n);\n");

	cfg_keep_fixed(next, cur);
	ck_assert_int_eq(next->listeners[0].accept_mode, ACCEPT_SHARED);
	ck_assert_int_eq(next->listeners[0].backlog, 5);
	ck_assert_int_eq(next->listeners[1].accept_mode, ACCEPT_REUSEPORT);
	cfg_free(next);
	cfg_free(cur);
}
END_TEST

/* An error in an @include file names that file and its line. */
START_TEST(error_in_include_names_included_file)
{
	char inc[] = "/tmp/ingestd-unit-inc-XXXXXX", text[256], err[1024], want[1024];
	const char *part = "workers = 2;\n\nbogus = 1;\n";
	struct config *cf;
	int fd = mkstemp(inc);

	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(write(fd, part, strlen(part)), (ssize_t)strlen(part));
	close(fd);
	snprintf(text, sizeof(text), "@include \"%s\"\n" LST, inc);
	cf = load_text(text, err, sizeof(err));
	unlink(inc);
	ck_assert_ptr_null(cf);
	snprintf(want, sizeof(want), "%s:3: bogus: unknown setting", inc);
	ck_assert_str_eq(err, want);
}
END_TEST

#define LOOP(tc, fn, table) tcase_add_loop_test(tc, fn, 0, (int)(sizeof(table) / sizeof(table[0])))

/* The limits the documentation states are the ones the code applies. */
START_TEST(documented_limits)
{
	ck_assert_int_eq(atoi(CFG_MAX_LISTENERS_TEXT), CFG_MAX_LISTENERS);
	ck_assert_int_eq(atoi(CFG_MAX_SINKS_TEXT), CFG_MAX_SINKS);
}
END_TEST

Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *rd = tcase_create("read");
	TCase *err = tcase_create("errors");
	TCase *ok = tcase_create("values");
	TCase *tab = tcase_create("table_dump_reload");

	tcase_add_test(rd, missing_file);
	tcase_add_test(rd, syntax_error);
	tcase_add_test(rd, syntax_error_in_string);
	tcase_add_test(rd, documented_limits);
	suite_add_tcase(s, rd);

	LOOP(err, unknown_setting, unknown);
	LOOP(err, type_error, wrong_type);
	LOOP(err, range_error, out_of_range);
	LOOP(err, enum_error, bad_enum);
	LOOP(err, listen_error, bad_listen);
	LOOP(err, listeners_error, bad_listeners);
	LOOP(err, pipeline_error, bad_pipeline);
	tcase_add_test(err, pipeline_settings);
	LOOP(err, identity_error, bad_identity);
	tcase_add_test(err, missing_listeners);
	tcase_add_test(err, error_after_partial_load);
	tcase_add_test(err, error_message_is_truncated_safely);
	tcase_add_test(err, duplicate_address_of_unnamed_listeners_names_listen);
	suite_add_tcase(s, err);

	tcase_add_test(ok, defaults);
	tcase_add_test(ok, empty_log_group_gives_defaults);
	tcase_add_test(ok, everything_set);
	tcase_add_test(ok, workers);
	tcase_add_test(ok, seconds);
	tcase_add_test(ok, range_bounds_accepted);
	tcase_add_test(ok, log_levels);
	tcase_add_test(ok, embedded_default);
	tcase_add_test(ok, identity_ok);
	tcase_add_test(ok, refs);
	suite_add_tcase(s, ok);

	tcase_add_test(tab, table_is_consistent);
	tcase_add_test(tab, table_defaults_are_applied);
	tcase_add_test(tab, type_names);
	tcase_add_test(tab, format);
	tcase_add_test(tab, dump_text);
	tcase_add_test(tab, dump_text_auto_workers);
	LOOP(tab, dump_round_trip, round_trip_confs);
	tcase_add_test(tab, dump_round_trip_embedded);
	tcase_add_test(tab, dump_keeps_milliseconds_of_shutdown_timeout);
	tcase_add_test(tab, long_pid_file_kept_whole_on_reload);
	tcase_add_test(tab, keep_fixed);
	tcase_add_test(tab, keep_fixed_no_change);
	tcase_add_test(tab, only_pid_file_and_accept_mode_need_a_restart);
	tcase_add_test(tab, datagram_listeners);
	tcase_add_test(tab, stats_unix_socket);
	tcase_add_test(tab, keep_fixed_accept_mode_of_kept_listener);
	tcase_add_test(tab, error_in_include_names_included_file);
	suite_add_tcase(s, tab);
	return s;
}
