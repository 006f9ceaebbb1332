/*
 * backend.h - where dsm-bench-workload's buffer lives (room: benchmarks).
 *
 * "local": anonymous private memory, paged by the kernel (and, inside a
 * memory cgroup with swap, swapped by it: the baseline dsm is compared to).
 * "dsm": dsm_alloc() memory, paged by libdsm to a dsm-server.
 * "dsm-huge": the same on 2 MiB pages (dsm_alloc_flags, DSM_ALLOC_HUGE).
 */
#ifndef DSM_BENCH_BACKEND_H
#define DSM_BENCH_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "dsm.h"

struct backend {
	bool dsm;
	void *mem;
	size_t size;
};

/* name is "local", "dsm" or "dsm-huge".  0, or -1 after printing why. */
int backend_open(struct backend *b, const char *name, size_t size);
void backend_close(struct backend *b);

/* dsm only: counters now.  Zeroes for local. */
void backend_stats(const struct backend *b, struct dsm_stats *st);

/* dsm only: the counters that moved between two snapshots, as JSON
 * fields (",\"missing_faults\":..."), so a result shows what the timed
 * phase cost and not the fill before it. */
void backend_stats_json(FILE *f, const struct backend *b,
			const struct dsm_stats *before,
			const struct dsm_stats *after);

#endif
