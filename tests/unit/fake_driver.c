/*
 * fake_driver: see fake_driver.h.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "driver.h"
#include "fake_driver.h"
#include "proc.h"
#include "sink.h"
#include "stats.h"
#include "tests.h"

struct fake fake;

static int
index_of(const struct sink *s)
{
	return (int)(s->cf - proc.cf->sinks);
}

static int
fake_start(struct sink *s)
{
	snprintf(s->where, sizeof(s->where), "fake %d", index_of(s));
	return 0;
}

/* Whole units of the queue's head that fit in limit bytes. */
static size_t
whole(const struct sink *s, size_t limit)
{
	size_t n = 0;

	while (n < s->q.len) {
		size_t u = sink_unit_len(s, s->q.p + n, s->q.len - n);

		if (n + u > limit)
			break;
		n += u;
	}
	return n;
}

static ssize_t
fake_write(struct sink *s, int *wait)
{
	int i = index_of(s);
	size_t n;

	*wait = 0;
	fake.writes[i]++;
	switch (fake.mode) {
	case FAKE_FAIL:
		errno = EIO;
		return -1;
	case FAKE_WAIT:
		*wait = 1;
		return 0;
	case FAKE_SHORT:
		n = whole(s, fake.limit);
		break;
	default:
		n = s->q.len;
	}
	if (obuf_reserve(&fake.out[i], n) == -1)
		return -1;
	memcpy(fake.out[i].p + fake.out[i].len, s->q.p, n);
	fake.out[i].len += n;
	return n;
}

static int
fake_sync(struct sink *s)
{
	fake.syncs[index_of(s)]++;
	if (fake.fail_sync) {
		errno = EIO;
		return -1;
	}
	return 0;
}

static void
fake_stop(struct sink *s)
{
	(void)s;
}

static const struct sink_driver fake_driver = {
	"fake", fake_start, fake_write, fake_sync, NULL, fake_stop
};

const struct sink_driver *
sink_driver_of(int type)
{
	(void)type;
	return &fake_driver;
}

void
fake_reset(void)
{
	for (int i = 0; i < 8; i++)
		obuf_free(&fake.out[i]);
	memset(&fake, 0, sizeof(fake));
}

/* A worker's loop, counters and sinks, from config (a config file's text); NULL on error. */
struct config *
fake_open(const char *config, const struct sink_hooks *hooks)
{
	static const struct sink_hooks none = { NULL, NULL };
	struct config *cf;
	char err[512];

	fake_reset();
	proc.base = event_base_new();
	proc.stats = stats_slot(0);
	stats_clear(0);
	cf = cfg_parse_string(config, "test", err, sizeof(err));
	ck_assert_msg(cf != NULL, "config: %s", err);
	proc.cf = cf;
	sink_open_all(cf, hooks ? hooks : &none);
	return cf;
}

void
fake_close(struct config *cf)
{
	sink_close_all(0);
	cfg_unref(cf);
	proc.cf = NULL;
	event_base_free(proc.base);
	proc.base = NULL;
	fake_reset();
}

void
fake_run(void)
{
	event_base_loop(proc.base, EVLOOP_NONBLOCK);
}

void
fake_run_for(long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(proc.base, &tv);
	event_base_dispatch(proc.base);
}
