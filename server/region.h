/*
 * region.h - the server's region table: which extent of the pool belongs to
 * which connection (room: server pool).
 *
 * A region id is handed out once for the life of the server, so a stale
 * id held by a client can never name somebody else's later region.
 * Lookups are always made on behalf of an owner: a region belonging to
 * another owner is reported exactly like one that does not exist.  A
 * shared region (shared.h) has no owner: its holders are shared.c's, and
 * only shared.c finds it, through region_find and the holder's key.
 */
#ifndef DSM_SERVER_REGION_H
#define DSM_SERVER_REGION_H

#include <stddef.h>
#include <stdint.h>

struct region_owner;
struct shared;

struct region {
	uint64_t id;
	uint64_t pool_off, size;            /* the extent, in bytes */
	struct region_owner *owner;         /* NULL: shared */
	struct shared *shared;              /* shared.c's, or NULL */
	/* The session's handle on it for one-sided access (an RDMA memory
	 * region: handler.h, struct region_hooks), or NULL. */
	void *remote;
	struct region *hnext;               /* hash chain */
	struct region *onext, *oprev;       /* the owner's regions */
};

/* Embedded in whatever owns regions (a session); starts zeroed. */
struct region_owner {
	struct region *head;
	uint64_t count;
};

struct region_table {
	struct region **buckets;
	size_t nbuckets;                    /* a power of two */
	uint64_t count;
	uint64_t next_id;
};

int region_table_init(struct region_table *t);
/* Frees the table and any region left in it (not their pool extents). */
void region_table_destroy(struct region_table *t);

/* A new region with a fresh id, or NULL when out of memory.  o NULL: a
 * shared region, found only by region_find. */
struct region *region_add(struct region_table *t, struct region_owner *o,
			  uint64_t pool_off, uint64_t size);
/* The region `id` if o owns it, else NULL. */
struct region *region_lookup(const struct region_table *t,
			     const struct region_owner *o, uint64_t id);
/* The region `id` whoever holds it: for shared.c, which checks the
 * caller's key or holding itself. */
struct region *region_find(const struct region_table *t, uint64_t id);
void region_del(struct region_table *t, struct region *r);

#endif /* DSM_SERVER_REGION_H */
