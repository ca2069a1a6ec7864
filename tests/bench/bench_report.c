/*
 * bench_report: the senders' results added up, what counts as a failure,
 * and the summary: a block of text, or with --json one JSON object, on
 * standard output.  Latencies and times are in microseconds; MB are 10^6
 * bytes.
 */
#include <stdio.h>

#include "bench.h"

static const char *const modes[] = { "blast", "rate", "churn", "idle", "slowloris" };
static const char *const shapes[] = { "5424", "3164", "json", "raw", "mix" };

void
report_add(struct result *sum, const struct result *r)
{
	if (r->t_end > sum->t_end)
		sum->t_end = r->t_end;
	sum->records += r->records;
	sum->bytes += r->bytes;
	sum->established += r->established;
	sum->connect_errors += r->connect_errors;
	sum->refused += r->refused;
	sum->resets += r->resets;
	sum->server_closed += r->server_closed;
	sum->completed += r->completed;
	sum->eof_timeouts += r->eof_timeouts;
	sum->unsent += r->unsent;
	sum->stalled |= r->stalled;
	hist_merge(&sum->close_time, &r->close_time);
	sum->acked += r->acked;
	sum->rejected += r->rejected;
	sum->unacked += r->unacked;
	sum->resends += r->resends;
	sum->reconnects += r->reconnects;
	sum->serverclose += r->serverclose;
	sum->refused_open += r->refused_open;
	sum->tls_resumed += r->tls_resumed;
	sum->tls_failed += r->tls_failed;
	hist_merge(&sum->ack_latency, &r->ack_latency);
}

static int
sends_records(enum mode m)
{
	return m == MODE_BLAST || m == MODE_RATE || m == MODE_CHURN;
}

/*
 * With --relp, a run failed when a record was left unanswered or answered
 * with an error, when a session was refused, or when --follow found an
 * answered record missing or one that was never sent.  Resets, closes and
 * duplicates are what a RELP client recovers from: reported, not failures.
 */
static int
relp_failed(const struct summary *s)
{
	const struct result *r = &s->r;

	if (r->unacked || r->rejected || r->refused_open || r->records == 0)
		return 1;
	return s->fs && (s->fs->missing || s->fs->unexpected);
}

/*
 * A run failed when a connect failed, when a mode that must deliver records
 * saw a reset, stalled, left records unsent or sent nothing, or when
 * --follow found a record missing, duplicated or unexpected.  Closes and
 * resets are what idle and slowloris provoke: they are reported, not
 * failures.
 */
int
report_failed(const struct summary *s)
{
	const struct result *r = &s->r;

	if (r->connect_errors)
		return 1;
	if (s->o->relp)
		return relp_failed(s);
	if (sends_records(s->o->mode) && (r->resets || r->stalled || r->unsent ||
	    r->records == 0))
		return 1;
	return s->fs && (s->fs->missing || s->fs->duplicates || s->fs->unexpected);
}

static double
per_s(uint64_t n, double seconds)
{
	return seconds > 0 ? n / seconds : 0;
}

static unsigned long long
ull(uint64_t v)
{
	return v;
}

static void
text_header(const struct summary *s)
{
	const struct opts *o = s->o;

	printf("ingestd-bench %s: %s%u connections, %u process%s", modes[o->mode],
	    o->mode == MODE_CHURN ? "at most " : "", o->conns, s->procs,
	    s->procs == 1 ? "" : "es");
	if (o->mode == MODE_IDLE) {
		printf("\n");
		return;
	}
	if (o->size_min == o->size_max)
		printf(", %zu-byte records", o->size_min);
	else
		printf(", %zu-%zu-byte records", o->size_min, o->size_max);
	printf(" (%s, %s)\n", shapes[o->shape], o->octet ? "octet-counted" : "LF");
}

static void
text_mode(const struct summary *s)
{
	const struct result *r = &s->r;

	if (s->o->mode == MODE_CHURN)
		printf("churn        %llu connections completed, %.1f connections/s, "
		    "%llu EOF timeouts\n", ull(r->completed), per_s(r->completed, s->seconds),
		    ull(r->eof_timeouts));
	if (s->o->mode == MODE_SLOWLORIS)
		printf("slowloris    first byte to close (%llu connections): "
		    "min %.3f s, median %.3f s, max %.3f s\n",
		    ull(r->close_time.n), r->close_time.min / 1e6,
		    hist_pct(&r->close_time, 0.5) / 1e6, r->close_time.max / 1e6);
	if (r->stalled)
		printf("stalled      nothing could be written for %.0f s\n", STALL_TIMEOUT);
	if (r->unsent)
		printf("unsent       %llu records begun and not wholly written\n", ull(r->unsent));
}

static void
text_relp(const struct summary *s)
{
	const struct result *r = &s->r;
	const struct hist *h = &r->ack_latency;

	printf("relp         window %u: %llu acknowledged, %.0f acknowledged records/s, "
	    "%llu rejected, %llu unacknowledged\n", s->o->window, ull(r->acked),
	    per_s(r->acked, s->seconds), ull(r->rejected), ull(r->unacked));
	if (h->n)
		printf("acks         p50 %llu us, p99 %llu us, p99.9 %llu us, max %llu us "
		    "(%llu records)\n", ull(hist_pct(h, 0.5)), ull(hist_pct(h, 0.99)),
		    ull(hist_pct(h, 0.999)), ull(h->max), ull(h->n));
	printf("sessions     %llu reconnects (%llu serverclose, %llu refused), "
	    "%llu records re-sent\n", ull(r->reconnects), ull(r->serverclose),
	    ull(r->refused_open), ull(r->resends));
}

static void
text_follow(const struct follow_stats *fs)
{
	const struct hist *h = &fs->latency;

	printf("follow       %llu received, %llu missing, %llu duplicates, %llu unexpected "
	    "(%llu lines, %llu foreign)\n", ull(fs->received), ull(fs->missing),
	    ull(fs->duplicates), ull(fs->unexpected), ull(fs->lines), ull(fs->foreign));
	printf("end to end   %.0f records/s: the last seen %.3f s after the start\n",
	    per_s(fs->received, fs->seconds), fs->seconds);
	if (fs->timed && h->n == 0)
		printf("latency      no record seen\n");
	else if (fs->timed)
		printf("latency      p50 %llu us, p99 %llu us, p99.9 %llu us, max %llu us "
		    "(%llu records)\n", ull(hist_pct(h, 0.5)), ull(hist_pct(h, 0.99)),
		    ull(hist_pct(h, 0.999)), ull(h->max), ull(h->n));
}

static void
print_text(const struct summary *s)
{
	const struct opts *o = s->o;
	const struct result *r = &s->r;

	text_header(s);
	if (o->mode == MODE_IDLE) {
		printf("held         %.3f s\n", s->seconds);
	} else {
		printf("sent         %llu records, %llu bytes in %.3f s\n", ull(r->records),
		    ull(r->bytes), s->seconds);
		printf("throughput   %.0f records/s, %.2f MB/s\n", per_s(r->records, s->seconds),
		    per_s(r->bytes, s->seconds) / 1e6);
	}
	printf("connections  %llu established, %llu connect errors (%llu refused), %llu resets, "
	    "%llu closed by server\n", ull(r->established), ull(r->connect_errors),
	    ull(r->refused), ull(r->resets), ull(r->server_closed));
	if (o->tls)
		printf("tls          %llu handshakes resumed a session, %llu failed\n",
		    ull(r->tls_resumed), ull(r->tls_failed));
	text_mode(s);
	if (o->relp)
		text_relp(s);
	if (s->fs)
		text_follow(s->fs);
	printf("result       %s\n", report_failed(s) ? "FAILED" : "ok");
}

static void
json_hist(const char *name, const struct hist *h, double scale)
{
	printf(",\"%s\":{\"count\":%llu,\"min\":%.6g,\"p50\":%.6g,\"p99\":%.6g,\"p99_9\":%.6g,"
	    "\"max\":%.6g}", name, ull(h->n), h->min * scale, hist_pct(h, 0.5) * scale,
	    hist_pct(h, 0.99) * scale, hist_pct(h, 0.999) * scale, h->max * scale);
}

static void
json_follow(const struct follow_stats *fs)
{
	printf(",\"follow\":{\"lines\":%llu,\"foreign\":%llu,\"received\":%llu,"
	    "\"missing\":%llu,\"duplicates\":%llu,\"unexpected\":%llu,\"seconds\":%.6f,"
	    "\"records_per_s\":%.1f}", ull(fs->lines), ull(fs->foreign), ull(fs->received),
	    ull(fs->missing), ull(fs->duplicates), ull(fs->unexpected), fs->seconds,
	    per_s(fs->received, fs->seconds));
	if (fs->timed)
		json_hist("latency_us", &fs->latency, 1);
}

static void
json_relp(const struct summary *s)
{
	const struct result *r = &s->r;

	printf(",\"relp\":{\"window\":%u,\"acked\":%llu,\"acked_per_s\":%.1f,\"rejected\":%llu,"
	    "\"unacked\":%llu,\"resends\":%llu,\"reconnects\":%llu,\"serverclose\":%llu,"
	    "\"refused_open\":%llu", s->o->window, ull(r->acked), per_s(r->acked, s->seconds),
	    ull(r->rejected), ull(r->unacked), ull(r->resends), ull(r->reconnects),
	    ull(r->serverclose), ull(r->refused_open));
	json_hist("ack_latency_us", &r->ack_latency, 1);
	printf("}");
}

static void
print_json(const struct summary *s)
{
	const struct opts *o = s->o;
	const struct result *r = &s->r;

	printf("{\"mode\":\"%s\",\"connections\":%u,\"processes\":%u,\"shape\":\"%s\","
	    "\"size_min\":%zu,\"size_max\":%zu,\"framing\":\"%s\"", modes[o->mode], o->conns,
	    s->procs, shapes[o->shape], o->size_min, o->size_max, o->octet ? "octet" : "lf");
	printf(",\"records\":%llu,\"bytes\":%llu,\"seconds\":%.6f,\"records_per_s\":%.1f,"
	    "\"mb_per_s\":%.3f", ull(r->records), ull(r->bytes), s->seconds,
	    per_s(r->records, s->seconds), per_s(r->bytes, s->seconds) / 1e6);
	printf(",\"established\":%llu,\"connect_errors\":%llu,\"refused\":%llu,\"resets\":%llu,"
	    "\"closed_by_server\":%llu,\"stalled\":%s,\"unsent\":%llu", ull(r->established),
	    ull(r->connect_errors), ull(r->refused), ull(r->resets), ull(r->server_closed),
	    r->stalled ? "true" : "false", ull(r->unsent));
	if (o->mode == MODE_CHURN)
		printf(",\"completed\":%llu,\"connections_per_s\":%.1f,\"eof_timeouts\":%llu",
		    ull(r->completed), per_s(r->completed, s->seconds), ull(r->eof_timeouts));
	if (o->mode == MODE_SLOWLORIS)
		json_hist("close_s", &r->close_time, 1e-6);
	if (o->tls)
		printf(",\"tls_resumed\":%llu,\"tls_failed\":%llu", ull(r->tls_resumed),
		    ull(r->tls_failed));
	if (o->relp)
		json_relp(s);
	if (s->fs)
		json_follow(s->fs);
	printf(",\"ok\":%s}\n", report_failed(s) ? "false" : "true");
}

void
report_print(const struct summary *s)
{
	if (s->o->json)
		print_json(s);
	else
		print_text(s);
	fflush(stdout);
}
