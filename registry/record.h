/*
 * record.h - the cluster registry's keys and records (room: registry).
 *
 * Every key of a cluster starts with "dsm:<cluster>:", so several clusters
 * can share one Redis.  Records are Redis hashes of decimal or plain-text
 * fields, so an operator can read them with redis-cli HGETALL:
 *
 *   dsm:C:servers          SET of server ids
 *   dsm:C:server:ID        HASH  id addr host pid capacity used regions
 *                                clients started_ms heartbeat_ms draining
 *                                (0/1) transports ("tcp", "rdma" or
 *                                "tcp,rdma": what addr serves), and
 *                                the counters of dsm_reg_server_counters
 *                          TTL   the heartbeat timeout: a server that stops
 *                                beating (crashed, hung, cut off) vanishes
 *   dsm:C:clients          SET of client ids
 *   dsm:C:client:ID        HASH  id host pid started_ms heartbeat_ms
 *                                transports ("SERVERID=tcp|rdma[+lost],..."
 *                                : how it reaches each server), one_sided
 *                                (what it read and wrote one-sidedly on
 *                                each server, which cannot count it), and
 *                                the counters of dsm_reg_client_counters
 *                          TTL   the client's lease
 *   dsm:C:regions          SET of region ids
 *   dsm:C:region:ID        HASH  id name size owner created_ms extents
 *                          TTL   its owner's lease, renewed with it: a
 *                                crashed client's regions go with it
 *   dsm:C:shares           SET of shared regions' keys
 *   dsm:C:share:KEY        HASH  key name size home region_id pool_off,
 *                                and holder:CLIENT = attached_ms for each
 *                                client holding it (dsm_map_shared)
 *                          TTL   its holders' leases, renewed with each:
 *                                it goes with its last live holder
 *   dsm:C:drain            SET of server ids an operator is draining
 *                          (dsmctl drain): written by dsmctl, read by
 *                          each server with its heartbeat, left by a
 *                          server that stops or starts (a new process
 *                          holds nothing to drain)
 *
 * The sets are indexes only: a member whose hash has expired is a record
 * that died, and readers drop it from the set as they find it; so do the
 * servers, every DSM_REG_PRUNE_MS, whether anyone reads or not.  Each
 * index has the TTL of its members, renewed with theirs: when the last
 * member stops renewing, its index goes too.  Client ids are random
 * (dsm_reg_new_id), so Redis holds no counter that a restart could
 * reset.
 *
 * A shared region is not one client's: it is keyed by its name (KEY is
 * the hex of the name's 32-byte digest, as servers know it: any bytes make
 * a key of 64 safe characters) and every holder writes the same record
 * with its own holder field.  A holder's membership lives as long as its
 * lease: a holder whose client record is gone is dead, readers skip it
 * and drop its field (dsm_reg_list_shares), as the servers do every
 * DSM_REG_PRUNE_MS; dsm_unmap_shared drops it at once.  Whoever drops the
 * last holder field deletes the record, in the same script.
 *
 * Extents
 * are "OFF+LEN@SERVER/REGION/POOLOFF" joined by ',' (all decimal): bytes
 * [OFF, OFF+LEN) of the region live at POOLOFF in server SERVER's pool,
 * under that server's region id REGION - the placement map of
 * client/placement.h, written down.  An extent with replicas
 * (DSM_REPLICAS) adds ";SERVER/REGION/POOLOFF" per further copy, each on
 * a server of its own.
 *
 * This file is the model: key names, records and their encodings, shared
 * by the blocking client (registry.h: libdsm, dsmctl, and dsm-server's
 * first registration) and by dsm-server's asynchronous heartbeat on its
 * own loop (server/membership.c).
 */
#ifndef DSM_REG_RECORD_H
#define DSM_REG_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DSM_REG_DEFAULT_CLUSTER "default"
#define DSM_REG_CLUSTER_MAX 64
#define DSM_REG_HEARTBEAT_MS 1000   /* servers and clients beat this often */
#define DSM_REG_TTL_MS 5000         /* ...and vanish this long after the last */
#define DSM_REG_TIMEOUT_MS 2000     /* connect and command timeout */
/* Client ids are drawn at random from 1..this (dsm_reg_new_id): the
 * largest with every region id (id * 10^9 + n, n < 10^9) below 2^53. */
#define DSM_REG_CLIENT_ID_MAX 9007198ULL
/* Each server drops index members whose record is gone this often. */
#define DSM_REG_PRUNE_MS 10000
/* A server drops a client whose lease has been missing this long, on a
 * Redis that takes the server's own writes, and whose connection has
 * been silent as long (server/membership.c): a restarted Redis is empty
 * until the lease threads write again (within a heartbeat), which must
 * not cost anyone their memory. */
#define DSM_REG_LEASE_GRACE_MS (2 * DSM_REG_TTL_MS)

/* A cluster name: 1..64 of [A-Za-z0-9_.-].  0 or -EINVAL. */
int dsm_reg_check_cluster(const char *name);

/* "dsm:<cluster>:<what>" into buf; what is printf-style. */
const char *dsm_reg_key(char *buf, size_t len, const char *cluster,
			const char *what, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Counters published with every heartbeat (servers) and lease renewal
 * (clients), for `dsmctl stats`: cumulative since the process started.
 * Fields absent from a record read as 0.
 */
enum dsm_reg_server_counter {
	DSM_RS_READS, DSM_RS_WRITES, DSM_RS_PAGES_READ, DSM_RS_PAGES_WRITTEN,
	DSM_RS_PAGES_DISCARDED,
	DSM_RS_BYTES_IN, DSM_RS_BYTES_OUT, DSM_RS_ERRORS, DSM_RS_AUTH_REFUSED,
	DSM_RS_CONN_REFUSED, DSM_RS_OVER_LIMIT,
	DSM_RS_NCOUNTERS
};
enum dsm_reg_client_counter {
	DSM_RC_MISSING_FAULTS, DSM_RC_WP_FAULTS, DSM_RC_PAGES_FETCHED,
	DSM_RC_PAGES_EVICTED, DSM_RC_PAGES_WRITTEN_BACK, DSM_RC_BYTES_IN,
	DSM_RC_BYTES_OUT, DSM_RC_RESIDENT_PAGES, DSM_RC_FAULT_P50_NS,
	DSM_RC_FAULT_P99_NS, DSM_RC_BLOCKTIME_NS, DSM_RC_PAGES_MOVED,
	DSM_RC_NCOUNTERS
};
/* Their field names, in enum order. */
extern const char *const dsm_reg_server_counters[DSM_RS_NCOUNTERS];
extern const char *const dsm_reg_client_counters[DSM_RC_NCOUNTERS];

struct dsm_reg_server {
	uint32_t id;
	char addr[128];       /* host:port clients connect to */
	char transports[16];  /* served at addr: "tcp", "rdma", "tcp,rdma" */
	char host[64];        /* machine name, for people */
	uint32_t pid;
	uint64_t capacity, used, regions, clients;
	uint64_t started_ms, heartbeat_ms; /* wall clock, ms since the epoch */
	bool draining;        /* the server knows it is being drained */
	uint64_t counters[DSM_RS_NCOUNTERS];
};

/* Where one copy of an extent lives. */
struct dsm_reg_copy {
	uint32_t server;      /* registry id of the server */
	uint64_t region_id;   /* that server's name for it */
	uint64_t pool_off;
};

/* Copies of an extent besides the first (a client's DSM_REPLICAS - 1). */
#define DSM_REG_MAX_REPLICAS 2

/* Encoded "OFF+LEN@S/R/P", then ";S/R/P" per replica. */
struct dsm_reg_extent {
	uint64_t off, len;    /* bytes of the region */
	uint32_t server;      /* registry id of the server */
	uint64_t region_id;   /* that server's name for it */
	uint64_t pool_off;
	uint32_t nrep;        /* replicas: more copies, on other servers */
	struct dsm_reg_copy rep[DSM_REG_MAX_REPLICAS];
};

struct dsm_reg_region {
	uint64_t id;
	char name[64];        /* may be empty */
	uint64_t size;
	uint64_t owner;       /* client id */
	uint64_t created_ms;
	struct dsm_reg_extent *ext;
	uint32_t n;
};

/* The hex of a shared region's key (struct dsm_shared's, 32 bytes). */
#define DSM_REG_SHARE_KEY_HEX 64
/* dsm_map_shared's longest name (DSM_SHARED_NAME_MAX). */
#define DSM_REG_SHARE_NAME_MAX 255
/* Holder fields one record may have: the server lets 64 clients hold a
 * region at once; the rest is room for dead ones not yet dropped. */
#define DSM_REG_SHARE_HOLDERS_MAX 1024

struct dsm_reg_holder {
	uint64_t client;      /* client id */
	uint64_t attached_ms; /* when it mapped the region */
	/* from the client's record, when listed (dsm_reg_list_shares) */
	char host[64];
	uint32_t pid;
};

struct dsm_reg_share {
	char key[DSM_REG_SHARE_KEY_HEX + 1];
	char name[DSM_REG_SHARE_NAME_MAX + 1];
	uint64_t size;
	uint32_t home;        /* registry id of the server holding it all */
	uint64_t region_id;   /* that server's name for it */
	uint64_t pool_off;
	struct dsm_reg_holder *holder; /* malloc'd, by client id */
	uint32_t nholders;
};

struct dsm_reg_client {
	uint64_t id;
	char host[64];
	char transports[256];  /* "SERVERID=rdma,SERVERID=tcp+lost", or "" */
	/* one-sided traffic per server: "SERVERID:READS:WRITES:PAGES_READ:
	 * PAGES_WRITTEN,...", or "" (dsm_reg_one_sided_for reads it) */
	char one_sided[2048];
	uint32_t pid;
	uint64_t started_ms, heartbeat_ms;
	uint64_t counters[DSM_RC_NCOUNTERS];
};

/* Field lists for HSET, and decoding from HGETALL: one place for each
 * record's encoding, shared by the synchronous and asynchronous sides.
 * argv gets "HSET", key, then name/value pairs; bufs holds the values.
 * Returns argc. */
#define DSM_REG_ARGV_MAX 56
struct dsm_reg_argv {
	const char *argv[DSM_REG_ARGV_MAX];
	size_t len[DSM_REG_ARGV_MAX];
	char vals[DSM_REG_ARGV_MAX / 2][32];
	int argc;
};
void dsm_reg_server_argv(const struct dsm_reg_server *s, const char *key,
			 struct dsm_reg_argv *a);
void dsm_reg_client_argv(const struct dsm_reg_client *c, const char *key,
			 struct dsm_reg_argv *a);
/* extents: dsm_reg_extents_encode's string for rg. */
void dsm_reg_region_argv(const struct dsm_reg_region *rg, const char *key,
			 const char *extents, struct dsm_reg_argv *a);
/* The record's fields, without any holder's: each holder adds its own
 * (dsm_reg_put_share). */
void dsm_reg_share_argv(const struct dsm_reg_share *s, const char *key,
			struct dsm_reg_argv *a);
/* kv: n strings, name, value, name, value...  0 or -EINVAL (missing or
 * malformed field). */
int dsm_reg_server_decode(char **kv, size_t n, struct dsm_reg_server *s);
int dsm_reg_client_decode(char **kv, size_t n, struct dsm_reg_client *c);
/* On success r->ext is malloc'd (free with dsm_reg_region_clear). */
int dsm_reg_region_decode(char **kv, size_t n, struct dsm_reg_region *r);
void dsm_reg_region_clear(struct dsm_reg_region *r);
/* On success s->holder is malloc'd (free with dsm_reg_share_clear):
 * every holder:CLIENT field, sorted by client id, host and pid empty. */
int dsm_reg_share_decode(char **kv, size_t n, struct dsm_reg_share *s);
void dsm_reg_share_clear(struct dsm_reg_share *s);
/* The holder field of a client: "holder:CLIENT". */
#define DSM_REG_HOLDER_PREFIX "holder:"
/* Where the client id starts in it, counting from 1 (Lua's string.sub). */
#define DSM_REG_HOLDER_PREFIX_POS "8"
/* A shared region's key, as hex: out gets 2 * len + 1 bytes. */
void dsm_reg_hex(const uint8_t *key, size_t len, char *out);
/* "OFF+LEN@S/R/P,..." of r's extents: a malloc'd string, or NULL. */
char *dsm_reg_extents_encode(const struct dsm_reg_region *r);

uint64_t dsm_reg_now_ms(void);

/* What a client's one_sided field says it read and wrote on server,
 * added to *out.  0, or -EINVAL for a malformed field. */
struct dsm_reg_one_sided {
	uint64_t reads, writes, pages_read, pages_written;
};
int dsm_reg_one_sided_for(const char *text, uint32_t server,
			  struct dsm_reg_one_sided *out);
/* How a client's transports field says it reaches server: "tcp",
 * "rdma", "rdma+lost"..., or NULL if it names none. */
const char *dsm_reg_transport_for(const char *text, uint32_t server,
				  char *buf, size_t len);

/* Whether a server's record offers name ("tcp", "rdma"). */
bool dsm_reg_server_offers(const struct dsm_reg_server *s, const char *name);

#endif /* DSM_REG_RECORD_H */
