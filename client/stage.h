/*
 * stage.h - warm pages for data on its way to a server (room: fault
 * engine).
 *
 * A write-back copies a dirty page somewhere before the page is dropped,
 * and that copy must stay put until the server has it: until the WRITE's
 * completion, which is also what an RDMA transport needs of memory it
 * writes from.  Allocating that space per write-back touched fresh memory
 * for every page evicted, and touching memory the CPU has not touched
 * lately is what costs most on the machines dsm runs on.  So staged pages
 * come from a pool that only grows, to the most data ever in flight at
 * once, and is handed out most recently freed first: warm.
 *
 * Each chunk is announced to the transports (dsm_transport_mem_add), so
 * that an RDMA transport registers it once and WRITEs straight from it.
 * dsm_stage_destroy runs after every transport is closed.
 *
 * Guarded by dsm_eng.lock, like the send queue it serves.
 */
#ifndef DSM_STAGE_H
#define DSM_STAGE_H

#include <stdint.h>

struct dsm_stage {
	uint8_t **free;         /* free pages, most recently freed last */
	uint32_t nfree, cap;
	uint8_t **chunks;       /* every mapping of the pool, for shutdown */
	uint32_t nchunks;
};

/* A page of staging memory, or NULL if none can be had. */
uint8_t *dsm_stage_get(struct dsm_stage *s);
/* Give back pages from dsm_stage_get. */
void dsm_stage_put(struct dsm_stage *s, uint8_t *const *pages, uint32_t n);
/* Unmap the whole pool (at shutdown, with nothing in flight). */
void dsm_stage_destroy(struct dsm_stage *s);

#endif /* DSM_STAGE_H */
