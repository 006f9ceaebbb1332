/*
 * stats.c - counters and the fault-latency histogram (room: fault engine).
 *
 * Latencies go into log-linear buckets: 8 sub-buckets per power of two,
 * so a percentile is exact to within 12.5% from 1 ns to 2^63 ns, in a
 * fixed 4 KiB array that needs no allocation on the fault path.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dsm.h"
#include "engine.h"
#include "migrate.h"
#include "shim.h"
#include "stats.h"
#include "util.h"

static unsigned bucket_of(uint64_t ns)
{
	unsigned msb;

	if (ns < 8)
		return ns;
	msb = 63 - __builtin_clzll(ns);
	return (msb - 2) * 8 + ((ns >> (msb - 3)) & 7);
}

static uint64_t bucket_floor(unsigned b)
{
	unsigned msb;

	if (b < 8)
		return b;
	msb = b / 8 + 2;
	return (1ULL << msb) | ((uint64_t)(b % 8) << (msb - 3));
}

void dsm_hist_add(struct dsm_counters *c, uint64_t ns)
{
	unsigned b = bucket_of(ns);

	c->hist[b < DSM_HIST_BUCKETS ? b : DSM_HIST_BUCKETS - 1]++;
}

uint64_t dsm_hist_percentile(const struct dsm_counters *c, double pct)
{
	uint64_t total = 0, seen = 0, want;

	for (unsigned b = 0; b < DSM_HIST_BUCKETS; b++)
		total += c->hist[b];
	if (!total)
		return 0;
	want = (uint64_t)(total * pct / 100.0);
	if (want >= total)
		want = total - 1;
	for (unsigned b = 0; b < DSM_HIST_BUCKETS; b++) {
		seen += c->hist[b];
		if (seen > want)
			return bucket_floor(b);
	}
	return 0;
}

int dsm_stats(struct dsm_stats *st)
{
	struct dsm_counters *c = &dsm_eng.c;

	if (!dsm_eng.servers)
		return -ENOTCONN;
	pthread_mutex_lock(&dsm_eng.lock);
	*st = (struct dsm_stats){
		.missing_faults = c->missing_faults,
		.wp_faults = c->wp_faults,
		.pages_fetched = c->pages_fetched,
		.pages_zero_filled = c->pages_zero_filled,
		.pages_written_back = c->pages_written_back,
		.pages_evicted = c->pages_evicted,
		.pages_prefetched = c->pages_prefetched,
		.prefetch_used = c->prefetch_used,
		.bytes_in = c->bytes_in,
		.bytes_out = c->bytes_out,
		.resident_pages = dsm_eng.resident,
		.budget_pages = dsm_eng.budget,
		.fault_p50_ns = dsm_hist_percentile(c, 50),
		.fault_p99_ns = dsm_hist_percentile(c, 99),
		.blocktime_ns = c->blocktime_ns,
		.pages_moved = c->pages_moved,
		.pages_replicated = c->pages_replicated,
		.fetch_failovers = c->fetch_failovers,
		.pages_rereplicated = c->pages_rereplicated,
		.degraded_stripes = dsm_degraded_stripes(),
		.ownership_requests = c->ownership_requests,
		.copies_given_up = c->copies_given_up,
	};
	pthread_mutex_unlock(&dsm_eng.lock);
	return 0;
}

const char *dsm_transports_describe(char *buf, size_t len, int ids)
{
	size_t used = 0;

	buf[0] = '\0';
	pthread_mutex_lock(&dsm_eng.lock);
	for (uint32_t i = 0; i < dsm_eng.nservers && used < len; i++) {
		const struct dsm_server *s = &dsm_eng.servers[i];
		int n = ids ? snprintf(buf + used, len - used, "%s%u=%s%s",
				       i ? "," : "", s->id, s->ops->name,
				       s->lost ? "+lost" : "")
			    : snprintf(buf + used, len - used, "%s%s=%s%s",
				       i ? "," : "", s->addr, s->ops->name,
				       s->lost ? "+lost" : "");

		if (n < 0 || (size_t)n >= len - used) {
			buf[used] = '\0'; /* whole entries only */
			break;
		}
		used += n;
	}
	pthread_mutex_unlock(&dsm_eng.lock);
	return buf;
}

void dsm_stats_print(void *f)
{
	struct dsm_stats s;
	char in[32], out[32], res[32], bud[32], tr[512];

	if (dsm_stats(&s))
		return;
	fprintf(f,
		"dsm stats:\n"
		"  faults        missing %llu, write-protect %llu\n"
		"  pages         fetched %llu, zero-filled %llu, written back %llu, evicted %llu\n"
		"  prefetch      %llu pages, %llu seen used\n"
		"  traffic       in %s, out %s\n"
		"  resident      %s of %s budget\n"
		"  fault latency p50 %.1f us, p99 %.1f us; threads blocked %.3f s in total\n"
		"  drains        %llu pages moved off servers being drained\n"
		"  replicas      %llu page copies written, %llu fetches failed over, "
		"%llu pages copied again, %llu stripes degraded\n"
		"  shared        %llu ownership requests, %llu copies given up\n"
		"  servers       %s\n",
		(unsigned long long)s.missing_faults,
		(unsigned long long)s.wp_faults,
		(unsigned long long)s.pages_fetched,
		(unsigned long long)s.pages_zero_filled,
		(unsigned long long)s.pages_written_back,
		(unsigned long long)s.pages_evicted,
		(unsigned long long)s.pages_prefetched,
		(unsigned long long)s.prefetch_used,
		dsm_fmt_bytes(s.bytes_in, in, sizeof(in)),
		dsm_fmt_bytes(s.bytes_out, out, sizeof(out)),
		dsm_fmt_bytes(s.resident_pages * DSM_PAGE_SIZE, res, sizeof(res)),
		dsm_fmt_bytes(s.budget_pages * DSM_PAGE_SIZE, bud, sizeof(bud)),
		s.fault_p50_ns / 1e3, s.fault_p99_ns / 1e3,
		s.blocktime_ns / 1e9, (unsigned long long)s.pages_moved,
		(unsigned long long)s.pages_replicated,
		(unsigned long long)s.fetch_failovers,
		(unsigned long long)s.pages_rereplicated,
		(unsigned long long)s.degraded_stripes,
		(unsigned long long)s.ownership_requests,
		(unsigned long long)s.copies_given_up,
		dsm_transports_describe(tr, sizeof(tr), 0));
}
