/*
 * stats.h - the engine's counters and its fault-latency histogram (room:
 * fault engine).  Guarded by dsm_eng.lock; dsm_stats() copies them out.
 */
#ifndef DSM_STATS_H
#define DSM_STATS_H

#include <stdint.h>

#define DSM_HIST_BUCKETS 512

struct dsm_counters {
	uint64_t missing_faults, wp_faults, pages_fetched, pages_zero_filled;
	uint64_t pages_written_back, pages_evicted, pages_prefetched;
	uint64_t prefetch_used, bytes_in, bytes_out, blocktime_ns;
	uint64_t pages_moved;            /* copied off servers being drained */
	uint64_t pages_replicated, fetch_failovers; /* replicas */
	uint64_t pages_rereplicated;     /* copies made again (migrate.c) */
	uint64_t ownership_requests, copies_given_up; /* coherence.c */
	uint64_t hist[DSM_HIST_BUCKETS]; /* fault service latency */
};

void dsm_hist_add(struct dsm_counters *c, uint64_t ns);
uint64_t dsm_hist_percentile(const struct dsm_counters *c, double pct);

#endif /* DSM_STATS_H */
