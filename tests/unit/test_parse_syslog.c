/*
 * worker/protocol/parse_syslog.c: RFC 5424 and RFC 3164 records, the examples of
 * both RFCs and what real senders write.
 *
 * Every record is parsed twice: as given, and from a malloc'd copy of
 * exactly its length, so that ASan catches a read past the end (records
 * are not NUL-terminated).  Both parses must agree.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse_syslog.h"
#include "tests.h"

#define NOW		((time_t)1795521600)	/* 2026-11-24T12:00:00Z */
#define JAN_5_2027	((time_t)1799107200)	/* 2027-01-05T00:00:00Z */
#define MAR_10_2028	((time_t)1836259200)	/* 2028-03-10T00:00:00Z */
#define JAN_10_2029	((time_t)1862697600)	/* 2029-01-10T00:00:00Z */

#define BOM		"\xef\xbb\xbf"

static char *copy;	/* exact-size copy of the record parsed last */
static size_t copylen;

static void
teardown(void)
{
	free(copy);
	copy = NULL;
}

static int
inside(struct slice s, const char *base, size_t len)
{
	return s.n == 0 || (s.p >= base && s.n <= len && s.p <= base + len - s.n);
}

static void
ck_same_slice(struct slice a, const char *abase, struct slice b, const char *bbase)
{
	ck_assert_uint_eq(a.n, b.n);
	if (a.n > 0)
		ck_assert_int_eq(a.p - abase, b.p - bbase);
}

static void
ck_same(const struct syslog_msg *a, const char *abase, const struct syslog_msg *b,
    const char *bbase)
{
	ck_assert_int_eq(a->pri, b->pri);
	ck_assert_int_eq(a->version, b->version);
	ck_assert_str_eq(a->ts, b->ts);
	ck_same_slice(a->host, abase, b->host, bbase);
	ck_same_slice(a->app, abase, b->app, bbase);
	ck_same_slice(a->procid, abase, b->procid, bbase);
	ck_same_slice(a->msgid, abase, b->msgid, bbase);
	ck_same_slice(a->sd, abase, b->sd, bbase);
	ck_same_slice(a->msg, abase, b->msg, bbase);
}

static void
ck_inside(const struct syslog_msg *m, const char *base, size_t len)
{
	ck_assert(inside(m->host, base, len));
	ck_assert(inside(m->app, base, len));
	ck_assert(inside(m->procid, base, len));
	ck_assert(inside(m->msgid, base, len));
	ck_assert(inside(m->sd, base, len));
	ck_assert(inside(m->msg, base, len));
	ck_assert_uint_le(strnlen(m->ts, sizeof(m->ts)), sizeof(m->ts) - 1);
	ck_assert_uint_eq(m->tslen, strlen(m->ts));
}

/* Parses rec as given and from an exact-size copy; m points into the copy. */
static int
parse_at(const char *rec, size_t len, time_t now, struct syslog_msg *m, const char **why)
{
	struct syslog_msg a;
	const char *awhy = NULL;
	int ra, r;

	free(copy);
	ck_assert_ptr_nonnull(copy = malloc(len > 0 ? len : 1));
	memcpy(copy, rec, len);
	copylen = len;
	ra = syslog_parse(rec, len, now, &a, &awhy);
	*why = NULL;
	r = syslog_parse(copy, len, now, m, why);
	ck_assert_int_eq(ra, r);
	if (r == -1) {
		ck_assert_ptr_nonnull(*why);
		ck_assert_str_eq(awhy, *why);
	} else {
		ck_assert_int_eq(r, 0);
		ck_same(&a, rec, m, copy);
		ck_inside(m, copy, len);
	}
	return r;
}

static int
slice_is(struct slice s, const char *want, size_t n)
{
	return s.n == n && (n == 0 || memcmp(s.p, want, n) == 0);
}

/* A slice equals a string literal; "" means absent. */
#define ck_slice(s, want) ck_assert_msg(slice_is((s), (want), sizeof(want) - 1), \
	"%s is \"%.*s\", want \"%s\"", #s, (int)(s).n, (s).p, (want))

#define P(rec)		parse_at((rec), sizeof(rec) - 1, NOW, &m, &why)
#define P_AT(rec, now)	parse_at((rec), sizeof(rec) - 1, (now), &m, &why)

/* Fails with the given reason. */
#define ck_bad(rec, reason) do {						\
	ck_assert_msg(P(rec) == -1, "accepted: %s", (rec));			\
	ck_assert_str_eq(why, (reason));					\
} while (0)

/* syslog_sd_walk's calls as "id|name|value;" ... */
struct walk {
	char	buf[1024];
	size_t	n;
};

static void
collect(void *arg, struct slice id, struct slice name, struct slice value)
{
	struct walk *w = arg;
	int n;

	n = snprintf(w->buf + w->n, sizeof(w->buf) - w->n, "%.*s|%.*s|%.*s;",
	    (int)id.n, id.p, (int)name.n, name.p, (int)value.n, value.p);
	ck_assert(n > 0 && (size_t)n < sizeof(w->buf) - w->n);
	w->n += (size_t)n;
}

static const char *
walk(struct slice sd)
{
	static struct walk w;

	w.n = 0;
	w.buf[0] = '\0';
	syslog_sd_walk(sd, collect, &w);
	return w.buf;
}

/* RFC 5424 6.5, example 1: no STRUCTURED-DATA, a BOM. */
START_TEST(rfc5424_example1)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - "
	    "ID47 - " BOM "'su root' failed for lonvick on /dev/pts/8"), 0);
	ck_assert_int_eq(m.pri, 34);
	ck_assert_int_eq(m.version, 1);
	ck_assert_str_eq(m.ts, "2003-10-11T22:14:15.003Z");
	ck_slice(m.host, "mymachine.example.com");
	ck_slice(m.app, "su");
	ck_slice(m.procid, "");
	ck_slice(m.msgid, "ID47");
	ck_slice(m.sd, "");
	ck_slice(m.msg, "'su root' failed for lonvick on /dev/pts/8");
}
END_TEST

/* RFC 5424 6.5, example 2: microseconds and an offset, no MSGID. */
START_TEST(rfc5424_example2)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc "
	    "8710 - - %% It's time to make the do-nuts."), 0);
	ck_assert_int_eq(m.pri, 165);
	ck_assert_int_eq(m.version, 1);
	ck_assert_str_eq(m.ts, "2003-08-24T05:14:15.000003-07:00");
	ck_slice(m.host, "192.0.2.1");
	ck_slice(m.app, "myproc");
	ck_slice(m.procid, "8710");
	ck_slice(m.msgid, "");
	ck_slice(m.sd, "");
	ck_slice(m.msg, "%% It's time to make the do-nuts.");
}
END_TEST

#define EX3_SD	"[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]"
#define EX3_WALK "exampleSDID@32473|iut|3;exampleSDID@32473|eventSource|Application;" \
	"exampleSDID@32473|eventID|1011;"

/* RFC 5424 6.5, example 3: STRUCTURED-DATA and a MSG. */
START_TEST(rfc5424_example3)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com "
	    "evntslog - ID47 " EX3_SD " " BOM "An application event log entry..."), 0);
	ck_assert_int_eq(m.pri, 165);
	ck_assert_int_eq(m.version, 1);
	ck_assert_str_eq(m.ts, "2003-10-11T22:14:15.003Z");
	ck_slice(m.host, "mymachine.example.com");
	ck_slice(m.app, "evntslog");
	ck_slice(m.procid, "");
	ck_slice(m.msgid, "ID47");
	ck_slice(m.sd, EX3_SD);
	ck_slice(m.msg, "An application event log entry...");
	ck_assert_str_eq(walk(m.sd), EX3_WALK);
}
END_TEST

/* RFC 5424 6.5, example 4: two SD elements and no MSG. */
START_TEST(rfc5424_example4)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com "
	    "evntslog - ID47 " EX3_SD "[examplePriority@32473 class=\"high\"]"), 0);
	ck_assert_int_eq(m.pri, 165);
	ck_assert_int_eq(m.version, 1);
	ck_assert_str_eq(m.ts, "2003-10-11T22:14:15.003Z");
	ck_slice(m.host, "mymachine.example.com");
	ck_slice(m.app, "evntslog");
	ck_slice(m.procid, "");
	ck_slice(m.msgid, "ID47");
	ck_slice(m.sd, EX3_SD "[examplePriority@32473 class=\"high\"]");
	ck_slice(m.msg, "");
	ck_assert_str_eq(walk(m.sd), EX3_WALK "examplePriority@32473|class|high;");
}
END_TEST

/* RFC 3164 5.4, example 1. */
START_TEST(rfc3164_example1)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for "
	    "lonvick on /dev/pts/8"), 0);
	ck_assert_int_eq(m.pri, 34);
	ck_assert_int_eq(m.version, 0);
	ck_assert_str_eq(m.ts, "2026-10-11T22:14:15Z");
	ck_slice(m.host, "mymachine");
	ck_slice(m.app, "su");
	ck_slice(m.procid, "");
	ck_slice(m.msgid, "");
	ck_slice(m.sd, "");
	ck_slice(m.msg, "'su root' failed for lonvick on /dev/pts/8");
}
END_TEST

/* RFC 3164 5.4, example 2: as sent (no PRI), then as a relay passes it on. */
START_TEST(rfc3164_example2)
{
	struct syslog_msg m;
	const char *why;

	ck_bad("Use the BFG!", "no PRI");
	ck_assert_int_eq(P("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!"), 0);
	ck_assert_int_eq(m.pri, 13);
	ck_assert_int_eq(m.version, 0);
	ck_assert_str_eq(m.ts, "2026-02-05T17:32:18Z");
	ck_slice(m.host, "10.0.0.99");
	ck_slice(m.app, "");		/* "Use" is followed by SP, not ':' */
	ck_slice(m.procid, "");
	ck_slice(m.msg, "Use the BFG!");
}
END_TEST

/*
 * RFC 3164 5.4, example 3: "CST 1987" after the timestamp is not syslog,
 * as the RFC says; "CST" looks like a host name, and the rest is MSG.
 */
START_TEST(rfc3164_example3)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% "
	    "It's time to make the do-nuts.  %%  Ingredients: Mix=OK, Jelly=OK # "
	    "Devices: Mixer=OK, Jelly_Injector=OK, Frier=OK # Transport: "
	    "Conveyer1=OK, Conveyer2=OK # %%"), 0);
	ck_assert_int_eq(m.pri, 165);
	ck_assert_str_eq(m.ts, "2026-08-24T05:34:00Z");
	ck_slice(m.host, "CST");
	ck_slice(m.app, "");
	ck_slice(m.procid, "");
	ck_slice(m.msg, "1987 mymachine myproc[10]: %% It's time to make the do-nuts.  "
	    "%%  Ingredients: Mix=OK, Jelly=OK # Devices: Mixer=OK, Jelly_Injector=OK, "
	    "Frier=OK # Transport: Conveyer1=OK, Conveyer2=OK # %%");
}
END_TEST

/* RFC 3164 5.4, example 4: a year first is no timestamp; all is MSG. */
START_TEST(rfc3164_example4)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org "
	    "10.1.2.3 sched[0]: That's All Folks!"), 0);
	ck_assert_int_eq(m.pri, 0);
	ck_assert_int_eq(m.version, 0);
	ck_assert_str_eq(m.ts, "");
	ck_slice(m.host, "");
	ck_slice(m.app, "");
	ck_slice(m.msg, "1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org "
	    "10.1.2.3 sched[0]: That's All Folks!");
}
END_TEST

/* util-linux logger --tcp --rfc5424 */
START_TEST(logger_rfc5424)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<13>1 2026-11-24T00:43:19.318123+00:00 host user - - "
	    "[timeQuality tzKnown=\"1\" isSynced=\"1\" syncAccuracy=\"12345\"] hello"), 0);
	ck_assert_int_eq(m.pri, 13);
	ck_assert_int_eq(m.version, 1);
	ck_assert_str_eq(m.ts, "2026-11-24T00:43:19.318123+00:00");
	ck_slice(m.host, "host");
	ck_slice(m.app, "user");
	ck_slice(m.procid, "");
	ck_slice(m.msgid, "");
	ck_slice(m.sd, "[timeQuality tzKnown=\"1\" isSynced=\"1\" syncAccuracy=\"12345\"]");
	ck_slice(m.msg, "hello");
	ck_assert_str_eq(walk(m.sd), "timeQuality|tzKnown|1;timeQuality|isSynced|1;"
	    "timeQuality|syncAccuracy|12345;");
}
END_TEST

/* util-linux logger --tcp --rfc3164: no host name. */
START_TEST(logger_rfc3164)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<13>Nov 24 00:43:19 user: hello"), 0);
	ck_assert_int_eq(m.pri, 13);
	ck_assert_int_eq(m.version, 0);
	ck_assert_str_eq(m.ts, "2026-11-24T00:43:19Z");
	ck_slice(m.host, "");		/* "user:" ends with ':': a tag */
	ck_slice(m.app, "user");
	ck_slice(m.procid, "");
	ck_slice(m.msg, "hello");
}
END_TEST

/* rsyslog's forwarding format, space-padded day. */
START_TEST(rsyslog_forward)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<30>Nov  4 09:05:02 myhost sshd[1234]: Accepted publickey"), 0);
	ck_assert_int_eq(m.pri, 30);
	ck_assert_str_eq(m.ts, "2026-11-04T09:05:02Z");
	ck_slice(m.host, "myhost");
	ck_slice(m.app, "sshd");
	ck_slice(m.procid, "1234");
	ck_slice(m.msgid, "");
	ck_slice(m.sd, "");
	ck_slice(m.msg, "Accepted publickey");
}
END_TEST

/* Cisco-ish: unpadded day, an address as host, a mnemonic as tag. */
START_TEST(cisco)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<189>Nov 4 09:05:02 10.0.0.1 %LINK-3-UPDOWN: Interface down"), 0);
	ck_assert_int_eq(m.pri, 189);
	ck_assert_str_eq(m.ts, "2026-11-04T09:05:02Z");
	ck_slice(m.host, "10.0.0.1");
	ck_slice(m.app, "%LINK-3-UPDOWN");
	ck_slice(m.procid, "");
	ck_slice(m.msg, "Interface down");
}
END_TEST

/* rsyslog's RFC 3164 with ISO dates: the timestamp is kept as sent. */
START_TEST(iso_3164)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<13>2026-11-24T00:43:19+01:00 host app: x"), 0);
	ck_assert_int_eq(m.version, 0);
	ck_assert_str_eq(m.ts, "2026-11-24T00:43:19+01:00");
	ck_slice(m.host, "host");
	ck_slice(m.app, "app");
	ck_slice(m.msg, "x");

	ck_assert_int_eq(P("<13>2026-11-24T00:43:19.123456Z fe80::1 app[7]: x"), 0);
	ck_assert_str_eq(m.ts, "2026-11-24T00:43:19.123456Z");
	ck_slice(m.host, "fe80::1");
	ck_slice(m.app, "app");
	ck_slice(m.procid, "7");
	ck_slice(m.msg, "x");

	/* Not a valid RFC 3339 timestamp (no such month, no such day): all of it is MSG. */
	ck_assert_int_eq(P("<13>2026-02-29T00:43:19Z host app: x"), 0);
	ck_assert_str_eq(m.ts, "");
	ck_slice(m.msg, "2026-02-29T00:43:19Z host app: x");
	ck_assert_int_eq(P("<13>2026-13-24T00:43:19Z host app: x"), 0);
	ck_assert_str_eq(m.ts, "");
	ck_slice(m.host, "");
	ck_slice(m.app, "");
	ck_slice(m.msg, "2026-13-24T00:43:19Z host app: x");
}
END_TEST

START_TEST(no_hostname)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<13>Nov 24 00:43:19 app[5]: x"), 0);
	ck_assert_str_eq(m.ts, "2026-11-24T00:43:19Z");
	ck_slice(m.host, "");		/* contains '[' */
	ck_slice(m.app, "app");
	ck_slice(m.procid, "5");
	ck_slice(m.msg, "x");

	/* The last token before the end is never a host name. */
	ck_assert_int_eq(P("<13>Nov 24 00:43:19 lonely"), 0);
	ck_slice(m.host, "");
	ck_slice(m.msg, "lonely");

	/* "host:x" has only host-name characters and does not end with ':'. */
	ck_assert_int_eq(P("<13>Nov 24 00:43:19 host:x app: y"), 0);
	ck_slice(m.host, "host:x");
	ck_slice(m.app, "app");
	ck_slice(m.msg, "y");
}
END_TEST

/* Without a timestamp no host name is guessed, but a tag still is. */
START_TEST(no_timestamp)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<13>hello world"), 0);
	ck_assert_int_eq(m.version, 0);
	ck_assert_str_eq(m.ts, "");
	ck_slice(m.host, "");
	ck_slice(m.app, "");
	ck_slice(m.msg, "hello world");

	/* loggen's RFC 3164: an ISO date and time without a zone, read as UTC */
	ck_assert_int_eq(P("<38>2026-11-24T01:17:40 localhost prg00000[1234]: seq: 0000000000"), 0);
	ck_assert_str_eq(m.ts, "2026-11-24T01:17:40Z");
	ck_slice(m.host, "localhost");
	ck_slice(m.app, "prg00000");
	ck_slice(m.procid, "1234");
	ck_slice(m.msg, "seq: 0000000000");
	ck_assert_int_eq(P("<38>2026-11-24T01:17:40.123456789 h a: x"), 0);
	ck_assert_str_eq(m.ts, "2026-11-24T01:17:40.123456789Z");

	/* "1 " not followed by a 5424 timestamp: an RFC 3164 message */
	ck_assert_int_eq(P("<13>1 apple pie"), 0);
	ck_assert_int_eq(m.version, 0);
	ck_slice(m.msg, "1 apple pie");
	ck_assert_int_eq(P("<13>1 bad-ts host app - - -"), 0);
	ck_assert_int_eq(m.version, 0);
	ck_slice(m.msg, "1 bad-ts host app - - -");

	ck_assert_int_eq(P("<13>myapp[12]: text"), 0);
	ck_assert_str_eq(m.ts, "");
	ck_slice(m.host, "");
	ck_slice(m.app, "myapp");
	ck_slice(m.procid, "12");
	ck_slice(m.msg, "text");

	ck_assert_int_eq(P("<13>host app: x"), 0);
	ck_slice(m.host, "");
	ck_slice(m.app, "");
	ck_slice(m.msg, "host app: x");
	ck_assert_int_eq(P("<13>10:20:30 x"), 0);
	ck_slice(m.app, "");
	ck_slice(m.msg, "10:20:30 x");

	/* A timestamp that is not one: Feb 30, hour 24, an unknown month. */
	ck_assert_int_eq(P("<13>Feb 30 12:00:00 host app: x"), 0);
	ck_assert_str_eq(m.ts, "");
	ck_slice(m.msg, "Feb 30 12:00:00 host app: x");
	ck_assert_int_eq(P("<13>Nov 24 24:00:00 host app: x"), 0);
	ck_assert_str_eq(m.ts, "");
	ck_assert_int_eq(P("<13>Now 24 12:00:00 host app: x"), 0);
	ck_assert_str_eq(m.ts, "");
	ck_assert_int_eq(P("<13>Nov 24 12:00:00.123 host app: x"), 0);
	ck_assert_str_eq(m.ts, "");
	ck_slice(m.msg, "Nov 24 12:00:00.123 host app: x");
}
END_TEST

/* BSD timestamps: the day written three ways, any case of the month. */
START_TEST(bsd_timestamp_forms)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<13>Jan 02 03:04:05 h a: x"), 0);
	ck_assert_str_eq(m.ts, "2026-01-02T03:04:05Z");
	ck_assert_int_eq(P("<13>Jan  2 03:04:05 h a: x"), 0);
	ck_assert_str_eq(m.ts, "2026-01-02T03:04:05Z");
	ck_assert_int_eq(P("<13>Jan 2 03:04:05 h a: x"), 0);
	ck_assert_str_eq(m.ts, "2026-01-02T03:04:05Z");
	ck_assert_int_eq(P("<13>JUN 30 23:59:60 h a: x"), 0);
	ck_assert_str_eq(m.ts, "2026-06-30T23:59:60Z");
	ck_slice(m.host, "h");
	ck_assert_int_eq(P("<13>Sep 9 00:00:00"), 0);	/* and nothing else */
	ck_assert_str_eq(m.ts, "2026-09-09T00:00:00Z");
	ck_slice(m.msg, "");
}
END_TEST

/* Tags: lenient characters, an empty or odd pid, what the colon needs. */
START_TEST(tags)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<13>Nov 24 00:43:19 h some.app/x-y_z: m"), 0);
	ck_slice(m.app, "some.app/x-y_z");
	ck_slice(m.msg, "m");
	ck_assert_int_eq(P("<13>Nov 24 00:43:19 h app:m"), 0);
	ck_slice(m.app, "");		/* a colon needs SP after it */
	ck_slice(m.msg, "app:m");
	ck_assert_int_eq(P("<13>http://example.com/ down"), 0);
	ck_slice(m.app, "");
	ck_slice(m.msg, "http://example.com/ down");
	ck_assert_int_eq(P("<13>Nov 24 00:43:19 h app:  m"), 0);
	ck_slice(m.msg, " m");		/* only one SP is dropped */
	ck_assert_int_eq(P("<13>Nov 24 00:43:19 h app[]: m"), 0);
	ck_slice(m.app, "app");
	ck_slice(m.procid, "");
	ck_slice(m.msg, "m");
	ck_assert_int_eq(P("<13>Nov 24 00:43:19 h app[main]: m"), 0);
	ck_slice(m.procid, "main");
	ck_assert_int_eq(P("<13>Nov 24 00:43:19 h app:"), 0);
	ck_slice(m.app, "app");
	ck_slice(m.msg, "");
	/* Not tags: no colon, junk after the pid, an unterminated pid. */
	ck_assert_int_eq(P("<13>Nov 24 00:43:19 h app[1] m"), 0);
	ck_slice(m.app, "");
	ck_slice(m.procid, "");
	ck_slice(m.msg, "app[1] m");
	ck_assert_int_eq(P("<13>Nov 24 00:43:19 h app[1]x: m"), 0);
	ck_slice(m.app, "");
	ck_slice(m.msg, "app[1]x: m");
	ck_assert_int_eq(P("<13>Nov 24 00:43:19 h app[1"), 0);
	ck_slice(m.app, "");
	ck_slice(m.msg, "app[1");
	ck_assert_int_eq(P("<13>Nov 24 00:43:19 h : m"), 0);
	ck_slice(m.app, "");
	ck_slice(m.msg, ": m");
}
END_TEST

START_TEST(empty_msg)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<13>1 2026-11-24T00:00:00Z h a p m -"), 0);
	ck_slice(m.msg, "");
	ck_assert_int_eq(P("<13>1 2026-11-24T00:00:00Z h a p m - "), 0);
	ck_slice(m.msg, "");
	ck_assert_int_eq(P("<13>1 2026-11-24T00:00:00Z h a p m [x]"), 0);
	ck_slice(m.sd, "[x]");
	ck_slice(m.msg, "");
	ck_assert_int_eq(P("<13>Nov 24 00:43:19 host app: "), 0);
	ck_slice(m.host, "host");
	ck_slice(m.app, "app");
	ck_slice(m.msg, "");
	ck_assert_int_eq(P("<13>"), 0);
	ck_assert_int_eq(m.pri, 13);
	ck_assert_str_eq(m.ts, "");
	ck_slice(m.msg, "");
	ck_assert_int_eq(P("<0>"), 0);
	ck_assert_int_eq(m.pri, 0);
}
END_TEST

START_TEST(nil_everywhere)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<13>1 - - - - - -"), 0);
	ck_assert_int_eq(m.pri, 13);
	ck_assert_int_eq(m.version, 1);
	ck_assert_str_eq(m.ts, "");
	ck_slice(m.host, "");
	ck_slice(m.app, "");
	ck_slice(m.procid, "");
	ck_slice(m.msgid, "");
	ck_slice(m.sd, "");
	ck_slice(m.msg, "");
	ck_assert_str_eq(walk(m.sd), "");

	ck_assert_int_eq(P("<13>1 - - - - - - -"), 0);
	ck_slice(m.msg, "-");
}
END_TEST

START_TEST(sd_escapes)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<13>1 - h a - - [ex@1 a=\"x\\\"y\\\\z\\]w\"] m"), 0);
	ck_slice(m.sd, "[ex@1 a=\"x\\\"y\\\\z\\]w\"]");
	ck_slice(m.msg, "m");
	ck_assert_str_eq(walk(m.sd), "ex@1|a|x\\\"y\\\\z\\]w;");

	/* Other backslash pairs, UTF-8, an unescaped ']', an empty value. */
	ck_assert_int_eq(P("<13>1 - h a - - [ex@1 a=\"\\n\xc3\xa9]\" b=\"\"]"), 0);
	ck_assert_str_eq(walk(m.sd), "ex@1|a|\\n\xc3\xa9];ex@1|b|;");
}
END_TEST

START_TEST(sd_multiple)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<13>1 - h a - - [a@1 x=\"1\"][b y=\"2\" z=\"3\"][origin] "
	    BOM "text"), 0);
	ck_slice(m.sd, "[a@1 x=\"1\"][b y=\"2\" z=\"3\"][origin]");
	ck_slice(m.msg, "text");
	ck_assert_str_eq(walk(m.sd), "a@1|x|1;b|y|2;b|z|3;origin||;");
}
END_TEST

START_TEST(sd_no_params)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<13>1 - h a - - [meta] x"), 0);
	ck_slice(m.sd, "[meta]");
	ck_slice(m.msg, "x");
	ck_assert_str_eq(walk(m.sd), "meta||;");
}
END_TEST

START_TEST(bom)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P("<13>1 - - - - - - " BOM), 0);
	ck_slice(m.msg, "");
	ck_assert_int_eq(P("<13>1 - - - - - - " BOM BOM "x"), 0);
	ck_slice(m.msg, BOM "x");	/* only the first one */
	ck_assert_int_eq(P("<13>1 - - - - - - x" BOM), 0);
	ck_slice(m.msg, "x" BOM);
	ck_assert_int_eq(P("<13>1 - - - - - - \xef\xbb"), 0);
	ck_slice(m.msg, "\xef\xbb");
}
END_TEST

START_TEST(pri_errors)
{
	struct syslog_msg m;
	const char *why;

	ck_bad("<192>", "PRI out of range");
	ck_bad("<999>x", "PRI out of range");
	ck_bad("<1a>", "no PRI");
	ck_bad("<>", "no PRI");
	ck_bad("<13", "no PRI");
	ck_bad("<13 hello", "no PRI");
	ck_bad("<1234>x", "no PRI");
	ck_bad("<013>x", "no PRI");
	ck_bad("<00>x", "no PRI");
	ck_bad("13>x", "no PRI");
	ck_bad(" <13>x", "no PRI");
	ck_bad("<", "no PRI");
	ck_bad("", "no PRI");
	ck_assert_int_eq(syslog_parse(NULL, 0, NOW, &m, &why), -1);
	ck_assert_int_eq(P("<191>x"), 0);
	ck_assert_int_eq(m.pri, 191);
	ck_assert_int_eq(P("<7>x"), 0);
	ck_assert_int_eq(m.pri, 7);
}
END_TEST

START_TEST(rfc5424_timestamp_errors)
{
	struct syslog_msg m;
	const char *why;

	ck_bad("<13>1 2026-1-24T00:00:00Z h a p m -", "bad timestamp");
	ck_bad("<13>1 2026-13-24T00:00:00Z h a p m -", "bad timestamp");
	ck_bad("<13>1 2026-11-00T00:00:00Z h a p m -", "bad timestamp");
	ck_bad("<13>1 2026-11-32T00:00:00Z h a p m -", "bad timestamp");
	/* days a month or a year does not have */
	ck_bad("<13>1 2026-02-29T00:00:00Z h a p m -", "bad timestamp");
	ck_bad("<13>1 2100-02-29T00:00:00Z h a p m -", "bad timestamp");
	ck_bad("<13>1 2026-04-31T00:00:00Z h a p m -", "bad timestamp");
	ck_bad("<13>1 2026-02-30T00:00:00Z h a p m -", "bad timestamp");
	ck_bad("<13>1 2026-11-24T24:00:00Z h a p m -", "bad timestamp");
	ck_bad("<13>1 2026-11-24T00:60:00Z h a p m -", "bad timestamp");
	ck_bad("<13>1 2026-11-24T00:00:61Z h a p m -", "bad timestamp");
	ck_bad("<13>1 2026-11-24 00:00:00Z h a p m -", "bad timestamp");
	ck_bad("<13>1 2026-11-24T00:00:00 h a p m -", "bad timestamp");
	ck_bad("<13>1 2026-11-24T00:00:00.Z h a p m -", "bad timestamp");
	ck_bad("<13>1 2026-11-24T00:00:00.1234567890Z h a p m -", "bad timestamp");
	ck_bad("<13>1 2026-11-24T00:00:00+0100 h a p m -", "bad timestamp");
	ck_bad("<13>1 2026-11-24T00:00:00+24:00 h a p m -", "bad timestamp");
	ck_bad("<13>1 2026-11-24T00:00:00Zx h a p m -", "bad timestamp");
	ck_bad("<13>1 -- h a p m -", "bad timestamp");
	ck_bad("<13>1  h a p m -", "bad timestamp");

	/* Leniency: up to 9 fraction digits, a leap second, lower case. */
	ck_assert_int_eq(P("<13>1 2026-11-24T00:00:60.123456789-23:59 h a p m -"), 0);
	ck_assert_str_eq(m.ts, "2026-11-24T00:00:60.123456789-23:59");
	ck_assert_int_eq(P("<13>1 2026-11-24t00:00:00z h a p m -"), 0);
	ck_assert_str_eq(m.ts, "2026-11-24t00:00:00z");
	/* leap years: every fourth, but centuries only every fourth */
	ck_assert_int_eq(P("<13>1 2024-02-29T00:00:00Z h a p m -"), 0);
	ck_assert_int_eq(P("<13>1 2000-02-29T00:00:00Z h a p m -"), 0);
}
END_TEST

START_TEST(rfc5424_header_errors)
{
	struct syslog_msg m;
	const char *why;

	ck_bad("<13>1 2026-11-24T00:00:00Z host", "truncated header");
	ck_bad("<13>1 2026-11-24T00:00:00Z", "truncated header");
	ck_bad("<13>1 ", "truncated header");
	ck_bad("<13>1 -", "truncated header");
	ck_bad("<13>1 - h a p m", "truncated header");
	ck_bad("<13>1 - h a p m ", "truncated header");
	ck_bad("<13>1 -  a p m -", "bad hostname");
	ck_bad("<13>1 - h\x01 a p m -", "bad hostname");
	ck_bad("<13>1 - h\xc3\xa9 a p m -", "bad hostname");
	ck_bad("<13>1 - h a\tb p m -", "bad app name");
	ck_bad("<13>1 - h a  m -", "bad procid");
	ck_bad("<13>1 - h a p \x7f -", "bad msgid");
}
END_TEST

START_TEST(sd_errors)
{
	struct syslog_msg m;
	const char *why;

	ck_bad("<13>1 - h a p m [x", "bad structured data");
	ck_bad("<13>1 - h a p m [x a=\"b\"", "bad structured data");
	ck_bad("<13>1 - h a p m [x a=\"b]", "bad structured data");
	ck_bad("<13>1 - h a p m [x a=\"b\\\"] m", "bad structured data");
	ck_bad("<13>1 - h a p m [x a=\"b\\", "bad structured data");
	ck_bad("<13>1 - h a p m [x a=\"b\"c\"] m", "bad structured data");
	ck_bad("<13>1 - h a p m [x a=\"b\" ] m", "bad structured data");
	ck_bad("<13>1 - h a p m [x  a=\"b\"] m", "bad structured data");
	ck_bad("<13>1 - h a p m [x a=b] m", "bad structured data");
	ck_bad("<13>1 - h a p m [x a] m", "bad structured data");
	ck_bad("<13>1 - h a p m [x =\"b\"] m", "bad structured data");
	ck_bad("<13>1 - h a p m [] m", "bad structured data");
	ck_bad("<13>1 - h a p m [ a=\"b\"] m", "bad structured data");
	ck_bad("<13>1 - h a p m [x]m", "bad structured data");
	ck_bad("<13>1 - h a p m -m", "bad structured data");
	ck_bad("<13>1 - h a p m x", "bad structured data");
	ck_bad("<13>1 - h a p m ]", "bad structured data");

	/* One SP ends SD: what follows is MSG, however it looks. */
	ck_assert_int_eq(P("<13>1 - h a p m [x] [y]"), 0);
	ck_slice(m.sd, "[x]");
	ck_slice(m.msg, "[y]");
	/* at most SYSLOG_SD_MAX parameters */
	{
		char rec[4096] = "<13>1 - h a p m ";
		size_t n = strlen(rec);

		for (int k = 0; k < SYSLOG_SD_MAX; k++)
			n += snprintf(rec + n, sizeof(rec) - n, "[e a=\"%d\"]", k);
		snprintf(rec + n, sizeof(rec) - n, " x");
		ck_assert_int_eq(parse_at(rec, strlen(rec), NOW, &m, &why), 0);
		snprintf(rec + n, sizeof(rec) - n, "[e] x");
		ck_assert_int_eq(parse_at(rec, strlen(rec), NOW, &m, &why), -1);
		ck_assert_str_eq(why, "more than 128 structured data parameters");
	}
}
END_TEST

/* MSG is any bytes: NUL, high bytes, invalid UTF-8. */
START_TEST(msg_any_bytes)
{
	static const char r5424[] = "<13>1 - - - - - - a\0b\xff\xfe";
	static const char r3164[] = "<13>Nov 24 00:43:19 host app: \0\xc3\x28\n";
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(parse_at(r5424, sizeof(r5424) - 1, NOW, &m, &why), 0);
	ck_assert_uint_eq(m.msg.n, 5);
	ck_assert_mem_eq(m.msg.p, "a\0b\xff\xfe", 5);
	ck_assert_int_eq(parse_at(r3164, sizeof(r3164) - 1, NOW, &m, &why), 0);
	ck_slice(m.app, "app");
	ck_assert_uint_eq(m.msg.n, 4);
	ck_assert_mem_eq(m.msg.p, "\0\xc3\x28\n", 4);
}
END_TEST

/* Lengths beyond the RFC limits are accepted. */
START_TEST(long_fields)
{
	struct syslog_msg m;
	const char *why;
	char rec[1024];
	int n;

	n = snprintf(rec, sizeof(rec), "<13>1 - %0300d %060d %0200d %040d [%040d %040d=\"v\"] m",
	    1, 2, 3, 4, 5, 6);
	ck_assert_int_eq(parse_at(rec, (size_t)n, NOW, &m, &why), 0);
	ck_assert_uint_eq(m.host.n, 300);
	ck_assert_uint_eq(m.app.n, 60);
	ck_assert_uint_eq(m.procid.n, 200);
	ck_assert_uint_eq(m.msgid.n, 40);
	ck_assert_uint_eq(m.sd.n, 1 + 40 + 1 + 40 + 5);
	ck_slice(m.msg, "m");
}
END_TEST

/*
 * A BSD timestamp takes now's year, or the year before when that would be
 * more than 31 days after now.
 */
START_TEST(year_rollover)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P_AT("<13>Dec 31 23:59:59 h a: x", JAN_5_2027), 0);
	ck_assert_str_eq(m.ts, "2026-12-31T23:59:59Z");
	ck_assert_int_eq(P_AT("<13>Jan  4 10:00:00 h a: x", JAN_5_2027), 0);
	ck_assert_str_eq(m.ts, "2027-01-04T10:00:00Z");
	ck_assert_int_eq(P_AT("<13>Jan  6 10:00:00 h a: x", JAN_5_2027), 0);
	ck_assert_str_eq(m.ts, "2027-01-06T10:00:00Z");	/* a fast clock */
	ck_assert_int_eq(P_AT("<13>Feb  5 00:00:00 h a: x", JAN_5_2027), 0);
	ck_assert_str_eq(m.ts, "2027-02-05T00:00:00Z");	/* exactly 31 days */
	ck_assert_int_eq(P_AT("<13>Feb  5 00:00:01 h a: x", JAN_5_2027), 0);
	ck_assert_str_eq(m.ts, "2026-02-05T00:00:01Z");	/* one second more */
	ck_assert_int_eq(P_AT("<13>Dec 20 00:00:00 h a: x", NOW), 0);
	ck_assert_str_eq(m.ts, "2026-12-20T00:00:00Z");
	ck_assert_int_eq(P_AT("<13>Dec 26 00:00:00 h a: x", NOW), 0);
	ck_assert_str_eq(m.ts, "2025-12-26T00:00:00Z");
	/* Only BSD timestamps: an ISO one keeps its year. */
	ck_assert_int_eq(P_AT("<13>2030-01-01T00:00:00Z h a: x", NOW), 0);
	ck_assert_str_eq(m.ts, "2030-01-01T00:00:00Z");
}
END_TEST

/* Feb 29 goes to the latest leap year not after the year the rule picks. */
START_TEST(feb29)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P_AT("<13>Feb 29 12:00:00 h a: x", MAR_10_2028), 0);
	ck_assert_str_eq(m.ts, "2028-02-29T12:00:00Z");
	ck_assert_int_eq(P_AT("<13>Feb 29 12:00:00 h a: x", JAN_10_2029), 0);
	ck_assert_str_eq(m.ts, "2028-02-29T12:00:00Z");
	ck_assert_int_eq(P_AT("<13>Feb 29 12:00:00 h a: x", NOW), 0);
	ck_assert_str_eq(m.ts, "2024-02-29T12:00:00Z");
	ck_assert_int_eq(P_AT("<13>Feb 28 12:00:00 h a: x", NOW), 0);
	ck_assert_str_eq(m.ts, "2026-02-28T12:00:00Z");
}
END_TEST

/* Every month name in every mix of case, and names that are not months. */
START_TEST(month_names)
{
	static const char names[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	struct syslog_msg m;
	const char *why;
	char rec[64], want[32];

	for (int mon = 0; mon < 12; mon++)
		for (int caps = 0; caps < 8; caps++) {
			snprintf(rec, sizeof(rec), "<13>%c%c%c  2 03:04:05 h a: x",
			    names[3 * mon] - (caps & 1 ? 0x20 : 0),
			    names[3 * mon + 1] - (caps & 2 ? 0x20 : 0),
			    names[3 * mon + 2] - (caps & 4 ? 0x20 : 0));
			ck_assert_int_eq(parse_at(rec, strlen(rec), NOW, &m, &why), 0);
			snprintf(want, sizeof(want), "2026-%02d-02T03:04:05Z", mon + 1);
			ck_assert_str_eq(m.ts, want);
		}
	/* | 0x20 must not make these months: '@' is '`', 0xc1 is 0xe1 */
	ck_assert_int_eq(P("<13>J@n  2 03:04:05 h a: x"), 0);
	ck_assert_str_eq(m.ts, "");
	ck_assert_int_eq(P("<13>\xca\xc1\xce  2 03:04:05 h a: x"), 0);
	ck_assert_str_eq(m.ts, "");
	ck_assert_int_eq(P("<13>Jane 2 03:04:05 h a: x"), 0);
	ck_assert_str_eq(m.ts, "");
}
END_TEST

/*
 * One clock set once serves every record of its second: syslog_parse_at
 * gives what syslog_parse gives, for every day of the year and times on
 * both sides of the FUTURE_MAX limit, in common and leap years.
 */
START_TEST(clock_reused)
{
	static const time_t nows[] = { NOW, JAN_5_2027, MAR_10_2028, JAN_10_2029, 0, -1,
	    (time_t)951782400 /* 2000-02-29 */, (time_t)253402300799, (time_t)253402300800 };
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
	    "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct syslog_clock c;
	struct syslog_msg a, b;
	const char *why;
	char rec[64];

	for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
		syslog_clock_set(&c, nows[i]);
		for (int k = 0; k < 12 * 31 * 2; k++) {
			int mo = k / 62, day = k / 2 % 31 + 1, hour = k % 2 * 23;
			int n = snprintf(rec, sizeof(rec), "<13>%s %2d %02d:59:59 h a: x", mon[mo],
			    day, hour);

			ck_assert_int_eq(syslog_parse(rec, n, nows[i], &a, &why),
			    syslog_parse_at(rec, n, &c, &b, &why));
			ck_assert_str_eq(a.ts, b.ts);
			ck_assert_uint_eq(b.tslen, strlen(b.ts));
		}
	}
}
END_TEST

/* Odd clocks: the epoch, before it, and years ts cannot hold. */
START_TEST(odd_now)
{
	struct syslog_msg m;
	const char *why;

	ck_assert_int_eq(P_AT("<13>Jan  1 00:00:00 h a: x", 0), 0);
	ck_assert_str_eq(m.ts, "1970-01-01T00:00:00Z");
	ck_assert_int_eq(P_AT("<13>Dec 31 23:59:59 h a: x", 0), 0);
	ck_assert_str_eq(m.ts, "1969-12-31T23:59:59Z");
	ck_assert_int_eq(P_AT("<13>Dec 31 23:59:59 h a: x", -1), 0);
	ck_assert_str_eq(m.ts, "1969-12-31T23:59:59Z");
	ck_assert_int_eq(P_AT("<13>Dec 31 23:59:59 h a: x", (time_t)253402300799), 0);
	ck_assert_str_eq(m.ts, "9999-12-31T23:59:59Z");
	ck_assert_int_eq(P_AT("<13>Dec 31 23:59:59 h a: x", (time_t)253402300800), 0);
	ck_assert_str_eq(m.ts, "");
	ck_slice(m.host, "h");		/* still a timestamp */
	ck_assert_int_eq(P_AT("<13>Jan  1 00:00:00 h a: x", INT64_MAX), 0);
	ck_assert_str_eq(m.ts, "");
	ck_assert_int_eq(P_AT("<13>Jan  1 00:00:00 h a: x", INT64_MIN), 0);
	ck_assert_str_eq(m.ts, "");
	ck_assert_int_eq(P_AT("<13>Feb 29 00:00:00 h a: x", (time_t)-62135596800 + 86400), 0);
	ck_assert_str_eq(m.ts, "0000-02-29T00:00:00Z");	/* 0001-01-02: year 0 is leap */
}
END_TEST

static const char *const samples[] = {
	"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - " BOM "'su root'",
	"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's",
	"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 " EX3_SD
	    "[examplePriority@32473 class=\"high\"]",
	"<13>1 - h a - - [ex@1 a=\"x\\\"y\\\\z\\]w\"][meta] m",
	"<34>Oct 11 22:14:15 mymachine su: 'su root' failed",
	"<30>Nov  4 09:05:02 myhost sshd[1234]: Accepted publickey",
	"<189>Nov 4 09:05:02 10.0.0.1 %LINK-3-UPDOWN: Interface down",
	"<13>2026-11-24T00:43:19.123456+01:00 host app[5]: x",
	"<13>myapp[12]: text",
};

/* Every prefix of every sample, from an exact-size copy: no overread. */
START_TEST(prefixes)
{
	struct syslog_msg m;
	const char *why;
	size_t i, n;

	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
		for (n = 0; n <= strlen(samples[i]); n++) {
			if (parse_at(samples[i], n, NOW, &m, &why) == 0)
				walk(m.sd);
		}
}
END_TEST

/* The walk stops at malformed data instead of reading past it. */
START_TEST(walk_unvalidated)
{
	static const char *const bad[] = {
		"[", "[x", "[x a", "[x a=", "[x a=\"", "[x a=\"\\", "[x a=\"v\"", "[x]junk",
	};
	struct slice sd;
	size_t i;
	char *p;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sd.n = strlen(bad[i]);
		ck_assert_ptr_nonnull(p = malloc(sd.n));
		memcpy(p, bad[i], sd.n);
		sd.p = p;
		walk(sd);
		free(p);
	}
	ck_assert_str_eq(walk((struct slice){ "[x]junk", 7 }), "x||;");
	ck_assert_str_eq(walk((struct slice){ NULL, 0 }), "");
}
END_TEST

Suite *
parse_syslog_suite(void)
{
	Suite *s = suite_create("parse_syslog");
	TCase *tc = tcase_create("rfc");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, rfc5424_example1);
	tcase_add_test(tc, rfc5424_example2);
	tcase_add_test(tc, rfc5424_example3);
	tcase_add_test(tc, rfc5424_example4);
	tcase_add_test(tc, rfc3164_example1);
	tcase_add_test(tc, rfc3164_example2);
	tcase_add_test(tc, rfc3164_example3);
	tcase_add_test(tc, rfc3164_example4);
	suite_add_tcase(s, tc);

	tc = tcase_create("senders");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, logger_rfc5424);
	tcase_add_test(tc, logger_rfc3164);
	tcase_add_test(tc, rsyslog_forward);
	tcase_add_test(tc, cisco);
	tcase_add_test(tc, iso_3164);
	tcase_add_test(tc, no_hostname);
	tcase_add_test(tc, no_timestamp);
	tcase_add_test(tc, bsd_timestamp_forms);
	tcase_add_test(tc, tags);
	tcase_add_test(tc, empty_msg);
	tcase_add_test(tc, nil_everywhere);
	tcase_add_test(tc, sd_escapes);
	tcase_add_test(tc, sd_multiple);
	tcase_add_test(tc, sd_no_params);
	tcase_add_test(tc, bom);
	tcase_add_test(tc, msg_any_bytes);
	tcase_add_test(tc, long_fields);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, pri_errors);
	tcase_add_test(tc, rfc5424_timestamp_errors);
	tcase_add_test(tc, rfc5424_header_errors);
	tcase_add_test(tc, sd_errors);
	tcase_add_test(tc, prefixes);
	tcase_add_test(tc, walk_unvalidated);
	suite_add_tcase(s, tc);

	tc = tcase_create("year");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, year_rollover);
	tcase_add_test(tc, feb29);
	tcase_add_test(tc, odd_now);
	tcase_add_test(tc, month_names);
	tcase_add_test(tc, clock_reused);
	suite_add_tcase(s, tc);
	return s;
}
