/*
 * bench_util.h - small helpers shared by the benchmark programs (room:
 * benchmarks): a deterministic mixing function, a per-thread random
 * generator, option parsing and percentiles.
 */
#ifndef DSM_BENCH_UTIL_H
#define DSM_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_PAGE 4096u
#define BENCH_WORDS_PER_PAGE (BENCH_PAGE / 8)

/* splitmix64's finaliser: a bijection on 64-bit values whose output looks
 * random, so data made from it neither compresses nor repeats. */
static inline uint64_t bench_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* One generator per thread: no shared state, no locks on the hot path. */
struct bench_rng {
	uint64_t state;
};

static inline void bench_rng_seed(struct bench_rng *r, uint64_t seed)
{
	r->state = bench_mix64(seed);
}

static inline uint64_t bench_rng_next(struct bench_rng *r)
{
	r->state += 0x9e3779b97f4a7c15ull;
	return bench_mix64(r->state);
}

/* Uniform in [0, n) by multiply-shift: no division, bias below 2^-32 for
 * any n a benchmark uses. */
static inline uint64_t bench_rng_below(struct bench_rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)bench_rng_next(r) * n) >> 64);
}

/* Uniform in [0, 1). */
static inline double bench_rng_unit(struct bench_rng *r)
{
	return (bench_rng_next(r) >> 11) * 0x1p-53;
}

/* Fisher-Yates shuffle of 0..n-1 into perm. */
void bench_shuffle_u32(uint32_t *perm, uint32_t n, struct bench_rng *r);

/* Strict number parsing for command lines: exits with a message naming
 * the option on junk, so a typo never runs a benchmark with a default. */
uint64_t bench_arg_size(const char *opt, const char *val);  /* "1G" */
uint64_t bench_arg_u64(const char *opt, const char *val);
double bench_arg_double(const char *opt, const char *val);

/* The p-th percentile (0..100) of n samples; sorts them in place. */
/* The busy-poll window libdsm uses (DSM_POLL_US, else its default), in ns:
 * the baselines wait for events the same way the library does. */
uint64_t bench_poll_window_ns(void);
uint64_t bench_percentile(uint64_t *v, size_t n, double p);

__attribute__((noreturn, format(printf, 1, 2)))
void bench_die(const char *fmt, ...);

#endif
