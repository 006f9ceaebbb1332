/*
 * rdma.h - the RDMA transport's insides, shared by its files (room:
 * transport).  Nothing outside transport/ includes this but the test of
 * stale rkeys (tests/rdma_stale_rkey.c).
 *
 *   rdma.c          the ops: requests, their queue, posting, completions
 *   rdma_conn.c     connecting (rdma_cm, bounded waits) and tearing down
 *   rdma_mem.c      registered memory: READ buffers, and the send memory
 *                   the client announced (transport.h)
 *   rdma_regions.c  the regions this connection may reach one-sidedly,
 *                   as the server's ALLOC replies described them
 *
 * A request is a slot of a fixed table, as on TCP: its id is
 * (generation << 16 | slot), so a reply or a completion finds it in O(1)
 * and a stale one (wrong generation) is dropped.
 */
#ifndef DSM_TRANSPORT_RDMA_H
#define DSM_TRANSPORT_RDMA_H

#include <rdma/rdma_cma.h>
#include <stdbool.h>
#include <stdint.h>

#include "transport.h"

#define RDMA_SLOTS 1024u          /* requests in flight or waiting */
#define RDMA_SQ_DEPTH 256u        /* work requests posted at once */
#define RDMA_MAX_SGE 32u          /* most SGEs one WRITE takes */
/* Receives posted for replies and server messages: a reply per credit,
 * the server's INVALIDATEs and RECALLs and the replies to their acks
 * (DSM_RDMA_INVALS each, proto.h), and room for GOODBYE and DRAINING. */
#define RDMA_RECV_N (DSM_RDMA_CREDITS + 2 * DSM_RDMA_INVALS + 4)
#define RDMA_SEND_N (DSM_RDMA_CREDITS + DSM_RDMA_INVALS)
#define RDMA_NMSG (RDMA_RECV_N + RDMA_SEND_N)
/* Pages READs land in before the engine installs them: 8 full READs. */
#define RDMA_ARENA_PAGES (8 * DSM_MAX_BATCH_PAGES)
/* Local ACK timeout, 4.096 us << 14 = 67 ms: how long before a lost
 * packet is sent again.  rdma_cm's default for RoCE is about 2 s, which
 * made every packet the soft-RoCE guests dropped a 2 s stall of a page
 * fault; 67 ms is still far above any round trip of a real fabric. */
#define RDMA_ACK_TIMEOUT 14

enum rreq_kind { RREQ_READ, RREQ_WRITE, RREQ_CALL };

/* One request, from submission to completion. */
struct rreq {
	dsm_done_fn done;
	void *arg;
	uint32_t gen;
	uint8_t kind;             /* enum rreq_kind */
	bool busy;
	bool posted;              /* on the wire (its WRs, or its SEND) */
	uint32_t next;            /* the waiting queue, UINT32_MAX: end */
	uint32_t npages;          /* READ, WRITE */
	uint64_t raddr;           /* READ, WRITE: the server's address */
	uint32_t rkey;
	uint8_t *const *pages;    /* WRITE: the caller's pages */
	int32_t arena;            /* pages taken in the arena, or -1 */
	uint32_t wrs;             /* work requests posted, not completed */
	uint8_t type;             /* CALL: message type */
	uint32_t blen;            /* CALL: body bytes */
	uint8_t body[DSM_RDMA_MSG_MAX - DSM_HDR_SIZE];
};

/* A region this connection may reach, from its ALLOC reply. */
struct rregion {
	uint64_t region_id, pool_off, size, addr;
	uint32_t rkey;
};

/* A registration of memory the client sends from (a staging chunk). */
struct rmr {
	uintptr_t base;
	size_t len;
	struct ibv_mr *mr;
};

struct dsm_transport {
	char addr[128];
	struct dsm_transport_events ev;
	int dead;                 /* 0, or the error that ended it */
	bool closing;             /* close(): no lost() report */

	/* rdma_conn.c */
	struct rdma_event_channel *ec;
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	struct ibv_comp_channel *cc;
	struct ibv_cq *cq;
	int epfd;                 /* fd(): ec's and cc's fds together */
	bool connected;
	bool armed;               /* the CQ will signal cc */
	/* DSM_TEST_RDMA_UNORDERED: WRITEs do not wait for DISCARDs, so that
	 * tests/rdma_check.c can show what the hold prevents.  Tests only. */
	bool unordered;
	unsigned cq_unacked;
	uint32_t max_sge;         /* per WRITE work request */

	/* rdma_mem.c */
	uint8_t *msg;             /* RDMA_NMSG message buffers: receives first */
	struct ibv_mr *msg_mr;
	uint32_t send_free[RDMA_SEND_N], nsend_free;
	uint8_t *arena;           /* RDMA_ARENA_PAGES pages */
	struct ibv_mr *arena_mr;
	uint64_t arena_used[RDMA_ARENA_PAGES / 64];
	struct rmr *mrs;          /* sorted by base */
	uint32_t nmrs, mrs_cap;

	/* rdma_regions.c */
	struct rregion *regions;  /* sorted by region_id */
	uint32_t nregions, regions_cap;

	/* rdma.c */
	struct rreq slots[RDMA_SLOTS];
	uint32_t free_list[RDMA_SLOTS], nfree;
	uint32_t wait_head, wait_tail; /* submitted, not yet posted */
	uint32_t sq_free;         /* send queue entries free */
	uint32_t credits;         /* control requests the server can take */
	uint32_t ack_credits;     /* INVAL_ACKs it can take: one per
	                           * INVALIDATE or RECALL received */
	uint32_t discards;        /* DISCARDs posted and unanswered */
	uint32_t posted_wrs;      /* READ/WRITE work requests in flight */
	struct dsm_one_sided os;  /* updated atomically: read by any thread */
	/* scratch for building one WRITE's work requests */
	struct ibv_sge sge[DSM_MAX_BATCH_PAGES];
	struct ibv_send_wr wr[DSM_MAX_BATCH_PAGES];
};

/* wr_id: what a completion is for.  Low 2 bits: the tag; then the slot
 * or buffer index; the top 32 bits: the request's generation. */
enum { WR_REQ = 0, WR_RECV = 1, WR_SEND = 2 };
static inline uint64_t wr_id(unsigned tag, uint32_t index, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint64_t)index << 2 | tag;
}

/* rdma_conn.c */
int rdma_conn_open(struct dsm_transport *t, const char *addr);
/* Move the queue pair to the error state and wait (briefly) for every
 * posted work request to complete, through complete_fn. */
void rdma_conn_quiesce(struct dsm_transport *t,
		       void (*complete_fn)(struct dsm_transport *,
					   const struct ibv_wc *));
void rdma_conn_close(struct dsm_transport *t);
/* CM events since the last call: 0, or the error that ended the
 * connection (disconnected, device gone). */
int rdma_conn_events(struct dsm_transport *t);

/* rdma_mem.c */
int rdma_mem_init(struct dsm_transport *t);
void rdma_mem_destroy(struct dsm_transport *t);
uint8_t *rdma_msg_at(struct dsm_transport *t, uint32_t index);
int rdma_post_recv(struct dsm_transport *t, uint32_t index);
/* n contiguous arena pages: the first's index, or -1 if none free. */
int32_t rdma_arena_get(struct dsm_transport *t, uint32_t n);
void rdma_arena_put(struct dsm_transport *t, int32_t first, uint32_t n);
uint8_t *rdma_arena_at(struct dsm_transport *t, int32_t first);
/* The lkey under which [p, p+len) can be sent, registering the
 * announced range holding it on first use; 0 with *lkey, or -ENOENT
 * (not announced memory) or -errno. */
int rdma_mem_lkey(struct dsm_transport *t, const uint8_t *p, size_t len,
		  uint32_t *lkey);

/* rdma_regions.c */
int rdma_region_add(struct dsm_transport *t, const struct dsm_alloc_reply *a);
void rdma_region_del(struct dsm_transport *t, uint64_t region_id);
/* Where npages at pool_off of region_id are: 0, -ENOENT (not a region of
 * this connection), -ERANGE (outside it). */
int rdma_region_find(const struct dsm_transport *t, uint64_t region_id,
		     uint64_t pool_off, uint32_t npages, uint64_t *raddr,
		     uint32_t *rkey);
void rdma_regions_destroy(struct dsm_transport *t);

/* For tests/rdma_stale_rkey.c only: an RDMA READ of npages at (addr,
 * rkey), whatever the region table says, to show that the server
 * refuses an rkey that is no longer (or never was) this connection's. */
int dsm_rdma_read_raw(struct dsm_transport *t, uint64_t addr, uint32_t rkey,
		      uint32_t npages, dsm_done_fn done, void *arg);

#endif /* DSM_TRANSPORT_RDMA_H */
