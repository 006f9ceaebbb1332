/*
 * lat.h - the three latencies dsm-bench-latency puts side by side (room:
 * benchmarks).
 *
 * A remote fault through libdsm is, at best, a local userfaultfd fault
 * plus a network round trip.  Measuring all three in one process on one
 * machine shows how much the library adds on top of that floor.
 */
#ifndef DSM_BENCH_LAT_H
#define DSM_BENCH_LAT_H

#include <stdbool.h>
#include <stdint.h>

/* The CDF a plot draws (bench/plots.py): the latency at each of these
 * percentiles, 0 (the fastest sample) to 100 (the slowest), denser in the
 * tail where the paths differ most. */
#define LAT_CDF_POINTS 103
extern const double lat_cdf_pct[LAT_CDF_POINTS];

/* Percentiles of one measurement, in microseconds. */
struct lat {
	double p50_us, p99_us;
	uint64_t count;          /* samples taken */
	bool has_cdf;            /* cdf_us holds the samples' CDF; false for
				  * figures taken from a histogram */
	double cdf_us[LAT_CDF_POINTS]; /* at lat_cdf_pct[i] */
};

/* Summarise n samples in nanoseconds (sorts them). */
void lat_summarise(struct lat *l, uint64_t *ns, uint64_t n);

/* (a) A first touch of a userfaultfd-registered page, resolved by a
 * handler thread in this process with UFFDIO_COPY from local memory. */
int lat_uffd_local(uint64_t n, uint64_t seed, struct lat *out);

/* (b) A 1-page READ request and its 4 KiB reply on a raw TCP connection
 * to the dsm-server at addr. */
int lat_tcp_rtt(const char *addr, uint64_t n, uint64_t seed, struct lat *out);

/* (c) A read of an evicted page of dsm_alloc() memory, prefetch off. */
struct lat_remote {
	struct lat timed;         /* as the reading thread saw it */
	struct lat lib;           /* dsm_stats' fault service percentiles:
				   * one histogram since dsm_init, so it
				   * includes the fill's cheap zero-fill
				   * faults */
	uint64_t faults;          /* missing faults during the timed reads */
	double blocked_mean_us;   /* thread time blocked per such fault */
};
int lat_remote_fault(const char *addr, uint64_t n, uint64_t seed,
		     struct lat_remote *out);

#endif
