/*
 * rdma_regions.c - the regions an RDMA connection may read and write
 * one-sidedly (room: transport).
 *
 * The engine names a page as (region id, pool offset), as the protocol
 * does; over RDMA that must become (server address, rkey).  The server
 * says both in the ALLOC reply, which this transport carries, so it
 * keeps them here: the engine and its extent map stay the same for every
 * transport, and an rkey never leaves the connection it belongs to.  An
 * entry goes when the FREE naming it is submitted: every READ or WRITE
 * submitted before has already taken its address, and any after it
 * fails here, before reaching the wire.
 *
 * Sorted by region id and found by binary search: a connection holds
 * one entry per dsm_alloc part on its server, a few thousand at most.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rdma.h"

/* The entry for id, or where it would go. */
static uint32_t lower_bound(const struct dsm_transport *t, uint64_t id)
{
	uint32_t lo = 0, hi = t->nregions;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (t->regions[mid].region_id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int rdma_region_add(struct dsm_transport *t, const struct dsm_alloc_reply *a)
{
	uint32_t at = lower_bound(t, a->region_id);

	if (at < t->nregions && t->regions[at].region_id == a->region_id)
		return -EEXIST; /* the server never reuses an id */
	if (t->nregions == t->regions_cap) {
		uint32_t cap = t->regions_cap ? 2 * t->regions_cap : 16;
		struct rregion *v = realloc(t->regions, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->regions = v;
		t->regions_cap = cap;
	}
	memmove(&t->regions[at + 1], &t->regions[at],
		(t->nregions - at) * sizeof(*t->regions));
	t->regions[at] = (struct rregion){ a->region_id, a->pool_off, a->size,
					   a->addr, a->rkey };
	t->nregions++;
	return 0;
}

void rdma_region_del(struct dsm_transport *t, uint64_t region_id)
{
	uint32_t at = lower_bound(t, region_id);

	if (at == t->nregions || t->regions[at].region_id != region_id)
		return;
	memmove(&t->regions[at], &t->regions[at + 1],
		(t->nregions - at - 1) * sizeof(*t->regions));
	t->nregions--;
}

/* Written without sums that could wrap, as the server's own check. */
int rdma_region_find(const struct dsm_transport *t, uint64_t region_id,
		     uint64_t pool_off, uint32_t npages, uint64_t *raddr,
		     uint32_t *rkey)
{
	uint32_t at = lower_bound(t, region_id);
	uint64_t bytes = (uint64_t)npages * DSM_PAGE_SIZE, rel;
	const struct rregion *r;

	if (at == t->nregions || t->regions[at].region_id != region_id)
		return -ENOENT;
	r = &t->regions[at];
	if (pool_off < r->pool_off)
		return -ERANGE;
	rel = pool_off - r->pool_off;
	if (rel > r->size || bytes > r->size - rel)
		return -ERANGE;
	*raddr = r->addr + rel;
	*rkey = r->rkey;
	return 0;
}

void rdma_regions_destroy(struct dsm_transport *t)
{
	free(t->regions);
	t->regions = NULL;
	t->nregions = t->regions_cap = 0;
}
