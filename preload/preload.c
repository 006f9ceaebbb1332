/*
 * preload.c - libdsm-preload.so: far memory for unmodified programs
 * (room: preload shim).
 *
 * With LD_PRELOAD, this library's malloc family and anonymous mmap come
 * before the C library's.  Each call is routed:
 *
 *   - to the C library (__libc_malloc & co., raw syscalls for mmap):
 *     requests below DSM_PRELOAD_THRESHOLD; every request of a thread
 *     inside libdsm or of libdsm's own threads (dsm_tl_internal, set by
 *     the engine, lease and mover threads and around our calls into
 *     libdsm);
 *     everything before our constructor ran, when no server could be
 *     reached, and in a child after fork;
 *   - to an arena block (arena.h) otherwise.
 *
 * Pointers are told apart by address: a pointer inside an arena is ours,
 * anything else the C library's.  The check reads a small lock-free table,
 * so free() of a small block costs a few compares.  mprotect is
 * interposed for the same reason as munmap: on far memory it must go
 * through the arenas (arena_protect), elsewhere it is the raw syscall.
 *
 * Lifecycle (enum shim_state): BOOT until our constructor ran (the loader
 * and earlier constructors allocate from the C library, which keeps those
 * blocks); READY: the first large request initialises libdsm from the
 * environment, under init_lock; ON; OFF when that failed (one warning, or
 * exit with DSM_REQUIRE=1); CHILD in a child after fork.
 *
 * fork: arenas are MADV_DONTFORK regions (dsm_alloc makes them so), so a
 * child has none: touching far memory there is SIGSEGV, never the silent
 * zeros that a copied but unserved userfaultfd range would read.  The
 * child has no engine thread, so it never calls libdsm: new blocks come
 * from the C library and free() of an arena pointer does nothing.  exec
 * starts afresh, so system() and popen() are unaffected.
 */
/* We define mmap and mmap64 both; a build-wide _FILE_OFFSET_BITS=64 would
 * rename the first to the second (and off_t is 64-bit here either way). */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arena.h"
#include "dsm.h"
#include "log.h"
#include "page.h"
#include "small.h"
#include "stats_file.h"
#include "util.h"

/* all the shim may use of the engine (docs/design.md, "The preload shim") */
#include "../client/shim.h"

#define EXPORT __attribute__((visibility("default")))
#define PAGE DSM_PAGE_SIZE
/* glibc's default mmap threshold: a block this large is already a
 * mapping of its own in the C library, so routing it costs no extra
 * fragmentation, and small, short-lived blocks never pay a fault. */
#define DEFAULT_THRESHOLD (128UL << 10)

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t align, size_t n);
extern void *__libc_valloc(size_t n);
extern void *__libc_pvalloc(size_t n);

enum shim_state { SHIM_BOOT, SHIM_READY, SHIM_ON, SHIM_OFF, SHIM_CHILD };

static int state = SHIM_BOOT;       /* atomic */
static size_t threshold = SIZE_MAX; /* set by the constructor */
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t (*libc_usable)(void *);
static int warned_full;

static int get_state(void)
{
	return __atomic_load_n(&state, __ATOMIC_ACQUIRE);
}

/* ---- initialisation -------------------------------------------------- */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere to say it */
	}
}

static const char *where(void)
{
	const char *s = getenv("DSM_SERVERS"), *r = getenv("DSM_REGISTRY");

	if (s && *s)
		return s;
	if (r && *r)
		return r;
	return "none given: set DSM_SERVERS or DSM_REGISTRY";
}

/*
 * A Go runtime in the process, linked with cgo (a static Go binary never
 * loads the shim): its entry points for C are dynamic symbols.  Go gives
 * freed heap back with madvise(MADV_DONTNEED) as a raw system call, which
 * the shim never sees; the engine is told to expect such drops
 * (dsm_expect_unseen_drops).
 */
static bool go_runtime(void)
{
	return dlsym(RTLD_DEFAULT, "crosscall2") ||
	       dlsym(RTLD_DEFAULT, "_cgo_topofstack");
}

/* Called with init_lock held, state READY. */
static void start_far(void)
{
	bool quiet = !getenv("DSM_LOG");
	const char *req = getenv("DSM_REQUIRE"), *why;
	bool config_bad;
	int err;

	dsm_tl_internal++;
	if (go_runtime())
		dsm_expect_unseen_drops();
	/* A bad setting is named by libdsm's own message, which says which;
	 * past that, its messages would say the same thing as ours at
	 * greater length: one line from us is the contract (DSM_LOG shows
	 * them). */
	config_bad = dsm_check_config() != 0;
	if (quiet)
		dsm_log_set_level(DSM_LOG_OFF);
	err = config_bad ? -EINVAL : dsm_init(NULL);
	if (quiet)
		dsm_log_set_level(DSM_LOG_WARN);
	dsm_tl_internal--;
	if (!err) {
		__atomic_store_n(&state, SHIM_ON, __ATOMIC_RELEASE);
		dsm_tl_internal++; /* the thread's stack is the C library's */
		stats_file_start();
		dsm_tl_internal--;
		return;
	}
	__atomic_store_n(&state, SHIM_OFF, __ATOMIC_RELEASE);
	why = config_bad ? "a DSM_* setting is wrong (above)" :
			   "no memory server reachable";
	if (req && !strcmp(req, "1")) {
		say("dsm: %s (%s: %s) and DSM_REQUIRE=1: exiting", why,
		    where(), dsm_strerror(err));
		pthread_mutex_unlock(&init_lock);
		exit(1);
	}
	say("dsm: %s (%s: %s); running on local memory", why, where(),
	    dsm_strerror(err));
}

static bool far_on(void)
{
	int st = get_state();

	if (st == SHIM_ON)
		return true;
	if (st != SHIM_READY)
		return false;
	pthread_mutex_lock(&init_lock);
	if (get_state() == SHIM_READY)
		start_far();
	pthread_mutex_unlock(&init_lock);
	return get_state() == SHIM_ON;
}

/* ---- routing --------------------------------------------------------- */

/* What to ask of the slabs for size bytes aligned to align (a power of
 * two below a page): the size rounded up to align.  Every class whose
 * size is a multiple of align is carved at multiples of it from slabs
 * aligned to 64 KiB, and rounding up lands on such a class (small.c);
 * at a page or more, an arena's block. */
static size_t small_size(size_t size, size_t align)
{
	if (align < SMALL_ALIGN)
		align = SMALL_ALIGN;
	return (size + align - 1) & ~(align - 1);
}

/* A far block, or NULL: the caller then asks the C library.  With zero,
 * it reads as zeros (calloc, mmap); otherwise its contents are unspecified,
 * and it may be memory freed a moment ago, still resident. */
static void *far_alloc(size_t size, size_t align, bool zero)
{
	void *p;

	if (size < threshold || dsm_tl_internal || !far_on())
		return NULL;
	dsm_tl_internal++;
	/* below a page (a threshold under 4K): a slab's block, unless the
	 * caller wants more alignment than every block has */
	if (small_size(size, align) < SMALL_MAX && align < PAGE) {
		p = small_alloc(small_size(size, align));
		if (p && zero)
			memset(p, 0, size);
	} else {
		p = arena_alloc(size, align, zero);
	}
	dsm_tl_internal--;
	if (!p && !__atomic_exchange_n(&warned_full, 1, __ATOMIC_RELAXED))
		say("dsm: far memory exhausted (%s); allocating locally",
		    strerror(errno));
	return p;
}

/* Whether p is ours, for free/realloc/munmap: never on libdsm's threads,
 * which only ever hold the C library's pointers.  The envelope test comes
 * first: it rejects the C library's pointers in two compares. */
static inline bool ours(const void *p)
{
	return arena_near(p) && !dsm_tl_internal && arena_maybe(p) &&
	       arena_contains(p);
}

static size_t libc_usable_size(void *p)
{
	/* The C library's own, by handle: RTLD_NEXT could find another
	 * allocator's (redis-server links jemalloc, whose malloc we also
	 * stand in front of). */
	if (!libc_usable) {
		void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);

		if (libc)
			libc_usable = (size_t (*)(void *))dlsym(
				libc, "malloc_usable_size");
	}
	return libc_usable ? libc_usable(p) : 0;
}

static void bad_pointer(const char *call, const void *p)
{
	say("dsm: %s(%p): not a block of far memory (double free or bad "
	    "pointer): aborting", call, p);
	abort();
}

static void far_free(void *p)
{
	int err;

	if (get_state() == SHIM_CHILD)
		return; /* the child has no copy of it: nothing to release */
	dsm_tl_internal++;
	err = arena_free(p);
	dsm_tl_internal--;
	if (err)
		bad_pointer("free", p);
}

/* ---- the malloc family ------------------------------------------------ */

/* Below the threshold, each entry point goes to the C library before
 * anything else: that is nearly every call a program makes, and all it
 * should pay for the shim is one compare.  The far paths are kept out of
 * line (noinline): inlined, their register saves ran before the compare
 * on every call (five pushes ahead of it in malloc, six in calloc). */
/* A block's alignment: as the C library's below a page, a page above. */
static size_t block_align(size_t n)
{
	return n < SMALL_MAX ? SMALL_ALIGN : PAGE;
}

static __attribute__((noinline)) void *malloc_far(size_t n)
{
	void *p = far_alloc(n, block_align(n), false);

	return p ? p : __libc_malloc(n);
}

EXPORT void *malloc(size_t n)
{
	if (n < threshold)
		return __libc_malloc(n);
	return malloc_far(n);
}

/* Near the slabs (small.h)?  As ours(), never on libdsm's threads.  Only
 * the envelope: small_lookup says whether p is in a region's slabs. */
static inline bool near_small(const void *p)
{
	return small_near(p) && !dsm_tl_internal;
}

/* Give a slab's block back; false if p lies in no region's slabs (the C
 * library's). */
static bool small_give_back(void *p)
{
	size_t size = small_lookup(p);

	if (size == SMALL_NOT_OURS)
		return false;
	if (get_state() == SHIM_CHILD)
		return true; /* as far_free */
	if (!size)
		bad_pointer("free", p);
	dsm_tl_internal++;
	small_free(p, size);
	dsm_tl_internal--;
	return true;
}

EXPORT void free(void *p)
{
	if (!p)
		return;
	if (ours(p))
		far_free(p);
	else if (!near_small(p) || !small_give_back(p))
		__libc_free(p);
}

static __attribute__((noinline)) void *calloc_far(size_t n, size_t size,
						   size_t total)
{
	/* zeroed by the arena (arena.h), a slab's block by far_alloc */
	void *p = far_alloc(total, block_align(total), true);

	return p ? p : __libc_calloc(n, size);
}

EXPORT void *calloc(size_t n, size_t size)
{
	size_t total;

	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	if (total < threshold)
		return __libc_calloc(n, size);
	return calloc_far(n, size, total);
}

static void *realloc_far(void *p, size_t n)
{
	size_t old = arena_block_size(p);
	bool grown;
	void *q;

	if (!old)
		bad_pointer("realloc", p);
	if (!n) {
		far_free(p);
		return NULL;
	}
	if (get_state() != SHIM_CHILD) {
		dsm_tl_internal++;
		if (n <= old)
			arena_shrink(p, n);
		grown = n <= old || arena_grow(p, n, false);
		dsm_tl_internal--;
		if (grown)
			return p;
	}
	q = malloc(n);
	if (!q)
		return NULL;
	memcpy(q, p, old < n ? old : n); /* in a child: SIGSEGV, see top */
	free(p);
	return q;
}

/* A slab's block of size old (small_lookup): it stays while n fits its
 * class, else moves. */
static void *realloc_small(void *p, size_t n, size_t old)
{
	bool child = get_state() == SHIM_CHILD;
	void *q;

	if (child)
		old = SMALL_MAX; /* the copy faults, see top */
	else if (!old)
		bad_pointer("realloc", p);
	if (!n) {
		free(p);
		return NULL;
	}
	if (!child && n <= old && n >= old / 2)
		return p;
	q = malloc(n);
	if (!q)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	free(p);
	return q;
}

EXPORT void *realloc(void *p, size_t n)
{
	size_t old;
	void *q;

	if (!p)
		return malloc(n);
	if (ours(p))
		return realloc_far(p, n);
	if (near_small(p) && (old = small_lookup(p)) != SMALL_NOT_OURS)
		return realloc_small(p, n, old);
	/* A C-library block growing past the threshold moves to far memory. */
	if (n >= threshold && (old = libc_usable_size(p)) < n &&
	    (q = far_alloc(n, block_align(n), false))) {
		memcpy(q, p, old);
		__libc_free(p);
		return q;
	}
	return __libc_realloc(p, n);
}

EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
	size_t total;

	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, total);
}

static size_t page_align(size_t align)
{
	size_t a = PAGE;

	while (a < align && a)
		a <<= 1;
	return a;
}

/* The least power of two at least a (memalign takes any alignment). */
static size_t pow2_at_least(size_t a)
{
	size_t p = 1;

	while (p < a && p)
		p <<= 1;
	return p ? p : a;
}

EXPORT void *memalign(size_t align, size_t n)
{
	size_t a = pow2_at_least(align);
	/* below a page, a slab's block aligned as asked; else pages */
	void *p = far_alloc(n, a < PAGE && small_size(n, a) < SMALL_MAX ? a :
						     page_align(align), false);

	return p ? p : __libc_memalign(align, n);
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
	if (!align || (align & (align - 1))) {
		errno = EINVAL;
		return NULL;
	}
	return memalign(align, n);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
	int saved = errno;
	void *p;

	if (!align || (align & (align - 1)) || align % sizeof(void *))
		return EINVAL;
	p = memalign(align, n);
	if (!p)
		return ENOMEM;
	*out = p;
	errno = saved;
	return 0;
}

EXPORT void *valloc(size_t n)
{
	void *p = far_alloc(n, PAGE, false);

	return p ? p : __libc_valloc(n);
}

EXPORT void *pvalloc(size_t n)
{
	void *p = far_alloc((n + PAGE - 1) & ~(PAGE - 1), PAGE, false);

	return p ? p : __libc_pvalloc(n);
}

EXPORT size_t malloc_usable_size(void *p)
{
	size_t n;

	if (!p)
		return 0;
	if (ours(p))
		return arena_block_size(p);
	if (near_small(p) && (n = small_lookup(p)) != SMALL_NOT_OURS)
		return n;
	return libc_usable_size(p);
}

/* ---- reservations ----------------------------------------------------- */

/*
 * Managed runtimes (V8, the JVM, Go) and glibc's thread arenas reserve
 * address space PROT_NONE and commit pieces of it later, with mprotect
 * or with mmap(MAP_FIXED) over it.  A reservation stays the kernel's:
 * its address hints, MAP_FIXED_NOREPLACE, munmaps of its ends and files
 * mapped into it behave as they always do.  A commit inside one, as
 * large as the threshold, becomes far memory at that very address
 * (arena_adopt), so the servers hold room for what is committed only;
 * from then on it is far memory like any other, and munmap, mprotect,
 * madvise and mmap(MAP_FIXED) over a range that mixes it with the
 * kernel's mappings treat each piece as its own.
 */
#define MAX_RESV 4096

static pthread_mutex_t resv_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uintptr_t lo, hi;
} resv[MAX_RESV];     /* resv_lock: reservations made through us */
static unsigned nresv; /* resv_lock; read unlocked as a hint */
/* Held from claiming pages out of a reservation to adopting them, so
 * that no other thread claims the same pages meanwhile.  Taken before
 * resv_lock, never inside it. */
static pthread_mutex_t adopt_lock = PTHREAD_MUTEX_INITIALIZER;

static int mprotect_far(void *addr, size_t len, int prot);

static void resv_add(uintptr_t lo, uintptr_t hi)
{
	pthread_mutex_lock(&resv_lock);
	if (nresv < MAX_RESV) { /* past it, commits there stay local */
		resv[nresv].lo = lo;
		resv[nresv].hi = hi;
		__atomic_store_n(&nresv, nresv + 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&resv_lock);
}

/* [lo, hi) is reserved no longer (unmapped, committed, or mapped anew). */
static void resv_cut(uintptr_t lo, uintptr_t hi)
{
	if (!__atomic_load_n(&nresv, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&resv_lock);
	for (unsigned i = 0; i < nresv;) {
		uintptr_t a = resv[i].lo, b = resv[i].hi;

		if (b <= lo || a >= hi) {
			i++;
		} else if (a < lo && b > hi) { /* split, if there is room */
			resv[i++].hi = lo;
			if (nresv < MAX_RESV) {
				resv[nresv].lo = hi;
				resv[nresv].hi = b;
				__atomic_store_n(&nresv, nresv + 1, __ATOMIC_RELAXED);
			}
		} else if (a < lo) {
			resv[i++].hi = lo;
		} else if (b > hi) {
			resv[i++].lo = hi;
		} else {
			resv[i] = resv[nresv - 1];
			__atomic_store_n(&nresv, nresv - 1, __ATOMIC_RELAXED);
		}
	}
	pthread_mutex_unlock(&resv_lock);
}

/* Under resv_lock: whether [lo, hi) lies inside one reservation. */
static bool resv_has(uintptr_t lo, uintptr_t hi)
{
	for (unsigned i = 0; i < nresv; i++)
		if (resv[i].lo <= lo && hi <= resv[i].hi)
			return true;
	return false;
}

/* Whether [addr, addr+len) lies inside one reservation. */
static bool in_resv(const void *addr, size_t len)
{
	uintptr_t lo = (uintptr_t)addr, hi = lo + len;
	bool in;

	if (!__atomic_load_n(&nresv, __ATOMIC_RELAXED) || hi < lo ||
	    dsm_tl_internal)
		return false;
	pthread_mutex_lock(&resv_lock);
	in = resv_has(lo, hi);
	pthread_mutex_unlock(&resv_lock);
	return in;
}

/* Take [lo, hi) out of the reservations if it lies inside one, in one
 * step: of two threads committing the same pages, one adopts them. */
static bool resv_claim(uintptr_t lo, uintptr_t hi)
{
	bool in;

	pthread_mutex_lock(&resv_lock);
	in = resv_has(lo, hi);
	pthread_mutex_unlock(&resv_lock);
	if (in)
		resv_cut(lo, hi); /* racing claims: see adopt */
	return in;
}

/* Protection that commits: the program means to use the pages. */
static bool commit_prot(int prot)
{
	return prot & (PROT_READ | PROT_WRITE);
}

/* A reservation's pages [lo, hi) become far memory reading as zeros,
 * an arena of their own at that address: true if they did. */
static bool adopt(uintptr_t lo, uintptr_t hi)
{
	void *p;

	if (hi - lo < threshold || !in_resv((void *)lo, hi - lo) || !far_on())
		return false;
	pthread_mutex_lock(&adopt_lock);
	if (!resv_claim(lo, hi)) { /* another thread adopted them first */
		pthread_mutex_unlock(&adopt_lock);
		return false;
	}
	dsm_tl_internal++;
	p = arena_adopt((void *)lo, hi - lo);
	dsm_tl_internal--;
	if (!p) /* still reserved: the next commit may try again */
		resv_add(lo, hi);
	pthread_mutex_unlock(&adopt_lock);
	return p != NULL;
}

/* mmap of a reservation: the kernel's, remembered. */
static void *reserve(void *addr, size_t len, int flags)
{
	void *p = (void *)syscall(SYS_mmap, addr, len, PROT_NONE, flags, -1, 0);

	if (p != MAP_FAILED && len >= threshold && !dsm_tl_internal &&
	    get_state() != SHIM_CHILD && get_state() != SHIM_OFF)
		resv_add((uintptr_t)p,
			 (uintptr_t)p + ((len + PAGE - 1) & ~(PAGE - 1)));
	return p;
}

/* Whether [addr, addr+len) may touch an arena: two compares for most. */
static bool overlaps_far(const void *addr, size_t len)
{
	uintptr_t lo = (uintptr_t)addr, hi = lo + len, alo, ahi;

	if (!len || dsm_tl_internal || hi < lo)
		return false;
	if ((hi <= __atomic_load_n(&arena_lo, __ATOMIC_ACQUIRE) ||
	     lo >= __atomic_load_n(&arena_hi, __ATOMIC_ACQUIRE)) &&
	    (hi <= __atomic_load_n(&adopt_lo, __ATOMIC_ACQUIRE) ||
	     lo >= __atomic_load_n(&adopt_hi, __ATOMIC_ACQUIRE)))
		return false;
	return arena_next(lo, hi, &alo, &ahi);
}

typedef int (*seg_fn)(uintptr_t lo, uintptr_t hi, bool far, void *arg);

/* seg() on the pieces of [lo, hi) in order, each inside an arena (far)
 * or outside every arena; the first error stops it.  0 or -errno. */
static int walk(uintptr_t lo, uintptr_t hi, seg_fn seg, void *arg)
{
	while (lo < hi) {
		uintptr_t alo, ahi;
		int err;

		if (!arena_next(lo, hi, &alo, &ahi))
			return seg(lo, hi, false, arg);
		if (alo > lo && (err = seg(lo, alo, false, arg)))
			return err;
		if (alo < lo)
			alo = lo;
		if (ahi > hi)
			ahi = hi;
		if ((err = seg(alo, ahi, true, arg)))
			return err;
		lo = ahi;
	}
	return 0;
}

struct fixed_map {
	int prot, flags, fd;
	off_t off;
	uintptr_t start;
};

/* A piece of an mmap(MAP_FIXED): over far memory, new anonymous memory
 * is the same pages zeroed, and anything else would tear a hole in an
 * arena, which we refuse; over a reservation, a commit as large as the
 * threshold becomes far memory; the rest is the kernel's. */
static int fixed_seg(uintptr_t lo, uintptr_t hi, bool far, void *arg)
{
	const struct fixed_map *m = arg;
	bool anon = (m->flags & (MAP_PRIVATE | MAP_ANONYMOUS | MAP_SHARED)) ==
		    (MAP_PRIVATE | MAP_ANONYMOUS);
	bool adopted = false;
	int err;

	if (!far && anon && commit_prot(m->prot))
		adopted = adopt(lo, hi);
	if (!far && !adopted && overlaps_far((void *)lo, hi - lo))
		far = true; /* another thread adopted it meanwhile */
	if (!far && !adopted) {
		resv_cut(lo, hi);
		if (syscall(SYS_mmap, lo, hi - lo, m->prot, m->flags, m->fd,
			    m->off + (off_t)(lo - m->start)) == -1)
			return -errno;
		if (anon && m->prot == PROT_NONE) /* reserved anew */
			resv_add(lo, hi);
		return 0;
	}
	if (far) { /* adopted pages read as zeros already */
		if (!anon || (m->prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) ||
		    get_state() != SHIM_ON)
			return -EINVAL;
		dsm_tl_internal++;
		err = arena_zero((void *)lo, hi - lo);
		dsm_tl_internal--;
		if (err)
			return err == -ENOENT ? -EINVAL :
			       err == -ETIMEDOUT ? -ENOMEM : err;
	}
	return mprotect_far((void *)lo, hi - lo, m->prot) ? -errno : 0;
}

static void *map_fixed(void *addr, size_t len, int prot, int flags, int fd,
		       off_t off)
{
	struct fixed_map m = { prot, flags, fd, off, (uintptr_t)addr };
	uintptr_t lo = (uintptr_t)addr;
	uintptr_t hi = lo + ((len + PAGE - 1) & ~(PAGE - 1));
	int err;

	if ((lo & (PAGE - 1)) || !len || hi < lo) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	err = walk(lo, hi, fixed_seg, &m);
	if (err) {
		errno = -err;
		return MAP_FAILED;
	}
	return addr;
}

/* ---- anonymous mappings ----------------------------------------------- */

static bool plain_anon(void *addr, int prot, int flags)
{
	return !addr && prot == (PROT_READ | PROT_WRITE) &&
	       (flags & ~MAP_NORESERVE) == (MAP_PRIVATE | MAP_ANONYMOUS);
}

/* A reservation: anonymous, private, PROT_NONE, placed by the kernel
 * (an address is a hint; MAP_FIXED_NOREPLACE too is the kernel's). */
static bool reserving(int prot, int flags)
{
	return prot == PROT_NONE && !(flags & MAP_FIXED) &&
	       (flags & ~(MAP_NORESERVE | MAP_FIXED_NOREPLACE)) ==
		       (MAP_PRIVATE | MAP_ANONYMOUS);
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd,
		  off_t off)
{
	if (reserving(prot, flags))
		return reserve(addr, len, flags);
	if ((flags & MAP_FIXED) && (overlaps_far(addr, len) ||
				    (commit_prot(prot) && in_resv(addr, len))))
		return map_fixed(addr, len, prot, flags, fd, off);
	if (plain_anon(addr, prot, flags)) {
		void *p = far_alloc(len, PAGE, true); /* must read as zeros */

		if (p)
			return p;
	}
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd,
		    off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

static int unmap_seg(uintptr_t lo, uintptr_t hi, bool far, void *arg)
{
	int err;

	(void)arg;
	if (!far)
		return syscall(SYS_munmap, lo, hi - lo) ? -errno : 0;
	if (get_state() == SHIM_CHILD)
		return 0; /* never mapped in the child */
	dsm_tl_internal++;
	err = arena_release((void *)lo, hi - lo);
	dsm_tl_internal--;
	return err ? -EINVAL : 0;
}

EXPORT int munmap(void *addr, size_t len)
{
	uintptr_t lo = (uintptr_t)addr;
	uintptr_t hi = lo + ((len + PAGE - 1) & ~(PAGE - 1));
	int err;

	if (ours(addr)) { /* blocks of ours: inside one arena, or refused */
		if ((lo & (PAGE - 1)) || !len || hi < lo) {
			errno = EINVAL;
			return -1;
		}
		if ((err = unmap_seg(lo, hi, true, NULL))) {
			errno = -err; /* crosses an arena's end */
			return -1;
		}
		return 0;
	}
	if (!overlaps_far(addr, len)) {
		if (!dsm_tl_internal)
			resv_cut(lo, hi);
		return syscall(SYS_munmap, addr, len);
	}
	if ((lo & (PAGE - 1)) || hi < lo) {
		errno = EINVAL;
		return -1;
	}
	resv_cut(lo, hi);
	err = walk(lo, hi, unmap_seg, NULL);
	if (err) {
		errno = -err;
		return -1;
	}
	return 0;
}

static void *mremap_far(void *old, size_t oldlen, size_t newlen, int flags)
{
	size_t cur = arena_block_size(old);
	void *q;

	if (!cur || (flags & ~MREMAP_MAYMOVE) || !newlen ||
	    get_state() != SHIM_ON) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	/* mremap's new pages read as zeros, as a fresh mapping's do */
	if (newlen <= cur || arena_grow(old, newlen, true)) {
		if (newlen < cur)
			arena_shrink(old, newlen);
		return old;
	}
	if (!(flags & MREMAP_MAYMOVE)) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	q = arena_alloc(newlen, PAGE, true);
	if (!q) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	memcpy(q, old, oldlen < cur ? oldlen : cur);
	arena_free(old);
	return q;
}

EXPORT void *mremap(void *old, size_t oldlen, size_t newlen, int flags, ...)
{
	void *fixed = NULL, *p;
	va_list ap;

	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		fixed = va_arg(ap, void *);
		va_end(ap);
	}
	if (ours(old)) {
		dsm_tl_internal++;
		p = mremap_far(old, oldlen, newlen, flags);
		dsm_tl_internal--;
		return p;
	}
	/* a commit of a reservation is far memory the kernel cannot move
	 * (the engine knows it by its address): refused, as for a mapping
	 * that may not grow; callers then allocate anew and copy */
	if (overlaps_far(old, oldlen)) {
		errno = (flags & MREMAP_MAYMOVE) ? EINVAL : ENOMEM;
		return MAP_FAILED;
	}
	return (void *)syscall(SYS_mremap, old, oldlen, newlen, flags, fixed);
}

/*
 * mprotect on far memory: arena_protect does the work (set_prot in
 * arena.c and protect.c say why in that order).  Refused with EACCES in a
 * fork child, whose arenas are inaccessible reservations: making one
 * readable would read zeros where far memory must be SIGSEGV.  prot is
 * PROT_NONE or a combination of PROT_READ, PROT_WRITE and PROT_EXEC (else
 * EINVAL, as for an unaligned addr); a range not all inside one arena, or
 * not in blocks, is ENOMEM, as unmapped memory is to the kernel.  A range
 * that only ends in an arena is checked too, so the kernel never changes
 * an arena page behind our back.
 */
static int mprotect_far(void *addr, size_t len, int prot)
{
	size_t n = (len + PAGE - 1) & ~(PAGE - 1);
	int err;

	if (((uintptr_t)addr & (PAGE - 1)) ||
	    (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC))) {
		errno = EINVAL;
		return -1;
	}
	if (!len)
		return 0;
	if (n < len || (uintptr_t)addr + n < (uintptr_t)addr) {
		errno = ENOMEM;
		return -1;
	}
	if (get_state() != SHIM_ON) {
		errno = EACCES;
		return -1;
	}
	dsm_tl_internal++;
	err = arena_protect(addr, n, prot);
	dsm_tl_internal--;
	if (err) {
		errno = -err;
		return -1;
	}
	return 0;
}

/* A piece of an mprotect: far memory's through the arenas; a commit
 * of a reservation as large as the threshold becomes far memory; the
 * rest is the kernel's. */
static int protect_seg(uintptr_t lo, uintptr_t hi, bool far, void *arg)
{
	int prot = *(int *)arg;

	if (far || (commit_prot(prot) && adopt(lo, hi)) ||
	    overlaps_far((void *)lo, hi - lo)) /* another thread adopted it */
		return mprotect_far((void *)lo, hi - lo, prot) ? -errno : 0;
	return syscall(SYS_mprotect, lo, hi - lo, prot) ? -errno : 0;
}

EXPORT int mprotect(void *addr, size_t len, int prot)
{
	uintptr_t lo = (uintptr_t)addr;
	uintptr_t hi = lo + ((len + PAGE - 1) & ~(PAGE - 1));
	int err;

	/* blocks of ours: all inside one arena, or refused unchanged */
	if (ours(addr) || (len && ours((void *)((uintptr_t)addr + len - 1))))
		return mprotect_far(addr, len, prot);
	if (!len || (lo & (PAGE - 1)) || hi < lo ||
	    (!overlaps_far(addr, len) &&
	     !(commit_prot(prot) && in_resv(addr, len))))
		return syscall(SYS_mprotect, addr, len, prot);
	err = walk(lo, hi, protect_seg, &prot);
	if (err) {
		errno = -err;
		return -1;
	}
	return 0;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

/*
 * A piece of a madvise (docs/design.md, "Advice and locks on far
 * memory").  On far memory: advice that frees pages zeroes them (for
 * MADV_FREE zeros are one of the allowed outcomes); DONTDUMP and DODUMP
 * are the kernel's (a flag on the mapping); every other advice the
 * kernel knows is accepted and not taken, as the kernel may ignore
 * advice, because obeying it could break the region (MADV_DOFORK would
 * hand a child an unserved copy, MADV_HUGEPAGE bigger-than-page faults,
 * MADV_PAGEOUT far pages in the kernel's swap); one it does not know is
 * EINVAL, as the kernel says.  Elsewhere the kernel's.
 */
static int advise_seg(uintptr_t lo, uintptr_t hi, bool far, void *arg)
{
	int advice = *(int *)arg, err;

	if (!far || advice == MADV_DONTDUMP || advice == MADV_DODUMP)
		return syscall(SYS_madvise, lo, hi - lo, advice) ? -errno : 0;
	switch (advice) {
	case MADV_DONTNEED: case MADV_FREE: case MADV_REMOVE:
	case MADV_DONTNEED_LOCKED:
		break;
	case MADV_NORMAL: case MADV_RANDOM: case MADV_SEQUENTIAL:
	case MADV_WILLNEED: case MADV_HUGEPAGE: case MADV_NOHUGEPAGE:
	case MADV_COLD: case MADV_PAGEOUT: case MADV_MERGEABLE:
	case MADV_UNMERGEABLE: case MADV_DONTFORK: case MADV_DOFORK:
	case MADV_WIPEONFORK: case MADV_KEEPONFORK: case MADV_COLLAPSE:
	case MADV_POPULATE_READ: case MADV_POPULATE_WRITE:
		return 0;
	default:
		return -EINVAL;
	}
	if (get_state() != SHIM_ON)
		return 0;
	dsm_tl_internal++;
	err = arena_zero((void *)lo, hi - lo);
	dsm_tl_internal--;
	return err == -ETIMEDOUT ? -EAGAIN : 0; /* not zeroed */
}

EXPORT int madvise(void *addr, size_t len, int advice)
{
	uintptr_t lo = (uintptr_t)addr;
	uintptr_t hi = lo + ((len + PAGE - 1) & ~(PAGE - 1));
	int err;

	if ((!ours(addr) && !overlaps_far(addr, len)) || hi < lo)
		return syscall(SYS_madvise, addr, len, advice);
	if (lo & (PAGE - 1)) {
		errno = EINVAL;
		return -1;
	}
	err = walk(lo, hi, advise_seg, &advice);
	if (err) {
		errno = -err;
		return -1;
	}
	return 0;
}

/* ---- fork ------------------------------------------------------------- */

static void fork_prepare(void)
{
	pthread_mutex_lock(&init_lock);
	arena_lock_all();
}

static void fork_parent(void)
{
	arena_unlock_all();
	pthread_mutex_unlock(&init_lock);
}

static void fork_child(void)
{
	pthread_mutex_init(&init_lock, NULL);
	arena_reset_child();
	if (get_state() == SHIM_ON)
		__atomic_store_n(&state, SHIM_CHILD, __ATOMIC_RELEASE);
}

/* ---- start and exit --------------------------------------------------- */

__attribute__((constructor)) static void shim_start(void)
{
	const char *t = getenv("DSM_PRELOAD_THRESHOLD");
	uint64_t v = DEFAULT_THRESHOLD;

	if (t && (dsm_parse_size(t, &v) || v < SMALL_ALIGN)) {
		say("dsm: DSM_PRELOAD_THRESHOLD=%s: expected a size of at "
		    "least 16, such as 128K (or 16 for small blocks too); "
		    "using 128K", t);
		v = DEFAULT_THRESHOLD;
	}
	threshold = v;
	libc_usable_size(NULL); /* resolve it now, outside any caller */
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	__atomic_store_n(&state, SHIM_READY, __ATOMIC_RELEASE);
}

/*
 * At exit: the stats, and out of the cluster's registry.  libdsm is not
 * shut down: destructors and exit handlers that run after this one may
 * still touch far memory.  The servers free our regions when our
 * connections close at exit; the records go now, not a lease later.
 */
__attribute__((destructor)) static void shim_exit(void)
{
	if (get_state() != SHIM_ON)
		return;
	dsm_tl_internal++;
	stats_file_final();
	dsm_cluster_exit();
	dsm_tl_internal--;
}
