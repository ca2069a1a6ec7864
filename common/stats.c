/*
 * stats: the workers' counter slots in one anonymous shared mapping, and
 * the tables that describe every counter (see stats.h).
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "conntab.h"
#include "log.h"
#include "stats.h"
#include "tlsctx.h"

#define STAT_ROW(type, field, metric, label, path, help, line, text)	\
	{ offsetof(type, field), metric, label, path, help, line, text },
#define WORKER_ROW(...)		STAT_ROW(struct worker_counts, __VA_ARGS__)
#define LISTENER_ROW(...)	STAT_ROW(struct listener_counts, __VA_ARGS__)
#define SINK_ROW(...)		STAT_ROW(struct sink_stats, __VA_ARGS__)
#define ROUTE_ROW(...)		STAT_ROW(struct route_counts, __VA_ARGS__)

const struct stat_desc stats_worker[] = { STATS_WORKER(WORKER_ROW) };
const struct stat_desc stats_listener[] = { STATS_LISTENER(LISTENER_ROW) };
const struct stat_desc stats_sink[] = { STATS_SINK(SINK_ROW) };
const struct stat_desc stats_route[] = { STATS_ROUTE(ROUTE_ROW) };
const int stats_nworker = sizeof(stats_worker) / sizeof(stats_worker[0]);
const int stats_nlistener = sizeof(stats_listener) / sizeof(stats_listener[0]);
const int stats_nsink = sizeof(stats_sink) / sizeof(stats_sink[0]);
const int stats_nroute = sizeof(stats_route) / sizeof(stats_route[0]);

_Static_assert(CT_NREASONS - CT_REFUSE_ACL == 4, "a refused_* counter per refusal");

static struct worker_stats	*slots;
static int			 nslots;

/* Map nslots zeroed slots, before the first fork; pages are touched only when used. */
int
stats_init(int n)
{
	size_t size = (size_t)n * sizeof(*slots);

	slots = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (slots == MAP_FAILED) {
		slots = NULL;
		log_warn("stats: mmap of %zu bytes", size);
		return -1;
	}
	nslots = n;
	return 0;
}

/* The slot of worker table entry i; a private one when there is no mapping (tests). */
struct worker_stats *
stats_slot(int i)
{
	static struct worker_stats private;

	return slots && i >= 0 && i < nslots ? &slots[i] : &private;
}

/*
 * One counter of sink index sink (off: in struct sink_stats) summed over
 * every slot: what all workers hold together (a spool's bytes).  Workers
 * of two generations whose sinks differ share an index for a moment.
 */
uint64_t
stats_sink_sum(int sink, size_t off)
{
	uint64_t sum = 0;

	for (int i = 0; i < (slots ? nslots : 1); i++)
		sum += *(const uint64_t *)((const char *)&stats_slot(i)->sink[sink] + off);
	return sum;
}

void
stats_clear(int i)
{
	memset(stats_slot(i), 0, sizeof(struct worker_stats));
}

/* The counter of connections refused for why (enum ct_refusal, not CT_ADMIT). */
uint64_t *
stats_refused(struct worker_counts *w, int why)
{
	switch (why) {
	case CT_REFUSE_ACL:
		return &w->refused_acl;
	case CT_REFUSE_MAX:
		return &w->refused_max;
	case CT_REFUSE_PER_IP:
		return &w->refused_per_ip;
	default:
		return &w->refused_full;
	}
}

/* The counter of a TLS handshake failure (enum tls_failure). */
uint64_t *
stats_tls_failed(struct listener_counts *l, int why)
{
	uint64_t *const by_reason[] = {
		[TLSF_NO_CERTIFICATE] = &l->tls_failed_no_certificate,
		[TLSF_UNTRUSTED] = &l->tls_failed_untrusted, [TLSF_EXPIRED] = &l->tls_failed_expired,
		[TLSF_REVOKED] = &l->tls_failed_revoked,
		[TLSF_NOT_PERMITTED] = &l->tls_failed_not_permitted,
		[TLSF_NOT_TLS] = &l->tls_failed_not_tls,
		[TLSF_NO_SHARED_PARAMS] = &l->tls_failed_no_shared_params,
		[TLSF_PROTOCOL] = &l->tls_failed_protocol, [TLSF_CLOSED] = &l->tls_failed_closed,
		[TLSF_TIMEOUT] = &l->tls_failed_handshake_timeout,
	};

	return by_reason[why];
}

/*
 * One exit line: the parts of the n rows of d that belong to line, with
 * their values in base, into buf.  Returns its length (0: the line has no
 * part).
 */
size_t
stats_line(const struct stat_desc *d, int n, const void *base, enum stat_line line, char *buf,
    size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (int i = 0; i < n; i++) {
		int k;

		if (d[i].line != line || len >= size)
			continue;
		k = snprintf(buf + len, size - len, d[i].text,
		    (unsigned long long)STAT_VALUE(base, &d[i]));
		if (k > 0)
			len += (size_t)k < size - len ? (size_t)k : size - len - 1;
	}
	return len;
}
