/*
 * ingestd-bench: a load generator for ingestd (see man/ingestd-bench.1).
 *
 *   ingestd-bench --mode blast|rate|churn|idle|slowloris --port PORT
 *                 --duration S | --count N [options]
 *
 * This file holds main: the options, the number of sender processes, and
 * the parent's part of a run: start the senders together, follow the sink
 * file meanwhile, gather the results and report.
 */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"

#define START_DELAY	0.01	/* s from the last READY to t0 */
#define READY_TIMEOUT	(CONNECT_TIMEOUT + 20)
#define FD_RESERVE	100	/* descriptors a sender needs besides its connections */

volatile sig_atomic_t stopping;

enum {
	OPT_HOST = 256, OPT_UNIX, OPT_SIZE, OPT_PER_CONN, OPT_INTERVAL, OPT_SOURCES, OPT_PROCS,
	OPT_GRACE, OPT_ID_BASE, OPT_RELP, OPT_WINDOW, OPT_TICK, OPT_UDP, OPT_TLS, OPT_CA,
	OPT_CERT, OPT_KEY, OPT_SERVER_NAME, OPT_RESUME,
};

static const struct option longopts[] = {
	{ "mode", required_argument, NULL, 'm' },
	{ "host", required_argument, NULL, OPT_HOST },
	{ "port", required_argument, NULL, 'p' },
	{ "unix", required_argument, NULL, OPT_UNIX },
	{ "connections", required_argument, NULL, 'c' },
	{ "rate", required_argument, NULL, 'r' },
	{ "count", required_argument, NULL, 'n' },
	{ "duration", required_argument, NULL, 'd' },
	{ "shape", required_argument, NULL, 's' },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "octet", no_argument, NULL, 'o' },
	{ "per-conn", required_argument, NULL, OPT_PER_CONN },
	{ "interval", required_argument, NULL, OPT_INTERVAL },
	{ "sources", required_argument, NULL, OPT_SOURCES },
	{ "procs", required_argument, NULL, OPT_PROCS },
	{ "json", no_argument, NULL, 'j' },
	{ "follow", required_argument, NULL, 'f' },
	{ "follow-grace", required_argument, NULL, OPT_GRACE },
	{ "id-base", required_argument, NULL, OPT_ID_BASE },
	{ "relp", no_argument, NULL, OPT_RELP },
	{ "window", required_argument, NULL, OPT_WINDOW },
	{ "tick", required_argument, NULL, OPT_TICK },
	{ "udp", no_argument, NULL, OPT_UDP },
	{ "tls", no_argument, NULL, OPT_TLS },
	{ "ca", required_argument, NULL, OPT_CA },
	{ "cert", required_argument, NULL, OPT_CERT },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "server-name", required_argument, NULL, OPT_SERVER_NAME },
	{ "resume", no_argument, NULL, OPT_RESUME },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void __attribute__((noreturn))
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: ingestd-bench -m blast|rate|churn|idle|slowloris (-p PORT | --unix PATH)\n"
	    "                     (-d SECONDS | -n RECORDS) [-c CONNECTIONS] [-r RATE]\n"
	    "                     [--host ADDR] [-s 5424|3164|json|raw|mix] [--size N|N-M] [-o]\n"
	    "                     [--per-conn K] [--interval SECONDS] [--tick MICROSECONDS]\n"
	    "                     [--sources N] [--procs N]\n"
	    "                     [-f FILE] [--follow-grace SECONDS] [--id-base N] [-j]\n"
	    "                     [--relp [--window N] | --udp]\n"
	    "                     [--tls [--ca FILE] [--cert FILE [--key FILE]]\n"
	    "                      [--server-name NAME] [--resume]]\n");
	exit(status);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
bad(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
	usage(EX_USAGE);
}

static uint64_t
number(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		bad("--%s %s: must be a whole number from %llu to %llu", opt, s,
		    (unsigned long long)min, (unsigned long long)max);
	return v;
}

static double
positive(const char *opt, const char *s, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 1e9)
		bad("--%s %s: must be a number of %s above 0", opt, s, what);
	return v;
}

static int
pick(const char *opt, const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	bad("--%s %s: unknown", opt, s);
}

static void
size_range(struct opts *o, const char *s)
{
	const char *dash = strchr(s, '-');
	char lo[32];

	if (dash == NULL) {
		o->size_min = o->size_max = number("size", s, 1, MAX_SIZE);
		return;
	}
	snprintf(lo, sizeof(lo), "%.*s", (int)(dash - s), s);
	o->size_min = number("size", lo, 1, MAX_SIZE);
	o->size_max = number("size", dash + 1, 1, MAX_SIZE);
	if (o->size_min > o->size_max)
		bad("--size %s: the range is empty", s);
}

static void
parse(struct opts *o, int argc, char **argv)
{
	static const char *const modes[] = { "blast", "rate", "churn", "idle", "slowloris" };
	static const char *const shapes[] = { "5424", "3164", "json", "raw", "mix" };
	int ch, mode = -1;

	while ((ch = getopt_long(argc, argv, "c:d:f:hjm:n:op:r:s:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'm': mode = pick("mode", optarg, modes, 5); break;
		case OPT_HOST: o->host = optarg; break;
		case 'p': o->port = number("port", optarg, 1, 65535); break;
		case OPT_UNIX: o->unix_path = optarg; break;
		case 'c': o->conns = number("connections", optarg, 1, 10000000); break;
		case 'r': o->rate = positive("rate", optarg, "events a second"); break;
		case 'n': o->count = number("count", optarg, 1, UINT64_MAX / 2); break;
		case 'd': o->duration = positive("duration", optarg, "seconds"); break;
		case 's': o->shape = pick("shape", optarg, shapes, 5); break;
		case OPT_SIZE: size_range(o, optarg); break;
		case 'o': o->octet = 1; break;
		case OPT_PER_CONN: o->per_conn = number("per-conn", optarg, 1, 1000000); break;
		case OPT_INTERVAL: o->interval = positive("interval", optarg, "seconds"); break;
		case OPT_SOURCES: o->sources = number("sources", optarg, 1, 253); break;
		case OPT_PROCS: o->procs = number("procs", optarg, 1, MAX_PROCS); break;
		case 'j': o->json = 1; break;
		case 'f': o->follow = optarg; break;
		case OPT_GRACE:
			o->follow_grace = positive("follow-grace", optarg, "seconds");
			break;
		case OPT_ID_BASE: o->id_base = number("id-base", optarg, 0, 1000000000); break;
		case OPT_RELP: o->relp = 1; break;
		case OPT_WINDOW: o->window = number("window", optarg, 1, 1000000); break;
		case OPT_TICK: o->tick = number("tick", optarg, 1, 1000000) / 1e6; break;
		case OPT_UDP: o->udp = 1; break;
		case OPT_TLS: o->tls = 1; break;
		case OPT_CA: o->tls_ca = optarg; break;
		case OPT_CERT: o->tls_cert = optarg; break;
		case OPT_KEY: o->tls_key = optarg; break;
		case OPT_SERVER_NAME: o->tls_server_name = optarg; break;
		case OPT_RESUME: o->tls_resume = 1; break;
		case 'h': usage(0);
		default: usage(EX_USAGE);
		}
	}
	if (optind < argc)
		bad("unexpected argument %s", argv[optind]);
	if (mode < 0)
		bad("--mode is required");
	o->mode = mode;
}

static void
check(const struct opts *o)
{
	int rated = o->mode == MODE_RATE || o->mode == MODE_CHURN;
	int held = o->mode == MODE_IDLE || o->mode == MODE_SLOWLORIS;

	if ((o->port == 0) == (o->unix_path == NULL))
		bad("give either --port or --unix");
	if (o->unix_path && o->sources)
		bad("--sources is for TCP");
	if (held && o->duration == 0)
		bad("--mode %s needs --duration", o->mode == MODE_IDLE ? "idle" : "slowloris");
	if (o->duration == 0 && o->count == 0)
		bad("give --duration or --count (or both): a run must end");
	if (rated && o->rate == 0)
		bad("--mode %s needs --rate", o->mode == MODE_RATE ? "rate" : "churn");
	if (o->follow && held)
		bad("--follow is for blast, rate and churn");
	if (o->relp && o->mode != MODE_BLAST && o->mode != MODE_RATE)
		bad("--relp is for blast and rate");
	if (o->relp && o->octet)
		bad("--relp frames records itself: no --octet");
	if (o->window && !o->relp)
		bad("--window is for --relp");
	if (o->udp && o->mode != MODE_BLAST && o->mode != MODE_RATE)
		bad("--udp is for blast and rate");
	if (o->udp && (o->relp || o->octet))
		bad("--udp sends one record per datagram: no --relp, no --octet");
	if (o->udp && o->tls)
		bad("--tls is for streams: no --udp");
	if (!o->tls && (o->tls_ca || o->tls_cert || o->tls_key || o->tls_server_name ||
	    o->tls_resume))
		bad("--ca, --cert, --key, --server-name and --resume go with --tls");
	if (o->procs && o->procs > o->conns)
		bad("--procs %u: more processes than connections (%u)", o->procs, o->conns);
}

/* Raise the soft limit of descriptors to the hard one; the limit. */
static rlim_t
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 1024;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1 && getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 1024;
	return rl.rlim_cur;
}

/* One process per so many connections as the descriptor limit allows. */
static unsigned
choose_procs(const struct opts *o)
{
	rlim_t limit = raise_nofile();
	uint64_t per = limit > 2 * FD_RESERVE ? limit - FD_RESERVE : FD_RESERVE;
	uint64_t n = o->procs ? o->procs : (o->conns + per - 1) / per;

	if (n > MAX_PROCS || (o->conns + n - 1) / n > per)
		bad("%u connections need more than %u processes of %llu descriptors; see --procs",
		    o->conns, n > MAX_PROCS ? MAX_PROCS : (unsigned)n, (unsigned long long)per);
	return n;
}

/* How many connection ids the run may use, for --follow. */
static uint64_t
nids(const struct opts *o)
{
	uint64_t n = o->mode == MODE_CHURN ? churn_total(o) : o->conns;

	return n > UINT32_MAX - o->id_base ? UINT32_MAX - o->id_base : n;
}

/* The first SIGINT or SIGTERM ends the sending; a second one the --follow grace. */
static void
on_signal(int sig)
{
	(void)sig;
	if (stopping < 2)
		stopping++;
}

static void
signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

struct run {
	const struct opts *o;
	struct child	*c;
	unsigned	 n;
	struct follow	*f;
	double		 t0;
	int		 failed;
	int		 more;		/* the followed file has more to read now */
	int		 said_idle, told_stop;
};

/* In idle mode, once every sender's connects have ended: the moment to measure. */
static void
say_idle(struct run *r)
{
	uint64_t est = 0, errs = 0;

	if (r->o->mode != MODE_IDLE || r->said_idle)
		return;
	for (unsigned i = 0; i < r->n; i++) {
		if (!r->c[i].idle && !r->c[i].gone)
			return;
		est += r->c[i].idle_established;
		errs += r->c[i].idle_errors;
	}
	fprintf(stderr, "idle: %llu established, %llu connect errors, %.3f s\n",
	    (unsigned long long)est, (unsigned long long)errs, now() - r->t0);
	r->said_idle = 1;
}

/* Wait up to ms for the senders' messages and the followed file. */
static void
pump(struct run *r, int ms)
{
	struct pollfd pfd[MAX_PROCS + 1];
	unsigned np = 0, who[MAX_PROCS];

	if (stopping && !r->told_stop) {
		procs_kill(r->c, r->n);
		r->told_stop = 1;
	}
	for (unsigned i = 0; i < r->n; i++) {
		if (r->c[i].done || r->c[i].gone)
			continue;
		pfd[np] = (struct pollfd){ .fd = r->c[i].fd, .events = POLLIN };
		who[np++] = i;
	}
	if (r->f)
		pfd[np] = (struct pollfd){ .fd = follow_fd(r->f), .events = POLLIN };
	if (r->more || (r->f && follow_fd(r->f) < 0 && ms > 10))
		ms = r->more ? 0 : 10;
	if (poll(pfd, np + (r->f != NULL), ms) > 0)
		for (unsigned j = 0; j < np; j++)
			if (pfd[j].revents && procs_message(&r->c[who[j]]) == -1) {
				r->c[who[j]].gone = 1;
				r->failed = 1;
			}
	if (r->f)
		r->more = follow_read(r->f);
	say_idle(r);
}

static int
all(const struct run *r, int ready)
{
	for (unsigned i = 0; i < r->n; i++)
		if (!r->c[i].gone && !(ready ? r->c[i].ready : r->c[i].done))
			return 0;
	return 1;
}

/* After the senders: wait for the last lines, at most --follow-grace. */
static void
follow_rest(struct run *r, double end)
{
	for (unsigned i = 0; i < r->n; i++)
		for (size_t k = 0; k < r->c[i].nsent; k++)
			follow_expect(r->f, k * r->n + i, r->c[i].sent[k]);
	while (!follow_complete(r->f) && stopping < 2 && now() < end + r->o->follow_grace)
		pump(r, 50);
}

static int
run(struct run *r, struct summary *sum)
{
	double t0, deadline = now() + READY_TIMEOUT;

	if (procs_fork(r->o, r->n, r->c) == -1)
		return -1;
	if (r->o->follow)
		r->f = follow_open(r->o->follow, r->o->id_base, nids(r->o));
	while (!all(r, 1) && !r->failed && now() < deadline)
		pump(r, 100);
	if (r->failed || !all(r, 1))
		return -1;
	r->t0 = t0 = now() + START_DELAY;
	if (r->f)
		follow_start(r->f, t0, r->o->mode == MODE_RATE || r->o->mode == MODE_CHURN ?
		    r->o->rate : 0, r->o->conns, r->o->mode == MODE_CHURN);
	if (procs_start(r->c, r->n, t0) == -1)
		return -1;
	while (!all(r, 0))
		pump(r, 100);
	for (unsigned i = 0; i < r->n; i++)
		report_add(&sum->r, &r->c[i].res);
	sum->seconds = sum->r.t_end > t0 ? sum->r.t_end - t0 : 0;
	if (r->f) {
		follow_rest(r, sum->r.t_end > t0 ? sum->r.t_end : now());
		sum->fs = follow_stats(r->f);
	}
	return r->failed ? -1 : 0;
}

int
main(int argc, char **argv)
{
	struct opts o = { .host = "127.0.0.1", .conns = 8, .shape = SHAPE_MIX, .size_min = 100,
	    .size_max = 100, .per_conn = 10, .interval = 1, .follow_grace = 5,
	    .tick = 100e-6 };
	struct summary sum = { .o = &o };
	struct child c[MAX_PROCS];
	struct run r = { .o = &o, .c = c };
	int rc;

	parse(&o, argc, argv);
	check(&o);
	if (o.window == 0)
		o.window = 128;
	sum.procs = r.n = choose_procs(&o);
	if (net_init(&o) == -1)
		return EX_USAGE;
	rec_init(o.shape, o.octet, o.size_min, o.size_max);
	out_datagrams(o.udp);
	if (o.tls && tls_setup(&o) == -1)
		return EX_USAGE;
	signals();
	memset(c, 0, sizeof(c));
	rc = run(&r, &sum);
	if (rc == -1)
		procs_kill(c, r.n);
	if (procs_reap(c, r.n) == -1)
		rc = -1;
	if (rc == 0 || sum.r.t_end > 0)
		report_print(&sum);
	if (rc == 0 && report_failed(&sum))
		rc = -1;
	if (r.f)
		follow_close(r.f);
	for (unsigned i = 0; i < r.n; i++)
		free(c[i].sent);
	return rc == -1 ? EX_FAILED : 0;
}
