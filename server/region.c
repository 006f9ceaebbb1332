/*
 * region.c - see region.h (room: server pool).
 *
 * A chained hash keyed by id.  Ids are sequential, so a multiplicative
 * hash spreads them evenly; the table doubles when it averages more than
 * one region per bucket.
 */
#include "region.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define REGION_BUCKETS_MIN 64

static size_t bucket_of(uint64_t id, size_t nbuckets)
{
	/* Fibonacci hashing: the top bits of id * 2^64/phi. */
	return (size_t)((id * 0x9e3779b97f4a7c15ULL) >> 32) & (nbuckets - 1);
}

int region_table_init(struct region_table *t)
{
	memset(t, 0, sizeof(*t));
	t->buckets = calloc(REGION_BUCKETS_MIN, sizeof(*t->buckets));
	if (!t->buckets)
		return -ENOMEM;
	t->nbuckets = REGION_BUCKETS_MIN;
	t->next_id = 1;
	return 0;
}

void region_table_destroy(struct region_table *t)
{
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct region *r = t->buckets[b], *next;

		for (; r; r = next) {
			next = r->hnext;
			free(r);
		}
	}
	free(t->buckets);
	memset(t, 0, sizeof(*t));
}

/* Growing is an optimisation: if it fails the chains just get longer. */
static void maybe_grow(struct region_table *t)
{
	size_t n = t->nbuckets * 2;
	struct region **nb;

	if (t->count <= t->nbuckets)
		return;
	nb = calloc(n, sizeof(*nb));
	if (!nb)
		return;
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct region *r = t->buckets[b], *next;

		for (; r; r = next) {
			size_t nbk = bucket_of(r->id, n);

			next = r->hnext;
			r->hnext = nb[nbk];
			nb[nbk] = r;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->nbuckets = n;
}

struct region *region_add(struct region_table *t, struct region_owner *o,
			  uint64_t pool_off, uint64_t size)
{
	struct region *r = calloc(1, sizeof(*r));
	size_t b;

	if (!r)
		return NULL;
	r->id = t->next_id++;
	r->pool_off = pool_off;
	r->size = size;
	r->owner = o;

	b = bucket_of(r->id, t->nbuckets);
	r->hnext = t->buckets[b];
	t->buckets[b] = r;
	t->count++;

	if (o) {
		r->onext = o->head;
		if (o->head)
			o->head->oprev = r;
		o->head = r;
		o->count++;
	}
	maybe_grow(t);
	return r;
}

struct region *region_lookup(const struct region_table *t,
			     const struct region_owner *o, uint64_t id)
{
	struct region *r = t->buckets[bucket_of(id, t->nbuckets)];

	for (; r; r = r->hnext)
		if (r->id == id)
			return r->owner == o ? r : NULL;
	return NULL;
}

struct region *region_find(const struct region_table *t, uint64_t id)
{
	struct region *r = t->buckets[bucket_of(id, t->nbuckets)];

	while (r && r->id != id)
		r = r->hnext;
	return r;
}

void region_del(struct region_table *t, struct region *r)
{
	struct region **pp = &t->buckets[bucket_of(r->id, t->nbuckets)];
	struct region_owner *o = r->owner;

	while (*pp != r)
		pp = &(*pp)->hnext;
	*pp = r->hnext;
	t->count--;
	if (!o) {
		free(r);
		return;
	}
	if (r->oprev)
		r->oprev->onext = r->onext;
	else
		o->head = r->onext;
	if (r->onext)
		r->onext->oprev = r->oprev;
	o->count--;
	free(r);
}
