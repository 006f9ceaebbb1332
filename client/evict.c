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
 *     joins PROBATION (FIFO, about a quarter of the budget);
 *   - a page that faults back in while fewer than `budget` other pages
 *     were evicted since it left - so it would have stayed resident with a
 *     cache of our size managed well - joins PROTECTED;
 *   - a first write (WP fault) to a PROTECTED page moves it to the tail;
 *   - victims come from PROBATION while it is over its share, otherwise
 *     from the head of PROTECTED.
 *
 * One-touch pages (scans, the cold tail of a skewed workload) then flow
 * through probation without pushing out the hot set, which FIFO cannot do.
 * DSM_EVICT=fifo selects plain FIFO, for comparison.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "outbox.h"

static struct dsm_queue *queue_of(struct dsm_page *p)
{
	return p->queue == DSM_Q_PROTECTED ? &dsm_eng.protected
					   : &dsm_eng.probation;
}

static void append(struct dsm_queue *q, struct dsm_page *p, uint8_t id)
{
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

/* A page just became resident. */
void dsm_queue_add(struct dsm_page *p)
{
	uint32_t distance = dsm_eng.evict_clock - p->evicted_at;
	bool refault = p->evicted_at && distance <= dsm_eng.budget;

	if (!dsm_eng.fifo && refault)
		append(&dsm_eng.protected, p, DSM_Q_PROTECTED);
	else
		append(&dsm_eng.probation, p, DSM_Q_PROBATION);
}

/* A first write: evidence the page is in use. */
void dsm_queue_touch(struct dsm_page *p)
{
	if (p->queue != DSM_Q_PROTECTED)
		return;
	dsm_queue_del(p);
	append(&dsm_eng.protected, p, DSM_Q_PROTECTED);
}

static struct dsm_page *pick_victim(void)
{
	uint64_t share = dsm_eng.budget / 4;

	if (dsm_eng.probation.n > share || !dsm_eng.protected.n)
		return dsm_eng.probation.head;
	return dsm_eng.protected.head;
}

/*
 * Drop one resident page.  A dirty page is write-protected first, so no
 * store can slip in between the copy we send and the drop; a thread that
 * tries blocks on a WP fault and, once it is woken, faults the page back
 * in.  Returns false if the page cannot go now (its server is lost: its
 * data exists only here).
 */
static bool evict_page(struct dsm_page *p, struct dsm_outbox *ob)
{
	uint64_t addr = dsm_page_addr(p);
	const struct dsm_extent *e = dsm_region_extent(p->region,
						       p - p->region->pages);
	uint8_t *slot;

	if (p->state == DSM_PG_DIRTY) {
		if (dsm_eng.servers[e->server].lost)
			return false;
		if (dsm_uffd_wp(&dsm_eng.uffd, addr, 4096, true))
			return false;
		slot = dsm_outbox_write_page(ob, p, NULL);
		if (!slot) {
			dsm_uffd_wp(&dsm_eng.uffd, addr, 4096, false);
			return false;
		}
		memcpy(slot, (void *)addr, 4096);
		p->flags |= DSM_PGF_ON_SERVER;
		dsm_eng.c.pages_written_back++;
		dsm_eng.c.bytes_out += 4096;
	}
	dsm_queue_del(p);
	madvise((void *)addr, 4096, MADV_DONTNEED);
	p->state = DSM_PG_INVALID;
	p->flags &= ~DSM_PGF_PREFETCHED;
	p->evicted_at = ++dsm_eng.evict_clock;
	dsm_eng.resident--;
	dsm_eng.c.pages_evicted++;
	return true;
}

/* Make room for npages more, counting pages already being fetched. */
void dsm_make_room(uint64_t npages, struct dsm_outbox *ob)
{
	uint64_t tries = dsm_eng.probation.n + dsm_eng.protected.n;

	while (dsm_eng.resident + dsm_eng.inflight + npages > dsm_eng.budget &&
	       tries--) {
		struct dsm_page *p = pick_victim();

		if (!p)
			break;
		if (!evict_page(p, ob)) {
			/* keep it, look further */
			dsm_queue_del(p);
			append(&dsm_eng.protected, p, DSM_Q_PROTECTED);
		}
	}
}

/*
 * Write the dirty pages of [first, first+n) back and leave them resident
 * and clean.  Write protection goes on before the copy (same reason as in
 * evict_page); the wait for the server's acknowledgements happens in the
 * caller, after the outbox is flushed.
 */
int dsm_sync_range(struct dsm_region *r, uint64_t first, uint64_t n,
		   struct dsm_outbox *ob, struct dsm_sync_wait *w)
{
	for (uint64_t i = first; i < first + n; i++) {
		struct dsm_page *p = &r->pages[i];
		uint64_t addr = p->region->base + i * 4096;
		uint8_t *slot;
		int err;

		if (p->state != DSM_PG_DIRTY)
			continue;
		err = dsm_uffd_wp(&dsm_eng.uffd, addr, 4096, true);
		if (err)
			return err;
		slot = dsm_outbox_write_page(ob, p, w);
		if (!slot) {
			dsm_uffd_wp(&dsm_eng.uffd, addr, 4096, false);
			return -ENOMEM;
		}
		memcpy(slot, (void *)addr, 4096);
		p->state = DSM_PG_CLEAN;
		p->flags |= DSM_PGF_ON_SERVER;
		dsm_eng.c.pages_written_back++;
		dsm_eng.c.bytes_out += 4096;
	}
	return 0;
}
