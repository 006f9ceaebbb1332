/*
 * huge.c - regions on 2 MiB pages: their faults (room: fault engine).
 *
 * A region made with DSM_ALLOC_HUGE is mapped on the kernel's reserved
 * huge pages (vm.nr_hugepages), and userfaultfd serves such a mapping in
 * whole huge pages only.  So its pages move in aligned groups of
 * DSM_HUGE_PAGES: a fault fetches its group with one READ per 1 MiB stripe
 * and installs it with one UFFDIO_COPY; a write to a clean group takes one
 * WP fault that makes all of it dirty; eviction (evict.c) writes the
 * group back and drops it with one madvise.  Why: on the virtual machines
 * we measured, the first touch of a newly mapped 4 KiB page costs about
 * 5 µs (the hypervisor fills its own page table then), which bounds any
 * sequential read on 4 KiB pages; a 2 MiB mapping pays it once for 512
 * pages (docs/design.md, "Regions on huge pages").
 *
 * The page records stay 4 KiB, so the queues, the placement, the
 * write-back batching and the counters work unchanged; every record of a
 * group holds the group's state.  Of what 4 KiB regions add on top, only
 * reading ahead is kept, simpler: a fault on the group a stream reaches
 * next (or on one it fetched ahead) has the next AHEAD groups fetched.
 * A region follows up to DSM_HUGE_STREAMS streams at once (threads
 * scanning their own parts of it), as many as the budget can hold AHEAD
 * groups ahead for beside the one each reads; a fault that continues
 * none starts a stream in place of the stalest.
 * Such a group is held back when it arrives (PARKED, its buffer kept)
 * rather than mapped, so that the program's first touch of it faults -
 * cheaply, from memory - and tells us the stream goes on; a group mapped
 * unseen would let the stream run into a full round trip (fault.c parks
 * a marker page for the same reason).  Fetch-around, write prediction
 * and second chances do not apply: a group is already a large block.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "evict.h"
#include "fault.h"
#include "huge.h"
#include "log.h"
#include "outbox.h"
#include "placement.h"
#include "region.h"
#include "stats.h"
#include "util.h"

#define HALF_PAGES (DSM_HUGE_PAGES / 2) /* one stripe: one READ */
#define AHEAD 2         /* groups a stream keeps fetched ahead */
#define SPARE_BUFFERS (AHEAD + 2)

/* One READ of a group fetch: half the group, a stripe. */
struct huge_half {
	struct huge_fetch *g;
	uint64_t first;   /* page index in the region */
	uint32_t tries;   /* READs sent for it: one per copy at most */
	bool read;        /* false: never written anywhere, zeros */
};

/* A group being fetched: its READs land in buf, installed at once when
 * the last one is in. */
struct huge_fetch {
	struct dsm_region *r;
	uint64_t first;   /* the group's first page */
	uint8_t *buf;     /* DSM_HUGE_SIZE bytes */
	uint32_t pending; /* READs not answered yet */
	int status;       /* the first error */
	uint64_t t0;      /* when the fault that asked was read; 0: read
	                   * ahead, and nobody has faulted on it yet */
	struct huge_half half[2];
};

/* Group buffers kept for the next fetch, so that READs land in memory
 * the CPU touched lately (a fresh 2 MiB buffer costs 512 first touches).
 * Guarded by dsm_eng.lock. */
static uint8_t *spare[SPARE_BUFFERS];
static unsigned nspare;
/* DSM_HUGE_SIZE bytes of zeros, the source of zero-filled groups: real
 * memory, written once.  (From a never-written mapping, the kernel's zero
 * page, a zero-filling UFFDIO_COPY took 5.2 ms a huge page here against
 * 3.7 from this; a fetched group's, from a buffer, 0.15.)  Engine lock. */
static uint8_t *zeros;

static uint8_t *buffer_get(void)
{
	return nspare ? spare[--nspare] : malloc(DSM_HUGE_SIZE);
}

static void buffer_put(uint8_t *b)
{
	if (nspare < SPARE_BUFFERS)
		spare[nspare++] = b;
	else
		free(b);
}

static const uint8_t *zero_source(void)
{
	/* not calloc: it would leave a fresh mapping unwritten */
	if (!zeros && (zeros = malloc(DSM_HUGE_SIZE)))
		memset(zeros, 0, DSM_HUGE_SIZE);
	return zeros;
}

static uint64_t group_addr(const struct dsm_region *r, uint64_t first)
{
	return r->base + first * DSM_PAGE_SIZE;
}

/* Every record of the group gets state, and loses the flags of a page
 * that is no longer where it was. */
static void group_set(struct dsm_region *r, uint64_t first, uint8_t state)
{
	for (uint64_t i = first; i < first + DSM_HUGE_PAGES; i++) {
		r->pages[i].state = state;
		r->pages[i].flags &= ~(DSM_PGF_WRITE_WAITS | DSM_PGF_PREFETCHED |
				       DSM_PGF_MARKED | DSM_PGF_PROBE);
	}
}

static bool group_has(const struct dsm_region *r, uint64_t first,
		      uint64_t n, uint8_t state, uint8_t flag)
{
	for (uint64_t i = first; i < first + n; i++)
		if (r->pages[i].state == state &&
		    (!flag || (r->pages[i].flags & flag)))
			return true;
	return false;
}

/* The group cannot be had: it raises SIGBUS from now on. */
static void group_lost(struct dsm_region *r, uint64_t first, int err)
{
	group_set(r, first, DSM_PG_LOST);
	dsm_err("cannot fetch the 2 MiB page at %#llx: %s; touching it raises "
		"SIGBUS", (unsigned long long)group_addr(r, first),
		strerror(-err));
	dsm_poison_or_abort(group_addr(r, first), DSM_HUGE_SIZE);
}

/* Map the group at first from buf: write-protected, or writable and dirty
 * when a thread waits to write it.  It counts as resident (parked, it
 * did already).  False if it is not mapped. */
static bool install(struct dsm_region *r, uint64_t first, const uint8_t *buf,
		    bool writable, bool parked)
{
	unsigned skipped;
	int err;

	err = dsm_uffd_copy(&dsm_eng.uffd, group_addr(r, first), buf,
			    DSM_HUGE_SIZE, !writable, &skipped);
	if (err && parked)
		dsm_eng.resident -= DSM_HUGE_PAGES;
	if (err == -ENOMEM) {
		dsm_err("no free huge page for the far memory at %#llx: raise "
			"vm.nr_hugepages (every 2 MiB of DSM_LOCAL_MEM takes one)",
			(unsigned long long)group_addr(r, first));
		group_lost(r, first, err);
		return false;
	}
	if (err) { /* the region or the process going away */
		group_set(r, first, DSM_PG_INVALID);
		return false;
	}
	group_set(r, first, writable ? DSM_PG_DIRTY : DSM_PG_CLEAN);
	for (uint64_t i = first; i < first + DSM_HUGE_PAGES; i++)
		dsm_queue_add(&r->pages[i]);
	if (!parked)
		dsm_eng.resident += DSM_HUGE_PAGES;
	return true;
}

/* ---- streams ------------------------------------------------------------ */

static uint64_t stream_clock; /* engine lock: orders streams' moves */

void dsm_huge_init(struct dsm_region *r)
{
	for (unsigned i = 0; i < DSM_HUGE_STREAMS; i++)
		r->huge_streams[i] = (struct dsm_huge_stream){ UINT64_MAX, 0 };
	r->huge_streams[0].next = 0;
}

/* How many streams the budget feeds: each holds AHEAD groups read ahead
 * beside the one it reads, and making room for more would evict that. */
static unsigned streams_max(void)
{
	uint64_t n = dsm_eng.budget / ((AHEAD + 2) * DSM_HUGE_PAGES);

	return n < DSM_HUGE_STREAMS ? (unsigned)n : DSM_HUGE_STREAMS;
}

/* Whether stream s reaches group k next or has read it ahead. */
static bool in_window(const struct dsm_huge_stream *s, uint64_t k)
{
	return s->next != UINT64_MAX && k >= s->next && k - s->next < AHEAD;
}

static struct dsm_huge_stream *stream_at(struct dsm_region *r, uint64_t k)
{
	for (unsigned i = 0; i < streams_max(); i++)
		if (in_window(&r->huge_streams[i], k))
			return &r->huge_streams[i];
	return NULL;
}

static struct dsm_huge_stream *stalest(struct dsm_region *r)
{
	struct dsm_huge_stream *s = &r->huge_streams[0];

	for (unsigned i = 1; i < streams_max(); i++)
		if (r->huge_streams[i].seen < s->seen)
			s = &r->huge_streams[i];
	return s;
}

/* A group read ahead is in: held back, unless no stream reaches it any
 * more (then it is mapped clean, evictable as any). */
static bool park(struct huge_fetch *g)
{
	struct dsm_region *r = g->r;

	if (!stream_at(r, g->first / DSM_HUGE_PAGES))
		return false;
	group_set(r, g->first, DSM_PG_PARKED);
	r->pages[g->first].parked_data = g->buf;
	dsm_eng.resident += DSM_HUGE_PAGES;
	return true;
}

/* Map a parked group, and give its buffer back. */
static void unpark(struct dsm_region *r, uint64_t first, bool writable)
{
	uint8_t *buf = r->pages[first].parked_data;

	r->pages[first].parked_data = NULL;
	install(r, first, buf, writable, true);
	buffer_put(buf);
}

static void fetch_end(struct huge_fetch *g)
{
	struct dsm_region *r = g->r;
	uint64_t now = dsm_now_ns();

	dsm_eng.inflight -= DSM_HUGE_PAGES;
	if (!r->dead) {
		bool writable = group_has(r, g->first, DSM_HUGE_PAGES,
					  DSM_PG_FETCHING, DSM_PGF_WRITE_WAITS);

		if (g->status)
			group_lost(r, g->first, g->status);
		else if (!g->t0 && park(g))
			g->buf = NULL; /* the parked group's now */
		else
			install(r, g->first, g->buf, writable, false);
	}
	if (g->t0) { /* as fault.c's fetch_complete: up to the reply */
		dsm_hist_add(&dsm_eng.c, now - g->t0);
		dsm_eng.c.blocktime_ns += now - g->t0;
	}
	if (g->buf)
		buffer_put(g->buf);
	dsm_region_put(r);
	free(g);
}

static void half_done(void *arg, int status, const uint8_t *payload,
		      uint32_t len);

static void half_complete(struct huge_half *h, int status,
			  const uint8_t *payload, uint32_t len)
{
	struct huge_fetch *g = h->g;

	if (status && dsm_read_again(g->r, h->first, HALF_PAGES, &h->tries,
				     half_done, h))
		return;
	if (!status && len != HALF_PAGES * DSM_PAGE_SIZE)
		status = -EPROTO;
	if (status && !g->status)
		g->status = status;
	if (!status && !g->r->dead) {
		memcpy(g->buf + (h->first - g->first) * DSM_PAGE_SIZE, payload,
		       len);
		dsm_eng.c.pages_fetched += HALF_PAGES;
		dsm_eng.c.bytes_in += len;
	}
	if (--g->pending == 0)
		fetch_end(g);
}

/* Completion of a READ, on the engine thread. */
static void half_done(void *arg, int status, const uint8_t *payload,
		      uint32_t len)
{
	pthread_mutex_lock(&dsm_eng.lock);
	half_complete(arg, status, payload, len);
	pthread_mutex_unlock(&dsm_eng.lock);
}

/* A group no server holds anything of: zeros, mapped here. */
static void zero_fill(struct dsm_region *r, uint64_t first, bool write,
		      uint64_t t0, struct dsm_outbox *ob)
{
	const uint8_t *src = zero_source();

	if (!src) {
		dsm_err("out of memory zero-filling the 2 MiB page at %#llx",
			(unsigned long long)group_addr(r, first));
		return;
	}
	dsm_make_room(DSM_HUGE_PAGES, ob);
	if (install(r, first, src, write, false))
		dsm_eng.c.pages_zero_filled += DSM_HUGE_PAGES;
	dsm_fault_served(t0);
}

/* Fetch the group: a READ per half any server holds data of, zeros for
 * the rest; t0 0 to read it ahead.  A half whose data is moving to
 * another server is not read yet: the faulting thread stays blocked
 * until the move wakes it (migrate.c) and faults again.  A group no
 * server holds anything of is zero-filled at once, but not ahead. */
static void fetch(struct dsm_region *r, uint64_t first, bool write,
		  uint64_t t0, struct dsm_outbox *ob)
{
	const struct dsm_extent *e[2] = { NULL, NULL };
	struct huge_fetch *g;
	unsigned nread = 0;

	for (int h = 0; h < 2; h++) {
		uint64_t at = first + h * HALF_PAGES;

		if (!group_has(r, at, HALF_PAGES, DSM_PG_INVALID,
			       DSM_PGF_ON_SERVER))
			continue;
		e[h] = dsm_region_extent(r, at);
		if (!e[h] || e[h]->move)
			return;
		nread++;
	}
	if (!nread) {
		if (t0)
			zero_fill(r, first, write, t0, ob);
		return;
	}
	g = calloc(1, sizeof(*g));
	if (g && !(g->buf = buffer_get())) {
		free(g);
		g = NULL;
	}
	if (!g) { /* as for 4 KiB pages: the thread waits, nothing is lost */
		dsm_err("out of memory fetching the 2 MiB page at %#llx",
			(unsigned long long)group_addr(r, first));
		return;
	}
	dsm_make_room(DSM_HUGE_PAGES, ob);
	g->r = r;
	g->first = first;
	g->t0 = t0;
	g->pending = nread;
	r->refs++;
	group_set(r, first, DSM_PG_FETCHING);
	r->pages[first].group = g;
	if (write)
		r->pages[first].flags |= DSM_PGF_WRITE_WAITS;
	dsm_eng.inflight += DSM_HUGE_PAGES;
	if (!t0)
		dsm_eng.c.pages_prefetched += DSM_HUGE_PAGES;
	for (int h = 0; h < 2; h++) {
		struct huge_half *hh = &g->half[h];

		*hh = (struct huge_half){ .g = g, .first = first + h * HALF_PAGES,
					  .read = e[h] != NULL };
		if (!hh->read)
			memset(g->buf + h * HALF_PAGES * DSM_PAGE_SIZE, 0,
			       HALF_PAGES * DSM_PAGE_SIZE);
	}
	for (int h = 0; h < 2; h++)
		if (g->half[h].read &&
		    dsm_outbox_read(ob, e[h], g->half[h].first, HALF_PAGES,
				    half_done, &g->half[h]))
			half_complete(&g->half[h], -ENOMEM, NULL, 0);
}

/* Parked groups in [from, to) the stream will not reach now (it went
 * elsewhere, or past them): mapped clean, so that they can be evicted. */
static void release_parked(struct dsm_region *r, uint64_t from, uint64_t to)
{
	for (uint64_t k = from; k < to; k++) {
		uint64_t first = k * DSM_HUGE_PAGES;

		if (first < r->npages &&
		    r->pages[first].state == DSM_PG_PARKED)
			unpark(r, first, false);
	}
}

/* The parked groups of stream s's window before group k (all of them
 * for k UINT64_MAX): it will not read them now. */
static void release_window(struct dsm_region *r,
			   const struct dsm_huge_stream *s, uint64_t k)
{
	if (s->next != UINT64_MAX)
		release_parked(r, s->next, k - s->next < AHEAD ? k :
							s->next + AHEAD);
}

/* A fault on group k (ahead: on one read ahead).  If it continues a
 * stream (k is the group the stream reaches next, or one it read ahead),
 * the stream moves on and the AHEAD groups after k are fetched if they
 * are not yet.  Else a stream starts at k in place of the stalest one,
 * whose groups held back are mapped; it reads ahead from its next fault
 * on, or at once if k was read ahead. */
static void stream(struct dsm_region *r, uint64_t k, bool ahead,
		   struct dsm_outbox *ob)
{
	struct dsm_huge_stream *s;
	bool fresh = false;

	/* DSM_PREFETCH=1: no reading ahead; nor in a budget too small to
	 * hold the groups read ahead beside the one just mapped */
	if (dsm_eng.prefetch_max <= 1 || !streams_max())
		return;
	s = stream_at(r, k);
	if (s) {
		release_window(r, s, k); /* skipped over */
	} else {
		s = stalest(r);
		release_window(r, s, UINT64_MAX);
		fresh = true;
	}
	s->next = k + 1;
	s->seen = ++stream_clock;
	if (fresh && !ahead)
		return;
	for (uint64_t j = k + 1; j <= k + AHEAD; j++) {
		uint64_t first = j * DSM_HUGE_PAGES;

		if (first < r->npages &&
		    r->pages[first].state == DSM_PG_INVALID)
			fetch(r, first, false, 0, ob);
	}
}

static void fault_missing(struct dsm_region *r, uint64_t first, bool write,
			  uint64_t t0, struct dsm_outbox *ob)
{
	struct dsm_page *p = &r->pages[first];
	uint64_t k = first / DSM_HUGE_PAGES;

	dsm_eng.c.missing_faults++;
	if (group_has(r, first, DSM_HUGE_PAGES, DSM_PG_LOST, 0)) {
		dsm_poison_or_abort(group_addr(r, first), DSM_HUGE_SIZE);
		return;
	}
	switch (p->state) {
	case DSM_PG_FETCHING: /* the install wakes it */
		if (write)
			p->flags |= DSM_PGF_WRITE_WAITS;
		if (!p->group->t0) { /* read ahead: now awaited */
			p->group->t0 = t0;
			stream(r, k, true, ob);
		}
		break;
	case DSM_PG_PARKED:
		unpark(r, first, write);
		dsm_eng.c.prefetch_used += DSM_HUGE_PAGES;
		dsm_fault_served(t0);
		stream(r, k, true, ob);
		break;
	case DSM_PG_INVALID:
		fetch(r, first, write, t0, ob);
		stream(r, k, false, ob);
		break;
	default: /* installed since the fault was raised */
		dsm_uffd_wake(&dsm_eng.uffd, group_addr(r, first),
			      DSM_HUGE_SIZE);
		break;
	}
}

void dsm_huge_forget(struct dsm_region *r)
{
	for (uint64_t first = 0; first < r->npages; first += DSM_HUGE_PAGES) {
		struct dsm_page *p = &r->pages[first];

		if (p->state != DSM_PG_PARKED)
			continue;
		buffer_put(p->parked_data);
		p->parked_data = NULL;
		group_set(r, first, DSM_PG_INVALID);
		dsm_eng.resident -= DSM_HUGE_PAGES;
	}
}

void dsm_huge_unpark(struct dsm_region *r, uint64_t first, uint64_t end)
{
	for (uint64_t g = first & ~(DSM_HUGE_PAGES - 1); g < end;
	     g += DSM_HUGE_PAGES)
		if (r->pages[g].state == DSM_PG_PARKED)
			unpark(r, g, false);
}

/* A write to a write-protected group: all of it becomes dirty (the
 * kernel protects hugetlb memory in whole huge pages). */
static void fault_wp(struct dsm_region *r, uint64_t first, uint64_t t0)
{
	uint64_t addr = group_addr(r, first);
	uint8_t state = r->pages[first].state;

	dsm_eng.c.wp_faults++;
	if (state != DSM_PG_CLEAN && state != DSM_PG_DIRTY) {
		/* dropped while the fault waited: it retries, and misses */
		dsm_uffd_wake(&dsm_eng.uffd, addr, DSM_HUGE_SIZE);
		return;
	}
	if (dsm_uffd_wp(&dsm_eng.uffd, addr, DSM_HUGE_SIZE, false))
		return;
	for (uint64_t i = first; i < first + DSM_HUGE_PAGES; i++) {
		r->pages[i].state = DSM_PG_DIRTY;
		r->pages[i].flags &= ~DSM_PGF_WATCHED;
		dsm_queue_touch(&r->pages[i]);
	}
	dsm_eng.c.blocktime_ns += dsm_now_ns() - t0;
}

void dsm_huge_fault(struct dsm_region *r, uint64_t idx, bool wp, bool write,
		    uint64_t t0, struct dsm_outbox *ob)
{
	uint64_t first = idx & ~(DSM_HUGE_PAGES - 1);

	if (wp)
		fault_wp(r, first, t0);
	else
		fault_missing(r, first, write, t0, ob);
}

int dsm_huge_check(uint64_t bytes)
{
	uint64_t budget = dsm_eng.budget * DSM_PAGE_SIZE;
	uint64_t need = (bytes < budget ? bytes : budget) / DSM_HUGE_SIZE;
	uint64_t avail;

	if (!dsm_eng.uffd.wp_huge) {
		dsm_err("DSM_ALLOC_HUGE: this kernel's userfaultfd cannot "
			"write-protect hugetlb memory (Linux 5.19+, "
			"CONFIG_PTE_MARKER_UFFD_WP)");
		return -EOPNOTSUPP;
	}
	if (budget < DSM_HUGE_SIZE) {
		dsm_err("DSM_ALLOC_HUGE: the local budget (DSM_LOCAL_MEM) "
			"must hold at least one 2 MiB page");
		return -EINVAL;
	}
	avail = dsm_huge_pages_free();
	if (avail < need) {
		dsm_err("DSM_ALLOC_HUGE: %llu free 2 MiB huge pages needed "
			"(the region or the local budget, whichever is less), "
			"%llu free: raise vm.nr_hugepages",
			(unsigned long long)need, (unsigned long long)avail);
		return -ENOMEM;
	}
	return 0;
}
