/*
 * patterns.c - see patterns.h (room: benchmarks).
 */
#include "patterns.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define MAX_REPORTED 5 /* mismatches printed per thread; all are counted */

static const char *const names[] = { "seq", "uniform", "zipf", "rmw" };

int pattern_parse(const char *s, enum pattern *p)
{
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(s, names[i])) {
			*p = i;
			return 0;
		}
	}
	return -1;
}

const char *pattern_name(enum pattern p)
{
	return names[p];
}

__attribute__((cold, noinline))
static void mismatch(struct worker *k, uint64_t idx, uint64_t got,
		     uint64_t want)
{
	if (k->mismatches++ < MAX_REPORTED)
		fprintf(stderr, "dsm-bench-workload: thread %u: word %" PRIu64
			" (page %" PRIu64 ") reads %#" PRIx64 ", expected %#"
			PRIx64 "\n", k->id, idx, idx / BENCH_WORDS_PER_PAGE,
			got, want);
}

static inline void check(struct worker *k, uint64_t idx, uint64_t want)
{
	uint64_t v = k->wl->words[idx];

	if (v != want)
		mismatch(k, idx, v, want);
	k->checksum += v;
}

/* Thread k's contiguous share of [0, n). */
static void slice(const struct worker *k, uint64_t n, uint64_t *lo,
		  uint64_t *hi)
{
	*lo = n * k->id / k->wl->threads;
	*hi = n * (k->id + 1) / k->wl->threads;
}

void wl_fill(struct worker *k)
{
	const struct wl *w = k->wl;
	uint64_t lo, hi;

	slice(k, w->nwords, &lo, &hi);
	for (uint64_t i = lo; i < hi; i++)
		w->words[i] = wl_fill_value(w, i);
}

static void run_seq(struct worker *k)
{
	uint64_t lo, hi;

	slice(k, k->wl->nwords, &lo, &hi);
	for (uint64_t i = lo; i < hi; i++)
		check(k, i, wl_fill_value(k->wl, i));
}

/* Page first, then a word in it: every page is equally likely whatever
 * the buffer size, which is what a pager sees. */
static inline uint64_t pick_in_page(struct worker *k, uint64_t page)
{
	return page * BENCH_WORDS_PER_PAGE +
	       bench_rng_below(&k->rng, BENCH_WORDS_PER_PAGE);
}

static void run_uniform(struct worker *k)
{
	const struct wl *w = k->wl;

	for (uint64_t n = 0; n < k->ops; n++) {
		uint64_t idx = pick_in_page(k, bench_rng_below(&k->rng, w->npages));

		check(k, idx, wl_fill_value(w, idx));
	}
}

static void run_zipf(struct worker *k)
{
	const struct wl *w = k->wl;

	for (uint64_t n = 0; n < k->ops; n++) {
		uint64_t rank = zipf_next(&w->zipf, &k->rng);
		uint64_t idx = pick_in_page(k, w->page_of_rank[rank - 1]);

		check(k, idx, wl_fill_value(w, idx));
	}
}

/* A uniform page, then a word of this thread's own (index = id mod
 * threads within the page): threads share pages, as they would in a real
 * program, but never a word, so each can predict every value it reads. */
static inline uint64_t pick_own_word(struct worker *k)
{
	unsigned t = k->wl->threads;
	uint64_t page = bench_rng_below(&k->rng, k->wl->npages);
	uint64_t mine = (BENCH_WORDS_PER_PAGE - k->id + t - 1) / t;

	return page * BENCH_WORDS_PER_PAGE +
	       bench_rng_below(&k->rng, mine) * t + k->id;
}

static void run_rmw(struct worker *k)
{
	const struct wl *w = k->wl;

	for (uint64_t n = 0; n < k->ops; n++) {
		uint64_t idx = pick_own_word(k), want, v;

		if (!track_get(&k->track, idx, &want))
			want = wl_fill_value(w, idx);
		v = w->words[idx];
		if (v != want)
			mismatch(k, idx, v, want);
		v = bench_mix64(v);
		w->words[idx] = v;
		track_put(&k->track, idx, v);
	}
}

void wl_run(struct worker *k)
{
	switch (k->wl->pattern) {
	case PAT_SEQ: run_seq(k); break;
	case PAT_UNIFORM: run_uniform(k); break;
	case PAT_ZIPF: run_zipf(k); break;
	case PAT_RMW: run_rmw(k); break;
	}
}

static int verify_one(void *arg, uint64_t idx, uint64_t val)
{
	check(arg, idx, val);
	return 0;
}

void wl_verify_rmw(struct worker *k)
{
	track_each(&k->track, verify_one, k);
}
