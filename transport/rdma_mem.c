/*
 * rdma_mem.c - the memory an RDMA connection registers (room: transport).
 *
 * Three kinds, all in the connection's protection domain:
 *   - message buffers: the receives posted for replies and server
 *     messages, and the buffers control requests are sent from;
 *   - the arena: pages RDMA READs land in, handed out as contiguous runs
 *     (a run is one READ, installed with one UFFDIO_COPY), first fit over
 *     a bitmap; a READ that finds no run waits until one is given back;
 *   - send memory: the client's staging chunks (announced through
 *     dsm_transport_mem_add), each registered the first time a WRITE
 *     sends from it and kept until the connection closes, so the fault
 *     path never registers anything after warm-up.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rdma.h"

uint8_t *rdma_msg_at(struct dsm_transport *t, uint32_t index)
{
	return t->msg + (size_t)index * DSM_RDMA_MSG_MAX;
}

int rdma_post_recv(struct dsm_transport *t, uint32_t index)
{
	struct ibv_sge sge = { (uintptr_t)rdma_msg_at(t, index),
			       DSM_RDMA_MSG_MAX, t->msg_mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = wr_id(WR_RECV, index, 0),
				  .sg_list = &sge, .num_sge = 1 }, *bad;

	return -ibv_post_recv(t->id->qp, &wr, &bad);
}

static int register_all(struct dsm_transport *t)
{
	size_t msg_bytes = (size_t)RDMA_NMSG * DSM_RDMA_MSG_MAX;
	size_t arena_bytes = (size_t)RDMA_ARENA_PAGES * DSM_PAGE_SIZE;

	t->msg = calloc(1, msg_bytes);
	if (!t->msg || posix_memalign((void **)&t->arena, DSM_PAGE_SIZE,
				      arena_bytes))
		return -ENOMEM;
	t->msg_mr = ibv_reg_mr(t->pd, t->msg, msg_bytes,
			       IBV_ACCESS_LOCAL_WRITE);
	if (!t->msg_mr)
		return -errno;
	t->arena_mr = ibv_reg_mr(t->pd, t->arena, arena_bytes,
				 IBV_ACCESS_LOCAL_WRITE);
	if (!t->arena_mr)
		return -errno;
	return 0;
}

int rdma_mem_init(struct dsm_transport *t)
{
	int err = register_all(t);

	if (err) {
		dsm_err("%s: cannot register buffers for RDMA: %s%s", t->addr,
			strerror(-err), err == -ENOMEM || err == -EPERM ?
			" (is RLIMIT_MEMLOCK, ulimit -l, large enough?)" : "");
		return err;
	}
	for (uint32_t i = 0; i < RDMA_RECV_N; i++)
		if ((err = rdma_post_recv(t, i)) < 0)
			return err;
	for (uint32_t i = 0; i < RDMA_SEND_N; i++)
		t->send_free[t->nsend_free++] = RDMA_RECV_N + i;
	return 0;
}

void rdma_mem_destroy(struct dsm_transport *t)
{
	for (uint32_t i = 0; i < t->nmrs; i++)
		if (ibv_dereg_mr(t->mrs[i].mr))
			dsm_warn("%s: ibv_dereg_mr (send memory) failed", t->addr);
	free(t->mrs);
	if (t->arena_mr && ibv_dereg_mr(t->arena_mr))
		dsm_warn("%s: ibv_dereg_mr (arena) failed", t->addr);
	if (t->msg_mr && ibv_dereg_mr(t->msg_mr))
		dsm_warn("%s: ibv_dereg_mr (messages) failed", t->addr);
	free(t->arena);
	free(t->msg);
	t->mrs = NULL;
	t->nmrs = 0;
	t->arena_mr = t->msg_mr = NULL;
	t->arena = t->msg = NULL;
}

/* ---- the arena ---------------------------------------------------------- */

static bool page_used(const struct dsm_transport *t, uint32_t i)
{
	return t->arena_used[i / 64] & (1ULL << (i % 64));
}

static void mark(struct dsm_transport *t, uint32_t first, uint32_t n, bool on)
{
	for (uint32_t i = first; i < first + n; i++) {
		if (on)
			t->arena_used[i / 64] |= 1ULL << (i % 64);
		else
			t->arena_used[i / 64] &= ~(1ULL << (i % 64));
	}
}

int32_t rdma_arena_get(struct dsm_transport *t, uint32_t n)
{
	uint32_t run = 0;

	for (uint32_t i = 0; i < RDMA_ARENA_PAGES; i++) {
		/* a whole free word at once: the arena is mostly idle */
		if (i % 64 == 0 && !t->arena_used[i / 64] && i + 64 <= RDMA_ARENA_PAGES &&
		    run + 64 < n) {
			run += 64;
			i += 63;
			continue;
		}
		run = page_used(t, i) ? 0 : run + 1;
		if (run == n) {
			mark(t, i + 1 - n, n, true);
			return i + 1 - n;
		}
	}
	return -1;
}

void rdma_arena_put(struct dsm_transport *t, int32_t first, uint32_t n)
{
	if (first >= 0)
		mark(t, first, n, false);
}

uint8_t *rdma_arena_at(struct dsm_transport *t, int32_t first)
{
	return t->arena + (size_t)first * DSM_PAGE_SIZE;
}

/* ---- send memory -------------------------------------------------------- */

/* The registration holding p, or the index to insert one at. */
static struct rmr *mr_find(struct dsm_transport *t, uintptr_t p, uint32_t *at)
{
	uint32_t lo = 0, hi = t->nmrs;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		struct rmr *m = &t->mrs[mid];

		if (p < m->base)
			hi = mid;
		else if (p - m->base >= m->len)
			lo = mid + 1;
		else
			return m;
	}
	*at = lo;
	return NULL;
}

static struct rmr *mr_add(struct dsm_transport *t, uint32_t at, void *base,
			  size_t len)
{
	struct ibv_mr *mr;

	if (t->nmrs == t->mrs_cap) {
		uint32_t cap = t->mrs_cap ? 2 * t->mrs_cap : 16;
		struct rmr *v = realloc(t->mrs, cap * sizeof(*v));

		if (!v)
			return NULL;
		t->mrs = v;
		t->mrs_cap = cap;
	}
	mr = ibv_reg_mr(t->pd, base, len, IBV_ACCESS_LOCAL_WRITE);
	if (!mr)
		return NULL;
	memmove(&t->mrs[at + 1], &t->mrs[at], (t->nmrs - at) * sizeof(*t->mrs));
	t->mrs[at] = (struct rmr){ (uintptr_t)base, len, mr };
	t->nmrs++;
	return &t->mrs[at];
}

int rdma_mem_lkey(struct dsm_transport *t, const uint8_t *p, size_t len,
		  uint32_t *lkey)
{
	uintptr_t a = (uintptr_t)p;
	struct rmr *m;
	uint32_t at = 0;
	void *base;
	size_t blen;

	m = mr_find(t, a, &at);
	if (!m) {
		if (dsm_transport_mem_find(p, &base, &blen))
			return -ENOENT;
		m = mr_add(t, at, base, blen);
		if (!m) {
			dsm_warn("%s: cannot register %zu bytes of send memory: "
				 "%s", t->addr, blen, strerror(errno));
			return -ENOMEM;
		}
	}
	if (a - m->base + len > m->len)
		return -ENOENT;
	*lkey = m->mr->lkey;
	return 0;
}
