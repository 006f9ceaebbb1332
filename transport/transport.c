/*
 * transport.c - helpers common to every transport (room: transport).
 */
#include "transport.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>

struct sync_call {
	bool done;
	int status;
	void *reply;
	uint32_t cap, len;
};

static void sync_done(void *arg, int status, const uint8_t *payload,
		      uint32_t len)
{
	struct sync_call *c = arg;

	c->status = status;
	c->len = len;
	if (status == 0 && payload && c->reply)
		memcpy(c->reply, payload, len < c->cap ? len : c->cap);
	c->done = true;
}

int dsm_transport_call_sync(const struct dsm_transport_ops *ops,
			    struct dsm_transport *t, uint8_t type,
			    const void *body, uint32_t len, void *reply,
			    uint32_t cap, uint32_t *rlen)
{
	struct sync_call c = { .reply = reply, .cap = cap };
	int err;

	err = ops->call(t, type, body, len, sync_done, &c);
	if (err)
		return err;
	ops->flush(t);
	/* progress() runs the completion; an error that ends the connection
	 * completes this call too, so the loop always ends. */
	while (!c.done) {
		struct pollfd p = { ops->fd(t), POLLIN, 0 };

		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return -errno;
		ops->progress(t);
	}
	if (rlen)
		*rlen = c.len;
	return c.status;
}
