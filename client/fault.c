/*
 * fault.c - reading faults and resolving them (room: fault engine).
 *
 * One engine thread serves the process, in one poll loop over the
 * userfaultfd, the server connections and a wake-up eventfd.  It never
 * waits for a reply: a missing fault on a page the server holds becomes a
 * READ request and the thread moves on; the page is installed when the
 * reply arrives, by the same thread.  So N threads faulting on N pages
 * have N requests in flight, and a second fault on a page already being
 * fetched costs nothing (UFFDIO_COPY wakes every thread blocked on it).
 *
 * Why one thread and not a fault thread plus a receive thread per server:
 * every hand-over between threads is a wake-up, and cross-CPU wake-ups and
 * lock contention were measured to dominate the fault path on small
 * virtual machines.
 *
 * Faults arrive in batches of up to FAULT_BATCH messages; each batch is
 * handled under one hold of the engine lock, and the requests it produces
 * are sent after the lock is dropped (outbox.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "evict.h"
#include "fault.h"
#include "huge.h"
#include "log.h"
#include "outbox.h"
#include "placement.h"
#include "region.h"
#include "shared.h"
#include "stats.h"
#include "uffd_compat.h"
#include "util.h"

#define FAULT_BATCH 64

struct dsm_fetch {
	struct dsm_region *r;
	uint64_t first;
	uint32_t n;
	uint32_t nwait;    /* faults blocked on these pages */
	uint64_t t0;       /* when the first of them was read; 0: prefetch */
	uint64_t wait_sum; /* sum of their read times, for blocktime */
	uint32_t tries;    /* READs sent for it: one per copy at most */
	bool streamed;     /* a stream's window of STREAMED_WINDOW pages or
	                    * more (evict.c: joins probation) */
	bool writes;       /* its stream predicts writes: install writable */
};

/* A stream's window this large costs a page a quarter of a round trip or
 * less: cheap to fetch again (evict.c).  A smaller one is no cheaper than
 * a fault's own fetch. */
#define STREAMED_WINDOW 4

/* How a stream's window is fetched (fetch_pages). */
enum {
	FETCH_STREAMED = 1 << 0, /* STREAMED_WINDOW pages or more */
	FETCH_WRITES = 1 << 1,   /* install it writable (stream_writes) */
};

static unsigned window_how(struct dsm_stream *s, uint64_t lo, uint32_t n);

/* ---- sequential streams (prefetch) ---------------------------------- */

/*
 * A stream expects its next fault at `next` (just past what it fetched, in
 * its direction) or at `marker` (the page of the window it fetched ahead
 * that the program reaches first, if that is still in flight when the
 * thread gets there).  Either one means the program is scanning: the
 * window doubles, up to prefetch_max, and once it is large a second window
 * is fetched ahead so the next round trip overlaps with the program's work
 * on this one.
 *
 * Streams go down as well as up.  GNU sort's merges walk its line table
 * from the end of its buffer down (`*--dest = *--lo`); seen only going
 * up, they fetched a block around each fault at half its working set,
 * and their pages came back one block at a time.
 *
 * A stream is born where a run continues, not at every fault: the block
 * fetched or zero-filled around a fault that continues no stream marks
 * the page after it (MARK_UP) and the page before it (MARK_DOWN), and a
 * fault on such a mark starts a stream going that way.  Before, every
 * such fault took a slot, and a program that faults at random between
 * the windows of its scans (sort again: its comparisons read the lines'
 * text at random) pushed the scans out of the table before their next
 * window.  For the same reason a new stream replaces a young one (not
 * grown past its second window: maybe a false start) before it replaces
 * a scan that is running.
 *
 * But first one that is over: a stream whose last page fetched (or
 * zero-filled) ahead is no longer resident, so the program did not come
 * for what it fetched before eviction took it.  Grown streams used to stay
 * until no young one was left, so once every slot had held a scan, new
 * streams took the one young slot in turn, each the other's: node's heap
 * at half its working set had seven of eight slots held by scans long
 * over, and two scans read in turns were fetched a page at a time
 * (tests/test_policy.c, test_streams_expire).
 */
#define STREAM_YOUNG 4 /* a stream whose window is smaller is young */
#define NO_PAGE UINT64_MAX
static struct dsm_stream *stream_match(struct dsm_region *r, uint64_t idx)
{
	for (int i = 0; i < DSM_STREAMS; i++) {
		struct dsm_stream *s = &dsm_eng.streams[i];

		if (s->region == r && (idx == s->next || idx == s->marker))
			return s;
	}
	return NULL;
}

static void unpark(struct dsm_region *r, uint64_t idx);

static bool stream_over(const struct dsm_stream *s)
{
	uint64_t last = s->next - s->dir; /* past the region: also over */

	return !s->region || last >= s->region->npages ||
	       s->region->pages[last].state == DSM_PG_INVALID ||
	       s->region->pages[last].state == DSM_PG_LOST;
}

static void least_recent(struct dsm_stream **pick, struct dsm_stream *s)
{
	if (!*pick || s->used_at < (*pick)->used_at)
		*pick = s;
}

/* A stream from page idx going dir, in the slot of the least recent
 * stream that is over, or else young, or else of the least recent one
 * (empty slots are young). */
static struct dsm_stream *stream_new(struct dsm_region *r, uint64_t idx,
				     int8_t dir)
{
	struct dsm_stream *old = NULL, *young = NULL, *over = NULL;

	for (int i = 0; i < DSM_STREAMS; i++) {
		struct dsm_stream *s = &dsm_eng.streams[i];

		least_recent(&old, s);
		if (s->win < STREAM_YOUNG)
			least_recent(&young, s);
		else if (stream_over(s))
			least_recent(&over, s);
	}
	if (over || young)
		old = over ? over : young;
	/* the page it held back goes where it belongs */
	if (old->region && old->parked_page != NO_PAGE)
		unpark(old->region, old->parked_page);
	*old = (struct dsm_stream){ .region = r, .next = idx + dir,
				    .marker = NO_PAGE, .win_start = idx,
				    .win = 1, .dir = dir, .parked_page = NO_PAGE,
				    .used_at = ++dsm_eng.stream_clock };
	return old;
}

static void prefetch_used(struct dsm_page *p)
{
	if (p->flags & DSM_PGF_PREFETCHED) {
		p->flags &= ~DSM_PGF_PREFETCHED;
		dsm_eng.c.prefetch_used++;
	}
}

/* Pages fetched ahead that the stream has now walked past, from
 * win_start up to upto (going up) or down to it (going down), were
 * used. */
static void stream_consumed(struct dsm_stream *s, uint64_t upto)
{
	struct dsm_region *r = s->region;

	if (s->dir > 0) {
		for (uint64_t i = s->win_start; i < upto && i < r->npages; i++)
			prefetch_used(&r->pages[i]);
	} else if (s->win_start < r->npages) {
		for (uint64_t i = s->win_start; i > upto && i != NO_PAGE; i--)
			prefetch_used(&r->pages[i]);
	}
	s->win_start = upto;
}

void dsm_streams_drop_parked(struct dsm_region *r, uint64_t first,
			     uint64_t end)
{
	for (int i = 0; i < DSM_STREAMS; i++) {
		struct dsm_stream *s = &dsm_eng.streams[i];
		struct dsm_page *p;

		if (s->region != r || s->parked_page == NO_PAGE ||
		    s->parked_page < first || s->parked_page >= end)
			continue;
		p = &r->pages[s->parked_page];
		free(p->parked_data);
		p->parked_data = NULL;
		p->state = DSM_PG_INVALID;
		dsm_eng.resident--;
		s->parked_page = NO_PAGE;
	}
}

void dsm_streams_unpark(struct dsm_region *r, uint64_t first, uint64_t end)
{
	for (int i = 0; i < DSM_STREAMS; i++) {
		uint64_t idx = dsm_eng.streams[i].parked_page;

		if (dsm_eng.streams[i].region == r && idx != NO_PAGE &&
		    idx >= first && idx < end)
			unpark(r, idx);
	}
}

void dsm_streams_forget(struct dsm_region *r)
{
	dsm_streams_drop_parked(r, 0, r->npages);
	for (int i = 0; i < DSM_STREAMS; i++)
		if (dsm_eng.streams[i].region == r)
			dsm_eng.streams[i] = (struct dsm_stream){ 0 };
}

/* ---- fetching -------------------------------------------------------- */

static void fetch_done(void *arg, int status, const uint8_t *payload,
		       uint32_t len);
static void fetch_complete(struct dsm_fetch *f, int status,
			   const uint8_t *payload, uint32_t len);

/* Lost pages a thread waits on must raise SIGBUS (uffd.c: UFFDIO_POISON,
 * or an empty memfd mapped over them).  If even that fails, the only
 * alternatives are a hang or silently wrong data; stopping is the
 * honest one. */
void dsm_poison_or_abort(uint64_t addr, uint64_t len)
{
	int err = dsm_uffd_poison(&dsm_eng.uffd, addr, len);

	if (err) {
		dsm_err("cannot poison lost pages at %#llx (%s): aborting",
			(unsigned long long)addr, strerror(-err));
		abort();
	}
}

/* The pages of f cannot be had: make them raise SIGBUS, never zeros. */
static void fetch_lost(struct dsm_fetch *f, int err)
{
	struct dsm_region *r = f->r;
	uint64_t addr = r->base + f->first * DSM_PAGE_SIZE;

	for (uint32_t i = 0; i < f->n; i++)
		r->pages[f->first + i].state = DSM_PG_LOST;
	dsm_err("cannot fetch %u pages at %#llx: %s; touching them raises "
		"SIGBUS", f->n, (unsigned long long)addr, strerror(-err));
	dsm_poison_or_abort(addr, (uint64_t)f->n * DSM_PAGE_SIZE);
}

/* Page i of r can join a READ: INVALID, and its server holds its data. */
static bool fetchable(const struct dsm_region *r, uint64_t i)
{
	return r->pages[i].state == DSM_PG_INVALID &&
	       (r->pages[i].flags & DSM_PGF_ON_SERVER);
}

/* The extent holding page idx, if a READ of it may go out now. */
static const struct dsm_extent *readable_extent(const struct dsm_region *r,
						uint64_t idx)
{
	const struct dsm_extent *e;

	if (idx >= r->npages || !(e = dsm_region_extent(r, idx)))
		return NULL;
	/* Its data is on its way to a new server: a READ could overtake the
	 * copy.  A thread faulting here stays blocked; the move wakes it
	 * when the copy is sent (migrate.c), and its retry fetches. */
	return e->move ? NULL : e;
}

/*
 * Fetch [first, first+n) of r, fetchable pages all in extent e, with one
 * READ, `how` a stream's window is (FETCH_*).  A fault read at t0 waits
 * on page `wanted` (NO_PAGE: none); the others are prefetched.  Whether
 * the READ was decided.
 */
static bool fetch_pages(struct dsm_region *r, const struct dsm_extent *e,
			uint64_t first, uint32_t n, unsigned how,
			uint64_t wanted, uint64_t t0, struct dsm_outbox *ob)
{
	struct dsm_fetch *f = calloc(1, sizeof(*f));

	if (!f)
		return false;
	dsm_make_room(n, ob);
	*f = (struct dsm_fetch){ .r = r, .first = first, .n = n, .t0 = t0,
				 .nwait = t0 ? 1 : 0, .wait_sum = t0,
				 .streamed = how & FETCH_STREAMED,
				 .writes = how & FETCH_WRITES };
	r->refs++;
	for (uint32_t i = 0; i < n; i++) {
		struct dsm_page *p = &r->pages[first + i];

		p->flags &= ~DSM_PGF_MARKED;
		p->state = DSM_PG_FETCHING;
		p->fetch = f;
		if (first + i != wanted)
			p->flags |= DSM_PGF_PREFETCHED;
	}
	dsm_eng.inflight += n;
	dsm_eng.c.pages_prefetched += wanted == NO_PAGE ? n : n - 1;
	if (dsm_outbox_read(ob, e, first, n, fetch_done, f))
		fetch_complete(f, -ENOMEM, NULL, 0);
	return true;
}

/*
 * Fetch up to max pages of stream s from idx in its direction (one READ,
 * of the pages in ascending order): the run stops at the first page that is not
 * INVALID-and-on-the-server, at the edge of the extent, and at the batch
 * limit.  t0 != 0 means a fault is waiting on page idx.  Returns the
 * number of pages requested.
 */
static uint32_t fetch_run(struct dsm_stream *s, uint64_t idx, uint32_t max,
			  uint64_t t0, struct dsm_outbox *ob)
{
	struct dsm_region *r = s->region;
	const struct dsm_extent *e = readable_extent(r, idx);
	uint64_t start, end, room, lo;
	int8_t dir = s->dir;
	uint32_t n = 0;

	if (!e)
		return 0;
	start = e->off / DSM_PAGE_SIZE;
	end = (e->off + e->len) / DSM_PAGE_SIZE;
	room = dir > 0 ? end - idx : idx - start + 1; /* idx is in e */
	while (n < max && n < DSM_MAX_BATCH_PAGES && n < room &&
	       fetchable(r, idx + (int64_t)dir * n))
		n++;
	lo = dir > 0 ? idx : idx - (n - 1);
	if (!n || !fetch_pages(r, e, lo, n, window_how(s, lo, n),
			       t0 ? idx : NO_PAGE, t0, ob))
		return 0;
	return n;
}

/*
 * The page of a window fetched ahead that the program reaches first (its
 * lowest going up, its highest going down), if nobody waits on it yet, is
 * held back instead of mapped: the program's first touch of it then
 * faults - cheaply, served from memory - and tells us the stream has
 * reached this window, so the next one can be fetched while this one is
 * read.  Without it, a window installed before the program arrives is
 * passed silently and the stream stalls on a full round trip one window
 * later (Linux's readahead keeps a marker page for the same reason).
 * Returns the index in f of the page held back, or f->n.
 */
static uint32_t park_marker(struct dsm_fetch *f, const uint8_t *payload)
{
	uint64_t top = f->first + f->n - 1;
	struct dsm_stream *s = NULL;
	struct dsm_page *p;
	uint32_t k;

	if (f->nwait || f->n < 2)
		return f->n;
	for (int i = 0; i < DSM_STREAMS && !s; i++) {
		struct dsm_stream *c = &dsm_eng.streams[i];

		if (c->region == f->r && c->parked_page == NO_PAGE &&
		    c->marker == (c->dir > 0 ? f->first : top))
			s = c;
	}
	if (!s)
		return f->n;
	k = s->marker - f->first;
	p = &f->r->pages[s->marker];
	if (p->state != DSM_PG_FETCHING || p->fetch != f ||
	    !(p->parked_data = malloc(DSM_PAGE_SIZE)))
		return f->n;
	memcpy(p->parked_data, payload + (size_t)k * DSM_PAGE_SIZE, DSM_PAGE_SIZE);
	p->state = DSM_PG_PARKED;
	s->parked_page = s->marker;
	dsm_eng.resident++;
	return k;
}

/* ---- write prediction ------------------------------------------------ */

/*
 * A page fetched and then written costs two faults: the missing fault
 * that brings it in, and the WP fault of its first write, a round trip
 * through this thread (about a third of a fetch's time on the machines
 * measured).  Programs that update what they read (a read-modify-write,
 * CPython's reference counts) write nearly every page they fetch; their
 * pages are better installed writable and DIRTY at once, as the kernel
 * maps a swapped-in page writable when the fault that brings it in is a
 * write.  A wrong guess costs one write-back of a page that did not
 * change.
 *
 * The guess is trained by probes.  While not predicting, every fetched
 * page installed write-protected is a probe (flag PROBE); while
 * predicting, the pages of one fetch in WP_PROBE_EVERY are, or in
 * WP_PROBE_SURE once nearly every recent probe was written (a probe's
 * WP fault costs about as much as a third of a fetch, and at one in
 * eight they were an eighth of a read-modify-write's faults).  A probe's
 * first write (WP fault) is a hit; its eviction unwritten, a miss.
 * `score` is their moving average over the last 16 or so: above three in
 * four prediction turns on, below one in two it turns off.  The gap keeps
 * it from flapping on a workload that writes about half of what it
 * reads, where the two costs are close.  Whatever the guess, a thread
 * whose missing fault is itself a write gets its page writable
 * (WRITE_WAITS), and a page the program made unreadable never is.
 * DSM_EVICT=2q-wp turns prediction off: its second chances take a WP
 * fault as the sign a dirty page is in use, and a page installed writable
 * and only read would pass for one.
 */
#define WP_PROBE_EVERY 8
#define WP_PROBE_SURE 32
#define WP_SCORE_SURE 240

static void wpredict_learn(bool written)
{
	struct dsm_wpredict *w = &dsm_eng.wpredict;

	w->score += ((written ? 256 : 0) - w->score) / 16;
	if (w->score > 192)
		w->on = true;
	else if (w->score < 128)
		w->on = false;
}

void dsm_wpredict_evicted(struct dsm_page *p)
{
	if (!(p->flags & DSM_PGF_PROBE))
		return;
	p->flags &= ~DSM_PGF_PROBE;
	wpredict_learn(false);
}

/* A write to a clean page: if it was a probe, a hit. */
static void wpredict_written(struct dsm_page *p)
{
	if (!(p->flags & DSM_PGF_PROBE))
		return;
	p->flags &= ~DSM_PGF_PROBE;
	wpredict_learn(true);
}

/* Does the fetch being installed get its pages writable? */
static bool wpredict_fetch(void)
{
	struct dsm_wpredict *w = &dsm_eng.wpredict;

	if (!w->enabled || !w->on)
		return false;
	return ++w->fetches % (w->score >= WP_SCORE_SURE ? WP_PROBE_SURE
							   : WP_PROBE_EVERY);
}

/*
 * A stream predicts writes for itself too.  A program that writes as it
 * scans (sort's merges write the line table they walk; its pass that ends
 * each line with a NUL writes the text it has just read) writes every
 * page of the stream, while its reads elsewhere leave pages unwritten:
 * the process-wide guess above, fed by both, stayed off, and each page of
 * such a scan took a WP fault after its fetch.  So a stream installs one
 * window in WP_PROBE_EVERY write-protected (all of them, while it does
 * not predict), and once the stream has walked past such a probe window
 * the share of its pages that were written decides: three in four or
 * more, and its windows are installed writable; under one in two, not.
 */
static void stream_learn(struct dsm_stream *s)
{
	uint64_t n = s->probe_hi - s->probe_lo;
	bool past = s->dir > 0 ? s->win_start >= s->probe_hi
			       : s->win_start < s->probe_lo;

	if (!n || !past)
		return;
	if (s->probe_written * 4 >= n * 3)
		s->writes = true;
	else if (s->probe_written * 2 < n)
		s->writes = false;
	s->probe_lo = s->probe_hi = 0;
}

/* A window [lo, lo+n) stream s is about to fetch: how (FETCH_*). */
static unsigned window_how(struct dsm_stream *s, uint64_t lo, uint32_t n)
{
	unsigned how = n >= STREAMED_WINDOW ? FETCH_STREAMED : 0;

	if (!dsm_eng.wpredict.enabled)
		return how;
	stream_learn(s);
	if (s->writes && ++s->windows % WP_PROBE_EVERY)
		return how | FETCH_WRITES;
	if (s->probe_hi == s->probe_lo) { /* one probe at a time */
		s->probe_lo = lo;
		s->probe_hi = lo + n;
		s->probe_written = 0;
	}
	return how;
}

/* A WP fault on page idx of r: a write in a stream's probe window? */
static void stream_written(struct dsm_region *r, uint64_t idx)
{
	for (int i = 0; i < DSM_STREAMS; i++) {
		struct dsm_stream *s = &dsm_eng.streams[i];

		if (s->region == r && idx >= s->probe_lo && idx < s->probe_hi)
			s->probe_written++;
	}
}

/* Is page p of a fetch mapped writable (predicted: the fetch's guess)?
 * Only a page still waiting for this fetch: one freed or dropped
 * meanwhile is mapped protected, as before, whatever happens to it. */
static bool install_writable(const struct dsm_page *p, bool predicted)
{
	if (p->state != DSM_PG_FETCHING || (p->flags & DSM_PGF_NOREAD))
		return false;
	return predicted || (p->flags & DSM_PGF_WRITE_WAITS);
}

/* ---- installing ------------------------------------------------------ */

/* Map pages [i, j) of f, writable or write-protected, and make the pages
 * still waiting for it resident.  0 or the ioctl's error. */
static int install_run(struct dsm_fetch *f, const uint8_t *payload,
		       uint32_t i, uint32_t j, bool writable)
{
	struct dsm_region *r = f->r;
	unsigned skipped;
	int err;

	err = dsm_uffd_copy(&dsm_eng.uffd, r->base + (f->first + i) * DSM_PAGE_SIZE,
			    payload + (size_t)i * DSM_PAGE_SIZE,
			    (size_t)(j - i) * DSM_PAGE_SIZE, !writable, &skipped);
	if (skipped)
		dsm_warn("%u fetched pages were already mapped", skipped);
	if (err)
		return err;
	for (uint32_t k = i; k < j; k++) {
		struct dsm_page *p = &r->pages[f->first + k];

		if (p->state != DSM_PG_FETCHING)
			continue;
		p->fetch = NULL;
		p->flags &= ~(DSM_PGF_WRITE_WAITS | DSM_PGF_PROBE);
		if (writable)
			p->state = DSM_PG_DIRTY;
		else {
			p->state = DSM_PG_CLEAN;
			if (dsm_eng.wpredict.enabled &&
			    !(p->flags & DSM_PGF_NOREAD))
				p->flags |= DSM_PGF_PROBE;
		}
		dsm_queue_add_from(p, f->streamed);
		dsm_eng.resident++;
	}
	return 0;
}

/* The mapping or the process is going away (ENOENT/ESRCH): pages of f
 * from i on that were not installed are not resident. */
static void install_failed(struct dsm_fetch *f, uint32_t i)
{
	for (; i < f->n; i++) {
		struct dsm_page *p = &f->r->pages[f->first + i];

		if (p->state != DSM_PG_FETCHING)
			continue;
		p->fetch = NULL;
		p->flags &= ~DSM_PGF_WRITE_WAITS;
		p->state = DSM_PG_INVALID;
	}
}

/* Map what f fetched, in runs of pages that are all writable or all
 * write-protected (one UFFDIO_COPY each; a fetch is one run unless a
 * thread waits to write one of its pages), all but a page held back. */
static void install(struct dsm_fetch *f, const uint8_t *payload)
{
	struct dsm_region *r = f->r;
	uint32_t parked = park_marker(f, payload);
	uint32_t i = parked == 0 ? 1 : 0, end = parked == f->n - 1 ? parked : f->n;
	bool predicted = wpredict_fetch() || f->writes;
	uint32_t j;

	for (; i < end; i = j) {
		bool w = install_writable(&r->pages[f->first + i], predicted);

		for (j = i + 1; j < end &&
		     install_writable(&r->pages[f->first + j], predicted) == w;
		     j++)
			;
		if (install_run(f, payload, i, j, w)) {
			install_failed(f, i);
			return;
		}
	}
	dsm_eng.c.pages_fetched += f->n;
	dsm_eng.c.bytes_in += (uint64_t)f->n * DSM_PAGE_SIZE;
}

/* Map a held-back page where it belongs (it stays counted resident), and
 * release the stream that held it, whichever way the program went since. */
static void unpark(struct dsm_region *r, uint64_t idx)
{
	struct dsm_page *p = &r->pages[idx];
	unsigned skipped;
	int err;

	for (int i = 0; i < DSM_STREAMS; i++)
		if (dsm_eng.streams[i].region == r &&
		    dsm_eng.streams[i].parked_page == idx)
			dsm_eng.streams[i].parked_page = NO_PAGE;

	err = dsm_uffd_copy(&dsm_eng.uffd, r->base + idx * DSM_PAGE_SIZE, p->parked_data,
			    DSM_PAGE_SIZE, true, &skipped);
	free(p->parked_data);
	p->parked_data = NULL;
	if (err) {
		p->state = DSM_PG_INVALID;
		dsm_eng.resident--;
		return;
	}
	p->state = DSM_PG_CLEAN;
	dsm_queue_add_from(p, true); /* a window fetched ahead */
}

/*
 * The transport marks a lost server lost before it fails the requests in
 * flight to it, so the copy asked again is another one.  At most one READ
 * per copy.
 */
bool dsm_read_again(struct dsm_region *r, uint64_t first, uint32_t n,
		    uint32_t *tries, dsm_done_fn done, void *arg)
{
	const struct dsm_extent *e = dsm_region_extent(r, first);

	if (r->dead || !e->nrep || *tries > e->nrep ||
	    dsm_extent_live_copy(e) < 0)
		return false;
	if (dsm_outbox_read(&dsm_eng.sendq, e, first, n, done, arg))
		return false;
	(*tries)++;
	dsm_eng.c.fetch_failovers++;
	dsm_engine_kick();
	return true;
}

static bool fetch_again(struct dsm_fetch *f)
{
	return dsm_read_again(f->r, f->first, f->n, &f->tries, fetch_done, f);
}

static void fetch_complete(struct dsm_fetch *f, int status,
			   const uint8_t *payload, uint32_t len)
{
	uint64_t now = dsm_now_ns();

	if (status && fetch_again(f))
		return;
	dsm_eng.inflight -= f->n;
	if (!f->r->dead) {
		if (!status && len != f->n * DSM_PAGE_SIZE)
			status = -EPROTO;
		if (status)
			fetch_lost(f, status);
		else
			install(f, payload);
	}
	if (f->nwait && f->t0) {
		dsm_hist_add(&dsm_eng.c, now - f->t0);
		dsm_eng.c.blocktime_ns += f->nwait * now - f->wait_sum;
	}
	dsm_region_put(f->r);
	free(f);
}

/* Completion of a READ, on the engine thread: when the reply arrives, or
 * at once for a request the transport refused. */
static void fetch_done(void *arg, int status, const uint8_t *payload,
		       uint32_t len)
{
	struct dsm_fetch *f = arg;

	pthread_mutex_lock(&dsm_eng.lock);
	fetch_complete(f, status, payload, len);
	pthread_mutex_unlock(&dsm_eng.lock);
}

/* ---- faults ---------------------------------------------------------- */

void dsm_fault_served(uint64_t t0)
{
	uint64_t ns = dsm_now_ns() - t0;

	dsm_hist_add(&dsm_eng.c, ns);
	dsm_eng.c.blocktime_ns += ns;
}

/* Pages nobody ever wrote: make them here, with no round trip.  A write
 * fault gets them writable (dirty) at once, saving the WP faults that
 * would follow. */
static void zero_fill(struct dsm_region *r, uint64_t idx, uint32_t n,
		      bool write, uint64_t t0, struct dsm_outbox *ob)
{
	unsigned skipped;
	int err;

	dsm_make_room(n, ob);
	err = dsm_uffd_copy(&dsm_eng.uffd, r->base + idx * DSM_PAGE_SIZE,
			    dsm_eng.zero_page, (size_t)n * DSM_PAGE_SIZE, !write,
			    &skipped);
	if (err)
		return; /* region or process going away */
	for (uint32_t i = 0; i < n; i++) {
		struct dsm_page *p = &r->pages[idx + i];

		if (p->state != DSM_PG_INVALID)
			continue;
		p->flags &= ~DSM_PGF_MARKED;
		p->state = write ? DSM_PG_DIRTY : DSM_PG_CLEAN;
		dsm_queue_add(p);
		dsm_eng.resident++;
	}
	dsm_eng.c.pages_zero_filled += n - skipped;
	dsm_fault_served(t0);
}

/* The stream reached idx: what it fetched before idx was used, and the
 * window grows. */
static void stream_advance(struct dsm_stream *s, uint64_t upto)
{
	stream_consumed(s, upto);
	if (s->win < dsm_eng.prefetch_max)
		s->win = s->win * 2 < dsm_eng.prefetch_max ?
				 s->win * 2 : dsm_eng.prefetch_max;
	s->used_at = ++dsm_eng.stream_clock;
}

/* The stream has reached the window it fetched ahead: fetch the next. */
static void fetch_ahead(struct dsm_stream *s, struct dsm_outbox *ob)
{
	uint32_t ahead = 0;

	if (s->next < s->region->npages)
		ahead = fetch_run(s, s->next, s->win, 0, ob);
	s->marker = ahead ? s->next : NO_PAGE;
	s->next += (int64_t)s->dir * ahead;
}

/* A fault on a page whose READ is in flight: the thread just waits for
 * it.  If the page is the start of a window a stream fetched ahead, the
 * stream is keeping up: fetch its next window now. */
static void fault_in_flight(struct dsm_region *r, uint64_t idx, uint64_t t0,
			    struct dsm_outbox *ob)
{
	struct dsm_page *p = &r->pages[idx];
	struct dsm_stream *s = stream_match(r, idx);

	p->fetch->nwait++;
	p->fetch->wait_sum += t0;
	if (!p->fetch->t0)
		p->fetch->t0 = t0;
	if (!s) {
		prefetch_used(p);
		return;
	}
	stream_advance(s, idx + s->dir);
	fetch_ahead(s, ob);
}

/* The program reached the page a stream held back: map it, and fetch the
 * stream's next window (held back in turn). */
static void fault_parked(struct dsm_region *r, uint64_t idx, uint64_t t0,
			 struct dsm_outbox *ob)
{
	struct dsm_stream *s = stream_match(r, idx);

	unpark(r, idx);
	dsm_fault_served(t0);
	if (!s || s->marker != idx)
		return;
	stream_advance(s, idx + s->dir);
	fetch_ahead(s, ob);
}

/*
 * Fetch-around.  A fault on the server's pages that continues no stream
 * takes, with its page, the fetchable pages of the aligned block around
 * it, as Linux's swap readahead does.  python3 faults at random over tens
 * of megabytes (its sort's floats, its dict's strings) and comes back to
 * nearly every page of them while a block would still be resident: blocks
 * of 16 pages took its missing faults at half its working set from 34k to
 * 12k, for the same pages fetched.  xz faults at random over a table whose
 * neighbours it does not use in time: blocks of 2 pages took it from 239k
 * faults to 306k.  So blocks are sized by use.
 *
 * Use of a page fetched ahead is mostly invisible here (reads of a mapped
 * page raise no fault), so the size follows what we can see: faults on
 * pages we did not fetch.  A fetch-around of n pages marks the page
 * mirroring the fault in the neighbouring block of n (idx ^ n) as its
 * sentinel, if that page is on the server and not resident.  A fault on a
 * sentinel within a quarter of the budget's evictions of its marking (the
 * time a block stays in probation) means a block twice as large would
 * have been used.  `score` follows how often fetch-arounds see such a hit
 * (a moving average over the last eight or so): above one in two the next
 * block doubles, below one in four it halves, from one page up to
 * DSM_AROUND_MAX and the prefetch window.  A random workload's sentinels
 * are rarely hit, and it keeps fetching single pages.
 */
static uint32_t around_pages(void)
{
	struct dsm_around *a = &dsm_eng.around;
	uint32_t max = dsm_eng.prefetch_max < DSM_AROUND_MAX ?
			       dsm_eng.prefetch_max : DSM_AROUND_MAX;

	if (!a->win)
		a->win = 1;
	a->score += ((a->hits ? 256 : 0) - a->score) / 8;
	a->hits = 0;
	if (a->score > 128 && a->win * 2 <= max)
		a->win *= 2; /* stays a power of two: blocks are aligned */
	else if (a->score < 64 && a->win > 1)
		a->win /= 2;
	return a->win;
}

/* Mark INVALID page idx (NO_PAGE, or past the end: nothing).  A sentinel
 * only where a fetch-around could take the page. */
static void mark(struct dsm_region *r, uint64_t idx, uint8_t kind)
{
	struct dsm_page *p;

	if (idx >= r->npages)
		return;
	p = &r->pages[idx];
	if (p->state != DSM_PG_INVALID ||
	    (kind == DSM_MARK_SENTINEL && !fetchable(r, idx)))
		return;
	if (!(p->flags & DSM_PGF_MARKED)) {
		p->flags |= DSM_PGF_MARKED;
		p->mark.kinds = 0;
	}
	p->mark.kinds |= kind;
	p->mark.at = dsm_eng.evict_clock;
}

/* A fault on INVALID page idx: its marks, if set within a quarter of the
 * budget's evictions (the time a block stays in probation), taken off.
 * A sentinel among them is a hit for fetch-around. */
static uint8_t take_marks(struct dsm_region *r, uint64_t idx)
{
	struct dsm_page *p = &r->pages[idx];

	if (!(p->flags & DSM_PGF_MARKED))
		return 0;
	p->flags &= ~DSM_PGF_MARKED;
	if (dsm_eng.evict_clock - p->mark.at > dsm_eng.budget / 4)
		return 0;
	if (p->mark.kinds & DSM_MARK_SENTINEL)
		dsm_eng.around.hits++;
	return p->mark.kinds;
}

/* A fault that continues no stream made [lo, hi) resident around page
 * idx.  If it landed on a run's mark, a stream starts there, going the
 * run's way; if not, the block's neighbours are marked for one. */
static void run_continues(struct dsm_region *r, uint64_t idx, uint8_t kinds,
			  uint64_t lo, uint64_t hi)
{
	struct dsm_stream *s;

	if (kinds & (DSM_MARK_UP | DSM_MARK_DOWN)) {
		s = stream_new(r, idx, kinds & DSM_MARK_UP ? 1 : -1);
		s->next = s->dir > 0 ? hi : lo - 1;
		return;
	}
	mark(r, hi, DSM_MARK_UP);
	mark(r, lo - 1, DSM_MARK_DOWN);
}

/* Fetch page idx and the fetchable pages of its aligned block of
 * around_pages(), a READ per run of them, and mark the block's sentinel.
 * [*lo, *hi) becomes the run holding idx, empty at idx if it was not
 * fetched. */
static void fetch_around(struct dsm_region *r, uint64_t idx, uint64_t t0,
			 struct dsm_outbox *ob, uint64_t *lo, uint64_t *hi)
{
	const struct dsm_extent *e = readable_extent(r, idx);
	uint64_t n = around_pages(), start, end;

	*lo = *hi = idx;
	if (!e)
		return;
	start = e->off / DSM_PAGE_SIZE;
	end = (e->off + e->len) / DSM_PAGE_SIZE;
	if (start < (idx & ~(n - 1)))
		start = idx & ~(n - 1);
	if (end > start + n)
		end = start + n;
	for (uint64_t a = start, b; a < end; a = b) {
		bool mine;

		for (b = a; b < end && fetchable(r, b); b++)
			;
		mine = a <= idx && idx < b;
		if (b > a && fetch_pages(r, e, a, b - a, 0,
					 mine ? idx : NO_PAGE, mine ? t0 : 0,
					 ob) && mine) {
			*lo = a;
			*hi = b;
		}
		if (b == a)
			b++;
	}
	mark(r, idx ^ n, DSM_MARK_SENTINEL);
}

/* A page the server holds: fetch it, and ahead of it if this continues a
 * stream, or else around it. */
static void fault_fetch(struct dsm_region *r, uint64_t idx, uint64_t t0,
			struct dsm_outbox *ob)
{
	struct dsm_stream *s = stream_match(r, idx);
	uint8_t kinds = take_marks(r, idx);
	uint64_t lo, hi;

	if (!s) {
		fetch_around(r, idx, t0, ob, &lo, &hi);
		if (hi > lo)
			run_continues(r, idx, kinds, lo, hi);
		return;
	}
	stream_advance(s, idx);
	s->next = idx + (int64_t)s->dir * fetch_run(s, idx, s->win, t0, ob);
	s->marker = NO_PAGE;
	if (s->win >= 4)
		fetch_ahead(s, ob);
}

/* A zero-filling fault that starts no stream takes the never-written
 * pages of the aligned block of DSM_ZERO_AROUND pages (64 KiB) it falls
 * in, as the kernel's fault-around does for file pages; one that
 * continues a stream takes a window in the stream's direction.  A run
 * never mixes pages the program made unreadable with others (protect.c):
 * a write fault installs it writable and dirty. */
static bool zero_joins(const struct dsm_region *r, uint64_t i, uint8_t noread)
{
	const struct dsm_page *p = &r->pages[i];

	return p->state == DSM_PG_INVALID && !(p->flags & DSM_PGF_ON_SERVER) &&
	       (p->flags & DSM_PGF_NOREAD) == noread;
}

/* A never-written page: zero-fill it, and the pages beyond it too when the
 * fault continues a stream (the program is filling memory in order, up or
 * down), or else the never-written pages of its block.  A write fault on
 * an unreadable page (raised before it became unreadable) installs it
 * clean. */
static void fault_zero(struct dsm_region *r, uint64_t idx, bool write,
		       uint64_t t0, struct dsm_outbox *ob)
{
	struct dsm_stream *s = stream_match(r, idx);
	uint8_t kinds = take_marks(r, idx);
	uint8_t noread = r->pages[idx].flags & DSM_PGF_NOREAD;
	uint64_t lo = idx, hi = idx + 1, from, to;

	if (s) {
		/* zeros cost no round trip: at least a block's worth */
		uint64_t limit = s->win > DSM_ZERO_AROUND ? s->win
							  : DSM_ZERO_AROUND;

		stream_advance(s, idx);
		from = s->dir > 0 ? idx : idx + 1 > limit ? idx + 1 - limit : 0;
		to = s->dir > 0 ? idx + limit : idx + 1;
	} else {
		from = idx & ~(uint64_t)(DSM_ZERO_AROUND - 1);
		to = from + DSM_ZERO_AROUND;
	}
	while (lo > from && zero_joins(r, lo - 1, noread))
		lo--;
	while (hi < to && hi < r->npages && zero_joins(r, hi, noread))
		hi++;
	zero_fill(r, lo, hi - lo, write && !noread, t0, ob);
	if (!s) {
		run_continues(r, idx, kinds, lo, hi);
		return;
	}
	s->next = s->dir > 0 ? hi : lo - 1;
	s->marker = NO_PAGE;
}

/*
 * A missing fault on a page we hold.  Mostly a fault raised before
 * another one installed the page: the copy meets it (EEXIST, counted as
 * skipped) and wakes the thread.  Otherwise the program dropped the page
 * itself with a system call the shim never saw (Go's runtime gives freed
 * heap back with a raw madvise(MADV_DONTNEED)): it reads as zeros, as
 * the kernel promises, and is dirty, since the servers may hold older
 * data.  Waking alone would have the thread fault again for ever.
 */
static void fault_resident(struct dsm_page *p, uint64_t t0)
{
	/* one the program made unreadable stays clean (protect.c) */
	bool noread = p->flags & DSM_PGF_NOREAD;
	unsigned skipped;
	int err;

	err = dsm_uffd_copy(&dsm_eng.uffd, dsm_page_addr(p), dsm_eng.zero_page,
			    DSM_PAGE_SIZE, noread, &skipped);
	if (err) { /* the region or the process going away */
		dsm_uffd_wake(&dsm_eng.uffd, dsm_page_addr(p), DSM_PAGE_SIZE);
		return;
	}
	if (skipped)
		return;
	p->state = noread ? DSM_PG_CLEAN : DSM_PG_DIRTY;
	p->flags &= ~(DSM_PGF_WATCHED | DSM_PGF_PREFETCHED | DSM_PGF_PROBE);
	dsm_queue_touch(p);
	dsm_eng.c.pages_zero_filled++;
	dsm_fault_served(t0);
}

static void fault_missing(struct dsm_region *r, uint64_t idx, bool write,
			  uint64_t t0, struct dsm_outbox *ob)
{
	struct dsm_page *p = &r->pages[idx];

	dsm_eng.c.missing_faults++;
	if (r->shared && p->state != DSM_PG_CLEAN &&
	    p->state != DSM_PG_DIRTY && p->state != DSM_PG_LOST) {
		dsm_coh_fault_missing(r, idx, write, t0, ob);
		return;
	}
	switch (p->state) {
	case DSM_PG_CLEAN:
	case DSM_PG_DIRTY:
		/* a shared page is only ever dropped by the engine (no shim
		 * maps one), and zeros there would be a write no home
		 * granted: a repeat fault, woken */
		if (r->shared)
			dsm_uffd_wake(&dsm_eng.uffd, dsm_page_addr(p),
				      DSM_PAGE_SIZE);
		else
			fault_resident(p, t0);
		break;
	case DSM_PG_LOST:
		dsm_poison_or_abort(dsm_page_addr(p), DSM_PAGE_SIZE);
		break;
	case DSM_PG_FETCHING:
		if (write)
			p->flags |= DSM_PGF_WRITE_WAITS;
		fault_in_flight(r, idx, t0, ob);
		break;
	case DSM_PG_PARKED:
		fault_parked(r, idx, t0, ob);
		break;
	case DSM_PG_INVALID:
		if (p->flags & DSM_PGF_ON_SERVER) {
			if (write)
				p->flags |= DSM_PGF_WRITE_WAITS;
			fault_fetch(r, idx, t0, ob);
		} else
			fault_zero(r, idx, write, t0, ob);
		break;
	}
}

static void fault_wp(struct dsm_page *p, uint64_t t0, struct dsm_outbox *ob)
{
	uint64_t addr = dsm_page_addr(p);

	dsm_eng.c.wp_faults++;
	if (p->state != DSM_PG_CLEAN && p->state != DSM_PG_DIRTY) {
		/* Dropped while the fault waited: wake the thread; it will
		 * retry and take a missing fault instead. */
		dsm_uffd_wake(&dsm_eng.uffd, addr, DSM_PAGE_SIZE);
		return;
	}
	if (p->flags & DSM_PGF_NOREAD) {
		/* A write from before the program made the page unreadable:
		 * it stays clean (protect.c); retrying, the writer meets the
		 * page's new protection and gets its SIGSEGV. */
		dsm_uffd_wake(&dsm_eng.uffd, addr, DSM_PAGE_SIZE);
		return;
	}
	/* a copy of a shared page this process does not own: ask */
	if (p->region->shared && dsm_coh_fault_wp(p, t0, ob))
		return;
	prefetch_used(p);
	wpredict_written(p);
	stream_written(p->region, p - p->region->pages);
	/* Clearing protection also wakes the writer.  On a DIRTY page this
	 * is a write on the page's second chance (WATCHED, evict.c), or a
	 * repeat of a fault already served: harmless. */
	if (dsm_uffd_wp(&dsm_eng.uffd, addr, DSM_PAGE_SIZE, false))
		return;
	p->state = DSM_PG_DIRTY;
	dsm_queue_touch(p);
	dsm_eng.c.blocktime_ns += dsm_now_ns() - t0;
}

static void handle_fault(const struct uffd_msg *m, uint64_t t0,
			 struct dsm_outbox *ob)
{
	uint64_t addr = m->arg.pagefault.address & ~(uint64_t)(DSM_PAGE_SIZE - 1);
	uint64_t flags = m->arg.pagefault.flags;
	struct dsm_region *r = dsm_region_find(addr);
	uint64_t idx;

	if (!r)
		return; /* freed meanwhile; unregistering woke the thread */
	idx = (addr - r->base) / DSM_PAGE_SIZE;
	if (r->huge)
		dsm_huge_fault(r, idx, flags & UFFD_PAGEFAULT_FLAG_WP,
			       flags & UFFD_PAGEFAULT_FLAG_WRITE, t0, ob);
	else if (flags & UFFD_PAGEFAULT_FLAG_WP)
		fault_wp(&r->pages[idx], t0, ob);
	else
		fault_missing(r, idx, flags & UFFD_PAGEFAULT_FLAG_WRITE, t0, ob);
}

static int read_faults(struct uffd_msg *msgs)
{
	ssize_t n = read(dsm_eng.uffd.fd, msgs, FAULT_BATCH * sizeof(*msgs));

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	return n / sizeof(*msgs);
}

void dsm_engine_kick(void)
{
	uint64_t one = 1;

	if (write(dsm_eng.wake_fd, &one, sizeof(one)) != sizeof(one))
		dsm_err("cannot wake the engine thread: %s", strerror(errno));
}

/* Faults waiting in the userfaultfd: serve them, staging their requests. */
static int serve_faults(struct uffd_msg *msgs)
{
	int n = read_faults(msgs);
	uint64_t t0 = dsm_now_ns();

	if (n <= 0)
		return n;
	pthread_mutex_lock(&dsm_eng.lock);
	for (int i = 0; i < n; i++)
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
			handle_fault(&msgs[i], t0, &dsm_eng.sendq);
	pthread_mutex_unlock(&dsm_eng.lock);
	return n;
}

/* Take what is queued and send it, with no lock held.  Then, while the
 * replies travel, make room for the next faults (evict.c), and send what
 * that wrote back. */
static void send_queued(struct dsm_outbox *mine)
{
	struct dsm_outbox tmp;

	for (int pass = 0; pass < 2; pass++) {
		pthread_mutex_lock(&dsm_eng.lock);
		if (pass)
			dsm_evict_ahead(&dsm_eng.sendq);
		tmp = dsm_eng.sendq;
		dsm_eng.sendq = *mine;
		pthread_mutex_unlock(&dsm_eng.lock);
		dsm_outbox_send(&tmp);
		*mine = tmp; /* keep the array for reuse */
	}
}

#define POLL_FIXED 2 /* uffd, wake_fd; then one per server */

/* Run what the servers have sent.  While busy-polling, a transport whose
 * completions do not wake its fd (RDMA: a completion queue is polled,
 * not waited on) is asked even if its fd is quiet; that is the point of
 * busy-polling it. */
static bool progress_servers(struct pollfd *pfd, bool busy)
{
	bool ran = false;

	for (uint32_t i = 0; i < dsm_eng.nservers; i++) {
		struct dsm_server *s = &dsm_eng.servers[i];

		if (pfd[i].fd < 0 ||
		    !(pfd[i].revents || (busy && s->ops->poll_progress)))
			continue;
		ran = true;
		/* a lost server's fd stays readable (EOF): stop watching */
		if (s->ops->progress(s->t))
			pfd[i].fd = -1;
	}
	return ran;
}

void *dsm_fault_main(void *arg)
{
	uint32_t nfds = POLL_FIXED + dsm_eng.nservers;
	struct pollfd *pfd = calloc(nfds, sizeof(*pfd));
	struct uffd_msg msgs[FAULT_BATCH];
	struct dsm_outbox spare = { 0 };
	uint64_t junk, busy_until = 0;

	if (!pfd) {
		dsm_err("engine thread: out of memory");
		return NULL;
	}
	pfd[0] = (struct pollfd){ dsm_eng.uffd.fd, POLLIN, 0 };
	pfd[1] = (struct pollfd){ dsm_eng.wake_fd, POLLIN, 0 };
	for (uint32_t i = 0; i < dsm_eng.nservers; i++) {
		struct dsm_server *s = &dsm_eng.servers[i];

		pfd[POLL_FIXED + i] = (struct pollfd){ s->ops->fd(s->t), POLLIN, 0 };
	}
	while (!__atomic_load_n(&dsm_eng.quit, __ATOMIC_ACQUIRE)) {
		/* busy-polls for a while before sleeping: see "Polling" in
		 * docs/design.md for why, and what it costs */
		bool busy = dsm_eng.poll_ns && dsm_now_ns() < busy_until;
		int ready = dsm_poll_busy(pfd, nfds, &busy_until,
					  dsm_eng.poll_ns);

		if (ready < 0 && errno != EINTR)
			break;
		if (ready < 0 || (!ready && !busy))
			continue;
		/* completions may have queued requests (a move's copy) */
		if (!progress_servers(pfd + POLL_FIXED, busy) && !ready)
			continue;
		if (pfd[1].revents &&
		    read(dsm_eng.wake_fd, &junk, sizeof(junk)) < 0 &&
		    errno != EAGAIN)
			break;
		if (pfd[0].revents) {
			int n = serve_faults(msgs);

			if (n < 0) {
				dsm_err("reading userfaultfd: %s", strerror(-n));
				break;
			}
		}
		send_queued(&spare);
	}
	free(spare.io);
	free(pfd);
	return NULL;
}
