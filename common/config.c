/*
 * config: parse and validate a libconfig file into a struct config, driven
 * by the settings table below.
 *
 * Every error names the file, the line and the setting:
 *   /etc/ingestd/ingestd.conf:12: listeners[0].backlog: must be from 1 to 65535
 */
#include <errno.h>
#include <grp.h>
#include <libconfig.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define M(f)	offsetof(struct config, f)
#define L(f)	offsetof(struct listener_cfg, f)

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
	  "A missing parent directory is created." },
	{ "shutdown_timeout", CS_MAIN, CT_SECONDS, "30", 0, 86400, NULL, 1, M(shutdown_timeout_ms),
	  "Seconds a draining worker (graceful stop or reload) keeps serving its open "
	  "connections before it closes them and exits." },
	{ "level", CS_LOG, CT_ENUM, "info", 0, 0, "error|warning|notice|info|debug", 1, M(log_level),
	  "Least severe message that is logged." },
	{ "target", CS_LOG, CT_STRING, "syslog", 0, 0, NULL, 1, M(log_target),
	  "Where ingestd logs: \"syslog\" (facility daemon), \"stderr\", or a file "
	  "path (reopened on SIGUSR1). The -f option always logs to stderr." },
	{ "name", CS_LISTENER, CT_STRING, "", 0, 0, NULL, 1, L(name),
	  "Name of the listener in log messages; empty means the listen address. "
	  "Names are unique." },
	{ "listen", CS_LISTENER, CT_LISTEN, NULL, 0, 0, NULL, 1, L(listen),
	  "Required. \"IPv4:port\", \"[IPv6]:port\", \"*:port\" (every IPv4 address) "
	  "or an absolute unix socket path." },
	{ "backlog", CS_LISTENER, CT_INT, "4096", 1, 65535, NULL, 1, L(backlog),
	  "Length of the kernel's queue of connections not yet accepted "
	  "(capped by net.core.somaxconn)." },
	{ "accept_mode", CS_LISTENER, CT_ENUM, "shared", 0, 0, "shared|reuseport", 0, L(accept_mode),
	  "\"shared\": one socket polled by every worker. \"reuseport\": one SO_REUSEPORT "
	  "socket per worker slot, kept across reloads; the kernel spreads connections "
	  "evenly, but a busy worker delays its own queue." },
	{ NULL, 0, 0, NULL, 0, 0, NULL, 0, 0, NULL }
};

const char *const cfg_scope_names[CS_COUNT] = { "", "log", "listeners" };

const char cfg_embedded[] =
    "pid_file = \"ingestd.pid\";\n"
    "listeners = ( { name = \"default\"; listen = \"127.0.0.1:5514\"; } );\n";

struct ctx {
	const char	*file;
	char		*err;
	size_t		 errlen;
};

/*
 * Report an error at a setting of the file, or at the file as a whole when
 * where is NULL (a setting missing altogether has no line).  libconfig knows
 * the file of each setting, so errors in @include files name that file.
 */
static int
fail(struct ctx *c, const config_setting_t *where, const char *setting, const char *fmt, ...)
{
	const char *file = where ? config_setting_source_file(where) : NULL;
	int line = where ? config_setting_source_line(where) : 0;
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (file == NULL)
		file = c->file;
	if (line > 0)
		snprintf(c->err, c->errlen, "%s:%d: %s: %s", file, line, setting, why);
	else
		snprintf(c->err, c->errlen, "%s: %s: %s", file, setting, why);
	return -1;
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
	[CT_LISTEN] = "an address string",
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
	case CT_LISTEN:
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

		if (scope == CS_MAIN && (strcmp(e->name, "log") == 0 ||
		    strcmp(e->name, "listeners") == 0))
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

static int
load_listeners(struct ctx *c, struct config *cf, config_setting_t *list)
{
	int n;

	if (list == NULL)
		return fail(c, NULL, "listeners", "at least one listener is required");
	if (!config_setting_is_list(list) && !config_setting_is_array(list))
		return fail(c, list, "listeners", "expected a list: ( { listen = \"...\"; } )");
	n = config_setting_length(list);
	if (n == 0)
		return fail(c, list, "listeners", "at least one listener is required");
	if (n > CFG_MAX_LISTENERS)
		return fail(c, list, "listeners", "at most %d listeners", CFG_MAX_LISTENERS);
	if ((cf->listeners = calloc(n, sizeof(*cf->listeners))) == NULL)
		fatal("calloc");
	for (int i = 0; i < n; i++) {
		config_setting_t *g = config_setting_get_elem(list, i);
		struct listener_cfg *l = &cf->listeners[i];
		char prefix[32];

		cf->nlisteners = i + 1;
		snprintf(prefix, sizeof(prefix), "listeners[%d].", i);
		if (!config_setting_is_group(g))
			return fail(c, g, "listeners", "expected a group { ... } for each listener");
		if (load_group(c, g, CS_LISTENER, l, prefix) == -1)
			return -1;
		if (l->name[0] == '\0')
			store_string(&l->name, l->listen.text);
	}
	return 0;
}

static int
check_listeners(struct ctx *c, const struct config *cf, const config_setting_t *list)
{
	for (int i = 0; i < cf->nlisteners; i++) {
		const struct listener_cfg *a = &cf->listeners[i];
		const config_setting_t *g = config_setting_get_elem(list, i);
		char name[64];

		for (int j = 0; j < i; j++) {
			const struct listener_cfg *b = &cf->listeners[j];

			if (addr_equal(&a->listen.addr, &b->listen.addr)) {
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

static struct config *
load(config_t *lc, const char *name, char *err, size_t errlen)
{
	struct ctx c = { name, err, errlen };
	config_setting_t *root = config_root_setting(lc), *log, *list;
	struct config *cf;

	if ((cf = calloc(1, sizeof(*cf))) == NULL || (cf->path = strdup(name)) == NULL)
		fatal("calloc");
	cf->refs = 1;
	log = config_setting_get_member(root, "log");
	list = config_setting_get_member(root, "listeners");
	if (log != NULL && !config_setting_is_group(log)) {
		fail(&c, log, "log", "expected a group { level = ...; }");
		goto bad;
	}
	if (load_group(&c, root, CS_MAIN, cf, "") == -1 ||
	    load_group(&c, log, CS_LOG, cf, "log.") == -1 ||
	    load_listeners(&c, cf, list) == -1 ||
	    check_listeners(&c, cf, list) == -1 ||
	    check_identity(&c, cf, lc) == -1)
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
	}
}

void
cfg_free(struct config *cf)
{
	if (cf == NULL)
		return;
	for (int i = 0; i < cf->nlisteners; i++)
		free_strings(CS_LISTENER, &cf->listeners[i]);
	free(cf->listeners);
	free_strings(CS_MAIN, cf);
	free_strings(CS_LOG, cf);
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
	size_t o = 0;

	buf[o++] = '"';
	for (; *s && o + 6 < size; s++) {
		unsigned char ch = *s;

		if (ch == '"' || ch == '\\')
			o += snprintf(buf + o, size - o, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			o += snprintf(buf + o, size - o, "\\x%02x", ch);
		else
			buf[o++] = ch;
	}
	buf[o++] = '"';
	buf[o] = '\0';
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

		int n = ms % 1000 ? 3 : 0;
		long frac = ms % 1000;

		/* exact milliseconds, without trailing zeros: 2.5, 1000.001, 30 */
		while (n > 0 && frac % 10 == 0) {
			frac /= 10;
			n--;
		}
		if (n == 0)
			snprintf(buf, size, "%ld", ms / 1000);
		else
			snprintf(buf, size, "%ld.%0*ld", ms / 1000, n, frac);
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

void
cfg_dump(const struct config *cf, FILE *fp)
{
	fprintf(fp, "# effective configuration from %s\n", cf->path);
	if (cf->workers_auto)
		fprintf(fp, "# workers: \"auto\" is %d on this machine\n", cf->workers);
	dump_scope(cf, CS_MAIN, "", fp);
	fprintf(fp, "log = {\n");
	dump_scope(cf, CS_LOG, "\t", fp);
	fprintf(fp, "};\nlisteners = (\n");
	for (int i = 0; i < cf->nlisteners; i++) {
		fprintf(fp, "\t{\n");
		dump_scope(&cf->listeners[i], CS_LISTENER, "\t\t", fp);
		fprintf(fp, "\t}%s\n", i + 1 < cf->nlisteners ? "," : "");
	}
	fprintf(fp, ");\n");
}
