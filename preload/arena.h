/*
 * arena.h - carving blocks out of a few large far-memory regions, for the
 * preload shim (room: preload shim).
 *
 * Why arenas: every dsm_alloc() is a mapping and a userfaultfd
 * registration, and a process may have only about 65,000 mappings
 * (vm.max_map_count); UFFDIO_REGISTER fails with ENOMEM past it.  A
 * program making tens of thousands of large allocations therefore gets
 * them as page-granular blocks of a few regions of ARENA_BYTES each.
 *
 * Blocks are whole pages, page-aligned.  Free pages of an arena hold
 * nothing on any server; a freed block's pages stay resident (released,
 * dsm_release) until the engine needs the room, so that a malloc reusing
 * them costs no fault.  A block asked for with `zero` reads as zeros
 * (calloc, mmap: no memset, the dirty pages are discarded); any other
 * block's contents are unspecified, as malloc's are.  The bookkeeping
 * lives in the C library's heap, never in far memory, so allocating
 * never faults.
 *
 * All calls are thread-safe.  The caller has set dsm_tl_internal for the
 * duration, so libdsm's own allocations go to the C library.
 */
#ifndef DSM_ARENA_H
#define DSM_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARENA_BYTES (1ULL << 30)

/* A block of at least size bytes, aligned to align (a power of two, at
 * least 4096), reading as zeros if zero; NULL with errno set (ENOMEM: no
 * arena could be made, the log says why). */
void *arena_alloc(size_t size, size_t align, bool zero);

/* Every arena lies in [arena_lo, arena_hi): widened as arenas are made,
 * never narrowed (arena.c).  Not exported from the shim. */
extern uintptr_t arena_lo, arena_hi;
/* Likewise every adopted arena (arena_adopt), which are the program's
 * memory (its malloc's heap, a runtime's): free() never looks there. */
extern uintptr_t adopt_lo, adopt_hi;

/* The first, cheapest test of free() and realloc() on every pointer of the
 * C library: two compares, false for all but pointers near our arenas. */
static inline bool arena_near(const void *p)
{
	uintptr_t a = (uintptr_t)p;

	return a >= __atomic_load_n(&arena_lo, __ATOMIC_ACQUIRE) &&
	       a < __atomic_load_n(&arena_hi, __ATOMIC_ACQUIRE);
}

/* Whether p may lie in an arena: lock-free, may answer true for a pointer
 * that is not (the locked calls below then say so), never false for one
 * that is. */
bool arena_maybe(const void *p);

/* p is the start of a block: its size in bytes.  0 if it is not (the
 * pointer is not in an arena, or not the start of a live block). */
size_t arena_block_size(const void *p);

/* Whether p lies inside an arena of blocks (not an adopted one). */
bool arena_contains(const void *p);

/* A commit of the program's reservation: far memory at [p, p+len) (p
 * and len page-aligned), over the PROT_NONE mapping there, as one block
 * of an arena of its own, reading as zeros.  p, or NULL with errno (the
 * range is a reservation still). */
void *arena_adopt(void *p, size_t len);

/* The lowest arena overlapping [lo, hi): true with its bounds. */
bool arena_next(uintptr_t lo, uintptr_t hi, uintptr_t *alo, uintptr_t *ahi);

/* Free the block starting at p.  0, or -ENOENT if p is not a block. */
int arena_free(void *p);

/* Release the pages of [p, p+len) that belong to arena blocks, as munmap
 * does: blocks are cut where the range ends.  p and len page-aligned.  0,
 * or -ENOENT if the range is not inside one arena. */
int arena_release(void *p, size_t len);

/* Discard the contents of [p, p+len), keeping the blocks: it reads as
 * zeros.  0, -ENOENT if the range is not inside one arena, or
 * -ETIMEDOUT if a fetch into it never landed (it was not zeroed). */
int arena_zero(void *p, size_t len);

/* mprotect for far memory: give [p, p+len) (p and len page-aligned,
 * len > 0) protection prot, a combination of PROT_READ, PROT_WRITE and
 * PROT_EXEC.  The range must lie inside one arena, and unless prot is
 * PROT_READ|PROT_WRITE, in blocks; pages released later get that
 * protection back before they are handed out again.  0, or -ENOMEM (the
 * range is not all ours, like unmapped memory to the kernel; or out of
 * memory), -EIO (dirty pages could not be written back before the range
 * became unreadable: it is left read-only), or the kernel's error. */
int arena_protect(void *p, size_t len, int prot);

/* Grow the block at p to size bytes where it is, if the pages after it
 * are free; the new pages read as zeros if zero.  true if done. */
bool arena_grow(void *p, size_t size, bool zero);

/* Shrink the block at p to size bytes (> 0), releasing whole pages after
 * it. */
void arena_shrink(void *p, size_t size);

/* fork: hold the lock across it (prepare/parent); in the child, reset
 * it and reserve the arenas' address ranges inaccessible.  The child must
 * not call libdsm again. */
void arena_lock_all(void);
void arena_unlock_all(void);
void arena_reset_child(void);

/* Arenas in use, their bytes handed out, and the most bytes handed out
 * at once since the process started, for tests and dsm-run's report. */
void arena_usage(unsigned *narenas, size_t *bytes, size_t *peak);

#endif
