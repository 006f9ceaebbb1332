/*
 * test_pool.c - the server's pool on 4 KiB and on hugetlb pages (room:
 * tests): DISCARD (pool_drop) and FREE (pool_free) zero exactly their
 * pages and nothing next to them, also inside a huge page, where the pool
 * zeroes by hand; pool_zero (DISCARD in a region registered for RDMA)
 * zeroes and keeps the pages resident; --hugepages on fails clearly
 * without enough huge pages reserved; auto takes them when they are
 * there; ALLOC and FREE on a pool fragmented into thousands of holes do
 * O(log n) work each.
 *
 * The hugetlb cases need 2 MiB huge pages: as root the test reserves what
 * it needs (vm.nr_hugepages) and gives them back at the end; where it
 * cannot, it says so and exits 77 (skipped) after the 4 KiB cases passed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"
#include "pool.h"
#include "proto.h"
#include "util.h"

#define MiB (1ULL << 20)

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off / DSM_PAGE_SIZE * 131 + 7) | 1; /* never 0 */
}

static void fill(struct pool *p, uint64_t off, uint64_t len)
{
	pool_note_write(p, off, len);
	for (uint64_t i = off; i < off + len; i += DSM_PAGE_SIZE)
		memset(pool_at(p, i), pattern(i), DSM_PAGE_SIZE);
}

/* [off, off+len) reads as the pattern (want_zero false) or as zeros. */
static void expect(struct pool *p, uint64_t off, uint64_t len, bool want_zero)
{
	for (uint64_t i = off; i < off + len; i += DSM_PAGE_SIZE) {
		const uint8_t *b = pool_at(p, i);
		uint8_t want = want_zero ? 0 : pattern(i);

		for (unsigned j = 0; j < DSM_PAGE_SIZE; j++) {
			if (b[j] != want) {
				fprintf(stderr, "pool offset %#llx: byte %u is "
					"%#x, want %#x\n",
					(unsigned long long)i, j, b[j], want);
				TH_CHECK(0);
			}
		}
	}
}

/*
 * Three 3 MiB extents side by side (B straddles a 2 MiB boundary on both
 * sides); drops inside B, then B freed and allocated again.  A and C must
 * keep every byte throughout.
 */
static void drop_and_free(enum pool_pages pages, enum pool_kind want)
{
	struct pool p;
	uint64_t a, b, c, again;
	char why[256];

	TH_CHECK(pool_init(&p, 12 * MiB, pages, why, sizeof(why)) == 0);
	printf("  pool %s\n", why);
	TH_CHECK(p.kind == want);
	TH_CHECK(pool_alloc(&p, 3 * MiB, &a) == 0);
	TH_CHECK(pool_alloc(&p, 3 * MiB, &b) == 0);
	TH_CHECK(pool_alloc(&p, 3 * MiB, &c) == 0);
	fill(&p, a, 9 * MiB);

	/* a page-aligned run inside one huge page, not at its edges */
	pool_drop(&p, b + 4 * DSM_PAGE_SIZE, 3 * DSM_PAGE_SIZE);
	expect(&p, a, b + 4 * DSM_PAGE_SIZE - a, false);
	expect(&p, b + 4 * DSM_PAGE_SIZE, 3 * DSM_PAGE_SIZE, true);
	expect(&p, b + 7 * DSM_PAGE_SIZE, c + 3 * MiB - b - 7 * DSM_PAGE_SIZE,
	       false);

	/* a run across a huge page boundary */
	pool_drop(&p, 2 * MiB - 2 * DSM_PAGE_SIZE, 1 * MiB);
	expect(&p, 2 * MiB - 2 * DSM_PAGE_SIZE, 1 * MiB, true);
	expect(&p, 3 * MiB + 16 * DSM_PAGE_SIZE, 2 * MiB, false);

	/* a whole huge page zeroed is clean; written again, a drop must
	 * still zero it */
	fill(&p, 4 * MiB, 2 * MiB);
	pool_drop(&p, 4 * MiB, 2 * MiB);
	expect(&p, 4 * MiB, 2 * MiB, true);
	fill(&p, 4 * MiB, 2 * MiB);
	pool_drop(&p, 4 * MiB + DSM_PAGE_SIZE, DSM_PAGE_SIZE);
	expect(&p, 4 * MiB, DSM_PAGE_SIZE, false);
	expect(&p, 4 * MiB + DSM_PAGE_SIZE, DSM_PAGE_SIZE, true);
	expect(&p, 4 * MiB + 2 * DSM_PAGE_SIZE, 2 * MiB - 2 * DSM_PAGE_SIZE,
	       false);

	/* FREE: the extent comes back as zeros, its neighbours intact */
	fill(&p, a, 9 * MiB);
	pool_free(&p, b, 3 * MiB);
	TH_CHECK(pool_alloc(&p, 3 * MiB, &again) == 0);
	TH_CHECK(again == b);
	expect(&p, b, 3 * MiB, true);
	expect(&p, a, 3 * MiB, false);
	expect(&p, c, 3 * MiB, false);
	pool_destroy(&p);
}

/* pages of [off, off+len) resident now */
static uint64_t resident(struct pool *p, uint64_t off, uint64_t len)
{
	unsigned char v[64];
	uint64_t n = 0;

	TH_CHECK(len / DSM_PAGE_SIZE <= sizeof(v));
	TH_CHECK(mincore(pool_at(p, off), len, v) == 0);
	for (uint64_t i = 0; i < len / DSM_PAGE_SIZE; i++)
		n += v[i] & 1;
	return n;
}

/* Zeroing in place keeps the pages, where a drop of 4 KiB pages gives
 * them back: registered memory must not change pages under the NIC. */
static void zero_in_place(void)
{
	struct pool p;
	uint64_t a;

	TH_CHECK(pool_init(&p, 4 * MiB, POOL_PAGES_SMALL, NULL, 0) == 0);
	TH_CHECK(pool_alloc(&p, 1 * MiB, &a) == 0);
	fill(&p, a, 16 * DSM_PAGE_SIZE);
	pool_zero(&p, a + 4 * DSM_PAGE_SIZE, 8 * DSM_PAGE_SIZE);
	expect(&p, a, 4 * DSM_PAGE_SIZE, false);
	expect(&p, a + 4 * DSM_PAGE_SIZE, 8 * DSM_PAGE_SIZE, true);
	expect(&p, a + 12 * DSM_PAGE_SIZE, 4 * DSM_PAGE_SIZE, false);
	TH_CHECK(resident(&p, a, 16 * DSM_PAGE_SIZE) == 16);
	pool_drop(&p, a + 4 * DSM_PAGE_SIZE, 8 * DSM_PAGE_SIZE);
	TH_CHECK(resident(&p, a, 16 * DSM_PAGE_SIZE) == 8);
	pool_destroy(&p);
	printf("  pool_zero keeps the pages, pool_drop gives them back\n");
}

/* Too few huge pages: on fails with -ENOMEM and says how many it needs;
 * auto falls back to 4 KiB pages and says why. */
static void too_few(void)
{
	long reserved = th_nr_huge();
	uint64_t need = (reserved > 0 ? (uint64_t)reserved : 0) + 16384;
	char why[256], want[64];
	struct pool p;

	/* 32 GiB more than are reserved.  Not a terabyte: the fallback maps
	 * it all, and under ThreadSanitizer a mapping that large sometimes
	 * finds no room in the address space the runtime leaves. */
	snprintf(want, sizeof(want), "%llu of 2 MiB needed",
		 (unsigned long long)need);
	TH_CHECK(pool_init(&p, need << 21, POOL_PAGES_HUGE, why,
			   sizeof(why)) == -ENOMEM);
	printf("  on, too few: %s\n", why);
	TH_CHECK(strstr(why, want) && strstr(why, "vm.nr_hugepages"));
	TH_CHECK(pool_init(&p, need << 21, POOL_PAGES_AUTO, why,
			   sizeof(why)) == 0);
	printf("  auto, too few: %s\n", why);
	TH_CHECK(p.kind == POOL_KIND_SMALL && strstr(why, "4 KiB"));
	pool_destroy(&p);
}

/*
 * ALLOC and FREE on a fragmented pool cost O(log n) in its free runs, not
 * O(n): 8192 one-page holes, then allocations that fit only past all of
 * them and allocations that take the first hole, each freed again.  A
 * first-fit scan of a sorted array looks at every hole for the first kind
 * and moves every run for the second; the pool's own step counter (runs
 * looked at or moved) must stay within a small multiple of log2(n).
 * The time per operation is printed for the record, never asserted.
 */
static void fragmented_is_logarithmic(void)
{
	enum { HOLES = 8192, ROUNDS = 4096 };
	uint64_t *off = malloc(2 * HOLES * sizeof(*off)), big, small, steps;
	uint64_t ops = 0, bound, t0;
	struct pool p;
	double per_op;

	TH_CHECK(off);
	TH_CHECK(pool_init(&p, 1024 * MiB, POOL_PAGES_SMALL, NULL, 0) == 0);
	for (int i = 0; i < 2 * HOLES; i++)
		TH_CHECK(pool_alloc(&p, DSM_PAGE_SIZE, &off[i]) == 0);
	for (int i = 0; i < 2 * HOLES; i += 2)
		pool_free(&p, off[i], DSM_PAGE_SIZE);
	steps = p.steps;
	t0 = dsm_now_ns();
	for (int i = 0; i < ROUNDS; i++) {
		TH_CHECK(pool_alloc(&p, 2 * DSM_PAGE_SIZE, &big) == 0);
		TH_CHECK(big >= off[2 * HOLES - 1]); /* past every hole */
		TH_CHECK(pool_alloc(&p, DSM_PAGE_SIZE, &small) == 0);
		TH_CHECK(small == off[0]);           /* the first hole */
		pool_free(&p, big, 2 * DSM_PAGE_SIZE);
		pool_free(&p, small, DSM_PAGE_SIZE);
		ops += 4;
	}
	per_op = (double)(dsm_now_ns() - t0) / (double)ops;
	steps = p.steps - steps;
	bound = 16 * 14 * ops; /* 16 log2(n), n a little over 8192 */
	printf("  fragmented ALLOC/FREE, %d holes: %.1f steps and %.0f ns per "
	       "operation (bound %llu steps)\n", HOLES,
	       (double)steps / (double)ops, per_op,
	       (unsigned long long)(bound / ops));
	TH_CHECK(steps <= bound);
	pool_destroy(&p);
	free(off);
}

int main(void)
{
	long before;
	const char *why = NULL;

	printf("4 KiB pages\n");
	fragmented_is_logarithmic();
	drop_and_free(POOL_PAGES_SMALL, POOL_KIND_SMALL);
	zero_in_place();
	too_few();

	before = th_nr_huge();
	why = th_reserve_huge(6);
	if (why) {
		printf("SKIP: hugetlb pool: %s\n", why);
		return 77;
	}
	printf("hugetlb pages (vm.nr_hugepages %ld -> %ld)\n", before,
	       before + 6);
	drop_and_free(POOL_PAGES_HUGE, POOL_KIND_HUGETLB);
	drop_and_free(POOL_PAGES_AUTO, POOL_KIND_HUGETLB);
	printf("all pool checks passed\n");
	return 0;
}
