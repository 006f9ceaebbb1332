/*
 * backend.c - see backend.h (room: benchmarks).
 */
#include "backend.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>

static int open_local(struct backend *b)
{
	b->mem = mmap(NULL, b->size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (b->mem == MAP_FAILED) {
		fprintf(stderr, "dsm-bench-workload: mmap %zu bytes: %s\n",
			b->size, strerror(errno));
		return -1;
	}
	return 0;
}

static int open_dsm(struct backend *b, int flags)
{
	int err = dsm_init(NULL);

	if (err) {
		fprintf(stderr, "dsm-bench-workload: dsm_init: %s (set "
			"DSM_SERVERS=host:port of a running dsm-server)\n",
			dsm_strerror(err));
		return -1;
	}
	b->mem = dsm_alloc_flags(b->size, flags);
	if (!b->mem) {
		fprintf(stderr, "dsm-bench-workload: dsm_alloc_flags %zu bytes, "
			"flags %d: %s\n", b->size, flags, strerror(errno));
		dsm_shutdown();
		return -1;
	}
	return 0;
}

int backend_open(struct backend *b, const char *name, size_t size)
{
	b->size = size;
	b->mem = NULL;
	if (!strcmp(name, "local")) {
		b->dsm = false;
		return open_local(b);
	}
	if (!strcmp(name, "dsm") || !strcmp(name, "dsm-huge")) {
		b->dsm = true;
		return open_dsm(b, strcmp(name, "dsm") ? DSM_ALLOC_HUGE : 0);
	}
	fprintf(stderr, "dsm-bench-workload: --backend %s: expected dsm, "
		"dsm-huge or local\n", name);
	return -1;
}

void backend_close(struct backend *b)
{
	if (!b->mem)
		return;
	if (b->dsm) {
		dsm_free(b->mem);
		dsm_shutdown();
	} else {
		munmap(b->mem, b->size);
	}
	b->mem = NULL;
}

void backend_stats(const struct backend *b, struct dsm_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (b->dsm)
		dsm_stats(st);
}

void backend_stats_json(FILE *f, const struct backend *b,
			const struct dsm_stats *before,
			const struct dsm_stats *after)
{
#define DELTA(field) \
	fprintf(f, ",\"" #field "\":%" PRIu64, after->field - before->field)

	if (!b->dsm)
		return;
	DELTA(missing_faults);
	DELTA(wp_faults);
	DELTA(pages_fetched);
	DELTA(pages_evicted);
	DELTA(pages_written_back);
	DELTA(pages_prefetched);
	DELTA(prefetch_used);
#undef DELTA
	/* The library keeps one histogram since dsm_init: these include
	 * the fill phase's faults. */
	fprintf(f, ",\"fault_p50_ns\":%" PRIu64 ",\"fault_p99_ns\":%" PRIu64,
		after->fault_p50_ns, after->fault_p99_ns);
}
