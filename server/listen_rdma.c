/*
 * listen_rdma.c - see listen_rdma.h (room: server protocol).
 *
 * Only connect requests arrive on the listener's event channel: each new
 * connection moves to a channel of its own before it is accepted
 * (session_rdma.c), so its later events never come here, and the
 * listener can stop (at shutdown) while its connections go on.
 */
#include "listen_rdma.h"

#include <errno.h>
#include <fcntl.h>
#include <rdma/rdma_cma.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "session_rdma.h"

#define BACKLOG 128

int listen_rdma_devices(void)
{
	struct ibv_device **list;
	int n = 0;

	list = ibv_get_device_list(&n);
	if (!list)
		return 0; /* no verbs in this kernel, or no device file */
	ibv_free_device_list(list);
	return n > 0;
}

static void on_event(uv_poll_t *p, int status, int events)
{
	struct listen_rdma *l = p->data;
	struct rdma_cm_event *ev;

	while (l->id && rdma_get_cm_event(l->ec, &ev) == 0) {
		enum rdma_cm_event_type type = ev->event;
		struct rdma_conn_param req = ev->param.conn;
		struct rdma_cm_id *id = ev->id;

		/* acknowledged before the session takes the id over:
		 * rdma_migrate_id waits for its events to be */
		rdma_ack_cm_event(ev);
		if (type == RDMA_CM_EVENT_CONNECT_REQUEST)
			session_rdma_accept(l->loop, id, &req, l->h,
					    l->sessions);
		else if (type == RDMA_CM_EVENT_DEVICE_REMOVAL)
			dsm_err("the RDMA device went away: no more RDMA "
				"connections");
		else
			dsm_debug("RDMA listener: %s", rdma_event_str(type));
	}
}

/* rdma_cm's own words are terse; say what each failure means here. */
static int fail(char *why, size_t whylen, const char *what)
{
	int err = errno ? -errno : -EIO;

	snprintf(why, whylen, "%s: %s%s", what, strerror(-err),
		 err == -ENODEV || err == -EADDRNOTAVAIL ?
		 " (no RDMA device serves this address)" :
		 err == -ENOENT ? " (is the rdma_ucm module loaded?)" : "");
	return err;
}

static int bind_listen(struct listen_rdma *l, const struct sockaddr *addr,
		       uint16_t *port, char *why, size_t whylen)
{
	int fl;

	l->ec = rdma_create_event_channel();
	if (!l->ec)
		return fail(why, whylen, "rdma_create_event_channel");
	fl = fcntl(l->ec->fd, F_GETFL);
	if (fl < 0 || fcntl(l->ec->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return fail(why, whylen, "fcntl");
	if (rdma_create_id(l->ec, &l->id, l, RDMA_PS_TCP))
		return fail(why, whylen, "rdma_create_id");
	if (rdma_bind_addr(l->id, (struct sockaddr *)addr))
		return fail(why, whylen, "rdma_bind_addr");
	if (rdma_listen(l->id, BACKLOG))
		return fail(why, whylen, "rdma_listen");
	*port = ntohs(rdma_get_src_port(l->id));
	return 0;
}

int listen_rdma_start(struct listen_rdma *l, uv_loop_t *loop,
		      const struct sockaddr *addr, struct handler *h,
		      struct session_list *all, uint16_t *port, char *why,
		      size_t whylen)
{
	int err;

	memset(l, 0, sizeof(*l));
	l->loop = loop;
	l->h = h;
	l->sessions = all;
	errno = 0;
	err = bind_listen(l, addr, port, why, whylen);
	if (!err && (err = uv_poll_init(loop, &l->poll, l->ec->fd)) < 0)
		snprintf(why, whylen, "uv_poll_init: %s", uv_strerror(err));
	if (!err) {
		l->polled = true;
		l->poll.data = l;
		err = uv_poll_start(&l->poll, UV_READABLE, on_event);
		if (err)
			snprintf(why, whylen, "uv_poll_start: %s",
				 uv_strerror(err));
	}
	if (err)
		listen_rdma_stop(l);
	return err;
}

void listen_rdma_stop(struct listen_rdma *l)
{
	/* libuv stops watching the fd in uv_close itself, so the channel
	 * can go right after */
	if (l->polled && !uv_is_closing((uv_handle_t *)&l->poll))
		uv_close((uv_handle_t *)&l->poll, NULL);
	if (l->id && rdma_destroy_id(l->id))
		dsm_warn("rdma_destroy_id (listener): %s", strerror(errno));
	l->id = NULL;
	if (l->ec)
		rdma_destroy_event_channel(l->ec);
	l->ec = NULL;
}
