/*
 * shared.c - dsm_map_shared, dsm_unmap_shared and dsm_fetch_add (room:
 * coherence).  See shared.h for the page states and coherence.c for the
 * protocol's client side.
 *
 * A name becomes a key: BLAKE2b-256 of "dsm shared region\0" and the
 * name.  Servers find a shared region by its key (SHARE_ATTACH with id
 * 0) and refuse a second region with one (SHARE_CREATE: -EEXIST), so no
 * registry is needed to agree on what a name means.  To map a name the
 * client first asks every server it knows to attach it: the region may
 * live on any of them.  If none has it, the region is created on the
 * server that rendezvous hashing of the key picks among the live ones,
 * which every client seeing the same servers picks alike; two creators
 * racing meet there, and the loser (-EEXIST) attaches.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cluster.h"
#include "dsm.h"
#include "engine.h"
#include "evict.h"
#include "log.h"
#include "outbox.h"
#include "region.h"
#include "registry.h"
#include "shared.h"

void dsm_name_digest(const char *tag, const char *name,
		     uint8_t key[DSM_SHARE_KEY_SIZE])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, DSM_SHARE_KEY_SIZE);
	/* the tag with its NUL, so no tag and name run into another's */
	crypto_generichash_update(&st, (const uint8_t *)tag, strlen(tag) + 1);
	crypto_generichash_update(&st, (const uint8_t *)name, strlen(name));
	crypto_generichash_final(&st, key, DSM_SHARE_KEY_SIZE);
}

/* Servers' ids name them the same way from every node when they differ
 * (the registry's do); else their addresses, which then must agree. */
static bool ids_distinct(void)
{
	for (uint32_t i = 0; i < dsm_eng.nservers; i++)
		for (uint32_t j = i + 1; j < dsm_eng.nservers; j++)
			if (dsm_eng.servers[i].id == dsm_eng.servers[j].id)
				return false;
	return true;
}

static uint64_t score(const uint8_t *key, const struct dsm_server *s,
		      bool by_id)
{
	uint64_t out;
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, sizeof(out));
	crypto_generichash_update(&st, key, DSM_SHARE_KEY_SIZE);
	if (by_id)
		crypto_generichash_update(&st, (const uint8_t *)&s->id,
					  sizeof(s->id));
	else
		crypto_generichash_update(&st, (const uint8_t *)s->addr,
					  strlen(s->addr));
	crypto_generichash_final(&st, (uint8_t *)&out, sizeof(out));
	return out;
}

int dsm_shared_pick(const uint8_t key[DSM_SHARE_KEY_SIZE], int except)
{
	bool by_id = ids_distinct();
	uint64_t best = 0;
	int home = -1;

	pthread_mutex_lock(&dsm_eng.lock);
	for (uint32_t i = 0; i < dsm_eng.nservers; i++) {
		const struct dsm_server *s = &dsm_eng.servers[i];
		uint64_t v = score(key, s, by_id);

		if (s->lost || s->draining || (int)i == except)
			continue;
		if (home < 0 || v > best) {
			best = v;
			home = (int)i;
		}
	}
	pthread_mutex_unlock(&dsm_eng.lock);
	return home;
}

int dsm_share_call(uint32_t i, uint8_t type, uint64_t size, uint64_t flags,
		   struct dsm_shared *sh)
{
	struct dsm_share_req m = { .region_id = flags, .size = size };
	uint8_t body[DSM_SHARE_REQ_SIZE], rep[DSM_ALLOC_REPLY_SIZE];
	struct dsm_alloc_reply a;
	uint32_t len;
	int err;

	memcpy(m.key, sh->key, sizeof(m.key));
	dsm_share_req_encode(&m, body);
	err = dsm_engine_call(i, type, body, sizeof(body), rep, sizeof(rep),
			      &len);
	if (!err)
		err = dsm_alloc_reply_decode(rep, len, &a);
	if (err)
		return err;
	if (a.size != size)
		return -EPROTO;
	sh->server = i;
	sh->region_id = a.region_id;
	sh->pool_off = a.pool_off;
	return 0;
}

/* The name of a shared region's standby: another key than the name's,
 * so that nobody attaches to it by the name until it is promoted. */
void dsm_shared_standby_key(const struct dsm_shared *sh, uint8_t *key)
{
	dsm_name_digest("dsm shared standby", sh->name, key);
}

static void standby_of(const struct dsm_shared *sb, struct dsm_standby *out)
{
	*out = (struct dsm_standby){ .on = true, .server = sb->server,
				     .region_id = sb->region_id,
				     .pool_off = sb->pool_off };
}

/* Attach the standby of sh (size bytes) wherever it is but on home, a
 * lost or a draining server.  0, -ENOENT, or the server's error. */
static int standby_attach(const struct dsm_shared *sh, uint64_t size,
			  uint32_t home, struct dsm_standby *out)
{
	struct dsm_shared sb = { 0 };
	int err, filling = 0;

	memcpy(sb.name, sh->name, sizeof(sb.name));
	dsm_shared_standby_key(sh, sb.key);
	for (uint32_t i = 0; i < dsm_eng.nservers; i++) {
		if (i == home || dsm_eng.servers[i].lost ||
		    dsm_eng.servers[i].draining)
			continue;
		err = dsm_share_call(i, DSM_MSG_SHARE_ATTACH, size, 0, &sb);
		if (!err) {
			standby_of(&sb, out);
			return 0;
		}
		if (err == -EAGAIN) /* still being filled */
			filling = err;
		else if (err != -ENOENT)
			return err;
	}
	return filling ? filling : -ENOENT;
}

int dsm_shared_standby_find(const struct dsm_region *r, struct dsm_standby *sb)
{
	return standby_attach(r->shared, r->size, r->shared->server, sb);
}

int dsm_shared_standby_create(const struct dsm_region *r, uint32_t at,
			      bool sealed, struct dsm_standby *out)
{
	struct dsm_shared sb = { 0 };
	int err;

	memcpy(sb.name, r->shared->name, sizeof(sb.name));
	dsm_shared_standby_key(r->shared, sb.key);
	err = dsm_share_call(at, DSM_MSG_SHARE_CREATE, r->size,
			     DSM_SHARE_CREATE_STANDBY |
			     (sealed ? DSM_SHARE_CREATE_SEALED : 0), &sb);
	if (!err)
		standby_of(&sb, out);
	return err;
}

/*
 * Hold the standby of sh (DSM_REPLICAS of 2 or more), on a server other
 * than home: attach wherever it is, or with create, make it where
 * rendezvous hashing of its key picks.  It is made before the region
 * itself, so whoever finds the region finds its standby; a region found
 * without one has failed over, and its holders make one again
 * (shared_move.c).  0 or -errno.
 */
static int standby_hold(uint64_t size, struct dsm_shared *sh, uint32_t home,
			bool create)
{
	struct dsm_shared sb = { 0 };
	int at, err;

	err = standby_attach(sh, size, home, &sh->standby);
	if (err != -ENOENT)
		return err;
	if (!create) {
		dsm_info("shared region %s has no standby now (its home "
			 "failed over): its holders make one again", sh->name);
		return 0;
	}
	memcpy(sb.name, sh->name, sizeof(sb.name));
	dsm_shared_standby_key(sh, sb.key);
	at = dsm_shared_pick(sb.key, (int)home);
	if (at < 0) {
		dsm_err("DSM_REPLICAS=%u keeps a shared region on 2 servers, "
			"but only one is up: %s not created", dsm_eng.replicas,
			sh->name);
		return -ENOMEM;
	}
	err = dsm_share_call((uint32_t)at, DSM_MSG_SHARE_CREATE, size,
			     DSM_SHARE_CREATE_STANDBY, &sb);
	if (err == -EEXIST)
		err = dsm_share_call((uint32_t)at, DSM_MSG_SHARE_ATTACH, size,
				     0, &sb);
	if (!err)
		standby_of(&sb, &sh->standby);
	return err;
}

static void standby_drop(struct dsm_shared *sh)
{
	if (!sh->standby.on)
		return;
	dsm_share_detach(sh->standby.server, sh->standby.region_id);
	sh->standby.on = false;
}

/* Attach wherever the name lives, else create it at its home (its
 * standby first, with replicas).  0 or -errno, holding nothing. */
static int find_or_create(uint64_t size, struct dsm_shared *sh)
{
	bool replicated = dsm_eng.replicas > 1;
	int home, err;

	for (uint32_t i = 0; i < dsm_eng.nservers; i++) {
		if (dsm_eng.servers[i].lost)
			continue;
		err = dsm_share_call(i, DSM_MSG_SHARE_ATTACH, size, 0, sh);
		if (!err && replicated &&
		    (err = standby_hold(size, sh, i, false)))
			dsm_share_detach(i, sh->region_id);
		/* -ESTALE: it moved from there, and is found where it went */
		if (err != -ENOENT && err != -ESTALE) {
			if (err == -EINVAL)
				dsm_err("shared region %s exists with another "
					"size than %llu bytes", sh->name,
					(unsigned long long)size);
			return err;
		}
	}
	home = dsm_shared_pick(sh->key, -1);
	if (home < 0) {
		dsm_err("shared region %s: no live server to create it on",
			sh->name);
		return -ENOMEM;
	}
	if (replicated && (err = standby_hold(size, sh, (uint32_t)home, true)))
		return err;
	err = dsm_share_call(home, DSM_MSG_SHARE_CREATE, size, 0, sh);
	if (err == -EEXIST) /* someone created it since we looked */
		err = dsm_share_call(home, DSM_MSG_SHARE_ATTACH, size, 0, sh);
	if (err)
		standby_drop(sh);
	return err;
}

/* One extent and one part: the whole region at its home. */
static int place_at_home(struct dsm_region *r)
{
	const struct dsm_shared *sh = r->shared;
	struct dsm_placement *pl = &r->place;

	pl->ext = calloc(1, sizeof(*pl->ext));
	pl->part = calloc(2, sizeof(*pl->part));
	if (!pl->ext || !pl->part)
		return -ENOMEM;
	pl->ext[0] = (struct dsm_extent){ .off = 0, .len = r->size,
					  .server = sh->server,
					  .region_id = sh->region_id,
					  .pool_off = sh->pool_off };
	pl->part[0] = (struct dsm_part){ sh->server, sh->region_id,
					 sh->pool_off, r->size };
	pl->n = pl->nparts = 1;
	dsm_shared_set_standby(r, &sh->standby);
	return 0;
}

void dsm_shared_set_standby(struct dsm_region *r, const struct dsm_standby *sb)
{
	struct dsm_placement *pl = &r->place;
	struct dsm_standby none = { 0 };

	if (!sb || !sb->on)
		sb = &none;
	r->shared->standby = *sb;
	pl->ext[0].stale &= ~2u; /* copy 1 is gone, or a new one */
	pl->ext[0].nrep = sb->on;
	pl->nparts = 1 + sb->on;
	if (!sb->on)
		return;
	/* every write-back goes there too (outbox.c), and unmapping
	 * detaches it with the home */
	pl->ext[0].rep[0] = (struct dsm_home){ sb->server, sb->region_id,
					       sb->pool_off };
	pl->part[1] = (struct dsm_part){ sb->server, sb->region_id,
					 sb->pool_off, r->size };
}

static struct dsm_shared *shared_new(const char *name, uint64_t npages)
{
	struct dsm_shared *sh = calloc(1, sizeof(*sh));

	if (!sh)
		return NULL;
	sh->pg = calloc(npages, 1);
	if (!sh->pg) {
		free(sh);
		return NULL;
	}
	strcpy(sh->name, name);
	dsm_name_digest("dsm shared region", name, sh->key);
	return sh;
}

/* The region, mapped and in the table; its holding on the server is
 * already made (find_or_create).  0 or -errno. */
static int map_region(struct dsm_region *r)
{
	int err = place_at_home(r);

	if (!err)
		err = dsm_uffd_register(&dsm_eng.uffd,
					(void *)(uintptr_t)r->base, r->size);
	if (err)
		return err;
	pthread_mutex_lock(&dsm_eng.lock);
	err = dsm_region_insert(r);
	pthread_mutex_unlock(&dsm_eng.lock);
	if (err)
		dsm_uffd_unregister(&dsm_eng.uffd, (void *)(uintptr_t)r->base,
				    r->size);
	return err;
}

void dsm_share_detach(uint32_t server, uint64_t region_id)
{
	struct dsm_free_req m = { .region_id = region_id };
	uint8_t body[DSM_FREE_REQ_SIZE];

	dsm_free_req_encode(&m, body);
	dsm_engine_call(server, DSM_MSG_FREE, body, sizeof(body), NULL, 0,
			NULL);
}

/* The index of the live server whose registry id is id, or -1. */
static int server_with_id(uint32_t id)
{
	int found = -1;

	pthread_mutex_lock(&dsm_eng.lock);
	for (uint32_t i = 0; i < dsm_eng.nservers && found < 0; i++)
		if (dsm_eng.servers[i].id == id && !dsm_eng.servers[i].lost)
			found = (int)i;
	pthread_mutex_unlock(&dsm_eng.lock);
	return found;
}

/* Tests widen the window between holding a name and recording its home
 * with DSM_TEST_SHARE_STALL_MS, so that two creators race in it. */
static void test_stall(void)
{
	const char *v = getenv("DSM_TEST_SHARE_STALL_MS");

	if (v && *v)
		usleep((useconds_t)strtoul(v, NULL, 10) * 1000);
}

/*
 * The registry names another home for the name than where we hold it
 * (*f): two processes that saw different servers created it on two.  If
 * the recorded home has it, our holding goes and we attach there (0);
 * if it does not, the record outlived its region and is stale (1): ours
 * takes it over; if it moved from there (a drain), its mover records
 * where soon (2: ask again).  Or -errno.
 */
static int follow_record(struct dsm_region *r, const struct dsm_reg_home *f)
{
	struct dsm_shared *sh = r->shared, there = *sh;
	int i = server_with_id(f->server), err;

	if (f->server == dsm_eng.servers[sh->server].id)
		return 1; /* a server has one region of a name: ours */
	if (i < 0) {
		dsm_err("shared region %s lives on server %u, which this "
			"process does not reach: not mapped", sh->name, f->server);
		return -EHOSTUNREACH;
	}
	err = dsm_share_call((uint32_t)i, DSM_MSG_SHARE_ATTACH, r->size, 0,
			     &there);
	if (err == -ESTALE)
		return 2; /* moving off that server: recorded again soon */
	if (err)
		return err == -ENOENT ? 1 : err;
	dsm_warn("shared region %s: created on %s while %s had it: moved there",
		 sh->name, dsm_eng.servers[sh->server].addr,
		 dsm_eng.servers[i].addr);
	dsm_share_detach(sh->server, sh->region_id);
	/* the standby it has, or none: not the one made beside ours */
	standby_drop(sh);
	if (dsm_eng.replicas > 1 &&
	    (err = standby_hold(r->size, sh, (uint32_t)i, false)))
		dsm_warn("shared region %s: its standby: %s; not replicated",
			 sh->name, strerror(-err));
	sh->server = there.server;
	sh->region_id = there.region_id;
	sh->pool_off = there.pool_off;
	return 0;
}

/*
 * Record our holding in the registry, where the first home recorded for
 * a name wins: a process that created it elsewhere moves to that home
 * before dsm_map_shared returns, so nobody ever writes to a second copy.
 * Without a registry, homes agree because every process is given the
 * same servers (see the top of this file).  On error our holding is let
 * go.  0 or -errno.
 */
static int settle_home(struct dsm_region *r)
{
	const struct dsm_reg_home *take_over = NULL;
	struct dsm_reg_home found, stale;
	int err;

	test_stall();
	for (int tries = 0; tries < 40; tries++) {
		err = dsm_cluster_shared_claim(r, take_over, &found);
		if (err != -EEXIST)
			goto out;
		err = follow_record(r, &found);
		if (err < 0)
			goto out;
		if (err == 2)
			usleep(100 * 1000);
		stale = found;
		take_over = err == 1 ? &stale : NULL;
	}
	dsm_err("shared region %s: its home in the registry keeps changing: "
		"not mapped", r->shared->name);
	err = -EAGAIN;
out:
	if (err) {
		dsm_share_detach(r->shared->server, r->shared->region_id);
		standby_drop(r->shared);
	}
	return err;
}

static int check_args(const char *name, size_t size, int flags)
{
	size_t len = name ? strnlen(name, DSM_SHARED_NAME_MAX + 1) : 0;

	if (!dsm_eng.servers)
		return -ENOTCONN;
	if (!len || len > DSM_SHARED_NAME_MAX) {
		dsm_err("dsm_map_shared: a name of 1 to %d bytes, please",
			DSM_SHARED_NAME_MAX);
		return -EINVAL;
	}
	if (!size || size > (1ULL << 46) || flags) {
		dsm_err("dsm_map_shared(%s): %s", name, flags ?
			"flags must be 0" : "size must be 1 byte to 64 TiB");
		return -EINVAL;
	}
	return 0;
}

void *dsm_map_shared(const char *name, size_t size, int flags)
{
	uint64_t bytes = (size + DSM_PAGE_SIZE - 1) & ~(uint64_t)(DSM_PAGE_SIZE - 1);
	struct dsm_region *r = NULL;
	int err = check_args(name, size, flags);

	if (err)
		goto fail;
	err = -ENOMEM;
	r = dsm_region_new(bytes);
	if (!r || !(r->shared = shared_new(name, r->npages)))
		goto fail;
	r->refs = 1; /* ours until the table takes it */
	err = find_or_create(bytes, r->shared);
	if (!err)
		err = settle_home(r);
	if (err)
		goto fail;
	err = map_region(r);
	if (err) {
		dsm_share_detach(r->shared->server, r->shared->region_id);
		standby_drop(r->shared);
		dsm_cluster_shared_removed(r->shared->key);
		goto fail;
	}
	dsm_info("shared region %s: %llu bytes, home %s%s%s", name,
		 (unsigned long long)bytes,
		 dsm_eng.servers[r->shared->server].addr,
		 r->shared->standby.on ? ", standby " : "",
		 r->shared->standby.on ?
		 dsm_eng.servers[r->shared->standby.server].addr : "");
	/* the table's reference remains; faults may hold others now */
	pthread_mutex_lock(&dsm_eng.lock);
	dsm_region_put(r);
	pthread_mutex_unlock(&dsm_eng.lock);
	return (void *)(uintptr_t)r->base;
fail:
	if (r) {
		munmap((void *)(uintptr_t)r->base, r->size);
		r->refs = 1;
		dsm_region_put(r);
	}
	errno = -err;
	return NULL;
}

/* Under the lock: the shared region whose base is p. */
static struct dsm_region *shared_at(void *p)
{
	struct dsm_region *r = dsm_region_find((uintptr_t)p);

	return r && r->shared && r->base == (uintptr_t)p ? r : NULL;
}

int dsm_unmap_shared(void *p)
{
	struct dsm_placement parts = { 0 };
	uint8_t key[DSM_SHARE_KEY_SIZE];
	struct dsm_sync_wait *w;
	struct dsm_region *r;
	bool unmapped;
	int err, werr;

	if (!dsm_eng.servers)
		return -ENOTCONN;
	if (!(w = dsm_sync_wait_new()))
		return -ENOMEM;
	pthread_mutex_lock(&dsm_eng.lock);
	r = shared_at(p);
	if (!r) {
		pthread_mutex_unlock(&dsm_eng.lock);
		dsm_sync_wait_end(w);
		dsm_warn("dsm_unmap_shared(%p): not from dsm_map_shared", p);
		return -EINVAL;
	}
	/* what this process wrote reaches the home before it lets go */
	err = dsm_sync_range(r, 0, r->npages, &dsm_eng.sendq, w);
	r->refs++; /* another thread may unmap it while we wait */
	pthread_mutex_unlock(&dsm_eng.lock);
	dsm_engine_kick();
	werr = dsm_sync_wait_end(w);
	if (err || werr)
		dsm_err("shared region %s: writing back before unmapping: %s",
			r->shared->name, strerror(-(err ? err : werr)));
	pthread_mutex_lock(&dsm_eng.lock);
	unmapped = !r->dead;
	memcpy(key, r->shared->key, sizeof(key));
	if (unmapped) {
		dsm_region_unmap(r, &parts);
		dsm_coh_stalled_fail(r, -ESTALE); /* nothing waits on them */
	}
	dsm_region_put(r);
	pthread_mutex_unlock(&dsm_eng.lock);
	/* the registry: no longer a holder (out of the table first, so the
	 * lease thread does not write it back) */
	if (unmapped)
		dsm_cluster_shared_removed(key);
	dsm_unplace(&parts); /* FREE: detaches */
	dsm_placement_clear(&parts);
	return err ? err : werr;
}

uint64_t dsm_fetch_add(uint64_t *addr, uint64_t delta)
{
	struct dsm_region *r;

	if ((uintptr_t)addr % sizeof(*addr) || !dsm_eng.servers) {
		errno = EINVAL;
		return 0;
	}
	bool shared;

	pthread_mutex_lock(&dsm_eng.lock);
	r = dsm_region_find((uintptr_t)addr);
	shared = r && r->shared; /* r may go once the lock is dropped */
	pthread_mutex_unlock(&dsm_eng.lock);
	if (!shared) {
		errno = EINVAL;
		return 0;
	}
	/* A locked read-modify-write is one access: it completes under the
	 * write permission our ownership gives, or faults before changing
	 * anything.  Taking ownership away write-protects the page (a TLB
	 * shootdown the instruction cannot straddle) before its copy goes
	 * back, so no other node can see the word between its read and its
	 * write. */
	return __atomic_fetch_add(addr, delta, __ATOMIC_SEQ_CST);
}
