/*
 * arena.c - see arena.h (room: preload shim).
 *
 * Each arena is one dsm_alloc() region with three bitmaps over its pages:
 * `used` (handed out), `start` (first page of a block) and `dirty` (a free
 * page that may hold a freed block's data).  A block runs from its start
 * page over used pages up to the next start or free page, so no size is
 * stored and munmap-style cuts need only set or clear bits.
 * Invariant: a used page whose predecessor is free or belongs to another
 * block has its start bit set.
 *
 * Freed pages are released (dsm_release), not discarded: they stay
 * resident until the engine needs the room, so the next malloc of the
 * same pages costs no fault, as reusing freed heap memory costs the C
 * library none.  Handing dirty pages out again either makes them live
 * (dsm_reuse: malloc, realloc) or zeros them (dsm_discard: calloc, mmap,
 * and mremap's new pages, which must read as zeros).
 *
 * Placement is first fit from a hint (the lowest page that may be free).
 * Large requests are at least DSM_PRELOAD_THRESHOLD (128 KiB by default),
 * so a scan of an arena's 4096 bitmap words is small next to the faults
 * that will fill the block.  A request larger than half an arena gets an
 * arena of its own ("solo"), released as soon as the block is.
 *
 * Free pages are always PROT_READ|PROT_WRITE.  The program may mprotect
 * pages of its blocks (arena_protect); an arena where it did is flagged,
 * and from then on pages it releases are made read-write again before
 * they can be handed out.  Arenas nobody mprotected pay nothing for it.
 *
 * One lock guards all arenas.  It is held across dsm_alloc/dsm_free,
 * dsm_discard and dsm_mark_unreadable, which take the engine lock and may
 * wait for the engine thread; the engine thread never takes this lock (it
 * never allocates far memory), so that cannot deadlock.  A table of arena
 * bounds is readable without the lock, so free() of a pointer from the C
 * library costs a few compares.
 */
#include "arena.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dsm.h"
#include "log.h"
#include "page.h"

/* all the shim may use of the engine (docs/design.md, "The preload shim") */
#include "../client/shim.h"

/* The C library's allocator: the shim's own bookkeeping must never come
 * back into the shim (client/shim.h, dsm_tl_internal). */
extern void *__libc_calloc(size_t n, size_t size);
extern void __libc_free(void *p);

#define STD_PAGES (ARENA_BYTES / DSM_PAGE_SIZE)
#define MAX_ARENAS 4096 /* 4 TiB of standard arenas */
#define PROT_RW (PROT_READ | PROT_WRITE)

struct arena {
	uintptr_t base;
	size_t npages, nfree, hint;
	uint64_t *used, *start, *dirty;
	bool solo;
	bool reprotected; /* a page may not be PROT_RW: restore on release */
	bool adopted;     /* a commit of the program's reservation: its
	                   * memory, not blocks of ours (arena_adopt) */
	unsigned slot; /* in bounds[] */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct arena *arenas[MAX_ARENAS];
static unsigned narenas;
/* Pages handed out over every arena now, and the most at once: how much
 * of the program's memory went far (dsm-run's report).  Under lock. */
static size_t used_pages, peak_pages;

/* Lock-free view for arena_maybe: slot i covers [base, end); end 0 when
 * free.  Cleared before an arena's region is released, so a stale read
 * can only say "maybe" about memory that was ours. */
static struct {
	uintptr_t base, end;
} bounds[MAX_ARENAS];
static unsigned nbounds; /* high-water mark */

/* arena.h; written under the lock, after the arena's bounds: a pointer
 * into an arena reached another thread after both, so a stale envelope
 * can only be wider than needed, never miss an arena. */
uintptr_t arena_lo = UINTPTR_MAX, arena_hi;
/* arena.h: the same for adopted arenas, which bounds[] leaves out. */
uintptr_t adopt_lo = UINTPTR_MAX, adopt_hi;

/* ---- bitmaps ---------------------------------------------------------- */

static bool bit(const uint64_t *bm, size_t i)
{
	return bm[i / 64] >> (i % 64) & 1;
}

static void set_bit(uint64_t *bm, size_t i)
{
	bm[i / 64] |= 1ULL << (i % 64);
}

static void clear_bit(uint64_t *bm, size_t i)
{
	bm[i / 64] &= ~(1ULL << (i % 64));
}

/* First run of n free pages at or after the hint, or -1. */
static long find_run(const struct arena *a, size_t n)
{
	size_t run = 0, begin = 0;

	for (size_t i = a->hint; i < a->npages;) {
		uint64_t w = a->used[i / 64];

		if (i % 64 == 0 && i + 64 <= a->npages && (w == 0 || w == ~0ULL)) {
			if (w) {
				run = 0;
			} else {
				if (!run)
					begin = i;
				run += 64;
				if (run >= n)
					return begin;
			}
			i += 64;
			continue;
		}
		if (w >> (i % 64) & 1) {
			run = 0;
		} else {
			if (!run)
				begin = i;
			if (++run >= n)
				return begin;
		}
		i++;
	}
	return -1;
}

static size_t block_pages(const struct arena *a, size_t s)
{
	size_t e = s + 1;

	while (e < a->npages && bit(a->used, e) && !bit(a->start, e))
		e++;
	return e - s;
}

/* ---- arenas ----------------------------------------------------------- */

static struct arena *arena_of(uintptr_t p)
{
	for (unsigned i = 0; i < narenas; i++)
		if (p >= arenas[i]->base &&
		    p < arenas[i]->base + arenas[i]->npages * DSM_PAGE_SIZE)
			return arenas[i];
	return NULL;
}

/* A new arena of npages, solo or standard, at address at (a commit of
 * the program's reservation, arena_adopt) or anywhere (NULL). */
static struct arena *arena_new_at(size_t npages, bool solo, void *at)
{
	size_t words = (npages + 63) / 64;
	struct arena *a;
	unsigned slot;
	void *base;

	if (narenas == MAX_ARENAS) {
		errno = ENOMEM;
		return NULL;
	}
	for (slot = 0; slot < nbounds && bounds[slot].end; slot++)
		;
	a = __libc_calloc(1, sizeof(*a));
	if (a) {
		a->used = __libc_calloc(words, sizeof(uint64_t));
		a->start = __libc_calloc(words, sizeof(uint64_t));
		a->dirty = __libc_calloc(words, sizeof(uint64_t));
	}
	base = !(a && a->used && a->start && a->dirty) ? NULL :
	       at ? dsm_alloc_at(at, npages * DSM_PAGE_SIZE) :
		    dsm_alloc(npages * DSM_PAGE_SIZE);
	if (!base) {
		int err = errno;

		if (a) {
			__libc_free(a->used);
			__libc_free(a->start);
			__libc_free(a->dirty);
		}
		__libc_free(a);
		errno = err ? err : ENOMEM;
		return NULL;
	}
	a->base = (uintptr_t)base;
	a->npages = a->nfree = npages;
	a->solo = solo;
	a->slot = slot;
	arenas[narenas++] = a;
	if (at) { /* the program's memory: free() and malloc never look */
		a->adopted = true;
		a->slot = UINT_MAX;
		if (a->base < adopt_lo)
			__atomic_store_n(&adopt_lo, a->base, __ATOMIC_RELEASE);
		if (a->base + npages * DSM_PAGE_SIZE > adopt_hi)
			__atomic_store_n(&adopt_hi, a->base + npages * DSM_PAGE_SIZE,
					 __ATOMIC_RELEASE);
		return a;
	}
	__atomic_store_n(&bounds[slot].base, a->base, __ATOMIC_RELEASE);
	__atomic_store_n(&bounds[slot].end, a->base + npages * DSM_PAGE_SIZE,
			 __ATOMIC_RELEASE);
	if (slot == nbounds)
		__atomic_store_n(&nbounds, nbounds + 1, __ATOMIC_RELEASE);
	if (a->base < arena_lo)
		__atomic_store_n(&arena_lo, a->base, __ATOMIC_RELEASE);
	if (a->base + npages * DSM_PAGE_SIZE > arena_hi)
		__atomic_store_n(&arena_hi, a->base + npages * DSM_PAGE_SIZE,
				 __ATOMIC_RELEASE);
	dsm_debug("preload: new arena of %zu MiB at %#lx", npages >> 8,
		  (unsigned long)a->base);
	return a;
}

static struct arena *arena_new(size_t npages, bool solo)
{
	return arena_new_at(npages, solo, NULL);
}

static void arena_destroy(struct arena *a)
{
	for (unsigned i = 0; i < narenas; i++) {
		if (arenas[i] == a) {
			arenas[i] = arenas[--narenas];
			break;
		}
	}
	if (!a->adopted)
		__atomic_store_n(&bounds[a->slot].end, 0, __ATOMIC_RELEASE);
	used_pages -= a->npages - a->nfree;
	dsm_free((void *)a->base);
	__libc_free(a->used);
	__libc_free(a->start);
	__libc_free(a->dirty);
	__libc_free(a);
}

/* An arena that became empty gives its capacity back to the servers,
 * except one standard arena kept as a spare, so that a program that
 * mallocs and frees one large buffer in a loop does not make and release
 * a region every time. */
static void maybe_destroy(struct arena *a)
{
	unsigned empty = 0;

	if (a->nfree != a->npages)
		return;
	if (!a->solo)
		for (unsigned i = 0; i < narenas; i++)
			empty += !arenas[i]->solo &&
				 arenas[i]->nfree == arenas[i]->npages;
	if (a->solo || empty > 1)
		arena_destroy(a);
}

static void mark_used(struct arena *a, size_t s, size_t n)
{
	for (size_t i = s; i < s + n; i++)
		set_bit(a->used, i);
	a->nfree -= n;
	used_pages += n;
	if (used_pages > peak_pages)
		peak_pages = used_pages;
	if (s == a->hint)
		a->hint = s + n;
}

/* Pages of [s, s+n) in use that nobody may be given (their protection
 * or their engine state could not be set right): they stay a block that
 * nobody holds, cut from their neighbours, rather than be handed out
 * wrong. */
static void keep_out_of_use(struct arena *a, size_t s, size_t n)
{
	if (bit(a->used, s))
		set_bit(a->start, s);
	if (s + n < a->npages && bit(a->used, s + n))
		set_bit(a->start, s + n);
}

/*
 * Pages being released, in an arena where the program mprotected, are
 * made read-write again before anyone can be handed them, after the
 * release: a page kept resident for reuse (dsm_release) becomes
 * accessible, holding garbage as any reused page may.  If even that
 * fails (the process is at its mapping limit), they are kept out of use,
 * as a block nobody holds, rather than handed out with the wrong
 * protection.  -1 then.
 */
static int restore_prot(struct arena *a, size_t s, size_t n)
{
	uintptr_t p = a->base + s * DSM_PAGE_SIZE;

	if (!syscall(SYS_mprotect, p, n * DSM_PAGE_SIZE, PROT_RW)) {
		dsm_mark_readable(p, n * DSM_PAGE_SIZE);
		return 0;
	}
	dsm_err("preload: cannot make %zu freed pages at %#lx writable "
		"again (%m): they stay out of use", n, (unsigned long)p);
	keep_out_of_use(a, s, n);
	return -1;
}

/* Give [s, s+n) back: release, clear, and cut the block after it. */
static void release_pages(struct arena *a, size_t s, size_t n)
{
	size_t freed = 0;

	/* fails only when a fetch into the range never lands (a server
	 * that does not answer): the pages could be mapped under their
	 * next owner, so nobody gets them */
	if (dsm_release(a->base + s * DSM_PAGE_SIZE, n * DSM_PAGE_SIZE)) {
		keep_out_of_use(a, s, n);
		return;
	}
	if (a->reprotected && restore_prot(a, s, n))
		return;
	for (size_t i = s; i < s + n; i++) {
		if (bit(a->used, i)) {
			freed++;
			set_bit(a->dirty, i);
		}
		clear_bit(a->used, i);
		clear_bit(a->start, i);
	}
	if (s + n < a->npages && bit(a->used, s + n))
		set_bit(a->start, s + n);
	a->nfree += freed;
	used_pages -= freed;
	if (s < a->hint)
		a->hint = s;
	if (a->nfree == a->npages)
		a->reprotected = false; /* every page was restored */
}

/* Pages [s, s+n) are being handed out: make the dirty ones live again,
 * or zero them if the new owner must read zeros.  -1 if the engine could
 * not (a fetch into them never landed): they must not be handed out. */
static int hand_out(struct arena *a, size_t s, size_t n, bool zero)
{
	size_t i = s, e = s + n;

	while (i < e) {
		size_t j;

		if (i % 64 == 0 && !a->dirty[i / 64]) {
			i += 64;
			continue;
		}
		if (!bit(a->dirty, i)) {
			i++;
			continue;
		}
		for (j = i; j < e && bit(a->dirty, j); j++)
			clear_bit(a->dirty, j);
		if ((zero ? dsm_discard : dsm_reuse)(a->base + i * DSM_PAGE_SIZE,
						     (j - i) * DSM_PAGE_SIZE)) {
			while (j > i)
				set_bit(a->dirty, --j);
			return -1;
		}
		i = j;
	}
	return 0;
}

/* ---- the calls -------------------------------------------------------- */

void *arena_alloc(size_t size, size_t align, bool zero)
{
	size_t n = (size + DSM_PAGE_SIZE - 1) / DSM_PAGE_SIZE;
	size_t extra = align > DSM_PAGE_SIZE ? align / DSM_PAGE_SIZE - 1 : 0, s;
	struct arena *a = NULL;
	long at = -1;

	if (!n || n > (1ULL << 46) / DSM_PAGE_SIZE) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_lock(&lock);
	if (n + extra > STD_PAGES / 2) {
		a = arena_new(n + extra, true);
		at = a ? 0 : -1;
	} else {
		for (unsigned i = 0; i < narenas && at < 0; i++) {
			if (arenas[i]->solo || arenas[i]->nfree < n + extra)
				continue;
			a = arenas[i];
			at = find_run(a, n + extra);
		}
		if (at < 0 && (a = arena_new(STD_PAGES, false)))
			at = 0;
	}
	if (at < 0) {
		pthread_mutex_unlock(&lock);
		return NULL;
	}
	s = at;
	if (extra) { /* move up to the first aligned page of the run */
		uintptr_t addr = a->base + s * DSM_PAGE_SIZE;

		s += ((align - addr % align) % align) / DSM_PAGE_SIZE;
	}
	mark_used(a, s, n);
	set_bit(a->start, s);
	if (hand_out(a, s, n, zero)) {
		keep_out_of_use(a, s, n);
		pthread_mutex_unlock(&lock);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_unlock(&lock);
	return (void *)(a->base + s * DSM_PAGE_SIZE);
}

void *arena_adopt(void *p, size_t len)
{
	size_t n = len / DSM_PAGE_SIZE;
	struct arena *a;

	pthread_mutex_lock(&lock);
	a = arena_new_at(n, true, p);
	if (a) {
		mark_used(a, 0, n);
		set_bit(a->start, 0);
	}
	pthread_mutex_unlock(&lock);
	return a ? p : NULL;
}

bool arena_next(uintptr_t lo, uintptr_t hi, uintptr_t *alo, uintptr_t *ahi)
{
	bool found = false;

	pthread_mutex_lock(&lock);
	for (unsigned i = 0; i < narenas; i++) {
		const struct arena *a = arenas[i];
		uintptr_t end = a->base + a->npages * DSM_PAGE_SIZE;

		if (a->base >= hi || end <= lo || (found && a->base >= *alo))
			continue;
		*alo = a->base;
		*ahi = end;
		found = true;
	}
	pthread_mutex_unlock(&lock);
	return found;
}

bool arena_maybe(const void *p)
{
	unsigned n = __atomic_load_n(&nbounds, __ATOMIC_ACQUIRE);

	for (unsigned i = 0; i < n; i++) {
		uintptr_t end = __atomic_load_n(&bounds[i].end, __ATOMIC_ACQUIRE);

		if ((uintptr_t)p < end &&
		    (uintptr_t)p >= __atomic_load_n(&bounds[i].base,
						    __ATOMIC_ACQUIRE))
			return true;
	}
	return false;
}

/* With the lock held: the arena and page of a block start, or NULL. */
static struct arena *block_at(const void *p, size_t *s)
{
	struct arena *a = arena_of((uintptr_t)p);

	if (!a || ((uintptr_t)p & (DSM_PAGE_SIZE - 1)))
		return NULL;
	*s = ((uintptr_t)p - a->base) / DSM_PAGE_SIZE;
	return bit(a->start, *s) ? a : NULL;
}

size_t arena_block_size(const void *p)
{
	size_t s, n = 0;
	struct arena *a;

	pthread_mutex_lock(&lock);
	if ((a = block_at(p, &s)))
		n = block_pages(a, s);
	pthread_mutex_unlock(&lock);
	return n * DSM_PAGE_SIZE;
}

bool arena_contains(const void *p)
{
	const struct arena *a;
	bool in;

	pthread_mutex_lock(&lock);
	a = arena_of((uintptr_t)p);
	in = a && !a->adopted;
	pthread_mutex_unlock(&lock);
	return in;
}

int arena_free(void *p)
{
	struct arena *a;
	size_t s;

	pthread_mutex_lock(&lock);
	if (!(a = block_at(p, &s))) {
		pthread_mutex_unlock(&lock);
		return -ENOENT;
	}
	release_pages(a, s, block_pages(a, s));
	maybe_destroy(a);
	pthread_mutex_unlock(&lock);
	return 0;
}

/* With the lock held: the arena holding all of [p, p+len), or NULL. */
static struct arena *range_in(const void *p, size_t len, size_t *s)
{
	struct arena *a = arena_of((uintptr_t)p);

	if (!a || (uintptr_t)p + len > a->base + a->npages * DSM_PAGE_SIZE)
		return NULL;
	*s = ((uintptr_t)p - a->base) / DSM_PAGE_SIZE;
	return a;
}

int arena_release(void *p, size_t len)
{
	struct arena *a;
	size_t s;

	pthread_mutex_lock(&lock);
	if (!(a = range_in(p, len, &s))) {
		pthread_mutex_unlock(&lock);
		return -ENOENT;
	}
	release_pages(a, s, len / DSM_PAGE_SIZE);
	maybe_destroy(a);
	pthread_mutex_unlock(&lock);
	return 0;
}

int arena_zero(void *p, size_t len)
{
	struct arena *a;
	int err = 0;
	size_t s;

	pthread_mutex_lock(&lock);
	a = range_in(p, len, &s);
	if (a && (err = dsm_discard((uintptr_t)p, len)) == 0)
		for (size_t i = s; i < s + len / DSM_PAGE_SIZE; i++)
			clear_bit(a->dirty, i);
	pthread_mutex_unlock(&lock);
	return a ? err : -ENOENT;
}

/* With the lock held: whether every page of [s, s+n) is in a block. */
static bool all_used(const struct arena *a, size_t s, size_t n)
{
	for (size_t i = s; i < s + n; i++)
		if (!bit(a->used, i))
			return false;
	return true;
}

/*
 * Give [p, p+len) protection prot, without breaking the engine's rule
 * that it never reads a page the program made unreadable (protect.c).
 *
 * Towards readable: the kernel first, the engine's mark after, so that
 * until the range is readable the mark still keeps zero-fill runs out of
 * it.  A write racing with this may meet the mark and be retried until
 * it is gone.
 *
 * Towards unreadable (PROT_NONE, PROT_EXEC alone): through read-only.
 * Once the range is read-only no store can land in it, so the dirty
 * pages written back are the final ones, and the write-back can still
 * read them; only then does the range lose its read permission.  If the
 * write-back fails (a server lost), the range stays read-only, which
 * keeps the pages readable for the engine to send again: -EIO.
 */
static int set_prot(uintptr_t p, size_t len, int prot)
{
	int err;

	if (prot & (PROT_READ | PROT_WRITE)) {
		if (syscall(SYS_mprotect, p, len, prot))
			return -errno;
		dsm_mark_readable(p, len);
		return 0;
	}
	if (syscall(SYS_mprotect, p, len, PROT_READ | (prot & PROT_EXEC)))
		return -errno;
	err = dsm_mark_unreadable(p, len);
	if (err)
		return err == -ENOMEM ? err : -EIO;
	return syscall(SYS_mprotect, p, len, prot) ? -errno : 0;
}

int arena_protect(void *p, size_t len, int prot)
{
	struct arena *a;
	size_t s;
	int err = -ENOMEM;

	pthread_mutex_lock(&lock);
	if (!(a = range_in(p, len, &s)))
		goto out;
	if (prot == PROT_RW) {
		/* what free pages are, so any page may ask for it */
		err = a->reprotected ? set_prot((uintptr_t)p, len, prot) : 0;
		goto out;
	}
	/* a free page must stay read-write: to the program it is not
	 * mapped, and the kernel answers ENOMEM for those */
	if (!all_used(a, s, len / DSM_PAGE_SIZE))
		goto out;
	a->reprotected = true;
	err = set_prot((uintptr_t)p, len, prot);
out:
	pthread_mutex_unlock(&lock);
	return err;
}

bool arena_grow(void *p, size_t size, bool zero)
{
	size_t s, n, m = (size + DSM_PAGE_SIZE - 1) / DSM_PAGE_SIZE;
	struct arena *a;
	bool ok = false;

	pthread_mutex_lock(&lock);
	if ((a = block_at(p, &s)) && !a->solo) {
		n = block_pages(a, s);
		ok = m <= n;
		if (!ok && s + m <= a->npages) {
			size_t i = s + n;

			while (i < s + m && !bit(a->used, i))
				i++;
			if (i == s + m) {
				mark_used(a, s + n, m - n);
				ok = !hand_out(a, s + n, m - n, zero);
				if (!ok) /* the block stays as it was */
					keep_out_of_use(a, s + n, m - n);
			}
		}
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

void arena_shrink(void *p, size_t size)
{
	size_t s, n, m = (size + DSM_PAGE_SIZE - 1) / DSM_PAGE_SIZE;
	struct arena *a;

	pthread_mutex_lock(&lock);
	if ((a = block_at(p, &s)) && m &&
	    (n = block_pages(a, s)) > m)
		release_pages(a, s + m, n - m);
	pthread_mutex_unlock(&lock);
}

void arena_lock_all(void)
{
	pthread_mutex_lock(&lock);
}

void arena_unlock_all(void)
{
	pthread_mutex_unlock(&lock);
}

/* In a child after fork, the arenas are holes (MADV_DONTFORK).  Fill
 * them with inaccessible reservations, so that touching far memory stays
 * a SIGSEGV and the C library cannot map its own blocks there, where they
 * would pass for arena pointers. */
void arena_reset_child(void)
{
	pthread_mutex_init(&lock, NULL);
	for (unsigned i = 0; i < narenas; i++)
		syscall(SYS_mmap, arenas[i]->base, arenas[i]->npages * DSM_PAGE_SIZE,
			PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
			MAP_FIXED_NOREPLACE, -1, 0);
}

void arena_usage(unsigned *n, size_t *bytes, size_t *peak)
{
	pthread_mutex_lock(&lock);
	*n = narenas;
	*bytes = used_pages * DSM_PAGE_SIZE;
	*peak = peak_pages * DSM_PAGE_SIZE;
	pthread_mutex_unlock(&lock);
}
