/*
 * region.c - the table of far-memory regions (room: fault engine).  Called
 * with dsm_eng.lock held.
 *
 * The table is an array sorted by base address: a fault finds its region
 * by binary search, and a process has few regions (the LD_PRELOAD shim
 * carves many allocations out of a few large arenas).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "fault.h"
#include "region.h"
#include "shared.h"

static uint32_t lower_bound(uint64_t addr)
{
	uint32_t lo = 0, hi = dsm_eng.nregions;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (dsm_eng.regions[mid]->base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo; /* first region with base > addr */
}

int dsm_region_insert(struct dsm_region *r)
{
	uint32_t at;

	if (dsm_eng.nregions == dsm_eng.cap_regions) {
		uint32_t cap = dsm_eng.cap_regions ? dsm_eng.cap_regions * 2 : 16;
		void *n = realloc(dsm_eng.regions, cap * sizeof(r));

		if (!n)
			return -ENOMEM;
		dsm_eng.regions = n;
		dsm_eng.cap_regions = cap;
	}
	at = lower_bound(r->base);
	memmove(&dsm_eng.regions[at + 1], &dsm_eng.regions[at],
		(dsm_eng.nregions - at) * sizeof(r));
	dsm_eng.regions[at] = r;
	dsm_eng.nregions++;
	r->refs++;
	return 0;
}

struct dsm_region *dsm_region_find(uint64_t addr)
{
	uint32_t at = lower_bound(addr);
	struct dsm_region *r;

	if (at == 0)
		return NULL;
	r = dsm_eng.regions[at - 1];
	return addr < r->base + r->size ? r : NULL;
}

void dsm_region_remove(struct dsm_region *r)
{
	for (uint32_t i = 0; i < dsm_eng.nregions; i++) {
		if (dsm_eng.regions[i] != r)
			continue;
		memmove(&dsm_eng.regions[i], &dsm_eng.regions[i + 1],
			(dsm_eng.nregions - i - 1) * sizeof(r));
		dsm_eng.nregions--;
		r->dead = true;
		dsm_region_put(r);
		return;
	}
}

void dsm_region_put(struct dsm_region *r)
{
	if (--r->refs)
		return;
	free(r->pages);
	dsm_placement_clear(&r->place);
	if (r->shared) {
		free(r->shared->pg);
		free(r->shared->held);
	}
	free(r->shared);
	free(r);
}
