/*
 * outbox.h - requests decided under the engine lock, sent after it (room:
 * fault engine).
 *
 * Rule: no network I/O under dsm_eng.lock.  A thread that decides to fetch
 * or write back pages appends the request to an outbox while it holds the
 * lock, then calls dsm_outbox_flush(), which takes submit_lock *before*
 * dropping the engine lock and sends everything.  That hand-over keeps the
 * wire order equal to the order of decisions: a page written back by one
 * thread is on the wire before another thread's later READ of it, which
 * the server answers in order.
 *
 * Lock order: dsm_eng.lock, then submit_lock; never the reverse.  Receive
 * threads take only dsm_eng.lock, so a send blocked on a full socket never
 * stops the replies that would unblock it.
 */
#ifndef DSM_OUTBOX_H
#define DSM_OUTBOX_H

#include <stdint.h>

#include "engine.h"

struct dsm_io {
	uint8_t type;         /* DSM_MSG_READ or DSM_MSG_WRITE */
	uint32_t server;
	uint64_t region_id, pool_off;
	uint32_t npages;
	uint8_t *buf;         /* WRITE: npages of data (owned) */
	uint32_t cap;         /* WRITE: pages buf can hold */
	dsm_done_fn done;
	void *arg;
	int err;              /* set by flush: the submit's result */
};

struct dsm_outbox {
	struct dsm_io *io;
	uint32_t n, cap;
};

/* Write-back of a run of pages of one region (the done argument). */
struct dsm_wb {
	struct dsm_region *r;
	uint64_t first;
	uint32_t n;
	struct dsm_sync_wait *sync; /* dsm_sync() waiting on it, or NULL */
};

struct dsm_sync_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned pending;
	int err;
};

int dsm_outbox_read(struct dsm_outbox *ob, const struct dsm_extent *e,
		    uint64_t idx, uint32_t n, dsm_done_fn done, void *arg);
/* Stage one page for write-back, joining the previous WRITE when it is the
 * next page of the same run.  Returns where to copy the page, or NULL. */
uint8_t *dsm_outbox_write_page(struct dsm_outbox *ob, struct dsm_page *p,
			       struct dsm_sync_wait *sync);
/* Called with dsm_eng.lock held; returns with it released. */
void dsm_outbox_flush(struct dsm_outbox *ob);

#endif
