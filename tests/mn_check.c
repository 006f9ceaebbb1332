/*
 * mn_check.c - a client that checks far memory word by word, for the
 * multi-node tests (room: tests).  Not a test on its own: the scripts in
 * tests/multinode/ run it in a guest against servers in other guests.
 *
 *   mn_check --size SIZE [--rounds N] [--pages 4K|2M]
 *
 * Takes its servers and everything else from the environment, as any
 * libdsm program (DSM_SERVERS or DSM_REGISTRY, DSM_LOCAL_MEM,
 * DSM_SECRET_FILE, DSM_TRANSPORT).  Each round writes every 8-byte word
 * of a SIZE region with a value that depends on the round and the word's
 * offset, then reads every word back, in another order (backwards on odd
 * rounds), so that with a budget well below SIZE every page is evicted,
 * written back and fetched again between its write and its check.  Then
 * dsm_sync and one more check of the last round.  --pages 2M puts the
 * region on huge pages (DSM_ALLOC_HUGE).  Prints a line per round
 * ("round R: W words, M wrong") and dsm_stats_print, exits 0 only if no
 * word was ever wrong.
 *
 * A page only a lost server held raises SIGBUS: the handler prints
 * "SIGBUS at offset X" and exits with status 3, which is what
 * tests/multinode/rdma.sh waits for after killing a server under it.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsm.h"

#define EXIT_SIGBUS 3

static uint64_t *region;
static uint64_t nwords;

static uint64_t value(uint64_t round, uint64_t i)
{
	uint64_t x = (round + 1) * 0x9e3779b97f4a7c15ULL ^ i;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ULL;
	return x ^ (x >> 29);
}

/* async-signal-safe: no stdio */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	char msg[80];
	uint64_t off = (uintptr_t)si->si_addr - (uintptr_t)region;
	int n = snprintf(msg, sizeof(msg), "mn_check: SIGBUS at offset %#llx\n",
			 (unsigned long long)off);

	if (n > 0 && write(STDOUT_FILENO, msg, n) < 0) {
		/* exiting anyway */
	}
	_exit(EXIT_SIGBUS);
}

static void fill(uint64_t round)
{
	for (uint64_t i = 0; i < nwords; i++)
		region[i] = value(round, i);
}

/* Every word, forwards or backwards: how many are wrong. */
static uint64_t check(uint64_t round, int backwards)
{
	uint64_t wrong = 0;

	for (uint64_t k = 0; k < nwords; k++) {
		uint64_t i = backwards ? nwords - 1 - k : k;

		if (region[i] != value(round, i) && wrong++ < 3)
			printf("mn_check: word %llu of round %llu is %#llx, "
			       "want %#llx\n", (unsigned long long)i,
			       (unsigned long long)round,
			       (unsigned long long)region[i],
			       (unsigned long long)value(round, i));
	}
	return wrong;
}

static int usage(void)
{
	fprintf(stderr, "usage: mn_check --size SIZE[K|M|G] [--rounds N] "
		"[--pages 4K|2M]\n");
	return 2;
}

static int parse(int argc, char **argv, uint64_t *size, uint64_t *rounds,
		 int *flags)
{
	for (int i = 1; i + 1 < argc; i += 2) {
		char *end;
		uint64_t v = strtoull(argv[i + 1], &end, 10);

		if (!strcmp(argv[i], "--size") && v) {
			*size = v << (*end == 'G' ? 30 : *end == 'M' ? 20 :
				      *end == 'K' ? 10 : 0);
		} else if (!strcmp(argv[i], "--rounds") && v && !*end) {
			*rounds = v;
		} else if (!strcmp(argv[i], "--pages") &&
			   (!strcmp(argv[i + 1], "4K") ||
			    !strcmp(argv[i + 1], "2M"))) {
			*flags = strcmp(argv[i + 1], "2M") ? 0 : DSM_ALLOC_HUGE;
		} else {
			return -1;
		}
	}
	return *size && argc % 2 ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO };
	uint64_t size = 0, rounds = 2, bad = 0, r;
	int err, flags = 0;

	if (parse(argc, argv, &size, &rounds, &flags))
		return usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigaction(SIGBUS, &sa, NULL);
	err = dsm_init(NULL);
	if (err) {
		fprintf(stderr, "mn_check: dsm_init: %s\n", dsm_strerror(err));
		return 2;
	}
	region = dsm_alloc_flags(size, flags);
	if (!region) {
		perror("mn_check: dsm_alloc_flags");
		return 2;
	}
	nwords = size / sizeof(*region);
	for (r = 0; r < rounds; r++) {
		uint64_t wrong;

		fill(r);
		wrong = check(r, r % 2);
		bad += wrong;
		printf("round %llu: %llu words, %llu wrong\n",
		       (unsigned long long)r, (unsigned long long)nwords,
		       (unsigned long long)wrong);
	}
	err = dsm_sync(region, size);
	bad += check(rounds - 1, 0);
	printf("sync: %s; after it %llu words wrong in all\n",
	       err ? dsm_strerror(err) : "ok", (unsigned long long)bad);
	dsm_stats_print(stdout);
	dsm_free(region);
	dsm_shutdown();
	printf("mn_check: %s\n", !bad && !err ? "PASS" : "FAIL");
	return !bad && !err ? 0 : 1;
}
