/*
 * cluster.h - the client's side of the cluster registry, internal to
 * libdsm (room: registry).  See cluster.c.
 */
#ifndef DSM_CLIENT_CLUSTER_H
#define DSM_CLIENT_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "region.h"

/* Region ids are client id * this + the client's count of regions. */
#define DSM_REGION_IDS_PER_CLIENT 1000000000ULL

/* What the registry says of a server it lists. */
struct dsm_listed {
	uint32_t id;      /* its registry id: its HELLO must say the same */
	bool offers_rdma;
};

/* Connect to the registry at url (with the password in pass_file, if
 * not NULL), cluster name (NULL: default), and list the live servers as
 * "host:port,host:port..." in *servers, and what the registry says of
 * each in (*listed)[i] (both malloc'd).  0 or -errno, after logging what
 * to check. */
int dsm_cluster_open(const char *url, const char *pass_file,
		     const char *name, char **servers,
		     struct dsm_listed **listed);
/* Once the engine runs: record this client, start renewing its lease. */
int dsm_cluster_join(void);
/* A region was placed: name it (r->id) and record it, before it enters
 * the region table.  A region freed (or not made after all): remove its
 * record.  No-ops without a registry.  Not under the engine lock. */
void dsm_cluster_region_added(struct dsm_region *r);
void dsm_cluster_region_removed(uint64_t id);
/* r's extents moved (migrate.c): record its placement again.  r is held
 * by the caller and may have been freed meanwhile (then: nothing). */
void dsm_cluster_region_moved(struct dsm_region *r);
/* dsm_map_shared holds shared region r at a home, before mapping it:
 * record this client among its holders, renewed with the lease once r
 * is in the table.  -EEXIST if the record names another home or region
 * (*found), unless it names *stale (may be NULL), which is taken over.
 * Redis failing is not an error here (the lease thread records it
 * later).  Its holding was let go (dsm_unmap_shared, once the region has
 * left the table): remove this client from the holders of the region
 * whose key (DSM_SHARE_KEY_SIZE bytes) that is.  No-ops without a
 * registry.  Not under the engine lock. */
struct dsm_reg_home;
int dsm_cluster_shared_claim(struct dsm_region *r,
			     const struct dsm_reg_home *stale,
			     struct dsm_reg_home *found);
void dsm_cluster_shared_removed(const uint8_t *key);
/* Stop renewing, remove this client's record, disconnect. */
void dsm_cluster_leave(void);

#endif /* DSM_CLIENT_CLUSTER_H */
