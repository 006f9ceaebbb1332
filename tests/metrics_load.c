/*
 * metrics_load.c - a client moving pages through one server for
 * tests/test_metrics.sh, which counts them at the server's metrics
 * endpoint (room: tests).  Not a test on its own.
 *
 * Joins the cluster named by the environment with a resident budget of
 * LOCAL_MEM, far smaller than its region, so that writing the region
 * writes pages back and reading it fetches them.  Each round (one at
 * start, then one per line on stdin; EOF ends it) writes every page with
 * a pattern of its round, syncs, reads every page back checking it,
 * syncs, and prints the client's cumulative counters as one line:
 *   round N fetched F written_back W
 * which the server's pages_read and pages_written must match.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dsm.h"

#define LOCAL_MEM (1u << 20)    /* 256 pages resident at most */
#define REGION (8u << 20)       /* 2048 pages */
#define PAGE 4096u

static uint64_t pattern(unsigned round, size_t page)
{
	return (uint64_t)round << 32 | page;
}

/* 0, or 1 after saying what went wrong. */
static int one_round(char *p, unsigned round)
{
	struct dsm_stats st;
	int err;

	for (size_t i = 0; i < REGION / PAGE; i++) {
		uint64_t v = pattern(round, i);

		memcpy(p + i * PAGE, &v, sizeof(v));
		memset(p + i * PAGE + sizeof(v), round & 0xff, PAGE - sizeof(v));
	}
	err = dsm_sync(p, REGION);
	for (size_t i = 0; !err && i < REGION / PAGE; i++) {
		uint64_t v;

		memcpy(&v, p + i * PAGE, sizeof(v));
		if (v != pattern(round, i)) {
			fprintf(stderr, "metrics_load: page %zu reads %llx, "
				"not %llx\n", i, (unsigned long long)v,
				(unsigned long long)pattern(round, i));
			return 1;
		}
	}
	/* pages fetched writable (write prediction) are dirty: written
	 * back now, so that nothing moves after the counters are read */
	if (!err)
		err = dsm_sync(p, REGION);
	if (!err)
		err = dsm_stats(&st);
	if (err) {
		fprintf(stderr, "metrics_load: %s\n", dsm_strerror(err));
		return 1;
	}
	printf("round %u fetched %llu written_back %llu\n", round,
	       (unsigned long long)st.pages_fetched,
	       (unsigned long long)st.pages_written_back);
	fflush(stdout);
	return 0;
}

int main(void)
{
	struct dsm_options o = { .local_mem = LOCAL_MEM };
	char line[64], *p;
	unsigned round = 1;
	int err = dsm_init(&o), rc = 1;

	if (err) {
		fprintf(stderr, "metrics_load: dsm_init: %s\n", dsm_strerror(err));
		return 1;
	}
	p = dsm_alloc(REGION);
	if (!p) {
		perror("metrics_load: dsm_alloc");
		goto out;
	}
	if (one_round(p, round))
		goto out;
	while (fgets(line, sizeof(line), stdin))
		if (one_round(p, ++round))
			goto out;
	rc = 0;
out:
	dsm_shutdown();
	return rc;
}
