/*
 * tz: read a TZif file (version 2 or later: the 64-bit block and its
 * footer) into transitions and offsets, and answer offsets for UTC
 * instants and for wall-clock times.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "civil.h"
#include "tz.h"

#define TZ_FILE_MAX	(256 * 1024)	/* bytes of a zone file read; real ones are < 4 KiB */
#define DAY		86400
#define OFF_MIN		(-89999)	/* offsets RFC 8536 allows: -24:59:59 to +25:59:59 */
#define OFF_MAX		93599
#define TIME_MAX	(INT64_C(1) << 48)	/* seconds: far beyond year 9999, no overflow */

/* A transition of the footer rule: month m, week w (5: the last), weekday d, at time s. */
struct rule_day {
	int	 m, w, d;
	int32_t	 s;			/* seconds after local midnight */
};

struct tz {
	int64_t		*at;		/* transitions, UTC, ascending */
	uint8_t		*type;		/* the type in effect from each */
	int		 n;
	int32_t		*off;		/* each type's offset */
	int		 ntypes;
	int32_t		 first_off;	/* before the first transition */
	/* the footer, for instants after the last transition */
	int		 rule;		/* 0: none; 1: standard time only; 2: with DST */
	int32_t		 std_off, dst_off;
	struct rule_day	 start, end;	/* DST begins, ends */
};

/* A big-endian signed integer of n (4 or 8) bytes. */
static int64_t
be(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = (v << 8) | p[i];
	if (n == 4)
		return (int32_t)(uint32_t)v;
	return (int64_t)v;
}

/* ---- the footer: "STD offset [DST [offset] ,start[/time],end[/time]]" ---- */

static const char *
tz_name(const char *p)
{
	if (*p == '<') {
		p = strchr(p, '>');
		return p ? p + 1 : NULL;
	}
	while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
		p++;
	return p;
}

/* [+-]hh[:mm[:ss]] into *v seconds; NULL when there is none. */
static const char *
hms(const char *p, int32_t *v)
{
	int sign = 1, part = 0;
	int32_t t = 0;

	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	if (*p < '0' || *p > '9')
		return NULL;
	for (int mult = 3600; part < 3; part++, mult /= 60) {
		int x = 0;

		if (*p < '0' || *p > '9')
			return NULL;
		while (*p >= '0' && *p <= '9')
			if ((x = x * 10 + (*p++ - '0')) > 999)
				return NULL;
		t += x * mult;
		if (*p != ':' || part == 2)
			break;
		p++;
	}
	*v = sign * t;
	return p;
}

/* "Mm.w.d[/time]"; other forms (Jn, n) are left to the transitions. */
static const char *
rule_day(const char *p, struct rule_day *r)
{
	if (sscanf(p, "M%d.%d.%d", &r->m, &r->w, &r->d) != 3 || r->m < 1 || r->m > 12 ||
	    r->w < 1 || r->w > 5 || r->d < 0 || r->d > 6)
		return NULL;
	p = strchr(p, '.') + 1;
	p = strchr(p, '.') + 2;
	r->s = 2 * 3600;
	if (*p == '/' && (p = hms(p + 1, &r->s)) == NULL)
		return NULL;
	return p;
}

static void
footer(struct tz *z, const char *p)
{
	int32_t off;

	if ((p = tz_name(p)) == NULL || (p = hms(p, &off)) == NULL)
		return;
	z->std_off = -off;		/* POSIX counts west of UTC */
	if (z->std_off < OFF_MIN || z->std_off > OFF_MAX)
		return;
	if (*p == '\0') {
		z->rule = 1;
		return;
	}
	if ((p = tz_name(p)) == NULL)
		return;
	z->dst_off = z->std_off + 3600;
	if (*p != ',' && *p != '\0') {
		if ((p = hms(p, &off)) == NULL)
			return;
		z->dst_off = -off;
	}
	if (*p++ != ',' || (p = rule_day(p, &z->start)) == NULL || *p++ != ',' ||
	    (p = rule_day(p, &z->end)) == NULL || *p != '\0' || z->dst_off < OFF_MIN ||
	    z->dst_off > OFF_MAX)
		return;
	z->rule = 2;
}

/* The UTC instant of a rule's day in year y, whose time is local at offset before. */
static int64_t
rule_at(const struct rule_day *r, int64_t y, int32_t before)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int64_t first = civil_days(y, r->m, 1);
	int len = mdays[r->m - 1] + (r->m == 2 && civil_leap(y));
	int wday = (int)(((first + 4) % 7 + 7) % 7);	/* 1970-01-01 was a Thursday */
	int day = 1 + (r->d - wday + 7) % 7 + 7 * (r->w - 1);

	while (day > len)
		day -= 7;
	return (first + day - 1) * DAY + r->s - before;
}

static int32_t
rule_offset(const struct tz *z, int64_t utc)
{
	int64_t y, start, end;

	if (z->rule == 1)
		return z->std_off;
	y = civil_year(civil_floor_div(utc + z->std_off, DAY));
	start = rule_at(&z->start, y, z->std_off);
	end = rule_at(&z->end, y, z->dst_off);
	if (start < end)
		return utc >= start && utc < end ? z->dst_off : z->std_off;
	return utc >= end && utc < start ? z->std_off : z->dst_off;	/* southern */
}

/* ---- the file ---- */

static int
parse(struct tz *z, const unsigned char *b, size_t len)
{
	size_t o = 0, need;
	int64_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;

	for (int pass = 0; pass < 2; pass++) {
		int w = pass ? 8 : 4;

		if (len - o < 44 || memcmp(b + o, "TZif", 4) != 0)
			return -1;
		if (pass == 0 && b[o + 4] < '2')
			return -1;	/* version 1: no 64-bit data */
		isutcnt = be(b + o + 20, 4);
		isstdcnt = be(b + o + 24, 4);
		leapcnt = be(b + o + 28, 4);
		timecnt = be(b + o + 32, 4);
		typecnt = be(b + o + 36, 4);
		charcnt = be(b + o + 40, 4);
		if (isutcnt < 0 || isstdcnt < 0 || leapcnt < 0 || timecnt < 0 || typecnt < 1 ||
		    typecnt > 256 || charcnt < 0 || timecnt > 100000 || leapcnt > 10000)
			return -1;
		need = 44 + timecnt * w + timecnt + typecnt * 6 + charcnt + leapcnt * (w + 4) +
		    isstdcnt + isutcnt;
		if (len - o < need)
			return -1;
		if (pass == 0) {
			o += need;
			continue;
		}
		o += 44;
		z->n = (int)timecnt;
		z->ntypes = (int)typecnt;
		if ((z->at = calloc(timecnt + 1, sizeof(*z->at))) == NULL ||
		    (z->type = calloc(timecnt + 1, 1)) == NULL ||
		    (z->off = calloc(typecnt, sizeof(*z->off))) == NULL)
			return -1;
		for (int i = 0; i < z->n; i++)
			if ((z->at[i] = be(b + o + 8 * i, 8)) <= (i ? z->at[i - 1] : INT64_MIN))
				return -1;	/* transitions ascend */
		o += 8 * timecnt;
		for (int i = 0; i < z->n; i++)
			if ((z->type[i] = b[o + i]) >= typecnt)
				return -1;
		o += timecnt;
		for (int i = 0; i < z->ntypes; i++)
			if ((z->off[i] = (int32_t)be(b + o + 6 * i, 4)) < OFF_MIN || z->off[i] > OFF_MAX)
				return -1;
		z->first_off = z->off[0];
		o += typecnt * 6 + charcnt + leapcnt * 12 + isstdcnt + isutcnt;
	}
	if (o < len && b[o] == '\n') {
		char foot[128];
		const unsigned char *nl = memchr(b + o + 1, '\n', len - o - 1);
		size_t n = nl ? (size_t)(nl - b - o - 1) : 0;

		if (nl && n < sizeof(foot)) {
			memcpy(foot, b + o + 1, n);
			foot[n] = '\0';
			footer(z, foot);
		}
	}
	return 0;
}

struct tz *
tz_from(const unsigned char *b, size_t len)
{
	struct tz *z = calloc(1, sizeof(*z));

	if (z != NULL && parse(z, b, len) == -1) {
		tz_free(z);
		z = NULL;
	}
	return z;
}

struct tz *
tz_load(const char *name, char *err, size_t size)
{
	const char *dir = getenv("TZDIR");
	unsigned char *b = NULL;
	struct tz *z = NULL;
	char path[4096];
	size_t len = 0;
	FILE *fp;

	if (name[0] == '\0' || name[0] == '/' || strstr(name, "..")) {
		snprintf(err, size, "\"%s\" is not a time zone name such as \"Europe/Berlin\"", name);
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
	if ((fp = fopen(path, "rb")) == NULL) {
		snprintf(err, size, "no time zone \"%s\" (%s: %s)", name, path, strerror(errno));
		return NULL;
	}
	if ((b = malloc(TZ_FILE_MAX)) != NULL)
		len = fread(b, 1, TZ_FILE_MAX, fp);
	fclose(fp);
	if (b == NULL || (z = tz_from(b, len)) == NULL)
		snprintf(err, size, "%s: not a time zone file (TZif version 2 or later)", path);
	free(b);
	return z;
}

void
tz_free(struct tz *z)
{
	if (z == NULL)
		return;
	free(z->at);
	free(z->type);
	free(z->off);
	free(z);
}

int32_t
tz_offset_utc(const struct tz *z, int64_t utc)
{
	int lo = 0, hi = z->n;

	if (utc > TIME_MAX || utc < -TIME_MAX)
		utc = utc > 0 ? TIME_MAX : -TIME_MAX;

	if (z->n == 0 || utc < z->at[0])
		return z->n == 0 && z->rule ? rule_offset(z, utc) : z->first_off;
	if (utc >= z->at[z->n - 1] && z->rule)
		return rule_offset(z, utc);
	while (hi - lo > 1) {		/* the last transition at or before utc */
		int mid = (lo + hi) / 2;

		if (z->at[mid] <= utc)
			lo = mid;
		else
			hi = mid;
	}
	return z->off[z->type[lo]];
}

int32_t
tz_offset_local(const struct tz *z, int64_t local)
{
	int32_t before, after;
	int ok_before, ok_after;

	if (local > TIME_MAX || local < -TIME_MAX)
		local = local > 0 ? TIME_MAX : -TIME_MAX;
	before = tz_offset_utc(z, local - DAY);
	after = tz_offset_utc(z, local + DAY);
	ok_before = tz_offset_utc(z, local - before) == before;
	ok_after = tz_offset_utc(z, local - after) == after;

	if (ok_before && ok_after)	/* an overlap (or no change): the earlier instant */
		return before > after ? before : after;
	if (ok_after)
		return after;
	return before;			/* ok_before, or a gap: the offset before it */
}
