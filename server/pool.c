/*
 * pool.c - see pool.h (room: server pool).
 *
 * The free list is a sorted array rather than a tree: a server holds at
 * most a few thousand regions, and a memmove over that many runs costs
 * less than the READ that follows.
 */
#include "pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "proto.h"

#define POOL_RUNS_MIN 16

int pool_init(struct pool *p, uint64_t capacity)
{
	int err = -EINVAL;

	memset(p, 0, sizeof(*p));
	if (capacity == 0 || capacity % DSM_PAGE_SIZE || capacity > SIZE_MAX)
		goto out;
	err = -ENOMEM;
	p->runs = malloc(POOL_RUNS_MIN * sizeof(*p->runs));
	if (!p->runs)
		goto out;
	p->base = mmap(NULL, capacity, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p->base == MAP_FAILED) {
		err = -errno;
		p->base = NULL;
		goto out;
	}
	p->capacity = capacity;
	p->runs_cap = POOL_RUNS_MIN;
	p->runs[0] = (struct pool_run){ .off = 0, .len = capacity };
	p->nruns = 1;
	return 0;
out:
	free(p->runs);
	p->runs = NULL;
	return err;
}

void pool_destroy(struct pool *p)
{
	if (p->base)
		munmap(p->base, p->capacity);
	free(p->runs);
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

void pool_drop(struct pool *p, uint64_t off, uint64_t size)
{
	/* The next reader of these pages must read zeros, and the memory
	 * should go back to the OS now rather than when the pool is unmapped.
	 * DONTNEED on a private anonymous mapping gives both; if it ever
	 * failed, zeroing by hand keeps the first promise. */
	if (madvise(pool_at(p, off), size, MADV_DONTNEED) < 0) {
		dsm_warn("madvise(DONTNEED) of %llu bytes failed: %s",
			 (unsigned long long)size, strerror(errno));
		memset(pool_at(p, off), 0, size);
	}
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
