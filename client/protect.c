/*
 * protect.c - pages the program made unreadable, for the preload shim
 * (room: preload shim).
 *
 * The engine reads the program's mapping in one place: the copy of a
 * DIRTY page it writes back (evict.c, dsm_sync_range).  The preload shim
 * lets programs mprotect far memory, so a page may be PROT_NONE (guard
 * pages) or execute-only; copying it would kill the process with SIGSEGV
 * on the engine thread.  Read-only pages need nothing: the copy can read
 * them, and the kernel keeps userfaultfd write protection across
 * mprotect.  So a range about to become unreadable is first made clean
 * (written back while the caller keeps it read-only, so no store can
 * slip in after the copy), and its pages are marked DSM_PGF_NOREAD, which
 * keeps them clean while the mark stays:
 *
 *   - a write fault queued before the range lost its write permission
 *     neither makes the page DIRTY nor lifts its protection (fault_wp,
 *     fault_zero): the writer retries and takes its SIGSEGV;
 *   - a zero-fill run started by a writer next door stops at it
 *     (fault_zero), instead of installing it writable-and-dirty;
 *   - a page that becomes DIRTY again because a write-back of it failed
 *     (dsm_server_copy_lost) is not evicted while marked (evict.c).
 *
 * Pages brought in by prefetch or a READ already in flight arrive CLEAN
 * (installed write-protected), which the engine drops without reading.
 * The mark survives dsm_discard, as the mapping's protection survives
 * MADV_DONTNEED; the shim clears it when it makes the pages readable
 * again, which it does for every page it frees.
 */
#include <errno.h>

#include "engine.h"
#include "evict.h"
#include "fault.h"
#include "outbox.h"
#include "region.h"
#include "shim.h"

/* Under the lock: the region holding [addr, addr+len) and the range's
 * first page, or NULL. */
static struct dsm_region *range_of(uint64_t addr, uint64_t len,
				   uint64_t *first)
{
	struct dsm_region *r;

	if ((addr | len) & (DSM_PAGE_SIZE - 1))
		return NULL;
	r = dsm_region_find(addr);
	if (!r || addr + len > r->base + r->size || addr + len < addr)
		return NULL;
	*first = (addr - r->base) / DSM_PAGE_SIZE;
	return r;
}

static void mark(struct dsm_region *r, uint64_t first, uint64_t n, bool on)
{
	for (uint64_t i = first; i < first + n; i++) {
		if (on)
			r->pages[i].flags |= DSM_PGF_NOREAD;
		else
			r->pages[i].flags &= ~DSM_PGF_NOREAD;
	}
}

int dsm_mark_readable(uint64_t addr, uint64_t len)
{
	struct dsm_region *r;
	uint64_t first;

	pthread_mutex_lock(&dsm_eng.lock);
	r = range_of(addr, len, &first);
	if (r)
		mark(r, first, len / DSM_PAGE_SIZE, false);
	pthread_mutex_unlock(&dsm_eng.lock);
	return r ? 0 : -EINVAL;
}

/*
 * The write-back and the mark happen under one hold of the lock, so no
 * fault can dirty a page between them.  If the servers do not confirm
 * the write-back, the mark comes off again: the caller leaves the range
 * readable then, and the engine may copy what it must send again.
 */
int dsm_mark_unreadable(uint64_t addr, uint64_t len)
{
	struct dsm_sync_wait *w = dsm_sync_wait_new();
	struct dsm_region *r;
	uint64_t first;
	int err, werr;

	if (!w)
		return -ENOMEM;
	pthread_mutex_lock(&dsm_eng.lock);
	r = range_of(addr, len, &first);
	if (!r) {
		pthread_mutex_unlock(&dsm_eng.lock);
		dsm_sync_wait_end(w); /* nothing counted in it: frees it */
		return -EINVAL;
	}
	err = dsm_sync_range(r, first, len / DSM_PAGE_SIZE, &dsm_eng.sendq, w);
	if (!err)
		mark(r, first, len / DSM_PAGE_SIZE, true);
	pthread_mutex_unlock(&dsm_eng.lock);
	dsm_engine_kick();
	/* staged write-backs point at w: wait for them even after an error */
	werr = dsm_sync_wait_end(w);
	if (werr && !err) {
		err = werr;
		dsm_mark_readable(addr, len);
	}
	return err;
}
