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
 * all pointers but those near our small regions (small_contains then
 * says whether it is in one). */
static inline bool small_near(const void *p)
{
	uintptr_t a = (uintptr_t)p;

	return a >= __atomic_load_n(&small_lo, __ATOMIC_ACQUIRE) &&
	       a < __atomic_load_n(&small_hi, __ATOMIC_ACQUIRE);
}

/* Whether p lies in the slabs of one of our regions (other mappings,
 * the C library's heaps among them, may lie between two regions). */
bool small_contains(const void *p);
/* A block of n bytes (0 < n < SMALL_MAX), aligned to 16; its contents
 * are unspecified.  NULL with errno set when no region could be made. */
void *small_alloc(size_t n);
/* p's block size if p is a block of ours (inside a slab, at a block's
 * start), else 0. */
size_t small_block_size(const void *p);
/* Give p back (small_block_size(p) != 0). */
void small_free(void *p);
/* Regions made and bytes of slabs carved, for the stats. */
void small_usage(unsigned *nregions, size_t *bytes);

#endif
