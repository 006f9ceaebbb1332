/*
 * lat_remote.c - (c) a fault on far memory through libdsm, as the program
 * sees it (room: benchmarks).
 *
 * A never-written page is zero-filled locally without asking the server,
 * so the pages are written first, pushed to the server (dsm_sync), and
 * pushed out of local memory by a budget far smaller than the region.  The
 * timed reads then each cost one fetch: prefetch is off, so no read is
 * served by a page fetched ahead for an earlier one.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "dsm.h"
#include "lat.h"
#include "util.h"

#define BUDGET (4u << 20)      /* resident budget: 1024 pages */
#define MIN_REGION (64u << 20) /* at least 16x the budget */

static uint64_t page_value(uint64_t page)
{
	return bench_mix64(page ^ 0x1a7e);
}

static void fill(uint8_t *base, uint64_t npages)
{
	for (uint64_t p = 0; p < npages; p++)
		*(uint64_t *)(base + p * BENCH_PAGE) = page_value(p);
}

/* Reads n random pages among the first `range`, which the fill wrote
 * longest ago and so are the ones evicted.  0, or -1 on a wrong value. */
static int time_reads(const uint8_t *base, uint64_t range, uint64_t n,
		      uint64_t seed, uint64_t *ns)
{
	uint32_t *order = malloc(range * sizeof(*order));
	struct bench_rng r;
	int rc = 0;

	if (!order)
		return -1;
	bench_rng_seed(&r, seed);
	bench_shuffle_u32(order, range, &r);
	for (uint64_t i = 0; i < n; i++) {
		const volatile uint64_t *p =
			(const void *)(base + (uint64_t)order[i] * BENCH_PAGE);
		uint64_t t0 = dsm_now_ns(), v = *p;

		ns[i] = dsm_now_ns() - t0;
		if (v != page_value(order[i]) && rc == 0) {
			fprintf(stderr, "dsm-bench-latency: remote page %u "
				"reads %#" PRIx64 "\n", order[i], v);
			rc = -1;
		}
	}
	free(order);
	return rc;
}

static int measure(uint64_t n, uint64_t seed, uint64_t *ns,
		   struct lat_remote *x)
{
	struct dsm_stats st0, st1;
	uint64_t npages, keep;
	uint8_t *base;
	int rc = -1, err;

	dsm_stats(&st0);
	/* Leave twice the budget of most recently written pages out of the
	 * sample: they may still be resident and would time as hits. */
	keep = 2 * st0.budget_pages;
	npages = n + keep;
	if (npages * BENCH_PAGE < MIN_REGION)
		npages = MIN_REGION / BENCH_PAGE;
	base = dsm_alloc(npages * BENCH_PAGE);
	if (!base) {
		fprintf(stderr, "dsm-bench-latency: dsm_alloc: %s\n",
			strerror(errno));
		return -1;
	}
	fill(base, npages);
	err = dsm_sync(base, npages * BENCH_PAGE);
	if (err) {
		fprintf(stderr, "dsm-bench-latency: dsm_sync: %s\n",
			dsm_strerror(err));
		goto out;
	}
	dsm_stats(&st0);
	rc = time_reads(base, npages - keep, n, seed, ns);
	dsm_stats(&st1);
	x->faults = st1.missing_faults - st0.missing_faults;
	if (x->faults)
		x->blocked_mean_us = (st1.blocktime_ns - st0.blocktime_ns) /
				     1e3 / x->faults;
out:
	dsm_free(base);
	return rc;
}

int lat_remote_fault(const char *addr, uint64_t n, uint64_t seed,
		     struct lat_remote *out)
{
	struct dsm_options o = { .servers = addr, .local_mem = BUDGET,
				 .prefetch_max = 1 };
	uint64_t *ns = calloc(n, sizeof(*ns));
	struct dsm_stats st;
	int rc = -1, err;

	if (!ns)
		return -1;
	err = dsm_init(&o);
	if (err) {
		fprintf(stderr, "dsm-bench-latency: dsm_init: %s\n",
			dsm_strerror(err));
		goto out;
	}
	rc = measure(n, seed, ns, out);
	if (!rc) {
		lat_summarise(&out->timed, ns, n);
		dsm_stats(&st);
		out->lib = (struct lat){ .p50_us = st.fault_p50_ns / 1e3,
					 .p99_us = st.fault_p99_ns / 1e3,
					 .count = st.missing_faults };
	}
	dsm_shutdown();
out:
	free(ns);
	return rc;
}
