/*
 * track.c - see track.h (room: benchmarks).  Linear probing at a load
 * factor of at most 1/2: lookups stay at one or two cache lines, so the
 * tracking costs little next to the access being measured.
 */
#include "track.h"

#include <errno.h>
#include <stdlib.h>

#include "bench_util.h"

int track_init(struct track *t, uint64_t max_entries)
{
	uint64_t cap = 16;

	while (cap < 2 * max_entries)
		cap <<= 1;
	t->keys = calloc(cap, sizeof(*t->keys));
	t->vals = calloc(cap, sizeof(*t->vals));
	t->mask = cap - 1;
	if (!t->keys || !t->vals) {
		track_free(t);
		return -ENOMEM;
	}
	return 0;
}

void track_free(struct track *t)
{
	free(t->keys);
	free(t->vals);
	t->keys = t->vals = NULL;
}

/* The slot holding idx, or the free slot where it would go. */
static uint64_t slot_of(const struct track *t, uint64_t idx)
{
	uint64_t i = bench_mix64(idx) & t->mask;

	while (t->keys[i] && t->keys[i] != idx + 1)
		i = (i + 1) & t->mask;
	return i;
}

bool track_get(const struct track *t, uint64_t idx, uint64_t *val)
{
	uint64_t i = slot_of(t, idx);

	if (!t->keys[i])
		return false;
	*val = t->vals[i];
	return true;
}

/* The caller sized the map for every put it makes (track_init), so a free
 * slot always exists. */
void track_put(struct track *t, uint64_t idx, uint64_t val)
{
	uint64_t i = slot_of(t, idx);

	t->keys[i] = idx + 1;
	t->vals[i] = val;
}

int track_each(const struct track *t,
	       int (*fn)(void *arg, uint64_t idx, uint64_t val), void *arg)
{
	for (uint64_t i = 0; i <= t->mask; i++) {
		int rc;

		if (!t->keys[i])
			continue;
		rc = fn(arg, t->keys[i] - 1, t->vals[i]);
		if (rc)
			return rc;
	}
	return 0;
}
