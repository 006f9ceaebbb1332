/*
 * pool.c - see pool.h (room: server pool).
 *
 * The free list is a sorted array rather than a tree: a server holds at
 * most a few thousand regions, and a memmove over that many runs costs
 * less than the READ that follows.
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

#define POOL_RUNS_MIN 16

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#define MAP_HUGE_2MB_FLAGS (MAP_HUGETLB | (21 << MAP_HUGE_SHIFT))
#define HUGE_FREE_FILE "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"

const char *pool_kind_name(enum pool_kind k)
{
	return k == POOL_KIND_HUGETLB ? "hugetlb 2 MiB" : "4 KiB";
}

/* Free 2 MiB huge pages the system has reserved, or 0. */
static uint64_t huge_pages_free(void)
{
	FILE *f = fopen(HUGE_FREE_FILE, "r");
	unsigned long long n = 0;

	if (f) {
		if (fscanf(f, "%llu", &n) != 1)
			n = 0;
		fclose(f);
	}
	return n;
}

/*
 * Hugetlb pages are taken from the reserve when the mapping is made (no
 * MAP_NORESERVE): with too few reserved, mmap fails here and now instead
 * of the server dying of SIGBUS on some later write.
 */
static int map_huge(struct pool *p, uint64_t need, char *why, size_t whylen)
{
	void *b = mmap(NULL, p->mapped, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGE_2MB_FLAGS, -1, 0);

	if (b == MAP_FAILED) {
		int err = -errno;

		snprintf(why, whylen, "on hugetlb pages: %llu of 2 MiB "
			 "needed, %llu free (%s; reserve more with sysctl "
			 "vm.nr_hugepages, or use --hugepages auto)",
			 (unsigned long long)need,
			 (unsigned long long)huge_pages_free(), strerror(-err));
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
	if (huge_pages_free() >= need) {
		err = map_huge(p, need, tried, sizeof(tried));
		if (!err) {
			snprintf(why, whylen, "%s", tried);
			return 0;
		}
	} else {
		snprintf(tried, sizeof(tried), "%llu hugetlb pages needed, "
			 "%llu reserved and free",
			 (unsigned long long)need,
			 (unsigned long long)huge_pages_free());
	}
	return map_small(p, true, tried, why, whylen);
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
	p->runs = malloc(POOL_RUNS_MIN * sizeof(*p->runs));
	p->written = calloc((chunks + 63) / 64, sizeof(uint64_t));
	if (!p->runs || !p->written)
		goto out;
	err = map_pool(p, pages, why, whylen);
	if (err)
		goto out;
	p->capacity = capacity;
	p->runs_cap = POOL_RUNS_MIN;
	p->runs[0] = (struct pool_run){ .off = 0, .len = capacity };
	p->nruns = 1;
	return 0;
out:
	free(p->runs);
	free(p->written);
	p->runs = NULL;
	p->written = NULL;
	return err;
}

void pool_destroy(struct pool *p)
{
	if (p->base)
		munmap(p->base, p->mapped);
	free(p->runs);
	free(p->written);
	memset(p, 0, sizeof(*p));
}

/*
 * Every allocated extent can add at most one free run when it is freed,
 * so there are never more than nextents + 1 runs.  Growing the array here,
 * where failing is allowed, means pool_free never has to allocate.
 */
static int reserve_runs(struct pool *p, size_t want)
{
	struct pool_run *r;
	size_t cap = p->runs_cap;

	if (want <= cap)
		return 0;
	while (cap < want)
		cap *= 2;
	r = realloc(p->runs, cap * sizeof(*r));
	if (!r)
		return -ENOMEM;
	p->runs = r;
	p->runs_cap = cap;
	return 0;
}

static void remove_run(struct pool *p, size_t i)
{
	memmove(&p->runs[i], &p->runs[i + 1],
		(p->nruns - i - 1) * sizeof(p->runs[0]));
	p->nruns--;
}

int pool_alloc(struct pool *p, uint64_t size, uint64_t *off)
{
	size_t i;

	if (size == 0 || size % DSM_PAGE_SIZE)
		return -EINVAL;
	if (reserve_runs(p, p->nextents + 2) < 0)
		return -ENOMEM;
	for (i = 0; i < p->nruns; i++)
		if (p->runs[i].len >= size)
			break;
	if (i == p->nruns)
		return -ENOSPC;

	*off = p->runs[i].off;
	p->runs[i].off += size;
	p->runs[i].len -= size;
	if (p->runs[i].len == 0)
		remove_run(p, i);
	p->used += size;
	p->nextents++;
	return 0;
}

/* Index of the first run that starts after off. */
static size_t run_after(const struct pool *p, uint64_t off)
{
	size_t lo = 0, hi = p->nruns;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->runs[mid].off > off)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static void insert_run(struct pool *p, size_t i, uint64_t off, uint64_t len)
{
	memmove(&p->runs[i + 1], &p->runs[i],
		(p->nruns - i) * sizeof(p->runs[0]));
	p->runs[i] = (struct pool_run){ .off = off, .len = len };
	p->nruns++;
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

void pool_free(struct pool *p, uint64_t off, uint64_t size)
{
	size_t i = run_after(p, off);
	int join_prev = i > 0 && p->runs[i - 1].off + p->runs[i - 1].len == off;
	int join_next = i < p->nruns && off + size == p->runs[i].off;

	pool_drop(p, off, size);

	if (join_prev && join_next) {
		p->runs[i - 1].len += size + p->runs[i].len;
		remove_run(p, i);
	} else if (join_prev) {
		p->runs[i - 1].len += size;
	} else if (join_next) {
		p->runs[i].off = off;
		p->runs[i].len += size;
	} else {
		insert_run(p, i, off, size);
	}
	p->used -= size;
	p->nextents--;
}
