/*
 * region.h - far-memory regions and their pages (room: fault engine).
 *
 * A region is one dsm_alloc (or one arena of the preload shim): a range
 * of the address space registered with userfaultfd, an array of page
 * records, and the placement map that says where each page lives on the
 * servers.  The engine finds a region from a faulting address through the
 * region table (region.c).  Everything here is guarded by dsm_eng.lock.
 *
 * Page states (docs/design.md draws the machine):
 *
 *   INVALID --missing fault, never written--> CLEAN or DIRTY (zero page)
 *   INVALID --missing fault--> FETCHING --reply--> CLEAN (write-protected)
 *   FETCHING --error/server lost--> LOST (poisoned: SIGBUS on access)
 *   FETCHING --reply, first page of a window fetched ahead--> PARKED
 *   PARKED --missing fault, or its stream forgotten--> CLEAN
 *   CLEAN --WP fault--> DIRTY (writable)
 *   CLEAN --evict--> INVALID                 (dropped, no write-back)
 *   DIRTY --evict--> INVALID                 (protected, copied, sent, dropped)
 *   DIRTY --head of the queue--> DIRTY, WATCHED  (2q-wp: protected again,
 *                                            requeued)
 *   DIRTY, WATCHED --WP fault--> DIRTY       (writable, kept: in use)
 *   DIRTY --dsm_sync--> CLEAN                (protected, copied, sent)
 *
 * A shared region's pages (shared.h) use the same states, read through
 * coherence: CLEAN is a read-only copy, DIRTY an owned one, FETCHING an
 * ownership request in flight.
 */
#ifndef DSM_REGION_H
#define DSM_REGION_H

#include <stdbool.h>
#include <stdint.h>

#include "placement.h"
#include "proto.h"

enum dsm_page_state {
	DSM_PG_INVALID = 0, /* not resident; data on its server, or zeros */
	DSM_PG_FETCHING,    /* a READ for it is in flight */
	DSM_PG_CLEAN,       /* resident, write-protected, equal to server copy */
	DSM_PG_DIRTY,       /* resident, writable, newer than server copy */
	DSM_PG_LOST,        /* its server is gone: poisoned */
	DSM_PG_PARKED,      /* fetched, held by the engine, not mapped yet:
	                     * its first touch continues a stream (fault.c) */
};

enum dsm_page_flags {
	DSM_PGF_ON_SERVER = 1 << 0,  /* the server holds written data for it */
	DSM_PGF_PREFETCHED = 1 << 1, /* brought in ahead, not yet seen used */
	DSM_PGF_FREED = 1 << 2,      /* resident, but the program freed it:
	                              * dropped without write-back (discard.c) */
	DSM_PGF_NOREAD = 1 << 3,     /* the program made it unreadable
	                              * (mprotect): never read it, so never
	                              * let it become DIRTY (protect.c) */
	DSM_PGF_WATCHED = 1 << 4,    /* DIRTY, but write-protected again on
	                              * its second chance (DSM_EVICT=2q-wp,
	                              * evict.c): a write keeps it; set only
	                              * while protected */
	DSM_PGF_MARKED = 1 << 5,     /* INVALID, next to a block fetched
	                              * or zero-filled around a fault: a
	                              * fault on it soon says a larger block
	                              * would have been used, or that a run
	                              * goes on (its mark, fault.c) */
	DSM_PGF_PROBE = 1 << 6,      /* fetched and installed clean to see
	                              * whether it gets written: its fate
	                              * trains write prediction (fault.c) */
	DSM_PGF_WRITE_WAITS = 1 << 7, /* FETCHING, and a thread waits to
	                              * write it: install it writable */
};

/* Which eviction queue a resident page is in (evict.h). */
enum dsm_queue_id { DSM_Q_NONE, DSM_Q_PROBATION, DSM_Q_PROTECTED };

struct dsm_fetch;
struct dsm_region;
struct huge_fetch;
struct dsm_shared;

struct dsm_page {
	uint8_t state;   /* enum dsm_page_state */
	uint8_t flags;   /* enum dsm_page_flags */
	uint8_t queue;   /* enum dsm_queue_id while CLEAN or DIRTY */
	uint8_t left;    /* INVALID: the queue it was evicted from, which
	                  * its refault teaches (evict.c) */
	union {
		uint32_t evicted_at; /* INVALID: eviction clock when last
		                      * dropped (refaults), 0: never */
		uint32_t arrived;    /* in PROBATION: dsm_eng.probation_seq
		                      * when it joined (evict.c) */
	};
	struct dsm_region *region;
	union {
		struct { /* resident: position in its eviction queue */
			struct dsm_page *prev, *next;
		} q;
		struct dsm_fetch *fetch;  /* FETCHING: the request */
		struct huge_fetch *group; /* FETCHING, first page of a group
		                           * (huge.c): its fetch */
		uint8_t *parked_data;     /* PARKED: its data (malloc'd; a
		                           * group's on its first page) */
		struct {                  /* INVALID and MARKED (fault.c) */
			uint32_t at;      /* evict_clock when marked */
			uint8_t kinds;    /* enum dsm_mark */
		} mark;
	};
};

/* A page whose data must reach its server before it is dropped: dirty,
 * and not freed by the program. */
static inline bool dsm_page_needs_writeback(const struct dsm_page *p)
{
	return p->state == DSM_PG_DIRTY && !(p->flags & DSM_PGF_FREED);
}

/* A region on 2 MiB pages (DSM_ALLOC_HUGE, huge.c) moves its pages in
 * groups of DSM_HUGE_PAGES, aligned, whose records always share a state:
 * fetched, installed, made dirty, written back and dropped together. */
#define DSM_HUGE_SIZE ((uint64_t)2 << 20)
#define DSM_HUGE_PAGES (DSM_HUGE_SIZE / DSM_PAGE_SIZE)
#define DSM_HUGE_STREAMS 4 /* sequential readers followed at once */

/* A sequential reader of a region on huge pages (huge.c). */
struct dsm_huge_stream {
	uint64_t next; /* the group it reaches next; UINT64_MAX: none */
	uint64_t seen; /* when it last moved on, to replace the stalest */
};

struct dsm_region {
	uint64_t base, size, npages;
	struct dsm_page *pages;
	bool huge;      /* on 2 MiB pages, in groups (above) */
	struct dsm_huge_stream huge_streams[DSM_HUGE_STREAMS];
	struct dsm_placement place;
	uint64_t id;    /* registry name, 0 without a registry (cluster.c),
	                 * and for a shared region */
	struct dsm_shared *shared; /* NULL: private (shared.h) */
	uint64_t created_ms;
	unsigned refs;  /* table + in-flight requests; freed at 0 */
	bool dead;      /* dsm_free()d: completions must not touch it */
};

static inline uint64_t dsm_page_addr(const struct dsm_page *p)
{
	const struct dsm_region *r = p->region;

	return r->base + (uint64_t)(p - r->pages) * DSM_PAGE_SIZE;
}

/* A region of size bytes (whole pages): its pages, and its range mapped
 * but not registered with the userfaultfd yet; NULL when out of memory.
 * Freed with dsm_region_put (refs 1). */
struct dsm_region *dsm_region_new(uint64_t size);
/* The same at address at (MAP_FIXED over what the caller holds there; on
 * failure it is left a PROT_NONE reservation), or anywhere if at is 0. */
struct dsm_region *dsm_region_new_at(uint64_t at, uint64_t size);
/* Under the lock: r leaves the table and its range is unmapped; its
 * parts (what the servers granted) move to *parts for the caller to
 * FREE once the lock is dropped (dsm_unplace). */
void dsm_region_unmap(struct dsm_region *r, struct dsm_placement *parts);

/* The region table (region.c), sorted by base address.  Under the lock. */
int dsm_region_insert(struct dsm_region *r);
struct dsm_region *dsm_region_find(uint64_t addr);
/* Out of the table, marked dead; freed when its last request is done. */
void dsm_region_remove(struct dsm_region *r);
void dsm_region_put(struct dsm_region *r);

#endif /* DSM_REGION_H */
