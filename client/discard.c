/*
 * discard.c - forgetting part of a region, for the preload shim (room:
 * preload shim).
 *
 * The preload shim carves many allocations out of one large region (an
 * arena).  When the program frees one, its pages must stop costing
 * anything: never written back (the program no longer cares what they
 * hold) and never fetched again (the server's copy is garbage now).
 * dsm_free() does this for a whole region by unmapping it; this file does
 * it for a range that stays mapped and registered, in two ways:
 *
 *   dsm_discard  drops the pages at once, so they read as zeros at their
 *                next touch (a missing fault, zero-filled), as fresh
 *                anonymous memory does: for calloc and mmap;
 *   dsm_release  keeps resident pages mapped but FREED, for the next
 *                malloc to reuse without a fault (dsm_reuse); eviction
 *                drops them first, without a write-back.
 *
 * dsm_discard, per page, under the engine lock:
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
 *
 * The servers' copies go too: each run of pages a server holds data for
 * (ON_SERVER) gets a DISCARD, queued in the send queue behind every
 * write-back already decided, so the server drops the pages after the
 * last write that could land on them and gives the memory back to its OS.
 * The region's extents stay reserved there; only dsm_free returns them.
 * An extent in the middle of a move (migrate.c) is left alone: its copy
 * is already on its way to the new home, which frees it with the region.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "engine.h"
#include "evict.h"
#include "fault.h"
#include "log.h"
#include "outbox.h"
#include "placement.h"
#include "region.h"
#include "shim.h"
#include "util.h"

static bool range_fetching(const struct dsm_region *r, uint64_t first,
			   uint64_t end)
{
	for (uint64_t i = first; i < end; i++)
		if (r->pages[i].state == DSM_PG_FETCHING)
			return true;
	return false;
}

/* DISCARD the runs of [first, end) that servers hold data for, one
 * request per run within an extent.  Under the lock, before the pages'
 * flags are cleared.  Whether the engine thread needs a kick. */
static bool discard_on_servers(struct dsm_region *r, uint64_t first,
			       uint64_t end)
{
	bool queued = false;
	uint64_t i = first;

	while (i < end) {
		const struct dsm_extent *e;
		uint64_t stop, n = 0;

		if (!(r->pages[i].flags & DSM_PGF_ON_SERVER)) {
			i++;
			continue;
		}
		e = dsm_region_extent(r, i);
		stop = (e->off + e->len) / DSM_PAGE_SIZE;
		if (stop > end)
			stop = end;
		if (e->move) {
			i = stop;
			continue;
		}
		while (i + n < stop && (r->pages[i + n].flags & DSM_PGF_ON_SERVER))
			n++;
		/* Out of memory: the server keeps the garbage until the
		 * region is freed.  Nothing is lost. */
		if (dsm_outbox_discard(&dsm_eng.sendq, e, i, n) == 0)
			queued = true;
		i += n;
	}
	return queued;
}

/* Take the lock with no page of [addr, addr+len) being fetched, and find
 * the range's region and pages.  0 with the lock held; without it, 1 for
 * an empty range (nothing to do), -EINVAL (the range is not inside one
 * region) or -ETIMEDOUT: a fetch did not land within the reply timeout
 * (its server neither answers nor is known dead), and the caller, who
 * may hold the preload shim's arena lock, must not wait for ever. */
static int lock_range(uint64_t addr, uint64_t len, struct dsm_region **rp,
		      uint64_t *first, uint64_t *end)
{
	uint64_t deadline = dsm_now_ns() + dsm_eng.reply_ns;
	struct dsm_region *r;

	if ((addr | len) & (DSM_PAGE_SIZE - 1))
		return -EINVAL;
	if (!len)
		return 1;
	for (;;) {
		pthread_mutex_lock(&dsm_eng.lock);
		r = dsm_region_find(addr);
		if (!r || addr + len > r->base + r->size) {
			pthread_mutex_unlock(&dsm_eng.lock);
			return -EINVAL;
		}
		*first = (addr - r->base) / DSM_PAGE_SIZE;
		*end = *first + len / DSM_PAGE_SIZE;
		if (!range_fetching(r, *first, *end))
			break;
		pthread_mutex_unlock(&dsm_eng.lock);
		if (dsm_now_ns() >= deadline) {
			dsm_err("pages at %#llx are still being fetched after "
				"%llu ms: giving up on them",
				(unsigned long long)addr,
				(unsigned long long)(dsm_eng.reply_ns / 1000000));
			return -ETIMEDOUT;
		}
		sched_yield(); /* let the engine thread land the READ */
	}
	*rp = r;
	/* what streams hold back and what servers hold is garbage either way */
	dsm_streams_drop_parked(r, *first, *end);
	return 0;
}

static void unlock_kick(bool kick)
{
	pthread_mutex_unlock(&dsm_eng.lock);
	if (kick)
		dsm_engine_kick();
}

int dsm_discard(uint64_t addr, uint64_t len)
{
	struct dsm_region *r;
	uint64_t first, end;
	bool kick;
	int err;

	err = lock_range(addr, len, &r, &first, &end);
	if (err)
		return err < 0 ? err : 0;
	kick = discard_on_servers(r, first, end);
	for (uint64_t i = first; i < end; i++) {
		struct dsm_page *p = &r->pages[i];

		if (p->queue != DSM_Q_NONE) {
			dsm_queue_del(p);
			dsm_eng.resident--;
		}
		/* poisoned without UFFDIO_POISON: not the region's mapping
		 * any more, which the zap below would not restore */
		if (p->state == DSM_PG_LOST)
			dsm_uffd_unpoison(&dsm_eng.uffd, dsm_page_addr(p),
					  DSM_PAGE_SIZE);
		p->state = DSM_PG_INVALID;
		/* the mapping keeps its protection through MADV_DONTNEED,
		 * so the page keeps its NOREAD mark (protect.c) */
		p->flags &= DSM_PGF_NOREAD;
		p->evicted_at = 0; /* a new life: no refault history */
	}
	/* Zapped under the lock, so the engine cannot map anything into the
	 * range between our decision and the drop.  On anonymous memory the
	 * kernel leaves no marker behind: the next touch is a missing fault. */
	if (madvise((void *)(uintptr_t)addr, len, MADV_DONTNEED))
		dsm_err("discarding %llu bytes at %#llx: madvise: %m",
			(unsigned long long)len, (unsigned long long)addr);
	unlock_kick(kick);
	return 0;
}

/*
 * Release: the program freed the range and will want its pages again
 * soon (a malloc after a free).  Dropping them now would cost a zap here
 * and a zero-fill fault per run at the next touch, which is most of what
 * a churning program (python3, sort) paid for far memory.  So resident
 * pages stay mapped, flagged FREED and put first in line for eviction,
 * which drops them without a write-back: their data is garbage.  What
 * the servers hold is discarded now.  A LOST page is zapped, so that it
 * cannot raise SIGBUS for its next owner.  dsm_reuse makes the range live
 * again; dsm_discard instead when it must read as zeros.
 */
int dsm_release(uint64_t addr, uint64_t len)
{
	struct dsm_region *r;
	uint64_t first, end;
	bool kick;
	int err;

	err = lock_range(addr, len, &r, &first, &end);
	if (err)
		return err < 0 ? err : 0;
	kick = discard_on_servers(r, first, end);
	for (uint64_t i = first; i < end; i++) {
		struct dsm_page *p = &r->pages[i];

		if (p->state == DSM_PG_LOST)
			dsm_uffd_unpoison(&dsm_eng.uffd, dsm_page_addr(p),
					  DSM_PAGE_SIZE);
		/* the NOREAD mark stays, as the mapping's protection does,
		 * until the shim makes the pages readable (protect.c) */
		if (p->queue == DSM_Q_NONE) {
			p->state = DSM_PG_INVALID;
			p->flags &= DSM_PGF_NOREAD;
		} else {
			p->flags = DSM_PGF_FREED | (p->flags & DSM_PGF_NOREAD);
			dsm_queue_first(p);
		}
		p->evicted_at = 0;
	}
	unlock_kick(kick);
	return 0;
}

int dsm_reuse(uint64_t addr, uint64_t len)
{
	struct dsm_region *r;
	uint64_t first, end;
	int err;

	err = lock_range(addr, len, &r, &first, &end);
	if (err)
		return err < 0 ? err : 0;
	for (uint64_t i = first; i < end; i++) {
		struct dsm_page *p = &r->pages[i];

		if (!(p->flags & DSM_PGF_FREED))
			continue;
		/* live from now on: written back like any page, and queued
		 * as if it had just arrived */
		p->flags &= ~DSM_PGF_FREED;
		dsm_queue_del(p);
		dsm_queue_add(p);
	}
	pthread_mutex_unlock(&dsm_eng.lock);
	return 0;
}
