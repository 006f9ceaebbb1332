/*
 * test_same_page.c - many threads fault on the same pages at the same
 * moment (room: tests): first all reading a page the server holds, then all
 * writing their own word of a page that is write-protected.  Between rounds
 * the page is pushed out of local memory, so every round faults again.
 */
#include <pthread.h>

#include "client_util.h"

#define NTHREADS 16
#define BUDGET (1u << 20)
#define PAGES 64
#define ROUNDS 16
#define SPAN (16 * BUDGET) /* touched to evict between rounds */

static uint64_t *far;
static pthread_barrier_t bar;
static _Atomic uint64_t bad;

/* word t of each page belongs to thread t */
static uint64_t want(int round, int page, int t)
{
	return round < 0 ? 0 : tc_mix((uint64_t)round << 32 | page << 8 | t);
}

static void *worker(void *arg)
{
	int t = (intptr_t)arg;

	for (int round = 0; round < ROUNDS; round++) {
		for (int pg = 0; pg < PAGES; pg++) {
			volatile uint64_t *w = &far[pg * 512];

			pthread_barrier_wait(&bar);
			if (w[t] != want(round - 1, pg, t))
				bad++;
			pthread_barrier_wait(&bar);
			w[t] = want(round, pg, t);
		}
		pthread_barrier_wait(&bar);
		if (t == 0) /* evict: stream through memory beyond the budget */
			for (uint64_t off = PAGES * 4096; off < SPAN; off += 4096)
				far[off / 8] = off;
		pthread_barrier_wait(&bar);
	}
	return NULL;
}

int main(void)
{
	struct th_server srv;
	pthread_t th[NTHREADS];
	struct dsm_stats s;

	tc_start(&srv, "256M", BUDGET, 1);
	far = dsm_alloc(SPAN);
	TH_CHECK(far);
	pthread_barrier_init(&bar, NULL, NTHREADS);
	for (intptr_t t = 0; t < NTHREADS; t++)
		TH_CHECK(pthread_create(&th[t], NULL, worker, (void *)t) == 0);
	for (int t = 0; t < NTHREADS; t++)
		pthread_join(th[t], NULL);
	s = tc_stats();
	printf("bad %lu missing %lu wp %lu fetched %lu evicted %lu\n",
	       (unsigned long)bad, (unsigned long)s.missing_faults,
	       (unsigned long)s.wp_faults, (unsigned long)s.pages_fetched,
	       (unsigned long)s.pages_evicted);
	TH_CHECK(bad == 0);
	/* every round re-fetched the shared pages from the server */
	TH_CHECK(s.pages_fetched >= (uint64_t)PAGES * (ROUNDS - 1));
	for (int pg = 0; pg < PAGES; pg++)
		for (int t = 0; t < NTHREADS; t++)
			TH_CHECK(far[pg * 512 + t] == want(ROUNDS - 1, pg, t));
	dsm_free(far);
	TH_CHECK(tc_stats().resident_pages == 0); /* accounting is exact */
	dsm_shutdown();
	th_server_stop(&srv);
	printf("same_page: ok\n");
	return 0;
}
