/*
 * drain_load.c - a client that keeps checking its far memory while a server
 * is drained under it (tests/test_drain.sh, bench/drain.sh) (room: tests).
 * Not a test on its own.
 *
 *   drain_load MIB [THREADS]
 *
 * Joins the cluster of DSM_REGISTRY (or DSM_SERVERS), allocates MIB MiB,
 * writes every word of it (so every stripe has data on its server), prints
 * "ready", then runs THREADS threads (default 4) of random reads and
 * writes, each read checked against a private reference, until SIGTERM or
 * SIGINT.  SIGUSR1 prints the access latencies since the previous SIGUSR1
 * (or the start) and starts the record afresh, for bench/drain.sh:
 *
 *   window ops=N access_p50_us=X access_p99_us=Y
 *
 * SIGUSR2 does the same for a second record of its own, the timeline of
 * bench/drain.sh's chart (one every quarter second, SIGUSR1's windows
 * untouched), with the wall clock in ms:
 *
 *   tick t_ms=T ops=N access_p50_us=X access_p99_us=Y
 *
 * At the end it checks every word once more and prints one line:
 *
 *   done ops=N mismatches=M pages_moved=P access_p50_us=X access_p99_us=Y
 *        pages_rereplicated=R degraded_stripes=D
 *
 * (one line; the last two for DSM_REPLICAS, tests/test_drain_replicas.sh).
 * The access latencies are measured in the threads, around each access
 * that took a fault or not: what the program saw, waits on a moving
 * stripe included.  Exit 0 only if nothing mismatched.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dsm.h"

#define MAX_THREADS 16
#define HIST 100000 /* microseconds, one bucket each; the last is >= */

static uint64_t *far, *ref;
static uint64_t nwords;
static unsigned nthreads = 4;
static atomic_int stop;
static atomic_uint_fast64_t ops, mismatches;
static atomic_uint_fast64_t hist[HIST];  /* since the last SIGUSR1 */
static atomic_uint_fast64_t ticks[HIST]; /* since the last SIGUSR2 */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void check(uint64_t w, uint64_t got)
{
	if (got != ref[w] && atomic_fetch_add(&mismatches, 1) < 5)
		fprintf(stderr, "drain_load: word %llu: got %#llx want %#llx\n",
			(unsigned long long)w, (unsigned long long)got,
			(unsigned long long)ref[w]);
}

/* Thread t owns the words w with w % nthreads == t: no word is raced on,
 * but every page is shared. */
static void *worker(void *arg)
{
	uint64_t t = (uintptr_t)arg, seed = mix(t + 77), n = 0;

	while (!stop) {
		uint64_t w, v, t0, us;

		seed = mix(seed);
		w = (seed % (nwords / nthreads)) * nthreads + t;
		t0 = now_ns();
		v = far[w];
		if (seed & 1) {
			far[w] = mix(seed ^ w);
		}
		us = (now_ns() - t0) / 1000;
		atomic_fetch_add(&hist[us < HIST ? us : HIST - 1], 1);
		atomic_fetch_add(&ticks[us < HIST ? us : HIST - 1], 1);
		check(w, v);
		if (seed & 1)
			ref[w] = mix(seed ^ w);
		n++;
	}
	atomic_fetch_add(&ops, n);
	return NULL;
}

static uint64_t recorded(atomic_uint_fast64_t *h)
{
	uint64_t total = 0;

	for (int i = 0; i < HIST; i++)
		total += h[i];
	return total;
}

static uint64_t percentile(atomic_uint_fast64_t *h, double pct)
{
	uint64_t total = recorded(h), seen = 0;

	for (int i = 0; i < HIST; i++) {
		seen += h[i];
		if (total && seen * 100.0 >= total * pct)
			return i;
	}
	return 0;
}

/* "ops=N access_p50_us=X access_p99_us=Y" of record h, which then starts
 * afresh. */
static void print_record(atomic_uint_fast64_t *h)
{
	printf("ops=%llu access_p50_us=%llu access_p99_us=%llu\n",
	       (unsigned long long)recorded(h),
	       (unsigned long long)percentile(h, 50),
	       (unsigned long long)percentile(h, 99));
	fflush(stdout);
	for (int i = 0; i < HIST; i++)
		atomic_store(&h[i], 0);
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	pthread_t th[MAX_THREADS];
	struct dsm_stats st;
	sigset_t sigs;
	int sig;
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 0;
	int err;

	if (argc > 2)
		nthreads = atoi(argv[2]);
	if (!mib || !nthreads || nthreads > MAX_THREADS) {
		fprintf(stderr, "usage: drain_load MIB [THREADS (1-16)]\n");
		return 2;
	}
	/* signals are taken by sigwait in this thread only */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	err = dsm_init(NULL);
	if (err) {
		fprintf(stderr, "drain_load: dsm_init: %s\n", dsm_strerror(err));
		return 1;
	}
	nwords = (mib << 20) / 8;
	far = dsm_alloc(mib << 20);
	ref = calloc(nwords, 8);
	if (!far || !ref) {
		perror("drain_load: allocating");
		return 1;
	}
	for (uint64_t w = 0; w < nwords; w++)
		far[w] = ref[w] = mix(w);
	printf("ready\n");
	fflush(stdout);
	for (unsigned t = 0; t < nthreads; t++)
		pthread_create(&th[t], NULL, worker, (void *)(uintptr_t)t);
	while (!sigwait(&sigs, &sig) && (sig == SIGUSR1 || sig == SIGUSR2)) {
		if (sig == SIGUSR1) {
			printf("window ");
			print_record(hist);
		} else {
			printf("tick t_ms=%llu ", (unsigned long long)wall_ms());
			print_record(ticks);
		}
	}
	atomic_store(&stop, 1);
	for (unsigned t = 0; t < nthreads; t++)
		pthread_join(th[t], NULL);
	for (uint64_t w = 0; w < nwords; w++)
		check(w, far[w]);
	dsm_stats(&st);
	printf("done ops=%llu mismatches=%llu pages_moved=%llu "
	       "access_p50_us=%llu access_p99_us=%llu pages_rereplicated=%llu "
	       "degraded_stripes=%llu\n",
	       (unsigned long long)ops, (unsigned long long)mismatches,
	       (unsigned long long)st.pages_moved,
	       (unsigned long long)percentile(hist, 50),
	       (unsigned long long)percentile(hist, 99),
	       (unsigned long long)st.pages_rereplicated,
	       (unsigned long long)st.degraded_stripes);
	fflush(stdout);
	dsm_free(far);
	dsm_shutdown();
	return mismatches ? 1 : 0;
}
