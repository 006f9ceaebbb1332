/*
 * registry.h - the blocking registry client (room: registry): libdsm and
 * dsmctl read and write the cluster's records in Redis through hiredis,
 * each call bounded by DSM_REG_TIMEOUT_MS, and dsm-server registers
 * through it once at start.  The records themselves are in
 * record.h, the address and login in addr.h.
 */
#ifndef DSM_REGISTRY_H
#define DSM_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "record.h"

struct dsm_reg;

/* Connect within DSM_REG_TIMEOUT_MS, and log in if a has a password.  On
 * failure the message in err names the address and what to check;
 * returns -errno (-EACCES: Redis refused us, or wants a password). */
int dsm_reg_open(const struct dsm_reg_addr *a, const char *cluster,
		 struct dsm_reg **out, char *err, size_t errlen);
void dsm_reg_close(struct dsm_reg *r);
const char *dsm_reg_cluster(const struct dsm_reg *r);
/* The registry's url for messages, password redacted. */
const char *dsm_reg_url(const struct dsm_reg *r);

/* Live servers, sorted by id.  *out is malloc'd.  0 or -errno. */
int dsm_reg_list_servers(struct dsm_reg *r, struct dsm_reg_server **out,
			 size_t *n);
int dsm_reg_list_clients(struct dsm_reg *r, struct dsm_reg_client **out,
			 size_t *n);
/* Free with dsm_reg_regions_free.  A region whose record does not decode
 * is left out; with bad, its id is added to *bad (malloc'd, *nbad of
 * them; free with dsm_reg_ids_free). */
int dsm_reg_list_regions(struct dsm_reg *r, struct dsm_reg_region **out,
			 size_t *n, char ***bad, size_t *nbad);
void dsm_reg_ids_free(char **ids, size_t n);
void dsm_reg_regions_free(struct dsm_reg_region *v, size_t n);
/* One region: 0, -ENOENT, or -errno. */
int dsm_reg_get_region(struct dsm_reg *r, uint64_t id,
		       struct dsm_reg_region *out);

/* Create or refresh a server's record, alive for ttl_ms. */
int dsm_reg_put_server(struct dsm_reg *r, const struct dsm_reg_server *s,
		       uint64_t ttl_ms);
/* A fresh client id (region ids are made from it: cluster.h), random
 * and claimed: its record is created (alive for ttl_ms) only if no other
 * client's exists, so ids stay unique across Redis restarts (redis.c
 * says why).  0 or -errno. */
int dsm_reg_new_id(struct dsm_reg *r, uint64_t ttl_ms, uint64_t *id);
/* Create or refresh a client's record; its lease lasts ttl_ms. */
int dsm_reg_put_client(struct dsm_reg *r, const struct dsm_reg_client *c,
		       uint64_t ttl_ms);
int dsm_reg_del_client(struct dsm_reg *r, uint64_t id);
/* 1 if the client's record exists (its lease is live), 0 if not, or
 * -errno. */
int dsm_reg_client_exists(struct dsm_reg *r, uint64_t id);
int dsm_reg_put_region(struct dsm_reg *r, const struct dsm_reg_region *rg,
		       uint64_t ttl_ms);
/* Renew the TTL of n region records (one pipelined batch).  0 or -errno. */
int dsm_reg_touch_regions(struct dsm_reg *r, const uint64_t *ids, size_t n,
			  uint64_t ttl_ms);
int dsm_reg_del_region(struct dsm_reg *r, uint64_t id);
/* Shared regions with at least one live holder, sorted by name; each
 * holder's host and pid are its client record's.  A holder whose
 * client record is gone (its lease expired) is left out and dropped
 * from the record; a record left without holders goes.  Malformed
 * records as dsm_reg_list_regions.  Free with dsm_reg_shares_free. */
int dsm_reg_list_shares(struct dsm_reg *r, struct dsm_reg_share **out,
			size_t *n, char ***bad, size_t *nbad);
void dsm_reg_shares_free(struct dsm_reg_share *v, size_t n);
/* Where a shared region lives: its home server, and that server's id for
 * the region. */
struct dsm_reg_home {
	uint32_t server;
	uint64_t region_id;
};
/* Create or refresh sh's record, client among its holders (since
 * attached_ms); the record lives ttl_ms unless a holder renews it.
 * sh->holder is not read.  A record naming another home or region than
 * sh's is left alone: -EEXIST, with what it names in *found.  Unless it
 * names *stale (may be NULL): then it is taken over, its holders
 * dropped. */
int dsm_reg_put_share(struct dsm_reg *r, const struct dsm_reg_share *sh,
		      uint64_t client, uint64_t attached_ms, uint64_t ttl_ms,
		      const struct dsm_reg_home *stale,
		      struct dsm_reg_home *found);
/* Client no longer holds the shared region of key (hex): its field
 * goes, and the record with its last holder. */
int dsm_reg_del_share_holder(struct dsm_reg *r, const char *key,
			     uint64_t client);
/* Add (on) or remove a server id from the drain set.  1 if the set
 * changed, 0 if it already was so, or -errno. */
int dsm_reg_set_drain(struct dsm_reg *r, uint32_t server, bool on);

#endif /* DSM_REGISTRY_H */
