/*
 * engine.h - the client's fault engine, internal to libdsm (room: fault
 * engine).
 *
 * Who owns what:
 *   - `dsm_eng` (dsm.c) is the one engine of the process.  Everything in
 *     it below `lock` is guarded by that mutex: the region table, every
 *     page's state, the eviction queues, the send queue and the counters.
 *     The lock is held across the userfaultfd ioctls that change a page,
 *     so a page's state and its mapping never disagree (all ioctls are
 *     local and take microseconds; no network I/O happens under it).
 *   - the engine thread (fault.c) is the only thread that reads the
 *     userfaultfd or touches a transport: it reads faults, sends the send
 *     queue, and runs completions as replies arrive;
 *   - application threads enter through dsm.c (alloc, free, sync, stats)
 *     and hand requests to the engine thread through the send queue.
 *
 * Page states (docs/design.md draws the machine):
 *
 *   INVALID --missing fault, never written--> CLEAN or DIRTY (zero page)
 *   INVALID --missing fault--> FETCHING --reply--> CLEAN (write-protected)
 *   FETCHING --error/server lost--> LOST (poisoned: SIGBUS on access)
 *   FETCHING --reply, first page of a window fetched ahead--> PARKED
 *   PARKED --missing fault, or its stream forgotten--> CLEAN
 *   CLEAN --WP fault--> DIRTY (writable)
 *   CLEAN --evict--> INVALID                 (dropped, no write-back)
 *   DIRTY --evict--> INVALID                 (protected, copied, sent, dropped)
 *   DIRTY --dsm_sync--> CLEAN                (protected, copied, sent)
 *
 * Shared regions will add read-only copies and in-flight invalidation
 * states here.
 */
#ifndef DSM_ENGINE_H
#define DSM_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "dsm.h"
#include "transport.h"
#include "uffd.h"

enum dsm_page_state {
	DSM_PG_INVALID = 0, /* not resident; data on its server, or zeros */
	DSM_PG_FETCHING,    /* a READ for it is in flight */
	DSM_PG_CLEAN,       /* resident, write-protected, equal to server copy */
	DSM_PG_DIRTY,       /* resident, writable, newer than server copy */
	DSM_PG_LOST,        /* its server is gone: poisoned */
	DSM_PG_PARKED,      /* fetched, held by the engine, not mapped yet:
	                     * its first touch continues a stream (fault.c) */
};

enum dsm_page_flags {
	DSM_PGF_ON_SERVER = 1 << 0,  /* the server holds written data for it */
	DSM_PGF_PREFETCHED = 1 << 1, /* brought in ahead, not yet seen used */
	DSM_PGF_FREED = 1 << 2,      /* resident, but the program freed it:
	                              * dropped without write-back (discard.c) */
	DSM_PGF_NOREAD = 1 << 3,     /* the program made it unreadable
	                              * (mprotect): never read it, so never
	                              * let it become DIRTY (protect.c) */
};

enum dsm_queue_id { DSM_Q_NONE, DSM_Q_PROBATION, DSM_Q_PROTECTED };

struct dsm_fetch;
struct dsm_region;
struct dsm_io;

/* Requests waiting to be sent by the engine thread (outbox.h). */
struct dsm_outbox {
	struct dsm_io *io;
	uint32_t n, cap;
};

struct dsm_page {
	uint8_t state;   /* enum dsm_page_state */
	uint8_t flags;   /* enum dsm_page_flags */
	uint8_t queue;   /* enum dsm_queue_id while CLEAN or DIRTY */
	uint32_t evicted_at; /* eviction clock when last dropped (refaults) */
	struct dsm_region *region;
	union {
		struct { /* resident: position in its eviction queue */
			struct dsm_page *prev, *next;
		} q;
		struct dsm_fetch *fetch; /* FETCHING: the request */
		uint8_t *parked;         /* PARKED: its data */
	};
};

/* A page whose data must reach its server before it is dropped: dirty,
 * and not freed by the program. */
static inline bool dsm_page_needs_writeback(const struct dsm_page *p)
{
	return p->state == DSM_PG_DIRTY && !(p->flags & DSM_PGF_FREED);
}

struct dsm_move;

/* One piece of a region: [off, off+len) lives at pool_off on a server. */
struct dsm_extent {
	uint64_t off, len;
	uint32_t server;
	uint64_t region_id; /* the server's name for it */
	uint64_t pool_off;
	/* Being moved here from another server (migrate.c): until its copy
	 * is on the wire, nothing is fetched from it and write-backs to it
	 * wait in the move. */
	struct dsm_move *move;
};

/* Where one stripe lives (placement.c). */
struct dsm_home {
	uint32_t server;
	uint64_t region_id, pool_off;
};

/* What one server granted a region: one ALLOC, freed as a whole. */
struct dsm_part {
	uint32_t server;
	uint64_t region_id, pool_off, len;
};

/* Region offset -> (server, pool offset): extents sorted by offset,
 * covering the region (placement.c). */
struct dsm_placement {
	struct dsm_extent *ext;
	uint32_t n;
	struct dsm_part *part;
	uint32_t nparts;
};

/* Regions are dealt out over servers in stripes of this size (one full
 * READ or WRITE). */
#define DSM_STRIPE_BYTES ((uint64_t)DSM_MAX_BATCH_PAGES * 4096)

/* How many stripes a region of size bytes has, and the length of stripe k
 * (the last one may be short). */
static inline uint64_t dsm_stripes(uint64_t size)
{
	return (size + DSM_STRIPE_BYTES - 1) / DSM_STRIPE_BYTES;
}

static inline uint64_t dsm_stripe_len(uint64_t size, uint64_t k)
{
	uint64_t off = k * DSM_STRIPE_BYTES;

	return size - off < DSM_STRIPE_BYTES ? size - off : DSM_STRIPE_BYTES;
}

struct dsm_region {
	uint64_t base, size, npages;
	struct dsm_page *pages;
	struct dsm_placement place;
	uint64_t id;    /* registry name, 0 without a registry (cluster.c) */
	uint64_t created_ms;
	unsigned refs;  /* table + in-flight requests; freed at 0 */
	bool dead;      /* dsm_free()d: completions must not touch it */
};

struct dsm_queue {
	struct dsm_page *head, *tail; /* evict from head */
	uint64_t n;
};

struct dsm_server {
	char addr[128];
	const struct dsm_transport_ops *ops;
	struct dsm_transport *t;
	uint32_t id;    /* the server's id (HELLO), as the registry knows it */
	uint64_t capacity, free;
	int lost;       /* 0, or the error that ended the connection */
	bool draining;  /* being drained: place nothing here, move off it */
};

/* A sequential stream, for prefetch (fault.c). */
struct dsm_stream {
	struct dsm_region *region;
	uint64_t next;    /* page index the stream is expected to touch */
	uint64_t marker;  /* first page of the window fetched ahead */
	uint64_t win_start;
	uint64_t parked;  /* page held back as the marker, or UINT64_MAX */
	uint32_t win;     /* pages per window, grows while sequential */
	uint64_t used_at; /* for replacing the least recent stream */
};

/* Pages a zero-filling fault that starts no stream takes around itself
 * (fault.c). */
#define DSM_ZERO_AROUND 16

/* The most pages one zero-fill installs: a stream's window, or the block
 * around a fault. */
#define dsm_zero_pages() \
	(dsm_eng.prefetch_max > DSM_ZERO_AROUND ? dsm_eng.prefetch_max \
						: DSM_ZERO_AROUND)

#define DSM_STREAMS 8
#define DSM_HIST_BUCKETS 512

struct dsm_counters {
	uint64_t missing_faults, wp_faults, pages_fetched, pages_zero_filled;
	uint64_t pages_written_back, pages_evicted, pages_prefetched;
	uint64_t prefetch_used, bytes_in, bytes_out, blocktime_ns;
	uint64_t pages_moved;            /* copied off servers being drained */
	uint64_t hist[DSM_HIST_BUCKETS]; /* fault service latency */
};

struct dsm_engine {
	pthread_mutex_t lock;

	/* set at init, read-only afterwards */
	struct dsm_uffd uffd;
	uint64_t budget;        /* pages */
	uint32_t prefetch_max;  /* pages */
	bool fifo;              /* victim policy: FIFO instead of 2Q */
	uint64_t poll_ns;       /* busy-poll this long after an event */
	struct dsm_server *servers;
	uint32_t nservers;
	pthread_t fault_thread;
	int wake_fd;            /* eventfd: wakes the engine thread */
	uint8_t *zero_page;     /* dsm_zero_pages() pages of zeros */

	/* guarded by lock */
	struct dsm_region **regions; /* sorted by base */
	uint32_t nregions, cap_regions;
	struct dsm_queue probation, protected;
	uint64_t resident, inflight;   /* pages installed / being fetched */
	uint32_t evict_clock;
	struct dsm_outbox sendq;       /* for the engine thread to send */
	bool quit;                     /* engine thread: stop */
	struct dsm_stream streams[DSM_STREAMS];
	uint64_t stream_clock;
	struct dsm_counters c;
};

extern struct dsm_engine dsm_eng;

/* region.c */
int dsm_region_insert(struct dsm_region *r);
struct dsm_region *dsm_region_find(uint64_t addr);
void dsm_region_remove(struct dsm_region *r);
void dsm_region_put(struct dsm_region *r);

/* placement.c */
/* Place a region of size bytes over the live servers: ALLOC on each
 * server it uses, and the extent map.  0, -ENOMEM (not enough free
 * capacity, logged), or the servers' error.  Not under the lock. */
int dsm_place(uint64_t size, struct dsm_placement *pl);
/* Find homes for n stripes of lengths len[] on servers neither lost nor
 * draining, with one ALLOC per server used, written to part[] (room for
 * nservers) and counted in *nparts; home[k] is stripe k's.  0, -ENOMEM,
 * or the servers' error.  Not under the lock. */
int dsm_place_stripes(const uint64_t *len, uint64_t n, struct dsm_part *part,
		      uint32_t *nparts, struct dsm_home *home);
/* FREE every part on its server; the extent map stays. */
void dsm_unplace(struct dsm_placement *pl);
void dsm_placement_clear(struct dsm_placement *pl);
const struct dsm_extent *dsm_region_extent(const struct dsm_region *r,
					   uint64_t idx);
static inline uint64_t dsm_page_addr(const struct dsm_page *p)
{
	const struct dsm_region *r = p->region;

	return r->base + (uint64_t)(p - r->pages) * 4096;
}

/* migrate.c: moving extents off servers being drained */
int dsm_migrate_start(void);
void dsm_migrate_stop(void);
/* A server said it drains (or no longer): called on the engine thread. */
void dsm_migrate_server_draining(uint32_t server, bool on);
/* Under the lock: where a write-back of a page of extent e goes (e is
 * being moved: into its move, sent once the copy is), or ob. */
struct dsm_outbox *dsm_move_outbox(const struct dsm_extent *e,
				   struct dsm_outbox *ob);

/* fault.c */
void *dsm_fault_main(void *arg);
void dsm_engine_kick(void);
void dsm_streams_forget(struct dsm_region *r);

/* evict.c: all called with the lock held */
struct dsm_sync_wait;
void dsm_queue_add(struct dsm_page *p);
void dsm_queue_del(struct dsm_page *p);
void dsm_queue_touch(struct dsm_page *p);
/* Move a resident page to the front of the line for eviction. */
void dsm_queue_first(struct dsm_page *p);
void dsm_make_room(uint64_t npages, struct dsm_outbox *ob);
int dsm_sync_range(struct dsm_region *r, uint64_t first, uint64_t n,
		   struct dsm_outbox *ob, struct dsm_sync_wait *w);

/* discard.c */
/* Forget [addr, addr+len) of one region (page-aligned): its pages are
 * dropped locally and read as zeros at their next touch; the servers'
 * copies are never fetched or written again.  For memory the preload
 * shim freed.  Not under the lock (takes it); never on the engine thread.
 * 0, or -EINVAL if the range is not inside one region. */
int dsm_discard(uint64_t addr, uint64_t len);
/* The program freed [addr, addr+len) and may soon reuse it: the servers'
 * copies are discarded, resident pages stay mapped, flagged FREED, first
 * for eviction, which drops them without a write-back.  Their contents
 * are garbage until dsm_reuse.  Same calling rules and errors. */
int dsm_release(uint64_t addr, uint64_t len);
/* [addr, addr+len) is handed out again: its FREED pages are live memory
 * from now on (written back when dirty).  It must not be called on a
 * range that has to read as zeros: dsm_discard that.  0 or -EINVAL. */
int dsm_reuse(uint64_t addr, uint64_t len);

/* protect.c: for the preload shim's mprotect */
/* The caller has just made [addr, addr+len) (page-aligned, inside one
 * region) read-only, and is about to make it unreadable: write its dirty
 * pages back, wait until the servers have them, and mark the pages so
 * that none becomes dirty again while the mark stays.  0; -EINVAL (not
 * inside one region); -ENOMEM or the transport's error, with the range
 * left unmarked.  Not under the lock; never on the engine thread. */
int dsm_mark_unreadable(uint64_t addr, uint64_t len);
/* The range is readable again: drop the mark.  0 or -EINVAL. */
int dsm_mark_readable(uint64_t addr, uint64_t len);

/* Nonzero on libdsm's own threads (engine, lease) and while a thread is
 * inside libdsm on behalf of the preload shim: the shim then hands every
 * allocation to the C library, so libdsm never allocates far memory for
 * itself (the engine thread faulting on it would deadlock). */
extern __thread unsigned dsm_tl_internal
	__attribute__((tls_model("initial-exec")));

/* stats.c */
void dsm_hist_add(struct dsm_counters *c, uint64_t ns);
uint64_t dsm_hist_percentile(const struct dsm_counters *c, double pct);

#endif /* DSM_ENGINE_H */
