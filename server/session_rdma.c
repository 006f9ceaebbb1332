/*
 * session_rdma.c - see session_rdma.h (room: server protocol).
 *
 * Life of an RDMA session: set up (its own event channel, protection
 * domain, completion queue and queue pair; receives posted) -> accepted
 * -> handling SENDs -> closing.  Closing disconnects (the queue pair goes
 * to the error state, so nothing one-sided reaches the pool any more),
 * stops watching both channels, and only once libuv has let go of them
 * frees the client's regions (deregistering each), then every verbs
 * object, in the reverse order of their making.
 *
 * Both descriptors (the connection's CM event channel, its completion
 * channel) are watched on the server's one libuv loop with uv_poll: no
 * thread of its own, like every other connection.
 */
#include "session_rdma.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Receives posted: a client's credits and its INVAL_ACKs (proto.h,
 * DSM_RDMA_INVALS), and two more, because a receive is posted again only
 * after the reply to its request was, and the client may use the credit
 * that reply gives back before that. */
#define RECV_N (DSM_RDMA_CREDITS + DSM_RDMA_INVALS + 2)
/* replies, INVALIDATEs and RECALLs, and GOODBYE and DRAINING */
#define SEND_N (RECV_N + DSM_RDMA_INVALS + 4)
#define NBUF (RECV_N + SEND_N)   /* message buffers: receives first */
#define CQ_ACK_BATCH 64          /* completion events acknowledged at once */
#define POLL_BATCH 16
/* Local ACK timeout, 4.096 us << 14 = 67 ms, as the client's (see
 * RDMA_ACK_TIMEOUT in transport/rdma.h: rdma_cm's default is ~2 s). */
#define ACK_TIMEOUT 14
/* Messages waiting for a send buffer, or (INVALIDATE, RECALL) for the
 * client to acknowledge earlier ones: 152 bytes each, 10 MiB at most.
 * Replies are bounded by the client's requests; INVALIDATEs by the ops
 * on the regions it holds (64 each, shared.h), which only a client that
 * holds thousands of contended regions and stops acknowledging could
 * push this far.  A session past it is closed rather than let it grow
 * (its copies are forfeit, as for a holder that does not acknowledge). */
#define OUTQ_MAX 65536u

struct deferred {
	uint32_t slot, len;      /* a request waiting for a send buffer */
};

/* A message that could not be posted yet. */
struct outmsg {
	struct outmsg *next;
	uint64_t seq;            /* its place among every message made */
	uint32_t len;            /* header included */
	uint8_t data[DSM_RDMA_MSG_MAX];
};

/* One FIFO of them. */
struct outq {
	struct outmsg *head, *tail;
};

struct session_rdma {
	struct session s;        /* first: the ops get a struct session */
	struct rdma_cm_id *id;
	struct rdma_event_channel *ec;
	struct ibv_pd *pd;
	struct ibv_comp_channel *cc;
	struct ibv_cq *cq;
	uint8_t *buf;            /* NBUF message buffers */
	struct ibv_mr *buf_mr;
	uv_poll_t cm_poll, cq_poll;
	bool cm_polled, cq_polled; /* initialised: libuv holds them */
	int polls;               /* poll handles libuv still holds */
	uint32_t send_free[SEND_N], nsend_free;
	struct deferred deferred[RECV_N];
	uint32_t ndeferred;
	/* Waiting to be posted: replies and other messages (for a send
	 * buffer), and INVALIDATEs and RECALLs (also for acks), each in
	 * order; see srdma_send. */
	struct outq replies, invals;
	uint64_t seq;            /* messages made so far */
	uint32_t nqueued;
	uint32_t invals_out;     /* INVALIDATEs and RECALLs not acknowledged */
	unsigned cq_unacked;     /* completion events not yet acknowledged */
	bool linked;             /* on the session list */
	bool after_send;         /* close once every send completed */
	bool torn_down;          /* closing: the handles are going */
};

static void send_queued(struct session_rdma *r);

static struct session_rdma *rdma_of(struct session *s)
{
	return (struct session_rdma *)s;
}

static uint8_t *slot_at(struct session_rdma *r, uint32_t slot)
{
	return r->buf + (size_t)slot * DSM_RDMA_MSG_MAX;
}

/* ---- teardown ---------------------------------------------------------- */

static void outq_free(struct outq *q)
{
	while (q->head) {
		struct outmsg *m = q->head;

		q->head = m->next;
		free(m);
	}
	q->tail = NULL;
}

/* Every verbs object, in the reverse order of setup; any may be missing
 * (a setup that failed half way).  The regions go first: their
 * registrations live in the protection domain. */
static void destroy(struct session_rdma *r)
{
	if (r->linked)
		session_unlink(&r->s);
	if (r->id && r->id->qp)
		rdma_destroy_qp(r->id);
	if (r->cq) {
		ibv_ack_cq_events(r->cq, r->cq_unacked);
		if (ibv_destroy_cq(r->cq))
			dsm_warn("client %s: ibv_destroy_cq failed", r->s.peer);
	}
	if (r->cc && ibv_destroy_comp_channel(r->cc))
		dsm_warn("client %s: ibv_destroy_comp_channel failed", r->s.peer);
	if (r->buf_mr && ibv_dereg_mr(r->buf_mr))
		dsm_warn("client %s: ibv_dereg_mr failed", r->s.peer);
	free(r->buf);
	if (r->pd && ibv_dealloc_pd(r->pd))
		dsm_warn("client %s: ibv_dealloc_pd failed (a region still "
			 "registered?)", r->s.peer);
	if (r->id && rdma_destroy_id(r->id))
		dsm_warn("client %s: rdma_destroy_id failed", r->s.peer);
	if (r->ec)
		rdma_destroy_event_channel(r->ec);
	outq_free(&r->replies);
	outq_free(&r->invals);
	free(r);
}

static void on_poll_closed(uv_handle_t *h)
{
	struct session_rdma *r = h->data;

	if (--r->polls == 0)
		destroy(r);
}

/* Disconnect first: the queue pair leaves the ready states at once, so
 * no READ or WRITE of the client's reaches the pool while the regions
 * are being freed. */
static void srdma_close(struct session *s)
{
	struct session_rdma *r = rdma_of(s);

	s->closing = true;
	if (r->torn_down)
		return;
	r->torn_down = true;
	rdma_disconnect(r->id); /* fails if never connected: nothing to do */
	if (r->polls == 0) {
		destroy(r);
		return;
	}
	if (r->cm_polled)
		uv_close((uv_handle_t *)&r->cm_poll, on_poll_closed);
	if (r->cq_polled)
		uv_close((uv_handle_t *)&r->cq_poll, on_poll_closed);
}

/* Closing after the last send: once nothing is in flight or waiting. */
static void maybe_finish(struct session_rdma *r)
{
	if (r->after_send && r->nsend_free == SEND_N && !r->replies.head &&
	    !r->invals.head)
		srdma_close(&r->s);
}

static void srdma_close_after_send(struct session *s)
{
	struct session_rdma *r = rdma_of(s);

	s->closing = true;
	r->after_send = true;
	send_queued(r); /* its INVALIDATEs will never be acknowledged */
	maybe_finish(r);
}

/* ---- sending ----------------------------------------------------------- */

static int post_send(struct session_rdma *r, uint32_t slot, uint32_t len)
{
	struct ibv_sge sge = { (uintptr_t)slot_at(r, slot), len,
			       r->buf_mr->lkey };
	struct ibv_send_wr wr = { .wr_id = slot, .sg_list = &sge,
				  .num_sge = 1, .opcode = IBV_WR_SEND,
				  .send_flags = IBV_SEND_SIGNALED }, *bad;
	int err = ibv_post_send(r->id->qp, &wr, &bad);

	if (err)
		dsm_debug("client %s: ibv_post_send: %s", r->s.peer,
			  strerror(err));
	return -err;
}

/* msg (len bytes, framed) into a send buffer and onto the wire. */
static int post_msg(struct session_rdma *r, const uint8_t *msg, uint32_t len,
		    bool inval)
{
	uint32_t slot = r->send_free[--r->nsend_free];
	int err;

	memcpy(slot_at(r, slot), msg, len);
	err = post_send(r, slot, len);
	if (err)
		r->send_free[r->nsend_free++] = slot;
	else
		r->invals_out += inval;
	return err;
}

static int queue_msg(struct session_rdma *r, struct outq *q,
		     const uint8_t *msg, uint32_t len, uint64_t seq)
{
	struct outmsg *m;

	if (r->nqueued >= OUTQ_MAX) {
		dsm_warn("client %s: %u messages wait for it: closing",
			 r->s.peer, r->nqueued);
		return -ENOBUFS;
	}
	m = malloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	*m = (struct outmsg){ .seq = seq, .len = len };
	memcpy(m->data, msg, len);
	if (q->tail)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
	r->nqueued++;
	return 0;
}

/* May an INVALIDATE or RECALL made as message seq go?  Only once every
 * message made before it has (a grant before an INVALIDATE of the same
 * page must arrive first), and while the client has receives for it:
 * DSM_RDMA_INVALS unacknowledged at most. */
static bool inval_may_go(const struct session_rdma *r, uint64_t seq)
{
	return r->nsend_free && r->invals_out < DSM_RDMA_INVALS &&
	       (!r->replies.head || r->replies.head->seq > seq);
}

/*
 * Replies, deferred replies (ACQUIRE, LOCK, BARRIER) and server messages
 * go in the order they were made, except that a reply never waits for
 * the client to acknowledge INVALIDATEs: an ack of the client's may be
 * queued behind a request whose reply that would hold up (a DISCARD, a
 * call waiting for a credit), and neither would move.  A reply may pass
 * a waiting INVALIDATE safely: while it is unacknowledged its pages are
 * busy, so no grant of them to this client can be made behind it.
 */
static int srdma_send(struct session *s, const struct reply *m)
{
	struct session_rdma *r = rdma_of(s);
	uint32_t len = DSM_HDR_SIZE + m->hdr.len;
	uint8_t msg[DSM_RDMA_MSG_MAX];
	uint64_t seq = ++r->seq;

	if (len > DSM_RDMA_MSG_MAX)
		return -EMSGSIZE; /* pages never travel as messages here */
	dsm_hdr_encode(&m->hdr, msg);
	if (m->hdr.len)
		memcpy(msg + DSM_HDR_SIZE, m->data, m->hdr.len);
	if (!dsm_hdr_is_inval(&m->hdr)) {
		if (!r->replies.head && r->nsend_free)
			return post_msg(r, msg, len, false);
		return queue_msg(r, &r->replies, msg, len, seq);
	}
	if (!r->invals.head && inval_may_go(r, seq))
		return post_msg(r, msg, len, true);
	return queue_msg(r, &r->invals, msg, len, seq);
}

/* The head of q, posted and freed.  0 or the post's error. */
static int post_head(struct session_rdma *r, struct outq *q, bool inval)
{
	struct outmsg *m = q->head;
	int err = 0;

	q->head = m->next;
	if (!q->head)
		q->tail = NULL;
	r->nqueued--;
	/* a session closing after its last send reads no acks any more:
	 * its INVALIDATEs are dropped (its end counts as their acks) */
	if (!(inval && r->after_send))
		err = post_msg(r, m->data, m->len, inval);
	free(m);
	return err;
}

/* Post what waits, each queue in order, while it may go. */
static void send_queued(struct session_rdma *r)
{
	bool more = true;

	while (more) {
		struct outmsg *i = r->invals.head;
		int err = 0;

		more = false;
		if (r->replies.head && r->nsend_free) {
			err = post_head(r, &r->replies, false);
			more = true;
		} else if (i && (r->after_send || inval_may_go(r, i->seq))) {
			err = post_head(r, &r->invals, true);
			more = true;
		}
		if (err < 0) {
			session_close(&r->s);
			return;
		}
	}
}

/* ---- receiving --------------------------------------------------------- */

static int post_recv(struct session_rdma *r, uint32_t slot)
{
	struct ibv_sge sge = { (uintptr_t)slot_at(r, slot), DSM_RDMA_MSG_MAX,
			       r->buf_mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = slot, .sg_list = &sge,
				  .num_sge = 1 }, *bad;
	int err = ibv_post_recv(r->id->qp, &wr, &bad);

	if (err)
		dsm_debug("client %s: ibv_post_recv: %s", r->s.peer,
			  strerror(err));
	return -err;
}

/* One SEND is one whole message: anything else means the peer does not
 * speak this protocol, and the connection ends (after the error reply,
 * if the handler gave one). */
static void handle(struct session_rdma *r, uint32_t slot, uint32_t len)
{
	struct dsm_hdr h;
	size_t need, used;

	/* an acknowledgement frees a receive of the client's for the next
	 * INVALIDATE, whatever the handler makes of it */
	if (len >= DSM_HDR_SIZE && !dsm_hdr_decode(slot_at(r, slot), &h) &&
	    h.type == DSM_MSG_INVAL_ACK && !h.flags && r->invals_out)
		r->invals_out--;
	used = session_request(&r->s, slot_at(r, slot), len, &need);
	if (r->s.closing)
		return;
	if (used != len) {
		dsm_info("client %s sent %u bytes that are not one message: "
			 "closing", r->s.peer, len);
		session_close(&r->s);
		return;
	}
	if (post_recv(r, slot) < 0)
		session_close(&r->s);
	else
		send_queued(r);
}

static void on_recv(struct session_rdma *r, uint32_t slot, uint32_t len)
{
	if (r->s.closing)
		return;
	/* keep the reply's buffer before taking the request: without one
	 * the request waits, and its receive stays unposted */
	if (!r->nsend_free || r->ndeferred) {
		r->deferred[r->ndeferred++] = (struct deferred){ slot, len };
		return;
	}
	handle(r, slot, len);
}

static void handle_deferred(struct session_rdma *r)
{
	while (r->ndeferred && r->nsend_free && !r->s.closing) {
		struct deferred d = r->deferred[0];

		memmove(r->deferred, r->deferred + 1,
			--r->ndeferred * sizeof(r->deferred[0]));
		handle(r, d.slot, d.len);
	}
}

static void on_send_done(struct session_rdma *r, uint32_t slot)
{
	r->send_free[r->nsend_free++] = slot;
	send_queued(r);
	handle_deferred(r);
	maybe_finish(r);
}

/* ---- completions and CM events ----------------------------------------- */

static bool completion(struct session_rdma *r, const struct ibv_wc *wc)
{
	if (wc->status != IBV_WC_SUCCESS) {
		if (!r->s.closing)
			dsm_debug("client %s: %s: closing", r->s.peer,
				  ibv_wc_status_str(wc->status));
		session_close(&r->s);
		return false;
	}
	if (wc->wr_id >= NBUF)
		return true; /* not ours: cannot happen */
	if (wc->opcode == IBV_WC_RECV && wc->wr_id < RECV_N)
		on_recv(r, wc->wr_id, wc->byte_len);
	else if (wc->opcode == IBV_WC_SEND && wc->wr_id >= RECV_N)
		on_send_done(r, wc->wr_id);
	return !r->torn_down;
}

static void drain_cq(struct session_rdma *r)
{
	struct ibv_wc wc[POLL_BATCH];
	int n;

	do {
		n = ibv_poll_cq(r->cq, POLL_BATCH, wc);
		for (int i = 0; i < n; i++)
			if (!completion(r, &wc[i]))
				return;
	} while (n == POLL_BATCH);
	if (n < 0)
		session_close(&r->s);
}

/* The completion channel is readable: take the event, ask for the next
 * one, then poll, so no completion slips between the two. */
static void on_cq_ready(uv_poll_t *p, int status, int events)
{
	struct session_rdma *r = p->data;
	struct ibv_cq *cq;
	void *ctx;

	if (r->torn_down)
		return;
	if (ibv_get_cq_event(r->cc, &cq, &ctx) == 0 &&
	    ++r->cq_unacked >= CQ_ACK_BATCH) {
		ibv_ack_cq_events(r->cq, r->cq_unacked);
		r->cq_unacked = 0;
	}
	if (ibv_req_notify_cq(r->cq, 0)) {
		session_close(&r->s);
		return;
	}
	drain_cq(r);
}

static void on_cm_ready(uv_poll_t *p, int status, int events)
{
	struct session_rdma *r = p->data;
	struct rdma_cm_event *ev;
	enum rdma_cm_event_type type;

	while (!r->torn_down && rdma_get_cm_event(r->ec, &ev) == 0) {
		type = ev->event;
		rdma_ack_cm_event(ev);
		if (type == RDMA_CM_EVENT_ESTABLISHED) {
			dsm_debug("client %s connected over RDMA", r->s.peer);
		} else if (type == RDMA_CM_EVENT_DISCONNECTED ||
			   type == RDMA_CM_EVENT_DEVICE_REMOVAL ||
			   type == RDMA_CM_EVENT_CONNECT_ERROR ||
			   type == RDMA_CM_EVENT_UNREACHABLE) {
			dsm_debug("client %s: %s", r->s.peer,
				  rdma_event_str(type));
			session_close(&r->s);
		}
	}
}

/* ---- the regions' registrations ---------------------------------------- */

static int region_added(void *ctx, uint8_t *base, uint64_t size, void **reg,
			uint64_t *addr, uint32_t *rkey)
{
	struct session_rdma *r = ctx;
	struct ibv_mr *mr = ibv_reg_mr(r->pd, base, size,
				       IBV_ACCESS_LOCAL_WRITE |
				       IBV_ACCESS_REMOTE_READ |
				       IBV_ACCESS_REMOTE_WRITE);
	int err;

	if (!mr) {
		err = errno ? -errno : -ENOMEM;
		dsm_warn("client %s: cannot register %llu bytes for RDMA: %s%s",
			 r->s.peer, (unsigned long long)size,
			 strerror(-err), err == -ENOMEM || err == -EPERM ?
			 " (registered memory is locked: is the server's "
			 "RLIMIT_MEMLOCK, ulimit -l, large enough?)" : "");
		return err;
	}
	*reg = mr;
	*addr = (uintptr_t)base;
	*rkey = mr->rkey;
	return 0;
}

/*
 * If deregistration ever failed, the rkey would stay valid on pages the
 * pool is about to hand to someone else.  Only this connection's queue
 * pair can use it (the protection domain is the connection's), so
 * moving that queue pair to the error state closes the hole; the
 * session then ends.
 */
static void region_removed(void *ctx, void *reg)
{
	struct session_rdma *r = ctx;
	struct ibv_qp_attr err_state = { .qp_state = IBV_QPS_ERR };
	int err = ibv_dereg_mr(reg);

	if (!err)
		return;
	dsm_err("client %s: ibv_dereg_mr failed (%s): cutting the "
		"connection off before its region's memory is reused",
		r->s.peer, strerror(err));
	if (ibv_modify_qp(r->id->qp, &err_state, IBV_QP_STATE))
		dsm_err("client %s: cannot stop its queue pair either", r->s.peer);
	session_close(&r->s);
}

static const struct region_hooks rdma_hooks = { region_added, region_removed };

/* ---- setup ------------------------------------------------------------- */

static int nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

/* The connection's own CM events and completions, on their own fds. */
static int make_channels(struct session_rdma *r)
{
	r->ec = rdma_create_event_channel();
	if (!r->ec)
		return -errno;
	if (rdma_migrate_id(r->id, r->ec))
		return -errno;
	r->cc = ibv_create_comp_channel(r->id->verbs);
	if (!r->cc)
		return -errno;
	if (nonblocking(r->ec->fd) || nonblocking(r->cc->fd))
		return -errno;
	return 0;
}

static int make_qp(struct session_rdma *r)
{
	struct ibv_qp_init_attr qa = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = SEND_N, .max_recv_wr = RECV_N,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};

	r->pd = ibv_alloc_pd(r->id->verbs);
	if (!r->pd)
		return -errno;
	r->cq = ibv_create_cq(r->id->verbs, NBUF, r, r->cc, 0);
	if (!r->cq)
		return -errno;
	if (ibv_req_notify_cq(r->cq, 0))
		return -EIO;
	qa.send_cq = qa.recv_cq = r->cq;
	if (rdma_create_qp(r->id, r->pd, &qa))
		return -errno;
	return 0;
}

static int make_buffers(struct session_rdma *r)
{
	int err;

	r->buf = calloc(NBUF, DSM_RDMA_MSG_MAX);
	if (!r->buf)
		return -ENOMEM;
	r->buf_mr = ibv_reg_mr(r->pd, r->buf, NBUF * DSM_RDMA_MSG_MAX,
			       IBV_ACCESS_LOCAL_WRITE);
	if (!r->buf_mr)
		return -errno;
	for (uint32_t i = 0; i < RECV_N; i++)
		if ((err = post_recv(r, i)) < 0)
			return err;
	for (uint32_t i = 0; i < SEND_N; i++)
		r->send_free[r->nsend_free++] = RECV_N + i;
	return 0;
}

static int start_polls(struct session_rdma *r, uv_loop_t *loop)
{
	int err = uv_poll_init(loop, &r->cm_poll, r->ec->fd);

	if (err)
		return err;
	r->cm_poll.data = r;
	r->cm_polled = true;
	r->polls++;
	err = uv_poll_init(loop, &r->cq_poll, r->cc->fd);
	if (err)
		return err;
	r->cq_poll.data = r;
	r->cq_polled = true;
	r->polls++;
	err = uv_poll_start(&r->cm_poll, UV_READABLE, on_cm_ready);
	if (!err)
		err = uv_poll_start(&r->cq_poll, UV_READABLE, on_cq_ready);
	return err;
}

static void name_peer(struct session_rdma *r)
{
	struct sockaddr *sa = rdma_get_peer_addr(r->id);
	char host[INET6_ADDRSTRLEN] = "?";
	uint16_t port = 0;

	if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		port = ntohs(a->sin6_port);
	} else if (sa->sa_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		port = ntohs(a->sin_port);
	}
	snprintf(r->s.peer, sizeof(r->s.peer), "%s:%u", host, port);
}

/* As many READs in flight as the client asks for and the device allows.
 * rdma_cm hands the request's values over from our side: its
 * responder_resources is the client's initiator depth. */
static int accept_conn(struct session_rdma *r, const struct rdma_conn_param *req)
{
	struct rdma_conn_param p = { .rnr_retry_count = 7, .retry_count = 7 };
	struct ibv_device_attr da;

	if (ibv_query_device(r->id->verbs, &da))
		return -EIO;
	if (rdma_set_option(r->id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT,
			    &(uint8_t){ ACK_TIMEOUT }, sizeof(uint8_t)))
		dsm_debug("client %s: cannot shorten the ACK timeout: %s",
			  r->s.peer, strerror(errno));
	p.responder_resources = req->responder_resources < da.max_qp_rd_atom ?
				req->responder_resources : da.max_qp_rd_atom;
	return rdma_accept(r->id, &p) ? -errno : 0;
}

static const struct session_ops rdma_ops = {
	.name = "rdma",
	.send = srdma_send,
	.close_after_send = srdma_close_after_send,
	.close = srdma_close,
};

int session_rdma_accept(uv_loop_t *loop, struct rdma_cm_id *id,
			const struct rdma_conn_param *req, struct handler *h,
			struct session_list *all)
{
	struct session_rdma *r = NULL;
	int err = session_admit(all);

	if (err) /* counted there; a flood must not flood the log too */
		goto out_reject;
	err = -ENOMEM;
	r = calloc(1, sizeof(*r));
	if (!r)
		goto out_reject;
	r->id = id;
	id->context = r;
	name_peer(r);
	err = make_channels(r);
	if (!err)
		err = make_qp(r);
	if (!err)
		err = make_buffers(r);
	if (err)
		goto out_reject;
	/* From here on the session is torn down only through srdma_close. */
	session_link(&r->s, &rdma_ops, h, all);
	r->linked = true;
	handler_session_hooks(&r->s.hs, &rdma_hooks, r);
	err = start_polls(r, loop);
	if (!err)
		err = accept_conn(r, req);
	if (err)
		session_close(&r->s);
	return err;

out_reject:
	if (err != -EUSERS)
		dsm_warn("cannot take an RDMA connection from %s: %s",
			 r ? r->s.peer : "?", strerror(-err));
	rdma_reject(id, NULL, 0);
	if (r)
		destroy(r);
	else
		rdma_destroy_id(id);
	return err;
}
