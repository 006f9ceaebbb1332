/*
 * listen_rdma.h - dsm-server's RDMA listener (room: server protocol).
 *
 * rdma_cm on the same address and port as the TCP listener (port space
 * RDMA_PS_TCP: rdma_cm's ports are its own, so the two never collide).
 * Its event channel is watched on the server's libuv loop; each connect
 * request becomes a session_rdma.
 */
#ifndef DSM_SERVER_LISTEN_RDMA_H
#define DSM_SERVER_LISTEN_RDMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "handler.h"
#include "session.h"

struct rdma_cm_id;
struct rdma_event_channel;

struct listen_rdma {
	struct rdma_event_channel *ec;
	struct rdma_cm_id *id;
	uv_poll_t poll;
	bool polled;             /* poll initialised */
	uv_loop_t *loop;
	struct handler *h;
	struct session_list *sessions;
};

/* Whether this machine has an RDMA device at all: 1, 0, or -errno when
 * the verbs library cannot tell (no /dev/infiniband, say: then 0). */
int listen_rdma_devices(void);

/*
 * Listen on addr (a port of 0 picks one: *port gets the bound port).  0,
 * or -errno with why (one line) saying what failed: no device behind
 * this address, rdma_cm not loaded, the port taken.
 */
int listen_rdma_start(struct listen_rdma *l, uv_loop_t *loop,
		      const struct sockaddr *addr, struct handler *h,
		      struct session_list *all, uint16_t *port, char *why,
		      size_t whylen);
/* Take no new connections; the sessions go on.  Safe if never started. */
void listen_rdma_stop(struct listen_rdma *l);

#endif /* DSM_SERVER_LISTEN_RDMA_H */
