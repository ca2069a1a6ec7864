/*
 * libFuzzer target for worker/protocol/parse_syslog.c.  The input is copied into a
 * buffer of exactly its size, so ASan reports any read past the record,
 * which is never NUL-terminated in ingestd.  On success every slice must
 * lie inside the record, ts must be a string that fits, and walking the
 * structured data must only hand out slices of it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse_syslog.h"

#define NOW	((time_t)1795521600)	/* 2026-11-24T12:00:00Z */

static int
inside(struct slice s, const char *base, size_t len)
{
	return s.n == 0 || (s.p >= base && s.n <= len && s.p <= base + len - s.n);
}

static void
check_param(void *arg, struct slice id, struct slice name, struct slice value)
{
	const struct slice *sd = arg;

	if (id.n == 0 || !inside(id, sd->p, sd->n) || !inside(name, sd->p, sd->n) ||
	    !inside(value, sd->p, sd->n) || (name.n == 0 && value.n != 0))
		abort();
}

static void
check(const struct syslog_msg *m, const char *rec, size_t len)
{
	if (!inside(m->host, rec, len) || !inside(m->app, rec, len) ||
	    !inside(m->procid, rec, len) || !inside(m->msgid, rec, len) ||
	    !inside(m->sd, rec, len) || !inside(m->msg, rec, len))
		abort();
	if (memchr(m->ts, '\0', sizeof(m->ts)) == NULL || strlen(m->ts) > 39)
		abort();
	if (m->pri < 0 || m->pri > 191 || (m->version != 0 && m->version != 1))
		abort();
	if (m->sd.n > 0 && (m->version != 1 || m->sd.p[0] != '[' ||
	    m->sd.p[m->sd.n - 1] != ']'))
		abort();
	syslog_sd_walk(m->sd, check_param, (void *)&m->sd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct syslog_msg m;
	const char *why = NULL;
	char *rec;

	if ((rec = malloc(size > 0 ? size : 1)) == NULL)
		return 0;
	if (size > 0)
		memcpy(rec, data, size);
	if (syslog_parse(rec, size, NOW, &m, &why) == 0)
		check(&m, rec, size);
	else if (why == NULL)
		abort();
	free(rec);
	return 0;
}
