/*
 * zipf.h - Zipf-distributed ranks in O(1) time and memory (room:
 * benchmarks).
 *
 * Rank k in 1..n is drawn with probability proportional to 1/k^theta.
 * Sampling is by rejection-inversion (Hörmann and Derflinger, 1996): invert
 * the integral of x^-theta, which bounds the discrete distribution, and
 * reject the rare draw that falls outside it.  No table over n is needed,
 * so a 64 GiB working set costs no more setup than a 1 GiB one.
 */
#ifndef DSM_BENCH_ZIPF_H
#define DSM_BENCH_ZIPF_H

#include <stdint.h>

#include "bench_util.h"

struct zipf {
	uint64_t n;
	double theta;
	double h_x1;   /* H(1.5) - 1: lower end of the sampled integral */
	double h_n;    /* H(n + 0.5): upper end */
	double s;      /* accept without the exact test when k - x <= s */
};

/* theta > 0 (1.0 is fine); n >= 1. */
void zipf_init(struct zipf *z, uint64_t n, double theta);

/* A rank in 1..n; rank 1 is the most frequent. */
uint64_t zipf_next(const struct zipf *z, struct bench_rng *r);

#endif
