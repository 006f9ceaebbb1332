/*
 * test_huge.c - regions on 2 MiB pages (DSM_ALLOC_HUGE) (room: tests).
 *
 * A 64 MiB region on huge pages under a 16 MiB budget, beside an ordinary
 * region sharing the budget: it reads as zeros, is written by four threads
 * at once, and reads back bit-exact after being evicted and fetched again
 * in random order by four threads.  A word written into each third 2 MiB
 * page just after a read made it clean must reach the servers too (the
 * WP fault makes the whole group dirty); eight threads fault on one
 * group at the same moment; dsm_sync writes a group back whole; a
 * reader's groups are read ahead, held back and used from memory, for
 * two streams interleaved, and a third stream takes the stalest's
 * place; resident pages are back to 0 once both regions are freed.
 * Eviction is FIFO here, so that streaming through the other region
 * surely evicts the huge one (checked with mincore).  The errors: an
 * unknown flag, too few free huge pages, a budget below one huge page.  It reserves the huge pages
 * it needs (root) and gives them back; without them it is skipped,
 * saying why.
 */
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client_util.h"
#include "util.h"

#define HUGE (2u << 20)
#define BUDGET (16u << 20)
#define SIZE (64u << 20)
#define WORDS (SIZE / 8)
#define NTHREADS 4

static uint64_t *far;
static _Atomic uint64_t bad;

/* The value word i holds after generation gen (0: never written). */
static uint64_t want(uint64_t i, unsigned gen)
{
	return gen ? tc_mix(i << 8 | gen) : 0;
}

struct job {
	unsigned t, gen;
	bool write;
};

/* Thread t's quarter of the region, written with generation gen, or read
 * and checked against it, 2 MiB pages in an order of its own. */
static void *worker(void *arg)
{
	const struct job *j = arg;
	uint64_t groups = SIZE / HUGE / NTHREADS, wpg = HUGE / 8;

	for (uint64_t k = 0; k < groups; k++) {
		uint64_t g = j->t * groups + (k * 7 + j->t) % groups;

		for (uint64_t i = g * wpg; i < (g + 1) * wpg; i++) {
			if (j->write)
				far[i] = want(i, j->gen);
			else if (far[i] != want(i, j->gen))
				bad++;
		}
	}
	return NULL;
}

static void run(unsigned gen, bool write)
{
	pthread_t th[NTHREADS];
	struct job job[NTHREADS];

	for (unsigned t = 0; t < NTHREADS; t++) {
		job[t] = (struct job){ t, gen, write };
		TH_CHECK(pthread_create(&th[t], NULL, worker, &job[t]) == 0);
	}
	for (unsigned t = 0; t < NTHREADS; t++)
		pthread_join(th[t], NULL);
}

/* Push the huge region out of memory: stream through an ordinary one
 * twice the budget (FIFO eviction: 2Q would keep the huge region's
 * groups, used twice, over pages streamed once), and make sure. */
static void evict_all(uint8_t *other)
{
	static unsigned char vec[SIZE / 4096];

	for (uint64_t off = 0; off < 2 * BUDGET; off += 4096)
		other[off] = (uint8_t)off | 1;
	TH_CHECK(mincore(far, SIZE, vec) == 0);
	for (uint64_t i = 0; i < SIZE / 4096; i++)
		TH_CHECK(!(vec[i] & 1));
}

/* The word the sparse write changes in group g: in its page g * 37 % 512
 * (the first page for g = 0 only). */
static uint64_t sparse(uint64_t g)
{
	return g * (HUGE / 8) + (g * 37 % 512) * 512 + 3;
}

static uint64_t word0(uint64_t g)
{
	return g * (HUGE / 8);
}

/* One thread, a pause after each group, two streams interleaved (the
 * 16 MiB budget feeds two): 0, then 1 (the first stream is seen: 2 and
 * 3 are read ahead and held back), 14, then 15 (the second: 16 and 17),
 * then 2, 16 and 3 (served from memory: prefetch_used; 4, 18 and 5 are
 * read ahead), then a jump to 24 (a third stream, in place of the
 * stalest, the second: 17 and 18, held back, are mapped), then 17
 * (mapped: no fault) and 4 (from memory, the first stream going on: 6 is
 * read ahead).  Every word read is checked.  (The last faults before,
 * on groups 5 and 9, left streams reaching 6 and 10: none of these.) */
static void read_ahead(uint8_t *other)
{
	static const uint64_t order[] = { 0, 1, 14, 15, 2, 16, 3, 24, 17, 4 };
	struct dsm_stats a, b;

	evict_all(other);
	a = tc_stats();
	for (unsigned k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		for (uint64_t i = word0(order[k]); i < word0(order[k] + 1); i++)
			if (far[i] != want(i, 1))
				bad++;
		usleep(200 * 1000);
	}
	b = tc_stats();
	th_expect("read ahead, in order and not", (long)bad, 0);
	th_expect("pages read ahead",
		  (long)(b.pages_prefetched - a.pages_prefetched), 8 * HUGE / 4096);
	th_expect("pages read ahead and used from memory",
		  (long)(b.prefetch_used - a.prefetch_used), 4 * HUGE / 4096);
	th_expect("faults reading ahead",
		  (long)(b.missing_faults - a.missing_faults), 9);
	printf("ok: read ahead: %llu pages prefetched, %llu used from "
	       "memory\n",
	       (unsigned long long)(b.pages_prefetched - a.pages_prefetched),
	       (unsigned long long)(b.prefetch_used - a.prefetch_used));
}

static pthread_barrier_t bar;

static void *same_group(void *arg)
{
	volatile uint64_t *w = arg;

	pthread_barrier_wait(&bar);
	return (void *)(uintptr_t)(*w);
}

int main(void)
{
	struct th_server srv;
	uint64_t need = BUDGET / HUGE, written_before;
	struct dsm_stats s0, s1;
	uint8_t *other;
	const char *why;
	void *p;

	if (th_nr_huge() < 0) {
		printf("SKIP: no vm.nr_hugepages\n");
		return 77;
	}
	setenv("DSM_EVICT", "fifo", 1);
	tc_start(&srv, "256M", BUDGET, 0);

	errno = 0;
	th_expect("an unknown flag", dsm_alloc_flags(HUGE, 0x2) == NULL ?
		  errno : 0, EINVAL);
	if (dsm_huge_pages_free() < need) {
		errno = 0;
		p = dsm_alloc_flags(SIZE, DSM_ALLOC_HUGE);
		th_expect("too few free huge pages", p ? 0 : errno, ENOMEM);
		printf("ok: refused with %llu free huge pages\n",
		       (unsigned long long)dsm_huge_pages_free());
	} else {
		printf("(not checked: %llu huge pages free already)\n",
		       (unsigned long long)dsm_huge_pages_free());
	}
	why = th_reserve_huge(need + 4);
	if (why) {
		printf("SKIP: cannot reserve %llu huge pages: %s\n",
		       (unsigned long long)need + 4, why);
		return 77;
	}

	far = dsm_alloc_flags(SIZE - 100, DSM_ALLOC_HUGE);
	TH_CHECK(far);
	TH_CHECK((uintptr_t)far % HUGE == 0);
	other = dsm_alloc(2 * BUDGET);
	TH_CHECK(other);

	s0 = tc_stats();
	run(0, false);
	s1 = tc_stats();
	th_expect("reads as zeros", (long)bad, 0);
	TH_CHECK(s1.pages_zero_filled - s0.pages_zero_filled >= SIZE / 4096);
	printf("ok: zeros, %llu pages zero-filled\n",
	       (unsigned long long)(s1.pages_zero_filled - s0.pages_zero_filled));

	run(1, true);
	run(1, false);
	evict_all(other);
	run(1, false);
	s0 = tc_stats();
	th_expect("written by 4 threads, read back after eviction", (long)bad, 0);
	TH_CHECK(s0.pages_written_back - s1.pages_written_back >=
		 (SIZE - BUDGET) / 4096);
	TH_CHECK(s0.pages_fetched - s1.pages_fetched >= (SIZE - BUDGET) / 4096);
	printf("ok: written and read back, %llu pages written back, %llu "
	       "fetched\n",
	       (unsigned long long)(s0.pages_written_back - s1.pages_written_back),
	       (unsigned long long)(s0.pages_fetched - s1.pages_fetched));

	/* One word per third group changes, each in a different 4 KiB page
	 * of its group, just after a read made the group resident and clean
	 * (so the write takes a WP fault); the groups go, and they must come
	 * back with it. */
	evict_all(other);
	s1 = tc_stats();
	for (uint64_t g = 0; g < SIZE / HUGE; g += 3) {
		if (far[g * (HUGE / 8)] != want(g * (HUGE / 8), 1))
			bad++;
		far[sparse(g)] = ~want(sparse(g), 1);
	}
	s0 = tc_stats();
	th_expect("WP faults of the sparse writes", (long)(s0.wp_faults -
		  s1.wp_faults), (SIZE / HUGE + 2) / 3);
	evict_all(other);
	for (uint64_t i = 0; i < WORDS; i++) {
		uint64_t g = i / (HUGE / 8);
		bool changed = g % 3 == 0 && i == sparse(g);

		if (far[i] != (changed ? ~want(i, 1) : want(i, 1)))
			bad++;
	}
	th_expect("a word written into clean groups survives eviction",
		  (long)bad, 0);
	printf("ok: sparse writes into clean groups\n");
	for (uint64_t g = 0; g < SIZE / HUGE; g += 3)
		far[sparse(g)] = want(sparse(g), 1);

	/* eight threads on one group nobody holds */
	evict_all(other);
	pthread_barrier_init(&bar, NULL, 8);
	{
		pthread_t th[8];
		uint64_t w = 5 * (HUGE / 8) + 77;

		for (int t = 0; t < 8; t++)
			TH_CHECK(pthread_create(&th[t], NULL, same_group,
						&far[w]) == 0);
		for (int t = 0; t < 8; t++) {
			void *got;

			pthread_join(th[t], &got);
			if ((uint64_t)(uintptr_t)got != want(w, 1))
				bad++;
		}
	}
	th_expect("eight threads faulting on one group", (long)bad, 0);

	/* dsm_sync: the group a written word is in goes back whole */
	far[9 * (HUGE / 8)] = 42;
	written_before = tc_stats().pages_written_back;
	th_expect("dsm_sync", dsm_sync(&far[9 * (HUGE / 8)], 8), 0);
	th_expect("pages dsm_sync wrote back",
		  (long)(tc_stats().pages_written_back - written_before),
		  HUGE / 4096);
	far[9 * (HUGE / 8)] = want(9 * (HUGE / 8), 1);

	read_ahead(other);

	evict_all(other);
	run(1, false);
	th_expect("everything once more", (long)bad, 0);
	dsm_free(far);
	dsm_free(other);
	th_expect("resident pages once both regions are freed",
		  (long)tc_stats().resident_pages, 0);
	dsm_shutdown();

	/* a budget below one huge page: refused, nothing allocated */
	{
		struct dsm_options o = { .servers = srv.addr,
					 .local_mem = HUGE / 2 };

		TH_CHECK(dsm_init(&o) == 0);
		errno = 0;
		p = dsm_alloc_flags(HUGE, DSM_ALLOC_HUGE);
		th_expect("a budget below 2 MiB", p ? 0 : errno, EINVAL);
		dsm_shutdown();
	}
	th_server_stop(&srv);
	printf("all huge-page region checks passed\n");
	return 0;
}
