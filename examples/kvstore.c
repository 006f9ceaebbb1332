/*
 * kvstore.c - dsm-example-kvstore (room: examples): a key-value store
 * larger than the memory it may use.
 *
 * The hash table (--mem, default 1 GiB) comes from dsm_alloc(): it lives
 * on a dsm-server, and this process keeps at most DSM_LOCAL_MEM of it in
 * RAM.  The code reads and writes it through plain pointers - there are no
 * get/put calls.  When an access lands on a page that is not resident, the
 * thread page-faults, libdsm fetches the page from the server (making room
 * by dropping another page, written back first if it was modified), and
 * the access completes.  The one visible difference from malloc() is the
 * cost: tens of microseconds for a far page instead of nanoseconds, so
 * good far-memory code cares about locality, as the build phase shows.
 *
 *   dsm-server --listen 127.0.0.1:7000 --capacity 4G &
 *   DSM_SERVERS=127.0.0.1:7000 DSM_LOCAL_MEM=64M \
 *       dsm-example-kvstore --mem 1G --lookups 200000 --threads 2
 *
 * 1. build:   insert keys until the table is 70% full;
 * 2. lookups: random lookups from --threads threads (kv_lookups.c), a
 *             quarter of them for absent keys, one in ten of the others
 *             turned into an update;
 * 3. scan:    read the whole table in order and check every record.
 * Every value read is checked.  Exit status: 0 if all were right, 1 if
 * any was wrong, 2 if the run could not start.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dsm.h"
#include "kvstore.h"

#define LOAD_PERCENT 70   /* linear probing slows sharply beyond ~80% */
#define MAX_THREADS 64
#define MIB (1024.0 * 1024.0)

uint64_t kv_key(const struct kv_run *run, uint64_t i)
{
	return kv_mix(i + run->seed * 0x100000001b3ull);
}

double kv_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void kv_progress_start(struct kv_progress *p, const char *what,
		       uint64_t total)
{
	*p = (struct kv_progress){ what, total, total / 10, kv_now() };
}

void kv_progress(struct kv_progress *p, uint64_t done)
{
	if (done < p->next || p->next >= p->total)
		return;
	printf("kvstore: %-8s %3.0f%%  %6.1f s\n", p->what,
	       100.0 * done / p->total, kv_now() - p->t0);
	fflush(stdout);
	p->next += p->total >= 10 ? p->total / 10 : p->total;
}

/* ---- options ------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: dsm-example-kvstore [--mem SIZE] [--lookups N] "
		"[--threads T] [--seed S]\n"
		"  --mem SIZE     hash table size in far memory (default 1G)\n"
		"  --lookups N    random lookups in phase 2 (default 200000)\n"
		"  --threads T    threads doing them (default 1)\n"
		"  --seed S       picks the keys (default 1)\n"
		"Environment: DSM_SERVERS=host:port of a dsm-server (required),\n"
		"DSM_LOCAL_MEM=64M how much of the table may be resident.\n");
	exit(2);
}

/* "512M", "1G", "1048576" */
static uint64_t parse_size(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (errno || end == s || *end || *s == '-')
		usage();
	return v;
}

static uint64_t parse_num(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-')
		usage();
	return v;
}

static void parse_args(int argc, char **argv, struct kv_run *run,
		       uint64_t *mem)
{
	static const struct option opts[] = {
		{ "mem", 1, NULL, 'm' }, { "lookups", 1, NULL, 'l' },
		{ "threads", 1, NULL, 't' }, { "seed", 1, NULL, 's' },
		{ "help", 0, NULL, 'h' }, { 0 }
	};
	int c;

	*mem = 1ull << 30;
	*run = (struct kv_run){ .seed = 1, .threads = 1, .lookups = 200000 };
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm': *mem = parse_size(optarg); break;
		case 'l': run->lookups = parse_num(optarg); break;
		case 't': run->threads = parse_num(optarg); break;
		case 's': run->seed = parse_num(optarg); break;
		default: usage();
		}
	}
	if (optind != argc || *mem < (1 << 20) || run->threads < 1 ||
	    run->threads > MAX_THREADS)
		usage();
}

/* ---- phase 1: build -------------------------------------------------- */

/* Slots per build pass: half the resident budget, so the stripe being
 * filled stays in local memory while it is filled. */
static uint64_t stripe_slots(void)
{
	struct dsm_stats st;
	uint64_t bytes = 32 << 20;

	if (dsm_stats(&st) == 0 && st.budget_pages)
		bytes = st.budget_pages * 4096 / 2;
	if (bytes < sizeof(struct kv_record))
		bytes = sizeof(struct kv_record);
	return bytes / sizeof(struct kv_record);
}

static uint64_t build_stripe(struct kv_run *run, uint64_t lo, uint64_t hi)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < run->nkeys; i++) {
		uint64_t key = kv_key(run, i);
		uint64_t home = kv_home(&run->table, key);

		if (home >= lo && home < hi)
			n += kv_insert(&run->table, key);
	}
	return n;
}

/*
 * Insert keys 0..nkeys-1.
 *
 * In key order the inserts would land all over the table: with a sixteenth
 * of it resident, nearly every one would fault a page in from the server.
 * Instead the table is built in stripes of half the local budget: each
 * pass walks all the keys but inserts only those whose home slot lies in
 * the current stripe.  Every page is then faulted in once (as zeros, with
 * no round trip: it was never written) and written back once, when it is
 * evicted after its stripe is done.  Recomputing hashes every pass costs
 * far less than the faults it saves.
 */
static int build(struct kv_run *run, double *seconds)
{
	uint64_t nslots = run->table.nslots, stripe = stripe_slots();
	uint64_t inserted = 0;
	struct kv_progress p;

	kv_progress_start(&p, "build", nslots);
	for (uint64_t lo = 0; lo < nslots; lo += stripe) {
		inserted += build_stripe(run, lo, lo + stripe);
		kv_progress(&p, lo + stripe);
	}
	*seconds = kv_now() - p.t0;
	if (inserted != run->nkeys) {
		fprintf(stderr, "kvstore: only %" PRIu64 " of %" PRIu64
			" keys could be inserted\n", inserted, run->nkeys);
		return -1;
	}
	return 0;
}

/* ---- phase 3: scan ----------------------------------------------------- */

struct scan_result {
	uint64_t records, bad;
	double seconds;
};

/*
 * Read every slot in order.  Sequential access is where far memory is
 * cheapest: libdsm notices the pattern and fetches pages ahead of the scan.
 * Besides checking each value, the sum of all versions must equal one per
 * key plus one per update: an update lost anywhere (say, a dirty page
 * dropped without reaching the server) shows up as a smaller sum.
 */
static uint64_t scan(const struct kv_run *run, struct scan_result *s)
{
	uint64_t version_sum = 0;
	double t0 = kv_now();

	*s = (struct scan_result){ 0 };
	for (uint64_t i = 0; i < run->table.nslots; i++) {
		const struct kv_record *r = &run->table.slots[i];

		if (r->version == 0)
			continue;
		s->records++;
		version_sum += r->version;
		if (!kv_value_ok(r) && s->bad++ < 5)
			fprintf(stderr, "kvstore: slot %" PRIu64 ": value does "
				"not match key %#" PRIx64 " version %" PRIu64
				"\n", i, r->key, r->version);
	}
	s->seconds = kv_now() - t0;
	return version_sum;
}

/* ---- the run ------------------------------------------------------------ */

static void print_plan(const struct kv_run *run, uint64_t mem)
{
	struct dsm_stats st = { 0 };

	dsm_stats(&st);
	printf("kvstore: hash table of %.0f MiB in far memory: %" PRIu64
	       " slots of %zu bytes, %" PRIu64 " keys (%d%% full)\n",
	       mem / MIB, run->table.nslots, sizeof(struct kv_record),
	       run->nkeys, LOAD_PERCENT);
	printf("kvstore: at most %.0f MiB of it resident (DSM_LOCAL_MEM): "
	       "%.1f%% of the table\n", st.budget_pages * 4096 / MIB,
	       100.0 * st.budget_pages * 4096 / mem);
	fflush(stdout);
}

static void print_summary(const struct kv_run *run, double build_s,
			  const struct kv_totals *t, const struct scan_result *s,
			  uint64_t failed)
{
	printf("\nkvstore: summary\n");
	printf("  keys inserted   %" PRIu64 " in %.1f s (%.0f inserts/s)\n",
	       run->nkeys, build_s, run->nkeys / build_s);
	printf("  lookups         %" PRIu64 " from %u thread(s) in %.1f s: "
	       "%.0f lookups/s, %.1f us each\n", run->lookups, run->threads,
	       t->seconds, run->lookups / t->seconds,
	       run->lookups ? t->seconds * 1e6 * run->threads / run->lookups
			    : 0.0);
	printf("                  %" PRIu64 " found, %" PRIu64 " absent keys "
	       "not found, %" PRIu64 " updates\n", t->hits, t->misses,
	       t->updates);
	printf("  scan            %" PRIu64 " slots, %" PRIu64 " records in "
	       "%.1f s (%.0f MiB/s)\n", run->table.nslots, s->records,
	       s->seconds, run->table.nslots * sizeof(struct kv_record) /
	       MIB / s->seconds);
	printf("  verified        %" PRIu64 " lookups and %" PRIu64
	       " records: %s, %" PRIu64 " failed\n\n",
	       run->lookups, s->records, failed ? "FAILURES" : "all OK",
	       failed);
}

static int setup(struct kv_run *run, uint64_t mem)
{
	int err = dsm_init(NULL);

	if (err) {
		fprintf(stderr, "kvstore: dsm_init: %s\n(start a dsm-server "
			"and set DSM_SERVERS=host:port; see "
			"examples/README.md)\n", dsm_strerror(err));
		return -1;
	}
	if (kv_create(&run->table, mem))
		return -1;
	run->nkeys = run->table.nslots * LOAD_PERCENT / 100;
	/* ordinary malloc: this bookkeeping stays local */
	run->versions = malloc(run->nkeys);
	if (!run->versions) {
		fprintf(stderr, "kvstore: out of local memory\n");
		return -1;
	}
	memset(run->versions, 1, run->nkeys);
	return 0;
}

int main(int argc, char **argv)
{
	struct kv_run run;
	struct kv_totals totals;
	struct scan_result s;
	double build_s;
	uint64_t mem, version_sum, failed;
	int rc = 2;

	parse_args(argc, argv, &run, &mem);
	if (setup(&run, mem))
		goto out;
	print_plan(&run, mem);
	if (build(&run, &build_s))
		goto out;
	if (kv_lookups(&run, &totals)) {
		fprintf(stderr, "kvstore: cannot start threads\n");
		goto out;
	}
	version_sum = scan(&run, &s);
	failed = totals.failed + s.bad;
	if (s.records != run.nkeys ||
	    version_sum != run.nkeys + totals.updates) {
		fprintf(stderr, "kvstore: scan found %" PRIu64 " records with "
			"version sum %" PRIu64 "; expected %" PRIu64 " and %"
			PRIu64 "\n", s.records, version_sum, run.nkeys,
			run.nkeys + totals.updates);
		failed++;
	}
	print_summary(&run, build_s, &totals, &s, failed);
	dsm_stats_print(stdout);
	printf("\nkvstore: %s\n", failed ? "FAILED" : "PASS");
	rc = failed ? 1 : 0;
out:
	if (run.table.slots)
		kv_destroy(&run.table);
	free(run.versions);
	dsm_shutdown();
	return rc;
}
