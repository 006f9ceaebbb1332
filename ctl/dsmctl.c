/*
 * dsmctl.c - the operator's view of a dsm cluster, as its registry sees it:
 * the command line and main; ctl.h says which file does what (room: CLI).
 *
 * The command line is read whole, and the registry's address checked,
 * before anything is contacted: a usage error exits 2 at once, never
 * after a timeout.  A command is a row of commands[] saying what it
 * fetches (snapshot.c) and how it prints (text.c, json.c).
 */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "util.h"

static void parse_region_id(struct ctl *c, char **args);
static void parse_share_name(struct ctl *c, char **args);
static void parse_server_id(struct ctl *c, char **args);
static bool drain_option(const char *arg, struct ctl *c);
static bool stats_option(const char *arg, struct ctl *c);

/* ---- commands ------------------------------------------------------------ */

/* The JSON shapes, for the help texts: the fields of registry/record.h's
 * structs under the same names (times are ms since the epoch), as json.c
 * writes them. */
#define SERVER_JSON \
	"{id, addr, host, pid, capacity, used, regions, clients,\n" \
	"    started_ms, heartbeat_ms, state, transports}"
#define CLIENT_JSON \
	"{id, host, pid, started_ms, heartbeat_ms,\n" \
	"    transports: {SERVERID: \"rdma\" or \"tcp\", ...}}"
#define REGION_JSON "{id, name, size, owner, created_ms,\n" \
	"    extents: [{off, len, server, region_id, pool_off,\n" \
	"               replicas (only with DSM_REPLICAS > 1):\n" \
	"                 [{server, region_id, pool_off}, ...]}, ...]}"
#define SHARE_JSON "{shared: true, key, name, size, home, region_id,\n" \
	"    pool_off, holders: [{client, host, pid, attached_ms}, ...]}"

static const struct command commands[] = {
	{ "status", "", 0,
	  NEED_SERVERS | NEED_CLIENTS | NEED_REGIONS | NEED_SHARES,
	  "the cluster at a glance: totals, its servers, its clients",
	  "The cluster at a glance: its live servers, their total capacity,\n"
	  "bytes used and free, how many regions and clients it holds (and\n"
	  "how many regions are degraded: a copy of some extent is on a server\n"
	  "no longer live), how many shared regions and how many holders\n"
	  "they have in all, then the tables of 'dsmctl servers' and 'dsmctl\n"
	  "clients'.\n\n"
	  "--json prints\n"
	  "  {cluster, registry, now_ms, capacity, used, free, regions,\n"
	  "   degraded_regions, shared_regions, shared_holders, clients,\n"
	  "   servers: [...]}\n"
	  "with servers as 'dsmctl --json servers' prints them.\n",
	  NULL, text_status, json_status, false, NULL, NULL },
	{ "servers", "", 0, NEED_SERVERS, "live memory servers",
	  "Live memory servers by id: the address clients use, capacity,\n"
	  "bytes in use, the regions and clients each holds, and how long\n"
	  "ago its last heartbeat reached the registry, and the transports it\n"
	  "serves (tcp, rdma).  A server silent for 5 s has vanished from\n"
	  "the registry and is not listed.\n\n"
	  "--json prints\n"
	  "  [" SERVER_JSON ", ...]\n",
	  NULL, text_servers, json_servers, false, NULL, NULL },
	{ "regions", "", 0, NEED_REGIONS | NEED_SHARES,
	  "regions: size, owner, the servers holding them; shared regions",
	  "Regions by id: name ('-' if none), size, the owning client, how\n"
	  "many extents the region is cut into and the servers they are on.\n"
	  "Then, under 'shared regions', those that dsm_map_shared maps, by\n"
	  "name: size, the home server holding all of it, that server's id\n"
	  "for it, and the clients holding it (CLIENT@HOST).  A holder whose\n"
	  "lease has expired is not listed, nor a shared region without a\n"
	  "live holder.  A record that is malformed is not listed: a warning\n"
	  "names its key, and the exit status is 1.\n\n"
	  "--json prints\n"
	  "  [" REGION_JSON ", ...,\n"
	  "   " SHARE_JSON ", ...]\n"
	  "and, for each malformed record, {key, error} after them.\n",
	  NULL, text_regions, json_regions, false, NULL, NULL },
	{ "clients", "", 0, NEED_CLIENTS, "clients holding a lease",
	  "Clients by id: host, pid, how long ago each started, how long\n"
	  "ago it last renewed its lease, and how it reaches its servers\n"
	  "(rdma or tcp; server by server when they differ, '+lost' after a\n"
	  "server it lost).\n\n"
	  "--json prints\n"
	  "  [" CLIENT_JSON ", ...]\n",
	  NULL, text_clients, json_clients, false, NULL, NULL },
	{ "region show", "ID", 1, NEED_REGION | NEED_SERVERS,
	  "one region and where each of its extents lives",
	  "Region ID and each of its extents: the byte range of the region,\n"
	  "the server holding it and that server's address ('(gone)' if the\n"
	  "server is no longer live), the server's own id for the region and\n"
	  "the offset in the server's pool.  Exit status 1 if there is no\n"
	  "region ID.\n\n"
	  "--json prints\n"
	  "  " REGION_JSON "\n"
	  "where each extent also has server_addr (null: the server is gone).\n",
	  parse_region_id, text_region, json_region_show, false, NULL, NULL },
	{ "shared show", "NAME", 1, NEED_SHARES | NEED_SHARE | NEED_SERVERS,
	  "one shared region: its home and its holders",
	  "The shared region NAME (as given to dsm_map_shared): its key (the\n"
	  "name's digest, which names its record), size, its home server and\n"
	  "that server's address ('(gone)' if no longer live), and each live\n"
	  "holder: client id, host, pid and how long ago it mapped the\n"
	  "region.  Exit status 1 if no shared region NAME has a live holder.\n\n"
	  "--json prints\n"
	  "  " SHARE_JSON "\n"
	  "with home_addr after home (null: the server is gone).\n",
	  parse_share_name, text_share, json_share_show, false, NULL, NULL },
	{ "stats", "", 0, NEED_SERVERS | NEED_CLIENTS,
	  "live counters per server and client (also for Prometheus)",
	  "Counters of every live server (requests, pages and bytes moved,\n"
	  "errors, connections refused for not knowing the cluster secret\n"
	  "(REFUSED), connections shed before their handshake completed: over\n"
	  "the server's caps, too slow, or too large (SHED), requests refused\n"
	  "for a client's limits: regions, connections (OVER LIMIT))\n"
	  "and every client (faults, pages fetched, evicted and written back,\n"
	  "bytes, resident memory, fault latency p50/p99, time threads spent\n"
	  "blocked in faults), as each last published them (every second).\n"
	  "A server cannot see what its clients read and write over RDMA\n"
	  "(one-sided): its rows add what its live clients report doing so.\n\n"
	  "--watch[=SECONDS] repeats every SECONDS (default 1) until\n"
	  "interrupted, showing rates per second after the first round.\n\n"
	  "--json prints one document per round:\n"
	  "  {cluster, now_ms, servers: [{id, addr, reads, writes,\n"
	  "   pages_read, pages_written, pages_discarded, bytes_in,\n"
	  "   bytes_out, errors, auth_refused, conn_refused, over_limit,\n"
	  "   one_sided: {reads, writes,\n"
	  "   pages_read, pages_written}}, ...], clients: [{id, pid, missing_faults,\n"
	  "   wp_faults, pages_fetched, pages_evicted, pages_written_back,\n"
	  "   bytes_in, bytes_out, resident_pages, fault_p50_ns,\n"
	  "   fault_p99_ns, blocktime_ns, pages_moved}, ...]}\n"
	  "with cumulative counters: a server's own, and apart from them\n"
	  "what its clients did one-sidedly.\n\n"
	  "--prometheus prints the clients' counters in the Prometheus text\n"
	  "format instead, for node_exporter's textfile collector, labelled\n"
	  "with cluster, client (id), host and pid:\n"
	  "  dsm_clients, dsm_client_missing_faults_total,\n"
	  "  dsm_client_wp_faults_total, dsm_client_pages_fetched_total,\n"
	  "  dsm_client_pages_evicted_total,\n"
	  "  dsm_client_pages_written_back_total,\n"
	  "  dsm_client_received_bytes_total, dsm_client_sent_bytes_total,\n"
	  "  dsm_client_resident_bytes, dsm_client_blocked_seconds_total,\n"
	  "  dsm_client_pages_moved_total,\n"
	  "  dsm_client_fault_latency_p50_seconds,\n"
	  "  dsm_client_fault_latency_p99_seconds,\n"
	  "  dsm_client_start_time_seconds.\n"
	  "Servers serve their own: dsm-server --metrics.  Neither --json\n"
	  "nor --watch goes with it.\n",
	  NULL, text_stats, json_stats, true, stats_option, NULL },
	{ "drain", "SERVER", 1, 0,
	  "move every region off a server, live; then it can be stopped",
	  "Moves every extent off server SERVER (an id from 'dsmctl\n"
	  "servers') while its clients keep running: the server takes no new\n"
	  "regions, each client copies its stripes to the other servers (by\n"
	  "free capacity) and frees them there.  Waits until the server holds\n"
	  "nothing, then says how much moved and that it can be stopped; on\n"
	  "a terminal a line meanwhile shows what moved, the rate and an ETA.\n\n"
	  "Refused, changing nothing, if the other servers lack the room.\n"
	  "The drain stays in effect until cancelled, even if dsmctl stops\n"
	  "waiting: a drained server takes no new regions.  It ends when the\n"
	  "server stops or restarts: a new process holds nothing to drain.\n\n"
	  "  --timeout=SECONDS  give up waiting after this long (default 600;\n"
	  "                     exit 1, listing the regions still there)\n"
	  "  --no-wait          start the drain and return\n"
	  "  --cancel           stop draining: the server takes regions again\n"
	  "                     (also for a server that is no longer live)\n\n"
	  "--json prints at the end\n"
	  "  {server, drained, seconds, bytes_left}\n",
	  parse_server_id, NULL, NULL, false, drain_option, drain_run },
	{ 0 },
};

static void list_commands(FILE *f, const char *prefix)
{
	for (const struct command *cmd = commands; cmd->name; cmd++) {
		char synopsis[64];

		if (prefix && strncmp(cmd->name, prefix, strlen(prefix)))
			continue;
		snprintf(synopsis, sizeof(synopsis), "%s%s%s", cmd->name,
			 *cmd->args ? " " : "", cmd->args);
		fprintf(f, "  %-16s %s\n", synopsis, cmd->summary);
	}
}

/* ---- usage --------------------------------------------------------------- */

static const char *const exit_help =
	"Exit status:\n"
	"  0  ok\n"
	"  1  runtime error: the registry cannot be reached, refuses the\n"
	"     password or fails a command, the region does not exist,\n"
	"     output cannot be written or memory runs out; also when a\n"
	"     record is malformed: a warning on stderr names its key, the\n"
	"     rest is listed (--json: as {key, error} in the array)\n"
	"  2  usage error: unknown command or option, missing or malformed\n"
	"     argument, no registry given (--registry or DSM_REGISTRY)\n";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dsmctl [--registry URL] [--registry-password-file FILE]\n"
		"              [--cluster NAME] [--json] COMMAND [ARGS]\n"
		"\n"
		"Shows a dsm cluster as its registry (Redis) sees it.\n"
		"\n"
		"  --registry URL  the registry, redis://HOST[:PORT] (default:\n"
		"                  $DSM_REGISTRY; one of the two is required)\n"
		"  --registry-password-file FILE\n"
		"                  the registry's Redis password, alone in FILE\n"
		"                  (mode 0600; default: $DSM_REGISTRY_PASSWORD_FILE).\n"
		"                  redis://[USER]:PASSWORD@HOST works too, but\n"
		"                  shows in ps; redis://USER@HOST takes an ACL\n"
		"                  user's password from the file\n"
		"  --cluster NAME  cluster to show (default: $DSM_CLUSTER, else\n"
		"                  '" DSM_REG_DEFAULT_CLUSTER "')\n"
		"  --json          print one JSON document instead of tables\n"
		"  --help          this text; 'dsmctl COMMAND --help' describes a\n"
		"                  command\n"
		"  --version       dsmctl's version\n"
		"These options may also follow the command, as in 'dsmctl servers\n"
		"--json'.\n"
		"\n"
		"Commands:\n");
	list_commands(f, NULL);
	fprintf(f, "\n%s", exit_help);
}

static void command_usage(FILE *f, const struct command *cmd)
{
	fprintf(f, "usage: dsmctl [--registry URL] [--cluster NAME] [--json] "
		"%s%s%s\n\n%s", cmd->name, *cmd->args ? " " : "", cmd->args,
		cmd->help);
}

/* topic: the command whose help to suggest ("region show"), or NULL. */
__attribute__((noreturn, format(printf, 2, 3)))
static void die_usage(const char *topic, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "dsmctl: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'dsmctl %s%s--help'.\n", topic ? topic : "",
		topic ? " " : "");
	exit(EXIT_USAGE);
}

/* ---- parsing ------------------------------------------------------------- */

/* An empty variable counts as unset, as `DSM_CLUSTER= dsmctl ...` means. */
static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* arg is what the user typed; opt the unknown letter in it, or 0 for a
 * long option. */
__attribute__((noreturn))
static void unknown_option(const char *arg, int opt)
{
	if (opt && strlen(arg) > 2)
		die_usage(NULL, "unknown option '-%c' in '%s'", opt, arg);
	die_usage(NULL, "unknown option '%s'", arg);
}

__attribute__((noreturn)) static void version(void)
{
	printf("dsmctl %s\n", DSM_VERSION_STRING);
	exit(0);
}

/* Options before the command; returns the index of the command. */
static int parse_globals(int argc, char **argv, struct ctl *c)
{
	static const struct option longs[] = {
		{ "registry", required_argument, NULL, 'r' },
		{ "registry-password-file", required_argument, NULL, 'P' },
		{ "cluster", required_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int o, cur;

	opterr = 0; /* our own messages, with the exit code we promise */
	/* '+': stop at the command, whose options are its own.  cur: the
	 * argument getopt is about to read.  After an unknown option,
	 * argv[optind - 1] names it only if getopt finished that argument,
	 * not inside a cluster of short options such as "-xy". */
	while (cur = optind,
	       (o = getopt_long(argc, argv, "+:h", longs, NULL)) != -1) {
		switch (o) {
		case 'r': c->given_url = optarg; break;
		case 'P': c->pass_file = optarg; break;
		case 'C': c->cluster = optarg; break;
		case 'j': c->json = true; break;
		case 'h': usage(stdout); exit(0);
		case 'V': version();
		case ':': die_usage(NULL, "%s needs a value", argv[cur]);
		default: unknown_option(argv[cur], optopt);
		}
	}
	return optind;
}

/* How many words of argv spell name ("region show"), or 0. */
static int match(const char *name, int argc, char **argv)
{
	const char *p = name;

	for (int i = 0; i < argc; i++) {
		size_t n = strcspn(p, " ");

		if (strlen(argv[i]) != n || strncmp(argv[i], p, n))
			return 0;
		if (!p[n])
			return i + 1;
		p += n + 1;
	}
	return 0;
}

static bool is_help(const char *arg)
{
	return !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

/* "region" alone is a group of commands: say which ones it has. */
static void group_usage(int argc, char **argv)
{
	char prefix[64];

	snprintf(prefix, sizeof(prefix), "%s ", argv[0]);
	if (argc > 1 && is_help(argv[1])) {
		printf("usage: dsmctl [GLOBAL OPTIONS] %sCOMMAND\n\n", prefix);
		list_commands(stdout, prefix);
		exit(0);
	}
	if (argc == 1)
		die_usage(argv[0], "'%s' needs a subcommand", argv[0]);
	die_usage(argv[0], "unknown command '%s%s'", prefix, argv[1]);
}

static const struct command *find_command(int argc, char **argv, int *words)
{
	size_t n = strlen(argv[0]);

	for (const struct command *cmd = commands; cmd->name; cmd++) {
		*words = match(cmd->name, argc, argv);
		if (*words)
			return cmd;
	}
	for (const struct command *cmd = commands; cmd->name; cmd++)
		if (!strncmp(cmd->name, argv[0], n) && cmd->name[n] == ' ')
			group_usage(argc, argv);
	die_usage(NULL, "unknown command '%s'", argv[0]);
}

/* --watch or --watch=SECONDS (1 to 3600); false if arg is neither. */
static bool parse_watch(const char *arg, struct ctl *c)
{
	uint64_t secs = 1;

	if (strncmp(arg, "--watch", 7) || (arg[7] && arg[7] != '='))
		return false;
	if (arg[7] && (dsm_parse_uint(arg + 8, 3600, &secs) || !secs))
		die_usage("stats", "bad --watch '%s': want --watch=SECONDS, "
			  "1 to 3600", arg + 8);
	c->watch_ms = secs * 1000;
	return true;
}

/* Global options that take a value, for after the command. */
static const struct {
	const char *name;
	size_t off;
} valued[] = {
	{ "--registry", offsetof(struct ctl, given_url) },
	{ "--registry-password-file", offsetof(struct ctl, pass_file) },
	{ "--cluster", offsetof(struct ctl, cluster) },
};

/*
 * dsmctl's own options after the command, as kubectl's and git's are
 * taken (`dsmctl servers --json`): argv[*i] is one, with its value in
 * the same word ("--cluster=NAME") or the next (then *i moves past it).
 * False if argv[*i] is not one of them.
 */
static bool global_option(const struct command *cmd, int argc, char **argv,
			  int *i, struct ctl *c)
{
	const char *a = argv[*i];

	if (!strcmp(a, "--json")) {
		c->json = true;
		return true;
	}
	for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++) {
		size_t n = strlen(valued[k].name);
		const char **to = (const char **)((char *)c + valued[k].off);

		if (strncmp(a, valued[k].name, n) || (a[n] && a[n] != '='))
			continue;
		if (a[n] == '=') {
			*to = a + n + 1;
			return true;
		}
		if (*i + 1 >= argc)
			die_usage(cmd->name, "%s needs a value", a);
		*to = argv[++*i];
		return true;
	}
	return false;
}

/* The command's own arguments: --help, then exactly nargs positionals;
 * dsmctl's own options may come among them. */
static void parse_command(const struct command *cmd, int argc, char **argv,
			  struct ctl *c)
{
	char *pos[2];
	int n = 0;

	for (int i = 0; i < argc; i++) {
		if (is_help(argv[i])) {
			command_usage(stdout, cmd);
			exit(0);
		}
	}
	for (int i = 0; i < argc; i++) {
		if (cmd->watch && parse_watch(argv[i], c))
			continue;
		if (cmd->option && cmd->option(argv[i], c))
			continue;
		if (global_option(cmd, argc, argv, &i, c))
			continue;
		if (argv[i][0] == '-' && argv[i][1])
			die_usage(cmd->name, "unknown option '%s'", argv[i]);
		if (n == cmd->nargs)
			die_usage(cmd->name, "unexpected argument '%s'",
				  argv[i]);
		pos[n++] = argv[i];
	}
	if (n < cmd->nargs)
		die_usage(cmd->name, "missing %s", cmd->args);
	if (cmd->parse)
		cmd->parse(c, pos);
}

static void parse_region_id(struct ctl *c, char **args)
{
	if (dsm_parse_uint(args[0], UINT64_MAX, &c->region_id))
		die_usage("region show", "bad region id '%s': want a decimal "
			  "number", args[0]);
}

static void parse_share_name(struct ctl *c, char **args)
{
	c->share_name = args[0];
}

static void parse_server_id(struct ctl *c, char **args)
{
	uint64_t id;

	if (dsm_parse_uint(args[0], UINT32_MAX, &id))
		die_usage("drain", "bad server id '%s': want a decimal number "
			  "as 'dsmctl servers' shows", args[0]);
	c->server_id = id;
}

static bool stats_option(const char *arg, struct ctl *c)
{
	if (strcmp(arg, "--prometheus"))
		return false;
	c->prometheus = true;
	return true;
}

static bool drain_option(const char *arg, struct ctl *c)
{
	uint64_t secs;

	if (!strcmp(arg, "--cancel"))
		c->cancel = true;
	else if (!strcmp(arg, "--no-wait"))
		c->no_wait = true;
	else if (!strncmp(arg, "--timeout=", 10)) {
		if (dsm_parse_uint(arg + 10, 86400, &secs) || !secs)
			die_usage("drain", "bad --timeout '%s': want "
				  "--timeout=SECONDS, 1 to 86400", arg + 10);
		c->timeout_ms = secs * 1000;
	} else
		return false;
	return true;
}

/* Where the registry is: option, else environment, checked before any
 * connection so that a typo is a usage error and not a timeout.  The
 * password file is only named here; open_registry reads it. */
static void resolve_registry(struct ctl *c)
{
	const char *url_from = c->given_url ? "--registry" : "DSM_REGISTRY";
	const char *cluster_from = c->cluster ? "--cluster" : "DSM_CLUSTER";
	char shown[320];

	if (!c->given_url)
		c->given_url = env("DSM_REGISTRY");
	if (!c->given_url)
		die_usage(NULL, "no registry given: pass --registry "
			  "redis://HOST:PORT or set DSM_REGISTRY");
	if (dsm_reg_parse_url(c->given_url, &c->addr))
		die_usage(NULL, "bad %s '%s': want "
			  "redis://[[USER]:PASSWORD@]HOST[:PORT]", url_from,
			  dsm_reg_redact(c->given_url, shown, sizeof(shown)));
	dsm_reg_addr_wipe(&c->addr);
	c->url = c->addr.url;
	c->pass_opt = c->pass_file ? "--registry-password-file"
				   : "DSM_REGISTRY_PASSWORD_FILE";
	if (!c->pass_file)
		c->pass_file = env("DSM_REGISTRY_PASSWORD_FILE");
	if (!c->pass_file) /* none given: a NOAUTH names both ways */
		c->pass_opt = "--registry-password-file (or "
			      "DSM_REGISTRY_PASSWORD_FILE)";
	if (!c->cluster)
		c->cluster = env("DSM_CLUSTER");
	if (!c->cluster)
		c->cluster = DSM_REG_DEFAULT_CLUSTER;
	if (dsm_reg_check_cluster(c->cluster))
		die_usage(NULL, "bad %s '%s': want 1-%d of letters, digits, "
			  "'_', '.', '-'", cluster_from, c->cluster,
			  DSM_REG_CLUSTER_MAX);
}

static const struct command *parse_args(int argc, char **argv, struct ctl *c)
{
	const struct command *cmd;
	int first = parse_globals(argc, argv, c), words;

	if (first == argc)
		die_usage(NULL, "no command given");
	cmd = find_command(argc - first, argv + first, &words);
	parse_command(cmd, argc - first - words, argv + first + words, c);
	if (c->prometheus && (c->json || c->watch_ms))
		die_usage(cmd->name, "--prometheus goes with neither --json nor "
			  "--watch");
	resolve_registry(c);
	return cmd;
}

/* ---- main ---------------------------------------------------------------- */

/* Output that did not reach its reader is a failure, not a success. */
static int finish_output(void)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return 0;
	fprintf(stderr, "dsmctl: cannot write the output: %s\n",
		strerror(errno));
	return EXIT_RUNTIME;
}

/* The command's output, flushed; then whether it was whole: a record
 * left out of it (malformed) is a runtime error too. */
static int print(const struct ctl *c, const struct command *cmd,
		 const struct snapshot *s)
{
	int rc = c->prometheus ? prometheus_stats(c, s)
		 : (c->json ? cmd->json : cmd->text)(c, s);
	int out = finish_output();

	if (!rc && (s->nbad_rgn || s->nbad_shr))
		rc = EXIT_RUNTIME;
	return rc ? rc : out;
}

/* --watch: a round every c->watch_ms, each printed against the one
 * before, until interrupted or the registry fails. */
static int watch(struct dsm_reg *reg, struct ctl *c,
		 const struct command *cmd)
{
	struct snapshot s[2] = { { 0 }, { 0 } };
	int rc, cur = 0;

	for (;;) {
		rc = snapshot_fetch(reg, c, cmd->need, &s[cur]);
		if (rc)
			break;
		rc = print(c, cmd, &s[cur]);
		if (rc)
			break;
		snapshot_free(&s[!cur]);
		memset(&s[!cur], 0, sizeof(s[!cur]));
		c->prev = &s[cur];
		cur = !cur;
		usleep(c->watch_ms * 1000);
	}
	snapshot_free(&s[0]);
	snapshot_free(&s[1]);
	return rc;
}

int main(int argc, char **argv)
{
	struct ctl c = { 0 };
	const struct command *cmd = parse_args(argc, argv, &c);
	struct snapshot s = { 0 };
	struct dsm_reg *reg = NULL;
	int rc;

	rc = open_registry(&c, &reg);
	if (rc)
		goto out;
	if (cmd->run) {
		rc = cmd->run(reg, &c);
		goto out;
	}
	if (c.watch_ms) {
		rc = watch(reg, &c, cmd);
		goto out;
	}
	rc = snapshot_fetch(reg, &c, cmd->need, &s);
	if (rc)
		goto out;
	rc = print(&c, cmd, &s);
out:
	snapshot_free(&s);
	dsm_reg_close(reg);
	return rc;
}
