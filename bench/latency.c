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

void lat_summarise(struct lat *l, uint64_t *ns, uint64_t n)
{
	l->p50_us = bench_percentile(ns, n, 50) / 1e3;
	l->p99_us = bench_percentile(ns, n, 99) / 1e3;
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

/* "name_p50_us":x,"name_p99_us":y - or nulls when the part failed. */
static void put_lat(const char *name, const struct lat *l, int ok)
{
	if (ok)
		printf("\"%s_p50_us\":%.2f,\"%s_p99_us\":%.2f", name, l->p50_us,
		       name, l->p99_us);
	else
		printf("\"%s_p50_us\":null,\"%s_p99_us\":null", name, name);
}

static void print_result(const struct opts *o, const struct lat *uffd,
			 int uffd_ok, const struct lat *tcp, int tcp_ok,
			 const struct lat_remote *rem, int rem_ok, double ratio)
{
	printf("{\"samples\":%" PRIu64 ",\"rounds\":%" PRIu64 ",",
	       o->samples, o->rounds);
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

static void med_lat(const struct round *rs, uint64_t n, size_t off_p50,
		    size_t off_p99, struct lat *out)
{
	out->p50_us = med_of(rs, n, off_p50);
	out->p99_us = med_of(rs, n, off_p99);
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
#define LAT(f) offsetof(struct round, f.p50_us), offsetof(struct round, f.p99_us)
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
