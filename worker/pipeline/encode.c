/*
 * encode: records become JSON lines, written straight into a sink's buffer.
 *
 * The caller reserves ENCODE_MAX bytes first, so nothing here allocates or
 * checks for room.
 */
#include <stdio.h>
#include <string.h>

#include "encode.h"
#include "parse_syslog.h"

struct name {
	const char	*s;
	size_t		 n;
};

#define NAME(s)		{ (s), sizeof(s) - 1 }

/* The facility and severity of each PRI (facility * 8 + severity) as JSON members. */
#define PRI(f, s)	NAME(",\"facility\":\"" f "\",\"severity\":\"" s "\"")
#define FACILITY(f)	PRI(f, "emerg"), PRI(f, "alert"), PRI(f, "crit"), PRI(f, "err"), \
			PRI(f, "warning"), PRI(f, "notice"), PRI(f, "info"), PRI(f, "debug")

static const struct name pris[192] = {
	FACILITY("kern"), FACILITY("user"), FACILITY("mail"), FACILITY("daemon"),
	FACILITY("auth"), FACILITY("syslog"), FACILITY("lpr"), FACILITY("news"),
	FACILITY("uucp"), FACILITY("cron"), FACILITY("authpriv"), FACILITY("ftp"),
	FACILITY("ntp"), FACILITY("security"), FACILITY("console"), FACILITY("solaris-cron"),
	FACILITY("local0"), FACILITY("local1"), FACILITY("local2"), FACILITY("local3"),
	FACILITY("local4"), FACILITY("local5"), FACILITY("local6"), FACILITY("local7"),
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

/* received_at up to the microseconds, and the syslog clock: once a second. */
static void
set_second(struct encode_meta *m, time_t sec)
{
	struct tm tm;

	m->now = sec;
	syslog_clock_set(&m->clock, sec);
	gmtime_r(&sec, &tm);
	snprintf(m->received_at, sizeof(m->received_at), "%04d-%02d-%02dT%02d:%02d:%02d.",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	m->secondlen = strlen(m->received_at);
}

/*
 * Called for every read.  received_at reads as the one snprintf of
 * "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ" would: the part up to the '.' is
 * made when the second changes, and the microseconds go after it, by hand
 * when they have 6 digits and fit, else by snprintf, which cuts them where
 * the whole would have been cut.
 */
void
encode_set_time(struct encode_meta *m, const struct timespec *ts)
{
	long us = ts->tv_nsec / 1000;
	char *d;

	if (m->received_atlen == 0 || ts->tv_sec != m->now)
		set_second(m, ts->tv_sec);
	d = m->received_at + m->secondlen;
	if (us < 0 || us > 999999 || m->secondlen + 7 >= sizeof(m->received_at)) {
		snprintf(d, sizeof(m->received_at) - m->secondlen, "%06ldZ", us);
		m->received_atlen = strlen(m->received_at);
		return;
	}
	for (int i = 5; i >= 0; i--) {
		d[i] = '0' + us % 10;
		us /= 10;
	}
	d[6] = 'Z';
	d[7] = '\0';
	m->received_atlen = m->secondlen + 7;
}

/* The parameters of a record's structured data, as the walk gives them. */
struct sd_items {
	struct {
		struct slice	 id, name, value;	/* name empty: an element without any */
	}		 v[SYSLOG_SD_MAX];
	int		 n;
};

static void
sd_item(void *arg, struct slice id, struct slice name, struct slice value)
{
	struct sd_items *it = arg;

	if (it->n == SYSLOG_SD_MAX)
		return;		/* cannot happen: the parser refused more */
	it->v[it->n].id = id;
	it->v[it->n].name = name;
	it->v[it->n++].value = value;
}

static int
same(struct slice a, struct slice b)
{
	return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

/* Whether an item before i has i's id (by) or i's id and name (by and name). */
static int
seen_before(const struct sd_items *it, int i, int by_name)
{
	for (int j = 0; j < i; j++)
		if (same(it->v[j].id, it->v[i].id) && (!by_name || same(it->v[j].name, it->v[i].name)))
			return 1;
	return 0;
}

/* "name":"value", or "name":["v1","v2"] when the name comes more than once in the element. */
static void
sd_param(struct obuf *o, const struct sd_items *it, int i)
{
	int more = 0;

	for (int j = i + 1; j < it->n; j++)
		more += same(it->v[j].id, it->v[i].id) && same(it->v[j].name, it->v[i].name);
	json_string(o, it->v[i].name.p, it->v[i].name.n);
	PUTS(o, ":");
	if (more)
		PUTS(o, "[");
	json_sd_value(o, it->v[i].value.p, it->v[i].value.n);
	for (int j = i + 1; more && j < it->n; j++) {
		if (same(it->v[j].id, it->v[i].id) && same(it->v[j].name, it->v[i].name)) {
			PUTS(o, ",");
			json_sd_value(o, it->v[j].value.p, it->v[j].value.n);
		}
	}
	if (more)
		PUTS(o, "]");
}

/*
 * "sd":{"id":{"name":"value",...},...}: one object per SD-ID, in the order
 * they came, with the parameters of an SD-ID that came twice together, and
 * the values of a name that came twice in a list, so that no object has a
 * key twice.
 */
static void
put_sd(struct obuf *o, struct slice sd)
{
	static struct sd_items it;
	int first_id = 1;

	it.n = 0;
	syslog_sd_walk(sd, sd_item, &it);
	PUTS(o, ",\"sd\":{");
	for (int i = 0; i < it.n; i++) {
		int first = 1;

		if (seen_before(&it, i, 0))
			continue;
		if (!first_id)
			PUTS(o, ",");
		first_id = 0;
		json_string(o, it.v[i].id.p, it.v[i].id.n);
		PUTS(o, ":{");
		for (int j = i; j < it.n; j++) {
			if (!same(it.v[j].id, it.v[i].id) || it.v[j].name.n == 0 ||
			    seen_before(&it, j, 1))
				continue;
			if (!first)
				PUTS(o, ",");
			first = 0;
			sd_param(o, &it, j);
		}
		PUTS(o, "}");
	}
	PUTS(o, "}");
}

static void
put_syslog(struct obuf *o, const struct syslog_msg *m)
{
	put(o, pris[m->pri].s, pris[m->pri].n);
	if (m->tslen) {
		PUTS(o, ",\"timestamp\":\"");
		put(o, m->ts, m->tslen);
		PUTS(o, "\"");
	}
	FIELD(o, ",\"host\":", m->host);
	FIELD(o, ",\"app\":", m->app);
	FIELD(o, ",\"procid\":", m->procid);
	FIELD(o, ",\"msgid\":", m->msgid);
	if (m->sd.n)
		put_sd(o, m->sd);
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
 * The part of a source's events that stays the same: ,"peer":"...",
 * "listener":"..." and then more, fields already encoded (or NULL).  The
 * caller has made room for ENCODE_PREFIX_MAX of them.
 */
void
encode_prefix(struct obuf *o, const char *peer, const char *listener, const char *more)
{
	size_t nm = more ? strlen(more) : 0;

	memcpy(o->p + o->len, ",\"peer\":", 8);
	o->len += 8;
	json_string(o, peer, strlen(peer));
	memcpy(o->p + o->len, ",\"listener\":", 12);
	o->len += 12;
	json_string(o, listener, strlen(listener));
	if (nm)
		memcpy(o->p + o->len, more, nm);
	o->len += nm;
}

/* How a record is read: its format, and as syslog when it is. */
static inline __attribute__((always_inline)) void
parse(struct parsed *pr, const struct encode_meta *m, const struct listener_cfg *l,
    const char *rec, size_t len)
{
	struct syslog_clock zoned;
	const struct syslog_clock *clock = &m->clock;

	if (l->tz) {		/* the listener's zone for BSD timestamps */
		zoned = m->clock;
		zoned.tz = l->tz;
		clock = &zoned;
	}
	pr->format = pick_format(l->format, rec, len);
	pr->why = NULL;
	pr->syslog = pr->format == FORMAT_SYSLOG &&
	    syslog_parse_at(rec, len, clock, &pr->sm, &pr->why) == 0;
}

/*
 * The event of a parsed record.  A record that fails to parse is kept with
 * its raw text, or dropped (out untouched) when the listener says so.
 */
static inline __attribute__((always_inline)) enum encode_result
put_event(struct obuf *o, const struct encode_meta *m, const struct listener_cfg *l,
    const struct parsed *pr, const char *rec, size_t len, int truncated)
{
	size_t start = o->len;
	const char *why = pr->why;

	PUTS(o, "{\"received_at\":\"");
	put(o, m->received_at, m->received_atlen);
	PUTS(o, "\"");
	put(o, m->prefix, m->prefixlen);
	if (pr->syslog) {
		put_syslog(o, &pr->sm);
	} else if (pr->format == FORMAT_JSON) {
		PUTS(o, ",\"body\":");
		if (json_copy_object(o, rec, len, &why) == -1)
			o->len -= sizeof(",\"body\":") - 1;
	}
	if (why != NULL) {
		if (l->on_parse_error == ON_ERROR_DROP) {
			o->len = start;
			return ENCODE_DROPPED;
		}
		PUTS(o, ",\"parse_error\":");
		json_string(o, why, strlen(why));
	}
	if (pr->format == FORMAT_RAW || why != NULL) {
		PUTS(o, ",\"msg\":");
		json_string(o, rec, len);
	}
	if (truncated)
		PUTS(o, ",\"truncated\":true");
	PUTS(o, "}\n");
	return why ? ENCODE_PARSE_ERROR : ENCODE_OK;
}

void
encode_parse(struct parsed *pr, const struct encode_meta *m, const struct listener_cfg *l,
    const char *rec, size_t len)
{
	parse(pr, m, l, rec, len);
}

enum encode_result
encode_put(struct obuf *o, const struct encode_meta *m, const struct listener_cfg *l,
    const struct parsed *pr, const char *rec, size_t len, int truncated)
{
	return put_event(o, m, l, pr, rec, len, truncated);
}

/* Append the event for one record: encode_parse, then encode_put, in one. */
enum encode_result
encode_event(struct obuf *o, const struct encode_meta *m, const struct listener_cfg *l,
    const char *rec, size_t len, int truncated)
{
	struct parsed pr;

	parse(&pr, m, l, rec, len);
	return put_event(o, m, l, &pr, rec, len, truncated);
}
