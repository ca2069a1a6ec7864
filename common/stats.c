/*
 * stats: the workers' counter slots in one anonymous shared mapping.
 */
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "stats.h"

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

void
stats_clear(int i)
{
	memset(stats_slot(i), 0, sizeof(struct worker_stats));
}
