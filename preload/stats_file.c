/*
 * stats_file.c - each process's far-memory figures for dsm-run: the
 * block appended at exit and the snapshot kept meanwhile (room: preload
 * shim).  stats_file.h says why both.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "dsm.h"
#include "small.h"
#include "stats_file.h"

#include "../client/shim.h"

/* Set once by stats_file_start (under the shim's init lock), read by the
 * snapshot thread and at exit. */
static const char *path;
static bool stop;             /* atomic: no snapshot after the final block */

static void complain(const char *what)
{
	dprintf(STDERR_FILENO, "dsm: DSM_STATS_FILE=%s: %s\n", path, what);
}

/* This process's block, or -1. */
static int format_block(char *buf, size_t cap)
{
	struct dsm_stats s;
	unsigned narenas, nsmall;
	size_t used, peak, slabs;
	char tr[512];
	int n;

	if (dsm_stats(&s))
		return -1;
	arena_usage(&narenas, &used, &peak);
	small_usage(&nsmall, &slabs); /* slabs stay: their peak is now */
	narenas += nsmall;
	used += slabs;
	peak += slabs;
	dsm_transports_describe(tr, sizeof(tr), 0);
	n = snprintf(buf, cap,
		     "pid=%d\nmissing_faults=%llu\nwp_faults=%llu\n"
		     "pages_fetched=%llu\npages_zero_filled=%llu\n"
		     "pages_written_back=%llu\npages_evicted=%llu\n"
		     "pages_prefetched=%llu\nprefetch_used=%llu\n"
		     "bytes_in=%llu\nbytes_out=%llu\nresident_pages=%llu\n"
		     "budget_pages=%llu\nfault_p50_ns=%llu\nfault_p99_ns=%llu\n"
		     "blocktime_ns=%llu\npages_moved=%llu\n"
		     "pages_replicated=%llu\nfetch_failovers=%llu\n"
		     "pages_rereplicated=%llu\ndegraded_stripes=%llu\narenas=%u\n"
		     "arena_bytes_used=%zu\narena_bytes_peak=%zu\n"
		     "transports=%s\n\n",
		     (int)getpid(), (unsigned long long)s.missing_faults,
		     (unsigned long long)s.wp_faults,
		     (unsigned long long)s.pages_fetched,
		     (unsigned long long)s.pages_zero_filled,
		     (unsigned long long)s.pages_written_back,
		     (unsigned long long)s.pages_evicted,
		     (unsigned long long)s.pages_prefetched,
		     (unsigned long long)s.prefetch_used,
		     (unsigned long long)s.bytes_in,
		     (unsigned long long)s.bytes_out,
		     (unsigned long long)s.resident_pages,
		     (unsigned long long)s.budget_pages,
		     (unsigned long long)s.fault_p50_ns,
		     (unsigned long long)s.fault_p99_ns,
		     (unsigned long long)s.blocktime_ns,
		     (unsigned long long)s.pages_moved,
		     (unsigned long long)s.pages_replicated,
		     (unsigned long long)s.fetch_failovers,
		     (unsigned long long)s.pages_rereplicated,
		     (unsigned long long)s.degraded_stripes, narenas, used,
		     peak, tr);
	return n > 0 && (size_t)n < cap ? n : -1;
}

static void snapshot_path(char *buf, size_t cap, bool tmp)
{
	snprintf(buf, cap, "%s" STATS_SNAPSHOT_TAG "%d%s", path, (int)getpid(),
		 tmp ? ".tmp" : "");
}

/* The snapshot is replaced whole (rename), so a reader never sees half
 * of one.  Quiet on failure: the block at exit is what counts, and it
 * says what went wrong. */
static void write_snapshot(void)
{
	char buf[1536], tmp[PATH_MAX], final[PATH_MAX];
	int n = format_block(buf, sizeof(buf)), fd;
	bool ok;

	if (n < 0)
		return;
	snapshot_path(tmp, sizeof(tmp), true);
	snapshot_path(final, sizeof(final), false);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	ok = write(fd, buf, n) == n;
	close(fd);
	if (!ok || __atomic_load_n(&stop, __ATOMIC_ACQUIRE) ||
	    rename(tmp, final)) {
		unlink(tmp);
		return;
	}
	/* the final block may have come between the test and the rename:
	 * then this snapshot is one too many */
	if (__atomic_load_n(&stop, __ATOMIC_ACQUIRE))
		unlink(final);
}

static void *snapshot_main(void *arg)
{
	struct timespec ts = { 0, STATS_SNAPSHOT_MS * 1000000L };

	(void)arg;
	dsm_tl_internal++; /* what it allocates comes from the C library */
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		nanosleep(&ts, NULL);
		if (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE))
			write_snapshot();
	}
	return NULL;
}

void stats_file_start(void)
{
	const char *p = getenv("DSM_STATS_FILE");
	pthread_attr_t attr;
	pthread_t t;

	if (!p || !*p)
		return;
	path = p;
	if (pthread_attr_init(&attr))
		return;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, snapshot_main, NULL))
		complain("cannot start its snapshots; figures only at exit");
	pthread_attr_destroy(&attr);
}

/* One block per process, appended: a run's processes share the file
 * (dsm-run sums them). */
static void append_block(void)
{
	char buf[1536];
	int n = format_block(buf, sizeof(buf)), fd;

	if (n < 0)
		return;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		complain(strerror(errno));
		return;
	}
	if (write(fd, buf, n) != n)
		complain("short write");
	close(fd);
}

void stats_file_final(void)
{
	const char *show = getenv("DSM_STATS");
	char snap[PATH_MAX];

	if (path) {
		__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
		append_block();
		snapshot_path(snap, sizeof(snap), false);
		unlink(snap);
	}
	if (show && !strcmp(show, "1"))
		dsm_stats_print(stderr);
}
