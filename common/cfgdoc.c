/*
 * cfgdoc: render the settings table as documentation.
 *
 *   cfgdoc man man/ingestd.conf.5   the page, with the part between
 *                                   ".\" BEGIN SETTINGS" and ".\" END SETTINGS"
 *                                   rendered from the table
 *   cfgdoc conf                     the sample etc/ingestd.conf
 *
 * `make man` writes both; `make check` fails when the committed files differ.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define BEGIN_MARK	".\\\" BEGIN SETTINGS"
#define END_MARK	".\\\" END SETTINGS"
/* Values the sample config shows instead of the default (or for settings without one). */
static const char *const samples[][2] = {
	{ "listeners.listen", "127.0.0.1:5514" },
	{ "sinks.name", "default" },
	{ "stats.listen", "127.0.0.1:9514" },
	{ "tls.certificate", "/etc/ingestd/tls/server.pem" },
	{ "tls.key", "/etc/ingestd/tls/server.key" },
	{ "spool.path", "/var/lib/ingestd/spool/upstream" },
	{ "routes.name", "errors" },
};

static const char *const scope_titles[CS_COUNT] = {
	"Global settings", "The log group", "The stats group", "Listeners",
	"The tls group", "Sinks", "The spool group", "Routes",
};

static const char *const scope_intros[CS_COUNT] = {
	NULL,
	"Settings inside\n.Ic \"log = { ... };\"",
	"Settings inside\n.Ic \"stats = { ... };\" :\n"
	"the master's HTTP endpoint for metrics (see METRICS in\n.Xr ingestd 8 ) .",
	"Each element of the list\n.Ic \"listeners = ( { ... }, { ... } );\"\n"
	"is one listening socket with these settings, at most " CFG_MAX_LISTENERS_TEXT
	" of them.",
	"Settings inside a listener's or a forward sink's\n.Ic \"tls = { ... };\" .\n"
	"A listener with one speaks TLS (OpenSSL 3) for its protocol and framing:\n"
	"syslog over TLS as RFC 5425 describes it (octet-counted or LF), RELP over TLS,\n"
	"JSON and raw lines.\n"
	"With proxy_protocol, the PROXY header comes first, in clear text, then TLS.\n"
	"Not for datagram listeners.\n"
	"A forward sink with one connects to its upstreams over TLS and verifies them.\n"
	"Redis sinks cannot: Debian 12's hiredis has no TLS.\n"
	"See TLS in\n.Xr ingestd 8\n"
	"for a private CA in five commands, mutual TLS and rotation.",
	"Each element of the list\n.Ic \"sinks = ( { ... }, { ... } );\"\n"
	"is a named destination for events, at most " CFG_MAX_SINKS_TEXT " of them.\n"
	"Without a sinks list, there is one file sink named\n.Qq default\n"
	"with the defaults below.",
	"Settings inside a forward or redis sink's\n.Ic \"spool = { ... };\" :\n"
	"its queue on disk.\n"
	"With one, every event of the sink is written to the spool before it is sent, and\n"
	"counts as written (for the answers of RELP listeners) once it is there (and synced);\n"
	"the driver sends from the spool, oldest first, and an event leaves it only once the\n"
	"upstream took it (forward over RELP: answered; Redis: XADD answered).\n"
	"An outage of the upstream fills the disk, not memory, and stops no client until\n"
	"the spool is full.\n"
	"See SPOOL in\n.Xr ingestd 8 .",
	"Each element of the list\n.Ic \"routes = ( { ... }, { ... } );\"\n"
	"is a route, at most " CFG_MAX_ROUTES_TEXT " of them, looked at in order for every event:\n"
	"one that matches sends the event to its sinks (or drops it) and, unless it falls\n"
	"through, ends the search; an event no route takes goes to its listener's sinks.\n"
	"Without routes, each listener's events go to its sinks.\n"
	"See ROUTING below.",
};

/* Text for a troff body line: no leading dot or quote, backslashes escaped. */
static void
roff_text(const char *s, FILE *fp)
{
	int bol = 1;

	for (; *s; s++) {
		if (bol && (*s == '.' || *s == '\''))
			fputs("\\&", fp);
		if (*s == '\\')
			fputs("\\e", fp);
		else
			fputc(*s, fp);
		bol = *s == '\n';
		/* A sentence ends a line, as troff wants. */
		if (*s == '.' && s[1] == ' ') {
			fputc('\n', fp);
			s++;
			bol = 1;
		}
	}
	fputc('\n', fp);
}

/* A default as a literal; a long one (a cipher list) on a line of its own. */
static void
roff_default(const char *def, FILE *fp)
{
	if (strlen(def) > 40)
		fprintf(fp, "Default:\n.Bd -literal -offset indent\n%s\n.Ed\n", def);
	else
		fprintf(fp, "Default:\n.Ql %s .\n", def);
}

static void
roff_setting(const struct cfg_setting *s, FILE *fp)
{
	fprintf(fp, ".It Ic %s Ar %s\n", s->name, s->type == CT_ENUM ? s->choices :
	    s->type == CT_SECONDS ? "seconds" : s->type == CT_INT ? "number" :
	    s->type == CT_WORKERS ? "auto | number" : s->type == CT_SIZE ? "size" :
	    s->type == CT_NAMES ? "list" : s->type == CT_BOOL ? "true | false" : "string");
	roff_text(s->doc, fp);
	if (s->def == NULL)
		fputs("There is no default.\n", fp);
	else if (s->def[0] == '\0')
		fputs("Default: empty.\n", fp);
	else
		roff_default(s->def, fp);
	if (s->type == CT_INT || s->type == CT_SECONDS || s->type == CT_WORKERS || s->type == CT_SIZE)
		fprintf(fp, "From %ld to %ld%s.\n", s->min, s->max,
		    s->type == CT_SIZE ? " bytes" : "");
	fputs(s->reloadable ? "A reload applies a change.\n" :
	    "A change needs a restart; a reload keeps the running value.\n", fp);
}

static void
roff_settings(FILE *fp)
{
	fputs(BEGIN_MARK "\n.\\\" Rendered from the table in common/config.c by `make man`.\n", fp);
	for (int sc = 0; sc < CS_COUNT; sc++) {
		fprintf(fp, ".Ss %s\n", scope_titles[sc]);
		if (scope_intros[sc])
			fprintf(fp, "%s\n", scope_intros[sc]);
		fputs(".Bl -tag -width Ds\n", fp);
		for (const struct cfg_setting *s = cfg_settings; s->name; s++)
			if ((int)s->scope == sc)
				roff_setting(s, fp);
		fputs(".El\n", fp);
	}
	fputs(END_MARK "\n", fp);
}

static int
man(const char *path)
{
	char line[4096];
	int inside = 0, found = 0;
	FILE *fp = fopen(path, "r");

	if (fp == NULL) {
		perror(path);
		return 1;
	}
	while (fgets(line, sizeof(line), fp)) {
		if (strncmp(line, BEGIN_MARK, strlen(BEGIN_MARK)) == 0) {
			roff_settings(stdout);
			inside = found = 1;
		} else if (strncmp(line, END_MARK, strlen(END_MARK)) == 0) {
			inside = 0;
		} else if (!inside) {
			fputs(line, stdout);
		}
	}
	fclose(fp);
	if (!found)
		fprintf(stderr, "cfgdoc: %s has no \"%s\" line\n", path, BEGIN_MARK);
	return !found;
}

/* A '#' comment wrapped at 72 columns; indent is tabs. */
static void
comment(const char *indent, const char *text)
{
	const char *p = text;

	while (*p) {
		size_t room = 72 - 8 * strlen(indent), n = strlen(p);

		if (n > room) {
			n = room;
			while (n > 0 && p[n] != ' ')
				n--;
			if (n == 0)
				n = strcspn(p, " ");
		}
		printf("%s# %.*s\n", indent, (int)n, p);
		p += n;
		while (*p == ' ')
			p++;
	}
}

/* The sample value of a setting ("scope.name" in samples), or NULL. */
static const char *
sample(const struct cfg_setting *s)
{
	char key[128];

	snprintf(key, sizeof(key), "%s.%s", cfg_scope_names[s->scope], s->name);
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
		if (strcmp(samples[i][0], key) == 0)
			return samples[i][1];
	return NULL;
}

static void
conf_scope(enum cfg_scope sc, const char *indent, const char *lead)
{
	int first = 1;

	for (const struct cfg_setting *s = cfg_settings; s->name; s++) {
		char range[64] = "";

		if ((int)s->scope != (int)sc)
			continue;
		if (!first)
			printf("\n");
		first = 0;
		comment(lead[0] ? "" : indent, s->doc);
		if (s->type == CT_INT || s->type == CT_SECONDS || s->type == CT_WORKERS ||
		    s->type == CT_SIZE)
			snprintf(range, sizeof(range), "From %ld to %ld%s.", s->min, s->max,
			    s->type == CT_SIZE ? " bytes" : "");
		if (s->type == CT_ENUM)
			snprintf(range, sizeof(range), "One of %s.", s->choices);
		if (range[0] || !s->reloadable) {
			char more[160];

			snprintf(more, sizeof(more), "%s%s%s", range, range[0] && !s->reloadable ?
			    " " : "", s->reloadable ? "" : "Needs a restart to change.");
			comment(lead[0] ? "" : indent, more);
		}
		if (sample(s) != NULL)
			printf("%s%s%s = \"%s\";\n", lead, indent, s->name, sample(s));
		else if (s->type == CT_INT || s->type == CT_SECONDS || s->type == CT_BOOL)
			printf("%s%s%s = %s;\n", lead, indent, s->name, s->def);
		else if (s->type == CT_NAMES)
			printf("%s%s%s = [ ];\n", lead, indent, s->name);
		else
			printf("%s%s%s = \"%s\";\n", lead, indent, s->name, s->def);
	}
}

static int
conf(void)
{
	printf("# ingestd.conf: every setting, set to its default.  See ingestd.conf(5).\n"
	    "# Rendered from the table in common/config.c by `make man`.\n\n");
	conf_scope(CS_MAIN, "", "");
	printf("\nlog = {\n");
	conf_scope(CS_LOG, "\t", "");
	printf("};\n\nstats = {\n");
	conf_scope(CS_STATS, "\t", "");
	printf("};\n\n# One group per listening socket.  Syslog over UDP (RFC 5426) and the\n"
	    "# local socket of syslog(3) are datagram listeners, for example:\n"
	    "#\t{ name = \"udp\"; listen = \"udp://0.0.0.0:514\"; recv_buffer = \"8M\"; },\n"
	    "#\t{ name = \"local\"; listen = \"unixgram:/run/systemd/journal/syslog\"; }\n"
	    "listeners = (\n\t{\n");
	conf_scope(CS_LISTENER, "\t\t", "");
	printf("\n# TLS (see TLS in ingestd(8)): a tls group makes this listener a TLS\n"
	    "# listener.  Syslog over TLS usually listens on port 6514.  Uncomment\n"
	    "# the group, and set certificate and key at least.\n"
	    "#\t\ttls = {\n");
	conf_scope(CS_TLS, "\t\t\t", "#");
	printf("#\t\t};\n");
	printf("\t}\n);\n\n# One group per destination of events.  A forward sink takes a tls\n"
	    "# group with the same settings (certificate and key: its client\n"
	    "# certificate; server_name: the upstream's name).\nsinks = (\n\t{\n");
	conf_scope(CS_SINK, "\t\t", "");
	printf("\n# A spool (see SPOOL in ingestd(8)): a forward or redis sink's queue\n"
	    "# on disk, for upstream outages.  Uncomment the group and set path.\n"
	    "#\t\tspool = {\n");
	conf_scope(CS_SPOOL, "\t\t\t", "#");
	printf("#\t\t};\n");
	printf("\t}\n);\n");
	printf("\n# Routes (see ROUTING in ingestd.conf(5)), looked at in order for every\n"
	    "# event; an event no route takes goes to its listener's sinks.  For\n"
	    "# example, with sinks \"alerts\" and \"archive\":\n"
	    "#routes = (\n"
	    "#\t{ name = \"noise\"; match = \"msg contains \\\"GET /health\\\"\"; drop = true; },\n"
	    "#\t{ name = \"errors\"; match = \"severity <= err or facility in [auth, authpriv]\";\n"
	    "#\t  sinks = [ \"alerts\" ]; final = false; },\n"
	    "#\t{ name = \"all\"; sinks = [ \"archive\" ]; }\n"
	    "#);\n"
	    "# Each route has these settings:\n#\t{\n");
	conf_scope(CS_ROUTE, "\t\t", "#");
	printf("#\t}\n");
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "man") == 0)
		return man(argv[2]);
	if (argc == 2 && strcmp(argv[1], "conf") == 0)
		return conf();
	fprintf(stderr, "usage: cfgdoc man FILE | cfgdoc conf\n");
	return 64;
}
