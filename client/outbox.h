/*
 * outbox.h - requests decided under the engine lock, sent after it (room:
 * fault engine).
 *
 * Rule: no network I/O under dsm_eng.lock, and only the engine thread
 * touches the transports.  Whoever decides to fetch, write back or ask a
 * server something appends the request to dsm_eng.sendq while holding the
 * lock; the engine thread takes the whole queue under the lock and sends
 * it after releasing it.  Appending under the lock makes the wire order
 * equal to the order of decisions: a page written back is on the wire
 * before any later READ of it, and the server answers in order.
 *
 * Other threads (dsm_sync, dsm_alloc and dsm_free on application threads,
 * the preload shim's calls, the mover and lease threads) append and then
 * wake the engine thread with dsm_engine_kick().
 */
#ifndef DSM_OUTBOX_H
#define DSM_OUTBOX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "placement.h"
#include "region.h"
#include "transport.h"

struct dsm_io {
	uint8_t type;         /* DSM_MSG_READ, DSM_MSG_WRITE, or a control call
	                       * (DISCARD among them) */
	uint32_t server;
	uint64_t region_id, pool_off;
	uint32_t npages;
	uint8_t *const *pages; /* WRITE: page i's data; owned by the
	                        * completion's arg, which gives them back to
	                        * dsm_eng.stage when it runs */
	uint32_t nrep;        /* WRITE: copies to send it to besides the one
	                       * above (replicas, placement.h) */
	struct dsm_home rep[DSM_MAX_REPLICAS - 1]; /* where they get page 0 */
	uint8_t body[48];     /* control call: its encoded body (at most
	                       * DSM_SHARE_REQ_SIZE) */
	uint32_t blen;
	dsm_done_fn done;
	void *arg;
};

/* Requests waiting to be sent by the engine thread, in order. */
struct dsm_outbox {
	struct dsm_io *io;
	uint32_t n, cap;
};

struct dsm_wb;

/* One copy of a write-back on its way: the transport's done argument. */
struct dsm_wb_copy {
	struct dsm_wb *wb;
	uint32_t c;           /* copy c of the extent (placement.h) */
};

/* Write-back of a run of pages of one region (the done argument). */
struct dsm_wb {
	struct dsm_region *r;
	uint64_t first;
	uint32_t n;
	/* its copies (one per replica): sent, not answered yet; answered
	 * well; bit c: copy c failed, with the first error */
	uint32_t left, ok, failed;
	int err;
	struct dsm_wb_copy copy[DSM_MAX_REPLICAS];
	/* the server each copy goes to, copy c of the extent (placement.h)
	 * when it was decided; a move's undo re-points one.  The extent's
	 * copy may be elsewhere by the time it is answered (migrate.c). */
	uint32_t srv[DSM_MAX_REPLICAS];
	struct dsm_sync_wait *sync; /* dsm_sync() waiting on it, or NULL */
	uint8_t *page[DSM_MAX_BATCH_PAGES]; /* staged copies (stage.h) */
};

/*
 * How long a thread waits for servers to answer (dsm_sync's write-backs,
 * a control call such as ALLOC or FREE, the shim's wait for a fetch to
 * land) before it gives up with -ETIMEDOUT: 30 s, or
 * DSM_REPLY_TIMEOUT_MS.  A dead server's machine is found sooner, by
 * TCP (DSM_TCP_TIMEOUT_MS, transport.h); this bounds a server that is
 * alive but does not answer (stopped, hung).
 */
#define DSM_REPLY_TIMEOUT_MS 30000
#define DSM_REPLY_TIMEOUT_MS_MAX 3600000

/* Write-backs a thread waits for (dsm_sync, mprotect's).  On the heap,
 * shared by the waiter and the write-backs: a waiter that gives up
 * leaves it (abandoned) to the last completion to free. */
struct dsm_sync_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;  /* CLOCK_MONOTONIC */
	unsigned pending;     /* write-backs not answered yet */
	int err;
	bool abandoned;
};

/* A new wait, or NULL (out of memory). */
struct dsm_sync_wait *dsm_sync_wait_new(void);
/* Wait until every write-back counted in w is answered, at most
 * dsm_eng.reply_ns: 0, the first error, or -ETIMEDOUT.  w is the
 * library's after this (freed now, or by the last completion). */
int dsm_sync_wait_end(struct dsm_sync_wait *w);

int dsm_outbox_read(struct dsm_outbox *ob, const struct dsm_extent *e,
		    uint64_t idx, uint32_t n, dsm_done_fn done, void *arg);
/* Tell e's server to drop pages [idx, idx+n) of the region (all inside
 * e): the pages were freed, and their server copy is garbage.  Fire and
 * forget.  0 or -ENOMEM. */
int dsm_outbox_discard(struct dsm_outbox *ob, const struct dsm_extent *e,
		       uint64_t idx, uint32_t n);
/* Stage one page for write-back, joining the previous WRITE when it is the
 * next page of the same run.  Returns where to copy the page, or NULL. */
uint8_t *dsm_outbox_write_page(struct dsm_outbox *ob, struct dsm_page *p,
			       struct dsm_sync_wait *sync);
/* A control request (ALLOC, FREE, LEASE) to a server, from a thread
 * other than the engine thread: queued, sent by the engine thread,
 * waited for at most dsm_eng.reply_ns.  Copies at most cap reply bytes
 * into reply and the length into *rlen.  0 or -errno; -ETIMEDOUT when
 * the server did not answer in time (a late answer is dropped: an ALLOC
 * answered late leaves its region reserved on the server until this
 * connection closes). */
int dsm_engine_call(uint32_t server, uint8_t type, const void *body,
		    uint32_t len, void *reply, uint32_t cap, uint32_t *rlen);
/* The same, waiting timeout_ns instead (dsm_lock: another program's
 * time, not the server's); no error is logged on -ETIMEDOUT. */
int dsm_engine_call_ns(uint32_t server, uint8_t type, const void *body,
		       uint32_t len, void *reply, uint32_t cap,
		       uint32_t *rlen, uint64_t timeout_ns);
/* Any request from a thread other than the engine thread, waited for
 * at most timeout_ns: req is copied (done and arg are set here).  Up to
 * cap bytes of the reply's payload (a READ's pages) go to reply, its
 * length to *rlen.  A WRITE's pages come from dsm_eng.stage and are the
 * call's from here on: given back when the WRITE completes, even if the
 * caller stopped waiting.  0 or -errno; -ETIMEDOUT as above. */
int dsm_engine_io(const struct dsm_io *req, void *reply, uint32_t cap,
		  uint32_t *rlen, uint64_t timeout_ns);
/* Move every request of src to the end of dst, in order (their pages go
 * with them).  0, or -ENOMEM with both unchanged. */
int dsm_outbox_splice(struct dsm_outbox *dst, struct dsm_outbox *src);
/* A new request at the end of ob for the caller to fill, or NULL. */
struct dsm_io *dsm_outbox_push(struct dsm_outbox *ob);
/* Pages of a run of at most DSM_MAX_BATCH_PAGES, one bit each. */
#define DSM_RUN_WORDS (DSM_MAX_BATCH_PAGES / 64)
/*
 * Under the lock: the servers' copy of pages [first, first+n) of r is
 * gone (a write-back or a move failed).  Resident pages keep their data
 * and become dirty, so it is sent again (pages a stream held back are
 * mapped first, to be among them); dropped pages whose only copy was
 * there raise SIGBUS from now on rather than read back stale (pages never
 * written, or freed, read as zeros as before).  Bit i of kept (NULL:
 * none; n <= DSM_MAX_BATCH_PAGES then) spares page first+i: its newest
 * data is in a write-back still on its way to its home.  Returns how
 * many were lost.
 */
uint64_t dsm_server_copy_lost(struct dsm_region *r, uint64_t first,
			      uint64_t n, const uint64_t *kept);
/* Engine thread only, no lock held: send everything in ob, in order. */
void dsm_outbox_send(struct dsm_outbox *ob);

#endif
