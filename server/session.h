/*
 * session.h - one client connection, whatever carries it: its protocol
 * state, the list of live sessions, and what a transport must implement
 * (room: server protocol).
 *
 * A session is a struct session embedded first in a transport's own
 * struct: session_tcp.c (a libuv TCP stream) and session_rdma.c (an RDMA
 * queue pair).  Everything above the transport - the handler, leases and
 * drain (membership.c), GOODBYE and stats (main.c) - sees only this
 * header, so it works the same over both.
 *
 * Life of a session: the transport asks session_admit whether it may
 * take a connection, accepts it and calls session_link; it feeds every
 * whole request to session_request, which runs the handler and sends the
 * reply; when its connection is gone it calls session_unlink, which
 * frees the regions the client owned, and only then frees its memory.
 *
 * Admission.  A connection that has not completed its handshake (HELLO,
 * and AUTH with a secret) has proved nothing, so there may be at most
 * max_handshakes of them, each for at most handshake_ms, and at most
 * max_sessions connections in all.  A new connection that finds either
 * cap reached closes the oldest handshake still in progress to make room
 * (an idle squatter is always older than a real client that completes
 * its handshake within a round trip or two); only when every connection
 * is a member's is a new one refused.
 */
#ifndef DSM_SERVER_SESSION_H
#define DSM_SERVER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "handler.h"

struct session;

struct session_ops {
	const char *name;      /* "tcp", "rdma": for logs */
	/* Queue one message for the peer: r's header and body are copied
	 * (or sent) before this returns.  0, or -errno: the caller then
	 * closes the session. */
	int (*send)(struct session *s, const struct reply *r);
	/* Handle no further request, let what is queued reach the peer,
	 * then close. */
	void (*close_after_send)(struct session *s);
	/* Close at once, dropping what is unsent.  May be called again. */
	void (*close)(struct session *s);
};

struct session_list;

struct session {
	const struct session_ops *ops;
	struct handler_session hs;
	struct session_list *list;
	struct session *next, *prev;
	char peer[64];          /* "host:port" of the client, for logs */
	bool closing;           /* no further request will be handled */
	/* On the list's handshakes, oldest first, until authed. */
	struct session *hs_next, *hs_prev;
	bool in_handshake;
	bool evicted;           /* closed by admission, not yet unlinked */
	uint64_t hs_deadline_ns;
};

/* dsm-server --max-connections, --max-handshakes, --handshake-timeout-ms,
 * --tcp-timeout-ms. */
struct session_limits {
	size_t max_sessions;
	size_t max_handshakes;
	uint64_t handshake_ms;
	unsigned tcp_timeout_ms; /* TCP_USER_TIMEOUT and keepalive */
};

/* Every live session of a server, so it can say goodbye to them, and
 * those still in their handshake. */
struct session_list {
	struct session *head;
	size_t count;
	struct session *hs_head, *hs_tail;   /* oldest first */
	size_t handshakes;
	size_t evicted;         /* closing for admission, still counted */
	struct session_limits lim;
	struct handler *h;
	uv_timer_t hs_timer;    /* the oldest handshake's deadline */
	uv_timer_t tick_timer;  /* the handler's deadlines (handler_tick) */
};

/* The list starts empty, with these limits, on loop, and becomes h's
 * outbox (handler.h, struct handler_out).  0 or -errno. */
int session_list_init(struct session_list *all, uv_loop_t *loop,
		      struct handler *h, const struct session_limits *lim);
/* Stop the handshake timer (before the loop is drained). */
void session_list_stop(struct session_list *all);

/*
 * May a new connection be taken?  0 (making room by closing the oldest
 * handshake if a cap is reached), or -EUSERS: every connection is a
 * member's and there are max_sessions of them.  A refusal is counted;
 * the transport then closes the connection unanswered.
 */
int session_admit(struct session_list *all);

/* A new connection: its protocol state starts, and it joins all and
 * its handshakes. */
void session_link(struct session *s, const struct session_ops *ops,
		  struct handler *h, struct session_list *all);
/* The connection is gone: free every region the client owned and leave
 * the list.  The transport frees s after this. */
void session_unlink(struct session *s);

/*
 * Handle the message at the front of buf[0..len) and send its reply,
 * and count how long the two took (handler_note_time: the service time
 * dsm-server --metrics shows; a deferred reply's wait is not in it).
 * Returns the bytes consumed (0: not a whole message yet, *need says how
 * many it takes), as handler_next.  After a reply that ends the
 * connection, or a failed send, s->closing is set.
 */
size_t session_request(struct session *s, const uint8_t *buf, size_t len,
		       size_t *need);

/* Queue a GOODBYE with this id behind any replies, then close. */
void session_goodbye(struct session *s, uint64_t id);
/* Tell the client whether this server drains (DRAINING message). */
void session_draining(struct session *s, uint64_t id, bool on);
/* Close at once, dropping unsent replies. */
void session_close(struct session *s);

#endif /* DSM_SERVER_SESSION_H */
