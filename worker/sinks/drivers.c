/*
 * drivers: the driver of each sink type.  A new destination adds its
 * driver here, its file beside this one, and its settings to the config
 * table (common/config.c).
 */
#include "driver.h"

static const struct sink_driver *const drivers[] = {
	[SINK_FILE] = &sink_file_driver,
	[SINK_STDOUT] = &sink_file_driver,
	[SINK_FORWARD] = &sink_forward_driver,
	[SINK_REDIS] = &sink_redis_driver,
	[SINK_NATS] = &sink_nats_driver,
};

const struct sink_driver *
sink_driver_of(int type)
{
	return drivers[type];
}
