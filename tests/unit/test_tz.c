/*
 * common/tz.c and the zoned RFC 3164 timestamps of parse_syslog.c: offsets
 * from the system's zoneinfo at UTC instants and for wall-clock times,
 * through both changes of the year (a gap, an overlap), beyond the
 * transitions in the file (its footer's rule), south of the equator;
 * the year of a BSD timestamp taken from the local date at New Year.
 */
#include <string.h>

#include "parse_syslog.h"
#include "tests.h"
#include "tz.h"

#define H	3600

static struct tz *
load(const char *name)
{
	char err[256];
	struct tz *z = tz_load(name, err, sizeof(err));

	ck_assert_msg(z != NULL, "%s: %s", name, err);
	return z;
}

/* Seconds since the epoch of y-m-d h:mi (as UTC). */
static int64_t
at(int y, int m, int d, int h, int mi)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_hour = h,
	    .tm_min = mi };

	return (int64_t)timegm(&tm);
}

START_TEST(berlin)
{
	struct tz *z = load("Europe/Berlin");

	ck_assert_int_eq(tz_offset_utc(z, at(2026, 1, 15, 12, 0)), 1 * H);
	ck_assert_int_eq(tz_offset_utc(z, at(2026, 7, 15, 12, 0)), 2 * H);
	/* 2026-03-29 01:00 UTC: 02:00 CET becomes 03:00 CEST */
	ck_assert_int_eq(tz_offset_utc(z, at(2026, 3, 29, 0, 59)), 1 * H);
	ck_assert_int_eq(tz_offset_utc(z, at(2026, 3, 29, 1, 0)), 2 * H);
	ck_assert_int_eq(tz_offset_local(z, at(2026, 3, 29, 1, 30)), 1 * H);
	ck_assert_int_eq(tz_offset_local(z, at(2026, 3, 29, 2, 30)), 1 * H);	/* the gap */
	ck_assert_int_eq(tz_offset_local(z, at(2026, 3, 29, 3, 30)), 2 * H);
	/* 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice */
	ck_assert_int_eq(tz_offset_local(z, at(2026, 10, 25, 1, 30)), 2 * H);
	ck_assert_int_eq(tz_offset_local(z, at(2026, 10, 25, 2, 30)), 2 * H);	/* the first */
	ck_assert_int_eq(tz_offset_local(z, at(2026, 10, 25, 3, 30)), 1 * H);
	/* past the file's transitions (2037): the footer's rule */
	ck_assert_int_eq(tz_offset_utc(z, at(2045, 7, 1, 0, 0)), 2 * H);
	ck_assert_int_eq(tz_offset_utc(z, at(2045, 12, 1, 0, 0)), 1 * H);
	ck_assert_int_eq(tz_offset_local(z, at(2045, 3, 26, 2, 30)), 1 * H);	/* last Sunday */
	ck_assert_int_eq(tz_offset_local(z, at(2045, 3, 26, 3, 30)), 2 * H);
	ck_assert_int_eq(tz_offset_local(z, at(2045, 10, 29, 3, 30)), 1 * H);
	tz_free(z);
}
END_TEST

START_TEST(other_zones)
{
	struct tz *z = load("America/New_York");

	ck_assert_int_eq(tz_offset_local(z, at(2026, 3, 8, 2, 30)), -5 * H);	/* gap */
	ck_assert_int_eq(tz_offset_local(z, at(2026, 11, 1, 1, 30)), -4 * H);	/* overlap */
	ck_assert_int_eq(tz_offset_utc(z, at(2050, 8, 1, 0, 0)), -4 * H);
	tz_free(z);
	z = load("Australia/Sydney");		/* DST from October to April */
	ck_assert_int_eq(tz_offset_utc(z, at(2026, 1, 15, 0, 0)), 11 * H);
	ck_assert_int_eq(tz_offset_utc(z, at(2026, 7, 15, 0, 0)), 10 * H);
	ck_assert_int_eq(tz_offset_utc(z, at(2050, 1, 15, 0, 0)), 11 * H);
	ck_assert_int_eq(tz_offset_utc(z, at(2050, 7, 15, 0, 0)), 10 * H);
	tz_free(z);
	z = load("Asia/Kolkata");
	ck_assert_int_eq(tz_offset_local(z, at(2026, 6, 1, 12, 0)), 5 * H + 1800);
	tz_free(z);
	z = load("UTC");
	ck_assert_int_eq(tz_offset_local(z, at(2026, 6, 1, 12, 0)), 0);
	tz_free(z);
}
END_TEST

START_TEST(errors)
{
	char err[256];

	ck_assert_ptr_null(tz_load("Europe/Berln", err, sizeof(err)));
	ck_assert_str_eq(err, "no time zone \"Europe/Berln\" (/usr/share/zoneinfo/Europe/Berln: "
	    "No such file or directory)");
	ck_assert_ptr_null(tz_load("../../etc/passwd", err, sizeof(err)));
	ck_assert_str_eq(err, "\"../../etc/passwd\" is not a time zone name such as "
	    "\"Europe/Berlin\"");
	ck_assert_ptr_null(tz_load("zone.tab", err, sizeof(err)));
	ck_assert_msg(strstr(err, "not a time zone file") != NULL, "%s", err);
}
END_TEST

/* BSD timestamps in a zone, and their year at New Year by the local date. */
START_TEST(zoned_timestamps)
{
	static const struct { int64_t now; const char *rec, *ts; } cases[] = {
		{ 0, "<13>Mar 29 02:30:00 h a: gap", "2026-03-29T02:30:00+01:00" },
		{ 0, "<13>Oct 25 02:30:00 h a: twice", "2026-10-25T02:30:00+02:00" },
		{ 0, "<13>Jul  1 12:00:00 h a: summer", "2026-07-01T12:00:00+02:00" },
		/* 2026-12-31 23:30 UTC is 2027-01-01 00:30 in Berlin */
		{ 1, "<13>Dec 31 23:59:00 h a: old year", "2026-12-31T23:59:00+01:00" },
		{ 1, "<13>Jan  1 00:10:00 h a: new year", "2027-01-01T00:10:00+01:00" },
		{ 0, "<13>2026-07-01T12:00:00Z h a: kept", "2026-07-01T12:00:00Z" },
	};
	struct tz *z = load("Europe/Berlin");
	struct syslog_clock c;
	struct syslog_msg m;
	const char *why = NULL;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		syslog_clock_set(&c, cases[i].now ? at(2026, 12, 31, 23, 30) : at(2026, 12, 5, 12, 0));
		c.tz = z;
		ck_assert_int_eq(syslog_parse_at(cases[i].rec, strlen(cases[i].rec), &c, &m, &why), 0);
		ck_assert_msg(strcmp(m.ts, cases[i].ts) == 0, "%s: %s, not %s", cases[i].rec, m.ts,
		    cases[i].ts);
	}
	tz_free(z);
}
END_TEST

Suite *
tz_suite(void)
{
	Suite *s = suite_create("tz");
	TCase *tc = tcase_create("zones");

	tcase_add_test(tc, berlin);
	tcase_add_test(tc, other_zones);
	tcase_add_test(tc, errors);
	tcase_add_test(tc, zoned_timestamps);
	suite_add_tcase(s, tc);
	return s;
}
