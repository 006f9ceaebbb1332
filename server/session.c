/*
 * session.c - what every session does, whatever its transport (room:
 * server protocol).  See session.h.
 */
#include "session.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "log.h"
#include "util.h"

static void on_hs_timer(uv_timer_t *t);
static void on_tick(uv_timer_t *t);
static const struct handler_out session_out;

/* How often the handler's deadlines (an INVALIDATE's timeout) are
 * looked at: a tenth of a second late at most, for one timer. */
#define TICK_MS 100

int session_list_init(struct session_list *all, uv_loop_t *loop,
		      struct handler *h, const struct session_limits *lim)
{
	memset(all, 0, sizeof(*all));
	all->lim = *lim;
	all->h = h;
	int err = uv_timer_init(loop, &all->hs_timer);

	all->hs_timer.data = all;
	/* the sessions keep the loop alive, not their deadlines */
	if (!err)
		uv_unref((uv_handle_t *)&all->hs_timer);
	if (!err)
		err = uv_timer_init(loop, &all->tick_timer);
	if (err)
		return err;
	all->tick_timer.data = all;
	uv_unref((uv_handle_t *)&all->tick_timer);
	h->out = &session_out;
	h->out_ctx = all;
	return uv_timer_start(&all->tick_timer, on_tick, TICK_MS, TICK_MS);
}

void session_list_stop(struct session_list *all)
{
	uv_timer_stop(&all->hs_timer);
	uv_timer_stop(&all->tick_timer);
}

static void on_tick(uv_timer_t *t)
{
	struct session_list *all = t->data;

	handler_tick(all->h);
}

/* The timer fires at the oldest handshake's deadline; the others end
 * later, since every handshake gets the same time. */
static void arm_hs_timer(struct session_list *all)
{
	uint64_t now = dsm_now_ns(), due;

	if (!all->hs_head) {
		uv_timer_stop(&all->hs_timer);
		return;
	}
	due = all->hs_head->hs_deadline_ns;
	uv_timer_start(&all->hs_timer, on_hs_timer,
		       due > now ? (due - now + 999999) / 1000000 : 0, 0);
}

static void hs_leave(struct session *s)
{
	struct session_list *l = s->list;

	if (!s->in_handshake)
		return;
	if (s->hs_prev)
		s->hs_prev->hs_next = s->hs_next;
	else
		l->hs_head = s->hs_next;
	if (s->hs_next)
		s->hs_next->hs_prev = s->hs_prev;
	else
		l->hs_tail = s->hs_prev;
	s->in_handshake = false;
	l->handshakes--;
}

static void hs_join(struct session *s)
{
	struct session_list *l = s->list;

	s->hs_deadline_ns = dsm_now_ns() + l->lim.handshake_ms * 1000000;
	s->hs_next = NULL;
	s->hs_prev = l->hs_tail;
	if (l->hs_tail)
		l->hs_tail->hs_next = s;
	else
		l->hs_head = s;
	l->hs_tail = s;
	s->in_handshake = true;
	l->handshakes++;
	if (l->hs_head == s)
		arm_hs_timer(l);
}

/* Close a connection that has not completed its handshake, and count it
 * until its transport unlinks it. */
static void evict(struct session *s, const char *why)
{
	struct session_list *l = s->list;

	dsm_debug("client %s (%s): %s, closing", s->peer, s->ops->name, why);
	hs_leave(s);
	s->evicted = true;
	l->evicted++;
	if (s->closing) /* closing already, for a reason of its own */
		return;
	l->h->conn_refused++;
	session_close(s);
}

static void on_hs_timer(uv_timer_t *t)
{
	struct session_list *l = t->data;
	uint64_t now = dsm_now_ns();

	while (l->hs_head && l->hs_head->hs_deadline_ns <= now)
		evict(l->hs_head, "no handshake within --handshake-timeout-ms");
	arm_hs_timer(l);
}

int session_admit(struct session_list *all)
{
	size_t live = all->count - all->evicted;

	if (all->hs_head && (all->handshakes >= all->lim.max_handshakes ||
			     live >= all->lim.max_sessions)) {
		evict(all->hs_head, "the oldest handshake, making room");
		arm_hs_timer(all);
		return 0;
	}
	if (live < all->lim.max_sessions)
		return 0;
	all->h->conn_refused++;
	return -EUSERS;
}

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
	s->in_handshake = false;
	s->evicted = false;
	hs_join(s);
}

void session_unlink(struct session *s)
{
	struct session_list *l = s->list;

	dsm_debug("client %s (%s) gone, freeing %llu regions", s->peer,
		  s->ops->name, (unsigned long long)s->hs.regions.count);
	hs_leave(s);
	if (s->evicted)
		l->evicted--;
	if (l->hs_head == NULL)
		uv_timer_stop(&l->hs_timer);
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
	if (r->none)
		return;
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
	struct handler *h = s->hs.h;
	uint64_t start;
	struct reply r;
	size_t used;

	if (s->closing) {
		*need = DSM_HDR_SIZE;
		return 0;
	}
	start = dsm_now_ns();
	used = handler_next(&s->hs, buf, len, &r, need);
	/* A handshake completed, or refused (the reply closes), waits no
	 * more: neither timed out nor evicted to make room, which would
	 * count a refused one twice in conn_refused. */
	if (s->in_handshake && (s->hs.authed || (used && r.close))) {
		hs_leave(s);
		arm_hs_timer(s->list);
	}
	if (!used)
		return 0;
	deliver(s, &r);
	handler_note_time(h, r.slot, dsm_now_ns() - start);
	return used;
}

/* ---- the handler's outbox ------------------------------------------------ */

static struct session *session_of(struct handler_session *hs)
{
	return (struct session *)((char *)hs - offsetof(struct session, hs));
}

/* A deferred reply or a server message for a session other than (or
 * the same as) the one being handled; one that is closing gets nothing. */
static void out_send(void *ctx, struct handler_session *to,
		     const struct reply *r)
{
	struct session *s = session_of(to);

	if (!s->closing)
		deliver(s, r);
}

static void out_close(void *ctx, struct handler_session *to, const char *why)
{
	struct session *s = session_of(to);

	dsm_info("client %s (%s): %s, closing", s->peer, s->ops->name, why);
	session_close(s);
}

static const struct handler_out session_out = { out_send, out_close };

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
