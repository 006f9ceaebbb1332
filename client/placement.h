/*
 * placement.h - where a region's pages live on the servers (room:
 * placement).  See placement.c for the policy; migrate.h moves copies of
 * stripes off servers being drained, and makes those lost with a server
 * again elsewhere.
 */
#ifndef DSM_PLACEMENT_H
#define DSM_PLACEMENT_H

#include <stdint.h>

#include "proto.h"

struct dsm_move;
struct dsm_region;

/* Where one stripe (or one copy of it) lives. */
struct dsm_home {
	uint32_t server;
	uint64_t region_id, pool_off;
};

/*
 * Copies of each stripe a region keeps, on as many distinct servers
 * (DSM_REPLICAS, default 1).  A write-back goes to every copy whose server
 * is up; a fetch reads the first such copy, and fails over to the next
 * when its server is lost; the mover makes a lost copy again on another
 * server (migrate.c).  See "Replicas" in docs/design.md.
 */
#define DSM_MAX_REPLICAS 3u

/* One piece of a region: [off, off+len) lives at pool_off on a server,
 * and, with replicas, at rep[i].pool_off on rep[i].server too (the
 * offset of the extent's first byte, as pool_off). */
struct dsm_extent {
	uint64_t off, len;
	uint32_t server;
	uint64_t region_id; /* the server's name for it */
	uint64_t pool_off;
	uint32_t nrep;      /* copies besides the one above */
	struct dsm_home rep[DSM_MAX_REPLICAS - 1];
	/* Bit c: copy c (0: the one above, c: rep[c-1]) missed a write-back
	 * its server refused while up, so it is never read. */
	uint8_t stale;
	/* Bit c: copy c is being filled by a move (migrate.c), so it is not
	 * read until the move's copy is on the wire to it.  Set only while
	 * move is. */
	uint8_t filling;
	/* One copy of it is being moved to another server, or made again
	 * there (migrate.c): until the copy is on the wire, nothing is
	 * fetched from the extent and write-backs to it wait in the move. */
	struct dsm_move *move;
};

/* What one server granted a region: one ALLOC, freed as a whole. */
struct dsm_part {
	uint32_t server;
	uint64_t region_id, pool_off, len;
};

/* Region offset -> (server, pool offset): extents sorted by offset,
 * covering the region. */
struct dsm_placement {
	struct dsm_extent *ext;
	uint32_t n;
	struct dsm_part *part;
	uint32_t nparts;
};

/* Regions are dealt out over servers in stripes of this size (one full
 * READ or WRITE). */
#define DSM_STRIPE_BYTES ((uint64_t)DSM_MAX_BATCH_PAGES * DSM_PAGE_SIZE)
#define DSM_STRIPE_PAGES (DSM_STRIPE_BYTES / DSM_PAGE_SIZE)

/* How many stripes a region of size bytes has, and the length of stripe k
 * (the last one may be short). */
static inline uint64_t dsm_stripes(uint64_t size)
{
	return (size + DSM_STRIPE_BYTES - 1) / DSM_STRIPE_BYTES;
}

static inline uint64_t dsm_stripe_len(uint64_t size, uint64_t k)
{
	uint64_t off = k * DSM_STRIPE_BYTES;

	return size - off < DSM_STRIPE_BYTES ? size - off : DSM_STRIPE_BYTES;
}

/* Place a region of size bytes over the live servers: ALLOC on each
 * server it uses, and the extent map.  0, -ENOMEM (not enough free
 * capacity, logged), or the servers' error.  Not under the lock. */
int dsm_place(uint64_t size, struct dsm_placement *pl);
/* Find homes for n stripes (or one copy of each) of lengths len[] on
 * servers neither lost nor draining, with one ALLOC per server used,
 * written to part[] (room for nservers) and counted in *nparts; home[k]
 * is stripe k's.  excl (NULL: none) names, DSM_MAX_REPLICAS entries per
 * stripe padded with UINT32_MAX, the servers stripe k must not go to:
 * those holding its other copies.  0, -ENOMEM, or the servers' error.
 * Not under the lock. */
int dsm_place_stripes(const uint64_t *len, uint64_t n, const uint32_t *excl,
		      struct dsm_part *part, uint32_t *nparts,
		      struct dsm_home *home);
/* FREE every part on its server; the extent map stays. */
void dsm_unplace(struct dsm_placement *pl);
void dsm_placement_clear(struct dsm_placement *pl);
/* The extent holding page idx of r.  Under the lock. */
const struct dsm_extent *dsm_region_extent(const struct dsm_region *r,
					   uint64_t idx);
/* Copy c of e, where its first byte lives (0: the primary). */
static inline struct dsm_home dsm_extent_copy(const struct dsm_extent *e,
					      uint32_t c)
{
	if (c)
		return e->rep[c - 1];
	return (struct dsm_home){ e->server, e->region_id, e->pool_off };
}

static inline void dsm_extent_set_copy(struct dsm_extent *e, uint32_t c,
				       const struct dsm_home *h)
{
	if (c) {
		e->rep[c - 1] = *h;
		return;
	}
	e->server = h->server;
	e->region_id = h->region_id;
	e->pool_off = h->pool_off;
}

/* Under the lock: the first copy of e to read, its server up and the
 * copy neither stale nor being filled; -1 when there is none. */
int dsm_extent_live_copy(const struct dsm_extent *e);

/* Under the lock: does a write-back of e's pages keep their data?  A
 * copy's server is up and the copy not stale (one being filled counts:
 * the write-back waits in the move and reaches it after the copy). */
bool dsm_extent_keeps_writes(const struct dsm_extent *e);

/* Where page idx (inside e) lives in its server's pool. */
static inline uint64_t dsm_extent_pool_off(const struct dsm_extent *e,
					   uint64_t idx)
{
	return e->pool_off + (idx * DSM_PAGE_SIZE - e->off);
}

#endif /* DSM_PLACEMENT_H */
