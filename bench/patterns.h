/*
 * patterns.h - the access patterns of dsm-bench-workload (room:
 * benchmarks).
 *
 * The buffer is an array of 8-byte words; word i holds wl_fill_value(i) after
 * the fill phase (rmw changes some later, see track.h).  Every pattern
 * checks each value it reads, so a pager that returns wrong data fails the
 * benchmark instead of producing a fast, meaningless number.
 */
#ifndef DSM_BENCH_PATTERNS_H
#define DSM_BENCH_PATTERNS_H

#include <stdint.h>

#include "bench_util.h"
#include "track.h"
#include "zipf.h"

enum pattern { PAT_SEQ, PAT_UNIFORM, PAT_ZIPF, PAT_RMW };

/* Shared by all threads; read-only while they run. */
struct wl {
	uint64_t *words;
	uint64_t nwords, npages;
	uint64_t seed;
	enum pattern pattern;
	unsigned threads;
	struct zipf zipf;
	uint32_t *page_of_rank;  /* zipf: rank - 1 -> page (fixed shuffle) */
};

/* One per thread. */
struct worker {
	const struct wl *wl;
	unsigned id;
	uint64_t ops;            /* this thread's share of the random ops */
	uint64_t checksum;       /* sum of what was read */
	uint64_t mismatches;
	struct bench_rng rng;
	struct track track;      /* rmw: words this thread modified */
};

static inline uint64_t wl_fill_value(const struct wl *w, uint64_t idx)
{
	return bench_mix64(idx ^ w->seed);
}

int pattern_parse(const char *s, enum pattern *p);
const char *pattern_name(enum pattern p);

/* Phase 1: write this thread's slice of the buffer. */
void wl_fill(struct worker *k);
/* Phase 2, the timed one: the pattern of k->wl. */
void wl_run(struct worker *k);
/* After phase 2 of rmw: re-read every word this thread modified. */
void wl_verify_rmw(struct worker *k);

#endif
