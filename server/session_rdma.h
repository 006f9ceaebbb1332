/*
 * session_rdma.h - a session over an RDMA connection (room: server
 * protocol).
 *
 * One RC queue pair per client.  Control messages (every request but
 * READ and WRITE, their replies, and the server's GOODBYE, DRAINING,
 * INVALIDATE and RECALL) travel as SEND/RECV, one framed message per
 * SEND; pages never do: the client reads and writes its regions
 * one-sidedly, at the address and with the rkey its ALLOC (or SHARE)
 * reply carried.
 *
 * Isolation: each connection has a protection domain of its own, and each
 * region is registered in it on its own at ALLOC (a shared region at
 * SHARE_CREATE or SHARE_ATTACH, once per holder), so an rkey works on
 * this connection's queue pair alone and covers exactly one region.  The
 * registration ends (ibv_dereg_mr) before the region's extent returns to
 * the pool, or the holder lets go: at FREE, when the session ends, and
 * when a lease expires.
 *
 * What a peer costs is bounded whoever it is: DSM_RDMA_CREDITS receive
 * buffers (and DSM_RDMA_INVALS more for acks) and a few more send buffers
 * of DSM_RDMA_MSG_MAX bytes, one queue pair, one completion queue.  A
 * request is handled only when a send buffer is free for its reply, and
 * its receive buffer is posted again only after that, so a peer that
 * never takes its replies stops being served, and costs nothing more.
 * Deferred replies and server messages wait in a bounded queue.
 */
#ifndef DSM_SERVER_SESSION_RDMA_H
#define DSM_SERVER_SESSION_RDMA_H

#include <rdma/rdma_cma.h>
#include <uv.h>

#include "session.h"

/*
 * A connect request arrived for id (its event already acknowledged):
 * take the connection over (id moves to an event channel of its own) and
 * accept it.  req is the request's connection parameters.  On failure the
 * request is rejected and id destroyed.  0 or -errno.
 */
int session_rdma_accept(uv_loop_t *loop, struct rdma_cm_id *id,
			const struct rdma_conn_param *req, struct handler *h,
			struct session_list *all);

#endif /* DSM_SERVER_SESSION_RDMA_H */
