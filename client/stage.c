/*
 * stage.c - see stage.h (room: fault engine).
 */
#include "stage.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "page.h"
#include "transport.h"

#define STAGE_CHUNK_PAGES 256u /* the pool grows 1 MiB at a time */

/* One more chunk of pages, touched now so that they are warm when used. */
static int grow(struct dsm_stage *s)
{
	uint32_t cap = s->cap + STAGE_CHUNK_PAGES;
	uint8_t **fl = realloc(s->free, cap * sizeof(*fl));
	uint8_t **ch = fl ? realloc(s->chunks, (s->nchunks + 1) *
				    sizeof(*ch)) : NULL;
	uint8_t *m;

	if (fl)
		s->free = fl;
	if (!ch)
		return -1;
	s->chunks = ch;
	m = mmap(NULL, (size_t)STAGE_CHUNK_PAGES * DSM_PAGE_SIZE,
		 PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -1;
	/* libdsm's own memory: a forked child has no use for it */
	madvise(m, (size_t)STAGE_CHUNK_PAGES * DSM_PAGE_SIZE, MADV_DONTFORK);
	memset(m, 0, (size_t)STAGE_CHUNK_PAGES * DSM_PAGE_SIZE);
	/* an RDMA transport registers the chunk the first time it sends
	 * from it; if the table cannot take it, its pages are copied */
	dsm_transport_mem_add(m, (size_t)STAGE_CHUNK_PAGES * DSM_PAGE_SIZE);
	s->chunks[s->nchunks++] = m;
	s->cap = cap;
	for (uint32_t i = STAGE_CHUNK_PAGES; i-- > 0;)
		s->free[s->nfree++] = m + (size_t)i * DSM_PAGE_SIZE;
	return 0;
}

uint8_t *dsm_stage_get(struct dsm_stage *s)
{
	if (!s->nfree && grow(s))
		return NULL;
	return s->free[--s->nfree];
}

void dsm_stage_put(struct dsm_stage *s, uint8_t *const *pages, uint32_t n)
{
	/* every page came from here, so cap has room for all of them */
	memcpy(s->free + s->nfree, pages, n * sizeof(*pages));
	s->nfree += n;
}

void dsm_stage_destroy(struct dsm_stage *s)
{
	for (uint32_t i = 0; i < s->nchunks; i++) {
		dsm_transport_mem_del(s->chunks[i],
				      (size_t)STAGE_CHUNK_PAGES * DSM_PAGE_SIZE);
		munmap(s->chunks[i], (size_t)STAGE_CHUNK_PAGES * DSM_PAGE_SIZE);
	}
	free(s->chunks);
	free(s->free);
	memset(s, 0, sizeof(*s));
}
