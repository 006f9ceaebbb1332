/*
 * fault.h - the engine thread: reading faults and resolving them, and the
 * sequential streams that drive prefetch (room: fault engine).  See
 * fault.c.
 */
#ifndef DSM_FAULT_H
#define DSM_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#include "transport.h"

struct dsm_page;
struct dsm_region;

/* A sequential stream, for prefetch: ascending or descending. */
struct dsm_stream {
	struct dsm_region *region;
	uint64_t next;    /* page index the stream is expected to touch */
	uint64_t marker;  /* the page of the window fetched ahead that the
	                   * program reaches first (its lowest going up,
	                   * its highest going down) */
	uint64_t win_start; /* what it fetched from here on, in its
	                     * direction, is not walked past yet */
	uint64_t parked_page; /* page held back as the marker, or UINT64_MAX */
	uint32_t win;     /* pages per window, grows while sequential */
	int8_t dir;       /* +1 up, -1 down */
	bool writes;      /* its windows are installed writable (fault.c) */
	uint64_t probe_lo, probe_hi; /* a window installed write-protected,
	                              * to see how much of it gets written */
	uint32_t probe_written; /* WP faults in it so far */
	uint32_t windows; /* fetched while `writes`, to pick the probes */
	uint64_t used_at; /* for replacing the least recent stream */
};

/* What a mark on an INVALID page next to a block says (fault.c). */
enum dsm_mark {
	DSM_MARK_SENTINEL = 1 << 0, /* the block around a fault was too small */
	DSM_MARK_UP = 1 << 1,       /* a run going up reached it */
	DSM_MARK_DOWN = 1 << 2,     /* a run going down reached it */
};

#define DSM_STREAMS 8

/* Fetch-around, for faults on the server's pages that start no stream
 * (fault.c). */
struct dsm_around {
	uint32_t hits;  /* sentinels hit since the last fetch-around */
	int32_t score;  /* how often one was, lately: 0-256 */
	uint32_t win;   /* pages in the last block */
};

/* Write prediction (fault.c): whether fetched pages are installed
 * writable and dirty, saving each the WP fault its first write would
 * take. */
struct dsm_wpredict {
	bool enabled;   /* DSM_PREDICT_WRITES (default on) */
	bool on;        /* predicting writes now */
	int32_t score;  /* how often probes were written, lately: 0-256 */
	uint32_t fetches; /* READs completed, to pick the probes */
};

/* The most pages one fetch-around takes (a power of two). */
#define DSM_AROUND_MAX 16

/* Pages a zero-filling fault that starts no stream takes around itself. */
#define DSM_ZERO_AROUND 16

/* The most pages one zero-fill installs: a stream's window (at most
 * prefetch_max), or the block around a fault.  The engine's zero buffer
 * is this large. */
static inline uint32_t dsm_zero_pages(uint32_t prefetch_max)
{
	return prefetch_max > DSM_ZERO_AROUND ? prefetch_max : DSM_ZERO_AROUND;
}

/* Under the lock: pages [addr, addr+len), not mapped, raise SIGBUS from
 * now on (dsm_uffd_poison); the process aborts, saying why, if they
 * cannot be made to (the alternatives are a hang or wrong data). */
void dsm_poison_or_abort(uint64_t addr, uint64_t len);
/* Under the lock: a READ of pages [first, first+n) of r failed.  If
 * another copy of them is up (replicas), ask it, with the same
 * completion; *tries counts the READs sent.  True when one was queued. */
bool dsm_read_again(struct dsm_region *r, uint64_t first, uint32_t n,
		    uint32_t *tries, dsm_done_fn done, void *arg);
/* Under the lock: a fault read at t0 is served now: its latency joins the
 * histogram, its wait the time threads spent blocked. */
void dsm_fault_served(uint64_t t0);
/* The engine thread's body (started by dsm_init). */
void *dsm_fault_main(void *arg);
/* Wake the engine thread: something was queued for it to send. */
void dsm_engine_kick(void);
/* Under the lock: pages streams hold back in [first, end) of r are
 * freed (they become INVALID) and those streams let go. */
void dsm_streams_drop_parked(struct dsm_region *r, uint64_t first,
			     uint64_t end);
/* Under the lock: pages streams hold back in [first, end) of r are
 * mapped where they belong, clean, and those streams let go. */
void dsm_streams_unpark(struct dsm_region *r, uint64_t first, uint64_t end);
/* Under the lock: a page leaving memory clean and unwritten; if it was
 * a probe, write prediction learns it was not written. */
void dsm_wpredict_evicted(struct dsm_page *p);
/* Under the lock: r is being freed; forget its streams. */
void dsm_streams_forget(struct dsm_region *r);

#endif /* DSM_FAULT_H */
