/*
 * kv_lookups.c - phase 2 of dsm-example-kvstore (room: examples): random
 * lookups and updates from several threads at once.
 *
 * Random lookups are the hard case for far memory: almost every one lands
 * on a page that is not resident, so the thread blocks in a page fault
 * while libdsm fetches it.  More threads keep more fetches in flight: while
 * one waits for its page, another runs or waits for a different page.
 *
 * Each thread updates only the keys numbered id, id + threads, ...: a
 * record has one writer, so every reader of it can predict its version.
 * Threads still share pages (32 records each) and probe through each
 * other's records.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "kvstore.h"

#define MAX_REPORTED 5 /* failures printed per thread; all are counted */

struct worker {
	struct kv_run *run;
	struct kv_progress *progress;  /* thread 0 reports for everyone */
	unsigned id;
	uint64_t ops, rng;
	struct kv_totals t;
};

static uint64_t rng_next(struct worker *w)
{
	w->rng += 0x9e3779b97f4a7c15ull;
	return kv_mix(w->rng);
}

static uint64_t rng_below(struct worker *w, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(w) * n) >> 64);
}

static void fail(struct worker *w, uint64_t i, const char *what)
{
	if (w->t.failed++ < MAX_REPORTED)
		fprintf(stderr, "kvstore: thread %u: key #%" PRIu64 " (%#"
			PRIx64 "): %s\n", w->id, i, kv_key(w->run, i), what);
}

/* A key that was never inserted must not be found. */
static void lookup_absent(struct worker *w)
{
	struct kv_run *run = w->run;
	uint64_t i = run->nkeys + rng_below(w, run->nkeys);

	if (kv_lookup(&run->table, kv_key(run, i)))
		fail(w, i, "found, but was never inserted");
	else
		w->t.misses++;
}

/* A random key among those this thread owns. */
static uint64_t own_key(struct worker *w)
{
	unsigned n = w->run->threads;
	uint64_t mine = (w->run->nkeys - w->id + n - 1) / n;

	return rng_below(w, mine) * n + w->id;
}

static void lookup_present(struct worker *w, bool update)
{
	struct kv_run *run = w->run;
	uint64_t i = own_key(w);
	struct kv_record *r = kv_lookup(&run->table, kv_key(run, i));

	if (!r) {
		fail(w, i, "inserted, but not found");
		return;
	}
	if (!kv_value_ok(r) || (uint8_t)r->version != run->versions[i]) {
		fail(w, i, "wrong value or stale version");
		return;
	}
	w->t.hits++;
	if (update) {
		kv_update(r);  /* a store: the page becomes dirty */
		run->versions[i]++;
		w->t.updates++;
	}
}

static void *worker_main(void *p)
{
	struct worker *w = p;

	for (uint64_t n = 0; n < w->ops; n++) {
		uint64_t r = rng_next(w);

		/* a quarter absent keys; a tenth of the rest are updates */
		if (r % 4 == 0)
			lookup_absent(w);
		else
			lookup_present(w, (r >> 8) % 10 == 0);
		if (w->progress)
			kv_progress(w->progress, n * w->run->threads);
	}
	return NULL;
}

static void add_totals(struct kv_totals *sum, const struct kv_totals *t)
{
	sum->hits += t->hits;
	sum->misses += t->misses;
	sum->updates += t->updates;
	sum->failed += t->failed;
}

int kv_lookups(struct kv_run *run, struct kv_totals *out)
{
	struct worker *w = calloc(run->threads, sizeof(*w));
	pthread_t *tid = calloc(run->threads, sizeof(*tid));
	struct kv_progress progress;
	unsigned started = 0;
	double t0;

	*out = (struct kv_totals){ 0 };
	if (!w || !tid)
		goto out;
	kv_progress_start(&progress, "lookups", run->lookups);
	t0 = kv_now();
	for (; started < run->threads; started++) {
		unsigned i = started;

		w[i] = (struct worker){ .run = run, .id = i,
			.ops = run->lookups / run->threads +
			       (i < run->lookups % run->threads),
			.rng = kv_mix(run->seed * 7919 + i),
			.progress = i == 0 ? &progress : NULL };
		if (pthread_create(&tid[i], NULL, worker_main, &w[i]))
			break;
	}
	for (unsigned i = 0; i < started; i++) {
		pthread_join(tid[i], NULL);
		add_totals(out, &w[i].t);
	}
	out->seconds = kv_now() - t0;
out:
	free(w);
	free(tid);
	return started == run->threads ? 0 : -1;
}
