/*
 * pool.h - the server's memory: one anonymous mapping carved into extents
 * (room: server pool).
 *
 * The pool is reserved, not committed (MAP_NORESERVE): a page costs RAM
 * only once written, so a never-written page reads as zeros and a large
 * capacity is cheap until used.  Extents are page-aligned runs handed out
 * first-fit from a sorted free list that coalesces on free.
 */
#ifndef DSM_SERVER_POOL_H
#define DSM_SERVER_POOL_H

#include <stddef.h>
#include <stdint.h>

/* A run of free pool bytes. */
struct pool_run {
	uint64_t off, len;
};

struct pool {
	uint8_t *base;
	uint64_t capacity;       /* bytes, a multiple of DSM_PAGE_SIZE */
	uint64_t used;           /* bytes in allocated extents */
	uint64_t nextents;       /* allocated extents */
	struct pool_run *runs;   /* free runs, sorted by off, never adjacent */
	size_t nruns, runs_cap;
};

/* capacity: > 0 and a multiple of DSM_PAGE_SIZE.  0 or -errno. */
int pool_init(struct pool *p, uint64_t capacity);
void pool_destroy(struct pool *p);

/* First-fit allocation of size bytes (a positive page multiple).
 * 0 with *off set, -ENOSPC (no free run that large) or -ENOMEM. */
int pool_alloc(struct pool *p, uint64_t size, uint64_t *off);

/* Return an extent from pool_alloc; its pages go back to the OS and read
 * as zeros when next allocated.  Never fails. */
void pool_free(struct pool *p, uint64_t off, uint64_t size);

/* Drop the pages of [off, off+size) inside an extent, which stays
 * allocated: their memory goes back to the OS and they read as zeros.
 * Never fails. */
void pool_drop(struct pool *p, uint64_t off, uint64_t size);

static inline uint8_t *pool_at(const struct pool *p, uint64_t off)
{
	return p->base + off;
}

static inline uint64_t pool_free_bytes(const struct pool *p)
{
	return p->capacity - p->used;
}

#endif /* DSM_SERVER_POOL_H */
