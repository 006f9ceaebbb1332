/*
 * small.c - far memory for allocations smaller than a page: size
 * classes, slabs, and free lists kept in local memory (room: preload
 * shim).  small.h says why.
 *
 * Locks: slab_lock guards the regions and the slab map; each class's
 * pool has its own lock, taken before slab_lock, never inside it.  A
 * thread's cache is its own.  Everything here runs with dsm_tl_internal
 * raised by the caller, so what it allocates for itself (free lists,
 * caches) comes from the C library.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "dsm.h"
#include "small.h"
#include "util.h"

#include "../client/shim.h"

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

#define SLAB (64u << 10)            /* bytes of one class's slab */
#define REGION (256ull << 20)       /* one dsm_alloc region of slabs */
#define MAX_REGIONS 64              /* 16 GiB of small blocks */
#define NCLASS 32                   /* 16..256 by 16, then 4 per doubling */
#define NO_CLASS 0xff
#define NOT_OURS 0x100              /* lookup_class: in no region */
#define CACHE_SLOTS 32              /* a thread's free blocks per class */
#define BATCH (CACHE_SLOTS / 2)     /* moved to or from a pool at once */
#define RETRY_NS 1000000000ull      /* after a region could not be made */

uintptr_t small_lo = UINTPTR_MAX, small_hi; /* widened under slab_lock */

struct region {
	uintptr_t slab0;        /* first slab, SLAB-aligned */
	uintptr_t end;          /* past the last whole slab */
	uint8_t *cls;           /* class of each slab, or NO_CLASS */
};

static pthread_mutex_t slab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct region regions[MAX_REGIONS]; /* filled before nregions counts it */
static unsigned nregions;                  /* atomic; written under slab_lock */
static size_t slabs_carved;                /* slab_lock */

/* A class's shared free blocks and its slab being carved. */
static struct pool {
	pthread_mutex_t lock;
	void **stack;
	size_t n, cap;
	uintptr_t bump, end;
} pools[NCLASS];
static pthread_once_t pools_once = PTHREAD_ONCE_INIT;

struct cache {
	void *slot[NCLASS][CACHE_SLOTS];
	uint8_t n[NCLASS];
};
static __thread struct cache *my_cache __attribute__((tls_model("initial-exec")));
static pthread_key_t cache_key;
static bool key_ok;                /* set once, by pools_init */

/* ---- size classes ------------------------------------------------------ */

static unsigned class_of(size_t n)
{
	unsigned p;
	size_t base;

	if (n <= 256)
		return n ? (unsigned)((n + 15) / 16) - 1 : 0;
	p = 63 - __builtin_clzll(n - 1); /* 8..11 */
	base = (size_t)1 << p;
	return 16 + (p - 8) * 4 + (unsigned)((n - 1 - base) / (base >> 2));
}

static size_t class_size(unsigned c)
{
	size_t base;

	if (c < 16)
		return (c + 1) * 16;
	base = (size_t)256 << ((c - 16) / 4);
	return base + (base >> 2) * ((c - 16) % 4 + 1);
}

/* ---- regions and slabs ------------------------------------------------- */

/* Called with slab_lock held.  After a dsm_alloc fails, none is tried
 * again for RETRY_NS: each is a round trip to the servers, made with
 * locks held, and the callers fall back to the C library meanwhile. */
static struct region *new_region(void)
{
	static uint64_t failed_at; /* slab_lock */
	unsigned n = __atomic_load_n(&nregions, __ATOMIC_RELAXED);
	struct region *r = &regions[n];
	uintptr_t base;
	size_t nslabs;

	if (n == MAX_REGIONS ||
	    (failed_at && dsm_now_ns() - failed_at < RETRY_NS)) {
		errno = ENOMEM;
		return NULL;
	}
	base = (uintptr_t)dsm_alloc(REGION);
	if (!base) {
		failed_at = dsm_now_ns();
		return NULL;
	}
	failed_at = 0;
	r->slab0 = (base + SLAB - 1) & ~(uintptr_t)(SLAB - 1);
	nslabs = (base + REGION - r->slab0) / SLAB;
	r->end = r->slab0 + nslabs * SLAB;
	r->cls = __libc_malloc(nslabs);
	if (!r->cls) {
		dsm_free((void *)base);
		errno = ENOMEM;
		return NULL;
	}
	memset(r->cls, NO_CLASS, nslabs);
	if (r->slab0 < small_lo)
		__atomic_store_n(&small_lo, r->slab0, __ATOMIC_RELEASE);
	if (r->end > small_hi)
		__atomic_store_n(&small_hi, r->end, __ATOMIC_RELEASE);
	__atomic_store_n(&nregions, n + 1, __ATOMIC_RELEASE);
	return r;
}

/* A fresh slab for class c, or 0.  Regions fill in order, slab by slab. */
static uintptr_t new_slab(unsigned c)
{
	static uintptr_t next; /* slab_lock: the next slab of the last region */
	unsigned n;
	struct region *r;
	uintptr_t s = 0;

	pthread_mutex_lock(&slab_lock);
	n = __atomic_load_n(&nregions, __ATOMIC_RELAXED);
	r = n ? &regions[n - 1] : NULL;
	if (!r || next >= r->end) {
		r = new_region();
		if (r)
			next = r->slab0;
	}
	if (r) {
		s = next;
		next += SLAB;
		__atomic_store_n(&r->cls[(s - r->slab0) / SLAB], (uint8_t)c,
				 __ATOMIC_RELEASE);
		slabs_carved++;
	}
	pthread_mutex_unlock(&slab_lock);
	return s;
}

/* The class of the block p starts; NO_CLASS inside a slab but not at a
 * block's start; NOT_OURS outside every region's slabs. */
static unsigned lookup_class(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	unsigned n = __atomic_load_n(&nregions, __ATOMIC_ACQUIRE);

	for (unsigned i = 0; i < n; i++) {
		const struct region *r = &regions[i];
		unsigned c;

		if (a < r->slab0 || a >= r->end)
			continue;
		c = __atomic_load_n(&r->cls[(a - r->slab0) / SLAB],
				    __ATOMIC_ACQUIRE);
		if (c == NO_CLASS || (a - r->slab0) % SLAB % class_size(c) ||
		    (a - r->slab0) % SLAB + class_size(c) > SLAB)
			return NO_CLASS;
		return c;
	}
	return NOT_OURS;
}

/* ---- pools and caches -------------------------------------------------- */

static void cache_exit(void *arg);

static void pools_init(void)
{
	for (unsigned c = 0; c < NCLASS; c++)
		pthread_mutex_init(&pools[c].lock, NULL);
	key_ok = pthread_key_create(&cache_key, cache_exit) == 0;
}

/* Into a pool's stack; false if it cannot grow (the block is then lost
 * to reuse, not to correctness). */
static bool pool_push(struct pool *pl, void *p)
{
	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? 2 * pl->cap : 256;
		void **s = __libc_realloc(pl->stack, cap * sizeof(*s));

		if (!s)
			return false;
		pl->stack = s;
		pl->cap = cap;
	}
	pl->stack[pl->n++] = p;
	return true;
}

/* Fill the cache's class c with up to BATCH blocks: freed ones first,
 * then carved from the class's slab.  How many it got. */
static unsigned refill(struct cache *tc, unsigned c)
{
	struct pool *pl = &pools[c];
	size_t size = class_size(c);
	unsigned got = 0;

	pthread_mutex_lock(&pl->lock);
	while (got < BATCH && pl->n)
		tc->slot[c][got++] = pl->stack[--pl->n];
	while (got < BATCH) {
		if (pl->bump + size > pl->end) {
			uintptr_t s = new_slab(c);

			if (!s)
				break;
			pl->bump = s;
			pl->end = s + SLAB / size * size;
		}
		tc->slot[c][got++] = (void *)pl->bump;
		pl->bump += size;
	}
	pthread_mutex_unlock(&pl->lock);
	tc->n[c] = got;
	return got;
}

static void flush(struct cache *tc, unsigned c, unsigned keep)
{
	struct pool *pl = &pools[c];

	pthread_mutex_lock(&pl->lock);
	while (tc->n[c] > keep)
		pool_push(pl, tc->slot[c][--tc->n[c]]);
	pthread_mutex_unlock(&pl->lock);
}

/* At a thread's exit: its cached blocks go back to the pools.  A later
 * destructor that frees a block makes a new cache, which the next round
 * of destructors flushes in turn. */
static void cache_exit(void *arg)
{
	struct cache *tc = arg;

	for (unsigned c = 0; c < NCLASS; c++)
		flush(tc, c, 0);
	my_cache = NULL;
	__libc_free(tc);
}

static struct cache *cache(void)
{
	struct cache *tc = my_cache;

	if (tc)
		return tc;
	pthread_once(&pools_once, pools_init);
	tc = __libc_calloc(1, sizeof(*tc));
	if (!tc)
		return NULL;
	/* the key's destructor, not a TLS one: it runs for threads the
	 * program creates as for those it does not */
	if (key_ok)
		pthread_setspecific(cache_key, tc);
	my_cache = tc;
	return tc;
}

/* ---- the calls --------------------------------------------------------- */

void *small_alloc(size_t n)
{
	struct cache *tc = cache();
	unsigned c = class_of(n);

	if (!tc) {
		errno = ENOMEM;
		return NULL;
	}
	if (!tc->n[c] && !refill(tc, c))
		return NULL;
	return tc->slot[c][--tc->n[c]];
}

size_t small_lookup(const void *p)
{
	unsigned c = lookup_class(p);

	if (c == NOT_OURS)
		return SMALL_NOT_OURS;
	return c == NO_CLASS ? 0 : class_size(c);
}

void small_free(void *p, size_t size)
{
	struct cache *tc = cache();
	unsigned c = class_of(size); /* a class's own size maps back to it */

	if (!tc) { /* no cache: straight to the pool */
		pthread_mutex_lock(&pools[c].lock);
		pool_push(&pools[c], p);
		pthread_mutex_unlock(&pools[c].lock);
		return;
	}
	if (tc->n[c] == CACHE_SLOTS)
		flush(tc, c, CACHE_SLOTS - BATCH);
	tc->slot[c][tc->n[c]++] = p;
}

void small_usage(unsigned *n, size_t *bytes)
{
	pthread_mutex_lock(&slab_lock);
	*n = __atomic_load_n(&nregions, __ATOMIC_RELAXED);
	*bytes = slabs_carved * SLAB;
	pthread_mutex_unlock(&slab_lock);
}
