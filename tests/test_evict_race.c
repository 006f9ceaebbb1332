/*
 * test_evict_race.c - stores that race their page's eviction are never
 * lost (room: tests).  One thread keeps storing a counter into a set of
 * pages while another streams through memory far beyond the budget, so
 * that those pages are evicted, written back and fetched again under its
 * stores, over and over.  The stores are increments: a page must end
 * holding as many as were made.
 * Run twice by ctest: dirty victims taken through the engine's pipe (the
 * default, client/capture.h) and write-protected one by one
 * (DSM_EVICT_CAPTURE=0); each run checks that its path is the one in use.
 */
#include <dirent.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client_util.h"

#define BUDGET (4u << 20)
#define HOT 64                /* pages under the writer's stores */
#define SPAN (32u << 20)      /* read through to evict them */
#define SECONDS 3

static volatile uint64_t *far;
static uint64_t adds[HOT];    /* increments the writer made, per page */
static _Atomic int stop;

/* Increments, so that a store lost at any time leaves its page short
 * for good: word 0 at every step, and a word that moves through the
 * page. */
static void *writer(void *arg)
{
	(void)arg;
	while (!stop)
		for (int k = 0; k < HOT; k++) {
			volatile uint64_t *pg = far + (size_t)k * 512;

			pg[0]++;
			pg[1 + adds[k] % 511]++;
			adds[k] += 2;
		}
	return NULL;
}

/* Pipes this process holds: the engine's capture pipe is its only one. */
static int pipe_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char path[300], target[64];
	int n = 0;

	TH_CHECK(d);
	while ((e = readdir(d))) {
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		if (len > 0) {
			target[len] = 0;
			n += !strncmp(target, "pipe:", 5);
		}
	}
	closedir(d);
	return n;
}

int main(void)
{
	const char *cap = getenv("DSM_EVICT_CAPTURE");
	bool capture = !cap || strcmp(cap, "0");
	struct th_server srv;
	struct dsm_stats s;
	pthread_t th;
	time_t end;
	int pipes = pipe_fds();

	/* FIFO: the written pages leave in turn, whatever their refaults */
	setenv("DSM_EVICT", "fifo", 1);
	tc_start(&srv, "256M", BUDGET, 1);
	TH_CHECK(pipe_fds() - pipes == (capture ? 2 : 0));
	far = dsm_alloc(HOT * 4096 + SPAN);
	TH_CHECK(far);
	/* written once, so that the reads below fetch one page a fault
	 * (prefetch 1): the written pages leave once a lap of the budget,
	 * and the writer runs freely in between, storing into victims */
	for (size_t off = HOT * 4096; off < HOT * 4096 + SPAN; off += 4096)
		far[off / 8] = off;
	TH_CHECK(pthread_create(&th, NULL, writer, NULL) == 0);
	end = time(NULL) + SECONDS;
	while (time(NULL) < end)
		for (size_t off = HOT * 4096; off < HOT * 4096 + SPAN;
		     off += 4096)
			(void)far[off / 8];
	stop = 1;
	pthread_join(th, NULL);
	s = tc_stats();
	printf("%s: %lu increments a page, written back %lu, evicted %lu, "
	       "fetched %lu\n", capture ? "taken" : "protected",
	       (unsigned long)adds[0], (unsigned long)s.pages_written_back,
	       (unsigned long)s.pages_evicted, (unsigned long)s.pages_fetched);
	/* the written pages went out and came back many times, and the
	 * writer was running most of the time */
	TH_CHECK(s.pages_written_back >= SPAN / 4096 + 10 * HOT);
	TH_CHECK(adds[0] >= 100000);
	for (int k = 0; k < HOT; k++) {
		uint64_t sum = 0;

		for (int w = 0; w < 512; w++)
			sum += far[(size_t)k * 512 + w];
		TH_CHECK(sum == adds[k]);
	}
	dsm_free((void *)far);
	dsm_shutdown();
	th_server_stop(&srv);
	printf("evict_race: ok\n");
	return 0;
}
