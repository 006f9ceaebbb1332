/*
 * pool.h - the server's memory: one anonymous mapping carved into extents
 * (room: server pool).
 *
 * On 4 KiB pages the pool is reserved, not committed (MAP_NORESERVE): a
 * page costs RAM only once written, so a never-written page reads as
 * zeros and a large capacity is cheap until used.  On hugetlb pages
 * (--hugepages) the whole capacity is taken from the huge pages the
 * operator reserved (vm.nr_hugepages) when the pool is made: copying pool
 * pages into a socket then touches one TLB entry per 2 MiB instead of one
 * per 4 KiB, which on a VM is what copying cold pages mostly costs
 * (docs/design.md, "The server's pool").
 *
 * Extents are page-aligned runs handed out first-fit (the free run with
 * the lowest offset that is large enough) from a tree of free runs that
 * coalesces on free; both cost O(log n) in the number of free runs.
 */
#ifndef DSM_SERVER_POOL_H
#define DSM_SERVER_POOL_H

#include <stddef.h>
#include <stdint.h>

/* What pool_init is asked for (--hugepages auto|on|off). */
enum pool_pages {
	POOL_PAGES_AUTO,  /* hugetlb if enough are reserved, else 4 KiB */
	POOL_PAGES_HUGE,  /* hugetlb or fail */
	POOL_PAGES_SMALL, /* 4 KiB pages */
};

/* What it got. */
enum pool_kind {
	POOL_KIND_SMALL,   /* 4 KiB pages (transparent huge pages advised
	                    * under auto: the kernel grants them or not) */
	POOL_KIND_HUGETLB, /* hugetlb pages of POOL_HUGE_BYTES, reserved */
};

#define POOL_HUGE_BYTES (2ULL << 20)

/* A run of free pool bytes: a node of the pool's treap of free runs,
 * ordered by off, a heap by prio, each node knowing the longest run
 * below it (which is what lets first fit skip whole subtrees). */
struct pool_run {
	uint64_t off, len;
	uint64_t maxlen;         /* the longest len in this subtree */
	uint64_t prio;
	struct pool_run *left, *right;
};

struct pool {
	uint8_t *base;
	uint64_t capacity;       /* bytes, a multiple of DSM_PAGE_SIZE */
	uint64_t mapped;         /* bytes mapped at base (>= capacity) */
	enum pool_kind kind;
	/* One bit per POOL_HUGE_BYTES of the pool: something may have been
	 * written there since it was last zeroed.  On hugetlb pages, where a
	 * drop zeroes by hand, it bounds that work to what was written. */
	uint64_t *written;
	uint64_t used;           /* bytes in allocated extents */
	uint64_t nextents;       /* allocated extents */
	struct pool_run *runs;   /* the treap of free runs, never adjacent */
	struct pool_run *spare;  /* nodes kept for pool_free (by ->right) */
	uint64_t nruns;          /* free runs */
	uint64_t nnodes;         /* nodes allocated: nruns + spares */
	uint64_t rng;            /* the source of priorities */
	/* Tree nodes visited by pool_alloc and pool_free since pool_init:
	 * the work they did, which tests bound. */
	uint64_t steps;
};

/* capacity: > 0 and a multiple of DSM_PAGE_SIZE.  0 or -errno: -ENOMEM
 * for POOL_PAGES_HUGE with too few huge pages reserved.  why (may be
 * NULL) gets one line saying what the pool got, and why. */
int pool_init(struct pool *p, uint64_t capacity, enum pool_pages pages,
	      char *why, size_t whylen);
void pool_destroy(struct pool *p);

/* First-fit allocation of size bytes (a positive page multiple).
 * 0 with *off set, -ENOSPC (no free run that large) or -ENOMEM. */
int pool_alloc(struct pool *p, uint64_t size, uint64_t *off);

/* Return an extent from pool_alloc; its pages go back to the OS and read
 * as zeros when next allocated.  Never fails. */
void pool_free(struct pool *p, uint64_t off, uint64_t size);

/* Drop the pages of [off, off+size) inside an extent, which stays
 * allocated: they read as zeros from now on (on 4 KiB pages their memory
 * goes back to the OS; huge pages are zeroed where written and kept).
 * Never fails. */
void pool_drop(struct pool *p, uint64_t off, uint64_t size);

/* Zero [off, off+size) in place and keep its pages: for a range a NIC
 * holds pinned (a region registered for RDMA), where dropping the pages
 * would leave the NIC on the old ones and the CPU on new ones.  Never
 * fails. */
void pool_zero(struct pool *p, uint64_t off, uint64_t size);

/* [off, off+size) is about to be written: remember to zero it on drop. */
void pool_note_write(struct pool *p, uint64_t off, uint64_t size);

const char *pool_kind_name(enum pool_kind k);

static inline uint8_t *pool_at(const struct pool *p, uint64_t off)
{
	return p->base + off;
}

static inline uint64_t pool_free_bytes(const struct pool *p)
{
	return p->capacity - p->used;
}

#endif /* DSM_SERVER_POOL_H */
