/*
 * rdma.c - the RDMA transport (room: transport).  rdma.h says which file
 * does what; this one turns requests into work requests and completions
 * back into the engine's completions.
 *
 * READ is one RDMA READ of the whole run into arena pages; WRITE is RDMA
 * WRITEs straight from the caller's pages (one SGE per run of adjacent
 * pages, as many work requests as the device's SGE limit makes it); a
 * control call is one SEND of one framed message, its reply one RECV.
 * No server CPU touches a READ or a WRITE.
 *
 * Requests wait in one queue, in submission order, until what they need
 * is free: room in the send queue, arena pages for a READ, a credit (a
 * receive the server has posted) and a send buffer for a call.  The queue
 * is never reordered, so the order the engine decided is the order on
 * the wire, and the server executes one queue pair's requests in that
 * order (docs/design.md, "Ordering over RDMA").  Two rules on top:
 *   - a WRITE waits while a DISCARD is unanswered.  The DISCARD's SEND
 *     reaches the server before the WRITE's data, but the server's CPU
 *     zeroes the pages later, and would zero data written after the
 *     pages were given out again;
 *   - FREE and DISCARD are sent fenced (IBV_SEND_FENCE): they start only
 *     once every earlier RDMA READ has completed, so the server never
 *     frees or zeroes pages a READ of ours is still reading.
 *
 * When anything fails (a completion in error, a disconnect, a post that
 * fails), the queue pair is moved to the error state, its posted work
 * requests are waited for (flushed), and only then is lost() reported
 * and every request completed with the error: no buffer goes back to its
 * owner while the device may still use it.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rdma.h"

#define NONE UINT32_MAX
#define CQ_ACK_BATCH 64
#define POLL_BATCH 16

/* ---- slots --------------------------------------------------------------- */

static struct rreq *slot_get(struct dsm_transport *t, uint8_t kind,
			     dsm_done_fn done, void *arg)
{
	uint32_t s = t->free_list[--t->nfree];
	struct rreq *r = &t->slots[s];
	uint32_t gen = r->gen + 1;

	*r = (struct rreq){ .done = done, .arg = arg, .gen = gen,
			    .kind = kind, .busy = true, .next = NONE,
			    .arena = -1 };
	return r;
}

static uint32_t slot_index(const struct dsm_transport *t, const struct rreq *r)
{
	return r - t->slots;
}

/* The request s of generation gen, if it is still the one asked for. */
static struct rreq *slot_find(struct dsm_transport *t, uint32_t s,
			      uint32_t gen)
{
	if (s >= RDMA_SLOTS || !t->slots[s].busy || t->slots[s].gen != gen)
		return NULL;
	return &t->slots[s];
}

static void slot_put(struct dsm_transport *t, struct rreq *r)
{
	rdma_arena_put(t, r->arena, r->npages);
	r->arena = -1;
	r->busy = false;
	t->free_list[t->nfree++] = slot_index(t, r);
}

/* Completion: the slot is free again before done runs (done may submit),
 * its arena pages only after (payload points into them). */
static void finish(struct dsm_transport *t, struct rreq *r, int status,
		   const uint8_t *payload, uint32_t len)
{
	dsm_done_fn done = r->done;
	void *arg = r->arg;
	int32_t arena = r->arena;
	uint32_t npages = r->npages;

	r->arena = -1;
	slot_put(t, r);
	done(arg, status, payload, len);
	rdma_arena_put(t, arena, npages);
}

/* ---- failure ------------------------------------------------------------- */

/* What a completion frees, whatever its status. */
static void account(struct dsm_transport *t, const struct ibv_wc *wc)
{
	uint32_t tag = wc->wr_id & 3, index = (wc->wr_id >> 2) & 0x3fffffff;
	struct rreq *r;

	if (tag == WR_SEND) {
		t->send_free[t->nsend_free++] = index;
		t->sq_free++;
	} else if (tag == WR_REQ &&
		   (r = slot_find(t, index, wc->wr_id >> 32))) {
		r->wrs--;
		t->posted_wrs--;
		t->sq_free++;
	}
}

static int fail_all(struct dsm_transport *t, int err)
{
	if (t->dead)
		return t->dead;
	t->dead = err;
	rdma_conn_quiesce(t, account);
	t->wait_head = t->wait_tail = NONE;
	if (!t->closing && t->ev.lost)
		t->ev.lost(t->ev.ctx, err);
	for (uint32_t s = 0; s < RDMA_SLOTS; s++)
		if (t->slots[s].busy)
			finish(t, &t->slots[s], err, NULL, 0);
	return err;
}

static int wc_error(enum ibv_wc_status st)
{
	switch (st) {
	case IBV_WC_REM_ACCESS_ERR: return -EACCES; /* a refused rkey */
	case IBV_WC_RETRY_EXC_ERR:
	case IBV_WC_RNR_RETRY_EXC_ERR: return -ETIMEDOUT;
	case IBV_WC_WR_FLUSH_ERR: return -ECONNRESET;
	default: return -EIO;
	}
}

/* ---- posting ------------------------------------------------------------- */

static int post(struct dsm_transport *t, struct ibv_send_wr *wr)
{
	struct ibv_send_wr *bad;
	int err = ibv_post_send(t->id->qp, wr, &bad);

	if (err)
		dsm_err("%s: ibv_post_send: %s", t->addr, strerror(err));
	return -err;
}

static int post_read(struct dsm_transport *t, struct rreq *r)
{
	struct ibv_sge sge;
	struct ibv_send_wr wr = {
		.wr_id = wr_id(WR_REQ, slot_index(t, r), r->gen),
		.sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_RDMA_READ,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = r->raddr, .rkey = r->rkey },
	};

	if (!t->sq_free)
		return 0;
	r->arena = rdma_arena_get(t, r->npages);
	if (r->arena < 0)
		return 0;
	sge = (struct ibv_sge){ (uintptr_t)rdma_arena_at(t, r->arena),
				r->npages * DSM_PAGE_SIZE, t->arena_mr->lkey };
	if (post(t, &wr))
		return -EIO;
	r->wrs = 1;
	t->posted_wrs++;
	t->sq_free--;
	return 1;
}

/* The SGEs of a WRITE from the caller's pages, adjacent pages merged;
 * their count, or 0 if a page is not in memory this connection can
 * register (then the pages are copied into the arena). */
static uint32_t write_sges(struct dsm_transport *t, struct rreq *r)
{
	uint32_t n = 0, lkey;

	for (uint32_t i = 0; i < r->npages; i++) {
		uintptr_t p = (uintptr_t)r->pages[i];
		struct ibv_sge *last = n ? &t->sge[n - 1] : NULL;

		if (rdma_mem_lkey(t, r->pages[i], DSM_PAGE_SIZE, &lkey))
			return 0;
		if (last && last->addr + last->length == p && last->lkey == lkey)
			last->length += DSM_PAGE_SIZE;
		else
			t->sge[n++] = (struct ibv_sge){ p, DSM_PAGE_SIZE, lkey };
	}
	return n;
}

/* Pages from memory nobody announced: copied into the arena, one SGE. */
static uint32_t bounce_sges(struct dsm_transport *t, struct rreq *r)
{
	uint8_t *to;

	r->arena = rdma_arena_get(t, r->npages);
	if (r->arena < 0)
		return 0;
	to = rdma_arena_at(t, r->arena);
	for (uint32_t i = 0; i < r->npages; i++)
		memcpy(to + (size_t)i * DSM_PAGE_SIZE, r->pages[i], DSM_PAGE_SIZE);
	t->sge[0] = (struct ibv_sge){ (uintptr_t)to, r->npages * DSM_PAGE_SIZE,
				      t->arena_mr->lkey };
	return 1;
}

/* One chained post: work request k writes SGEs [k*max_sge, ...) at the
 * remote address that follows the bytes before them. */
static int post_write_wrs(struct dsm_transport *t, struct rreq *r,
			  uint32_t nsge, uint32_t nwr)
{
	uint64_t raddr = r->raddr;

	for (uint32_t k = 0; k < nwr; k++) {
		uint32_t first = k * t->max_sge, cnt = nsge - first;
		struct ibv_send_wr *wr = &t->wr[k];

		if (cnt > t->max_sge)
			cnt = t->max_sge;
		*wr = (struct ibv_send_wr){
			.wr_id = wr_id(WR_REQ, slot_index(t, r), r->gen),
			.next = k + 1 < nwr ? &t->wr[k + 1] : NULL,
			.sg_list = &t->sge[first], .num_sge = cnt,
			.opcode = IBV_WR_RDMA_WRITE,
			.send_flags = IBV_SEND_SIGNALED,
			.wr.rdma = { .remote_addr = raddr, .rkey = r->rkey },
		};
		for (uint32_t i = first; i < first + cnt; i++)
			raddr += t->sge[i].length;
	}
	if (post(t, &t->wr[0]))
		return -EIO;
	r->wrs = nwr;
	t->posted_wrs += nwr;
	t->sq_free -= nwr;
	return 1;
}

static int post_write(struct dsm_transport *t, struct rreq *r)
{
	uint32_t nsge, nwr;

	if (t->discards && !t->unordered)
		return 0; /* see the top of this file */
	nsge = write_sges(t, r);
	if (!nsge && r->arena < 0)
		nsge = bounce_sges(t, r);
	if (!nsge)
		return 0;
	nwr = (nsge + t->max_sge - 1) / t->max_sge;
	if (nwr > t->sq_free) {
		rdma_arena_put(t, r->arena, r->npages);
		r->arena = -1;
		return 0;
	}
	return post_write_wrs(t, r, nsge, nwr);
}

static int post_call(struct dsm_transport *t, struct rreq *r)
{
	struct ibv_sge sge;
	struct ibv_send_wr wr = { .sg_list = &sge, .num_sge = 1,
				  .opcode = IBV_WR_SEND,
				  .send_flags = IBV_SEND_SIGNALED };
	bool ack = r->type == DSM_MSG_INVAL_ACK;
	uint32_t buf;
	struct dsm_hdr h;

	if (!(ack ? t->ack_credits : t->credits) || !t->nsend_free ||
	    !t->sq_free)
		return 0;
	buf = t->send_free[--t->nsend_free];
	dsm_hdr_init(&h, r->type, 0, r->blen,
		     (uint64_t)r->gen << 16 | slot_index(t, r));
	dsm_hdr_encode(&h, rdma_msg_at(t, buf));
	memcpy(rdma_msg_at(t, buf) + DSM_HDR_SIZE, r->body, r->blen);
	sge = (struct ibv_sge){ (uintptr_t)rdma_msg_at(t, buf),
				DSM_HDR_SIZE + r->blen, t->msg_mr->lkey };
	wr.wr_id = wr_id(WR_SEND, buf, 0);
	if (r->type == DSM_MSG_FREE || r->type == DSM_MSG_DISCARD)
		wr.send_flags |= IBV_SEND_FENCE;
	if (post(t, &wr)) {
		t->send_free[t->nsend_free++] = buf;
		return -EIO;
	}
	if (ack)
		t->ack_credits--;
	else
		t->credits--;
	t->sq_free--;
	t->discards += r->type == DSM_MSG_DISCARD;
	return 1;
}

/* Post from the head of the queue until something must wait. */
static int pump(struct dsm_transport *t)
{
	while (!t->dead && t->wait_head != NONE) {
		struct rreq *r = &t->slots[t->wait_head];
		int got = r->kind == RREQ_READ ? post_read(t, r) :
			  r->kind == RREQ_WRITE ? post_write(t, r) :
			  post_call(t, r);

		if (got < 0)
			return fail_all(t, got);
		if (!got)
			break;
		r->posted = true;
		t->wait_head = r->next;
		if (t->wait_head == NONE)
			t->wait_tail = NONE;
	}
	return t->dead;
}

/* ---- completions ---------------------------------------------------------- */

static int reply(struct dsm_transport *t, const struct dsm_hdr *h,
		 const uint8_t *payload)
{
	struct rreq *r = slot_find(t, h->id & 0xffff, (uint32_t)(h->id >> 16));
	struct dsm_alloc_reply a;
	int status = h->status;

	if (!r || r->kind != RREQ_CALL || !r->posted || r->type != h->type) {
		dsm_warn("%s: dropping unexpected %s reply id %llu", t->addr,
			 dsm_msg_name(h->type), (unsigned long long)h->id);
		return 0;
	}
	/* an ack's credit came with its INVALIDATE, and is spent */
	t->credits += r->type != DSM_MSG_INVAL_ACK;
	t->discards -= r->type == DSM_MSG_DISCARD;
	/* the region's address and rkey: this transport's to keep */
	if (!status && (r->type == DSM_MSG_ALLOC ||
			r->type == DSM_MSG_SHARE_CREATE ||
			r->type == DSM_MSG_SHARE_ATTACH) &&
	    (dsm_alloc_reply_decode(payload, h->len, &a) ||
	     rdma_region_add(t, &a)))
		status = -EPROTO;
	finish(t, r, status, status ? NULL : payload, h->len);
	return 0;
}

/* A received message: a reply or a server message, one whole message. */
static int received(struct dsm_transport *t, uint32_t index, uint32_t len)
{
	const uint8_t *m = rdma_msg_at(t, index);
	struct dsm_hdr h;
	int err = len < DSM_HDR_SIZE ? -EPROTO : dsm_hdr_decode(m, &h);

	if (err == -EPROTONOSUPPORT && h.magic == DSM_PROTO_MAGIC)
		dsm_err("%s: server speaks protocol %u, we speak %u", t->addr,
			h.version, DSM_PROTO_VERSION);
	else if (!err && DSM_HDR_SIZE + h.len != len)
		err = -EPROTO;
	if (err) {
		dsm_err("%s: malformed message from server: %s", t->addr,
			strerror(-err));
		return err;
	}
	if (h.flags & DSM_F_SERVER) {
		/* the server keeps a receive for the ack this one asks for */
		if (dsm_hdr_is_inval(&h))
			t->ack_credits++;
		if (t->ev.server_msg)
			t->ev.server_msg(t->ev.ctx, &h, m + DSM_HDR_SIZE);
	} else if (h.flags & DSM_F_REPLY) {
		reply(t, &h, m + DSM_HDR_SIZE);
	}
	if (t->dead)
		return 0;
	return rdma_post_recv(t, index);
}

/* The server never sees a READ or WRITE of ours: we count them. */
static void count(struct dsm_transport *t, const struct rreq *r)
{
	bool rd = r->kind == RREQ_READ;

	__atomic_add_fetch(rd ? &t->os.reads : &t->os.writes, 1,
			   __ATOMIC_RELAXED);
	__atomic_add_fetch(rd ? &t->os.pages_read : &t->os.pages_written,
			   r->npages, __ATOMIC_RELAXED);
}

static void rt_one_sided(struct dsm_transport *t, struct dsm_one_sided *out)
{
	out->reads = __atomic_load_n(&t->os.reads, __ATOMIC_RELAXED);
	out->writes = __atomic_load_n(&t->os.writes, __ATOMIC_RELAXED);
	out->pages_read = __atomic_load_n(&t->os.pages_read, __ATOMIC_RELAXED);
	out->pages_written = __atomic_load_n(&t->os.pages_written,
					     __ATOMIC_RELAXED);
}

static int completion(struct dsm_transport *t, const struct ibv_wc *wc)
{
	uint32_t tag = wc->wr_id & 3, index = (wc->wr_id >> 2) & 0x3fffffff;
	struct rreq *r;

	account(t, wc);
	if (wc->status != IBV_WC_SUCCESS) {
		dsm_err("%s: %s %s", t->addr, tag == WR_RECV ? "receive" :
			tag == WR_SEND ? "send" : "RDMA READ/WRITE",
			ibv_wc_status_str(wc->status));
		return wc_error(wc->status);
	}
	if (tag == WR_RECV)
		return received(t, index, wc->byte_len);
	if (tag != WR_REQ || !(r = slot_find(t, index, wc->wr_id >> 32)) ||
	    r->wrs)
		return 0;
	count(t, r);
	if (r->kind == RREQ_READ)
		finish(t, r, 0, rdma_arena_at(t, r->arena),
		       r->npages * DSM_PAGE_SIZE);
	else
		finish(t, r, 0, NULL, 0);
	return 0;
}

static int drain(struct dsm_transport *t)
{
	struct ibv_wc wc[POLL_BATCH];
	int n, err;

	do {
		n = ibv_poll_cq(t->cq, POLL_BATCH, wc);
		for (int i = 0; i < n && !t->dead; i++)
			if ((err = completion(t, &wc[i])) < 0)
				return fail_all(t, err);
	} while (n == POLL_BATCH && !t->dead);
	return n < 0 ? fail_all(t, -EIO) : t->dead;
}

/* Take the channel's event if there is one; poll; ask for the next event
 * and poll once more, so that nothing arrives unseen in between.  Busy
 * polling calls this with no event at all: the poll is what counts.
 * Completions go before CM events: a refused READ completes in error
 * at once, and the server's disconnect that follows it must not hide
 * the reason. */
static int rt_progress(struct dsm_transport *t)
{
	struct ibv_cq *cq;
	void *ctx;
	int err;

	if (t->dead)
		return t->dead;
	if (ibv_get_cq_event(t->cc, &cq, &ctx) == 0) {
		t->armed = false;
		if (++t->cq_unacked >= CQ_ACK_BATCH) {
			ibv_ack_cq_events(t->cq, t->cq_unacked);
			t->cq_unacked = 0;
		}
	}
	if (drain(t))
		return t->dead;
	if (!t->armed) {
		if (ibv_req_notify_cq(t->cq, 0))
			return fail_all(t, -EIO);
		t->armed = true;
		if (drain(t))
			return t->dead;
	}
	if ((err = rdma_conn_events(t)) < 0)
		return fail_all(t, err);
	return pump(t);
}

/* ---- the ops ------------------------------------------------------------- */

/* A free slot, waiting for completions if every one is taken: they come
 * back as the server answers, which bounds what a slow server makes us
 * hold. */
static struct rreq *new_request(struct dsm_transport *t, uint8_t kind,
				dsm_done_fn done, void *arg, int *err)
{
	while (!t->dead && !t->closing && !t->nfree) {
		struct pollfd p = { t->epfd, POLLIN, 0 };

		if (pump(t))
			break;
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			fail_all(t, -errno);
		rt_progress(t);
	}
	if (t->dead || t->closing) {
		*err = t->dead ? t->dead : -ECANCELED;
		return NULL;
	}
	return slot_get(t, kind, done, arg);
}

static void enqueue(struct dsm_transport *t, struct rreq *r)
{
	uint32_t s = slot_index(t, r);

	if (t->wait_tail == NONE)
		t->wait_head = s;
	else
		t->slots[t->wait_tail].next = s;
	t->wait_tail = s;
}

static int submit_rw(struct dsm_transport *t, uint8_t kind, uint64_t raddr,
		     uint32_t rkey, uint32_t npages, uint8_t *const *pages,
		     dsm_done_fn done, void *arg)
{
	struct rreq *r;
	int err;

	if (!npages || npages > DSM_MAX_BATCH_PAGES)
		return -EINVAL;
	r = new_request(t, kind, done, arg, &err);
	if (!r)
		return err;
	r->raddr = raddr;
	r->rkey = rkey;
	r->npages = npages;
	r->pages = pages;
	enqueue(t, r);
	return 0;
}

/* A READ or WRITE of a run of region_id's pages, where the ALLOC replies
 * this transport carried say that region lives. */
static int submit_to_region(struct dsm_transport *t, uint8_t kind,
			    uint64_t region_id, uint64_t pool_off,
			    uint32_t npages, uint8_t *const *pages,
			    dsm_done_fn done, void *arg)
{
	uint64_t raddr;
	uint32_t rkey;
	int err = rdma_region_find(t, region_id, pool_off, npages, &raddr,
				   &rkey);

	if (err)
		return err;
	return submit_rw(t, kind, raddr, rkey, npages, pages, done, arg);
}

static int rt_read_pages(struct dsm_transport *t, uint64_t region_id,
			 uint64_t pool_off, uint32_t npages,
			 dsm_done_fn done, void *arg)
{
	return submit_to_region(t, RREQ_READ, region_id, pool_off, npages,
				NULL, done, arg);
}

static int rt_write_pages(struct dsm_transport *t, uint64_t region_id,
			  uint64_t pool_off, uint32_t npages,
			  uint8_t *const *pages, dsm_done_fn done, void *arg)
{
	return submit_to_region(t, RREQ_WRITE, region_id, pool_off, npages,
				pages, done, arg);
}

int dsm_rdma_read_raw(struct dsm_transport *t, uint64_t addr, uint32_t rkey,
		      uint32_t npages, dsm_done_fn done, void *arg)
{
	return submit_rw(t, RREQ_READ, addr, rkey, npages, NULL, done, arg);
}

static int rt_call(struct dsm_transport *t, uint8_t type, const void *body,
		     uint32_t len, dsm_done_fn done, void *arg)
{
	struct dsm_free_req f;
	struct rreq *r;
	int err;

	if (type == DSM_MSG_READ || type == DSM_MSG_WRITE)
		return -EINVAL; /* pages never travel as messages here */
	if (len > sizeof(r->body))
		return -EMSGSIZE;
	r = new_request(t, RREQ_CALL, done, arg, &err);
	if (!r)
		return err;
	r->type = type;
	r->blen = len;
	memcpy(r->body, body, len);
	/* from here on nothing submitted reaches the region */
	if (type == DSM_MSG_FREE && !dsm_free_req_decode(body, len, &f))
		rdma_region_del(t, f.region_id);
	enqueue(t, r);
	return 0;
}

static int rt_flush(struct dsm_transport *t)
{
	return t->dead ? t->dead : pump(t);
}

static int rt_fd(struct dsm_transport *t)
{
	return t->epfd;
}

static int rt_connect(const char *addr, const struct dsm_transport_events *ev,
			struct dsm_transport **out)
{
	struct dsm_transport *t = calloc(1, sizeof(*t));
	int err;

	if (!t)
		return -ENOMEM;
	snprintf(t->addr, sizeof(t->addr), "%s", addr);
	if (ev)
		t->ev = *ev;
	for (uint32_t s = 0; s < RDMA_SLOTS; s++)
		t->free_list[t->nfree++] = RDMA_SLOTS - 1 - s;
	t->wait_head = t->wait_tail = NONE;
	t->credits = DSM_RDMA_CREDITS;
	t->unordered = getenv("DSM_TEST_RDMA_UNORDERED") != NULL;
	err = rdma_conn_open(t, addr);
	if (err) {
		t->closing = true;
		rdma_conn_close(t);
		free(t);
		return err;
	}
	*out = t;
	return 0;
}

static void rt_close(struct dsm_transport *t)
{
	if (!t)
		return;
	t->closing = true;
	fail_all(t, -ECANCELED);
	rdma_conn_close(t);
	rdma_regions_destroy(t);
	free(t);
}

int dsm_rdma_available(void)
{
	struct ibv_device **list;
	int n = 0;

	list = ibv_get_device_list(&n);
	if (list)
		ibv_free_device_list(list);
	return list && n > 0;
}

const struct dsm_transport_ops dsm_rdma_transport = {
	.name = "rdma",
	.poll_progress = true,
	.connect = rt_connect,
	.fd = rt_fd,
	.progress = rt_progress,
	.read_pages = rt_read_pages,
	.write_pages = rt_write_pages,
	.call = rt_call,
	.flush = rt_flush,
	.close = rt_close,
	.one_sided = rt_one_sided,
};
