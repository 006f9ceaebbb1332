/*
 * zipf.c - see zipf.h (room: benchmarks).
 *
 * H(x) is the integral of h(x) = x^-theta, written with helper functions
 * that stay accurate as theta approaches 1, where the textbook form
 * (x^(1-theta) - 1) / (1 - theta) divides zero by zero.
 */
#include "zipf.h"

#include <math.h>

/* log1p(x) / x, and its limit 1 at x = 0. */
static double log1p_over(double x)
{
	return fabs(x) > 1e-8 ? log1p(x) / x : 1 - x / 2 + x * x / 3;
}

/* expm1(x) / x, and its limit 1 at x = 0. */
static double expm1_over(double x)
{
	return fabs(x) > 1e-8 ? expm1(x) / x : 1 + x / 2 + x * x / 6;
}

static double h(const struct zipf *z, double x)
{
	return exp(-z->theta * log(x));
}

static double big_h(const struct zipf *z, double x)
{
	double lx = log(x);

	return expm1_over((1 - z->theta) * lx) * lx;
}

static double big_h_inv(const struct zipf *z, double y)
{
	double t = y * (1 - z->theta);

	if (t < -1)
		t = -1; /* rounding at the far end; clamps to rank 1 */
	return exp(log1p_over(t) * y);
}

void zipf_init(struct zipf *z, uint64_t n, double theta)
{
	z->n = n;
	z->theta = theta;
	z->h_x1 = big_h(z, 1.5) - 1;
	z->h_n = big_h(z, n + 0.5);
	z->s = 2 - big_h_inv(z, big_h(z, 2.5) - h(z, 2));
}

uint64_t zipf_next(const struct zipf *z, struct bench_rng *r)
{
	for (;;) {
		double u = z->h_n + bench_rng_unit(r) * (z->h_x1 - z->h_n);
		double x = big_h_inv(z, u);
		uint64_t k = (uint64_t)(x + 0.5);

		if (k < 1)
			k = 1;
		else if (k > z->n)
			k = z->n;
		if (k - x <= z->s || u >= big_h(z, k + 0.5) - h(z, k))
			return k;
	}
}
