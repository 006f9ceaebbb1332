/*
 * pool.c - see pool.h (room: server pool).
 *
 * The free runs are a treap (a binary search tree by offset whose nodes
 * are also a heap by a random priority, which keeps its expected depth
 * logarithmic whatever order runs come and go in), built from split and
 * merge.  It replaced a sorted array: first fit scanned it and every
 * insertion or removal moved its tail, so a client that fragments the
 * pool (thousands of small ALLOCs, every other one freed) made each
 * request cost O(n) on the server's only thread.
 */
#include "pool.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "proto.h"
#include "util.h"

const char *pool_kind_name(enum pool_kind k)
{
	return k == POOL_KIND_HUGETLB ? "hugetlb 2 MiB" : "4 KiB";
}

/*
 * Hugetlb pages are taken from the reserve when the mapping is made (no
 * MAP_NORESERVE): with too few reserved, mmap fails here and now instead
 * of the server dying of SIGBUS on some later write.
 */
static int map_huge(struct pool *p, uint64_t need, char *why, size_t whylen)
{
	void *b = mmap(NULL, p->mapped, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | DSM_MAP_HUGE_2MB, -1, 0);

	if (b == MAP_FAILED) {
		int err = -errno;

		snprintf(why, whylen, "on hugetlb pages: %llu of 2 MiB "
			 "needed, %llu free (%s; reserve more with sysctl "
			 "vm.nr_hugepages, or use --hugepages auto)",
			 (unsigned long long)need,
			 (unsigned long long)dsm_huge_pages_free(), strerror(-err));
		return err == -EINVAL ? -ENOMEM : err;
	}
	p->base = b;
	p->kind = POOL_KIND_HUGETLB;
	snprintf(why, whylen, "on hugetlb pages (%llu of 2 MiB, taken from "
		 "vm.nr_hugepages)", (unsigned long long)need);
	return 0;
}

static int map_small(struct pool *p, bool advise, const char *reason,
		     char *why, size_t whylen)
{
	void *b = mmap(NULL, p->mapped, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (b == MAP_FAILED)
		return -errno;
	p->base = b;
	p->kind = POOL_KIND_SMALL;
	/* granted or not as the kernel sees fit: AnonHugePages in the
	 * server's smaps says which */
	if (advise)
		madvise(b, p->mapped, MADV_HUGEPAGE);
	snprintf(why, whylen, "on 4 KiB pages%s (%s)",
		 advise ? ", transparent huge pages advised" : "", reason);
	return 0;
}

static int map_pool(struct pool *p, enum pool_pages pages, char *why,
		    size_t whylen)
{
	uint64_t need = p->mapped / POOL_HUGE_BYTES;
	char tried[256];
	int err;

	if (pages == POOL_PAGES_SMALL)
		return map_small(p, false, "--hugepages off", why, whylen);
	if (pages == POOL_PAGES_HUGE)
		return map_huge(p, need, why, whylen);
	if (dsm_huge_pages_free() >= need) {
		err = map_huge(p, need, tried, sizeof(tried));
		if (!err) {
			snprintf(why, whylen, "%s", tried);
			return 0;
		}
	} else {
		snprintf(tried, sizeof(tried), "%llu hugetlb pages needed, "
			 "%llu reserved and free",
			 (unsigned long long)need,
			 (unsigned long long)dsm_huge_pages_free());
	}
	return map_small(p, true, tried, why, whylen);
}

/* ---- the treap of free runs ------------------------------------------ */

/* xorshift64*: a priority per node, nothing more. */
static uint64_t next_prio(struct pool *p)
{
	p->rng ^= p->rng >> 12;
	p->rng ^= p->rng << 25;
	p->rng ^= p->rng >> 27;
	return p->rng * 0x2545f4914f6cdd1dULL;
}

static uint64_t maxlen_of(const struct pool_run *t)
{
	return t ? t->maxlen : 0;
}

/* t's children changed: so may the longest run below it. */
static void pull(struct pool_run *t)
{
	uint64_t l = maxlen_of(t->left), r = maxlen_of(t->right);

	t->maxlen = t->len;
	if (l > t->maxlen)
		t->maxlen = l;
	if (r > t->maxlen)
		t->maxlen = r;
}

/* Cut t into the runs that start below key (*lo) and the rest (*hi). */
static void split(struct pool *p, struct pool_run *t, uint64_t key,
		  struct pool_run **lo, struct pool_run **hi)
{
	if (!t) {
		*lo = *hi = NULL;
		return;
	}
	p->steps++;
	if (t->off < key) {
		split(p, t->right, key, &t->right, hi);
		*lo = t;
	} else {
		split(p, t->left, key, lo, &t->left);
		*hi = t;
	}
	pull(t);
}

/* One tree of a's runs and then b's (every run of a lies below b's). */
static struct pool_run *merge(struct pool *p, struct pool_run *a,
			      struct pool_run *b)
{
	if (!a || !b)
		return a ? a : b;
	p->steps++;
	if (a->prio > b->prio) {
		a->right = merge(p, a->right, b);
		pull(a);
		return a;
	}
	b->left = merge(p, a, b->left);
	pull(b);
	return b;
}

static void insert_run(struct pool *p, struct pool_run *n)
{
	struct pool_run *lo, *hi;

	n->left = n->right = NULL;
	n->maxlen = n->len;
	split(p, p->runs, n->off, &lo, &hi);
	p->runs = merge(p, merge(p, lo, n), hi);
	p->nruns++;
}

/* Take the run that starts at off (it must exist) out of the tree. */
static struct pool_run *take_run(struct pool *p, uint64_t off)
{
	struct pool_run *lo, *mid, *hi;

	split(p, p->runs, off, &lo, &hi);
	split(p, hi, off + 1, &mid, &hi);
	p->runs = merge(p, lo, hi);
	p->nruns--;
	return mid;
}

/* The lowest run of at least size bytes, or NULL: maxlen says which
 * subtrees can hold one, so this visits one path. */
static struct pool_run *first_fit(struct pool *p, uint64_t size)
{
	struct pool_run *t = p->runs;

	while (t && t->maxlen >= size) {
		p->steps++;
		if (maxlen_of(t->left) >= size)
			t = t->left;
		else if (t->len >= size)
			return t;
		else
			t = t->right;
	}
	return NULL;
}

/* The runs just below and just above off (either may be NULL). */
static void neighbours(struct pool *p, uint64_t off, struct pool_run **below,
		       struct pool_run **above)
{
	*below = *above = NULL;
	for (struct pool_run *t = p->runs; t;) {
		p->steps++;
		if (t->off < off) {
			*below = t;
			t = t->right;
		} else {
			*above = t;
			t = t->left;
		}
	}
}

static void put_spare(struct pool *p, struct pool_run *n)
{
	n->right = p->spare;
	p->spare = n;
}

/*
 * Every allocated extent can add at most one free run when it is freed,
 * so there are never more than nextents + 1 runs.  Keeping that many
 * nodes, allocated here where failing is allowed, means pool_free never
 * has to allocate: it takes a spare.
 */
static int reserve_nodes(struct pool *p, uint64_t want)
{
	while (p->nnodes < want) {
		struct pool_run *n = malloc(sizeof(*n));

		if (!n)
			return -ENOMEM;
		put_spare(p, n);
		p->nnodes++;
	}
	return 0;
}

static struct pool_run *get_spare(struct pool *p)
{
	struct pool_run *n = p->spare;

	p->spare = n->right;
	return n;
}

int pool_init(struct pool *p, uint64_t capacity, enum pool_pages pages,
	      char *why, size_t whylen)
{
	char spare[256];
	uint64_t chunks;
	int err = -EINVAL;

	memset(p, 0, sizeof(*p));
	if (!why) {
		why = spare;
		whylen = sizeof(spare);
	}
	why[0] = '\0';
	if (capacity == 0 || capacity % DSM_PAGE_SIZE ||
	    capacity > SIZE_MAX - POOL_HUGE_BYTES)
		goto out;
	err = -ENOMEM;
	p->mapped = (capacity + POOL_HUGE_BYTES - 1) & ~(POOL_HUGE_BYTES - 1);
	chunks = p->mapped / POOL_HUGE_BYTES;
	p->runs = calloc(1, sizeof(*p->runs));
	p->written = calloc((chunks + 63) / 64, sizeof(uint64_t));
	if (!p->runs || !p->written)
		goto out;
	err = map_pool(p, pages, why, whylen);
	if (err)
		goto out;
	p->capacity = capacity;
	/* The priorities only shape the tree, never what it holds; seeding
	 * them from where the pool was mapped keeps a peer from knowing
	 * them, and so from choosing frees that would unbalance it. */
	p->rng = (uint64_t)(uintptr_t)p->base | 1;
	*p->runs = (struct pool_run){ .off = 0, .len = capacity,
				      .maxlen = capacity,
				      .prio = next_prio(p) };
	p->nruns = p->nnodes = 1;
	return 0;
out:
	free(p->runs);
	free(p->written);
	p->runs = NULL;
	p->written = NULL;
	return err;
}

static void free_tree(struct pool_run *t)
{
	if (!t)
		return;
	free_tree(t->left);
	free_tree(t->right);
	free(t);
}

void pool_destroy(struct pool *p)
{
	if (p->base)
		munmap(p->base, p->mapped);
	free_tree(p->runs);
	while (p->spare) {
		struct pool_run *n = p->spare;

		p->spare = n->right;
		free(n);
	}
	free(p->written);
	memset(p, 0, sizeof(*p));
}

int pool_alloc(struct pool *p, uint64_t size, uint64_t *off)
{
	struct pool_run *n;

	if (size == 0 || size % DSM_PAGE_SIZE)
		return -EINVAL;
	if (reserve_nodes(p, p->nextents + 2) < 0)
		return -ENOMEM;
	n = first_fit(p, size);
	if (!n)
		return -ENOSPC;
	*off = n->off;
	n = take_run(p, n->off);
	n->off += size;
	n->len -= size;
	if (n->len)
		insert_run(p, n);
	else
		put_spare(p, n);
	p->used += size;
	p->nextents++;
	return 0;
}

static bool chunk_written(const struct pool *p, uint64_t c)
{
	return p->written[c / 64] & (1ULL << (c % 64));
}

static void chunk_set(struct pool *p, uint64_t c, bool on)
{
	if (on)
		p->written[c / 64] |= 1ULL << (c % 64);
	else
		p->written[c / 64] &= ~(1ULL << (c % 64));
}

void pool_note_write(struct pool *p, uint64_t off, uint64_t size)
{
	for (uint64_t c = off / POOL_HUGE_BYTES;
	     c * POOL_HUGE_BYTES < off + size; c++)
		chunk_set(p, c, true);
}

/* Zero what may have been written in [off, off+size), chunk by chunk; a
 * chunk zeroed whole is clean again. */
static void zero_written(struct pool *p, uint64_t off, uint64_t size)
{
	uint64_t end = off + size;

	for (uint64_t c = off / POOL_HUGE_BYTES; c * POOL_HUGE_BYTES < end; c++) {
		uint64_t lo = c * POOL_HUGE_BYTES, hi = lo + POOL_HUGE_BYTES;

		if (!chunk_written(p, c))
			continue;
		lo = lo > off ? lo : off;
		hi = hi < end ? hi : end;
		memset(pool_at(p, lo), 0, hi - lo);
		if (hi - lo == POOL_HUGE_BYTES)
			chunk_set(p, c, false);
	}
}

/*
 * The next reader of these pages must read zeros.  On 4 KiB pages the
 * memory should also go back to the OS now rather than when the pool is
 * unmapped: DONTNEED on a private anonymous mapping gives both (and if it
 * ever failed, zeroing by hand keeps the first promise).  Hugetlb pages
 * are zeroed instead: DONTNEED would give a private hugetlb page back
 * without restoring its reservation, so a later write could die of
 * SIGBUS, and memory registered for RDMA must keep its pages anyway.
 */
void pool_drop(struct pool *p, uint64_t off, uint64_t size)
{
	if (p->kind == POOL_KIND_HUGETLB) {
		zero_written(p, off, size);
		return;
	}
	if (madvise(pool_at(p, off), size, MADV_DONTNEED) < 0) {
		dsm_warn("madvise(DONTNEED) of %llu bytes failed: %s",
			 (unsigned long long)size, strerror(errno));
		memset(pool_at(p, off), 0, size);
	}
}

void pool_zero(struct pool *p, uint64_t off, uint64_t size)
{
	memset(pool_at(p, off), 0, size);
}

/* The freed extent joins the runs it touches, or becomes a run of its
 * own in a spare node. */
void pool_free(struct pool *p, uint64_t off, uint64_t size)
{
	struct pool_run *below, *above, *n = NULL;

	pool_drop(p, off, size);
	neighbours(p, off, &below, &above);
	if (below && below->off + below->len == off) {
		n = take_run(p, below->off);
		n->len += size;
	}
	if (above && off + size == above->off) {
		struct pool_run *a = take_run(p, above->off);

		if (n) {
			n->len += a->len;
			put_spare(p, a);
		} else {
			n = a;
			n->off = off;
			n->len += size;
		}
	}
	if (!n) {
		n = get_spare(p);
		*n = (struct pool_run){ .off = off, .len = size,
					.prio = next_prio(p) };
	}
	insert_run(p, n);
	p->used -= size;
	p->nextents--;
}
