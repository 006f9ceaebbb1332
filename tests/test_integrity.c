/*
 * test_integrity.c - random reads and writes from 8 threads over a region
 * 8.25x the local budget, checked word by word against a private reference
 * (room: tests).
 *
 * Thread t owns the words whose index is t modulo NTHREADS, so threads
 * share every page (and fault on the same pages at once) without racing
 * on a word.  Each operation is checked at once; a final sweep checks all
 * words, never-written zeros included.
 *
 * With --servers N the region is striped over N servers, each too small
 * to hold it alone, and each server's STATS must show its share in use.
 *
 * With --cluster N the servers come from the registry (DSM_REGISTRY,
 * DSM_CLUSTER; tests/test_cluster.sh starts them): the region's record
 * must name all N servers, be there at the end of the run (recorded again
 * if Redis was restarted meanwhile), and be gone after dsm_free, as must
 * the client's record after dsm_shutdown.
 */
#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

#include "client_util.h"
#include "registry.h"

#define NTHREADS 8
#define BUDGET (4u << 20)
#define REGION (8 * BUDGET + (1u << 20)) /* not a multiple of the budget */
#define OPS 20000
#define NWORDS (REGION / 8)
#define MAX_SERVERS 4

static uint64_t *far, *ref;
static _Atomic uint64_t mismatches;

static void *worker(void *arg)
{
	uint64_t t = (uintptr_t)arg, seed = tc_mix(t + 1);

	for (int i = 0; i < OPS; i++) {
		uint64_t w, v;

		seed = tc_mix(seed);
		w = (seed % (NWORDS / NTHREADS)) * NTHREADS + t;
		if (far[w] != ref[w]) {
			if (mismatches++ < 5)
				fprintf(stderr, "word %lu: got %#lx want %#lx\n",
					(unsigned long)w, (unsigned long)far[w],
					(unsigned long)ref[w]);
		}
		if (seed & 1) { /* half the operations write */
			v = tc_mix(seed ^ w);
			far[w] = v;
			ref[w] = v;
		}
	}
	return NULL;
}

/* n servers too small to hold the region alone; dsm_init over all. */
static void start_striped(struct th_server *srv, int n)
{
	struct dsm_options o = { .local_mem = BUDGET };
	char list[MAX_SERVERS * 64] = "";

	for (int i = 0; i < n; i++) {
		TH_CHECK(th_server_start(&srv[i], "12M") == 0);
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
			 "%s%s", i ? "," : "", srv[i].addr);
	}
	o.servers = list;
	TH_CHECK(dsm_init(&o) == 0);
}

/* The registry's record of this client's one region, waiting up to 10 s
 * for it (the lease thread records it again after a Redis restart).
 * Returns the number of distinct servers it names; 0 if there is none. */
static uint32_t region_servers(struct dsm_reg *reg, struct dsm_reg_region *out)
{
	struct dsm_reg_region *v = NULL;
	uint32_t distinct = 0;
	size_t n = 0;

	for (int tries = 0; tries < 100 && !n; tries++) {
		dsm_reg_regions_free(v, n);
		TH_CHECK(dsm_reg_list_regions(reg, &v, &n, NULL, NULL) == 0);
		if (!n)
			usleep(100000);
	}
	if (n != 1) {
		dsm_reg_regions_free(v, n);
		return 0;
	}
	*out = v[0];
	v[0].ext = NULL;
	dsm_reg_regions_free(v, n);
	for (uint32_t i = 0; i < out->n; i++) {
		bool seen = false;

		for (uint32_t j = 0; j < i; j++)
			seen |= out->ext[j].server == out->ext[i].server;
		distinct += !seen;
	}
	return distinct;
}

static struct dsm_reg *open_registry(void)
{
	struct dsm_reg_addr a;
	struct dsm_reg *reg;
	const char *pass = getenv("DSM_REGISTRY_PASSWORD_FILE");
	char err[512];

	if (dsm_reg_addr_init(&a, getenv("DSM_REGISTRY"), pass && *pass ?
			      pass : NULL, "DSM_REGISTRY_PASSWORD_FILE", err,
			      sizeof(err)) ||
	    dsm_reg_open(&a, getenv("DSM_CLUSTER"), &reg, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	return reg;
}

/* After the run: the records say what the library did. */
static void check_registry(int nservers)
{
	struct dsm_reg *reg = open_registry();
	struct dsm_reg_region rec = { 0 };
	struct dsm_reg_client *c;
	size_t nc;

	TH_CHECK(region_servers(reg, &rec) == (uint32_t)nservers);
	TH_CHECK(rec.size == REGION && rec.ext[rec.n - 1].off +
					       rec.ext[rec.n - 1].len == REGION);
	TH_CHECK(dsm_reg_list_clients(reg, &c, &nc) == 0 && nc == 1 &&
		 c[0].id == rec.owner && c[0].pid == (uint32_t)getpid());
	free(c);
	dsm_reg_region_clear(&rec);
	dsm_free(far);
	TH_CHECK(region_servers(reg, &rec) == 0);
	dsm_shutdown();
	TH_CHECK(dsm_reg_list_clients(reg, &c, &nc) == 0 && nc == 0);
	free(c);
	dsm_reg_close(reg);
}

int main(int argc, char **argv)
{
	struct th_server srv[MAX_SERVERS];
	bool cluster = argc == 3 && !strcmp(argv[1], "--cluster");
	int nservers = argc == 3 && (cluster || !strcmp(argv[1], "--servers")) ?
			       atoi(argv[2]) : 1;
	pthread_t th[NTHREADS];
	struct dsm_stats s;
	uint64_t used = 0;

	TH_CHECK(nservers >= 1 && nservers <= MAX_SERVERS);
	if (cluster)
		TH_CHECK(dsm_init(&(struct dsm_options){ .local_mem = BUDGET })
			 == 0);
	else if (nservers == 1)
		tc_start(&srv[0], "256M", BUDGET, 0);
	else
		start_striped(srv, nservers);
	far = dsm_alloc(REGION);
	ref = calloc(NWORDS, sizeof(*ref));
	TH_CHECK(far && ref);

	for (uintptr_t t = 0; t < NTHREADS; t++)
		TH_CHECK(pthread_create(&th[t], NULL, worker, (void *)t) == 0);
	for (int t = 0; t < NTHREADS; t++)
		pthread_join(th[t], NULL);
	TH_CHECK(mismatches == 0);

	for (uint64_t w = 0; w < NWORDS; w++)
		if (far[w] != ref[w] && mismatches++ < 5)
			fprintf(stderr, "sweep: word %lu got %#lx want %#lx\n",
				(unsigned long)w, (unsigned long)far[w],
				(unsigned long)ref[w]);
	TH_CHECK(mismatches == 0);

	s = tc_stats();
	printf("missing %lu wp %lu fetched %lu zero %lu written back %lu "
	       "evicted %lu resident %lu/%lu\n",
	       (unsigned long)s.missing_faults, (unsigned long)s.wp_faults,
	       (unsigned long)s.pages_fetched, (unsigned long)s.pages_zero_filled,
	       (unsigned long)s.pages_written_back, (unsigned long)s.pages_evicted,
	       (unsigned long)s.resident_pages, (unsigned long)s.budget_pages);
	/* the data really went through the server and came back */
	TH_CHECK(s.pages_evicted > REGION / 4096);
	TH_CHECK(s.pages_written_back > 0 && s.pages_fetched > 0);
	TH_CHECK(s.resident_pages <= s.budget_pages);
	if (cluster) {
		check_registry(nservers);
		free(ref);
		printf("integrity: ok\n");
		return 0;
	}
	for (int i = 0; i < nservers; i++) {
		uint64_t u = th_server_used(&srv[i]);

		printf("server %d holds %lu bytes\n", i, (unsigned long)u);
		TH_CHECK(nservers == 1 || (u > 0 && u < REGION));
		used += u;
	}
	TH_CHECK(used == REGION); /* every byte placed exactly once */
	dsm_free(far);
	TH_CHECK(tc_stats().resident_pages == 0); /* accounting is exact */
	dsm_shutdown();
	for (int i = 0; i < nservers; i++) {
		TH_CHECK(th_server_used(&srv[i]) == 0); /* freed everywhere */
		th_server_stop(&srv[i]);
	}
	free(ref);
	printf("integrity: ok\n");
	return 0;
}
