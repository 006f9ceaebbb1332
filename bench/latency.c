/*
 * latency.c - dsm-bench-latency (room: benchmarks): the fault latency
 * libdsm achieves next to the two costs it is built from.
 *
 *   dsm-bench-latency [--server HOST:PORT] [--samples N] [--seed S]
 *
 * (a) local userfaultfd round trip, (b) TCP 4 KiB round trip to the
 * server, (c) remote fault through libdsm.  Without --server only (a)
 * runs.  Prints one JSON line; a part that cannot run prints null and
 * makes the exit status 1.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"
#include "lat.h"

#define DEFAULT_SAMPLES 20000

void lat_summarise(struct lat *l, uint64_t *ns, uint64_t n)
{
	l->p50_us = bench_percentile(ns, n, 50) / 1e3;
	l->p99_us = bench_percentile(ns, n, 99) / 1e3;
	l->count = n;
}

struct opts {
	const char *server;
	uint64_t samples, seed;
};

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "server", 1, NULL, 's' }, { "samples", 1, NULL, 'n' },
		{ "seed", 1, NULL, 'S' }, { "help", 0, NULL, 'h' }, { 0 }
	};
	int c;

	*o = (struct opts){ .samples = DEFAULT_SAMPLES, .seed = 1 };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': o->server = optarg; break;
		case 'n': o->samples = bench_arg_u64("--samples", optarg); break;
		case 'S': o->seed = bench_arg_u64("--seed", optarg); break;
		default:
			fprintf(stderr, "usage: dsm-bench-latency [--server "
				"HOST:PORT] [--samples N] [--seed S]\n");
			exit(2);
		}
	}
	if (optind != argc || o->samples < 100 || o->samples > (1u << 24))
		bench_die("dsm-bench-latency: --samples must be 100..16M");
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
			 const struct lat_remote *rem, int rem_ok)
{
	printf("{\"samples\":%" PRIu64 ",", o->samples);
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
		printf(",\"ratio_remote_vs_sum\":%.3f", rem->timed.p50_us /
		       (tcp->p50_us + uffd->p50_us));
	else
		printf(",\"ratio_remote_vs_sum\":null");
	printf("}\n");
}

int main(int argc, char **argv)
{
	struct lat uffd = { 0 }, tcp = { 0 };
	struct lat_remote rem = { 0 };
	int uffd_ok, tcp_ok = 0, rem_ok = 0;
	struct opts o;

	parse_args(argc, argv, &o);
	uffd_ok = !lat_uffd_local(o.samples, o.seed, &uffd);
	if (o.server) {
		tcp_ok = !lat_tcp_rtt(o.server, o.samples, o.seed, &tcp);
		rem_ok = !lat_remote_fault(o.server, o.samples, o.seed, &rem);
	} else {
		fprintf(stderr, "dsm-bench-latency: no --server: TCP and "
			"remote fault latency not measured\n");
	}
	print_result(&o, &uffd, uffd_ok, &tcp, tcp_ok, &rem, rem_ok);
	return uffd_ok && (!o.server || (tcp_ok && rem_ok)) ? 0 : 1;
}
