/*
 * evict.h - keeping resident pages within the budget (room: eviction).
 * The policy is in evict.c.  Everything here is called with dsm_eng.lock
 * held.
 */
#ifndef DSM_EVICT_H
#define DSM_EVICT_H

#include <stdint.h>

#include "region.h"

struct dsm_outbox;
struct dsm_sync_wait;

/* The victim policy (DSM_EVICT; evict.c describes them). */
enum dsm_evict_policy {
	DSM_EVICT_2Q,    /* 2Q with refault distance: the default */
	DSM_EVICT_2Q_WP, /* the same, with second chances for dirty pages */
	DSM_EVICT_FIFO,  /* FIFO, for comparison */
};

/* Victims dropped together (evict.c): a drop costs about one TLB flush
 * whatever its size.  The capture pipe holds a batch (capture.h). */
#define DSM_EVICT_BATCH 256

struct dsm_queue {
	struct dsm_page *head, *tail; /* evict from head */
	uint64_t n;
};

/* A page just became resident: it joins a queue (2Q: by refault
 * distance). */
void dsm_queue_add(struct dsm_page *p);
/* The same for a page a stream fetched ahead of need (streamed): it joins
 * probation whatever its refault distance. */
void dsm_queue_add_from(struct dsm_page *p, bool streamed);
void dsm_queue_del(struct dsm_page *p);
/* A write fault on a resident page (its first write, or one on its
 * second chance): evidence it is in use. */
void dsm_queue_touch(struct dsm_page *p);
/* Move a resident page to the front of the line for eviction. */
void dsm_queue_first(struct dsm_page *p);
/* Evict until npages more fit in the budget (counting pages being
 * fetched), staging the write-backs of dirty victims in ob. */
void dsm_make_room(uint64_t npages, struct dsm_outbox *ob);
/* Keep free pages ahead of need (evict.c says how many): for the engine
 * thread, once a batch of requests is on the wire. */
void dsm_evict_ahead(struct dsm_outbox *ob);
/* Stage write-backs of the dirty pages of [first, first+n) of r in ob,
 * leaving them resident and clean; w counts them for the caller to wait
 * on.  0, -ENOMEM, or the userfaultfd's error. */
int dsm_sync_range(struct dsm_region *r, uint64_t first, uint64_t n,
		   struct dsm_outbox *ob, struct dsm_sync_wait *w);

#endif /* DSM_EVICT_H */
