/*
 * shared_move.c - moving a shared region off a home being drained,
 * following one that moved, and failing over to a standby when the home
 * is lost (room: coherence).
 *
 * A shared region has one home and many holders, and none of them may
 * move it alone (docs/design.md, "Moving a shared region").  When its
 * home drains, every holder's mover thread (migrate.c) tries; the home
 * lets one through and tells the others -EBUSY:
 *
 *   1. SEAL at the old home: once no lock is held there, it invalidates
 *      every copy, ours too (the engine thread writes back what is dirty
 *      and acknowledges, as for any INVALIDATE), answers once all are
 *      gone, and grants nothing from then on: a holder's fault waits
 *      there.
 *   2. SHARE_CREATE at the new home (rendezvous hashing among the
 *      servers not drained), sealed by us from its creation so that
 *      nobody who finds it there reads it half filled, and copy the pool
 *      across, a batch at a time (READ from the old, WRITE to the new:
 *      one-sided over RDMA).
 *   3. MOVED at the old home: every ACQUIRE and LOCK there, waiting or
 *      later, gets -ESTALE, and so does SHARE_ATTACH there.  Then UNSEAL
 *      at the new home, switch our holding to it, let the old go, and
 *      record the new home in the registry.  A MOVED without an answer
 *      is asked again; with the old home lost, the new one is kept.
 *
 * Every other holder learns it from an -ESTALE (an ACQUIRE's, a LOCK's,
 * or its own SEAL's): the region is marked stale, its ACQUIREs are held
 * (coherence.c), and its mover thread follows: it finds the name at
 * another server (SHARE_ATTACH by key), switches its holding there and
 * sends the held ACQUIREs.  The seal took every copy, so a holder has
 * nothing to carry across.  A failure before MOVED unseals the old home
 * (and the sealer's leaving does the same), so the region serves again
 * where it was.
 *
 * With a standby (DSM_REPLICAS of 2 or more), a home that is lost is
 * replaced by it: every holder writes back what it owns, drops its
 * copies, takes its locks again there and PROMOTEs it (fail_over below;
 * docs/design.md, "Replicated shared regions").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "engine.h"
#include "log.h"
#include "migrate.h"
#include "outbox.h"
#include "region.h"
#include "registry.h"
#include "shared.h"
#include "stage.h"
#include "util.h"

/* Passes of the mover (2 s apart) a stale region may go without finding
 * its new home before its held faults fail (SIGBUS). */
#define FOLLOW_TRIES 15

/* ---- copying the pool ------------------------------------------------ */

/* Pages [first, first + n) of the pool at `from` into `to`, through buf. */
static int copy_batch(const struct dsm_shared *from, const struct dsm_shared *to,
		      uint64_t first, uint32_t n, uint8_t *buf)
{
	struct dsm_io read = {
		.type = DSM_MSG_READ, .server = from->server,
		.region_id = from->region_id, .npages = n,
		.pool_off = from->pool_off + first * DSM_PAGE_SIZE };
	uint8_t *page[DSM_MAX_BATCH_PAGES];
	uint32_t len = 0, staged = 0;
	int err;

	err = dsm_engine_io(&read, buf, n * DSM_PAGE_SIZE, &len,
			    dsm_eng.reply_ns);
	if (!err && len != n * DSM_PAGE_SIZE)
		err = -EPROTO;
	if (err)
		return err;
	pthread_mutex_lock(&dsm_eng.lock);
	while (staged < n && (page[staged] = dsm_stage_get(&dsm_eng.stage)))
		staged++;
	if (staged < n)
		dsm_stage_put(&dsm_eng.stage, page, staged);
	pthread_mutex_unlock(&dsm_eng.lock);
	if (staged < n)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		memcpy(page[i], buf + (size_t)i * DSM_PAGE_SIZE, DSM_PAGE_SIZE);
	return dsm_engine_io(&(struct dsm_io){
		.type = DSM_MSG_WRITE, .server = to->server,
		.region_id = to->region_id, .npages = n, .pages = page,
		.pool_off = to->pool_off + first * DSM_PAGE_SIZE },
		NULL, 0, NULL, dsm_eng.reply_ns);
}

/* The whole pool of the region of npages pages, from `from` to `to`. */
static int copy_pool(const struct dsm_shared *from, const struct dsm_shared *to,
		     uint64_t npages)
{
	uint8_t *buf = malloc((size_t)DSM_MAX_BATCH_PAGES * DSM_PAGE_SIZE);
	int err = buf ? 0 : -ENOMEM;

	for (uint64_t i = 0; !err && i < npages; i += DSM_MAX_BATCH_PAGES) {
		uint64_t left = npages - i;

		err = copy_batch(from, to, i, left < DSM_MAX_BATCH_PAGES ?
					 (uint32_t)left : DSM_MAX_BATCH_PAGES,
				 buf);
	}
	free(buf);
	return err;
}

/* SHARE_MOVE's step for the region at (server, region_id): 0 or the
 * server's error.  A seal waits for other programs' acknowledgements:
 * as long as a lock may. */
static int move_step(uint32_t server, uint64_t region_id, uint32_t step)
{
	struct dsm_share_move m = { .region_id = region_id, .step = step };
	uint8_t body[DSM_SHARE_MOVE_SIZE];

	dsm_share_move_encode(&m, body);
	return dsm_engine_call_ns(server, DSM_MSG_SHARE_MOVE, body,
				  sizeof(body), NULL, 0, NULL,
				  step == DSM_MOVE_SEAL ? dsm_eng.lock_ns :
							  dsm_eng.reply_ns);
}

/* Give up a move at a home we sealed, or asked to seal (a seal still
 * waiting there is cancelled): the region serves there again. */
static void unseal(uint32_t server, uint64_t region_id)
{
	for (int i = 0; i < 3; i++)
		if (move_step(server, region_id, DSM_MOVE_UNSEAL) != -ETIMEDOUT)
			return;
	dsm_err("could not unseal a shared region at %s: its holders wait "
		"until this process ends", dsm_eng.servers[server].addr);
}

/* ---- switching homes ------------------------------------------------- */

/* Our holding of r is now `there`; the one at `old` goes. */
static void switch_home(struct dsm_region *r, const struct dsm_shared *there,
			const struct dsm_shared *old)
{
	struct dsm_shared *sh = r->shared;
	struct dsm_reg_home stale = { dsm_eng.servers[old->server].id,
				      old->region_id }, found;
	struct dsm_placement *pl = &r->place;

	pthread_mutex_lock(&dsm_eng.lock);
	if (r->dead) { /* unmapped meanwhile: the new holding goes too */
		pthread_mutex_unlock(&dsm_eng.lock);
		dsm_share_detach(there->server, there->region_id);
		dsm_share_detach(old->server, old->region_id);
		return;
	}
	sh->server = there->server;
	sh->region_id = there->region_id;
	sh->pool_off = there->pool_off;
	pl->ext[0].server = pl->part[0].server = there->server;
	pl->ext[0].region_id = pl->part[0].region_id = there->region_id;
	pl->ext[0].pool_off = pl->part[0].pool_off = there->pool_off;
	if (sh->standby.on && sh->standby.region_id == there->region_id &&
	    sh->standby.server == there->server) {
		/* the standby is the home now: nothing stands by */
		dsm_shared_set_standby(r, NULL);
	}
	sh->stale = false;
	sh->follow_tries = 0;
	dsm_coh_rehomed(r, old->server);
	pthread_mutex_unlock(&dsm_eng.lock);
	dsm_engine_kick();
	dsm_share_detach(old->server, old->region_id);
	if (dsm_cluster_shared_claim(r, &stale, &found) == -EEXIST)
		dsm_warn("shared region %s: the registry names server %u as "
			 "its home, not %s", sh->name, found.server,
			 dsm_eng.servers[there->server].addr);
	dsm_info("shared region %s: its home is %s now", sh->name,
		 dsm_eng.servers[there->server].addr);
}

/* r's home moved: find the name on another server and hold it there.
 * True if it did. */
static bool follow(struct dsm_region *r, const struct dsm_shared *old)
{
	struct dsm_shared there = *old;

	for (uint32_t i = 0; i < dsm_eng.nservers; i++) {
		if (i == old->server || dsm_eng.servers[i].lost)
			continue;
		if (dsm_share_call(i, DSM_MSG_SHARE_ATTACH, r->size, 0, &there))
			continue;
		switch_home(r, &there, old);
		return true;
	}
	pthread_mutex_lock(&dsm_eng.lock);
	if (++r->shared->follow_tries >= FOLLOW_TRIES) {
		dsm_err("shared region %s moved from %s, and no server this "
			"process reaches has it", old->name,
			dsm_eng.servers[old->server].addr);
		dsm_coh_stalled_fail(r, -ESTALE);
		r->shared->follow_tries = 0; /* said again a while later */
	}
	pthread_mutex_unlock(&dsm_eng.lock);
	return false;
}

/* MOVED at the old home, once the copy is at the new one.  Asked again
 * if no answer came (it changes nothing the second time).  0 when the
 * old home said so, or when it is lost: either way the data lives at
 * the new home only, which must then be kept. */
static int say_moved(const struct dsm_shared *old)
{
	int err = -ETIMEDOUT;

	for (int i = 0; i < 3 && err == -ETIMEDOUT; i++)
		err = move_step(old->server, old->region_id, DSM_MOVE_MOVED);
	pthread_mutex_lock(&dsm_eng.lock);
	/* with a standby, the others fail over to it: ours must not be a
	 * second home, so the move is given up */
	if (err && dsm_eng.servers[old->server].lost && !old->standby.on)
		err = 0;
	pthread_mutex_unlock(&dsm_eng.lock);
	return err;
}

/* Steps 2 and 3 (top of this file), with the old home sealed by us.
 * 0, or -errno with the old home unsealed and nothing else changed. */
static int move_sealed(struct dsm_region *r, const struct dsm_shared *old)
{
	struct dsm_shared there = *old;
	/* not onto the standby's server: it would hold both copies */
	int to = dsm_shared_pick(old->key, old->standby.on ?
				 (int)old->standby.server : -1), err;

	if (to < 0) {
		err = -ENOSPC;
		goto out;
	}
	/* sealed from its creation: whoever finds it there waits until it
	 * is filled */
	err = dsm_share_call((uint32_t)to, DSM_MSG_SHARE_CREATE, r->size,
			     DSM_SHARE_CREATE_SEALED, &there);
	if (err)
		goto out;
	err = copy_pool(old, &there, r->npages);
	if (!err)
		err = say_moved(old);
	if (err) {
		dsm_share_detach(there.server, there.region_id);
		goto out;
	}
	unseal(there.server, there.region_id);
	switch_home(r, &there, old);
	return 0;
out:
	dsm_warn("shared region %s: moving it off %s failed (%s): it stays",
		 old->name, dsm_eng.servers[old->server].addr, strerror(-err));
	unseal(old->server, old->region_id);
	return err;
}

/* r's home is being drained: move it, or follow whoever did.  True if
 * r has a new home. */
static bool move_off(struct dsm_region *r, const struct dsm_shared *old)
{
	int err = move_step(old->server, old->region_id, DSM_MOVE_SEAL);

	if (err == -ESTALE)
		return follow(r, old);
	if (err == -ETIMEDOUT)
		unseal(old->server, old->region_id);
	if (err) { /* -EBUSY: another holder moves it */
		dsm_debug("shared region %s: not sealed (%s); trying again",
			  old->name, strerror(-err));
		return false;
	}
	return !move_sealed(r, old);
}

/* ---- failing over to the standby ------------------------------------ */

static bool connection_error(int status)
{
	switch (status) {
	case -ECONNRESET: case -ECONNABORTED: case -ECONNREFUSED:
	case -EPIPE: case -ENOTCONN: case -ESHUTDOWN: case -EIO:
	case -EHOSTUNREACH:
		return true;
	default:
		return false;
	}
}

bool dsm_shared_fails_over(const struct dsm_region *r, uint32_t i,
			   int status)
{
	const struct dsm_shared *sh = r->shared;

	if (!status || r->dead || i != sh->server)
		return false;
	/* Without a standby of our own, a replicated region may still have
	 * one that we had yet to hold (a new one, being made): the others
	 * promote it, and it takes the name, so the mover follows it there
	 * as after a move (15 passes, then SIGBUS). */
	if (sh->standby.on ? dsm_eng.servers[sh->standby.server].lost :
			     dsm_eng.replicas < 2)
		return false;
	/* over RDMA, requests in flight fail before the loss is reported */
	return dsm_eng.servers[i].lost || connection_error(status);
}

bool dsm_shared_left_home(const struct dsm_region *r, uint32_t i, int status)
{
	return !r->dead && i != r->shared->server && connection_error(status);
}

/* A lock no longer ours: out of r's held list. */
static void untrack(struct dsm_region *r, const struct dsm_held_lock *l)
{
	struct dsm_shared *sh = r->shared;

	pthread_mutex_lock(&dsm_eng.lock);
	for (uint32_t i = 0; i < sh->nheld; i++)
		if (sh->held[i].offset == l->offset &&
		    sh->held[i].token == l->token) {
			sh->held[i] = sh->held[--sh->nheld];
			break;
		}
	pthread_mutex_unlock(&dsm_eng.lock);
}

/* Take the locks our threads held at the lost home again at the
 * standby, before it grants anything.  0 or the first error. */
static int reclaim_locks(struct dsm_region *r, const struct dsm_standby *sb)
{
	struct dsm_held_lock *held;
	uint8_t body[DSM_LOCK_REQ_SIZE], rep[DSM_LOCK_REPLY_SIZE];
	uint32_t n;
	int err = 0;

	pthread_mutex_lock(&dsm_eng.lock);
	n = r->shared->nheld;
	held = malloc((n ? n : 1) * sizeof(*held));
	if (held)
		memcpy(held, r->shared->held, n * sizeof(*held));
	pthread_mutex_unlock(&dsm_eng.lock);
	if (!held)
		return -ENOMEM;
	for (uint32_t i = 0; i < n && !err; i++) {
		struct dsm_lock_req m = { .region_id = sb->region_id,
					  .offset = held[i].offset,
					  .token = held[i].token,
					  .flags = DSM_LOCK_RECLAIM };

		if (held[i].releasing)
			continue; /* let go: see dsm_unlock */
		dsm_lock_req_encode(&m, body);
		err = dsm_engine_call(sb->server, DSM_MSG_LOCK, body,
				      sizeof(body), rep, sizeof(rep), NULL);
		if (err == -EDEADLK) /* taken by an earlier try of ours */
			err = 0;
		if (err == -EBUSY) { /* the home gave it on, and died before
				      * our UNLOCK's answer came: not ours */
			dsm_warn("shared region %s: a lock at offset %llu "
				 "went to another holder while its home was "
				 "lost: no longer held here", r->shared->name,
				 (unsigned long long)held[i].offset);
			untrack(r, &held[i]);
			err = 0;
		}
	}
	free(held);
	return err;
}

/*
 * r's home is lost and it has a standby (docs/design.md, "Replicated
 * shared regions").  Every holder does the same: write back what it
 * owns and drop every copy (as a seal would), take its locks again at
 * the standby, and PROMOTE it; the standby grants nothing until every
 * holder has, so nobody reads a page there before its last owner's
 * data.  Then the standby is our home, and the ACQUIREs held meanwhile
 * go there.  True if r has its new home.
 */
static bool fail_over(struct dsm_region *r, const struct dsm_shared *old)
{
	struct dsm_shared there = *old;
	struct dsm_share_req m = { .region_id = old->standby.region_id,
				   .size = r->size };
	uint8_t body[DSM_SHARE_REQ_SIZE];
	struct dsm_sync_wait *w = dsm_sync_wait_new();
	int err = w ? 0 : -ENOMEM;

	/* a standby that missed a write-back of ours would bring an older
	 * page back: no failover to it (its pages raise SIGBUS, as without
	 * a standby) */
	if (!err) {
		pthread_mutex_lock(&dsm_eng.lock);
		if (r->place.ext[0].stale & 2u)
			err = -ESTALE;
		else if (!r->dead) {
			r->shared->stale = true; /* its ACQUIREs wait */
			err = dsm_coh_give_up_all(r, w);
		}
		pthread_mutex_unlock(&dsm_eng.lock);
		dsm_engine_kick();
		err = dsm_sync_wait_end(w) ? : err;
	}
	if (!err)
		err = reclaim_locks(r, &old->standby);
	memcpy(m.key, old->key, sizeof(m.key));
	dsm_share_req_encode(&m, body);
	if (!err)
		err = dsm_engine_call(old->standby.server,
				      DSM_MSG_SHARE_PROMOTE, body,
				      sizeof(body), NULL, 0, NULL);
	if (err) {
		dsm_err("shared region %s: failing over from %s to %s: %s",
			old->name, dsm_eng.servers[old->server].addr,
			dsm_eng.servers[old->standby.server].addr,
			strerror(-err));
		pthread_mutex_lock(&dsm_eng.lock);
		/* asked again at the next pass, FOLLOW_TRIES times at most */
		if (err == -ESTALE || dsm_eng.servers[old->standby.server].lost ||
		    ++r->shared->follow_tries >= FOLLOW_TRIES) {
			dsm_shared_set_standby(r, NULL); /* nothing left */
			dsm_coh_stalled_fail(r, -EHOSTDOWN);
		}
		pthread_mutex_unlock(&dsm_eng.lock);
		return false;
	}
	dsm_warn("shared region %s: its home %s is lost; %s holds it now",
		 old->name, dsm_eng.servers[old->server].addr,
		 dsm_eng.servers[old->standby.server].addr);
	there.server = old->standby.server;
	there.region_id = old->standby.region_id;
	there.pool_off = old->standby.pool_off;
	switch_home(r, &there, old);
	return true;
}

/* ---- making a standby again ------------------------------------------ */

/* How long a holder waits before trying to make a standby again after a
 * try failed (no room, no seal): a seal stops the region for a while. */
#define RESTANDBY_RETRY_NS (30ull * 1000000000)

/* A live, undrained server other than r's home that could take a
 * standby (engine lock held). */
static bool standby_room(const struct dsm_shared *sh)
{
	for (uint32_t i = 0; i < dsm_eng.nservers; i++)
		if (i != sh->server && !dsm_eng.servers[i].lost &&
		    !dsm_eng.servers[i].draining)
			return true;
	return false;
}

/* r lacks the standby it should have: none since a failover or since
 * its standby's server went, or one was made that it does not hold yet
 * (relink). */
static bool wants_standby(const struct dsm_shared *sh)
{
	if (dsm_now_ns() < sh->restandby_after_ns)
		return false;
	if (sh->relink)
		return true;
	return dsm_eng.replicas > 1 && !sh->standby.on && !sh->stale &&
	       !dsm_eng.servers[sh->server].lost && standby_room(sh);
}

/*
 * Make r's standby while the home is sealed by us: every copy is
 * written back and gone, so the pool is the whole region.  Create the
 * standby where rendezvous hashing of its key picks (not on the home),
 * fill it from the home's pool, and say STANDBY_SET: from then on the
 * home grants nothing to a holder that does not hold it.  0 with *sb
 * filled, or -errno with nothing left behind.
 */
static int make_standby(struct dsm_region *r, const struct dsm_shared *old,
			struct dsm_standby *sb)
{
	uint8_t key[DSM_SHARE_KEY_SIZE];
	struct dsm_shared from = *old, to = *old;
	int at, err;

	dsm_shared_standby_key(old, key);
	at = dsm_shared_pick(key, (int)old->server);
	if (at < 0)
		return -ENOSPC;
	/* sealed by us until filled: nobody holds it half filled */
	err = dsm_shared_standby_create(r, (uint32_t)at, true, sb);
	if (err)
		return err;
	to.server = sb->server;
	to.region_id = sb->region_id;
	to.pool_off = sb->pool_off;
	err = copy_pool(&from, &to, r->npages);
	if (!err)
		err = move_step(old->server, old->region_id,
				DSM_MOVE_STANDBY_SET);
	if (err)
		dsm_share_detach(sb->server, sb->region_id);
	return err;
}

/* Our holding of r takes standby sb: its write-backs go there too. */
static void take_standby(struct dsm_region *r, const struct dsm_standby *sb)
{
	pthread_mutex_lock(&dsm_eng.lock);
	if (r->dead) {
		pthread_mutex_unlock(&dsm_eng.lock);
		dsm_share_detach(sb->server, sb->region_id);
		return;
	}
	dsm_shared_set_standby(r, sb);
	pthread_mutex_unlock(&dsm_eng.lock);
}

/* A standby we hold on a live, undrained server: the only one of its key
 * there can be, so the latest (engine lock held). */
static bool standby_current(const struct dsm_shared *sh)
{
	const struct dsm_server *s = &dsm_eng.servers[sh->standby.server];

	return sh->standby.on && !s->lost && !s->draining;
}

/* Make r's standby with its home sealed by us, and hold it before the
 * home grants again (our own write-backs must reach it).  0 or -errno;
 * -EBUSY: another holder has the seal, and makes it. */
static int seal_and_make(struct dsm_region *r, const struct dsm_shared *old,
			 struct dsm_standby *sb)
{
	uint8_t key[DSM_SHARE_KEY_SIZE];
	int err;

	/* a seal stops every holder: only with a place for the standby */
	dsm_shared_standby_key(old, key);
	if (dsm_shared_pick(key, (int)old->server) < 0)
		return -ENOSPC;
	err = move_step(old->server, old->region_id, DSM_MOVE_SEAL);

	if (!err) {
		err = make_standby(r, old, sb);
		if (!err) {
			take_standby(r, sb);
			unseal(sb->server, sb->region_id); /* filled */
		}
		unseal(old->server, old->region_id);
	} else if (err == -ETIMEDOUT) {
		unseal(old->server, old->region_id);
	}
	return err;
}

/*
 * r has no standby, or the home made one it does not hold yet
 * (-ENOLINK; docs/design.md, "Replicated shared regions"): hold the
 * one another holder made, or make one with the home sealed (one holder
 * wins the seal; the others find its standby at their next pass).  Then
 * say STANDBY_SEEN to the home and send the ACQUIREs it answered
 * -ENOLINK.  True if r has its standby.
 */
static bool restandby(struct dsm_region *r, const struct dsm_shared *old)
{
	struct dsm_standby sb = old->standby;
	bool made = false, held;
	int err = 0;

	pthread_mutex_lock(&dsm_eng.lock);
	held = standby_current(old);
	pthread_mutex_unlock(&dsm_eng.lock);
	if (!held) {
		if (old->standby.on) { /* on a server going away */
			pthread_mutex_lock(&dsm_eng.lock);
			dsm_shared_set_standby(r, NULL);
			pthread_mutex_unlock(&dsm_eng.lock);
			dsm_share_detach(old->standby.server,
					 old->standby.region_id);
		}
		err = dsm_shared_standby_find(r, &sb);
		if (!err)
			take_standby(r, &sb);
		else if (err == -ENOENT && dsm_eng.replicas > 1)
			made = !(err = seal_and_make(r, old, &sb));
		if (err == -EAGAIN) /* one is being filled: found next pass */
			err = -EBUSY;
	}
	if (!err && !made)
		err = move_step(old->server, old->region_id,
				DSM_MOVE_STANDBY_SEEN);
	pthread_mutex_lock(&dsm_eng.lock);
	if (err && err != -EBUSY)
		r->shared->restandby_after_ns = dsm_now_ns() + RESTANDBY_RETRY_NS;
	/* the home grants us nothing until we hold its standby, and we can
	 * neither find nor make one: what waits for it fails (SIGBUS) */
	if (err && err != -EBUSY && r->shared->relink) {
		dsm_err("shared region %s: its home made a standby this process "
			"cannot reach: its faults there fail", old->name);
		dsm_coh_stalled_fail(r, -ENOLINK);
		r->shared->relink = false;
	}
	if (!err) {
		r->shared->relink = false;
		if (!r->dead)
			dsm_coh_resend_stalled(r);
	}
	pthread_mutex_unlock(&dsm_eng.lock);
	if (err) {
		if (err != -EBUSY)
			dsm_warn("shared region %s: no new standby yet (%s); "
				 "trying again in %llu s", old->name,
				 strerror(-err), RESTANDBY_RETRY_NS / 1000000000);
		return false;
	}
	dsm_engine_kick();
	if (!held)
		dsm_info("shared region %s: %s standby on %s", old->name,
			 made ? "made a new" : "holds the new",
			 dsm_eng.servers[sb.server].addr);
	return true;
}

/* ---- the mover's pass ------------------------------------------------ */

void dsm_shared_stale(struct dsm_region *r)
{
	if (r->shared->stale)
		return;
	r->shared->stale = true;
	dsm_migrate_kick();
}

static bool home_lost(const struct dsm_shared *sh)
{
	return sh->standby.on && dsm_eng.servers[sh->server].lost;
}

/* The standby's server is lost or being drained (and the home is not
 * lost): the standby is let go, and the region goes on unreplicated. */
static bool standby_gone(const struct dsm_region *r)
{
	const struct dsm_shared *sh = r->shared;
	const struct dsm_server *s = &dsm_eng.servers[sh->standby.server];

	/* stale: it refused a write-back while up */
	return sh->standby.on && (s->lost || s->draining ||
				  (r->place.ext[0].stale & 2u)) &&
	       !dsm_eng.servers[sh->server].lost;
}

static bool leave_standby(struct dsm_region *r, const struct dsm_shared *old)
{
	const struct dsm_server *s = &dsm_eng.servers[old->standby.server];

	pthread_mutex_lock(&dsm_eng.lock);
	if (r->dead || !r->shared->standby.on) {
		pthread_mutex_unlock(&dsm_eng.lock);
		return false;
	}
	/* write-backs from now on go to the home alone; those already
	 * queued reach the standby before the FREE below */
	dsm_shared_set_standby(r, NULL);
	pthread_mutex_unlock(&dsm_eng.lock);
	dsm_share_detach(old->standby.server, old->standby.region_id);
	dsm_warn("shared region %s: its standby on %s is %s: the region is "
		 "not replicated until a new one is made", old->name, s->addr,
		 s->lost ? "lost" : s->draining ? "being drained" :
		 "behind (it refused a write-back)");
	return true;
}

static bool needs_move(const struct dsm_region *r)
{
	const struct dsm_shared *sh = r->shared;

	return sh && !r->dead && (sh->stale || home_lost(sh) ||
				  standby_gone(r) || wants_standby(sh) ||
				  dsm_eng.servers[sh->server].draining);
}

bool dsm_shared_move_work(void)
{
	for (uint32_t i = 0; i < dsm_eng.nregions; i++)
		if (needs_move(dsm_eng.regions[i]))
			return true;
	return false;
}

bool dsm_shared_move_pass(void)
{
	struct dsm_region **v;
	uint32_t n = 0;
	bool moved = false;

	pthread_mutex_lock(&dsm_eng.lock);
	v = malloc((dsm_eng.nregions ? dsm_eng.nregions : 1) * sizeof(*v));
	for (uint32_t i = 0; v && i < dsm_eng.nregions; i++)
		if (needs_move(dsm_eng.regions[i])) {
			v[n] = dsm_eng.regions[i];
			v[n++]->refs++;
		}
	pthread_mutex_unlock(&dsm_eng.lock);
	for (uint32_t i = 0; i < n; i++) {
		struct dsm_shared old;
		bool stale, lost, gone, drains, wants;

		pthread_mutex_lock(&dsm_eng.lock);
		old = *v[i]->shared;
		stale = old.stale;
		lost = home_lost(&old);
		gone = standby_gone(v[i]);
		wants = wants_standby(&old);
		drains = dsm_eng.servers[old.server].draining;
		pthread_mutex_unlock(&dsm_eng.lock);
		if (lost)
			moved |= fail_over(v[i], &old);
		else if (gone)
			moved |= leave_standby(v[i], &old);
		else if (wants && !stale && !drains)
			moved |= restandby(v[i], &old);
		if (lost || !(stale || drains))
			continue;
		moved |= stale ? follow(v[i], &old) : move_off(v[i], &old);
	}
	pthread_mutex_lock(&dsm_eng.lock);
	for (uint32_t i = 0; i < n; i++)
		dsm_region_put(v[i]);
	pthread_mutex_unlock(&dsm_eng.lock);
	free(v);
	return moved;
}
