/*
 * micro: the record pipeline's cost per record on one core, without I/O.
 *
 * Records, LF-framed, are fed through framing -> parser -> JSON event
 * encoding into an in-memory sink buffer, as a worker does after read(2).
 * Prints records/s and ns/record.
 *
 *   tests/bench/micro [-n passes] [-r] [-t] [-s mix | 3164] [seconds]
 *
 * -s mix (the default) is a realistic mix of 100-300 byte records (RFC
 * 3164, RFC 5424 with structured data, JSON objects); -s 3164 is the
 * 100-byte RFC 3164 record of `ingestd-bench -s 3164 --size 100`, made by
 * ingestd-bench's own code.  -n runs exactly that many passes over the
 * stream instead of for seconds: a fixed amount of work, for counting
 * instructions per record under callgrind.  -r picks each record's sinks
 * by five routes first (ROUTES: field comparisons, a JSON member, one
 * regular expression), as records.c does when routes are configured.  -t
 * shapes each event by a sink's template too (four fields kept, one
 * renamed, one static), as records.c does for such a sink.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cond.h"
#include "config.h"
#include "encode.h"
#include "framing.h"
#include "proc.h"
#include "routes.h"
#include "stats.h"
#include "template.h"

#define STREAM_RECORDS	20000

/* -r: each route's condition, sink and whether it falls through. */
static const struct { const char *match; int sink, final; } ROUTES[] = {
	{ "severity <= err", 1, 0 },
	{ "facility in [auth, authpriv]", 2, 1 },
	{ "app == sshd and host == host7", 2, 1 },
	{ "msg ~ \"fail(ed|ure)\"", 3, 1 },
	{ "body.level == error or listener == audit", 3, 1 },
};
#define NROUTES	((int)(sizeof(ROUTES) / sizeof(ROUTES[0])))

static struct listener_cfg lst;
static struct encode_meta meta;
static struct obuf out;
static unsigned long nrec, routed[4];
static int use_routes;
static struct sink_cfg tmpl;		/* -t */
static char shaped[1 << 16];

/* -t: the event just encoded, shaped as a templated sink writes it. */
static void
shape_event(size_t start)
{
	if (out.len - start - 1 + tmpl.template_extra <= sizeof(shaped))
		template_event(&tmpl, out.p + start, out.len - start - 1, shaped);
}

static void
set_template(void)
{
	static char *keep[] = { "received_at", "host", "app", "msg" };
	static char *from[] = { "msg" }, *to[] = { "\"message\"" };

	tmpl.fields.v = keep;
	tmpl.fields.n = 4;
	tmpl.rename.n = 1;
	tmpl.rename_from = from;
	tmpl.rename_to = to;
	tmpl.statics = ",\"env\":\"prod\"";
	tmpl.template_extra = strlen(to[0]) + 1 + strlen(tmpl.statics);
	tmpl.templated = 1;
}

static void
on_record(void *arg, const char *rec, size_t len, int truncated)
{
	struct parsed pr;
	int idx[CFG_MAX_SINKS], n;

	size_t start;

	(void)arg;
	if (out.cap - out.len < ENCODE_MAX(len, meta.prefixlen))
		out.len = 0;		/* the sink wrote its batch */
	nrec++;
	start = out.len;
	if (!use_routes) {
		encode_event(&out, &meta, &lst, rec, len, truncated);
		if (tmpl.templated)
			shape_event(start);
		return;
	}
	encode_parse(&pr, &meta, &lst, rec, len);
	n = routes_pick(&lst, &meta, &pr, rec, len, idx);
	for (int i = 0; i < n; i++)
		routed[idx[i]]++;
	encode_put(&out, &meta, &lst, &pr, rec, len, truncated);
	if (tmpl.templated)
		shape_event(start);
}

/* The configuration records.c would see: ROUTES, the listener's own sink 0. */
static void
set_routes(void)
{
	static struct route_cfg r[NROUTES];
	static struct config cf;
	static struct worker_stats st;
	char err[256];

	for (int i = 0; i < NROUTES; i++) {
		if ((r[i].cond = cond_parse(ROUTES[i].match, err, sizeof(err))) == NULL) {
			fprintf(stderr, "micro: %s: %s\n", ROUTES[i].match, err);
			exit(1);
		}
		r[i].sink_idx[0] = ROUTES[i].sink;
		r[i].nsink_idx = 1;
		r[i].final = ROUTES[i].final;
		lst.route_idx[lst.nroute_idx++] = i;
	}
	cf.routes = r;
	cf.nroutes = NROUTES;
	proc.cf = &cf;
	proc.stats = &st;
	lst.name = "bench";
	lst.sink_idx[0] = 0;
	lst.nsink_idx = 1;
	use_routes = 1;
}

/* One record of the mix, padded with text to a size of 100 to 300 bytes. */
static size_t
make_record(char *buf, unsigned i)
{
	size_t pad = 40 + (i * 7919) % 190;
	char text[256];
	int n;

	memset(text, 'a' + i % 26, pad);
	text[pad] = '\0';
	switch (i % 3) {
	case 0:
		n = sprintf(buf, "<30>Nov 24 01:07:%02u host%u sshd[%u]: Accepted publickey %s\n",
		    i % 60, i % 50, 1000 + i % 9000, text);
		break;
	case 1:
		n = sprintf(buf, "<165>1 2026-11-24T01:07:50.%06uZ host%u app - ID%u "
		    "[ex@32473 seq=\"%u\" src=\"bench\"] %s\n", i % 1000000, i % 50, i % 100, i, text);
		break;
	default:
		n = sprintf(buf, "{\"conn\":%u,\"seq\":%u,\"level\":\"info\",\"msg\":\"%s\"}\n",
		    i % 100, i, text);
		break;
	}
	return (size_t)n;
}

/* The stream of -s 3164: 16 connections' records, as a blast sends them. */
static size_t
make_3164(char *stream)
{
	uint64_t rng = 1;
	size_t len = 0;

	rec_init(SHAPE_3164, 0, 100, 100);
	for (unsigned i = 0; i < STREAM_RECORDS; i++)
		len += rec_put(stream + len, i % 16, i / 16, &rng);
	return len;
}

static void
usage(void)
{
	fprintf(stderr, "usage: micro [-n passes] [-r] [-t] [-s mix | 3164] [seconds]\n");
	exit(EX_USAGE);
}

int
main(int argc, char **argv)
{
	double seconds = 3, t0, t;
	struct timespec ts;
	struct framer fr;
	const char *why, *shape = "mix";
	size_t len = 0;
	char *stream = malloc(STREAM_RECORDS * 320);
	unsigned long bytes = 0, passes = 0, npass = 0;
	int ch;

	while ((ch = getopt(argc, argv, "n:rs:t")) != -1) {
		switch (ch) {
		case 'n':
			passes = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			set_routes();
			break;
		case 't':
			set_template();
			break;
		case 's':
			shape = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind < argc)
		seconds = atof(argv[optind]);
	if (strcmp(shape, "3164") == 0)
		len = make_3164(stream);
	else if (strcmp(shape, "mix") == 0)
		for (unsigned i = 0; i < STREAM_RECORDS; i++)
			len += make_record(stream + len, i);
	else
		usage();
	lst.framing = FRAMING_AUTO;
	lst.format = FORMAT_AUTO;
	lst.max_record = 65536;
	meta.prefix = ",\"peer\":\"127.0.0.1:40000\",\"listener\":\"bench\"";
	meta.prefixlen = strlen(meta.prefix);
	out.cap = 4 * 1024 * 1024;
	out.p = malloc(out.cap);
	frame_init(&fr, FRAME_AUTO, 65536);
	t0 = now();
	do {
		/* as the worker reads: 64 KiB at a time, records split across reads */
		for (size_t off = 0; off < len; off += 65536) {
			size_t n = len - off < 65536 ? len - off : 65536;

			clock_gettime(CLOCK_REALTIME, &ts);
			encode_set_time(&meta, &ts);
			frame_feed(&fr, stream + off, n, on_record, NULL, &why);
		}
		bytes += len;
		npass++;
		t = now() - t0;
	} while (passes ? npass < passes : t < seconds);
	printf("micro: %s%s%s: %lu records (%.0f MB) in %.2f s: %.0f records/s, %.0f ns/record,"
	    " %.0f MB/s in, one core\n", shape, use_routes ? " with 5 routes" : "",
	    tmpl.templated ? " with a template" : "", nrec,
	    bytes / 1e6, t, nrec / t, t * 1e9 / nrec, bytes / 1e6 / t);
	if (use_routes)
		printf("micro: routed to sinks 0-3: %lu %lu %lu %lu\n", routed[0], routed[1],
		    routed[2], routed[3]);
	frame_free(&fr);
	free(out.p);
	free(stream);
	return 0;
}
