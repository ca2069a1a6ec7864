/*
 * civil: the proleptic Gregorian calendar in days since 1970-01-01, for
 * the parsers' timestamps and the time zones' rules (Howard Hinnant's
 * days_from_civil and its inverse).  Pure and inline: the syslog parser
 * calls them per record.
 */
#ifndef INGESTD_CIVIL_H
#define INGESTD_CIVIL_H

#include <stdint.h>

static inline int
civil_leap(int64_t y)
{
	return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

/* a / b rounded down, for b > 0. */
static inline int64_t
civil_floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b < 0);
}

/* Days from 1970-01-01 to y-m-d. */
static inline int64_t
civil_days(int64_t y, int m, int d)
{
	int64_t era, yoe, doy;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

/* The year of the day z days after 1970-01-01. */
static inline int64_t
civil_year(int64_t z)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	return yoe + era * 400 + (mp >= 10);
}

#endif
