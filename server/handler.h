/*
 * handler.h - what the server does with a request, without any I/O (room:
 * server protocol).
 *
 * The session layer (session.c) owns the socket and the bytes; it hands a
 * buffer to handler_next(), which frames one message, checks it, acts on
 * the pool and region table, and describes the reply.  Keeping sockets
 * out of here lets the fuzzer (tests/fuzz_proto.c) drive the whole request
 * path with nothing but a byte array.
 */
#ifndef DSM_SERVER_HANDLER_H
#define DSM_SERVER_HANDLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "pool.h"
#include "proto.h"
#include "region.h"

/* State shared by every connection of one server. */
struct handler {
	struct pool pool;
	struct region_table regions;
	uint32_t server_id;
	const struct dsm_auth_key *key; /* NULL: no secret, no AUTH step */
	uint64_t start_ns;
	bool draining;                   /* dsmctl drain: no new ALLOC */
	uint64_t sessions;               /* connected now */
	uint64_t reads, writes;          /* successful requests */
	uint64_t pages_read, pages_written;
	uint64_t pages_discarded;        /* given back by DISCARD */
	uint64_t bytes_in, bytes_out;    /* whole messages */
	uint64_t errors;                 /* error replies sent */
	uint64_t auth_refused;           /* connections that failed AUTH */
};

/* The protocol state of one connection. */
struct handler_session {
	struct handler *h;
	struct region_owner regions;
	bool hello_done;
	bool authed;                     /* AUTH done, or no secret */
	uint64_t client_id;              /* LEASE: registry id, 0 if none */
	uint64_t lease_missing_ms;       /* when its lease was first found
	                                  * missing; 0 while it is there */
	uint64_t client_nonce;
	uint8_t server_nonce[DSM_AUTH_NONCE_SIZE];
};

/*
 * One message for the peer: hdr, then hdr.len bytes at data.  data points
 * into body or into the pool, so it is only valid until the handler runs
 * again; the caller copies it out before that.
 */
struct reply {
	struct dsm_hdr hdr;
	const uint8_t *data;
	uint8_t body[DSM_SERVER_STATS_SIZE]; /* the largest small reply */
	bool close;   /* send this, then close: the peer cannot go on */
};

/* The pool on the pages asked for (pool.h); why as pool_init's.  0 or
 * -errno. */
int handler_init(struct handler *h, uint64_t capacity, enum pool_pages pages,
		 uint32_t server_id, char *why, size_t whylen);
/* After every session has ended. */
void handler_destroy(struct handler *h);

void handler_session_init(struct handler_session *s, struct handler *h);
/* The connection is gone: free every region it owns. */
void handler_session_end(struct handler_session *s);

/*
 * Handle the message at the front of buf[0..len).  Returns the bytes it
 * consumed (> 0) with *r filled in, or 0 if buf does not yet hold a whole
 * message; then *need is the size that message will have (header alone
 * while the header is incomplete).  After a reply with close set, the
 * rest of the stream must be ignored.
 */
size_t handler_next(struct handler_session *s, const uint8_t *buf, size_t len,
		    struct reply *r, size_t *need);

/* A server-initiated GOODBYE. */
void handler_goodbye(struct reply *r, uint64_t id, int32_t reason);
/* A DRAINING message (proto.h) saying whether this server drains. */
void handler_draining(struct reply *r, uint64_t id, bool on);

void handler_stats(const struct handler *h, struct dsm_server_stats *st);

#endif /* DSM_SERVER_HANDLER_H */
