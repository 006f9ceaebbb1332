/*
 * transport.c - what every transport shares (room: transport): the
 * blocking call of the handshake, and the table of memory the owner
 * sends from.
 */
#include "transport.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Heap-allocated: a call that timed out is abandoned, and its completion
 * (when the transport is closed) frees it instead of writing into a
 * stack frame that is gone. */
struct sync_call {
	bool done, abandoned;
	int status;
	uint8_t *reply;
	uint32_t cap, len;
};

static void sync_done(void *arg, int status, const uint8_t *payload,
		      uint32_t len)
{
	struct sync_call *c = arg;

	if (c->abandoned) {
		free(c->reply);
		free(c);
		return;
	}
	c->status = status;
	c->len = len;
	if (status == 0 && payload && c->reply)
		memcpy(c->reply, payload, len < c->cap ? len : c->cap);
	c->done = true;
}

static int wait_done(const struct dsm_transport_ops *ops,
		     struct dsm_transport *t, struct sync_call *c)
{
	uint64_t deadline = dsm_now_ns() + DSM_CALL_SYNC_MS * 1000000ULL;

	/* progress() runs the completion; an error that ends the connection
	 * completes this call too */
	while (!c->done) {
		struct pollfd p = { ops->fd(t), POLLIN, 0 };
		uint64_t now = dsm_now_ns();
		int n;

		if (now >= deadline)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)((deadline - now) / 1000000) + 1);
		if (n < 0 && errno != EINTR)
			return -errno;
		ops->progress(t);
	}
	return 0;
}

unsigned dsm_connect_ms(void)
{
	const char *v = getenv("DSM_CONNECT_TIMEOUT_MS");
	uint64_t ms;

	if (!v || dsm_parse_uint(v, DSM_CONNECT_MS_MAX, &ms) || !ms)
		return DSM_CONNECT_MS;
	return ms;
}

unsigned dsm_tcp_timeout_ms(void)
{
	const char *v = getenv("DSM_TCP_TIMEOUT_MS");
	uint64_t ms;

	if (!v || dsm_parse_uint(v, DSM_TCP_TIMEOUT_MS_MAX, &ms) ||
	    ms < DSM_TCP_TIMEOUT_MS_MIN)
		return DSM_TCP_TIMEOUT_MS;
	return ms;
}

int dsm_transport_call_sync(const struct dsm_transport_ops *ops,
			    struct dsm_transport *t, uint8_t type,
			    const void *body, uint32_t len, void *reply,
			    uint32_t cap, uint32_t *rlen)
{
	struct sync_call *c = calloc(1, sizeof(*c));
	int err = -ENOMEM;

	if (!c || (cap && !(c->reply = malloc(cap))))
		goto out;
	c->cap = cap;
	err = ops->call(t, type, body, len, sync_done, c);
	if (err)
		goto out;
	ops->flush(t);
	err = wait_done(ops, t, c);
	if (err) {
		c->abandoned = true; /* sync_done frees it */
		return err;
	}
	if (c->reply && reply)
		memcpy(reply, c->reply, c->len < cap ? c->len : cap);
	if (rlen)
		*rlen = c->len;
	err = c->status;
out:
	if (c)
		free(c->reply);
	free(c);
	return err;
}

/* ---- memory the owner sends from --------------------------------------- */

struct mem_chunk {
	uintptr_t base;
	size_t len;
};

static struct {
	pthread_mutex_t lock;
	struct mem_chunk *v;
	size_t n, cap;
} mem = { .lock = PTHREAD_MUTEX_INITIALIZER };

int dsm_transport_mem_add(void *base, size_t len)
{
	int err = 0;

	pthread_mutex_lock(&mem.lock);
	if (mem.n == mem.cap) {
		size_t cap = mem.cap ? 2 * mem.cap : 16;
		struct mem_chunk *v = realloc(mem.v, cap * sizeof(*v));

		if (v) {
			mem.v = v;
			mem.cap = cap;
		}
	}
	if (mem.n < mem.cap)
		mem.v[mem.n++] = (struct mem_chunk){ (uintptr_t)base, len };
	else
		err = -ENOMEM;
	pthread_mutex_unlock(&mem.lock);
	return err;
}

void dsm_transport_mem_del(void *base, size_t len)
{
	pthread_mutex_lock(&mem.lock);
	for (size_t i = 0; i < mem.n; i++) {
		if (mem.v[i].base == (uintptr_t)base && mem.v[i].len == len) {
			mem.v[i] = mem.v[--mem.n];
			break;
		}
	}
	if (!mem.n) {
		free(mem.v);
		mem.v = NULL;
		mem.cap = 0;
	}
	pthread_mutex_unlock(&mem.lock);
}

int dsm_transport_mem_find(const void *p, void **base, size_t *len)
{
	uintptr_t a = (uintptr_t)p;
	int err = -ENOENT;

	pthread_mutex_lock(&mem.lock);
	for (size_t i = 0; i < mem.n; i++) {
		if (a >= mem.v[i].base && a - mem.v[i].base < mem.v[i].len) {
			*base = (void *)mem.v[i].base;
			*len = mem.v[i].len;
			err = 0;
			break;
		}
	}
	pthread_mutex_unlock(&mem.lock);
	return err;
}
