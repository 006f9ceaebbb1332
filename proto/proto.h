/*
 * proto.h - the dsm wire protocol (room: protocol).
 *
 * Every message is a 24-byte header followed by `len` payload bytes.  All
 * integers are little-endian on the wire; the structs below are the
 * decoded, host-order forms and are never sent as raw memory.
 *
 * Requests carry an id chosen by the sender; the reply echoes it, so any
 * number of requests may be in flight on one connection (pipelining).  A
 * server processes the requests of one connection in order, so a WRITE
 * followed by a READ of the same pages returns the written data.
 *
 * Server-initiated messages (DSM_F_SERVER) travel on the same connection:
 * GOODBYE, DRAINING, and INVALIDATE and RECALL for shared regions.  Their
 * ids come from the server's own id space.  A request on a shared region
 * (ACQUIRE, LOCK) or a BARRIER may be answered after later requests of
 * the same connection (a deferred reply: docs/design.md, "Shared
 * regions"), so a client matches replies by id, never by order.
 *
 * Pages are addressed as (region id, pool offset): the pool offset is
 * where the page lives in that server's pool; the region id lets a TCP
 * server check that the caller owns that part of the pool.  On an RDMA
 * connection READ and WRITE never travel as messages: the client reads
 * and writes the region one-sidedly, at the address and with the rkey
 * its ALLOC reply gave, and only the control messages below go over
 * SEND/RECV, one message per SEND.
 */
#ifndef DSM_PROTO_H
#define DSM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "page.h"

#define DSM_PROTO_MAGIC      0x314d5344u /* "DSM1" */
/* 2: ALLOC replies carry the region's address and rkey for one-sided
 * access, HELLO replies say whether the connection is an RDMA one.  A
 * peer of another version is refused with -EPROTONOSUPPORT, never served
 * with messages it would misread. */
#define DSM_PROTO_VERSION    3
#define DSM_HDR_SIZE         24u
#define DSM_MAX_BATCH_PAGES  256u        /* one READ/WRITE moves <= 1 MiB */
#define DSM_RW_REQ_SIZE      24u
/* Largest payload any message may declare: a full WRITE. */
#define DSM_MAX_PAYLOAD      (DSM_RW_REQ_SIZE + DSM_MAX_BATCH_PAGES * DSM_PAGE_SIZE)

enum dsm_msg_type {
	/* client -> server requests; the reply has the same type + DSM_F_REPLY */
	DSM_MSG_HELLO = 1,  /* must be first on a connection */
	DSM_MSG_ALLOC = 2,  /* reserve pool space for a region */
	DSM_MSG_FREE = 3,   /* release a region */
	DSM_MSG_READ = 4,   /* read a run of pages */
	DSM_MSG_WRITE = 5,  /* write a run of pages */
	DSM_MSG_STATS = 6,  /* server counters */
	DSM_MSG_PING = 7,   /* empty round trip */
	DSM_MSG_AUTH = 8,   /* prove knowledge of the cluster secret (auth.h) */
	DSM_MSG_LEASE = 9,  /* the client's lease in the registry, to watch */
	DSM_MSG_DISCARD = 10, /* forget a run of pages: their memory goes
	                       * back to the OS, they read as zeros */
	DSM_MSG_SHARE_CREATE = 11, /* a shared region, guarded by a key */
	DSM_MSG_SHARE_ATTACH = 12, /* become a holder of a shared region */
	DSM_MSG_ACQUIRE = 13,  /* a read-only or writable copy of a run of a
	                        * shared region's pages; the reply may wait */
	DSM_MSG_INVAL_ACK = 14, /* "done" for an INVALIDATE or RECALL; an
	                         * empty reply */
	DSM_MSG_LOCK = 15,     /* a lock at an offset of a shared region; the
	                        * reply waits until it is granted */
	DSM_MSG_UNLOCK = 16,   /* release it, or take back a waiting LOCK */
	DSM_MSG_BARRIER = 17,  /* wait until `count` arrivals at a barrier */
	DSM_MSG_SHARE_MOVE = 18, /* a shared region's home moves: seal it,
	                          * unseal it, or say it has moved */
	DSM_MSG_SHARE_PROMOTE = 19, /* a shared region's standby becomes
	                          * its home: its old home is lost */
	/* server -> client (DSM_F_SERVER) */
	DSM_MSG_GOODBYE = 32,    /* server is going away; no reply */
	DSM_MSG_INVALIDATE = 33, /* write back if dirty, then drop copies of
	                          * a run of a shared region; INVAL_ACK */
	DSM_MSG_RECALL = 34,     /* write back if dirty, keep a read-only
	                          * copy; INVAL_ACK */
	DSM_MSG_DRAINING = 35,   /* the server is (no longer) being drained:
	                          * move your extents elsewhere; no reply */
};

enum dsm_msg_flags {
	DSM_F_REPLY = 1u << 0,  /* this is a reply to request `id` */
	DSM_F_SERVER = 1u << 1, /* initiated by the server */
};

struct dsm_hdr {
	uint32_t magic;
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint32_t len;    /* payload bytes that follow */
	int32_t status;  /* replies: 0 or -errno */
	uint64_t id;
};

/* HELLO request: versions the client speaks, its page size, and the
 * client's nonce for the cluster handshake (auth.h). */
struct dsm_hello {
	uint16_t min_version, max_version;
	uint32_t page_size;
	uint64_t nonce;
};
#define DSM_HELLO_SIZE 16u

enum dsm_hello_flags {
	DSM_HELLO_AUTH = 1u << 0, /* AUTH must follow before anything else */
	DSM_HELLO_DRAINING = 1u << 1, /* being drained: takes no new ALLOC */
	DSM_HELLO_RDMA = 1u << 2,  /* an RDMA connection: READ and WRITE are
	                            * one-sided, never messages */
};

struct dsm_hello_reply {
	uint16_t version;        /* chosen version */
	uint16_t flags;          /* enum dsm_hello_flags */
	uint32_t page_size;
	uint32_t server_id;
	uint32_t max_batch_pages;
	uint64_t capacity;       /* bytes */
	uint64_t free;           /* bytes */
	uint8_t server_nonce[16];/* with DSM_HELLO_AUTH: fresh per connection */
};
#define DSM_HELLO_REPLY_SIZE 48u

/* AUTH request and reply: an HMAC (auth.h). */
struct dsm_auth_msg {
	uint8_t mac[32];
};
#define DSM_AUTH_MSG_SIZE 32u

struct dsm_alloc_req {
	uint64_t size;           /* bytes, multiple of DSM_PAGE_SIZE, > 0 */
};
#define DSM_ALLOC_REQ_SIZE 8u

struct dsm_alloc_reply {
	uint64_t region_id;
	uint64_t pool_off;       /* bytes into the server's pool */
	uint64_t size;
	/* RDMA: the server's virtual address of the region's first byte and
	 * the rkey of the memory region registered for it, for this
	 * connection only.  Both 0 on TCP. */
	uint64_t addr;
	uint32_t rkey;
	uint32_t reserved;       /* must be 0 */
};
#define DSM_ALLOC_REPLY_SIZE 40u

/* An RDMA connection's control messages: each side keeps this many
 * receives posted, so a client may have this many requests unanswered
 * (it holds further ones back), and a message never exceeds
 * DSM_RDMA_MSG_MAX bytes (header included): the largest is a STATS
 * reply. */
#define DSM_RDMA_CREDITS 16u
#define DSM_RDMA_MSG_MAX 128u
/*
 * Over RDMA the server's INVALIDATEs and RECALLs travel outside the
 * credits, so that an acknowledgement never waits behind requests the
 * server is holding (ACQUIRE, LOCK, BARRIER), which may themselves wait
 * for that acknowledgement.  The server has at most DSM_RDMA_INVALS of
 * them unacknowledged at one client (more wait at the server, in
 * order); the client keeps DSM_RDMA_INVALS receives posted for them, and
 * each one lets it send one INVAL_ACK without a credit, into receives
 * the server keeps for acks; the ack's empty reply lands in one more
 * receive of the client's.  A client keeps its deferrable requests
 * (ACQUIRE, LOCK, BARRIER) below DSM_RDMA_CREDITS, so credits always
 * come back for the rest.
 */
#define DSM_RDMA_INVALS 8u

/* Is h a server's INVALIDATE or RECALL, the messages that travel outside
 * the credits over RDMA and are each answered by an INVAL_ACK? */
static inline bool dsm_hdr_is_inval(const struct dsm_hdr *h)
{
	return (h->flags & DSM_F_SERVER) &&
	       (h->type == DSM_MSG_INVALIDATE || h->type == DSM_MSG_RECALL);
}

struct dsm_free_req {
	uint64_t region_id;
};
#define DSM_FREE_REQ_SIZE 8u

/* READ, WRITE and DISCARD name a run of pages (a WRITE's page data
 * follows this).  READ's reply payload is exactly npages * DSM_PAGE_SIZE
 * bytes; WRITE's and DISCARD's replies are empty.  DISCARD is how a
 * client gives back pages it freed inside a region it keeps (the preload
 * shim's arenas): the server drops them and they read as zeros. */
struct dsm_rw_req {
	uint64_t region_id;
	uint64_t pool_off;       /* page-aligned */
	uint32_t npages;         /* READ, WRITE: 1..DSM_MAX_BATCH_PAGES;
	                          * DISCARD: any > 0 (no data travels) */
	uint32_t reserved;       /* must be 0 */
};

struct dsm_server_stats {
	uint64_t capacity, used;       /* bytes */
	uint64_t regions, clients;
	uint64_t reads, writes;        /* requests */
	uint64_t pages_read, pages_written;
	uint64_t bytes_in, bytes_out;
	uint64_t errors;               /* requests answered with an error */
	uint64_t uptime_ms;
	/* connections refused or closed before completing the handshake
	 * (dsm-server's caps, its handshake timeout, a body too large) */
	uint64_t conn_refused;
};
#define DSM_SERVER_STATS_SIZE 104u
/* What a server before conn_refused sent: decoded with it as 0. */
#define DSM_SERVER_STATS_SIZE_V2_0 96u

struct dsm_goodbye {
	int32_t reason;          /* -errno, e.g. -ESHUTDOWN */
};
#define DSM_GOODBYE_SIZE 4u

/* DRAINING: sent to every client when an operator starts (on = 1) or
 * cancels (on = 0) a drain of this server (dsmctl drain).  While it
 * drains, the server refuses ALLOC with -EBUSY and clients move their
 * extents off it; a client that connects meanwhile learns it from the
 * HELLO reply's DSM_HELLO_DRAINING. */
struct dsm_draining {
	uint32_t on;             /* 0 or 1 */
};
#define DSM_DRAINING_SIZE 4u

/*
 * Shared regions (docs/design.md, "Shared regions").
 *
 * SHARE_CREATE: region_id 0, the size, and a key the creator chose (32
 * random bytes: a capability, as unguessable as the cluster secret's
 * MACs, or a digest of a name: see dsm_map_shared).  SHARE_ATTACH: the
 * region's id, or 0 to find the region by its key alone, its size, and
 * the same key.  Both are answered like ALLOC (struct dsm_alloc_reply).
 * A wrong key gets exactly what a missing region gets (-ENOENT); with the
 * right key a size that differs gets -EINVAL.  SHARE_CREATE with a key a
 * shared region of this server already has gets -EEXIST (two processes
 * creating one name: the second attaches).  FREE of a shared region detaches the
 * caller; the last holder's FREE (or end) frees it.
 */
#define DSM_SHARE_KEY_SIZE 32u
/* SHARE_CREATE's region_id: 0, or this to create it sealed by its
 * creator (a move's new home, filled before anyone may use it). */
#define DSM_SHARE_CREATE_SEALED 1u
/* ... or this, for a standby: the second copy of a replicated shared
 * region (docs/design.md, "Replicated shared regions").  It grants
 * nothing, takes WRITEs from every holder, and lends LOCKs only to
 * DSM_LOCK_RECLAIM, until its holders PROMOTE it. */
#define DSM_SHARE_CREATE_STANDBY 2u
/*
 * SHARE_PROMOTE, when a replicated region's home is lost: region_id is
 * the standby's, key the name's key (the standby takes it: it is the
 * region now), size its size.  Each holder sends it once it has written
 * back everything it owned and dropped every copy; answered at once,
 * like SHARE_MOVE's UNSEAL.  The standby grants from the moment every
 * holder has sent it, or has left, or the timeout for an INVAL_ACK has
 * passed since the first (the holders still missing are then closed).
 */
struct dsm_share_req {
	uint64_t region_id;      /* CREATE: DSM_SHARE_CREATE_SEALED and
	                          * _STANDBY bits (a standby being filled
	                          * is both: SHARE_ATTACH gets -EAGAIN
	                          * until its creator unseals it);
	                          * PROMOTE: the standby's id */
	uint64_t size;           /* bytes, multiple of DSM_PAGE_SIZE, > 0 */
	uint8_t key[DSM_SHARE_KEY_SIZE];
};
#define DSM_SHARE_REQ_SIZE 48u

enum dsm_acquire_mode {
	DSM_ACQ_READ = 1,        /* a read-only copy: the caller is a sharer */
	DSM_ACQ_WRITE = 2,       /* the only copy, writable: the owner */
};
enum dsm_acquire_flags {
	DSM_ACQ_DATA = 1u << 0,  /* the reply carries the pages (TCP only;
	                          * over RDMA the client reads them
	                          * one-sidedly once granted) */
};

/* ACQUIRE: a run of a shared region's pages in a mode.  The reply (empty,
 * or npages pages with DSM_ACQ_DATA) comes once every other copy that
 * conflicts has been invalidated or recalled and acknowledged. */
struct dsm_acquire {
	uint64_t region_id;
	uint64_t pool_off;       /* page-aligned */
	uint32_t npages;         /* 1..DSM_MAX_BATCH_PAGES */
	uint8_t mode;            /* enum dsm_acquire_mode */
	uint8_t flags;           /* enum dsm_acquire_flags */
	uint16_t reserved;       /* must be 0 */
};
#define DSM_ACQUIRE_SIZE 24u

/* INVALIDATE and RECALL carry a run as struct dsm_rw_req does (decoded
 * by dsm_rw_req_decode); the header's id is what INVAL_ACK echoes. */
struct dsm_inval_ack {
	uint64_t inval_id;       /* the INVALIDATE's or RECALL's header id */
};
#define DSM_INVAL_ACK_SIZE 8u

/*
 * Moving a shared region's home (docs/design.md, "Moving a shared
 * region").  One holder (the mover) seals the region at its home: the
 * reply waits until every copy, the mover's too, is written back and
 * gone, and from then on no ACQUIRE is granted there.  The mover copies
 * the pool to the new home and says MOVED: every ACQUIRE and LOCK of the
 * region, waiting or later, is answered -ESTALE, and each holder attaches
 * at the new home.  UNSEAL (or the mover's leaving) gives up a move.
 */
enum dsm_share_move_step {
	DSM_MOVE_SEAL = 1,
	DSM_MOVE_UNSEAL = 2,
	DSM_MOVE_MOVED = 3,
	/* A new standby is filled (by the sealer, before its UNSEAL): from
	 * now on an ACQUIRE from a holder that has not said STANDBY_SEEN
	 * is answered -ENOLINK (it must hold the standby first), and those
	 * waiting are answered so now. */
	DSM_MOVE_STANDBY_SET = 4,
	/* This holder holds the region's current standby. */
	DSM_MOVE_STANDBY_SEEN = 5,
};
struct dsm_share_move {
	uint64_t region_id;
	uint32_t step;           /* enum dsm_share_move_step */
	uint32_t reserved;       /* must be 0 */
};
#define DSM_SHARE_MOVE_SIZE 16u

/*
 * Locks and barriers (docs/design.md, "Locks and barriers").
 *
 * LOCK and UNLOCK name a lock by a word of a shared region the caller
 * holds: its byte offset in the region (a multiple of 8, inside it).
 * The token, never 0, names the client's thread: one connection carries
 * every thread of a process.  LOCK's reply (struct dsm_lock_reply) comes
 * once the lock is granted, first come, first served; UNLOCK's is empty.
 * UNLOCK of a LOCK still waiting takes it back: the LOCK is answered
 * -ECANCELED, before the UNLOCK's reply.
 */
#define DSM_LOCK_ALIGN 8u
enum dsm_lock_req_flags {
	/* LOCK at a standby not yet promoted: the lock this (session, token)
	 * held at the home that was lost, taken again before its PROMOTE.
	 * Granted at once, or -EBUSY if someone claimed it already. */
	DSM_LOCK_RECLAIM = 1u << 0,
};
struct dsm_lock_req {
	uint64_t region_id;
	uint64_t offset;         /* bytes into the region, DSM_LOCK_ALIGN'ed */
	uint64_t token;          /* > 0 */
	uint32_t flags;          /* enum dsm_lock_req_flags; 0 for UNLOCK */
	uint32_t reserved;       /* must be 0 */
};
#define DSM_LOCK_REQ_SIZE 32u

enum dsm_lock_flags {
	/* The holder before this grant left holding the lock (its session
	 * ended, or it detached the region): what the lock guards may be
	 * half updated, as a robust mutex's EOWNERDEAD says. */
	DSM_LOCK_OWNER_DIED = 1u << 0,
};
struct dsm_lock_reply {
	uint32_t flags;          /* enum dsm_lock_flags */
	uint32_t reserved;       /* must be 0 */
};
#define DSM_LOCK_REPLY_SIZE 8u

/* BARRIER: the key is a digest of the barrier's name (the client's
 * choice of hash); count arrivals (requests, not connections) release
 * every one of them with an empty reply.  Barriers belong to the
 * server, not to a region.  The token, never 0, names the client's
 * thread as a LOCK's does: one (session, token) waits at a key once
 * (-EDEADLK).  With DSM_BARRIER_WITHDRAW the request takes that
 * thread's waiting arrival back instead: the arrival is answered
 * -ECANCELED, before the withdraw's reply; a withdraw that finds none
 * (the barrier released it first) is -ENOENT. */
#define DSM_BARRIER_KEY_SIZE 32u
#define DSM_BARRIER_MAX_COUNT 65536u
enum dsm_barrier_flags {
	/* Take back (session, token)'s waiting arrival at the key: a
	 * client whose wait timed out, so that the next round does not
	 * count it. */
	DSM_BARRIER_WITHDRAW = 1u << 0,
};
struct dsm_barrier_req {
	uint8_t key[DSM_BARRIER_KEY_SIZE];
	uint32_t count;          /* 1..DSM_BARRIER_MAX_COUNT, also to withdraw */
	uint32_t flags;          /* enum dsm_barrier_flags */
	uint64_t token;          /* > 0 */
};
#define DSM_BARRIER_REQ_SIZE 48u

void dsm_lock_req_encode(const struct dsm_lock_req *m, uint8_t *out);
int dsm_lock_req_decode(const uint8_t *in, size_t len, struct dsm_lock_req *m);
void dsm_lock_reply_encode(const struct dsm_lock_reply *m, uint8_t *out);
int dsm_lock_reply_decode(const uint8_t *in, size_t len,
			  struct dsm_lock_reply *m);
void dsm_barrier_req_encode(const struct dsm_barrier_req *m, uint8_t *out);
int dsm_barrier_req_decode(const uint8_t *in, size_t len,
			   struct dsm_barrier_req *m);

void dsm_share_req_encode(const struct dsm_share_req *m, uint8_t *out);
/* type: SHARE_CREATE (region_id must be 0) or SHARE_ATTACH. */
int dsm_share_req_decode(uint8_t type, const uint8_t *in, size_t len,
			 struct dsm_share_req *m);
void dsm_acquire_encode(const struct dsm_acquire *m, uint8_t *out);
int dsm_acquire_decode(const uint8_t *in, size_t len, struct dsm_acquire *m);
void dsm_share_move_encode(const struct dsm_share_move *m, uint8_t *out);
int dsm_share_move_decode(const uint8_t *in, size_t len,
			  struct dsm_share_move *m);
void dsm_inval_ack_encode(const struct dsm_inval_ack *m, uint8_t *out);
int dsm_inval_ack_decode(const uint8_t *in, size_t len,
			 struct dsm_inval_ack *m);

/* Header.  decode checks magic, version, flags and len <= DSM_MAX_PAYLOAD:
 * 0, -EPROTO (not a dsm message; the stream cannot be trusted further),
 * -EPROTONOSUPPORT (another version) or -EMSGSIZE. */
void dsm_hdr_encode(const struct dsm_hdr *h, uint8_t out[DSM_HDR_SIZE]);
int dsm_hdr_decode(const uint8_t in[DSM_HDR_SIZE], struct dsm_hdr *h);
void dsm_hdr_init(struct dsm_hdr *h, uint8_t type, uint16_t flags,
		  uint32_t len, uint64_t id);

/* Bodies.  decode returns 0 or -EINVAL (wrong length, bad field); the
 * caller passes the payload and its length exactly as received. */
void dsm_hello_encode(const struct dsm_hello *m, uint8_t *out);
int dsm_hello_decode(const uint8_t *in, size_t len, struct dsm_hello *m);
void dsm_hello_reply_encode(const struct dsm_hello_reply *m, uint8_t *out);
int dsm_hello_reply_decode(const uint8_t *in, size_t len,
			   struct dsm_hello_reply *m);
void dsm_alloc_req_encode(const struct dsm_alloc_req *m, uint8_t *out);
int dsm_alloc_req_decode(const uint8_t *in, size_t len,
			 struct dsm_alloc_req *m);
void dsm_alloc_reply_encode(const struct dsm_alloc_reply *m, uint8_t *out);
int dsm_alloc_reply_decode(const uint8_t *in, size_t len,
			   struct dsm_alloc_reply *m);
void dsm_free_req_encode(const struct dsm_free_req *m, uint8_t *out);
int dsm_free_req_decode(const uint8_t *in, size_t len, struct dsm_free_req *m);
void dsm_rw_req_encode(const struct dsm_rw_req *m, uint8_t *out);
/* For WRITE, len must be DSM_RW_REQ_SIZE + npages pages; for READ,
 * DISCARD, INVALIDATE and RECALL exactly DSM_RW_REQ_SIZE. */
int dsm_rw_req_decode(uint8_t type, const uint8_t *in, size_t len,
		      struct dsm_rw_req *m);
void dsm_server_stats_encode(const struct dsm_server_stats *m, uint8_t *out);
int dsm_server_stats_decode(const uint8_t *in, size_t len,
			    struct dsm_server_stats *m);
/* LEASE request: the client's id in the cluster registry.  A server in
 * a cluster closes a connection whose lease has expired (its client is
 * hung or cut off), which frees the client's regions.  Reply: empty. */
struct dsm_lease {
	uint64_t client_id;      /* > 0 */
};
#define DSM_LEASE_SIZE 8u

void dsm_lease_encode(const struct dsm_lease *m, uint8_t *out);
int dsm_lease_decode(const uint8_t *in, size_t len, struct dsm_lease *m);
void dsm_auth_msg_encode(const struct dsm_auth_msg *m, uint8_t *out);
int dsm_auth_msg_decode(const uint8_t *in, size_t len, struct dsm_auth_msg *m);
void dsm_goodbye_encode(const struct dsm_goodbye *m, uint8_t *out);
int dsm_goodbye_decode(const uint8_t *in, size_t len, struct dsm_goodbye *m);
void dsm_draining_encode(const struct dsm_draining *m, uint8_t *out);
int dsm_draining_decode(const uint8_t *in, size_t len, struct dsm_draining *m);

const char *dsm_msg_name(uint8_t type);

_Static_assert(DSM_HDR_SIZE + DSM_SERVER_STATS_SIZE <= DSM_RDMA_MSG_MAX,
	       "every control message fits one RDMA receive");

#endif /* DSM_PROTO_H */
