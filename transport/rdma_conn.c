/*
 * rdma_conn.c - an RDMA connection's life: connect, watch, tear down
 * (room: transport).
 *
 * Connecting takes four steps through rdma_cm (resolve the address to a
 * device, resolve the route, create the queue pair, connect), each
 * answered by an event on the event channel.  All of them share one
 * deadline, dsm_connect_ms(): a server that is down, a port nobody
 * listens on, an address no RDMA device reaches, each ends in an error
 * that says which step failed, never in a wait without end.
 *
 * fd() is an epoll descriptor holding both the event channel (a
 * disconnect) and the completion channel (completions), so the engine's
 * one poll loop sees either.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"
#include "rdma.h"
#include "util.h"

#define INIT_DEPTH 16u      /* RDMA READs in flight the server answers */
#define QUIESCE_MS 200      /* how long teardown waits for flushed WRs */

static int nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = dsm_now_ns();

	return now >= deadline ? 0 : (int)((deadline - now) / 1000000) + 1;
}

/* What a failed step's event means, as an errno. */
static int event_error(enum rdma_cm_event_type type)
{
	switch (type) {
	case RDMA_CM_EVENT_ADDR_ERROR: return -EHOSTUNREACH;
	case RDMA_CM_EVENT_ROUTE_ERROR: return -ENETUNREACH;
	case RDMA_CM_EVENT_REJECTED: return -ECONNREFUSED;
	case RDMA_CM_EVENT_UNREACHABLE: return -EHOSTUNREACH;
	case RDMA_CM_EVENT_DEVICE_REMOVAL: return -ENODEV;
	default: return -ECONNABORTED;
	}
}

/* The event that ends step `what`, by the deadline. */
static int wait_event(struct dsm_transport *t, enum rdma_cm_event_type want,
		      uint64_t deadline, const char *what)
{
	struct pollfd p = { t->ec->fd, POLLIN, 0 };
	struct rdma_cm_event *ev;
	enum rdma_cm_event_type got;
	int n;

	for (;;) {
		if (rdma_get_cm_event(t->ec, &ev) == 0)
			break;
		if (errno != EAGAIN)
			return -errno;
		n = poll(&p, 1, remaining_ms(deadline));
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n == 0) {
			dsm_err("%s: no answer while %s within %u ms", t->addr,
				what, dsm_connect_ms());
			return -ETIMEDOUT;
		}
	}
	got = ev->event;
	rdma_ack_cm_event(ev);
	if (got == want)
		return 0;
	dsm_err("%s: %s failed: %s", t->addr, what, rdma_event_str(got));
	return event_error(got);
}

static int resolve(struct dsm_transport *t, const char *addr,
		   uint64_t deadline)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	char host[100], port[8];
	uint16_t p;
	int err;

	if (dsm_parse_hostport(addr, host, sizeof(host), &p))
		return -EINVAL;
	snprintf(port, sizeof(port), "%u", p);
	if (getaddrinfo(host, port, &hints, &res))
		return -EHOSTUNREACH;
	err = rdma_resolve_addr(t->id, NULL, res->ai_addr,
				remaining_ms(deadline)) ? -errno : 0;
	freeaddrinfo(res);
	if (!err)
		err = wait_event(t, RDMA_CM_EVENT_ADDR_RESOLVED, deadline,
				 "resolving the address to an RDMA device");
	if (!err)
		err = rdma_resolve_route(t->id, remaining_ms(deadline)) ?
			      -errno : 0;
	if (!err)
		err = wait_event(t, RDMA_CM_EVENT_ROUTE_RESOLVED, deadline,
				 "resolving the route");
	return err;
}

/* The queue pair, its one completion queue, and the protection domain
 * every registration of this connection lives in. */
static int make_qp(struct dsm_transport *t)
{
	struct ibv_qp_init_attr qa = { .qp_type = IBV_QPT_RC, .sq_sig_all = 1 };
	struct ibv_device_attr da;

	if (ibv_query_device(t->id->verbs, &da))
		return -EIO;
	t->max_sge = (uint32_t)da.max_sge < RDMA_MAX_SGE ? (uint32_t)da.max_sge
							 : RDMA_MAX_SGE;
	t->pd = ibv_alloc_pd(t->id->verbs);
	t->cc = t->pd ? ibv_create_comp_channel(t->id->verbs) : NULL;
	if (!t->cc || nonblocking(t->cc->fd))
		return -errno;
	t->cq = ibv_create_cq(t->id->verbs, RDMA_SQ_DEPTH + RDMA_RECV_N, t,
			      t->cc, 0);
	if (!t->cq)
		return -errno;
	qa.send_cq = qa.recv_cq = t->cq;
	qa.cap = (struct ibv_qp_cap){ .max_send_wr = RDMA_SQ_DEPTH,
				      .max_recv_wr = RDMA_RECV_N,
				      .max_send_sge = t->max_sge,
				      .max_recv_sge = 1 };
	if (rdma_create_qp(t->id, t->pd, &qa))
		return -errno;
	t->sq_free = RDMA_SQ_DEPTH;
	return 0;
}

static int do_connect(struct dsm_transport *t, uint64_t deadline)
{
	struct rdma_conn_param p = { .initiator_depth = INIT_DEPTH,
				     .retry_count = 7, .rnr_retry_count = 7 };
	struct ibv_device_attr da;

	if (ibv_query_device(t->id->verbs, &da))
		return -EIO;
	if ((uint32_t)da.max_qp_init_rd_atom < p.initiator_depth)
		p.initiator_depth = da.max_qp_init_rd_atom;
	if (rdma_connect(t->id, &p))
		return -errno;
	return wait_event(t, RDMA_CM_EVENT_ESTABLISHED, deadline,
			  "connecting (is dsm-server serving RDMA there?)");
}

static int make_epoll(struct dsm_transport *t)
{
	struct epoll_event e = { .events = EPOLLIN };

	t->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (t->epfd < 0 || epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->ec->fd, &e) ||
	    epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->cc->fd, &e))
		return -errno;
	return 0;
}

int rdma_conn_open(struct dsm_transport *t, const char *addr)
{
	uint64_t deadline = dsm_now_ns() + dsm_connect_ms() * 1000000ULL;
	int err;

	t->epfd = -1;
	t->ec = rdma_create_event_channel();
	if (!t->ec || nonblocking(t->ec->fd))
		return errno ? -errno : -ENODEV;
	if (rdma_create_id(t->ec, &t->id, t, RDMA_PS_TCP))
		return -errno;
	if (rdma_set_option(t->id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT,
			    &(uint8_t){ RDMA_ACK_TIMEOUT }, sizeof(uint8_t)))
		dsm_debug("%s: cannot shorten the ACK timeout: %s", t->addr,
			  strerror(errno));
	err = resolve(t, addr, deadline);
	if (!err)
		err = make_qp(t);
	if (!err)
		err = rdma_mem_init(t);
	if (!err)
		err = do_connect(t, deadline);
	if (!err)
		err = make_epoll(t);
	if (err)
		return err;
	t->connected = true;
	if (ibv_req_notify_cq(t->cq, 0))
		return -EIO;
	t->armed = true;
	return 0;
}

int rdma_conn_events(struct dsm_transport *t)
{
	struct rdma_cm_event *ev;
	enum rdma_cm_event_type type;
	int err = 0;

	while (!err && rdma_get_cm_event(t->ec, &ev) == 0) {
		type = ev->event;
		rdma_ack_cm_event(ev);
		if (type == RDMA_CM_EVENT_DISCONNECTED) {
			dsm_warn("%s: the server disconnected", t->addr);
			err = -ECONNRESET;
		} else if (type == RDMA_CM_EVENT_DEVICE_REMOVAL) {
			dsm_err("%s: the RDMA device went away", t->addr);
			err = -ENODEV;
		} else {
			dsm_debug("%s: %s", t->addr, rdma_event_str(type));
		}
	}
	return err;
}

/*
 * In the error state the queue pair executes nothing more, and every
 * posted work request completes (flushed).  Waiting for those
 * completions before the buffers they name are handed back means the
 * device never reads or writes memory that has a new owner.
 */
void rdma_conn_quiesce(struct dsm_transport *t,
		       void (*complete_fn)(struct dsm_transport *,
					   const struct ibv_wc *))
{
	struct ibv_qp_attr err_state = { .qp_state = IBV_QPS_ERR };
	uint64_t until = dsm_now_ns() + QUIESCE_MS * 1000000ULL;
	struct ibv_wc wc[16];
	int n;

	if (!t->id || !t->id->qp)
		return;
	if (ibv_modify_qp(t->id->qp, &err_state, IBV_QP_STATE))
		dsm_warn("%s: cannot stop the queue pair", t->addr);
	while (t->posted_wrs || t->nsend_free < RDMA_SEND_N) {
		n = ibv_poll_cq(t->cq, 16, wc);
		for (int i = 0; i < n; i++)
			complete_fn(t, &wc[i]);
		if (n > 0)
			continue;
		if (n < 0 || dsm_now_ns() > until)
			break;
		sched_yield();
	}
}

void rdma_conn_close(struct dsm_transport *t)
{
	if (t->connected)
		rdma_disconnect(t->id);
	if (t->id && t->id->qp)
		rdma_destroy_qp(t->id);
	rdma_mem_destroy(t); /* registrations go before their domain */
	if (t->cq) {
		ibv_ack_cq_events(t->cq, t->cq_unacked);
		if (ibv_destroy_cq(t->cq))
			dsm_warn("%s: ibv_destroy_cq failed", t->addr);
	}
	if (t->cc && ibv_destroy_comp_channel(t->cc))
		dsm_warn("%s: ibv_destroy_comp_channel failed", t->addr);
	if (t->pd && ibv_dealloc_pd(t->pd))
		dsm_warn("%s: ibv_dealloc_pd failed", t->addr);
	if (t->id && rdma_destroy_id(t->id))
		dsm_warn("%s: rdma_destroy_id failed", t->addr);
	if (t->ec)
		rdma_destroy_event_channel(t->ec);
	if (t->epfd >= 0)
		close(t->epfd);
}
