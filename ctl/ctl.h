/*
 * ctl.h - dsmctl's internals: what its files share, and nothing else (room:
 * CLI).
 *
 * dsmctl is the operator's view of a dsm cluster, as its registry sees it.
 * Every command but drain runs the same three steps, each in a file of
 * its own:
 *
 *   dsmctl.c    parse the command line (usage errors exit 2 before
 *               anything is contacted); the command table and the usage
 *               texts; main, which runs the three steps
 *   snapshot.c  fetch a snapshot from the registry (registry/registry.h:
 *               blocking, with a timeout), and look things up in it
 *   text.c      print the snapshot as tables, for people
 *   json.c      ...or as one JSON document, for programs
 *   prometheus.c  ...or, for stats, in the Prometheus text format
 *
 * drain.c is the one command that changes something: it records a drain
 * in the registry and watches it progress (its own run function), with
 * the progress line of progress.c.
 *
 * A command is a row of commands[] (dsmctl.c) saying what it fetches and
 * how it prints.  The printers only read the snapshot: whatever the
 * registry could get wrong has been reported before they run.
 */
#ifndef DSM_CTL_H
#define DSM_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "registry.h"

/* The exit statuses 'dsmctl --help' promises; 0 is ok. */
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* What the command line asked for. */
struct ctl {
	const char *given_url;  /* --registry or DSM_REGISTRY, as given */
	const char *url;        /* for output: addr.url, password redacted */
	const char *pass_file;  /* the registry's password, or NULL */
	const char *pass_opt;   /* where pass_file came from */
	struct dsm_reg_addr addr;
	const char *cluster;
	bool json;
	bool prometheus;        /* stats --prometheus */
	uint64_t region_id;     /* region show */
	const char *share_name; /* shared show */
	uint64_t watch_ms;      /* stats --watch: every this many ms */
	uint32_t server_id;     /* drain */
	bool cancel, no_wait;   /* drain --cancel, --no-wait */
	uint64_t timeout_ms;    /* drain --timeout */
	const struct snapshot *prev; /* --watch: the previous round's */
};

/* What a command fetches before it prints anything. */
enum {
	NEED_SERVERS = 1,
	NEED_CLIENTS = 2,
	NEED_REGIONS = 4,
	NEED_REGION = 8,        /* the one region ctl.region_id */
	NEED_SHARES = 16,       /* shared regions, with their live holders */
	NEED_SHARE = 32,        /* ...and ctl.share_name must be one of them */
};

struct snapshot {
	struct dsm_reg_server *srv;
	size_t nsrv;
	struct dsm_reg_client *cli;
	size_t ncli;
	struct dsm_reg_region *rgn;
	size_t nrgn;
	char **bad_rgn;         /* ids of region records that do not decode */
	size_t nbad_rgn;
	struct dsm_reg_share *shr; /* by name */
	size_t nshr;
	char **bad_shr;         /* keys of shared region records, likewise */
	size_t nbad_shr;
	struct dsm_reg_region one;
	uint64_t now_ms;        /* our clock when the snapshot was taken */
};

struct command {
	const char *name;       /* one or two words: "region show" */
	const char *args;       /* positional arguments, for usage lines */
	int nargs;
	unsigned need;          /* NEED_* */
	const char *summary;
	const char *help;
	void (*parse)(struct ctl *c, char **args);
	/* 0, or EXIT_RUNTIME after saying what went wrong */
	int (*text)(const struct ctl *c, const struct snapshot *s);
	int (*json)(const struct ctl *c, const struct snapshot *s);
	bool watch;             /* takes --watch[=SECONDS] */
	/* the command's own option: true if arg was one (exits if bad) */
	bool (*option)(const char *arg, struct ctl *c);
	/* an action instead of a listing: returns the exit status */
	int (*run)(struct dsm_reg *reg, const struct ctl *c);
};

/* ---- snapshot.c ---------------------------------------------------------- */

/* These print what went wrong and return EXIT_RUNTIME, else 0. */
int open_registry(struct ctl *c, struct dsm_reg **reg);
int snapshot_fetch(struct dsm_reg *reg, const struct ctl *c, unsigned need,
		   struct snapshot *s);
/* Frees what snapshot_fetch got, even in part; s must have started
 * zeroed. */
void snapshot_free(struct snapshot *s);

/* The server with this id, or NULL if it is no longer live. */
const struct dsm_reg_server *find_server(const struct snapshot *s,
					 uint32_t id);
/* The shared region of that name, or NULL. */
const struct dsm_reg_share *find_share(const struct snapshot *s,
				       const char *name);
/* Holders of all shared regions, summed. */
size_t snapshot_holders(const struct snapshot *s);
/* Summed over the live servers. */
void snapshot_totals(const struct snapshot *s, uint64_t *capacity,
		     uint64_t *used);
/* Regions with a copy of some extent on a server no longer live:
 * degraded (a replica lost) or, without replicas, missing pages. */
size_t snapshot_degraded(const struct snapshot *s);
/* What the clients say they read and wrote one-sidedly (RDMA) on the
 * server with this id: traffic the server cannot count itself. */
void snapshot_one_sided(const struct snapshot *s, uint32_t server,
			struct dsm_reg_one_sided *out);
/* The server's counters as the operator wants them: its own, plus the
 * one-sided traffic its clients report (reads, writes, pages and bytes
 * both ways). */
void server_counters(const struct snapshot *s,
		     const struct dsm_reg_server *v,
		     uint64_t out[DSM_RS_NCOUNTERS]);

/* ---- drain.c ------------------------------------------------------------- */

#define DRAIN_DEFAULT_TIMEOUT_S 600

int drain_run(struct dsm_reg *reg, const struct ctl *c);

/* ---- progress.c ---------------------------------------------------------- */

/* A line showing how far work an operator waits on has come, redrawn in
 * place on stderr if it is a terminal, and nothing at all otherwise. */
struct progress {
	FILE *tty;              /* stderr if it is a terminal, else NULL */
	const char *verb;       /* "copied" */
	uint64_t total;         /* bytes the work is about */
	uint64_t t0_ms;         /* when it began (dsm_reg_now_ms) */
	bool drawn;             /* a line is on the screen */
};

void progress_begin(struct progress *p, const char *verb, uint64_t total,
		    uint64_t now_ms);
/* done of total bytes so far (clamped to total): redraws the line. */
void progress_update(struct progress *p, uint64_t done, uint64_t now_ms);
/* Erases the line, so that what the caller prints next starts clean. */
void progress_end(struct progress *p);
/* The line's text: "copied 512.0 MiB of 1.0 GiB (50%), 170.7 MiB/s, ETA
 * 3 s", or "copied 0 B of 1.0 GiB (0%), 4 s elapsed" before anything has
 * moved.  Returns what snprintf does. */
size_t progress_format(char *buf, size_t len, const char *verb, uint64_t done,
		       uint64_t total, uint64_t elapsed_ms);

/* ---- text.c -------------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at s, or 0 (json.c too). */
size_t utf8_len(const unsigned char *s);
/* A copy of s, from the registry, fit for a terminal (malloc'd), or
 * NULL without memory: control characters escaped as \u00XX, what is
 * not UTF-8 as '?'. */
char *printable_dup(const char *s);

/* Each command's output for people (commands[] in dsmctl.c).  A table
 * that cannot be built whole (out of memory) is not printed. */
int text_status(const struct ctl *c, const struct snapshot *s);
int text_servers(const struct ctl *c, const struct snapshot *s);
int text_regions(const struct ctl *c, const struct snapshot *s);
int text_clients(const struct ctl *c, const struct snapshot *s);
int text_region(const struct ctl *c, const struct snapshot *s);
int text_share(const struct ctl *c, const struct snapshot *s);
int text_stats(const struct ctl *c, const struct snapshot *s);

/* ---- json.c -------------------------------------------------------------- */

/* Each command's JSON document, in the shape its help text shows. */
int json_status(const struct ctl *c, const struct snapshot *s);
int json_servers(const struct ctl *c, const struct snapshot *s);
int json_regions(const struct ctl *c, const struct snapshot *s);
int json_clients(const struct ctl *c, const struct snapshot *s);
int json_region_show(const struct ctl *c, const struct snapshot *s);
int json_share_show(const struct ctl *c, const struct snapshot *s);
int json_stats(const struct ctl *c, const struct snapshot *s);

/* ---- prometheus.c -------------------------------------------------------- */

/* stats --prometheus: the clients' counters, for a textfile collector. */
int prometheus_stats(const struct ctl *c, const struct snapshot *s);

#endif
