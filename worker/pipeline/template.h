/*
 * template: what a sink writes of an event other than the event line
 * itself: the event shaped by the sink's fields, drop_fields, rename and
 * static_fields, or an RFC 5424 line rebuilt from the parsed record.  See
 * TEMPLATES in ingestd.conf(5).
 */
#ifndef INGESTD_TEMPLATE_H
#define INGESTD_TEMPLATE_H

#include <stddef.h>

#include "config.h"
#include "encode.h"

/* Most bytes template_rfc5424 writes for a record of len bytes. */
#define TEMPLATE_RFC5424_MAX(len)	(2 * (len) + 640)

/*
 * The event line ev (len bytes, without its LF) as sink s's template
 * shapes it, into out, which has room for len + s->template_extra: its
 * length.
 */
size_t	 template_event(const struct sink_cfg *, const char *ev, size_t len, char *out);
/*
 * "<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG" of a parsed record into
 * out (room: TEMPLATE_RFC5424_MAX(len)), without LF: its length.
 */
size_t	 template_rfc5424(const struct encode_meta *, const struct parsed *, const char *rec,
	    size_t len, char *out);

#endif
