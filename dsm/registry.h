/*
 * registry.h - the cluster registry in Redis (room: registry).
 *
 * Every key of a cluster starts with "dsm:<cluster>:", so several clusters
 * can share one Redis.  Records are Redis hashes of decimal or plain-text
 * fields, so an operator can read them with redis-cli HGETALL:
 *
 *   dsm:C:servers          SET of server ids
 *   dsm:C:server:ID        HASH  id addr host pid capacity used regions
 *                                clients started_ms heartbeat_ms draining
 *                                (0/1), and
 *                                the counters of dsm_reg_server_counters
 *                          TTL   the heartbeat timeout: a server that stops
 *                                beating (crashed, hung, cut off) vanishes
 *   dsm:C:clients          SET of client ids
 *   dsm:C:client:ID        HASH  id host pid started_ms heartbeat_ms, and
 *                                the counters of dsm_reg_client_counters
 *                          TTL   the client's lease
 *   dsm:C:regions          SET of region ids
 *   dsm:C:region:ID        HASH  id name size owner created_ms extents
 *                          TTL   its owner's lease, renewed with it: a
 *                                crashed client's regions go with it
 *   dsm:C:next_id          counter for client and region ids
 *   dsm:C:drain            SET of server ids an operator is draining
 *                          (dsmctl drain): written by dsmctl, read by
 *                          each server with its heartbeat
 *
 * The sets are indexes only: a member whose hash has expired is a record
 * that died, and readers drop it from the set as they find it.  Extents
 * are "OFF+LEN@SERVER/REGION/POOLOFF" joined by ',' (all decimal): bytes
 * [OFF, OFF+LEN) of the region live at POOLOFF in server SERVER's pool,
 * under that server's region id REGION - the placement map of
 * client/engine.h, written down.
 *
 * This file is the model and the synchronous access used by the client
 * library and dsmctl (hiredis, blocking, with a timeout).  dsm-server
 * registers itself asynchronously on its own loop (server/registry.c),
 * with the same key names and record encodings.
 */
#ifndef DSM_REGISTRY_H
#define DSM_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DSM_REG_DEFAULT_CLUSTER "default"
#define DSM_REG_DEFAULT_PORT 6379
#define DSM_REG_CLUSTER_MAX 64
#define DSM_REG_HEARTBEAT_MS 1000   /* servers and clients beat this often */
#define DSM_REG_TTL_MS 5000         /* ...and vanish this long after the last */
#define DSM_REG_TIMEOUT_MS 2000     /* connect and command timeout */
/* A server drops a client whose lease has been missing this long: a
 * restarted Redis is empty until the lease threads write again (within a
 * heartbeat), which must not cost anyone their memory. */
#define DSM_REG_LEASE_GRACE_MS (2 * DSM_REG_TTL_MS)

/*
 * Where the registry is, and how to log in to it.  A Redis with
 * requirepass or ACL users wants AUTH first: pass is sent right after
 * every connect (and reconnect), by the synchronous and the asynchronous
 * side alike.  It never appears in a message: url is what messages show,
 * with the password as "***".
 */
#define DSM_REG_PASS_MAX 512
struct dsm_reg_addr {
	char host[256];
	uint16_t port;
	char user[128];         /* ACL user; empty: Redis's default user */
	char pass[DSM_REG_PASS_MAX]; /* empty: no AUTH */
	bool pass_in_url;       /* ...else from the password file */
	char pass_opt[64];      /* how this program takes a password file,
				 * for messages: "--registry-password-file" */
	char url[320];          /* as given, password redacted */
};

/* "redis://[[USER]:PASSWORD@]HOST[:PORT][/]" or "HOST[:PORT]"; '%XX' in
 * USER and PASSWORD stands for the byte XX.  0 or -EINVAL. */
int dsm_reg_parse_url(const char *url, struct dsm_reg_addr *a);
/* url with any password replaced by "***", for messages: also for a url
 * that does not parse. */
const char *dsm_reg_redact(const char *url, char *buf, size_t len);
/*
 * The registry at url, with the password in pass_file if not NULL (the
 * file's first line; a file others may read is refused, as auth.h's
 * secret file is).  pass_opt names how this program is given a password
 * file ("--registry-password-file"), for messages.  A password both in
 * url and in a file is an error.  0, or -errno with a message in err.
 */
int dsm_reg_addr_init(struct dsm_reg_addr *a, const char *url,
		      const char *pass_file, const char *pass_opt,
		      char *err, size_t errlen);
/* Forget the password (the memory it was in, too). */
void dsm_reg_addr_wipe(struct dsm_reg_addr *a);
/* AUTH [user] password as argv for hiredis: its argc, 0 if a has no
 * password.  The pointers are into a. */
int dsm_reg_auth_argv(const struct dsm_reg_addr *a, const char *argv[3],
		      size_t len[3]);
/* What to tell the operator when Redis answers AUTH (or, with no
 * password sent, a first command) with the error reply: wrong password,
 * a password missing or one given to a Redis that has none. */
void dsm_reg_auth_error(const struct dsm_reg_addr *a, const char *reply,
			char *err, size_t errlen);
/* Whether an error reply means "log in first". */
bool dsm_reg_noauth(const char *reply);

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
	char host[64];        /* machine name, for people */
	uint32_t pid;
	uint64_t capacity, used, regions, clients;
	uint64_t started_ms, heartbeat_ms; /* wall clock, ms since the epoch */
	bool draining;        /* the server knows it is being drained */
	uint64_t counters[DSM_RS_NCOUNTERS];
};

struct dsm_reg_extent {
	uint64_t off, len;    /* bytes of the region */
	uint32_t server;      /* registry id of the server */
	uint64_t region_id;   /* that server's name for it */
	uint64_t pool_off;
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

struct dsm_reg_client {
	uint64_t id;
	char host[64];
	uint32_t pid;
	uint64_t started_ms, heartbeat_ms;
	uint64_t counters[DSM_RC_NCOUNTERS];
};

/* Field lists for HSET, and decoding from HGETALL: one place for each
 * record's encoding, shared by the synchronous and asynchronous sides.
 * argv gets "HSET", key, then name/value pairs; bufs holds the values.
 * Returns argc. */
#define DSM_REG_ARGV_MAX 48
struct dsm_reg_argv {
	const char *argv[DSM_REG_ARGV_MAX];
	size_t len[DSM_REG_ARGV_MAX];
	char vals[DSM_REG_ARGV_MAX / 2][32];
	int argc;
};
void dsm_reg_server_argv(const struct dsm_reg_server *s, const char *key,
			 struct dsm_reg_argv *a);
/* kv: n strings, name, value, name, value...  0 or -EINVAL (missing or
 * malformed field). */
int dsm_reg_server_decode(char **kv, size_t n, struct dsm_reg_server *s);
int dsm_reg_client_decode(char **kv, size_t n, struct dsm_reg_client *c);
/* On success r->ext is malloc'd (free with dsm_reg_region_clear). */
int dsm_reg_region_decode(char **kv, size_t n, struct dsm_reg_region *r);
void dsm_reg_region_clear(struct dsm_reg_region *r);
/* "OFF+LEN@S/R/P,..." of r's extents: a malloc'd string, or NULL. */
char *dsm_reg_extents_encode(const struct dsm_reg_region *r);

uint64_t dsm_reg_now_ms(void);

/* ---- synchronous access (client library, dsmctl) ---------------------- */

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
/* A fresh id for a client or region. */
int dsm_reg_new_id(struct dsm_reg *r, uint64_t *id);
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
/* Add (on) or remove a server id from the drain set.  0 or -errno. */
int dsm_reg_set_drain(struct dsm_reg *r, uint32_t server, bool on);

#endif /* DSM_REGISTRY_H */
