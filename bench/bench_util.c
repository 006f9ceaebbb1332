/*
 * bench_util.c - see bench_util.h (room: benchmarks).
 */
#include "bench_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

void bench_shuffle_u32(uint32_t *perm, uint32_t n, struct bench_rng *r)
{
	for (uint32_t i = 0; i < n; i++)
		perm[i] = i;
	for (uint32_t i = n; i > 1; i--) {
		uint32_t j = bench_rng_below(r, i);
		uint32_t t = perm[i - 1];

		perm[i - 1] = perm[j];
		perm[j] = t;
	}
}

uint64_t bench_arg_size(const char *opt, const char *val)
{
	uint64_t v;

	if (dsm_parse_size(val, &v) || v == 0)
		bench_die("%s %s: expected a size such as 256M or 1G", opt, val);
	return v;
}

uint64_t bench_arg_u64(const char *opt, const char *val)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(val, &end, 0);
	if (errno || end == val || *end || *val == '-')
		bench_die("%s %s: expected a non-negative integer", opt, val);
	return v;
}

double bench_arg_double(const char *opt, const char *val)
{
	double v;
	char *end;

	errno = 0;
	v = strtod(val, &end);
	if (errno || end == val || *end)
		bench_die("%s %s: expected a number", opt, val);
	return v;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

uint64_t bench_percentile(uint64_t *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	/* nearest rank: the smallest sample with at least p% at or below it */
	i = (size_t)(p / 100.0 * n + 0.999999);
	return v[i ? (i > n ? n - 1 : i - 1) : 0];
}

void bench_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

uint64_t bench_poll_window_ns(void)
{
	const char *v = getenv("DSM_POLL_US");
	uint64_t us = DSM_DEFAULT_POLL_US;

	if (v && dsm_parse_uint(v, 10000, &us))
		bench_die("DSM_POLL_US=%s: expected microseconds, 0 to 10000", v);
	return us * 1000;
}
