/*
 * transport.c - helpers common to every transport (room: transport).
 */
#include "transport.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

struct sync_call {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int status;
	void *reply;
	uint32_t cap, len;
};

static void sync_done(void *arg, int status, const uint8_t *payload,
		      uint32_t len)
{
	struct sync_call *c = arg;

	pthread_mutex_lock(&c->lock);
	c->status = status;
	c->len = len;
	if (status == 0 && payload && c->reply)
		memcpy(c->reply, payload, len < c->cap ? len : c->cap);
	c->done = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

int dsm_transport_call_sync(const struct dsm_transport_ops *ops,
			    struct dsm_transport *t, uint8_t type,
			    const void *body, uint32_t len, void *reply,
			    uint32_t cap, uint32_t *rlen)
{
	struct sync_call c = { .reply = reply, .cap = cap };
	int err;

	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.cond, NULL);
	err = ops->call(t, type, body, len, sync_done, &c);
	if (err)
		goto out;
	pthread_mutex_lock(&c.lock);
	while (!c.done)
		pthread_cond_wait(&c.cond, &c.lock);
	pthread_mutex_unlock(&c.lock);
	err = c.status;
	if (rlen)
		*rlen = c.len;
out:
	pthread_mutex_destroy(&c.lock);
	pthread_cond_destroy(&c.cond);
	return err;
}
