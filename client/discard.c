/*
 * discard.c - forgetting part of a region (room: fault engine).
 *
 * The preload shim carves many allocations out of one large region (an
 * arena).  When the program frees one, its pages must stop costing
 * anything: dropped from local memory, never written back (the program
 * no longer cares what they hold), never fetched again (the server's copy
 * is garbage now), and reading as zeros when the range is handed out
 * again, as fresh anonymous memory does.  dsm_free() does this for a
 * whole region by unmapping it; this does it for a range that stays
 * mapped and registered, so its next touch faults and is zero-filled.
 *
 * Per page, under the engine lock:
 *   CLEAN, DIRTY  leave the eviction queue; the mapping is zapped below
 *                 (a dirty page is simply not written back);
 *   PARKED        its held-back copy is freed and its stream let go;
 *   INVALID       nothing mapped; forgetting ON_SERVER is all it takes;
 *   LOST          made INVALID likewise (its server is gone anyway);
 *   FETCHING      a READ is in flight, and its completion will map the
 *                 whole run whatever we decide now.  So we wait until it
 *                 has landed (microseconds; or LOST if the server dies),
 *                 then discard.  A range being freed is only fetched by
 *                 prefetch running ahead, so this wait is rare.
 * A write-back still in flight for a page of the range is harmless: the
 * server answers in order, and nothing reads that copy again.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "engine.h"
#include "log.h"

static bool range_fetching(const struct dsm_region *r, uint64_t first,
			   uint64_t end)
{
	for (uint64_t i = first; i < end; i++)
		if (r->pages[i].state == DSM_PG_FETCHING)
			return true;
	return false;
}

/* Free what streams hold back in [first, end) and release them. */
static void drop_parked(struct dsm_region *r, uint64_t first, uint64_t end)
{
	for (int i = 0; i < DSM_STREAMS; i++) {
		struct dsm_stream *s = &dsm_eng.streams[i];
		struct dsm_page *p;

		if (s->region != r || s->parked == UINT64_MAX ||
		    s->parked < first || s->parked >= end)
			continue;
		p = &r->pages[s->parked];
		free(p->parked);
		p->parked = NULL;
		p->state = DSM_PG_INVALID;
		dsm_eng.resident--;
		s->parked = UINT64_MAX;
	}
}

int dsm_discard(uint64_t addr, uint64_t len)
{
	struct dsm_region *r;
	uint64_t first, end;

	if ((addr | len) & 4095)
		return -EINVAL;
	if (!len)
		return 0;
	for (;;) {
		pthread_mutex_lock(&dsm_eng.lock);
		r = dsm_region_find(addr);
		if (!r || addr + len > r->base + r->size) {
			pthread_mutex_unlock(&dsm_eng.lock);
			return -EINVAL;
		}
		first = (addr - r->base) / 4096;
		end = first + len / 4096;
		if (!range_fetching(r, first, end))
			break;
		pthread_mutex_unlock(&dsm_eng.lock);
		sched_yield(); /* let the engine thread land the READ */
	}
	drop_parked(r, first, end);
	for (uint64_t i = first; i < end; i++) {
		struct dsm_page *p = &r->pages[i];

		if (p->queue != DSM_Q_NONE) {
			dsm_queue_del(p);
			dsm_eng.resident--;
		}
		p->state = DSM_PG_INVALID;
		p->flags = 0;
		p->evicted_at = 0; /* a new life: no refault history */
	}
	/* Zapped under the lock, so the engine cannot map anything into the
	 * range between our decision and the drop.  On anonymous memory the
	 * kernel leaves no marker behind: the next touch is a missing fault. */
	if (madvise((void *)(uintptr_t)addr, len, MADV_DONTNEED))
		dsm_err("discarding %llu bytes at %#llx: madvise: %m",
			(unsigned long long)len, (unsigned long long)addr);
	pthread_mutex_unlock(&dsm_eng.lock);
	return 0;
}
