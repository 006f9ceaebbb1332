/*
 * shared.h - shared regions on the client: many processes, one memory,
 * kept coherent by the page's home server (room: coherence).
 *
 * A shared region is a region (region.h) with a `shared` record: its name,
 * its home (one server holds the whole region and its page directory),
 * and one byte per page of what this process knows about its copy.  The
 * page states of region.h keep their meaning, read through coherence:
 *
 *   INVALID   no copy here
 *   FETCHING  an ACQUIRE for it is on its way (READ or WRITE), nothing
 *             mapped; the grant installs it
 *   CLEAN     a read-only copy (a sharer), or an owned page written back
 *             (OWNED: writable again without asking)
 *   DIRTY     owned and writable
 *   LOST      its home is gone: poisoned
 *
 * and UPGRADING marks a CLEAN copy whose holder asked to write it (an
 * ACQUIRE WRITE in flight, faulting writers blocked on its protection).
 * If an INVALIDATE or eviction drops that copy meanwhile, the page is
 * INVALID and still UPGRADING: the grant installs the reply's data
 * writable.
 *
 * Nothing is zero-filled locally and nothing is fetched ahead: whether a
 * page was ever written is the directory's to know, not this process's.
 * docs/design.md, "Shared regions", has the protocol and its races.
 */
#ifndef DSM_SHARED_H
#define DSM_SHARED_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

struct dsm_acq;
struct dsm_outbox;
struct dsm_page;
struct dsm_region;
struct dsm_sync_wait;

/* The longest name dsm_map_shared takes. */
#define DSM_SHARED_NAME_MAX 255

enum dsm_sh_flags {
	DSM_SH_OWNED = 1 << 0,     /* the directory made us its owner and no
	                            * INVALIDATE or RECALL took it back */
	DSM_SH_UPGRADING = 1 << 1, /* an ACQUIRE WRITE of it is in flight */
	DSM_SH_READING = 1 << 2,   /* granted; its data is being read
	                            * one-sidedly (RDMA) */
};

/* Faults of one kind in order: where the next would be, and how many
 * pages the last one's ACQUIRE took. */
struct dsm_coh_stream {
	uint64_t next;
	uint32_t win;
};

struct dsm_shared {
	char name[DSM_SHARED_NAME_MAX + 1];
	uint8_t key[DSM_SHARE_KEY_SIZE]; /* the name's digest (shared.c) */
	uint32_t server;                 /* the home */
	uint64_t region_id, pool_off;
	uint8_t *pg;                     /* per page: enum dsm_sh_flags */
	/* under dsm_eng.lock: faults in order (coherence.c) */
	struct dsm_coh_stream reads, writes;
	/* under dsm_eng.lock: the home moved (an -ESTALE), and ACQUIREs
	 * wait here until the mover follows it (shared_move.c) */
	bool stale;
	unsigned follow_tries;
	struct dsm_acq *stalled;
	/* With DSM_REPLICAS of 2 or more: the standby's holding, which
	 * every write-back reaches too (the extent's second copy) and
	 * which replaces a home that is lost (shared_move.c).  Off without
	 * one, and once it is the home. */
	struct dsm_standby {
		bool on;
		uint32_t server;
		uint64_t region_id, pool_off;
	} standby;
	/* under dsm_eng.lock: the home answered -ENOLINK (a new standby
	 * was made): ACQUIREs are held until we hold it (shared_move.c) */
	bool relink;
	uint64_t restandby_after_ns; /* no new standby tried before */
	/* under dsm_eng.lock: the locks this process's threads hold here,
	 * for the standby to take again (locks.c) */
	struct dsm_held_lock {
		uint64_t offset, token;
		/* its UNLOCK is on its way: never taken again at a
		 * standby, whose next holder the lost home may have
		 * granted it to already (locks.c) */
		bool releasing;
	} *held;
	uint32_t nheld, held_cap;
};

/* The engine's side (coherence.c).  All under dsm_eng.lock, on the
 * engine thread. */

/* A missing fault on page idx of shared region r (any state but CLEAN,
 * DIRTY and LOST, which fault.c serves alike for every region). */
void dsm_coh_fault_missing(struct dsm_region *r, uint64_t idx, bool write,
			   uint64_t t0, struct dsm_outbox *ob);
/* A write to a write-protected page of a shared region.  True when
 * coherence took it (an ownership request, or one already in flight);
 * false when the page is owned and fault.c makes it writable as for a
 * private region. */
bool dsm_coh_fault_wp(struct dsm_page *p, uint64_t t0, struct dsm_outbox *ob);
/* INVALIDATE or RECALL from server i (no lock held: takes it). */
void dsm_coh_server_msg(uint32_t server, const struct dsm_hdr *h,
			const uint8_t *payload);
/* Server i is lost: ownership requests waiting for a slot to it fail. */
void dsm_coh_server_lost(uint32_t server);
/* r's holding moved to another home (its record already names it) from
 * server old: the ACQUIREs held while it was stale, and those waiting
 * for a slot to old, go there. */
void dsm_coh_rehomed(struct dsm_region *r, uint32_t old);
/* Before r fails over to its standby: write back what is dirty (w
 * counts it), stop owning anything, and drop every copy, as a seal
 * would.  0 or -errno. */
int dsm_coh_give_up_all(struct dsm_region *r, struct dsm_sync_wait *w);
/* The held ACQUIREs of r fail with err: their pages raise SIGBUS. */
void dsm_coh_stalled_fail(struct dsm_region *r, int err);

/* Under the lock: send r's held ACQUIREs again, to its home. */
void dsm_coh_resend_stalled(struct dsm_region *r);
/* Hold the standby of r found on a live, undrained server other than its
 * home (shared.c): 0 with *sb filled, -ENOENT if there is none, -EAGAIN
 * if one is still being filled, or the server's error.  From a thread
 * that may wait. */
int dsm_shared_standby_find(const struct dsm_region *r, struct dsm_standby *sb);
/* Create r's standby at server `at`, sealed by us (nobody may attach
 * until we unseal it) or not: 0 with *sb filled, or -errno. */
int dsm_shared_standby_create(const struct dsm_region *r, uint32_t at,
			      bool sealed, struct dsm_standby *sb);
/* r's holding has standby sb now (NULL or off: none): its record and
 * its placement's second copy.  Engine lock held, or r not yet in the
 * table. */
void dsm_shared_set_standby(struct dsm_region *r, const struct dsm_standby *sb);
/* The key a shared region's standby is known by. */
void dsm_shared_standby_key(const struct dsm_shared *sh, uint8_t *key);
/* Moving shared regions (shared_move.c), on the mover thread (migrate.c),
 * no lock held: move those whose home drains, follow those that moved.
 * True if one has a new home. */
bool dsm_shared_move_pass(void);
/* Under the engine lock: is there any such region? */
bool dsm_shared_move_work(void);
/* Under the engine lock: r's home said -ESTALE (it moved); the mover
 * follows. */
void dsm_shared_stale(struct dsm_region *r);
/* Under the engine lock: did a request to server i about r fail with
 * status because r's home is lost (or being lost), while a standby can
 * take its place?  Then it waits for the failover (shared_move.c). */
bool dsm_shared_fails_over(const struct dsm_region *r, uint32_t i,
			   int status);
/* Under the engine lock: did a request to server i about r fail with
 * status because i is lost, after r left it for another home (a
 * failover that finished while the request was out)?  Then it is asked
 * again there. */
bool dsm_shared_left_home(const struct dsm_region *r, uint32_t i, int status);

/* SHARE_CREATE (flags: 0 or DSM_SHARE_CREATE_SEALED) or SHARE_ATTACH
 * (by key; flags 0) on server i, from a thread that may wait: 0 with
 * sh's home filled in (server, region id, pool offset), or the server's
 * error.  Let go of such a holding with
 * dsm_share_detach. */
int dsm_share_call(uint32_t i, uint8_t type, uint64_t size, uint64_t flags,
		   struct dsm_shared *sh);
void dsm_share_detach(uint32_t server, uint64_t region_id);

/*
 * How long dsm_lock and dsm_barrier wait before they give up with
 * -ETIMEDOUT, taking their request back: 60 s, or DSM_LOCK_TIMEOUT_MS.
 * Waiting for a lock is waiting for another program, not for a server,
 * so it is bounded apart from DSM_REPLY_TIMEOUT_MS.
 */
#define DSM_LOCK_TIMEOUT_MS 60000
#define DSM_LOCK_TIMEOUT_MS_MAX 3600000

/* BLAKE2b-256 of tag (with its NUL) and name: what a name is to the
 * servers (a shared region's key, a barrier's). */
void dsm_name_digest(const char *tag, const char *name,
		     uint8_t key[DSM_SHARE_KEY_SIZE]);

/* The live, undrained server other than except (or -1) that rendezvous
 * hashing of key picks (shared.c), or -1 if there is none.  Takes the
 * engine lock. */
int dsm_shared_pick(const uint8_t key[DSM_SHARE_KEY_SIZE], int except);

/* ACQUIREs in flight to one server at most: the server queues at most
 * this many per session (SHARED_MAX_DEFERRED on its side); more wait
 * here, in fault order.  Over RDMA each one waiting holds a credit
 * (proto.h), so half of them at most: the rest keep the page traffic
 * and the INVAL_ACKs behind it moving. */
#define DSM_COH_MAX_INFLIGHT 16u
#define DSM_COH_MAX_INFLIGHT_RDMA (DSM_RDMA_CREDITS / 2)
/* The most pages one fault of a shared region takes in order. */
#define DSM_COH_RUN 64u

#endif /* DSM_SHARED_H */
