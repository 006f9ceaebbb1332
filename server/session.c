/*
 * session.c - what every session does, whatever its transport (room:
 * server protocol).  See session.h.
 */
#include "session.h"

#include <errno.h>

#include "log.h"

void session_link(struct session *s, const struct session_ops *ops,
		  struct handler *h, struct session_list *all)
{
	s->ops = ops;
	handler_session_init(&s->hs, h);
	s->list = all;
	s->prev = NULL;
	s->next = all->head;
	if (all->head)
		all->head->prev = s;
	all->head = s;
	all->count++;
}

void session_unlink(struct session *s)
{
	struct session_list *l = s->list;

	dsm_debug("client %s (%s) gone, freeing %llu regions", s->peer,
		  s->ops->name, (unsigned long long)s->hs.regions.count);
	handler_session_end(&s->hs);
	if (s->prev)
		s->prev->next = s->next;
	else
		l->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	l->count--;
}

/* Send r; a failed send ends the session at once, a reply that ends the
 * connection ends it once sent. */
static void deliver(struct session *s, const struct reply *r)
{
	if (s->ops->send(s, r) < 0) {
		dsm_warn("client %s: cannot queue a message, closing", s->peer);
		session_close(s);
	} else if (r->close) {
		s->ops->close_after_send(s);
	}
}

size_t session_request(struct session *s, const uint8_t *buf, size_t len,
		       size_t *need)
{
	struct reply r;
	size_t used;

	if (s->closing) {
		*need = DSM_HDR_SIZE;
		return 0;
	}
	used = handler_next(&s->hs, buf, len, &r, need);
	if (used)
		deliver(s, &r);
	return used;
}

void session_close(struct session *s)
{
	s->closing = true;
	s->ops->close(s);
}

void session_draining(struct session *s, uint64_t id, bool on)
{
	struct reply r;

	/* Before AUTH a connection is told nothing; it learns it from the
	 * HELLO reply anyway. */
	if (s->closing || !s->hs.authed)
		return;
	handler_draining(&r, id, on);
	deliver(s, &r);
}

void session_goodbye(struct session *s, uint64_t id)
{
	struct reply r;

	if (s->closing)
		return;
	handler_goodbye(&r, id, -ESHUTDOWN);
	deliver(s, &r); /* a GOODBYE has close set */
}
