/*
 * session.h - one client connection: framing, the receive buffer, the queue
 * of replies, and flow control (room: server protocol).
 *
 * A session never holds more than SESSION_WQ_HIGH bytes of unsent replies
 * before it stops reading from its peer, so a client that sends requests
 * but never reads the answers costs a bounded amount of server memory.
 */
#ifndef DSM_SERVER_SESSION_H
#define DSM_SERVER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "handler.h"

#define SESSION_WQ_HIGH (64u << 20) /* stop reading above this */
#define SESSION_WQ_LOW  (32u << 20) /* and start again below this */

struct session_list;

struct session {
	uv_tcp_t tcp;
	uv_shutdown_t shutdown;
	struct handler_session hs;
	struct session_list *list;
	struct session *next, *prev;
	char peer[64];
	uint8_t *rbuf;          /* bytes received and not yet handled */
	size_t rlen, rcap;
	size_t rneed;           /* size of the message at the front of rbuf */
	size_t wqueued;         /* reply bytes given to libuv, not yet sent */
	bool paused;            /* reading stopped until wqueued drains */
	bool eof;               /* the peer will send nothing more */
	bool closing;           /* no further request will be handled */
};

/* Every live session of a server, so it can say goodbye to them. */
struct session_list {
	struct session *head;
	size_t count;
};

/* Accept a pending connection on listener.  0 or -errno. */
int session_accept(uv_stream_t *listener, struct handler *h,
		   struct session_list *all);
/* Queue a GOODBYE with this id behind any replies, then close. */
void session_goodbye(struct session *s, uint64_t id);
/* Tell the client whether this server drains (DRAINING message). */
void session_draining(struct session *s, uint64_t id, bool on);
/* Close at once, dropping unsent replies. */
void session_close(struct session *s);

#endif /* DSM_SERVER_SESSION_H */
