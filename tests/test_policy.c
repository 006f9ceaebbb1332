/*
 * test_policy.c - the victim policy and sequential prefetch, judged by
 * fault counts (deterministic for a single thread), never by time (room:
 * tests).
 *
 * Policy: a hot set of HOT pages is read round-robin while a one-touch
 * scan streams through cold pages, two cold pages per hot access.  FIFO
 * evicts each hot page before its next use (1800 insertions apart, budget
 * 1024), so every hot read faults.  2Q sees hot pages refault soon after
 * eviction, protects them, and lets the scan pass through probation.
 * A hot set of BIG_HOT pages is more than the three quarters of the
 * budget PROTECTED starts with: read round-robin with one cold page per
 * four hot ones, its pages refault soon after leaving PROTECTED, which
 * shrinks probation's share until the hot set fits.
 * When the hot set is written and the scan comes back soon too, refault
 * distance protects both: second chances by write protection (2q-wp) keep
 * the written pages (run_written).
 *
 * A victim takes the old pages of PROBATION in its 2 MiB with it, and
 * no young ones (test_evict_window).
 *
 * Prefetch: scans served in windows, going up and down, pages skipped and
 * come back to, the zero-fill block, and fetch-around sized by its
 * sentinels.  A scan's pages, coming round again, do not push out a hot
 * set read at random.  Write prediction: turned on by pages written after
 * their fetch, off by pages left unwritten, and a stream's own for a scan
 * that writes.
 */
#include <sys/mman.h>

#include "client_util.h"

#define BUDGET (4u << 20)          /* 1024 pages */
#define REGION (64u << 20)         /* 16384 pages */
#define HOT 600
#define STEPS 6000

#define BIG_HOT 900               /* 88% of the budget */

/* Read a hot set of `hot` pages round-robin, STEPS reads, and `cold`
 * one-touch pages after every `every` of them: the missing faults. */
static uint64_t run_pattern(const char *srv_addr, const char *policy,
			    uint64_t hot, unsigned every, unsigned cold)
{
	struct dsm_options o = { .servers = srv_addr, .local_mem = BUDGET,
				 .prefetch_max = 1, .evict_policy = policy };
	volatile uint64_t *far;
	struct dsm_stats before, after;
	uint64_t next = hot, sum = 0;

	TH_CHECK(dsm_init(&o) == 0);
	far = dsm_alloc(REGION);
	TH_CHECK(far);
	for (uint64_t pg = 0; pg < REGION / 4096; pg++)
		far[pg * 512] = tc_mix(pg); /* everything on the server */
	before = tc_stats();
	for (uint64_t step = 0; step < STEPS; step++) {
		uint64_t h = step % hot;

		TH_CHECK(far[h * 512] == tc_mix(h));
		if (step % every == every - 1)
			for (unsigned k = 0; k < cold; k++)
				sum += far[next++ * 512];
	}
	after = tc_stats();
	TH_CHECK(sum != 0);
	dsm_free((void *)far);
	dsm_shutdown();
	printf("%s, hot set of %lu pages: %lu missing faults over %d steps\n",
	       policy, (unsigned long)hot,
	       (unsigned long)(after.missing_faults - before.missing_faults),
	       STEPS);
	return after.missing_faults - before.missing_faults;
}

/*
 * Second chances by write protection: a hot set larger than probation
 * (WHOT pages) is written round-robin while WCOLD other pages are read in
 * a cycle, one per write.  Both come back within a budget's worth of
 * evictions, so refault distance promotes both, and PROTECTED, first in
 * first out, evicts hot pages as readily as cold ones (2q).  With second
 * chances (2q-wp), a written hot page reaching the head of the queue is
 * write-protected instead, written again before it comes round, and kept.
 */
#define WHOT 400
#define WCOLD 1200

static uint64_t run_written(const char *srv_addr, const char *policy)
{
	struct dsm_options o = { .servers = srv_addr, .local_mem = BUDGET,
				 .prefetch_max = 1, .evict_policy = policy };
	volatile uint64_t *far;
	struct dsm_stats before, after;
	uint64_t sum = 0;

	TH_CHECK(dsm_init(&o) == 0);
	far = dsm_alloc(REGION);
	TH_CHECK(far);
	for (uint64_t pg = 0; pg < WHOT + WCOLD; pg++)
		far[pg * 512] = tc_mix(pg);
	before = tc_stats();
	for (uint64_t step = 0; step < STEPS; step++) {
		uint64_t h = step % WHOT;

		TH_CHECK(far[h * 512] == tc_mix(h) + step / WHOT);
		far[h * 512] += 1;
		sum += far[(WHOT + step % WCOLD) * 512];
	}
	after = tc_stats();
	TH_CHECK(sum != 0);
	dsm_free((void *)far);
	dsm_shutdown();
	printf("%s, hot set written: %lu missing faults, %lu WP faults over "
	       "%d steps\n", policy,
	       (unsigned long)(after.missing_faults - before.missing_faults),
	       (unsigned long)(after.wp_faults - before.wp_faults), STEPS);
	return after.missing_faults - before.missing_faults;
}

/* Read each of the first n pages of far in a random order (each page's
 * first word holds tc_mix of its number); the faults that took. */
static uint64_t read_shuffled(volatile uint64_t *far, uint64_t n,
			      uint64_t seed)
{
	uint64_t *order = malloc(n * sizeof(*order));
	struct dsm_stats a = tc_stats();

	TH_CHECK(order);
	for (uint64_t i = 0; i < n; i++)
		order[i] = i;
	for (uint64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
		uint64_t j = (seed = tc_mix(seed)) % (i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (uint64_t i = 0; i < n; i++)
		TH_CHECK(far[order[i] * 512] == tc_mix(order[i]));
	free(order);
	return tc_stats().missing_faults - a.missing_faults;
}

/*
 * Fetch-around: random faults over an area a quarter of the budget, every
 * page of which is read (python3's sort over its floats), evicted by a
 * scan between rounds, take blocks that grow as their sentinels are hit:
 * after the first round, under half a fault per page.  Random faults over
 * an area sixteen times the budget hit almost no sentinel: nearly nothing
 * is fetched that was not asked for.
 */
static void test_fetch_around(const char *srv_addr)
{
	struct dsm_options o = { .servers = srv_addr, .local_mem = BUDGET };
	uint64_t pages = REGION / 4096, dense = 256, faults;
	volatile uint64_t *far;
	struct dsm_stats a, b;

	TH_CHECK(dsm_init(&o) == 0);
	far = dsm_alloc(REGION);
	TH_CHECK(far);
	for (uint64_t pg = 0; pg < pages; pg++)
		far[pg * 512] = tc_mix(pg); /* the first pages long evicted */
	for (uint64_t round = 0; round < 4; round++) {
		/* the rest of the region read in order evicts the area */
		for (uint64_t pg = dense; pg < pages; pg++)
			TH_CHECK(far[pg * 512] == tc_mix(pg));
		faults = read_shuffled(far, dense, 5 + round);
		printf("fetch-around: %lu faults for %lu pages read in a random "
		       "order\n", (unsigned long)faults, (unsigned long)dense);
	}
	TH_CHECK(faults < dense / 2);
	a = tc_stats();
	faults = read_shuffled(far, pages, 6);
	b = tc_stats();
	printf("fetch-around: %lu faults, %lu pages prefetched for %lu pages "
	       "read in a random order\n", (unsigned long)faults,
	       (unsigned long)(b.pages_prefetched - a.pages_prefetched),
	       (unsigned long)pages);
	TH_CHECK(b.pages_prefetched - a.pages_prefetched < faults / 20);
	dsm_free((void *)far);
	dsm_shutdown();
}

static void test_prefetch(const char *srv_addr)
{
	struct dsm_options o = { .servers = srv_addr, .local_mem = BUDGET };
	uint64_t *far, n = REGION / 8;
	struct dsm_stats a, b;

	TH_CHECK(dsm_init(&o) == 0);
	far = dsm_alloc(REGION);
	TH_CHECK(far);
	for (uint64_t i = 0; i < n; i++)
		far[i] = tc_mix(i);
	a = tc_stats();
	for (uint64_t i = 0; i < n; i++)
		TH_CHECK(far[i] == tc_mix(i));
	b = tc_stats();
	printf("scan of %lu pages: %lu missing faults, %lu prefetched, "
	       "%lu seen used\n", (unsigned long)(REGION / 4096),
	       (unsigned long)(b.missing_faults - a.missing_faults),
	       (unsigned long)(b.pages_prefetched - a.pages_prefetched),
	       (unsigned long)(b.prefetch_used - a.prefetch_used));
	/* a scan is served in windows, not page by page */
	TH_CHECK(b.missing_faults - a.missing_faults < REGION / 4096 / 8);
	TH_CHECK(b.pages_prefetched - a.pages_prefetched > REGION / 4096 / 2);
	TH_CHECK(b.prefetch_used - a.prefetch_used >
		 (b.pages_prefetched - a.pages_prefetched) * 9 / 10);
	dsm_free(far);
	dsm_shutdown();
}

/*
 * A scan that skips pages (some of which the engine held back as stream
 * markers) and comes back for them later, with random faults churning the
 * stream table in between: every word must still read back, and the
 * resident set must stay within the budget.
 */
static void test_prefetch_skips(const char *srv_addr)
{
	struct dsm_options o = { .servers = srv_addr, .local_mem = BUDGET };
	volatile uint64_t *far;
	uint64_t pages = REGION / 4096, seed = 99;
	struct dsm_stats st;

	TH_CHECK(dsm_init(&o) == 0);
	far = dsm_alloc(REGION);
	TH_CHECK(far);
	for (uint64_t pg = 0; pg < pages; pg++)
		far[pg * 512 + 3] = tc_mix(pg);
	for (int round = 0; round < 3; round++) {
		for (uint64_t pg = 0; pg < pages; pg++)
			if (pg % 37 != 5)
				TH_CHECK(far[pg * 512 + 3] == tc_mix(pg));
		for (int k = 0; k < 200; k++) { /* churn the streams */
			uint64_t pg = (seed = tc_mix(seed)) % pages;

			TH_CHECK(far[pg * 512 + 3] == tc_mix(pg));
		}
		for (uint64_t pg = 5; pg < pages; pg += 37)
			TH_CHECK(far[pg * 512 + 3] == tc_mix(pg));
	}
	st = tc_stats();
	TH_CHECK(st.resident_pages <= st.budget_pages);
	dsm_free((void *)far);
	/* the engine's accounting matches what it mapped: nothing is left */
	TH_CHECK(tc_stats().resident_pages == 0);
	dsm_shutdown();
}

/* A fresh client over the whole region, every page's first word
 * written (tc_mix of its number), so the pages are on the server. */
static volatile uint64_t *region_on_server(const char *srv_addr)
{
	struct dsm_options o = { .servers = srv_addr, .local_mem = BUDGET };
	volatile uint64_t *far;

	TH_CHECK(dsm_init(&o) == 0);
	far = dsm_alloc(REGION);
	TH_CHECK(far);
	for (uint64_t pg = 0; pg < REGION / 4096; pg++)
		far[pg * 512] = tc_mix(pg);
	return far;
}

/* Read a random page of the region's upper half, checked. */
static void read_upper_half(volatile uint64_t *far, uint64_t *seed)
{
	uint64_t pages = REGION / 4096;
	uint64_t r = pages / 2 + (*seed = tc_mix(*seed)) % (pages / 2);

	TH_CHECK(far[r * 512] == tc_mix(r));
}

/*
 * Streams going down (sort's merges walk its line table from the end of
 * its buffer): a scan read from the last page to the first is served in
 * windows, alone and with random reads far away between its pages, which
 * once pushed every scan out of the stream table before its next fault.
 * Faults are counted against a bound every random read may take one of:
 * a scan taken a block or a page at a time exceeds it.
 */
static void test_prefetch_down(const char *srv_addr)
{
	uint64_t scan = REGION / 4096 / 4, seed = 7;
	volatile uint64_t *far = region_on_server(srv_addr);
	struct dsm_stats a, b;

	for (int noise = 0; noise <= 2; noise += 2) {
		uint64_t base = noise ? scan : 0; /* a scan not read before */

		a = tc_stats();
		for (uint64_t pg = base + scan; pg-- > base;) {
			TH_CHECK(far[pg * 512] == tc_mix(pg));
			for (int k = 0; k < noise; k++)
				read_upper_half(far, &seed);
		}
		b = tc_stats();
		printf("scan of %lu pages down, %d random reads per page: %lu "
		       "missing faults, %lu prefetched, %lu seen used\n",
		       (unsigned long)scan, noise,
		       (unsigned long)(b.missing_faults - a.missing_faults),
		       (unsigned long)(b.pages_prefetched - a.pages_prefetched),
		       (unsigned long)(b.prefetch_used - a.prefetch_used));
		TH_CHECK(b.missing_faults - a.missing_faults <
			 scan * noise + scan / 32);
		/* alone, nearly all; beside random faults, 81% measured,
		 * and 37% with them taking the scan's slot */
		TH_CHECK(b.prefetch_used - a.prefetch_used >
			 scan * (noise ? 6 : 9) / 10);
	}
	dsm_free((void *)far);
	dsm_shutdown();
}

/*
 * Scans that are over leave the stream table.  Eight scans are read to
 * their ends (their streams grown), random reads then evict half a
 * budget, and two new scans read in turns, a page of each, must both be
 * served as scans.  While a grown stream stayed until a new one found no
 * young slot, new streams could only take the one young slot, each the
 * other's, and these scans were fetched a page or a block at a time.
 */
static void test_streams_expire(const char *srv_addr)
{
	uint64_t pages = REGION / 4096, len = 256, seed = 11, faults;
	volatile uint64_t *far = region_on_server(srv_addr);
	struct dsm_stats a, b;

	for (uint64_t s = 0; s < 8; s++)
		for (uint64_t pg = s * 512; pg < s * 512 + 64; pg++)
			TH_CHECK(far[pg * 512] == tc_mix(pg));
	for (uint64_t k = 0; k < BUDGET / 4096 / 2; k++)
		read_upper_half(far, &seed);
	a = tc_stats();
	for (uint64_t i = 0; i < len; i++) {
		uint64_t x = pages / 4 + i, y = pages / 4 + pages / 8 + i;

		TH_CHECK(far[x * 512] == tc_mix(x));
		TH_CHECK(far[y * 512] == tc_mix(y));
	}
	b = tc_stats();
	faults = b.missing_faults - a.missing_faults;
	printf("two scans of %lu pages in turns, after eight that ended: "
	       "%lu missing faults\n", (unsigned long)len,
	       (unsigned long)faults);
	TH_CHECK(faults < len / 4);
	dsm_free((void *)far);
	dsm_shutdown();
}

/*
 * A scan coming round again does not push out pages that come back one
 * fault at a time: a hot set read at random (SCAN_HOT pages, refaulting,
 * so PROTECTED) while a scan of SCAN pages cycles, a page per hot read.
 * The scan comes back within a budget of evictions too, but its pages
 * arrive in windows; they stay in PROBATION, teach its share nothing, and
 * the hot set stays resident.  Promoted like the hot pages, the scan's
 * pages pushed them out (3012 faults); promoted no more but growing
 * PROBATION's share, they still cost the hot set 488.
 */
#define SCAN 900
#define SCAN_HOT 500

static void test_scan_and_hot(const char *srv_addr)
{
	struct dsm_options o = { .servers = srv_addr, .local_mem = BUDGET };
	uint64_t seed = 3, next = 0, faults = 0;
	volatile uint64_t *far;
	struct dsm_stats a, b;

	TH_CHECK(dsm_init(&o) == 0);
	far = dsm_alloc(REGION);
	TH_CHECK(far);
	for (uint64_t pg = 0; pg < SCAN_HOT + SCAN; pg++)
		far[pg * 512] = tc_mix(pg);
	for (int phase = 0; phase < 2; phase++) { /* warm, then counted */
		a = tc_stats();
		for (uint64_t step = 0; step < STEPS; step++) {
			uint64_t h = (seed = tc_mix(seed)) % SCAN_HOT;

			TH_CHECK(far[h * 512] == tc_mix(h));
			for (int k = 0; k < 1; k++, next = (next + 1) % SCAN)
				TH_CHECK(far[(SCAN_HOT + next) * 512] ==
					 tc_mix(SCAN_HOT + next));
		}
		b = tc_stats();
		faults = b.missing_faults - a.missing_faults;
	}
	printf("hot set of %d pages read at random beside a scan of %d: "
	       "%lu missing faults over %d steps\n", SCAN_HOT, SCAN,
	       (unsigned long)faults, STEPS);
	/* the scan's own: a fault a window, about 14 a lap, 7 laps */
	TH_CHECK(faults < STEPS / 20);
	dsm_free((void *)far);
	dsm_shutdown();
}

/*
 * A victim takes its cold neighbours with it (evict.c, take_window):
 * pages of its 2 MiB window in the older half of PROBATION leave in the
 * same batch, so that they share their page-table page's costs.  Old
 * pages of window 0 (A) arrive interleaved with as old pages elsewhere
 * (X), then young pages of window 0 (Z), then fresh reads push the
 * oldest out.  When the first of A or X goes, A's old pages go with it
 * and X's stay; Z, young, stays.  Without windows, A and X leave alike.
 * Returns A's evicted pages; *x_out X's; *z_out Z's.
 */
#define WIN_A 256 /* A: pages 2j, Z: 2j + 1, X: 1024 + 8j */

static uint32_t count_out(volatile uint64_t *far, const uint64_t *pg,
			  uint32_t n)
{
	unsigned char v;
	uint32_t out = 0;

	for (uint32_t i = 0; i < n; i++) {
		TH_CHECK(mincore((void *)&far[pg[i] * 512], 4096, &v) == 0);
		out += !(v & 1);
	}
	return out;
}

static uint32_t run_window(const char *srv_addr, bool window,
			   uint32_t *x_out, uint32_t *z_out)
{
	struct dsm_options o = { .servers = srv_addr, .local_mem = BUDGET,
				 .prefetch_max = 1 };
	uint64_t a[WIN_A], x[WIN_A], z[WIN_A], sum = 0;
	uint32_t a_out = 0;
	volatile uint64_t *far;

	*x_out = 0; /* read by the loop below before its first count */
	setenv("DSM_EVICT_WINDOW", window ? "1" : "0", 1);
	TH_CHECK(dsm_init(&o) == 0);
	unsetenv("DSM_EVICT_WINDOW");
	far = dsm_alloc(REGION);
	TH_CHECK(far);
	for (uint64_t pg = 0; pg < REGION / 4096; pg++)
		far[pg * 512] = tc_mix(pg); /* everything on the server */
	/* cycle the fill out: 2048 reads, scattered, far from A, X and Z */
	for (uint64_t k = 0; k < 2048; k++)
		sum += far[(8192 + k * 1031 % 8192) * 512];
	for (uint32_t j = 0; j < WIN_A; j++) {
		a[j] = 2 * j;
		x[j] = 1024 + 8 * j;
		z[j] = 2 * j + 1;
		sum += far[a[j] * 512] + far[x[j] * 512];
	}
	for (uint32_t j = 0; j < WIN_A; j++)
		sum += far[z[j] * 512];
	/* fresh reads until a round of evictions reaches A or X */
	for (uint64_t k = 0; k < 4096 && !a_out && !*x_out; k++) {
		sum += far[(4096 + k * 263 % 4096) * 512];
		a_out = count_out(far, a, WIN_A);
		*x_out = count_out(far, x, WIN_A);
	}
	*z_out = count_out(far, z, WIN_A);
	TH_CHECK(sum != 0);
	for (uint64_t pg = 0; pg < REGION / 4096; pg++)
		TH_CHECK(far[pg * 512] == tc_mix(pg));
	printf("evict windows %s: old pages evicted, window 0: %u of %u, "
	       "elsewhere: %u of %u; young pages of window 0: %u\n",
	       window ? "on" : "off", a_out, WIN_A, *x_out, WIN_A, *z_out);
	dsm_free((void *)far);
	dsm_shutdown();
	return a_out;
}

static void test_evict_window(const char *srv_addr)
{
	uint32_t a, x, z;

	a = run_window(srv_addr, true, &x, &z);
	TH_CHECK(a >= 32 && x * 4 <= a); /* A's old pages went together */
	TH_CHECK(z == 0);                 /* the young ones stayed */
	a = run_window(srv_addr, false, &x, &z);
	TH_CHECK(a >= 8 && x >= 8);       /* one at a time: A and X alike */
}

/* Fresh memory filled backwards (sort's line table) is zero-filled a
 * 64 KiB block per fault, and filled forwards a growing window per fault;
 * the pages read back exactly what was written, the rest zeros. */
static void test_zero_around(const char *srv_addr)
{
	struct dsm_options o = { .servers = srv_addr, .local_mem = BUDGET,
				 .prefetch_max = 1 };
	uint64_t pages = 512, *far;
	struct dsm_stats a, b;

	TH_CHECK(dsm_init(&o) == 0); /* prefetch 1: no forward streams */
	far = dsm_alloc(REGION);
	TH_CHECK(far);
	a = tc_stats();
	for (uint64_t pg = pages; pg-- > 0;)
		far[pg * 512 + 7] = tc_mix(pg);
	b = tc_stats();
	printf("zero-around: %lu missing faults for %lu pages filled "
	       "backwards\n",
	       (unsigned long)(b.missing_faults - a.missing_faults),
	       (unsigned long)pages);
	TH_CHECK(b.missing_faults - a.missing_faults <= pages / 16 + 2);
	for (uint64_t pg = 0; pg < pages; pg++)
		for (uint64_t w = 0; w < 512; w++)
			TH_CHECK(far[pg * 512 + w] ==
				 (w == 7 ? tc_mix(pg) : 0));
	dsm_free(far);
	TH_CHECK(tc_stats().resident_pages == 0);
	dsm_shutdown();
}

/*
 * Write prediction (fault.c): pages read and then written at once, a
 * read-modify-write over four budgets of pages, twice, are soon installed
 * writable, so the WP faults fall to about the one fetch in eight that
 * probes (without prediction, every fetched page takes one).  Reading the
 * same pages afterwards turns prediction off again once its probes are
 * evicted unwritten: pages written back fall to a small share of those
 * evicted (the rounds' first budget of pages was really written).  Every
 * word reads back exact, so a page installed writable was written back.
 */
static void rmw_rounds(volatile uint64_t *far, uint64_t pages, int from,
		       int rounds)
{
	for (int round = from; round < from + rounds; round++)
		for (uint64_t pg = 0; pg < pages; pg++) {
			uint64_t v = far[pg * 512];

			TH_CHECK(v == tc_mix(pg) + round);
			far[pg * 512] = v + 1;
		}
}

/*
 * A stream predicts writes for itself: a scan down that updates every
 * page it reads, with random reads far away between its pages (which
 * leave their pages unwritten, so the process-wide guess stays off), is
 * soon installed writable: its WP faults fall to its probe windows, one
 * in eight.  Every word reads back exact.
 */
static void test_stream_writes(const char *srv_addr)
{
	uint64_t scan = REGION / 4096 / 4, seed = 11;
	volatile uint64_t *far = region_on_server(srv_addr);
	struct dsm_stats a, b;

	a = tc_stats();
	for (uint64_t pg = scan; pg-- > 0;) {
		read_upper_half(far, &seed);
		TH_CHECK(far[pg * 512] == tc_mix(pg));
		far[pg * 512] = tc_mix(pg) + 1;
	}
	b = tc_stats();
	printf("scan down updating %lu pages, a random read each: %lu WP "
	       "faults\n", (unsigned long)scan,
	       (unsigned long)(b.wp_faults - a.wp_faults));
	TH_CHECK(b.wp_faults - a.wp_faults < scan / 4);
	for (uint64_t pg = 0; pg < scan; pg++)
		TH_CHECK(far[pg * 512] == tc_mix(pg) + 1);
	dsm_free((void *)far);
	dsm_shutdown();
}

/* Four budgets of pages, each page's first word written (tc_mix of its
 * number) and most of them on the server; prefetch 1: a fetch per page. */
#define PRED_PAGES (4 * (BUDGET / 4096))

static volatile uint64_t *written_out(const char *srv_addr)
{
	struct dsm_options o = { .servers = srv_addr, .local_mem = BUDGET,
				 .prefetch_max = 1 };
	volatile uint64_t *far;

	TH_CHECK(dsm_init(&o) == 0);
	far = dsm_alloc(REGION);
	TH_CHECK(far);
	for (uint64_t pg = 0; pg < PRED_PAGES; pg++)
		far[pg * 512] = tc_mix(pg);
	return far;
}

static void test_predict_writes(const char *srv_addr)
{
	uint64_t pages = PRED_PAGES;
	volatile uint64_t *far = written_out(srv_addr);
	struct dsm_stats a, b, c;

	a = tc_stats();
	rmw_rounds(far, pages, 0, 2);
	b = tc_stats();
	for (int round = 0; round < 3; round++)
		for (uint64_t pg = 0; pg < pages; pg++)
			TH_CHECK(far[pg * 512] == tc_mix(pg) + 2);
	c = tc_stats();
	printf("write prediction: read-modify-write: %lu WP faults for %lu "
	       "pages fetched; then reads: %lu written back of %lu "
	       "evicted\n",
	       (unsigned long)(b.wp_faults - a.wp_faults),
	       (unsigned long)(b.pages_fetched - a.pages_fetched),
	       (unsigned long)(c.pages_written_back - b.pages_written_back),
	       (unsigned long)(c.pages_evicted - b.pages_evicted));
	TH_CHECK((b.wp_faults - a.wp_faults) * 4 <
		 b.pages_fetched - a.pages_fetched);
	TH_CHECK((c.pages_written_back - b.pages_written_back) * 4 <
		 c.pages_evicted - b.pages_evicted);
	dsm_free((void *)far);
	dsm_shutdown();
}

/* A page whose first touch is a write is installed writable, prediction
 * or not: blind writes to pages on the server take no WP fault, and
 * their data reaches the server. */
static void test_write_first(const char *srv_addr)
{
	uint64_t pages = PRED_PAGES;
	volatile uint64_t *far;
	struct dsm_stats a, b;

	setenv("DSM_PREDICT_WRITES", "0", 1);
	far = written_out(srv_addr);
	unsetenv("DSM_PREDICT_WRITES");
	a = tc_stats();
	for (uint64_t pg = 0; pg < pages; pg++)
		far[pg * 512 + 1] = pg;
	b = tc_stats();
	printf("write-first faults: %lu WP faults for %lu pages fetched\n",
	       (unsigned long)(b.wp_faults - a.wp_faults),
	       (unsigned long)(b.pages_fetched - a.pages_fetched));
	TH_CHECK(b.pages_fetched - a.pages_fetched >= pages / 2);
	TH_CHECK(b.wp_faults == a.wp_faults);
	for (uint64_t pg = 0; pg < pages; pg++)
		TH_CHECK(far[pg * 512] == tc_mix(pg) && far[pg * 512 + 1] == pg);
	dsm_free((void *)far);
	dsm_shutdown();
}

int main(void)
{
	struct th_server srv;
	uint64_t fifo, twoq, wp;

	TH_CHECK(th_server_start(&srv, "256M") == 0);
	fifo = run_pattern(srv.addr, "fifo", HOT, 1, 2);
	twoq = run_pattern(srv.addr, "2q", HOT, 1, 2);
	TH_CHECK(fifo >= STEPS * 3 * 9 / 10); /* FIFO: hot reads all miss */
	TH_CHECK(twoq < fifo * 8 / 10);        /* 2Q keeps the hot set */
	fifo = run_pattern(srv.addr, "fifo", BIG_HOT, 4, 1);
	twoq = run_pattern(srv.addr, "2q", BIG_HOT, 4, 1);
	TH_CHECK(fifo >= STEPS * 5 / 4 * 9 / 10); /* FIFO: all miss */
	TH_CHECK(twoq < fifo * 6 / 10);           /* 2Q: PROTECTED grew */
	twoq = run_written(srv.addr, "2q");
	wp = run_written(srv.addr, "2q-wp");
	/* second chances keep the hot set: at most the cold read misses */
	TH_CHECK(wp < STEPS && wp < twoq * 3 / 4);
	test_fetch_around(srv.addr);
	test_prefetch(srv.addr);
	test_prefetch_skips(srv.addr);
	test_prefetch_down(srv.addr);
	test_streams_expire(srv.addr);
	test_scan_and_hot(srv.addr);
	test_zero_around(srv.addr);
	test_evict_window(srv.addr);
	test_predict_writes(srv.addr);
	test_stream_writes(srv.addr);
	test_write_first(srv.addr);
	th_server_stop(&srv);
	printf("policy: ok\n");
	return 0;
}
