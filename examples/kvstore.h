/*
 * kvstore.h - what the phases of dsm-example-kvstore share (room:
 * examples).
 */
#ifndef KVSTORE_H
#define KVSTORE_H

#include <stdint.h>

#include "kv_table.h"

struct kv_run {
	struct kv_table table;  /* far memory */
	uint64_t nkeys;         /* keys numbered 0..nkeys-1 are in the table */
	uint64_t seed;
	unsigned threads;
	uint64_t lookups;
	/* Local RAM, one byte per key: the version each key should have now
	 * (mod 256), so a lookup can tell a current record from a stale
	 * one, e.g. an update whose page was lost on its way to the server. */
	uint8_t *versions;
};

/* What the lookup phase did, summed over its threads. */
struct kv_totals {
	uint64_t hits, misses, updates, failed;
	double seconds;
};

/* Key number i -> the key.  A bijection, so a key numbered >= nkeys was
 * certainly never inserted. */
uint64_t kv_key(const struct kv_run *run, uint64_t i);

/* Seconds on a monotonic clock. */
double kv_now(void);

/* "kvstore: <what> 40% ..." at most once per tenth of total. */
struct kv_progress {
	const char *what;
	uint64_t total, next;
	double t0;
};
void kv_progress_start(struct kv_progress *p, const char *what,
		       uint64_t total);
void kv_progress(struct kv_progress *p, uint64_t done);

/* Phase 2: run->lookups random lookups and updates from run->threads
 * threads.  0, or -1 if the threads could not be started. */
int kv_lookups(struct kv_run *run, struct kv_totals *out);

#endif
