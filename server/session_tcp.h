/*
 * session_tcp.h - a session over a TCP connection (room: server protocol).
 *
 * The stream carries framed messages both ways; replies are queued in
 * libuv.  A session never holds more than SESSION_WQ_HIGH bytes of unsent
 * replies before it stops reading from its peer, so a client that sends
 * requests but never reads the answers costs a bounded amount of server
 * memory.
 */
#ifndef DSM_SERVER_SESSION_TCP_H
#define DSM_SERVER_SESSION_TCP_H

#include <uv.h>

#include "session.h"

#define SESSION_WQ_HIGH (64u << 20) /* stop reading above this */
#define SESSION_WQ_LOW  (32u << 20) /* and start again below this */

/* Accept a pending connection on listener.  0 or -errno. */
int session_tcp_accept(uv_stream_t *listener, struct handler *h,
		       struct session_list *all);

#endif /* DSM_SERVER_SESSION_TCP_H */
