/*
 * hold_shared.c - a holder of a shared region for tests/test_dsmctl.sh
 * (room: tests): joins the cluster named by DSM_REGISTRY/DSM_CLUSTER,
 * maps the shared region NAME of SIZE bytes and adds 1 to its first word,
 * then waits.  SIGUSR1 unmaps it, or maps it again; SIGTERM unmaps it and
 * shuts libdsm down.  Each step prints a line ("mapped", "unmapped") once
 * it is done, a mapping first the word it found ("found N").  With
 * --later it prints "ready" once it has joined, and maps at the first
 * SIGUSR1 (tests/test_shared_home.sh).  Not a test on its own.
 *   hold_shared NAME SIZE [--later]
 */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsm.h"

static uint64_t *map(const char *name, size_t size)
{
	uint64_t *p = dsm_map_shared(name, size, 0);

	if (!p) {
		perror("hold_shared: dsm_map_shared");
		exit(1);
	}
	printf("found %llu\nmapped\n", (unsigned long long)dsm_fetch_add(p, 1));
	fflush(stdout);
	return p;
}

static void unmap(uint64_t *p)
{
	int err = dsm_unmap_shared(p);

	if (err) {
		fprintf(stderr, "hold_shared: dsm_unmap_shared: %s\n",
			dsm_strerror(err));
		exit(1);
	}
	printf("unmapped\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct dsm_options o = { .local_mem = 1 << 20 };
	uint64_t *p = NULL;
	bool later;
	sigset_t set;
	int err, sig;

	later = argc == 4 && !strcmp(argv[3], "--later");
	if (argc != 3 && !later) {
		fprintf(stderr, "usage: hold_shared NAME SIZE [--later]\n");
		return 2;
	}
	/* blocked before dsm_init, so that libdsm's threads leave both to
	 * sigwait below */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	err = dsm_init(&o);
	if (err) {
		fprintf(stderr, "hold_shared: dsm_init: %s\n", dsm_strerror(err));
		return 1;
	}
	if (later) {
		printf("ready\n");
		fflush(stdout);
	} else {
		p = map(argv[1], strtoull(argv[2], NULL, 0));
	}
	while (sigwait(&set, &sig) == 0) {
		if (sig == SIGTERM)
			break;
		if (p) {
			unmap(p);
			p = NULL;
		} else {
			p = map(argv[1], strtoull(argv[2], NULL, 0));
		}
	}
	if (p)
		unmap(p);
	dsm_shutdown();
	return 0;
}
