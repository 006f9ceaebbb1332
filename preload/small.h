/*
 * small.h - far memory for allocations smaller than a page (room:
 * preload shim).
 *
 * With DSM_PRELOAD_THRESHOLD below 4K, blocks from the threshold up to a
 * page come from here rather than from the C library, whose heaps (its
 * per-thread arenas above all) are reserved and committed with internal
 * calls no preloaded library sees.  Blocks of one size class share 64 KiB
 * slabs carved from far regions of their own; which slab holds which
 * class is kept in local memory, and so are the free lists (arrays of
 * pointers, per thread and per class), so that free() never touches far
 * memory.  Slabs are never given back while the process lives.
 */
#ifndef DSM_PRELOAD_SMALL_H
#define DSM_PRELOAD_SMALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMALL_MAX 4096 /* blocks below this come from slabs */
#define SMALL_ALIGN 16 /* every block's, as the C library's malloc */

/* Every small region lies in [small_lo, small_hi): widened as regions
 * are made, never narrowed. */
extern uintptr_t small_lo, small_hi;

/* The first test of free() on every pointer: two compares, false for
 * all pointers but those near our small regions (small_lookup then
 * says whether it is in one). */
static inline bool small_near(const void *p)
{
	uintptr_t a = (uintptr_t)p;

	return a >= __atomic_load_n(&small_lo, __ATOMIC_ACQUIRE) &&
	       a < __atomic_load_n(&small_hi, __ATOMIC_ACQUIRE);
}

/* A block of n bytes (0 < n < SMALL_MAX), aligned to 16; its contents
 * are unspecified.  NULL with errno set when no region could be made. */
void *small_alloc(size_t n);
/* What p is, after small_near: SMALL_NOT_OURS if it lies in none of our
 * regions' slabs (the C library's heaps may lie between two regions),
 * 0 inside a slab but not at a block's start, else its block's size. */
#define SMALL_NOT_OURS ((size_t)-1)
size_t small_lookup(const void *p);
/* Give p back; size is small_lookup(p), a block's. */
void small_free(void *p, size_t size);
/* Regions made and bytes of slabs carved, for the stats. */
void small_usage(unsigned *nregions, size_t *bytes);

#endif
