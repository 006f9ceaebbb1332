/*
 * latency.c - dsm-bench-latency (room: benchmarks): the fault latency
 * libdsm achieves next to the two costs it is built from.
 *
 *   dsm-bench-latency [--server HOST:PORT] [--samples N] [--rounds R]
 *                     [--seed S]
 *
 * (a) local userfaultfd round trip, (b) TCP 4 KiB round trip to the
 * server, (c) remote fault through libdsm.  Without --server only (a)
 * runs.  The samples are split into R rounds of a, b, c in turn, and each
 * figure is the median over the rounds: this machine's costs drift from
 * one second to the next, and a ratio of (c) to (a)+(b) taken seconds
 * apart measured the drift as much as the library.  Prints one JSON line;
 * a part that cannot run prints null and makes the exit status 1.
 * Besides p50 and p99, each measured path prints its CDF
 * ("NAME_cdf_us", at the percentiles of "cdf_pct"), the median over the
 * rounds of each point, for bench/plots.py.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"
#include "lat.h"

#define DEFAULT_SAMPLES 20000
#define DEFAULT_ROUNDS 5
#define MAX_ROUNDS 32

const double lat_cdf_pct[LAT_CDF_POINTS] = {
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
	20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37,
	38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
	56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73,
	74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91,
	92, 93, 94, 95, 96, 97, 98, 99, 99.5, 99.9, 100
};

void lat_summarise(struct lat *l, uint64_t *ns, uint64_t n)
{
	/* bench_percentile sorts: the calls after the first sort sorted
	 * samples, a few thousand of them, which costs nothing to speak of */
	l->p50_us = bench_percentile(ns, n, 50) / 1e3;
	l->p99_us = bench_percentile(ns, n, 99) / 1e3;
	for (int i = 0; i < LAT_CDF_POINTS; i++)
		l->cdf_us[i] = bench_percentile(ns, n, lat_cdf_pct[i]) / 1e3;
	l->has_cdf = true;
	l->count = n;
}

struct opts {
	const char *server;
	uint64_t samples, rounds, seed;
};

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "server", 1, NULL, 's' }, { "samples", 1, NULL, 'n' },
		{ "rounds", 1, NULL, 'r' }, { "seed", 1, NULL, 'S' },
		{ "help", 0, NULL, 'h' }, { 0 }
	};
	int c;

	*o = (struct opts){ .samples = DEFAULT_SAMPLES,
			    .rounds = DEFAULT_ROUNDS, .seed = 1 };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': o->server = optarg; break;
		case 'n': o->samples = bench_arg_u64("--samples", optarg); break;
		case 'r': o->rounds = bench_arg_u64("--rounds", optarg); break;
		case 'S': o->seed = bench_arg_u64("--seed", optarg); break;
		default:
			fprintf(stderr, "usage: dsm-bench-latency [--server "
				"HOST:PORT] [--samples N] [--rounds R] "
				"[--seed S]\n");
			exit(2);
		}
	}
	if (optind != argc || o->samples < 100 || o->samples > (1u << 24))
		bench_die("dsm-bench-latency: --samples must be 100..16M");
	if (o->rounds < 1 || o->rounds > MAX_ROUNDS ||
	    o->samples / o->rounds < 100)
		bench_die("dsm-bench-latency: --rounds must be 1..32 with at "
			  "least 100 samples each");
}

/* ,"KEY":[v0,v1,...] for an array of LAT_CDF_POINTS doubles. */
static void put_points(const char *key, const double *v)
{
	printf(",\"%s\":[", key);
	for (int i = 0; i < LAT_CDF_POINTS; i++)
		printf("%s%.2f", i ? "," : "", v[i]);
	putchar(']');
}

/* "name_p50_us":x,"name_p99_us":y[,"name_cdf_us":[...]] - or nulls when
 * the part failed. */
static void put_lat(const char *name, const struct lat *l, int ok)
{
	char key[64];

	if (!ok) {
		printf("\"%s_p50_us\":null,\"%s_p99_us\":null", name, name);
		return;
	}
	printf("\"%s_p50_us\":%.2f,\"%s_p99_us\":%.2f", name, l->p50_us,
	       name, l->p99_us);
	if (l->has_cdf) {
		snprintf(key, sizeof(key), "%s_cdf_us", name);
		put_points(key, l->cdf_us);
	}
}

static void print_result(const struct opts *o, const struct lat *uffd,
			 int uffd_ok, const struct lat *tcp, int tcp_ok,
			 const struct lat_remote *rem, int rem_ok, double ratio)
{
	printf("{\"samples\":%" PRIu64 ",\"rounds\":%" PRIu64,
	       o->samples, o->rounds);
	put_points("cdf_pct", lat_cdf_pct);
	putchar(',');
	put_lat("uffd_local", uffd, uffd_ok);
	putchar(',');
	put_lat("tcp_rtt", tcp, tcp_ok);
	putchar(',');
	put_lat("remote_fault", &rem->timed, rem_ok);
	putchar(',');
	put_lat("lib_fault", &rem->lib, rem_ok);
	if (rem_ok)
		printf(",\"remote_faults_timed\":%" PRIu64
		       ",\"remote_blocked_mean_us\":%.2f", rem->faults,
		       rem->blocked_mean_us);
	if (uffd_ok && tcp_ok && rem_ok)
		printf(",\"ratio_remote_vs_sum\":%.3f", ratio);
	else
		printf(",\"ratio_remote_vs_sum\":null");
	printf("}\n");
}

/* One round: the three parts, a few seconds apart at most. */
struct round {
	struct lat uffd, tcp;
	struct lat_remote rem;
	int uffd_ok, tcp_ok, rem_ok;
};

static void run_round(const struct opts *o, uint64_t r, struct round *x)
{
	uint64_t n = o->samples / o->rounds, seed = o->seed + r;

	x->uffd_ok = !lat_uffd_local(n, seed, &x->uffd);
	if (!o->server)
		return;
	x->tcp_ok = !lat_tcp_rtt(o->server, n, seed, &x->tcp);
	x->rem_ok = !lat_remote_fault(o->server, n, seed, &x->rem);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, uint64_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The median over the rounds of the double at byte offset off of each
 * round (a field of struct round). */
static double med_of(const struct round *rs, uint64_t n, size_t off)
{
	double v[MAX_ROUNDS];

	for (uint64_t i = 0; i < n; i++)
		v[i] = *(const double *)((const char *)&rs[i] + off);
	return median(v, n);
}

#define MED(rs, n, field) med_of(rs, n, offsetof(struct round, field))

/* The median over the rounds of the struct lat at byte offset off of
 * each round: of its p50, its p99 and each point of its CDF (the medians
 * of points in order are in order, so the result is a CDF too). */
static void med_lat(const struct round *rs, uint64_t n, size_t off,
		    struct lat *out)
{
	const struct lat *first = (const void *)((const char *)rs + off);

	out->p50_us = med_of(rs, n, off + offsetof(struct lat, p50_us));
	out->p99_us = med_of(rs, n, off + offsetof(struct lat, p99_us));
	out->has_cdf = first->has_cdf;
	for (int i = 0; out->has_cdf && i < LAT_CDF_POINTS; i++)
		out->cdf_us[i] = med_of(rs, n, off + offsetof(struct lat, cdf_us) +
					i * sizeof(double));
}

/* The ratio the report checks, taken within each round, then the median. */
static double ratio_median(const struct round *rs, uint64_t n)
{
	double v[MAX_ROUNDS];

	for (uint64_t i = 0; i < n; i++)
		v[i] = rs[i].rem.timed.p50_us /
		       (rs[i].tcp.p50_us + rs[i].uffd.p50_us);
	return median(v, n);
}

int main(int argc, char **argv)
{
	struct round rs[MAX_ROUNDS] = { 0 }, m = { 0 };
	int uffd_ok = 1, tcp_ok = 1, rem_ok = 1;
	struct opts o;

	parse_args(argc, argv, &o);
	if (!o.server)
		fprintf(stderr, "dsm-bench-latency: no --server: TCP and "
			"remote fault latency not measured\n");
	for (uint64_t r = 0; r < o.rounds; r++) {
		run_round(&o, r, &rs[r]);
		uffd_ok &= rs[r].uffd_ok;
		tcp_ok &= rs[r].tcp_ok;
		rem_ok &= rs[r].rem_ok;
		m.rem.faults += rs[r].rem.faults;
	}
	tcp_ok &= !!o.server;
	rem_ok &= !!o.server;
#define LAT(f) offsetof(struct round, f)
	if (uffd_ok)
		med_lat(rs, o.rounds, LAT(uffd), &m.uffd);
	if (tcp_ok)
		med_lat(rs, o.rounds, LAT(tcp), &m.tcp);
	if (rem_ok) {
		med_lat(rs, o.rounds, LAT(rem.timed), &m.rem.timed);
		med_lat(rs, o.rounds, LAT(rem.lib), &m.rem.lib);
		m.rem.blocked_mean_us = MED(rs, o.rounds, rem.blocked_mean_us);
	}
#undef LAT
	print_result(&o, &m.uffd, uffd_ok, &m.tcp, tcp_ok, &m.rem, rem_ok,
		     uffd_ok && tcp_ok && rem_ok ? ratio_median(rs, o.rounds)
						 : 0);
	return uffd_ok && (!o.server || (tcp_ok && rem_ok)) ? 0 : 1;
}
