/*
 * event: records become JSON lines, written straight into a sink's buffer.
 *
 * The caller reserves EVENT_MAX bytes first, so nothing here allocates or
 * checks for room.
 */
#include <stdio.h>
#include <string.h>

#include "event.h"
#include "parse_syslog.h"

static const char *const facilities[24] = {
	"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
	"authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
	"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
};
static const char *const severities[8] = {
	"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
};

static void
put(struct obuf *o, const char *s, size_t n)
{
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

#define PUTS(o, lit)	put((o), (lit), sizeof(lit) - 1)

/* ,"key":"escaped value" for a present field */
static void
field(struct obuf *o, const char *key, size_t keylen, struct slice v)
{
	if (v.n == 0)
		return;
	put(o, key, keylen);
	json_string(o, v.p, v.n);
}

#define FIELD(o, key, v)	field((o), (key), sizeof(key) - 1, (v))

void
event_set_time(struct event_meta *m, const struct timespec *ts)
{
	struct tm tm;

	m->now = ts->tv_sec;
	gmtime_r(&ts->tv_sec, &tm);
	snprintf(m->received_at, sizeof(m->received_at), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    ts->tv_nsec / 1000);
}

struct sd_state {
	struct obuf	*o;
	const char	*id;		/* the element being written, NULL before the first */
};

static void
sd_param(void *arg, struct slice id, struct slice name, struct slice value)
{
	struct sd_state *st = arg;
	struct obuf *o = st->o;

	if (id.p != st->id) {
		if (st->id != NULL)
			PUTS(o, "},");
		json_string(o, id.p, id.n);
		PUTS(o, ":{");
		st->id = id.p;
	} else if (name.n) {
		PUTS(o, ",");
	}
	if (name.n) {
		json_string(o, name.p, name.n);
		PUTS(o, ":");
		json_sd_value(o, value.p, value.n);
	}
}

static void
put_syslog(struct obuf *o, const struct syslog_msg *m)
{
	struct sd_state st = { o, NULL };

	PUTS(o, ",\"facility\":\"");
	put(o, facilities[m->pri >> 3], strlen(facilities[m->pri >> 3]));
	PUTS(o, "\",\"severity\":\"");
	put(o, severities[m->pri & 7], strlen(severities[m->pri & 7]));
	PUTS(o, "\"");
	if (m->ts[0]) {
		PUTS(o, ",\"timestamp\":\"");
		put(o, m->ts, strlen(m->ts));
		PUTS(o, "\"");
	}
	FIELD(o, ",\"host\":", m->host);
	FIELD(o, ",\"app\":", m->app);
	FIELD(o, ",\"procid\":", m->procid);
	FIELD(o, ",\"msgid\":", m->msgid);
	if (m->sd.n) {
		PUTS(o, ",\"sd\":{");
		syslog_sd_walk(m->sd, sd_param, &st);
		PUTS(o, "}}");
	}
	FIELD(o, ",\"msg\":", m->msg);
}

static int
pick_format(int format, const char *rec, size_t len)
{
	if (format != FORMAT_AUTO)
		return format;
	if (len && rec[0] == '<')
		return FORMAT_SYSLOG;
	if (len && rec[0] == '{')
		return FORMAT_JSON;
	return FORMAT_RAW;
}

/*
 * Append the event for one record.  A record that fails to parse is kept
 * with its raw text, or dropped (out untouched) when the listener says so.
 */
enum event_result
event_encode(struct obuf *o, const struct event_meta *m, const struct listener_cfg *l,
    const char *rec, size_t len, int truncated)
{
	size_t start = o->len;
	const char *why = NULL;
	struct syslog_msg sm;
	int format = pick_format(l->format, rec, len);

	PUTS(o, "{\"received_at\":\"");
	put(o, m->received_at, strlen(m->received_at));
	PUTS(o, "\"");
	put(o, m->prefix, m->prefixlen);
	if (format == FORMAT_SYSLOG && syslog_parse(rec, len, m->now, &sm, &why) == 0) {
		put_syslog(o, &sm);
	} else if (format == FORMAT_JSON) {
		PUTS(o, ",\"body\":");
		if (json_copy_object(o, rec, len, &why) == -1)
			o->len -= sizeof(",\"body\":") - 1;
	}
	if (why != NULL) {
		if (l->on_parse_error == ON_ERROR_DROP) {
			o->len = start;
			return EVENT_DROPPED;
		}
		PUTS(o, ",\"parse_error\":");
		json_string(o, why, strlen(why));
	}
	if (format == FORMAT_RAW || why != NULL) {
		PUTS(o, ",\"msg\":");
		json_string(o, rec, len);
	}
	if (truncated)
		PUTS(o, ",\"truncated\":true");
	PUTS(o, "}\n");
	return why ? EVENT_PARSE_ERROR : EVENT_OK;
}
