/*
 * workload.c - dsm-bench-workload (room: benchmarks): one access pattern
 * over a buffer much larger than local memory, on libdsm or on kernel-paged
 * local memory.
 *
 *   dsm-bench-workload --backend dsm|dsm-huge|local --size 1G
 *                      --pattern seq|uniform|zipf|rmw [--ops N]
 *                      [--threads T] [--seed S] [--zipf-theta 0.99]
 *                      [--warmup N]
 *
 * Phase 1 (fill) writes every word, so every page exists and most have
 * been pushed out by the time phase 2 (timed) reads them back.  With
 * --warmup N, N accesses of the pattern run untimed in between: a random
 * pattern's first pass over its hot set is all compulsory misses, which no
 * victim policy can avoid, so policies are compared after it.  Prints one
 * JSON line; exits 1 if any word read back differs from what was written.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "backend.h"
#include "bench_util.h"
#include "patterns.h"
#include "util.h"

#define DEFAULT_OPS 300000 /* a few seconds of random faults */
#define MAX_THREADS 64

struct opts {
	const char *backend;
	uint64_t size, ops, seed, warmup;
	unsigned threads;
	double theta;
	enum pattern pattern;
};

static void usage(void)
{
	fprintf(stderr,
		"usage: dsm-bench-workload --backend dsm|dsm-huge|local --size SIZE\n"
		"         --pattern seq|uniform|zipf|rmw [--ops N] [--threads T]\n"
		"         [--seed S] [--zipf-theta THETA] [--warmup N]\n"
		"dsm takes DSM_SERVERS, DSM_LOCAL_MEM, DSM_EVICT, DSM_PREFETCH "
		"from the environment.\n");
	exit(2);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "backend", 1, NULL, 'b' }, { "size", 1, NULL, 's' },
		{ "pattern", 1, NULL, 'p' }, { "ops", 1, NULL, 'n' },
		{ "threads", 1, NULL, 't' }, { "seed", 1, NULL, 'S' },
		{ "zipf-theta", 1, NULL, 'z' }, { "warmup", 1, NULL, 'w' },
		{ "help", 0, NULL, 'h' },
		{ 0 }
	};
	const char *pattern = NULL;
	int c;

	*o = (struct opts){ .ops = DEFAULT_OPS, .seed = 1, .threads = 1,
			    .theta = 0.99 };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'b': o->backend = optarg; break;
		case 's': o->size = bench_arg_size("--size", optarg); break;
		case 'p': pattern = optarg; break;
		case 'n': o->ops = bench_arg_u64("--ops", optarg); break;
		case 't': o->threads = bench_arg_u64("--threads", optarg); break;
		case 'S': o->seed = bench_arg_u64("--seed", optarg); break;
		case 'z': o->theta = bench_arg_double("--zipf-theta", optarg); break;
		case 'w': o->warmup = bench_arg_u64("--warmup", optarg); break;
		default: usage();
		}
	}
	if (optind != argc || !o->backend || !o->size || !pattern)
		usage();
	if (pattern_parse(pattern, &o->pattern))
		bench_die("dsm-bench-workload: --pattern %s: expected seq, "
			  "uniform, zipf or rmw", pattern);
	if (o->size % BENCH_PAGE || o->size / BENCH_PAGE > UINT32_MAX)
		bench_die("dsm-bench-workload: --size must be a multiple of "
			  "4K and below 16T");
	if (o->threads < 1 || o->threads > MAX_THREADS)
		bench_die("dsm-bench-workload: --threads must be 1..%d",
			  MAX_THREADS);
	if (o->warmup && o->pattern != PAT_UNIFORM && o->pattern != PAT_ZIPF)
		bench_die("dsm-bench-workload: --warmup is for the read-only "
			  "random patterns (uniform, zipf)");
	if (o->theta <= 0)
		bench_die("dsm-bench-workload: --zipf-theta must be > 0");
}

/* Zipf ranks go to pages through a fixed shuffle: the hot pages are
 * scattered over the buffer, as in a real heap, rather than adjacent,
 * which sequential prefetch would turn into an unfair win. */
static int setup_zipf(struct wl *w, const struct opts *o)
{
	struct bench_rng r;

	zipf_init(&w->zipf, w->npages, o->theta);
	w->page_of_rank = malloc(w->npages * sizeof(*w->page_of_rank));
	if (!w->page_of_rank)
		return -1;
	bench_rng_seed(&r, o->seed ^ 0x5eedull);
	bench_shuffle_u32(w->page_of_rank, w->npages, &r);
	return 0;
}

static int setup_workers(struct worker *k, const struct wl *w,
			 const struct opts *o)
{
	for (unsigned i = 0; i < o->threads; i++) {
		k[i] = (struct worker){ .wl = w, .id = i,
			.ops = o->ops / o->threads +
			       (i < o->ops % o->threads) };
		bench_rng_seed(&k[i].rng, o->seed * 1000003 + i);
		if (o->pattern == PAT_RMW && track_init(&k[i].track, k[i].ops))
			return -1;
	}
	return 0;
}

struct phase {
	pthread_barrier_t start;
	struct worker *k;
	void (*fn)(struct worker *);
};

struct thread_arg {
	struct phase *ph;
	unsigned i;
};

static void *phase_thread(void *p)
{
	struct thread_arg *a = p;

	pthread_barrier_wait(&a->ph->start);
	a->ph->fn(&a->ph->k[a->i]);
	return NULL;
}

/* Run fn on every worker, one thread each; seconds from the moment all
 * threads are ready until the last finishes. */
static double run_phase(struct worker *k, unsigned n,
			void (*fn)(struct worker *))
{
	struct phase ph = { .k = k, .fn = fn };
	struct thread_arg args[MAX_THREADS];
	pthread_t tid[MAX_THREADS];
	uint64_t t0;

	pthread_barrier_init(&ph.start, NULL, n + 1);
	for (unsigned i = 0; i < n; i++) {
		args[i] = (struct thread_arg){ &ph, i };
		if (pthread_create(&tid[i], NULL, phase_thread, &args[i]))
			bench_die("dsm-bench-workload: pthread_create failed");
	}
	pthread_barrier_wait(&ph.start);
	t0 = dsm_now_ns();
	for (unsigned i = 0; i < n; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&ph.start);
	return (dsm_now_ns() - t0) / 1e9;
}

/* o->warmup untimed accesses of the pattern, split over the threads. */
static void warm_up(struct worker *k, const struct opts *o)
{
	for (unsigned i = 0; i < o->threads; i++)
		k[i].ops = o->warmup / o->threads + (i < o->warmup % o->threads);
	run_phase(k, o->threads, wl_run);
	for (unsigned i = 0; i < o->threads; i++)
		k[i].ops = o->ops / o->threads + (i < o->ops % o->threads);
}

static long major_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_majflt;
}

static void print_result(const struct opts *o, const struct backend *b,
			 double fill_s, double s, long majflt,
			 const struct dsm_stats *st0, const struct dsm_stats *st1)
{
	uint64_t ops = o->pattern == PAT_SEQ ? o->size / 8 : o->ops;
	uint64_t bytes = o->pattern == PAT_SEQ ? o->size : ops * 8;
	const char *evict = getenv("DSM_EVICT");

	printf("{\"backend\":\"%s\",\"pattern\":\"%s\",\"size\":%" PRIu64
	       ",\"ops\":%" PRIu64 ",\"threads\":%u,\"seconds\":%.6f"
	       ",\"mb_per_s\":%.1f,\"ops_per_s\":%.0f,\"us_per_op\":%.4f"
	       ",\"fill_seconds\":%.3f,\"major_faults\":%ld"
	       ",\"warmup_ops\":%" PRIu64,
	       o->backend, pattern_name(o->pattern), o->size, ops, o->threads,
	       s, bytes / s / 1e6, ops / s, s * 1e6 / ops, fill_s, majflt,
	       o->warmup);
	if (b->dsm)
		printf(",\"evict\":\"%s\"", evict ? evict : "2q");
	backend_stats_json(stdout, b, st0, st1);
	printf("}\n");
}

static uint64_t total_mismatches(const struct worker *k, unsigned n)
{
	uint64_t bad = 0;

	for (unsigned i = 0; i < n; i++)
		bad += k[i].mismatches;
	return bad;
}

int main(int argc, char **argv)
{
	struct worker k[MAX_THREADS] = { 0 };
	struct dsm_stats st0, st1;
	struct backend b = { 0 };
	struct wl w = { 0 };
	struct opts o;
	double fill_s, run_s;
	long majflt;
	uint64_t bad;
	int rc = 2;

	parse_args(argc, argv, &o);
	w = (struct wl){ .nwords = o.size / 8, .npages = o.size / BENCH_PAGE,
			 .seed = o.seed, .pattern = o.pattern,
			 .threads = o.threads };
	if ((o.pattern == PAT_ZIPF && setup_zipf(&w, &o)) ||
	    setup_workers(k, &w, &o)) {
		fprintf(stderr, "dsm-bench-workload: out of local memory\n");
		goto out;
	}
	if (backend_open(&b, o.backend, o.size))
		goto out;
	w.words = b.mem;

	fill_s = run_phase(k, o.threads, wl_fill);
	if (o.warmup)
		warm_up(k, &o);
	backend_stats(&b, &st0);
	majflt = major_faults();
	run_s = run_phase(k, o.threads, wl_run);
	majflt = major_faults() - majflt;
	backend_stats(&b, &st1);
	if (o.pattern == PAT_RMW)
		run_phase(k, o.threads, wl_verify_rmw);

	bad = total_mismatches(k, o.threads);
	if (bad) {
		fprintf(stderr, "dsm-bench-workload: FAILED: %" PRIu64
			" words read back wrong; no result printed\n", bad);
		rc = 1;
		goto out;
	}
	print_result(&o, &b, fill_s, run_s, majflt, &st0, &st1);
	rc = 0;
out:
	backend_close(&b);
	for (unsigned i = 0; i < o.threads; i++)
		track_free(&k[i].track);
	free(w.page_of_rank);
	return rc;
}
