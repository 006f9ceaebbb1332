/*
 * track.h - what a read-modify-write benchmark thread has written (room:
 * benchmarks).
 *
 * Every word starts as the fill value; the rmw pattern replaces some.  To
 * verify each read before its write, a thread must know a modified word's
 * current value: this open-addressing map (word index -> value) holds it.
 * One map per thread and disjoint words per thread, so no locks.
 */
#ifndef DSM_BENCH_TRACK_H
#define DSM_BENCH_TRACK_H

#include <stdbool.h>
#include <stdint.h>

struct track {
	uint64_t *keys;  /* word index + 1; 0 marks a free slot */
	uint64_t *vals;
	uint64_t mask;   /* capacity - 1, a power of two */
};

/* Room for at least max_entries words.  0 or -ENOMEM. */
int track_init(struct track *t, uint64_t max_entries);
void track_free(struct track *t);

/* The value recorded for word idx; false if it was never written. */
bool track_get(const struct track *t, uint64_t idx, uint64_t *val);
void track_put(struct track *t, uint64_t idx, uint64_t val);

/* Call fn for every recorded word; stops at and returns the first
 * non-zero result of fn. */
int track_each(const struct track *t,
	       int (*fn)(void *arg, uint64_t idx, uint64_t val), void *arg);

#endif
