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
 * Life of a session: the transport accepts the connection and calls
 * session_link; it feeds every whole request to session_request, which
 * runs the handler and sends the reply; when its connection is gone it
 * calls session_unlink, which frees the regions the client owned, and
 * only then frees its memory.
 */
#ifndef DSM_SERVER_SESSION_H
#define DSM_SERVER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
};

/* Every live session of a server, so it can say goodbye to them. */
struct session_list {
	struct session *head;
	size_t count;
};

/* A new connection: its protocol state starts, and it joins all. */
void session_link(struct session *s, const struct session_ops *ops,
		  struct handler *h, struct session_list *all);
/* The connection is gone: free every region the client owned and leave
 * the list.  The transport frees s after this. */
void session_unlink(struct session *s);

/*
 * Handle the message at the front of buf[0..len) and send its reply.
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
