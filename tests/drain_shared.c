/*
 * drain_shared.c - one of the processes of tests/test_drain_shared.sh
 * (room: tests): maps the shared region NAME with a local budget smaller
 * than it, prints "mapped", then for SECONDS keeps three kinds of writes
 * going while the region's home is drained under it:
 *   - a counter incremented under dsm_lock (word 8 of page 0, the lock
 *     at word 0),
 *   - a counter incremented by dsm_fetch_add (page 1),
 *   - its own 64 pages, word i % their words set to i + 1 at step i,
 *   - and how many steps it did, in its own slot (page 2, word ID).
 * Then all WORKERS meet at a barrier and each checks that both counters
 * equal the sum of the slots (no increment lost or seen twice) and that
 * its own pages hold what it last wrote.  Prints "ok STEPS" and exits 0,
 * or says what differs and exits 1.
 *   drain_shared NAME WORKERS ID SECONDS
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "dsm.h"

#define WORDS_PER_PAGE (4096 / 8)
#define OWN_PAGES 64
#define OWN_WORDS (OWN_PAGES * WORDS_PER_PAGE)
#define REGION_BYTES (2u << 20)  /* 512 pages: more than one batch */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fail(const char *what, uint64_t got, uint64_t want)
{
	printf("FAIL %s: %llu, want %llu\n", what, (unsigned long long)got,
	       (unsigned long long)want);
	return 1;
}

/* Steps until `seconds` have passed; 0 or a dsm error. */
static int work(volatile uint64_t *w, volatile uint64_t *own, unsigned id,
		double seconds, uint64_t *steps)
{
	double end = now() + seconds;
	uint64_t i = 0;
	int err;

	while (now() < end) {
		err = dsm_lock((void *)&w[0]);
		if (err)
			return err;
		w[8] = w[8] + 1;
		err = dsm_unlock((void *)&w[0]);
		if (err)
			return err;
		dsm_fetch_add((uint64_t *)&w[WORDS_PER_PAGE], 1);
		own[i % OWN_WORDS] = i + 1;
		w[2 * WORDS_PER_PAGE + id] = ++i;
	}
	*steps = i;
	return 0;
}

static int check(volatile uint64_t *w, volatile uint64_t *own,
		 unsigned workers, uint64_t steps)
{
	uint64_t sum = 0;

	for (unsigned k = 0; k < workers; k++)
		sum += w[2 * WORDS_PER_PAGE + k];
	if (w[8] != sum)
		return fail("the counter under dsm_lock", w[8], sum);
	if (w[WORDS_PER_PAGE] != sum)
		return fail("the dsm_fetch_add counter", w[WORDS_PER_PAGE], sum);
	for (uint64_t j = 0; j < OWN_WORDS && j < steps; j++) {
		/* the last step i < steps with i % OWN_WORDS == j */
		uint64_t last = j + (steps - 1 - j) / OWN_WORDS * OWN_WORDS;

		if (own[j] != last + 1)
			return fail("a word of its own pages", own[j], last + 1);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct dsm_options o = { .local_mem = 1 << 20 };
	volatile uint64_t *w, *own;
	unsigned workers, id;
	uint64_t steps = 0;
	char end[300];
	int err;

	if (argc != 5) {
		fprintf(stderr, "usage: drain_shared NAME WORKERS ID SECONDS\n");
		return 2;
	}
	workers = (unsigned)atoi(argv[2]);
	id = (unsigned)atoi(argv[3]);
	if (!workers || workers > 4 || id >= workers)
		return 2;
	err = dsm_init(&o);
	if (err) {
		fprintf(stderr, "drain_shared: dsm_init: %s\n", dsm_strerror(err));
		return 1;
	}
	w = dsm_map_shared(argv[1], REGION_BYTES, 0);
	if (!w) {
		perror("drain_shared: dsm_map_shared");
		return 1;
	}
	own = w + (16 + (size_t)id * OWN_PAGES) * WORDS_PER_PAGE;
	printf("mapped\n");
	fflush(stdout);
	err = work(w, own, id, atof(argv[4]), &steps);
	snprintf(end, sizeof(end), "%s end", argv[1]);
	if (!err)
		err = dsm_barrier(end, (int)workers);
	if (err) {
		printf("FAIL: %s after %llu steps\n", dsm_strerror(err),
		       (unsigned long long)steps);
		return 1;
	}
	if (check(w, own, workers, steps))
		return 1;
	/* the others check too before anyone lets go */
	err = dsm_barrier(end, (int)workers);
	printf("ok %llu\n", (unsigned long long)steps);
	dsm_unmap_shared((void *)w);
	dsm_shutdown();
	return err ? 1 : 0;
}
