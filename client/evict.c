/*
 * evict.c - keeping resident pages within the budget (room: eviction).
 * Everything here runs with dsm_eng.lock held.
 *
 * Victim policy.  A userfaultfd handler sees a page's first touch and its
 * first write, never the reads that follow, so classic LRU or CLOCK (which
 * need accessed bits) cannot be built here.  What we can see is a page
 * coming back soon after we dropped it.  The default policy is therefore a
 * 2Q in which promotion is decided by refault distance, the signal Linux's
 * workingset code uses:
 *
 *   - a page arriving for the first time, or long after it was dropped,
 *     joins PROBATION (FIFO, a share of the budget that adapts, below);
 *   - a page that faults back in while fewer than `budget` other pages
 *     were evicted since it left - so it would have stayed resident with a
 *     cache of our size managed well - joins PROTECTED;
 *   - a first write (WP fault) to a PROTECTED page moves it to the tail;
 *   - victims come from PROBATION while it is over its share, otherwise
 *     from the head of PROTECTED; a victim from PROBATION takes with it
 *     the old pages of PROBATION in its 2 MiB (take_window, below).
 *
 * One-touch pages (scans, the cold tail of a skewed workload) then flow
 * through probation without pushing out the hot set, which FIFO cannot do.
 *
 * PROBATION's share adapts, as ARC's target does, to the refaults each
 * queue causes.  A page refaulting soon after it left PROTECTED would have
 * been kept by a larger PROTECTED: the share shrinks by two pages.  One
 * that left PROBATION would have been kept by a longer probation: the
 * share grows a page.  Two against one, because a page that left
 * PROTECTED had already proved its reuse once.  A fixed quarter lost the
 * reused set of programs that need most of the budget for it: sort's
 * final merges read the whole text of its lines at random while streaming
 * its line tables, and with two threads at half its working set a quarter
 * in probation cost it 131k missing faults where the adapted share, which
 * settles at its floor, cost 42-61k.  The share stays between a sixteenth
 * of the budget, so that a prefetch window is used before it goes, and
 * the quarter it starts at: above a quarter, cyclic reads a little longer
 * than the budget (tests/test_policy.c, run_written) pushed it up and
 * lost written hot pages, and a skewed workload (bench/run.sh's zipf)
 * faulted 4% more.  Only the default 2Q adapts: with second chances
 * (below) a written hot page is kept by write protection in either queue,
 * and a short probation only made it fault twice on its way back
 * (run_written: 5359 missing faults fixed, 6035 adapted).
 *
 * Second chance by write protection (DSM_EVICT=2q-wp).  Many programs
 * write what they use (CPython's reference counts make its reads writes),
 * and a write to a write-protected page is something we do see.  So a
 * DIRTY page reaching the head of either queue is not evicted at once:
 * it is write-protected again (it stays DIRTY: its data is still newer
 * than the server's, and nothing is written back yet), flagged WATCHED,
 * and sent back to the tail of its queue.  A write to it before it comes
 * round again raises a WP fault: the page is in use, so it loses the
 * flag, becomes writable and moves to PROTECTED's tail
 * (dsm_queue_touch).  A WATCHED page that reaches the head again
 * untouched is evicted.  This is CLOCK with the write-protect bit as its
 * referenced bit, for dirty pages only: a clean page is already
 * write-protected, and its reads stay invisible.
 *
 * It is not the default: each second chance costs a TLB flush, and each
 * page kept a WP fault, every lap.  Programs that write much of what they
 * keep resident pay more in those than they save in faults (xz, python3
 * at a quarter of its working set: see "Eviction" in docs/design.md).
 * DSM_EVICT=fifo selects plain FIFO, for comparison.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engine.h"
#include "evict.h"
#include "fault.h"
#include "log.h"
#include "outbox.h"
#include "placement.h"
#include "region.h"

static struct dsm_queue *queue_of(struct dsm_page *p)
{
	return p->queue == DSM_Q_PROTECTED ? &dsm_eng.protected
					   : &dsm_eng.probation;
}

static void append(struct dsm_queue *q, struct dsm_page *p, uint8_t id)
{
	if (id == DSM_Q_PROBATION)
		p->arrived = dsm_eng.probation_seq++;
	p->queue = id;
	p->q.next = NULL;
	p->q.prev = q->tail;
	if (q->tail)
		q->tail->q.next = p;
	else
		q->head = p;
	q->tail = p;
	q->n++;
}

void dsm_queue_del(struct dsm_page *p)
{
	struct dsm_queue *q;

	if (p->queue == DSM_Q_NONE)
		return;
	q = queue_of(p);
	if (p->q.prev)
		p->q.prev->q.next = p->q.next;
	else
		q->head = p->q.next;
	if (p->q.next)
		p->q.next->q.prev = p->q.prev;
	else
		q->tail = p->q.prev;
	q->n--;
	p->queue = DSM_Q_NONE;
	p->q.prev = p->q.next = NULL;
}

/* A page refaulted within a budget of evictions: the queue it left was
 * too short for it (see the policy above). */
static void adapt_share(const struct dsm_page *p)
{
	uint64_t floor = dsm_eng.budget / 16 + 1, ceiling = dsm_eng.budget / 4;
	uint64_t *share = &dsm_eng.probation_share;

	if (p->left == DSM_Q_PROBATION && *share < ceiling)
		(*share)++;
	else if (p->left == DSM_Q_PROTECTED && *share > floor + 1)
		*share -= 2;
}

/* A page just became resident. */
void dsm_queue_add(struct dsm_page *p)
{
	dsm_queue_add_from(p, false);
}

/* A page just became resident, by a stream's window if `streamed`.  Such
 * a page came in with others, ahead of the program, for a share of one
 * round trip, where a page fetched around a fault cost a whole one.  So it
 * joins PROBATION whatever its refault distance: a scan that comes back
 * streams back, and never pushes out of PROTECTED the pages that come
 * back one fault at a time.  sort's merges walk its line table over and
 * over while they read the lines' text at random: as refaults the
 * table's pages filled PROTECTED and pushed the text out (48-50k missing
 * faults at half its working set, against 13-14k).  Nor does its refault
 * teach PROBATION's share: a longer probation would have saved little. */
void dsm_queue_add_from(struct dsm_page *p, bool streamed)
{
	uint32_t distance = dsm_eng.evict_clock - p->evicted_at;
	bool refault = p->evicted_at && distance <= dsm_eng.budget;

	if (refault && !streamed && dsm_eng.policy == DSM_EVICT_2Q)
		adapt_share(p);
	if (dsm_eng.policy != DSM_EVICT_FIFO && refault && !streamed)
		append(&dsm_eng.protected, p, DSM_Q_PROTECTED);
	else
		append(&dsm_eng.probation, p, DSM_Q_PROBATION);
}

/* A write fault: evidence the page is in use.  A page on its second
 * chance has been written again since it last came round: it is kept,
 * in PROTECTED, wherever it was. */
void dsm_queue_touch(struct dsm_page *p)
{
	bool watched = p->flags & DSM_PGF_WATCHED;

	p->flags &= ~DSM_PGF_WATCHED;
	if (p->queue == DSM_Q_NONE ||
	    (p->queue != DSM_Q_PROTECTED && !watched))
		return;
	dsm_queue_del(p);
	append(&dsm_eng.protected, p, DSM_Q_PROTECTED);
}

void dsm_queue_first(struct dsm_page *p)
{
	struct dsm_queue *q = &dsm_eng.probation;

	dsm_queue_del(p);
	p->arrived = dsm_eng.probation_seq - UINT32_MAX / 2; /* the oldest */
	p->queue = DSM_Q_PROBATION;
	p->q.prev = NULL;
	p->q.next = q->head;
	if (q->head)
		q->head->q.prev = p;
	else
		q->tail = p;
	q->head = p;
	q->n++;
}

static struct dsm_page *pick_victim(void)
{
	uint64_t share = dsm_eng.probation_share;
	struct dsm_page *h = dsm_eng.probation.head;

	/* freed pages go first: dropping them costs nothing later */
	if (h && (h->flags & DSM_PGF_FREED))
		return h;
	if (dsm_eng.probation.n > share || !dsm_eng.protected.n)
		return dsm_eng.probation.head;
	return dsm_eng.protected.head;
}

/*
 * Eviction works in batches because dropping a page costs a TLB shootdown
 * (an IPI to every CPU running this process), and IPIs are what a page
 * drop mostly costs, above all in virtual machines.  A batch drops its
 * pages with one process_madvise(MADV_DONTNEED), whose flush the kernel
 * shares across the batch.  Its dirty victims go into the engine's pipe
 * before the drop and are read out after it (capture.h); those the pipe
 * cannot take are write-protected first, one contiguous run at a time.
 * Kernels without process_madvise on oneself (before 6.x) get one
 * madvise per page.
 */
#define EVICT_BATCH DSM_EVICT_BATCH

struct batch {
	struct dsm_page *p[EVICT_BATCH];
	struct iovec iov[EVICT_BATCH];
	bool taken[EVICT_BATCH];        /* p[i]'s data went into the pipe */
	struct iovec slot[EVICT_BATCH]; /* the staged pages the pipe fills */
	uint32_t n;
};

/* Dirty pages given a second chance in one round, with the queue each
 * goes back to. */
struct watch {
	struct dsm_page *p[EVICT_BATCH];
	uint8_t queue[EVICT_BATCH]; /* enum dsm_queue_id */
	uint32_t n;
};

static bool adjacent(const struct dsm_page *a, const struct dsm_page *b)
{
	return dsm_page_addr(b) == dsm_page_addr(a) + DSM_PAGE_SIZE;
}

static int self_pidfd = -1;      /* engine lock; -2: process_madvise unusable */

/*
 * Drop the batch's pages: one process_madvise, then page by page from
 * where it stopped.  The kernel refuses some pages (mlocked memory:
 * EINVAL, EAGAIN); such a page stays mapped, and its iov_base becomes
 * NULL so that the caller keeps it.  Returns how many were refused.
 */
static uint32_t drop_pages(struct batch *b)
{
	size_t total = (size_t)b->n * DSM_PAGE_SIZE;
	uint32_t refused = 0, from = 0;
	long done = -1;
	int err = 0;

	if (self_pidfd == -1) {
		self_pidfd = syscall(SYS_pidfd_open, getpid(), 0);
		if (self_pidfd < 0)
			self_pidfd = -2;
	}
	if (self_pidfd >= 0) {
		done = syscall(SYS_process_madvise, self_pidfd, b->iov, b->n,
			       MADV_DONTNEED, 0);
		err = errno;
	}
	if (done == (long)total)
		return 0;
	if (done > 0) /* whole iovecs, in order, before the one it refused */
		from = done / DSM_PAGE_SIZE;
	for (uint32_t i = from; i < b->n; i++) {
		if (madvise(b->iov[i].iov_base, DSM_PAGE_SIZE, MADV_DONTNEED)) {
			b->iov[i].iov_base = NULL;
			refused++;
		}
	}
	/* process_madvise itself cannot do it here (ENOSYS, EPERM, or EINVAL
	 * for an advice this kernel lacks, which an mlocked page also gives:
	 * told apart by madvise dropping the same page) */
	if (done < 0 && self_pidfd >= 0 && (err == ENOSYS || err == EPERM ||
	    (err == EINVAL && b->iov[0].iov_base))) {
		dsm_debug("process_madvise unusable (%s): dropping page by page",
			  strerror(err));
		close(self_pidfd);
		self_pidfd = -2;
	}
	return refused;
}

/* A dirty victim not write-protected yet (a WATCHED page still is). */
static bool needs_protection(const struct dsm_page *p)
{
	return dsm_page_needs_writeback(p) && !(p->flags & DSM_PGF_WATCHED);
}

/* Write-protect the dirty pages of the batch the pipe did not take, a
 * contiguous run per ioctl, so no store lands between the copy we send
 * and the drop. */
static int protect_dirty(struct batch *b)
{
	for (uint32_t i = 0; i < b->n;) {
		uint32_t j = i + 1;
		int err;

		if (b->taken[i] || !needs_protection(b->p[i])) {
			i++;
			continue;
		}
		while (j < b->n && !b->taken[j] && needs_protection(b->p[j]) &&
		       adjacent(b->p[j - 1], b->p[j]))
			j++;
		err = dsm_uffd_wp(&dsm_eng.uffd, dsm_page_addr(b->p[i]),
				  (size_t)(j - i) * DSM_PAGE_SIZE, true);
		if (err)
			return err;
		i = j;
	}
	return 0;
}

#ifdef __SANITIZE_THREAD__
/* ThreadSanitizer's dynamic annotations (its runtime defines them). */
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
#endif

/*
 * Copy a dirty page out for write-back.  The page is write-protected
 * first (protect_dirty, dsm_sync_range), so no store can race with the
 * copy: a store after the protection blocks in a WP fault until we are
 * done.  That ordering is the kernel's, which ThreadSanitizer cannot
 * see: it would pair this read with an application thread's earlier
 * store and call it a race, so its build ignores the reads here.
 *
 * A program that drops pages with a system call the shim does not see
 * (Go's runtime) may have dropped this one: a memcpy would then fault on
 * our own region, and this thread, holding the engine lock, would wait
 * for a fault only the engine can serve.  Such a process reads through
 * /proc/self/mem instead, where a missing page is an error (the kernel
 * never waits on userfaultfd for it), and the page is what the drop
 * made it: zeros.
 */
static void copy_out(uint8_t *slot, uint64_t addr)
{
	unsigned char in_core;

	if (dsm_eng.mem_fd >= 0) {
		if (pread(dsm_eng.mem_fd, slot, DSM_PAGE_SIZE, (off_t)addr) ==
		    DSM_PAGE_SIZE)
			return;
		/* EIO: the page is not there.  Anything else (ENOMEM for
		 * the kernel's bounce page) says nothing of the page:
		 * ask the kernel whether it is there before zeros go out
		 * over data */
		if (errno == EIO || (mincore((void *)addr, DSM_PAGE_SIZE,
					     &in_core) == 0 && !(in_core & 1))) {
			memset(slot, 0, DSM_PAGE_SIZE);
			return;
		}
	}
#ifdef __SANITIZE_THREAD__
	AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
#endif
	memcpy(slot, (void *)addr, DSM_PAGE_SIZE);
#ifdef __SANITIZE_THREAD__
	AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
#endif
}

/* A staged page for a dirty page's write-back (counted in sync, for
 * dsm_sync, if not NULL), to be filled before the outbox is sent; NULL if
 * it cannot go now. */
static uint8_t *stage_slot(struct dsm_page *p, struct dsm_outbox *ob,
			   struct dsm_sync_wait *sync)
{
	uint8_t *slot = dsm_outbox_write_page(ob, p, sync);

	if (!slot)
		return NULL;
	p->flags |= DSM_PGF_ON_SERVER;
	dsm_eng.c.pages_written_back++;
	dsm_eng.c.bytes_out += DSM_PAGE_SIZE;
	return slot;
}

/* Stage a dirty page's data for write-back; false if it cannot go now. */
static bool stage_dirty(struct dsm_page *p, struct dsm_outbox *ob,
			struct dsm_sync_wait *sync)
{
	uint8_t *slot = stage_slot(p, ob, sync);

	if (slot)
		copy_out(slot, dsm_page_addr(p));
	return slot;
}

static void keep(struct dsm_page *p)
{
	append(&dsm_eng.protected, p, DSM_Q_PROTECTED);
}

/*
 * The kernel would not drop p.  It stays resident with its true state: a
 * dirty victim was write-protected and its copy staged, so it is clean
 * now (if that write-back fails, dsm_server_copy_lost makes it dirty
 * again).  Marked INVALID while still mapped and write-protected, its
 * next store would take WP faults forever.
 */
static void not_dropped(struct dsm_page *p, bool taken)
{
	/* taken by the pipe, it was never protected: still dirty, and
	 * what went out is a copy of it, which a later one replaces */
	if (dsm_page_needs_writeback(p) && !taken) {
		p->state = DSM_PG_CLEAN;
		p->flags &= ~DSM_PGF_WATCHED;
	}
	keep(p);
}

static void warn_not_dropped(uint32_t n)
{
	static bool warned; /* engine lock */

	if (warned)
		return;
	warned = true;
	dsm_warn("the kernel refused to drop %u far-memory pages (mlocked?): "
		 "they stay resident, and the local budget may be exceeded", n);
}

/*
 * Stage the batch's dirty victims.  Each gets its staged page now; as many
 * as the pipe takes (capture.h) are copied into it after the drop, the
 * others are write-protected and copied here.  A victim that cannot be
 * staged stays, dirty (one that cannot be protected too, its copy sent
 * all the same).  Returns how many were taken: their staged pages are
 * b->slot[0..taken), in batch order.
 */
static uint32_t stage_batch(struct batch *b, struct dsm_outbox *ob)
{
	uint32_t kept = 0, dirty = 0, taken;

	for (uint32_t i = 0; i < b->n; i++) {
		struct dsm_page *p = b->p[i];
		uint8_t *slot = NULL;

		if (dsm_page_needs_writeback(p) &&
		    !(slot = stage_slot(p, ob, NULL))) {
			keep(p); /* out of memory: its next eviction tries again */
			continue;
		}
		b->taken[kept] = false;
		b->p[kept++] = p;
		if (!slot)
			continue;
		b->iov[dirty] = (struct iovec){ (void *)dsm_page_addr(p),
						DSM_PAGE_SIZE };
		b->slot[dirty++] = (struct iovec){ slot, DSM_PAGE_SIZE };
	}
	b->n = kept;
	taken = dsm_capture_take(&dsm_eng.capture, b->iov, dirty);
	for (uint32_t i = 0, d = 0; i < b->n && d < taken; i++)
		if (dsm_page_needs_writeback(b->p[i])) {
			b->taken[i] = true;
			d++;
		}
	if (taken == dirty)
		return taken;
	if (protect_dirty(b)) {
		/* copied as they are, and kept: a write-back of a page that
		 * stays dirty is only early */
		kept = 0;
		for (uint32_t i = 0, d = 0; i < b->n; i++) {
			struct dsm_page *p = b->p[i];

			if (!dsm_page_needs_writeback(p) || d++ < taken) {
				b->p[kept] = p;
				b->taken[kept++] = b->taken[i];
				continue;
			}
			copy_out(b->slot[d - 1].iov_base, dsm_page_addr(p));
			keep(p);
		}
		b->n = kept;
		return taken;
	}
	for (uint32_t d = taken; d < dirty; d++)
		copy_out(b->slot[d].iov_base, (uintptr_t)b->iov[d].iov_base);
	return taken;
}

static void evict_batch(struct batch *b, struct dsm_outbox *ob)
{
	uint32_t refused, taken = stage_batch(b, ob);
	int err;

	for (uint32_t i = 0; i < b->n; i++)
		b->iov[i] = (struct iovec){ (void *)dsm_page_addr(b->p[i]),
					    DSM_PAGE_SIZE };
	refused = drop_pages(b);
	/* only now: what the program stored until its page left the
	 * mapping is in the page the pipe holds */
	if (dsm_eng.capture.rd >= 0 &&
	    (err = dsm_capture_read(&dsm_eng.capture, b->slot, taken))) {
		dsm_err("reading back %u dirty pages being evicted: %s", taken,
			strerror(-err));
		abort(); /* their data is nowhere else */
	}
	if (refused)
		warn_not_dropped(refused);
	for (uint32_t i = 0, k = 0; i < b->n; i++) {
		struct dsm_page *p = b->p[i];

		if (!b->iov[i].iov_base) {
			not_dropped(p, b->taken[i]);
			continue;
		}
		b->p[k++] = p; /* b ends with the dropped pages only */
		if (p->state == DSM_PG_CLEAN && !(p->flags & DSM_PGF_FREED))
			dsm_wpredict_evicted(p);
		/* a freed page's next owner has no refault history */
		p->evicted_at = p->flags & DSM_PGF_FREED ? 0 :
							   ++dsm_eng.evict_clock;
		p->state = DSM_PG_INVALID;
		p->flags &= ~(DSM_PGF_PREFETCHED | DSM_PGF_FREED |
			      DSM_PGF_WATCHED | DSM_PGF_PROBE);
	}
	b->n -= refused;
	dsm_eng.resident -= b->n;
	dsm_eng.c.pages_evicted += b->n;
}

/* Can this victim go?  A dirty page with no copy on a server that is up
 * holds the only copy of its data: never.  Nor a dirty page the program made unreadable
 * (dirty again after a write-back failed): it cannot be copied, so it
 * stays until the program makes it readable again (protect.c). */
static bool evictable(struct dsm_page *p)
{
	const struct dsm_extent *e;

	if (!dsm_page_needs_writeback(p))
		return true;
	if (p->flags & DSM_PGF_NOREAD)
		return false;
	e = dsm_region_extent(p->region, p - p->region->pages);
	return dsm_extent_keeps_writes(e);
}

/* Does this victim get a second chance (see the top of this file)?  Not
 * a clean page (its reads are invisible), nor one already given it, nor a
 * freed one (needs no write-back). */
static bool second_chance(const struct dsm_page *p)
{
	return dsm_eng.policy == DSM_EVICT_2Q_WP && dsm_page_needs_writeback(p) &&
	       !(p->flags & (DSM_PGF_WATCHED | DSM_PGF_NOREAD));
}

static void requeue(struct dsm_page *p, uint8_t id)
{
	append(id == DSM_Q_PROTECTED ? &dsm_eng.protected : &dsm_eng.probation,
	       p, id);
}

/* Write-protect the pages of w again, a contiguous run per ioctl (each is
 * a TLB flush), flag them, and send them back to the tail of their queue.
 * A run the ioctl refuses stays writable and unflagged; it is evicted or
 * watched when it next comes round.  Only flagged while protected: a
 * WATCHED page's mapping is known to be write-protected. */
static void watch(struct watch *w)
{
	for (uint32_t i = 0, j; i < w->n; i = j) {
		bool ok;

		for (j = i + 1; j < w->n && adjacent(w->p[j - 1], w->p[j]); j++)
			;
		ok = !dsm_uffd_wp(&dsm_eng.uffd, dsm_page_addr(w->p[i]),
				  (size_t)(j - i) * DSM_PAGE_SIZE, true);
		for (uint32_t k = i; k < j; k++) {
			if (ok)
				w->p[k]->flags |= DSM_PGF_WATCHED;
			requeue(w->p[k], w->queue[k]);
		}
	}
	w->n = 0;
}

/* A page taken off the head of queue `from`: into the batch to evict, or
 * back into a queue (it must stay, or it is to be watched once this round
 * is over, so that a round never meets it twice). */
static void triage(struct dsm_page *p, uint8_t from, struct batch *b,
		   struct watch *w)
{
	if (!evictable(p)) {
		keep(p);
	} else if (!second_chance(p)) {
		p->left = from;
		b->p[b->n++] = p;
	} else {
		w->queue[w->n] = from;
		w->p[w->n++] = p;
	}
}

/*
 * Take victim p's cold neighbours with it: the pages of its window (the
 * 2 MiB of the region around it) in the older half of PROBATION, while
 * PROBATION is over its share (so the queues give victims as they would
 * one at a time).  On the VMs this project runs on, dropping or
 * write-protecting a page costs mostly the read of its page-table page,
 * not touched lately: 8-11 us for a lone page, about 1 us each for pages
 * sharing one.  A page read ahead and not used yet stays.
 */
#define EVICT_WINDOW DSM_HUGE_PAGES /* what one page-table page maps */

static bool cold_mate(const struct dsm_page *m)
{
	return m->queue == DSM_Q_PROBATION &&
	       !(m->flags & DSM_PGF_PREFETCHED) &&
	       dsm_eng.probation_seq - m->arrived >= dsm_eng.probation.n / 2;
}

static void take_window(struct dsm_page *p, struct batch *b,
			struct watch *w, uint64_t room)
{
	struct dsm_region *r = p->region;
	uint64_t first = (p - r->pages) & ~(EVICT_WINDOW - 1);
	uint64_t end = first + EVICT_WINDOW < r->npages ? first + EVICT_WINDOW :
							  r->npages;

	for (uint64_t i = first; i < end && b->n < room && w->n < EVICT_BATCH &&
	     dsm_eng.probation.n > dsm_eng.probation_share; i++) {
		struct dsm_page *m = &r->pages[i];

		if (!cold_mate(m))
			continue;
		dsm_queue_del(m);
		triage(m, DSM_Q_PROBATION, b, w);
	}
}

static int by_address(const void *a, const void *b)
{
	uint64_t x = dsm_page_addr(*(struct dsm_page *const *)a);
	uint64_t y = dsm_page_addr(*(struct dsm_page *const *)b);

	return x < y ? -1 : x > y;
}

/* ---- groups of a region on huge pages (huge.c) --------------------------- */

static void keep_group(struct dsm_page *g)
{
	for (uint64_t i = 0; i < DSM_HUGE_PAGES; i++)
		keep(&g[i]);
}

/* Does any page of the group need writing back? */
static bool group_dirty(const struct dsm_page *g)
{
	for (uint64_t i = 0; i < DSM_HUGE_PAGES; i++)
		if (dsm_page_needs_writeback(&g[i]))
			return true;
	return false;
}

/* evictable() for each half of the group, a stripe on its own servers. */
static bool group_evictable(struct dsm_page *g)
{
	for (uint64_t h = 0; h < DSM_HUGE_PAGES; h += DSM_STRIPE_PAGES) {
		uint64_t i = h;

		while (i < h + DSM_STRIPE_PAGES &&
		       !dsm_page_needs_writeback(&g[i]))
			i++;
		if (i < h + DSM_STRIPE_PAGES && !evictable(&g[i]))
			return false;
	}
	return true;
}

/* Write-protect the group and stage its dirty pages (all of them, but
 * for a group some of whose copies were lost: outbox.c): 0, or an error
 * with the group left dirty (protected if staging ran out of memory; its
 * next store takes a WP fault, which is harmless).  sync: for dsm_sync. */
static int stage_group(struct dsm_page *g, struct dsm_outbox *ob,
		       struct dsm_sync_wait *sync)
{
	uint64_t addr = dsm_page_addr(g);
	int err = dsm_uffd_wp(&dsm_eng.uffd, addr, DSM_HUGE_SIZE, true);

	for (uint64_t i = 0; !err && i < DSM_HUGE_PAGES; i++)
		if (dsm_page_needs_writeback(&g[i]) &&
		    !stage_dirty(&g[i], ob, sync))
			err = -ENOMEM;
	if (err)
		return err;
	for (uint64_t i = 0; i < DSM_HUGE_PAGES; i++)
		g[i].state = DSM_PG_CLEAN;
	return 0;
}

/*
 * Evict the group of victim p, which left queue `from`: its pages leave
 * their queues, its dirty pages are written back, and one madvise drops
 * the huge page.  How many pages left memory: DSM_HUGE_PAGES or 0 (the
 * group stays, resident and queued: it holds the only copy of its data,
 * or the kernel refused).
 */
static uint64_t evict_group(struct dsm_page *p, uint8_t from,
			    struct dsm_outbox *ob)
{
	struct dsm_region *r = p->region;
	struct dsm_page *g = &r->pages[(p - r->pages) & ~(DSM_HUGE_PAGES - 1)];

	for (uint64_t i = 0; i < DSM_HUGE_PAGES; i++)
		if (g[i].queue != DSM_Q_NONE)
			dsm_queue_del(&g[i]);
	if (group_dirty(g) &&
	    (!group_evictable(g) || stage_group(g, ob, NULL))) {
		keep_group(g);
		return 0;
	}
	if (madvise((void *)(uintptr_t)dsm_page_addr(g), DSM_HUGE_SIZE,
		    MADV_DONTNEED)) {
		warn_not_dropped(DSM_HUGE_PAGES);
		keep_group(g); /* staged, so clean: not_dropped's reasoning */
		return 0;
	}
	for (uint64_t i = 0; i < DSM_HUGE_PAGES; i++) {
		g[i].left = from;
		g[i].evicted_at = ++dsm_eng.evict_clock;
		g[i].state = DSM_PG_INVALID;
		g[i].flags &= ~(DSM_PGF_PREFETCHED | DSM_PGF_WATCHED |
				DSM_PGF_PROBE);
	}
	dsm_eng.resident -= DSM_HUGE_PAGES;
	dsm_eng.c.pages_evicted += DSM_HUGE_PAGES;
	return DSM_HUGE_PAGES;
}

/* ---- the victim loop ------------------------------------------------- */

/* Evict goal pages, or as many as can go.  With second chances a page
 * may come round twice: for its second chance, then to go.  A victim
 * from a region on huge pages takes its whole group with it, at once. */
static void evict(uint64_t goal, struct dsm_outbox *ob)
{
	uint64_t tries = (dsm_eng.probation.n + dsm_eng.protected.n) *
			 (dsm_eng.policy == DSM_EVICT_2Q_WP ? 2 : 1);
	struct watch w = { .n = 0 };
	struct batch b;

	while (goal && tries) {
		uint64_t groups = 0; /* pages gone with their groups */

		b.n = 0;
		while (b.n < EVICT_BATCH && b.n + groups < goal &&
		       w.n < EVICT_BATCH && tries) {
			struct dsm_page *p = pick_victim();
			uint8_t from;

			if (!p)
				break;
			tries--;
			from = p->queue;
			if (p->region->huge) {
				groups += evict_group(p, from, ob);
				/* a group kept costs its pages' worth */
				tries -= tries < DSM_HUGE_PAGES ? tries :
								  DSM_HUGE_PAGES - 1;
				continue;
			}
			dsm_queue_del(p);
			triage(p, from, &b, &w);
			if (dsm_eng.evict_window)
				take_window(p, &b, &w,
					    goal - groups < EVICT_BATCH ?
					    goal - groups : EVICT_BATCH);
		}
		if (!b.n && !w.n && !groups)
			break;
		watch(&w);
		if (b.n > 1 && dsm_eng.evict_window)
			qsort(b.p, b.n, sizeof(b.p[0]), by_address);
		if (b.n)
			evict_batch(&b, ob);
		goal = goal > b.n + groups ? goal - b.n - groups : 0;
	}
}

/*
 * Free pages are kept ahead of need: after the engine thread has sent a
 * batch of fetches, it evicts while their replies travel, when fewer than
 * a quarter of the high mark are free, up to the high mark.  A fault then
 * finds room instead of waiting for an eviction before its READ goes out.
 * High: an eighth of the budget, at most two eviction batches.
 */
static uint64_t high_mark(void)
{
	uint64_t h = dsm_eng.budget / 8;

	return h < 2 * EVICT_BATCH ? h : 2 * EVICT_BATCH;
}

void dsm_make_room(uint64_t npages, struct dsm_outbox *ob)
{
	uint64_t want = dsm_eng.resident + dsm_eng.inflight + npages;

	if (want > dsm_eng.budget)
		evict(want - dsm_eng.budget, ob);
}

void dsm_evict_ahead(struct dsm_outbox *ob)
{
	uint64_t used = dsm_eng.resident + dsm_eng.inflight;

	/* down to a quarter of the mark before refilling it: each drop
	 * costs about one TLB shoot-down whatever its size, so fewer,
	 * larger batches */
	if (used + high_mark() / 4 > dsm_eng.budget)
		evict(used + high_mark() - dsm_eng.budget, ob);
}

/*
 * Write the dirty pages of [first, first+n) back and leave them resident
 * and clean.  Write protection goes on before the copy (same reason as in
 * protect_dirty); the wait for the server's acknowledgements happens in the
 * caller, after the outbox is flushed.
 */
int dsm_sync_range(struct dsm_region *r, uint64_t first, uint64_t n,
		   struct dsm_outbox *ob, struct dsm_sync_wait *w)
{
	if (r->huge) { /* the groups [first, first+n) touches, whole */
		uint64_t g = first & ~(DSM_HUGE_PAGES - 1);
		int err = 0;

		for (; !err && g < first + n; g += DSM_HUGE_PAGES)
			if (group_dirty(&r->pages[g]))
				err = stage_group(&r->pages[g], ob, w);
		return err;
	}
	for (uint64_t i = first; i < first + n; i++) {
		struct dsm_page *p = &r->pages[i];
		uint64_t addr = p->region->base + i * DSM_PAGE_SIZE;
		int err;

		if (!dsm_page_needs_writeback(p))
			continue;
		err = dsm_uffd_wp(&dsm_eng.uffd, addr, DSM_PAGE_SIZE, true);
		if (err)
			return err;
		if (!stage_dirty(p, ob, w)) {
			/* writable again, so no longer watched */
			dsm_uffd_wp(&dsm_eng.uffd, addr, DSM_PAGE_SIZE, false);
			p->flags &= ~DSM_PGF_WATCHED;
			return -ENOMEM;
		}
		p->state = DSM_PG_CLEAN;
		p->flags &= ~DSM_PGF_WATCHED;
	}
	return 0;
}
