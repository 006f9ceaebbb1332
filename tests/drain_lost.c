/*
 * drain_lost.c - a client whose old server dies while a stripe of it is
 * being moved off (tests/test_drain_lost.sh) (room: tests).  Not a test on
 * its own.
 *
 * Joins the cluster of DSM_REGISTRY with two servers, and then, one step
 * per SIGUSR1 from the script:
 *
 *   1. allocates a region of two stripes (one on each server), writes
 *      every word, syncs (so both servers hold every page: the stripe to
 *      move has data, and its move READs it), then writes every word again
 *      (so every page's newest data is resident, dirty, and nowhere else);
 *      prints "ready";
 *   2. (one of its stripes is moving now, the mover stalled before its
 *      READ by DSM_TEST_MOVE_STALL_MS) allocates a churn region, which
 *      goes to the server that stays, and writes it all: with DSM_EVICT=fifo
 *      and a budget smaller than the churn, every page of the first region
 *      is evicted, so the moving stripe's write-backs are held in its move;
 *      prints "churned";
 *   3. (the old server is dead now, before the READ was sent) reads every
 *      word of both regions, catching SIGBUS page by page, and prints
 *
 *        check pages=N sigbus=S mismatches=M
 *
 * Every page's newest data was in this process (resident, or in a
 * write-back held by the move) when the server died, so none may be lost:
 * exit 0 only if S and M are 0.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsm.h"

#define STRIPE (1u << 20)
#define MAIN_BYTES (2 * STRIPE)
#define CHURN_BYTES (8u << 20)
#define PAGE 4096u

static sigjmp_buf on_bus;

static void bus_handler(int sig)
{
	(void)sig;
	siglongjmp(on_bus, 1);
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void fill(uint64_t *p, size_t bytes, uint64_t salt)
{
	for (size_t w = 0; w < bytes / 8; w++)
		p[w] = mix(w ^ salt);
}

/* Wait for the script's go-ahead. */
static void await(const sigset_t *sigs)
{
	int sig;

	if (sigwait(sigs, &sig) || sig != SIGUSR1)
		exit(3);
}

/* Every word of one page against its expected value; 1 if it raised
 * SIGBUS (lost), else 0, adding its wrong words to *bad. */
static int check_page(volatile uint64_t *p, uint64_t first, uint64_t salt,
		      uint64_t *bad)
{
	if (sigsetjmp(on_bus, 1))
		return 1;
	for (uint64_t w = 0; w < PAGE / 8; w++) {
		uint64_t got = p[w], want = mix((first + w) ^ salt);

		if (got != want && (*bad)++ < 5)
			fprintf(stderr, "drain_lost: word %llu: got %#llx "
				"want %#llx\n", (unsigned long long)(first + w),
				(unsigned long long)got,
				(unsigned long long)want);
	}
	return 0;
}

static void check(uint64_t *p, size_t bytes, uint64_t salt, uint64_t *pages,
		  uint64_t *bus, uint64_t *bad)
{
	for (size_t pg = 0; pg < bytes / PAGE; pg++) {
		uint64_t first = pg * (PAGE / 8);

		(*pages)++;
		if (check_page(p + first, first, salt, bad)) {
			if ((*bus)++ < 5)
				fprintf(stderr, "drain_lost: SIGBUS on page %zu "
					"at %p\n", pg, (void *)(p + first));
		}
	}
}

int main(void)
{
	uint64_t *main_r, *churn, pages = 0, bus = 0, bad = 0;
	sigset_t sigs;
	int err;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* before dsm_init's threads */
	err = dsm_init(NULL);
	if (err) {
		fprintf(stderr, "drain_lost: dsm_init: %s\n", dsm_strerror(err));
		return 1;
	}
	main_r = dsm_alloc(MAIN_BYTES);
	if (!main_r) {
		perror("drain_lost: dsm_alloc");
		return 1;
	}
	fill(main_r, MAIN_BYTES, 1);
	err = dsm_sync(main_r, MAIN_BYTES);
	if (err) {
		fprintf(stderr, "drain_lost: dsm_sync: %s\n", dsm_strerror(err));
		return 1;
	}
	fill(main_r, MAIN_BYTES, 2);
	printf("ready\n");
	fflush(stdout);

	await(&sigs);
	churn = dsm_alloc(CHURN_BYTES);
	if (!churn) {
		perror("drain_lost: dsm_alloc (churn)");
		return 1;
	}
	fill(churn, CHURN_BYTES, 3);
	printf("churned\n");
	fflush(stdout);

	await(&sigs);
	signal(SIGBUS, bus_handler);
	check(main_r, MAIN_BYTES, 2, &pages, &bus, &bad);
	check(churn, CHURN_BYTES, 3, &pages, &bus, &bad);
	printf("check pages=%llu sigbus=%llu mismatches=%llu\n",
	       (unsigned long long)pages, (unsigned long long)bus,
	       (unsigned long long)bad);
	fflush(stdout);
	signal(SIGBUS, SIG_DFL);
	dsm_free(churn);
	dsm_free(main_r);
	dsm_shutdown();
	return bus || bad ? 1 : 0;
}
