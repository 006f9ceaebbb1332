/*
 * alloc_churn.c - an allocation-heavy program whose allocations all stay
 * below the preload shim's threshold (128 KiB) (room: benchmarks): what
 * running under libdsm-preload.so costs a program that never gets far
 * memory.
 *
 *   dsm-bench-alloc-churn [--ops N] [--threads T] [--slots S] [--max-size B]
 *                         [--big B] [--seed S]
 *
 * Each thread keeps S slots; each op picks a random slot, frees the block
 * there (if any) and puts a new one of a random size, 16 B to --max-size
 * (8 KiB), in it, mostly malloc, one op in 8 calloc and one in 8 realloc
 * of the block in place of the free.  A block's first and last bytes are
 * written and read back, so memory is touched without the loop becoming a
 * memset benchmark.  Sizes are log-uniform, so small blocks dominate, as
 * they do in real programs.
 *
 * Before the timed loop it allocates and touches one block of --big bytes
 * (1 MiB): above the threshold, so under the shim it is the first large
 * request, which connects to the memory server (with DSM_REQUIRE=1 a run
 * without one fails) and creates an arena, and every small free from then
 * on is checked against a real arena table.  Plain runs do the same.
 *
 * Prints one JSON line: seconds (the timed loop only), ns_per_op, ops,
 * threads, and a checksum of what was read back, which must not depend on
 * the shim.  No libdsm: the program is meant to be run with and without
 * LD_PRELOAD.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

struct job {
	uint64_t ops, slots, max_size, seed;
	uint64_t sum;
	pthread_t tid;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* log-uniform in [16, max]: 16 << k, then a random offset below that */
static size_t pick_size(struct bench_rng *r, uint64_t max)
{
	uint64_t x = bench_rng_next(r), lo = 16, hi;
	unsigned bits = 0;

	while ((lo << (bits + 1)) <= max)
		bits++;
	lo <<= x % (bits + 1);
	hi = lo * 2 > max ? max : lo * 2;
	return lo + (x >> 8) % (hi - lo + 1);
}

static void die(const char *what)
{
	fprintf(stderr, "alloc_churn: %s failed\n", what);
	exit(1);
}

static void *churn(void *arg)
{
	struct job *j = arg;
	struct bench_rng r;
	unsigned char **slot = calloc(j->slots, sizeof(*slot));
	size_t *len = calloc(j->slots, sizeof(*len));
	uint64_t sum = 0;

	if (!slot || !len)
		die("calloc of the slot table");
	bench_rng_seed(&r, j->seed);
	for (uint64_t i = 0; i < j->ops; i++) {
		uint64_t x = bench_rng_next(&r), s = x % j->slots;
		size_t n = pick_size(&r, j->max_size);
		unsigned char *p;

		switch ((x >> 40) & 7) {
		case 0: /* calloc: the block must read as zeros */
			free(slot[s]);
			p = calloc(1, n);
			if (p && (p[0] | p[n - 1]))
				die("calloc zeroing");
			break;
		case 1: { /* realloc keeps the block's first byte */
			int first = slot[s] ? slot[s][0] : -1;

			p = realloc(slot[s], n);
			if (p && first >= 0 && p[0] != first)
				die("realloc keeping the contents");
			break;
		}
		default:
			free(slot[s]);
			p = malloc(n);
			break;
		}
		if (!p)
			die("malloc");
		p[0] = (unsigned char)x;
		p[n - 1] = (unsigned char)(x >> 8);
		sum += p[0] + p[n - 1];
		slot[s] = p;
		len[s] = n;
	}
	for (uint64_t s = 0; s < j->slots; s++) {
		if (slot[s])
			sum += slot[s][len[s] - 1];
		free(slot[s]);
	}
	free(slot);
	free(len);
	j->sum = sum;
	return NULL;
}

static uint64_t arg_u64(const char *opt, const char *v)
{
	char *end;
	unsigned long long x = strtoull(v, &end, 0);

	if (end == v)
		goto bad;
	switch (*end) {
	case 'K': case 'k': x <<= 10; end++; break;
	case 'M': case 'm': x <<= 20; end++; break;
	case 'G': case 'g': x <<= 30; end++; break;
	}
	if (*end)
		goto bad;
	return x;
bad:
	fprintf(stderr, "alloc_churn: %s %s: expected a number\n", opt, v);
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t ops = 50000000, threads = 1, slots = 4096, max_size = 8192;
	uint64_t big = 1 << 20, seed = 1, sum = 0;
	struct job *jobs;
	unsigned char *b = NULL;
	double t0, t1;

	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v) {
			fprintf(stderr, "alloc_churn: %s: unknown or missing value\n", o);
			return 2;
		}
		if (!strcmp(o, "--ops"))
			ops = arg_u64(o, v);
		else if (!strcmp(o, "--threads"))
			threads = arg_u64(o, v);
		else if (!strcmp(o, "--slots"))
			slots = arg_u64(o, v);
		else if (!strcmp(o, "--max-size"))
			max_size = arg_u64(o, v);
		else if (!strcmp(o, "--big"))
			big = arg_u64(o, v);
		else if (!strcmp(o, "--seed"))
			seed = arg_u64(o, v);
		else {
			fprintf(stderr, "alloc_churn: unknown option %s\n", o);
			return 2;
		}
		i++;
	}
	if (!threads || !slots || max_size < 16) {
		fprintf(stderr, "alloc_churn: --threads and --slots must be > 0, --max-size >= 16\n");
		return 2;
	}
	if (big) {
		b = malloc(big);
		if (!b)
			die("malloc of the big block");
		memset(b, 0x5a, big);
		sum += b[big - 1];
	}
	jobs = calloc(threads, sizeof(*jobs));
	if (!jobs)
		die("calloc");
	t0 = now();
	for (uint64_t t = 0; t < threads; t++) {
		jobs[t] = (struct job){ .ops = ops / threads, .slots = slots,
					.max_size = max_size, .seed = seed + t };
		if (pthread_create(&jobs[t].tid, NULL, churn, &jobs[t]))
			die("pthread_create");
	}
	for (uint64_t t = 0; t < threads; t++) {
		pthread_join(jobs[t].tid, NULL);
		sum += jobs[t].sum;
	}
	t1 = now();
	free(b);
	printf("{\"seconds\":%.4f,\"ns_per_op\":%.2f,\"ops\":%llu,"
	       "\"threads\":%llu,\"checksum\":%llu}\n",
	       t1 - t0, (t1 - t0) * 1e9 / (double)(ops / threads * threads),
	       (unsigned long long)(ops / threads * threads),
	       (unsigned long long)threads, (unsigned long long)sum);
	free(jobs);
	return 0;
}
