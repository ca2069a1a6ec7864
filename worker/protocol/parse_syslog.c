/*
 * parse_syslog: RFC 5424 and RFC 3164 syslog records, parsed in place.
 *
 * The record is not NUL-terminated: every scanner takes the end pointer
 * and checks it before each byte it reads.  One pass, no allocation, no
 * locale: the character classes below are plain ASCII ranges.
 *
 * Leniency, where senders are sloppy but the meaning is clear:
 * - RFC 5424 header fields longer than the RFC limits are accepted (they
 *   must still be non-empty PRINTUSASCII), and so are SD names; a time
 *   fraction may have up to 9 digits (nanoseconds, as some libraries send).
 * - RFC 3164 never fails after a good PRI: a timestamp that is not
 *   recognised is part of the message, as RFC 3164 4.3.2 has relays do.
 */
#include <stdint.h>
#include <string.h>

#include "civil.h"
#include "parse_syslog.h"
#include "tz.h"

#define FRAC_MAX	9		/* digits of a time fraction */
#define FUTURE_MAX	(31 * 86400)	/* BSD stamps: seconds ahead of now */

_Static_assert(19 + 1 + FRAC_MAX + 6 < sizeof(((struct syslog_msg *)0)->ts),
    "the longest RFC 3339 timestamp fits in ts");

/* Date and time of a timestamp; the year is not used for BSD ones. */
struct stamp {
	int	year, mon, day, hour, min, sec;
};

static const char *const TRUNCATED = "truncated header";
static const char *const BAD_SD = "bad structured data";

static int
digit(char c)
{
	return c >= '0' && c <= '9';
}

/* PRINTUSASCII (%d33-126): what RFC 5424 header fields are made of. */
#define PRINTUS(c)	((c) >= '!' && (c) <= '~')

static int
printus(char c)
{
	return PRINTUS(c);
}

/*
 * The classes that the scanning loops test byte after byte, looked up in a
 * table made by the compiler from these definitions, one load a byte:
 * C_HOST  host names, IPv4 and IPv6 addresses; ':' alone does not make a tag;
 * C_TAG   any printable but ':' and '[', which end a tag;
 * C_SDNAME  SD-NAME: printable but '=', ']' and '"' (SP is not printable here).
 */
enum { C_HOST = 1, C_TAG = 2, C_SDNAME = 4 };

#define HOSTCH(c)	(((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || \
			    ((c) >= '0' && (c) <= '9') || (c) == '.' || (c) == '_' || \
			    (c) == '-' || (c) == ':')
#define TAGCH(c)	(PRINTUS(c) && (c) != ':' && (c) != '[')
#define SDNAMECH(c)	(PRINTUS(c) && (c) != '=' && (c) != ']' && (c) != '"')
#define CLASS(c)	((HOSTCH(c) ? C_HOST : 0) | (TAGCH(c) ? C_TAG : 0) | \
			    (SDNAMECH(c) ? C_SDNAME : 0))
#define CLASS4(c)	CLASS(c), CLASS((c) + 1), CLASS((c) + 2), CLASS((c) + 3)
#define CLASS16(c)	CLASS4(c), CLASS4((c) + 4), CLASS4((c) + 8), CLASS4((c) + 12)
#define CLASS64(c)	CLASS16(c), CLASS16((c) + 16), CLASS16((c) + 32), CLASS16((c) + 48)

static const unsigned char classes[256] = {
	CLASS64(0), CLASS64(64), CLASS64(128), CLASS64(192)
};

static int
hostch(char c)
{
	return classes[(unsigned char)c] & C_HOST;
}

static int
tagch(char c)
{
	return classes[(unsigned char)c] & C_TAG;
}

static int
sdnamech(char c)
{
	return classes[(unsigned char)c] & C_SDNAME;
}

static struct slice
slice(const char *p, const char *e)
{
	struct slice s = { p, (size_t)(e - p) };

	return s;
}

/* Two digits at p (both readable) as a number in [lo, hi], else -1. */
static int
num2(const char *p, int lo, int hi)
{
	int v;

	if (!digit(p[0]) || !digit(p[1]))
		return -1;
	v = (p[0] - '0') * 10 + (p[1] - '0');
	return v >= lo && v <= hi ? v : -1;
}

/* "HH:MM:SS" at p, 8 readable bytes; a leap second is allowed. */
static int
hms(const char *p, struct stamp *t)
{
	return (t->hour = num2(p, 0, 23)) >= 0 && p[2] == ':' &&
	    (t->min = num2(p + 3, 0, 59)) >= 0 && p[5] == ':' &&
	    (t->sec = num2(p + 6, 0, 60)) >= 0;
}

static int	monthday(int mon, int day);

/* "YYYY-MM-DDTHH:MM:SS", 19 readable bytes at p, a real date (no Feb 29 of a common year). */
static int
datetime(const char *p, struct stamp *t)
{
	int hi, lo;

	if ((hi = num2(p, 0, 99)) < 0 || (lo = num2(p + 2, 0, 99)) < 0)
		return 0;
	t->year = hi * 100 + lo;
	return p[4] == '-' && (t->mon = num2(p + 5, 1, 12)) >= 0 &&
	    p[7] == '-' && (t->day = num2(p + 8, 1, 31)) >= 0 &&
	    monthday(t->mon, t->day) && (t->mon != 2 || t->day != 29 || civil_leap(t->year)) &&
	    (p[10] == 'T' || p[10] == 't') && hms(p + 11, t);
}

static size_t	local_time(const char *, const char *);

/* Length of "Z" or "+HH:MM" / "-HH:MM" at p, else 0. */
static size_t
offset(const char *p, const char *e)
{
	if (p < e && (*p == 'Z' || *p == 'z'))
		return 1;
	if (e - p >= 6 && (*p == '+' || *p == '-') && num2(p + 1, 0, 23) >= 0 &&
	    p[3] == ':' && num2(p + 4, 0, 59) >= 0)
		return 6;
	return 0;
}

/*
 * Length of the RFC 3339 timestamp at p, or 0.  At most 19 + 1 + FRAC_MAX
 * + 6 = 35 bytes, so it always fits in struct syslog_msg's ts.
 */
static size_t
rfc3339(const char *p, const char *e)
{
	size_t n = local_time(p, e), off;

	if (n == 0 || (off = offset(p + n, e)) == 0)
		return 0;
	return n + off;
}

/* Length of "YYYY-MM-DDTHH:MM:SS[.frac]" at p (no zone yet), or 0. */
static size_t
local_time(const char *p, const char *e)
{
	struct stamp t;
	const char *q = p + 19, *frac;

	if (e - p < 19 || !datetime(p, &t))
		return 0;
	if (q < e && *q == '.') {
		for (frac = ++q; q < e && q - frac < FRAC_MAX && digit(*q); q++)
			;
		if (q == frac)
			return 0;
	}
	return (size_t)(q - p);
}

/* Three bytes as one number, for a switch on month names. */
#define NAME3(a, b, c)	((unsigned)(a) << 16 | (unsigned)(b) << 8 | (unsigned)(c))

/*
 * "Jan".."Dec" as 1..12, English whatever the case; 3 readable bytes.
 * | 0x20 makes an ASCII capital small and no other byte a small letter.
 */
static int
month(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	switch (NAME3(u[0] | 0x20, u[1] | 0x20, u[2] | 0x20)) {
	case NAME3('j', 'a', 'n'):	return 1;
	case NAME3('f', 'e', 'b'):	return 2;
	case NAME3('m', 'a', 'r'):	return 3;
	case NAME3('a', 'p', 'r'):	return 4;
	case NAME3('m', 'a', 'y'):	return 5;
	case NAME3('j', 'u', 'n'):	return 6;
	case NAME3('j', 'u', 'l'):	return 7;
	case NAME3('a', 'u', 'g'):	return 8;
	case NAME3('s', 'e', 'p'):	return 9;
	case NAME3('o', 'c', 't'):	return 10;
	case NAME3('n', 'o', 'v'):	return 11;
	case NAME3('d', 'e', 'c'):	return 12;
	default:			return 0;
	}
}

/* Feb 29 passes: whether its year is leap is only known later. */
static int
monthday(int mon, int day)
{
	static const int days[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return day >= 1 && day <= days[mon - 1];
}

/*
 * Length of the BSD timestamp "Mmm dd hh:mm:ss" at p, else 0.  The day may
 * be "dd", " d" or "d": senders pad it with a space, a zero or nothing.
 */
static size_t
bsdstamp(const char *p, const char *e, struct stamp *t)
{
	size_t i;

	if (e - p < 14 || (t->mon = month(p)) == 0 || p[3] != ' ')
		return 0;
	if (p[4] == ' ' && digit(p[5])) {
		t->day = p[5] - '0';
		i = 6;
	} else if ((t->day = num2(p + 4, 0, 99)) >= 0)
		i = 6;
	else if (digit(p[4])) {
		t->day = p[4] - '0';
		i = 5;
	} else
		return 0;
	if ((size_t)(e - p) < i + 9 || p[i] != ' ' || !hms(p + i + 1, t) ||
	    !monthday(t->mon, t->day))
		return 0;
	return i + 9;
}

static void
put2(char *d, int v)
{
	d[0] = '0' + v / 10;
	d[1] = '0' + v % 10;
}

void
syslog_clock_set(struct syslog_clock *c, time_t now)
{
	c->tz = NULL;
	c->now = now;
	c->year = civil_year(civil_floor_div(now, 86400));
	if (c->year < 1 || c->year > 9999)
		return;
	for (int m = 1; m <= 12; m++)
		c->month_day[m - 1] = civil_days(c->year, m, 1);
	put2(c->year_text, (int)(c->year / 100));
	put2(c->year_text + 2, (int)(c->year % 100));
}

/*
 * A BSD timestamp has no year: take now's (UTC), or the one before when
 * that would put the message more than FUTURE_MAX ahead of now (December
 * logs read in January).  Feb 29 of a common year is a sender's broken
 * clock: it goes to the latest leap year before, so ts is always a real
 * date.  With now outside years 1..9999, ts is left empty.  hms is the
 * stamp's "HH:MM:SS", which is already as RFC 3339 writes it.
 */
static void	zoned(struct syslog_msg *, const struct stamp *, const char *,
		    const struct syslog_clock *);

/* "YYYY-MM-DDTHH:MM:SS" into ts: the year's digits from year_text when given. */
static inline __attribute__((always_inline)) void
put_date(char *ts, int64_t y, const char *year_text, const struct stamp *t, const char *hms)
{
	if (year_text) {
		memcpy(ts, year_text, 4);
	} else {
		put2(ts, (int)(y / 100));
		put2(ts + 2, (int)(y % 100));
	}
	ts[4] = '-';
	put2(ts + 5, t->mon);
	ts[7] = '-';
	put2(ts + 8, t->day);
	ts[10] = 'T';
	memcpy(ts + 11, hms, 8);
}

static void
bsdformat(struct syslog_msg *m, const struct stamp *t, const char *hms,
    const struct syslog_clock *c)
{
	int64_t y = c->year, secs;
	char *ts = m->ts;

	if (c->tz) {
		zoned(m, t, hms, c);
		return;
	}
	if (y < 1 || y > 9999)
		return;
	/* Days count on linearly past a month's end: Feb 29 of a common year is Mar 1. */
	secs = (c->month_day[t->mon - 1] + t->day - 1) * 86400 +
	    t->hour * 3600 + t->min * 60 + t->sec;
	if (secs - c->now > FUTURE_MAX)
		y--;
	if (t->mon == 2 && t->day == 29)
		while (!civil_leap(y))
			y--;
	put_date(ts, y, y == c->year ? c->year_text : NULL, t, hms);
	ts[19] = 'Z';
	ts[20] = '\0';
	m->tslen = 20;
}

/*
 * A BSD timestamp in the clock's zone: the year as bsdformat takes it,
 * but from now's local date, and the offset of that wall-clock time
 * (tz_offset_local: a time in a gap takes the offset before it, one in an
 * overlap the first of its two).
 */
static void
zoned(struct syslog_msg *m, const struct stamp *t, const char *hms, const struct syslog_clock *c)
{
	int64_t now = c->now + tz_offset_utc(c->tz, c->now);
	int64_t y = civil_year(civil_floor_div(now, 86400));
	int64_t secs = t->hour * 3600 + t->min * 60 + t->sec, local;
	int32_t off;
	char *ts = m->ts;

	if (y < 2 || y > 9999)
		return;
	if ((civil_days(y, t->mon, 1) + t->day - 1) * 86400 + secs - now > FUTURE_MAX)
		y--;
	if (t->mon == 2 && t->day == 29)
		while (!civil_leap(y))
			y--;
	local = (civil_days(y, t->mon, 1) + t->day - 1) * 86400 + secs;
	off = tz_offset_local(c->tz, local);
	put_date(ts, y, NULL, t, hms);
	ts[19] = off < 0 ? '-' : '+';
	off = off < 0 ? -off : off;
	put2(ts + 20, off / 3600 % 100);
	ts[22] = ':';
	put2(ts + 23, off / 60 % 60);
	ts[25] = '\0';
	m->tslen = 25;
}

static void
copyts(struct syslog_msg *m, const char *p, size_t n)
{
	memcpy(m->ts, p, n);
	m->ts[n] = '\0';
	m->tslen = n;
}

/* "<" 1-3 digits ">", no leading zero but in "<0>"; p[0] is '<'. */
static const char *
pri(const char *p, const char *e, int *v, const char **why)
{
	const char *s = ++p;
	int n = 0;

	for (; p < e && p - s < 3 && digit(*p); p++)
		n = n * 10 + (*p - '0');
	if (p == s || p == e || *p != '>' || (*s == '0' && p - s > 1)) {
		*why = "no PRI";
		return NULL;
	}
	if (n > 191) {
		*why = "PRI out of range";
		return NULL;
	}
	*v = n;
	return p + 1;
}

/*
 * An RFC 5424 header field and its SP: one or more PRINTUSASCII, "-" for
 * absent.  Returns what follows, or NULL with *why set.
 */
static const char *
field(const char *p, const char *e, struct slice *f, const char *bad, const char **why)
{
	const char *s = p;

	while (p < e && printus(*p))
		p++;
	if (p == e) {
		*why = TRUNCATED;
		return NULL;
	}
	if (p == s || *p != ' ') {
		*why = bad;
		return NULL;
	}
	*f = slice(s, p);
	if (f->n == 1 && *s == '-')
		f->n = 0;
	return p + 1;
}

/* The RFC 5424 TIMESTAMP and its SP, copied as sent, "" for "-". */
static const char *
stamp5424(const char *p, const char *e, struct syslog_msg *m, const char **why)
{
	size_t n = 0;

	if (p < e && *p == '-')
		n = 1;
	else if ((n = rfc3339(p, e)) != 0)
		copyts(m, p, n);
	if (p + n == e) {
		*why = TRUNCATED;
		return NULL;
	}
	if (n == 0 || p[n] != ' ') {
		*why = "bad timestamp";
		return NULL;
	}
	return p + n + 1;
}

/* A run of SD-NAME characters at p: its end, or NULL when empty. */
static const char *
sdname(const char *p, const char *e)
{
	const char *s = p;

	while (p < e && sdnamech(*p))
		p++;
	return p == s ? NULL : p;
}

/*
 * A PARAM-VALUE up to its closing '"': the end of the value, or NULL.  A
 * backslash takes the next byte with it, which covers \" \\ \] and leaves
 * other pairs as they are, as RFC 5424 6.3.3 says.  An unescaped ']' is
 * taken as it comes: inside quotes its meaning is clear.
 */
static const char *
sdvalue(const char *p, const char *e)
{
	for (; p < e; p++) {
		if (*p == '"')
			return p;
		if (*p == '\\' && ++p == e)
			return NULL;
	}
	return NULL;
}

/*
 * One SD-ELEMENT "[id name="value" ...]" at p (p[0] is '['): returns what
 * follows it, or NULL when it is malformed.  With fn, calls it for every
 * parameter, or once with an empty name and value when there is none:
 * parsing and walking share this one grammar.  *items counts those calls.
 */
static const char *
sdelement(const char *p, const char *e, syslog_sd_fn *fn, void *arg, int *items)
{
	struct slice id, name, value;
	const char *q;
	int params = 0;

	if ((q = sdname(p + 1, e)) == NULL)
		return NULL;
	id = slice(p + 1, q);
	while (q < e && *q == ' ') {
		name.p = q + 1;
		if ((q = sdname(name.p, e)) == NULL || e - q < 2 || q[0] != '=' ||
		    q[1] != '"')
			return NULL;
		name.n = (size_t)(q - name.p);
		value.p = q + 2;
		if ((q = sdvalue(value.p, e)) == NULL)
			return NULL;
		value.n = (size_t)(q - value.p);
		q++;
		if (fn != NULL)
			fn(arg, id, name, value);
		params++;
	}
	if (q == e || *q != ']')
		return NULL;
	if (fn != NULL && params == 0)
		fn(arg, id, slice(q, q), slice(q, q));
	*items += params ? params : 1;
	return q + 1;
}

/* STRUCTURED-DATA, then the end or the SP before MSG. */
static const char *
sd5424(const char *p, const char *e, struct slice *sd, const char **why)
{
	const char *q = p;

	if (p == e) {
		*why = TRUNCATED;
		return NULL;
	}
	int items = 0;

	if (*p == '-')
		q = p + 1;
	else
		while (q < e && *q == '[')
			if ((q = sdelement(q, e, NULL, NULL, &items)) == NULL) {
				*why = BAD_SD;
				return NULL;
			}
	if (items > SYSLOG_SD_MAX) {
		*why = "more than " SYSLOG_SD_MAX_TEXT " structured data parameters";
		return NULL;
	}
	if (q == p || (q < e && *q != ' ')) {
		*why = BAD_SD;
		return NULL;
	}
	if (*p == '[')
		*sd = slice(p, q);
	return q < e ? q + 1 : q;
}

/* MSG: any bytes, without the UTF-8 BOM that says they are UTF-8. */
static struct slice
msg5424(const char *p, const char *e)
{
	if (e - p >= 3 && p[0] == '\xef' && p[1] == '\xbb' && p[2] == '\xbf')
		p += 3;
	return slice(p, e);
}

/* After "<PRI>1 ". */
static int
parse5424(const char *p, const char *e, struct syslog_msg *m, const char **why)
{
	if ((p = stamp5424(p, e, m, why)) == NULL ||
	    (p = field(p, e, &m->host, "bad hostname", why)) == NULL ||
	    (p = field(p, e, &m->app, "bad app name", why)) == NULL ||
	    (p = field(p, e, &m->procid, "bad procid", why)) == NULL ||
	    (p = field(p, e, &m->msgid, "bad msgid", why)) == NULL ||
	    (p = sd5424(p, e, &m->sd, why)) == NULL)
		return -1;
	m->version = 1;
	m->msg = msg5424(p, e);
	return 0;
}

/*
 * An RFC 3164 timestamp followed by SP or the end: BSD, RFC 3339, or an
 * RFC 3339 date and time without a zone (as syslog-ng's loggen and
 * ts-format(iso) on a local clock send it), read as UTC like a BSD one.
 * Returns what follows the SP and sets ts, or returns NULL.
 */
static const char *
stamp3164(const char *p, const char *e, const struct syslog_clock *c, struct syslog_msg *m)
{
	struct stamp t;
	size_t n;
	int bsd = 0, zoneless = 0;

	if ((n = bsdstamp(p, e, &t)) != 0)
		bsd = 1;
	else if ((n = rfc3339(p, e)) == 0) {
		if ((n = local_time(p, e)) == 0)
			return NULL;
		zoneless = 1;
	}
	if (p + n < e && p[n] != ' ')
		return NULL;
	if (bsd) {
		bsdformat(m, &t, p + n - 8, c);		/* a BSD stamp ends "HH:MM:SS" */
	} else {
		copyts(m, p, n);
		if (zoneless) {
			m->ts[n] = 'Z';
			m->ts[n + 1] = '\0';
			m->tslen = n + 1;
		}
	}
	return p + n < e ? p + n + 1 : p + n;
}

/*
 * The host name after a timestamp, as rsyslog guesses it: a token of
 * host-name characters followed by SP, not ending with ':' ("host:" is a
 * tag).  Returns what follows the SP, or p when there is none.
 */
static const char *
host3164(const char *p, const char *e, struct slice *host)
{
	const char *q = p;

	while (q < e && hostch(*q))
		q++;
	if (q == p || q == e || *q != ' ' || q[-1] == ':')
		return p;
	*host = slice(p, q);
	return q + 1;
}

/*
 * "tag: " or "tag[pid]: " at p (or the same ending the record): sets app
 * (and procid) and returns where the message starts, after the SP; or
 * returns p.  A colon without SP ("10:20:30", "http://") is not a tag.
 */
static const char *
tag3164(const char *p, const char *e, struct syslog_msg *m)
{
	const char *q = p, *tagend, *pid = NULL, *pidend = NULL;

	while (q < e && tagch(*q))
		q++;
	if (q == p)
		return p;
	tagend = q;
	if (q < e && *q == '[') {
		for (pid = ++q; q < e && printus(*q) && *q != '[' && *q != ']'; q++)
			;
		if (q == e || *q != ']')
			return p;
		pidend = q++;
	}
	if (q == e || *q != ':' || (++q < e && *q != ' '))
		return p;
	m->app = slice(p, tagend);
	if (pid != NULL)
		m->procid = slice(pid, pidend);
	return q < e ? q + 1 : q;
}

/* After "<PRI>": anything that is not "1 " is taken as RFC 3164. */
static void
parse3164(const char *p, const char *e, const struct syslog_clock *c, struct syslog_msg *m)
{
	const char *q;

	if ((q = stamp3164(p, e, c, m)) != NULL)
		p = host3164(q, e, &m->host);
	p = tag3164(p, e, m);
	m->msg = slice(p, e);
}

/*
 * After "<PRI>1 ": RFC 5424 when what follows can be read as the start of a
 * timestamp ("-", four digits and "-") or is nothing or a space (a broken
 * 5424 header); "<13>1 apple pie" is an RFC 3164 message that begins "1 ".
 */
static int
looks_5424(const char *p, const char *e)
{
	if (p == e || p[0] == '-' || p[0] == ' ')
		return 1;
	if (e - p < 5 || p[4] != '-')
		return 0;
	for (int i = 0; i < 4; i++)
		if (p[i] < '0' || p[i] > '9')
			return 0;
	return 1;
}

int
syslog_parse(const char *rec, size_t len, time_t now, struct syslog_msg *m,
    const char **why)
{
	struct syslog_clock c;

	syslog_clock_set(&c, now);
	return syslog_parse_at(rec, len, &c, m, why);
}

int
syslog_parse_at(const char *rec, size_t len, const struct syslog_clock *c,
    struct syslog_msg *m, const char **why)
{
	const char *p, *e;

	/* Checked before rec + len is formed: rec may be NULL when len is 0. */
	if (len < 3 || rec[0] != '<') {
		*why = "no PRI";
		return -1;
	}
	e = rec + len;
	m->version = 0;
	m->ts[0] = '\0';
	m->tslen = 0;
	m->host = m->app = m->procid = m->msgid = m->sd = m->msg = slice(rec, rec);
	if ((p = pri(rec, e, &m->pri, why)) == NULL)
		return -1;
	if (e - p >= 2 && p[0] == '1' && p[1] == ' ' && looks_5424(p + 2, e))
		return parse5424(p + 2, e, m, why);
	parse3164(p, e, c, m);
	return 0;
}

void
syslog_sd_walk(struct slice sd, syslog_sd_fn *fn, void *arg)
{
	const char *p, *e;
	int items = 0;

	if (sd.n == 0)
		return;
	p = sd.p;
	e = sd.p + sd.n;
	while (p != NULL && p < e && *p == '[')
		p = sdelement(p, e, fn, arg, &items);
}
