/*
 * main.c - dsm-server: arguments, the listening socket, signals, the loop
 * (room: server protocol).
 *
 * One thread runs one libuv loop; every connection, request and signal is
 * handled on it, so server state needs no locks.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "auth.h"
#include "config.h"
#include "handler.h"
#include "listen_rdma.h"
#include "log.h"
#include "membership.h"
#include "metrics.h"
#include "session.h"
#include "session_tcp.h"
#include "util.h"

#define EXIT_USAGE 2
#define STOP_GRACE_MS 5000 /* how long GOODBYEs may take to drain */
#define MAX_POLL_US 10000
/* Admission and per-client limits (session.h, handler.h): defaults. */
#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_MAX_HANDSHAKES 64
#define DEFAULT_HANDSHAKE_MS 5000   /* as the client's connect timeout */
#define DEFAULT_TCP_TIMEOUT_MS 20000 /* as the client's DSM_TCP_TIMEOUT_MS */
#define DEFAULT_MAX_REGIONS 65536   /* per connection */
#define DEFAULT_MAX_CLIENT_SESSIONS 16
/* Descriptors a connection holds: a socket over TCP; an event channel
 * and a completion channel over RDMA. */
#define FDS_PER_TCP 1
#define FDS_PER_RDMA 2
/* Descriptors besides the connections': stdio, the loop's own, the
 * listeners, Redis, libuv's spare for accept's EMFILE. */
#define FD_RESERVE 64
/* After accept fails for want of descriptors, how long the listener
 * stays closed before it listens again. */
#define ACCEPT_PAUSE_MS 500

/* --transport: which listeners to start. */
enum transports {
	TRANSPORT_TCP,
	TRANSPORT_RDMA,  /* RDMA only; fails without a device */
	TRANSPORT_BOTH,  /* TCP, and RDMA where a device serves the address:
	                  * the default */
};

/*
 * The long options, for getopt_long and the config file alike: a key of
 * the file is DSM_ and an option's name (config.h), looked up here, so an
 * option added here can be set there too, with no other change.
 */
static const struct option long_options[] = {
	{ "listen", required_argument, NULL, 'l' },
	{ "capacity", required_argument, NULL, 'c' },
	{ "port-file", required_argument, NULL, 'p' },
	{ "server-id", required_argument, NULL, 'i' },
	{ "poll-us", required_argument, NULL, 'u' },
	{ "hugepages", required_argument, NULL, 'H' },
	{ "transport", required_argument, NULL, 'T' },
	{ "registry", required_argument, NULL, 'r' },
	{ "registry-password-file", required_argument, NULL, 'P' },
	{ "cluster", required_argument, NULL, 'C' },
	{ "advertise", required_argument, NULL, 'a' },
	{ "secret-file", required_argument, NULL, 's' },
	{ "log", required_argument, NULL, 'v' },
	{ "max-connections", required_argument, NULL, 'N' },
	{ "max-handshakes", required_argument, NULL, 'S' },
	{ "handshake-timeout-ms", required_argument, NULL, 't' },
	{ "max-regions", required_argument, NULL, 'R' },
	{ "max-client-sessions", required_argument, NULL, 'L' },
	{ "tcp-timeout-ms", required_argument, NULL, 'O' },
	{ "inval-timeout-ms", required_argument, NULL, 'I' },
	{ "metrics", required_argument, NULL, 'M' },
	{ "config", required_argument, NULL, 'F' },
	{ "check-config", no_argument, NULL, 'K' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};
#define N_OPTIONS (sizeof(long_options) / sizeof(long_options[0]))

/* What the config file may not set: which file to read, and requests
 * that set nothing. */
static const char *const cmdline_only[] = { "config", "check-config",
					    "help", NULL };

/* Where an option's value came from, for --check-config. */
struct given {
	const char *value;
	unsigned line;          /* of the config file; 0: the command line */
	bool set;
};

struct options {
	const char *listen;
	enum transports transport;
	const char *port_file;
	uint64_t capacity;
	uint32_t server_id;
	bool server_id_set;
	uint64_t poll_us;
	enum pool_pages pages;  /* --hugepages */
	const char *registry;   /* redis://...; NULL: standalone */
	const char *registry_pass_file;
	const char *cluster;
	const char *advertise;  /* host[:port] clients are told to use */
	const char *secret_file;
	struct session_limits lim;
	struct handler_limits client;
	uint64_t inval_timeout_ms; /* 0: the handler's default */
	const char *metrics;    /* [HOST:]PORT of the metrics endpoint */
	const char *config_path; /* --config */
	bool check_config;      /* --check-config: print the settings, exit */
	struct config file;     /* the text the file's values point into */
	struct given given[N_OPTIONS];
};

/* Everything the loop's callbacks share; lives on main()'s stack. */
struct server {
	uv_loop_t loop;
	uv_tcp_t listener;
	bool tcp_on;            /* listener is listening */
	struct sockaddr_storage tcp_addr; /* what it is bound to */
	uv_timer_t accept_timer; /* listens again after an EMFILE pause */
	struct listen_rdma rdma;
	bool rdma_on;
	uv_signal_t sig_usr1, sig_term, sig_int;
	uv_timer_t stop_timer;
	struct handler h;
	struct session_list sessions;
	struct membership reg;
	struct metrics metrics;
	struct dsm_auth_key key;    /* valid when h.key points at it */
	struct dsm_reg_addr reg_addr; /* with the registry's password */
	char listen_host[256];
	uint16_t port;          /* bound */
	uint64_t next_msg_id;   /* ids of server-initiated messages */
	bool stopping;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dsm-server [--config PATH] [--check-config]\n"
		"                  --listen HOST:PORT --capacity SIZE\n"
		"                  [--port-file PATH] [--server-id N] [--poll-us N]\n"
		"                  [--hugepages auto|on|off] [--transport tcp|rdma|both]\n"
		"                  [--registry URL [--cluster NAME] [--advertise HOST[:PORT]]\n"
		"                   [--registry-password-file PATH]]\n"
		"                  [--secret-file PATH] [--log LEVEL]\n"
		"                  [--max-connections N] [--max-handshakes N]\n"
		"                  [--handshake-timeout-ms N] [--max-regions N]\n"
		"                  [--max-client-sessions N] [--tcp-timeout-ms N]\n"
		"                  [--inval-timeout-ms N] [--metrics [HOST:]PORT]\n"
		"\n"
		"  --config PATH       take options from the file PATH first, flags\n"
		"                      on the command line overriding them: lines\n"
		"                      KEY=VALUE, KEY being DSM_ and an option's\n"
		"                      name in capitals, '-' as '_' (DSM_POLL_US=0\n"
		"                      for --poll-us 0), '#' comments; an empty\n"
		"                      VALUE is the default (deploy/dsm.conf.example)\n"
		"  --check-config      check the options (and --config file), print\n"
		"                      the settings in effect and exit; reads no\n"
		"                      secret and opens nothing but --config\n"
		"  --listen HOST:PORT  address to serve on; port 0 picks a free one\n"
		"  --capacity SIZE     memory to offer, e.g. 4G (a multiple of 4K)\n"
		"  --port-file PATH    write the bound port to PATH once listening\n"
		"  --server-id N       id reported to clients (default 0; with\n"
		"                      --registry a random one)\n"
		"  --poll-us N         keep polling for requests N microseconds after\n"
		"                      the last one before sleeping (default 100; 0:\n"
		"                      never poll; spends CPU to save wake-ups)\n"
		"  --hugepages MODE    the pool's pages: on (hugetlb 2 MiB pages\n"
		"                      reserved with sysctl vm.nr_hugepages, the\n"
		"                      whole capacity taken at start; fails if too\n"
		"                      few), off (4 KiB pages, committed as written),\n"
		"                      auto (default: on if enough are reserved)\n"
		"  --transport T       tcp, rdma or both (default): TCP, and RDMA\n"
		"                      (rdma_cm, same address and port) where an\n"
		"                      RDMA device serves the --listen address;\n"
		"                      rdma alone fails without one\n"
		"  --registry URL      join a cluster: register in Redis at URL\n"
		"                      (redis://HOST:PORT) and heartbeat there\n"
		"  --registry-password-file PATH\n"
		"                      a file (mode 0600) holding the password of\n"
		"                      the registry's Redis (requirepass; or an ACL\n"
		"                      user's, with --registry redis://USER@HOST:PORT).\n"
		"                      Better than redis://:PASSWORD@HOST:PORT, which\n"
		"                      anyone can read in ps\n"
		"  --cluster NAME      cluster to join (default: $DSM_CLUSTER, else\n"
		"                      'default')\n"
		"  --advertise H[:P]   address clients should connect to (default:\n"
		"                      the --listen host and the bound port)\n"
		"  --secret-file PATH  the cluster's shared secret (mode 0600): only\n"
		"                      connections that prove they know it get in.\n"
		"                      Without it the server listens on loopback only\n"
		"  --log LEVEL         error, warn, info (default) or debug\n"
		"  --max-connections N connections at once, TCP and RDMA (default\n"
		"                      1024; lowered, with a warning, to what the\n"
		"                      descriptor limit allows: ulimit -n)\n"
		"  --max-handshakes N  connections that have not yet completed\n"
		"                      HELLO (and AUTH) at once (default 64); a\n"
		"                      new one past either cap closes the oldest\n"
		"  --handshake-timeout-ms N\n"
		"                      close a connection whose handshake takes\n"
		"                      longer (default 5000)\n"
		"  --max-regions N     regions one connection may hold (default\n"
		"                      65536); ALLOC past it fails with EDQUOT\n"
		"  --max-client-sessions N\n"
		"                      connections one client (its LEASE id) may\n"
		"                      have (default 16); LEASE past it fails with\n"
		"                      EUSERS and the connection closes\n"
		"  --inval-timeout-ms N\n"
		"                      close a holder of a shared region that has\n"
		"                      not acknowledged an INVALIDATE or RECALL\n"
		"                      this long; its copies are forfeit and the\n"
		"                      waiting ACQUIRE is granted (default 3000)\n"
		"  --tcp-timeout-ms N  end a TCP client's session (freeing its\n"
		"                      regions) once its machine has left replies\n"
		"                      unacknowledged, or been silent to keepalive\n"
		"                      probes, this long (default 20000)\n"
		"  --metrics [HOST:]PORT\n"
		"                      serve counters in the Prometheus text\n"
		"                      format at http://HOST:PORT/metrics (HOST\n"
		"                      default 127.0.0.1; no authentication:\n"
		"                      bind it where only monitoring reaches)\n"
		"\n"
		"Signals: SIGUSR1 logs counters; SIGTERM/SIGINT say GOODBYE to\n"
		"every client and exit.\n");
}

/* While the config file's settings are applied, where the current one
 * is, "PATH:LINE: KEY": usage errors begin with it. */
static const char *usage_where;

__attribute__((noreturn, format(printf, 1, 2)))
static void die_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "dsm-server: ");
	if (usage_where)
		fprintf(stderr, "%s: ", usage_where);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'dsm-server --help'.\n");
	exit(EXIT_USAGE);
}

static void parse_log_level(const char *s)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	for (int i = 0; i <= DSM_LOG_DEBUG; i++) {
		if (!strcmp(s, names[i])) {
			dsm_log_set_level(i);
			return;
		}
	}
	die_usage("unknown log level '%s'", s);
}

static uint64_t parse_range(const char *opt, const char *s, uint64_t min,
			    uint64_t max)
{
	uint64_t v;

	if (dsm_parse_uint(s, max, &v) || v < min)
		die_usage("bad %s '%s': want an integer from %llu to %llu", opt,
			  s, (unsigned long long)min, (unsigned long long)max);
	return v;
}

static uint64_t parse_uint(const char *opt, const char *s, uint64_t max)
{
	return parse_range(opt, s, 0, max);
}

/* The index of s among the three words of an option's choices (its
 * value in their enum), or a usage error naming them. */
static int parse_choice(const char *opt, const char *s,
			const char *const words[3])
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(s, words[i]))
			return i;
	die_usage("bad %s '%s': want %s, %s or %s", opt, s, words[0],
		  words[1], words[2]);
}

static enum pool_pages parse_pages(const char *s)
{
	/* in enum pool_pages order */
	static const char *const words[3] = { "auto", "on", "off" };

	return (enum pool_pages)parse_choice("--hugepages", s, words);
}

static enum transports parse_transport(const char *s)
{
	/* in enum transports order */
	static const char *const words[3] = { "tcp", "rdma", "both" };

	return (enum transports)parse_choice("--transport", s, words);
}

static uint64_t parse_capacity(const char *s)
{
	uint64_t v;

	if (dsm_parse_size(s, &v) < 0 || v == 0 || v % DSM_PAGE_SIZE)
		die_usage("bad --capacity '%s': want a positive multiple of 4K",
			  s);
	return v;
}

static void check_listen(const char *s)
{
	char host[256];
	uint16_t port;

	if (dsm_parse_hostport(s, host, sizeof(host), &port) < 0)
		die_usage("bad --listen '%s': want HOST:PORT", s);
}

static void check_registry(const char *url)
{
	struct dsm_reg_addr reg;
	char shown[320];
	int bad = dsm_reg_parse_url(url, &reg);

	dsm_reg_addr_wipe(&reg);
	if (bad)
		die_usage("bad --registry '%s': want "
			  "redis://[[USER]:PASSWORD@]HOST:PORT",
			  dsm_reg_redact(url, shown, sizeof(shown)));
}

static void check_metrics(const char *s)
{
	char host[256];
	uint16_t port;

	if (metrics_parse_addr(s, host, sizeof(host), &port))
		die_usage("bad --metrics '%s': want PORT or HOST:PORT", s);
}

static void check_cluster(const char *name)
{
	if (dsm_reg_check_cluster(name))
		die_usage("bad cluster name '%s': want 1-%d of letters, "
			  "digits, '_', '.', '-'", name, DSM_REG_CLUSTER_MAX);
}

/*
 * long_options[i] with its value arg, from the command line or from line
 * `line` of the config file (0: the command line).  Every value is
 * checked here, as it is applied, rather than once all are: a bad one
 * from the file is then reported with the line it is on.
 */
static void apply_option(struct options *o, size_t i, const char *arg,
			 unsigned line)
{
	o->given[i] = (struct given){ .value = arg, .line = line, .set = true };
	switch (long_options[i].val) {
	case 'l': check_listen(arg); o->listen = arg; break;
	case 'c': o->capacity = parse_capacity(arg); break;
	case 'p': o->port_file = arg; break;
	case 'i':
		o->server_id = parse_uint("--server-id", arg, UINT32_MAX);
		o->server_id_set = true;
		break;
	case 'r': check_registry(arg); o->registry = arg; break;
	case 'P': o->registry_pass_file = arg; break;
	case 'C': check_cluster(arg); o->cluster = arg; break;
	case 'a': o->advertise = arg; break;
	case 's': o->secret_file = arg; break;
	case 'u':
		o->poll_us = parse_uint("--poll-us", arg, MAX_POLL_US);
		break;
	case 'H': o->pages = parse_pages(arg); break;
	case 'T': o->transport = parse_transport(arg); break;
	case 'v': parse_log_level(arg); break;
	case 'N':
		o->lim.max_sessions = parse_range("--max-connections", arg, 1,
						  1 << 20);
		break;
	case 'S':
		o->lim.max_handshakes = parse_range("--max-handshakes", arg, 1,
						    1 << 20);
		break;
	case 't':
		o->lim.handshake_ms = parse_range("--handshake-timeout-ms",
						  arg, 1, 3600000);
		break;
	case 'O':
		o->lim.tcp_timeout_ms = parse_range("--tcp-timeout-ms", arg,
						    1000, 3600000);
		break;
	case 'I':
		o->inval_timeout_ms = parse_range("--inval-timeout-ms", arg,
						  10, 3600000);
		break;
	case 'R':
		o->client.regions_per_session = parse_range(
			"--max-regions", arg, 1, UINT32_MAX);
		break;
	case 'L':
		o->client.sessions_per_client = parse_range(
			"--max-client-sessions", arg, 1, 1 << 20);
		break;
	case 'M': check_metrics(arg); o->metrics = arg; break;
	}
}

/* A password belongs in its file, which the config names: one in the
 * file's URL would be read by whoever may read the config. */
static bool url_has_password(const char *url)
{
	struct dsm_reg_addr reg;
	bool has = !dsm_reg_parse_url(url, &reg) && reg.pass_in_url;

	dsm_reg_addr_wipe(&reg);
	return has;
}

/* A setting of the config file, applied as the command line's are; its
 * usage errors say where it is. */
static int apply_setting(void *arg, const struct config_setting *s)
{
	usage_where = s->where;
	if (s->opt->val == 'r' && url_has_password(s->value))
		die_usage("a password in the URL: put it in a file of its own, "
			  "named by %sREGISTRY_PASSWORD_FILE",
			  CONFIG_KEY_PREFIX);
	apply_option(arg, (size_t)(s->opt - long_options), s->value,
		     s->line);
	usage_where = NULL;
	return 0;
}

/*
 * The first pass over the command line: --config and --check-config,
 * and --help.  The file's settings are applied before the command line's
 * so that every flag overrides the file, before --config or after it.
 * A malformed command line ends this pass with no file to read: the
 * second pass meets the same error first, and says what it is.
 */
static void find_config(int argc, char **argv, struct options *o)
{
	int c;

	while ((c = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
		if (c == '?' || c == ':') {
			o->config_path = NULL;
			break;
		}
		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (c == 'K')
			o->check_config = true;
		if (c == 'F' && o->config_path)
			die_usage("--config given twice");
		if (c == 'F')
			o->config_path = optarg;
	}
	optind = 0; /* glibc: start afresh, argv's permutation too */
}

static void read_config(struct options *o)
{
	char err[PATH_MAX + 512];

	if (o->config_path &&
	    config_read(&o->file, o->config_path, err, sizeof(err)))
		die_usage("%s", err);
}

/*
 * --check-config: the settings in effect as lines of a config file, each
 * after a comment saying where it came from, and the unset ones as
 * comments.  A password in a --registry URL shows as "***".
 */
static void print_settings(const struct options *o)
{
	char key[CONFIG_KEY_MAX], shown[320];

	printf("# dsm-server --check-config: the settings in effect\n");
	for (size_t i = 0; long_options[i].name; i++) {
		const struct given *g = &o->given[i];
		const char *v = g->value ? g->value : "yes";

		if (!config_settable(&o->file, &long_options[i]) ||
		    config_key(long_options[i].name, key, sizeof(key)))
			continue;
		if (!g->set) {
			printf("# %s unset: the default\n", key);
			continue;
		}
		if (long_options[i].val == 'r')
			v = dsm_reg_redact(v, shown, sizeof(shown));
		if (g->line)
			printf("# %s:%u\n", o->config_path, g->line);
		else
			printf("# the command line\n");
		printf("%s=%s\n", key, v);
	}
}

/* Options that depend on others, or on the environment. */
static void check_options(struct options *o)
{
	if (!o->listen)
		die_usage("--listen HOST:PORT is required (or %sLISTEN in a "
			  "--config file)", CONFIG_KEY_PREFIX);
	if (!o->capacity)
		die_usage("--capacity SIZE is required (or %sCAPACITY in a "
			  "--config file)", CONFIG_KEY_PREFIX);
	if ((o->cluster || o->advertise) && !o->registry)
		die_usage("--cluster and --advertise need --registry");
	if (o->registry_pass_file && !o->registry)
		die_usage("--registry-password-file needs --registry");
	if (!o->cluster)
		o->cluster = getenv("DSM_CLUSTER") ? getenv("DSM_CLUSTER")
						   : DSM_REG_DEFAULT_CLUSTER;
	if (o->registry)
		check_cluster(o->cluster);
}

static void parse_args(int argc, char **argv, struct options *o)
{
	int c, cur, i;

	o->file = (struct config){ .opts = long_options,
				   .cmdline_only = cmdline_only,
				   .apply = apply_setting, .arg = o };
	opterr = 0; /* our own messages, with the exit code we promise */
	find_config(argc, argv, o);
	read_config(o);
	/* cur: the argument getopt is about to read; argv[optind - 1] would
	 * name the wrong one inside a cluster of short options ("-xy").
	 * find_config left optind 0, which getopt reads as 1. */
	while (i = -1, cur = optind ? optind : 1,
	       (c = getopt_long(argc, argv, ":h", long_options, &i)) != -1) {
		switch (c) {
		case 'F': case 'K': case 'h': break; /* find_config's */
		case ':': die_usage("%s needs a value", argv[cur]);
		case '?':
			if (optopt && strlen(argv[cur]) > 2)
				die_usage("unknown option '-%c' in '%s'", optopt,
					  argv[cur]);
			die_usage("unknown option '%s'", argv[cur]);
		default: apply_option(o, (size_t)i, optarg, 0);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
	check_options(o);
	if (o->check_config) {
		print_settings(o);
		exit(0);
	}
}

/* HOST may be a name or a numeric address; resolving it blocks, which is
 * fine before the loop runs. */
static int resolve(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE };
	struct addrinfo *res;
	int err = getaddrinfo(host, NULL, &hints, &res);

	if (err) {
		dsm_err("cannot resolve '%s': %s", host, gai_strerror(err));
		return -EINVAL;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	return 0;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
	const uint8_t *a = v6->sin6_addr.s6_addr;

	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr)
			>> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr) ||
	       (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr) && a[12] == 127);
}

/* Without a secret anyone who can connect can read and write pages, so
 * only this machine may connect. */
static int check_exposure(const struct server *srv,
			  const struct sockaddr_storage *ss, const char *addr)
{
	if (srv->h.key)
		return 0;
	if (!is_loopback(ss)) {
		dsm_err("refusing to listen on %s without --secret-file: anyone "
			"who can reach it could read and write every page. Give "
			"the cluster a secret, or listen on 127.0.0.1", addr);
		return -EACCES;
	}
	dsm_warn("no --secret-file: any process on this machine can reach "
		 "this server's pages (listening on loopback only)");
	return 0;
}

static uint16_t bound_port(uv_tcp_t *t)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Written under a temporary name and renamed, so a reader polling for the
 * file never sees it half written. */
static int write_port_file(const char *path, uint16_t port)
{
	char tmp[4096];
	FILE *f;
	int err = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	if (fprintf(f, "%u\n", port) < 0)
		err = -EIO;
	if (fclose(f) != 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

static void on_connection(uv_stream_t *listener, int status);

static int start_tcp(struct server *srv)
{
	int err;

	uv_tcp_init(&srv->loop, &srv->listener);
	srv->listener.data = srv;
	err = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&srv->tcp_addr,
			  0);
	if (!err)
		err = uv_listen((uv_stream_t *)&srv->listener, SOMAXCONN,
				on_connection);
	if (err) {
		uv_close((uv_handle_t *)&srv->listener, NULL);
		return err;
	}
	srv->tcp_on = true;
	return 0;
}

static void on_accept_timer(uv_timer_t *t)
{
	struct server *srv = t->data;
	int err;

	if (srv->stopping)
		return;
	err = start_tcp(srv);
	if (err) {
		dsm_warn("cannot listen again: %s; trying in %d ms",
			 uv_strerror(err), ACCEPT_PAUSE_MS);
		uv_timer_start(&srv->accept_timer, on_accept_timer,
			       ACCEPT_PAUSE_MS, 0);
		return;
	}
	dsm_info("taking connections again");
}

static void on_listener_closed(uv_handle_t *h)
{
	struct server *srv = h->data;

	if (!srv->stopping)
		uv_timer_start(&srv->accept_timer, on_accept_timer,
			       ACCEPT_PAUSE_MS, 0);
}

/*
 * accept found no descriptor free.  libuv first sheds the waiting
 * connections through a descriptor it keeps spare; when even that fails
 * (its spare is gone, or the whole system is out: ENFILE) it calls back
 * with the error and tries again at once, in a loop that ends only when
 * the listener closes, the process spinning and the log filling.  So
 * close it, and listen again after a pause: pending clients are refused
 * meanwhile, and the loop goes on serving the connected ones.
 */
static void pause_accepting(struct server *srv, int err)
{
	srv->h.conn_refused++;
	if (!srv->tcp_on)
		return;
	dsm_warn("accept: %s: not taking connections for %d ms (raise "
		 "ulimit -n, or lower --max-connections)", uv_strerror(err),
		 ACCEPT_PAUSE_MS);
	srv->tcp_on = false;
	uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct server *srv = listener->data;
	int err = status;

	if (err == UV_EMFILE || err == UV_ENFILE) {
		pause_accepting(srv, err);
		return;
	}
	if (!err)
		err = session_tcp_accept(listener, &srv->h, &srv->sessions);
	if (err == UV_EMFILE || err == UV_ENFILE)
		pause_accepting(srv, err);
	else if (err)
		dsm_warn("accept: %s", uv_strerror(err));
}

/* What this server serves, as the registry records it. */
static const char *server_transports(const struct server *srv)
{
	if (srv->tcp_on && srv->rdma_on)
		return "tcp,rdma";
	return srv->rdma_on ? "rdma" : "tcp";
}

static int listen_tcp(struct server *srv, const struct sockaddr_storage *ss,
		      const char *addr)
{
	int err;

	srv->tcp_addr = *ss;
	err = start_tcp(srv);
	if (err) {
		dsm_err("cannot listen on %s: %s", addr, uv_strerror(err));
		return err;
	}
	srv->port = bound_port(&srv->listener);
	/* listening again after a pause takes the same port */
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)&srv->tcp_addr)->sin6_port =
			htons(srv->port);
	else
		((struct sockaddr_in *)&srv->tcp_addr)->sin_port =
			htons(srv->port);
	return 0;
}

/* RDMA on the address and port TCP got (or was given, RDMA alone).
 * With both asked for, no RDMA is a fact to log, not an error. */
static int listen_rdma(struct server *srv, struct sockaddr_storage *ss,
		       enum transports mode, const char *addr)
{
	char why[256];
	int err;

	if (srv->tcp_on)
		((struct sockaddr_in *)ss)->sin_port = htons(srv->port);
	if (listen_rdma_devices() <= 0) {
		if (mode == TRANSPORT_RDMA) {
			dsm_err("--transport rdma: this machine has no RDMA "
				"device (ibv_devices lists none)");
			return -ENODEV;
		}
		dsm_info("no RDMA device here: serving TCP only");
		return 0;
	}
	err = listen_rdma_start(&srv->rdma, &srv->loop,
				(const struct sockaddr *)ss, &srv->h,
				&srv->sessions, &srv->port, why, sizeof(why));
	if (err && mode == TRANSPORT_RDMA) {
		dsm_err("cannot listen for RDMA on %s: %s", addr, why);
		return err;
	}
	if (err) {
		dsm_warn("no RDMA on %s (%s): serving TCP only", addr, why);
		return 0;
	}
	srv->rdma_on = true;
	return 0;
}

static int start_listening(struct server *srv, const struct options *o)
{
	struct sockaddr_storage ss;
	char host[256], cap[32];
	uint16_t port;
	int err;

	if (dsm_parse_hostport(o->listen, host, sizeof(host), &port) < 0) {
		dsm_err("bad --listen '%s': want HOST:PORT", o->listen);
		return -EINVAL;
	}
	err = resolve(host, port, &ss);
	if (!err)
		err = check_exposure(srv, &ss, o->listen);
	if (!err && o->transport != TRANSPORT_RDMA)
		err = listen_tcp(srv, &ss, o->listen);
	if (!err && o->transport != TRANSPORT_TCP)
		err = listen_rdma(srv, &ss, o->transport, o->listen);
	if (err)
		return err;
	snprintf(srv->listen_host, sizeof(srv->listen_host), "%s", host);
	if (o->port_file && (err = write_port_file(o->port_file, srv->port)) < 0) {
		dsm_err("cannot write port file %s: %s", o->port_file,
			strerror(-err));
		return err;
	}
	dsm_info(strchr(host, ':') ? "listening on [%s]:%u capacity %s (%s)"
				   : "listening on %s:%u capacity %s (%s)",
		 host, srv->port, dsm_fmt_bytes(srv->h.pool.capacity, cap,
						sizeof(cap)),
		 server_transports(srv));
	return 0;
}

/* --metrics: on the loop, beside the clients' listener. */
static int start_metrics(struct server *srv, const struct options *o)
{
	struct sockaddr_storage ss;
	char host[256];
	uint16_t port;
	int err;

	if (!o->metrics)
		return 0;
	if (metrics_parse_addr(o->metrics, host, sizeof(host), &port) < 0)
		return -EINVAL; /* parse_args saw to it */
	err = resolve(host, port, &ss);
	if (err)
		return err;
	err = metrics_start(&srv->metrics, &srv->loop, &ss, &srv->h);
	if (err)
		dsm_err("cannot serve metrics on %s: %s", o->metrics,
			uv_strerror(err));
	return err;
}

/* An operator asked for this line, so the log level does not filter it. */
static void print_stats(struct server *srv)
{
	struct dsm_server_stats st;
	char line[768], cap[32], used[32];
	int n;

	handler_stats(&srv->h, &st);
	n = snprintf(line, sizeof(line),
		     "dsm-server[%d]: stats: capacity %s used %s regions %llu "
		     "clients %llu reads %llu writes %llu pages_in %llu "
		     "pages_out %llu errors %llu conn_refused %llu "
		     "over_limit %llu lock_grants %llu lock_waits %llu "
		     "lock_owner_died %llu barriers %llu uptime %llus\n",
		     (int)getpid(), dsm_fmt_bytes(st.capacity, cap, sizeof(cap)),
		     dsm_fmt_bytes(st.used, used, sizeof(used)),
		     (unsigned long long)st.regions,
		     (unsigned long long)st.clients,
		     (unsigned long long)st.reads,
		     (unsigned long long)st.writes,
		     (unsigned long long)st.pages_written,
		     (unsigned long long)st.pages_read,
		     (unsigned long long)st.errors,
		     (unsigned long long)st.conn_refused,
		     (unsigned long long)srv->h.over_limit,
		     (unsigned long long)srv->h.lock_grants,
		     (unsigned long long)srv->h.lock_waits,
		     (unsigned long long)srv->h.lock_owner_died,
		     (unsigned long long)srv->h.barriers_released,
		     (unsigned long long)st.uptime_ms / 1000);
	if (n > 0 && write(STDERR_FILENO, line, n) < 0) {
		/* nowhere left to report it */
	}
}

static void close_all_sessions(struct server *srv)
{
	for (struct session *s = srv->sessions.head; s; s = s->next)
		session_close(s);
}

static void on_stop_timer(uv_timer_t *t)
{
	struct server *srv = t->data;

	dsm_warn("%zu clients did not take their GOODBYE in time, closing",
		 srv->sessions.count);
	membership_abort(&srv->reg);
	close_all_sessions(srv);
}

/*
 * The signal handles and the grace timer are unreferenced, so uv_run()
 * returns as soon as the listener and the last session have closed.  A
 * second signal stops waiting for slow clients.
 */
static void begin_stop(struct server *srv)
{
	if (srv->stopping) {
		close_all_sessions(srv);
		return;
	}
	srv->stopping = true;
	membership_stop(&srv->reg);
	dsm_info("shutting down, saying goodbye to %zu clients",
		 srv->sessions.count);
	if (srv->tcp_on)
		uv_close((uv_handle_t *)&srv->listener, NULL);
	srv->tcp_on = false;
	uv_timer_stop(&srv->accept_timer);
	session_list_stop(&srv->sessions);
	listen_rdma_stop(&srv->rdma);
	metrics_stop(&srv->metrics);
	for (struct session *s = srv->sessions.head; s; s = s->next)
		session_goodbye(s, srv->next_msg_id++);
	uv_unref((uv_handle_t *)&srv->sig_usr1);
	uv_unref((uv_handle_t *)&srv->sig_term);
	uv_unref((uv_handle_t *)&srv->sig_int);
	uv_timer_start(&srv->stop_timer, on_stop_timer, STOP_GRACE_MS, 0);
	uv_unref((uv_handle_t *)&srv->stop_timer);
}

static void on_signal(uv_signal_t *sig, int signum)
{
	struct server *srv = sig->data;

	if (signum == SIGUSR1)
		print_stats(srv);
	else
		begin_stop(srv);
}

static int watch_signal(struct server *srv, uv_signal_t *sig, int signum)
{
	uv_signal_init(&srv->loop, sig);
	sig->data = srv;
	return uv_signal_start(sig, on_signal, signum);
}

static int start_signals(struct server *srv)
{
	int err;

	/* A peer that vanishes mid-write must cost an error, not the process. */
	signal(SIGPIPE, SIG_IGN);
	err = watch_signal(srv, &srv->sig_usr1, SIGUSR1);
	if (!err)
		err = watch_signal(srv, &srv->sig_term, SIGTERM);
	if (!err)
		err = watch_signal(srv, &srv->sig_int, SIGINT);
	if (err)
		dsm_err("cannot watch signals: %s", uv_strerror(err));
	return err;
}

static void close_handle(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* Close whatever is still open and let libuv finish closing it. */
static void drain_loop(uv_loop_t *loop)
{
	uv_walk(loop, close_handle, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	if (uv_loop_close(loop))
		dsm_warn("event loop still busy at exit");
}

/*
 * The loop, polling for poll_ns after the last request before it sleeps.
 * Why: on a virtual machine a sleeping server's vCPU halts, and waking it
 * for the next request costs a VM exit and entry (~20 us measured on this
 * project's machines, more than the loopback round trip).  Clients fault
 * in bursts, so the next request usually comes within microseconds.  The
 * loop runs until no referenced handle is left, as UV_RUN_DEFAULT would.
 * What counts is requests handled, never bytes: over RDMA the pages move
 * without this loop, and only control messages reach it.
 */
static void run_loop(struct server *srv, uint64_t poll_ns)
{
	uint64_t seen = srv->h.requests, busy_until = 0;
	uv_run_mode mode = UV_RUN_ONCE;

	while (uv_run(&srv->loop, mode)) {
		uint64_t now = dsm_now_ns();
		bool active = srv->h.requests != seen;

		if (active) {
			seen = srv->h.requests;
			busy_until = now + poll_ns;
		}
		mode = now < busy_until ? UV_RUN_NOWAIT : UV_RUN_ONCE;
		/* a client thread may be runnable on this CPU: let it go
		 * first rather than spin through our time slice */
		if (mode == UV_RUN_NOWAIT && !active)
			sched_yield();
	}
}

/* The address clients are told: --advertise, else what we listen on.  A
 * wildcard address means nothing to a client, so it needs --advertise. */
static int advertised(const struct server *srv, const struct options *o,
		      char *out, size_t len)
{
	const char *host = srv->listen_host;
	bool v6;

	if (o->advertise) {
		char h[256];
		uint16_t p;

		if (!dsm_parse_hostport(o->advertise, h, sizeof(h), &p)) {
			snprintf(out, len, "%s", o->advertise);
			return 0;
		}
		host = o->advertise;
	} else if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::")) {
		dsm_err("listening on %s: say which address clients should "
			"use with --advertise HOST", host);
		return -EINVAL;
	}
	v6 = strchr(host, ':') && host[0] != '[';
	snprintf(out, len, v6 ? "[%s]:%u" : "%s:%u", host, srv->port);
	return 0;
}

/* The registry's drain set changed for us: take no new regions (or take
 * them again) and tell every client, which moves its extents off. */
static void drain_changed(void *arg, bool on)
{
	struct server *srv = arg;
	struct session *s, *next;

	srv->h.draining = on;
	for (s = srv->sessions.head; s; s = next) {
		next = s->next; /* a failed send closes s */
		session_draining(s, srv->next_msg_id++, on);
	}
}

static int join_cluster(struct server *srv, const struct options *o)
{
	struct dsm_reg_server rec = { .id = o->server_id,
				      .capacity = srv->h.pool.capacity };

	if (!o->registry)
		return 0;
	snprintf(rec.transports, sizeof(rec.transports), "%s",
		 server_transports(srv));
	if (advertised(srv, o, rec.addr, sizeof(rec.addr)))
		return -EINVAL;
	/* ids only need to be unique within a cluster: a random one needs
	 * no coordination and survives Redis losing its data */
	while (!o->server_id_set && !rec.id)
		if (getrandom(&rec.id, sizeof(rec.id), 0) != sizeof(rec.id))
			return -errno;
	srv->h.server_id = rec.id;
	return membership_start(&srv->reg, &srv->loop, &srv->reg_addr,
				o->cluster, &rec, &srv->h, &srv->sessions,
				drain_changed, srv);
}

/*
 * Every connection holds descriptors, and a process out of them can
 * accept nobody, members included.  So the soft limit is raised as far
 * as --max-connections needs (up to the hard limit, which takes no
 * privilege), and where even the hard limit is short, the cap comes down
 * to fit it, with a warning: refusing a connection past the cap is
 * orderly, running out of descriptors is not.
 */
static void fit_descriptors(struct options *o)
{
	uint64_t per = o->transport == TRANSPORT_TCP ? FDS_PER_TCP
						     : FDS_PER_RDMA;
	/* with --metrics, its listener and connections too */
	uint64_t reserve = FD_RESERVE + (o->metrics ? 1 + METRICS_MAX_CONNS : 0);
	uint64_t need = o->lim.max_sessions * per + reserve, fit;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need
			      ? rl.rlim_max : need;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0 ||
		    getrlimit(RLIMIT_NOFILE, &rl) < 0)
			return;
	}
	if (rl.rlim_cur < need) {
		fit = rl.rlim_cur > reserve + per
		      ? (rl.rlim_cur - reserve) / per : 1;
		dsm_warn("only %llu descriptors (ulimit -n; LimitNOFILE in a "
			 "systemd unit): taking at most %llu connections, not "
			 "%zu", (unsigned long long)rl.rlim_cur,
			 (unsigned long long)fit, o->lim.max_sessions);
		o->lim.max_sessions = fit;
	}
	if (o->lim.max_handshakes > o->lim.max_sessions)
		o->lim.max_handshakes = o->lim.max_sessions;
}

int main(int argc, char **argv)
{
	struct options o = {
		.poll_us = DSM_DEFAULT_POLL_US,
		.transport = TRANSPORT_BOTH,
		.lim = { .max_sessions = DEFAULT_MAX_CONNECTIONS,
			 .max_handshakes = DEFAULT_MAX_HANDSHAKES,
			 .handshake_ms = DEFAULT_HANDSHAKE_MS,
			 .tcp_timeout_ms = DEFAULT_TCP_TIMEOUT_MS },
		.client = {
			.regions_per_session = DEFAULT_MAX_REGIONS,
			.sessions_per_client = DEFAULT_MAX_CLIENT_SESSIONS },
	};
	struct server srv;
	char cap[32], why[256];
	int err, rc = 1;

	dsm_log_set_level(DSM_LOG_INFO); /* DSM_LOG, then --log, override */
	dsm_log_init("dsm-server");
	parse_args(argc, argv, &o);

	memset(&srv, 0, sizeof(srv));
	srv.next_msg_id = 1;
	err = handler_init(&srv.h, o.capacity, o.pages, o.server_id, why,
			   sizeof(why));
	if (err) {
		dsm_err("cannot reserve %s: %s", dsm_fmt_bytes(o.capacity, cap,
			sizeof(cap)), why[0] ? why : strerror(-err));
		goto out_options;
	}
	dsm_info("pool of %s %s", dsm_fmt_bytes(o.capacity, cap, sizeof(cap)),
		 why);
	srv.h.limits = o.client;
	if (o.inval_timeout_ms)
		srv.h.inval_timeout_ms = o.inval_timeout_ms;
	fit_descriptors(&o);
	if (o.secret_file) {
		char msg[512];

		if (dsm_auth_load(o.secret_file, &srv.key, msg, sizeof(msg))) {
			dsm_err("%s", msg);
			goto out_handler;
		}
		srv.h.key = &srv.key;
	}
	if (o.registry) {
		char msg[512];

		if (dsm_reg_addr_init(&srv.reg_addr, o.registry,
				      o.registry_pass_file,
				      "--registry-password-file", msg,
				      sizeof(msg))) {
			dsm_err("%s", msg);
			goto out_handler;
		}
	}
	uv_loop_init(&srv.loop);
	uv_timer_init(&srv.loop, &srv.stop_timer);
	srv.stop_timer.data = &srv;
	uv_timer_init(&srv.loop, &srv.accept_timer);
	srv.accept_timer.data = &srv;
	/* without it no deferred reply would ever be sent */
	if (session_list_init(&srv.sessions, &srv.loop, &srv.h, &o.lim)) {
		dsm_err("cannot start the session timers");
		goto out;
	}
	if (start_listening(&srv, &o) < 0 || start_signals(&srv) < 0 ||
	    start_metrics(&srv, &o) < 0 || join_cluster(&srv, &o) < 0)
		goto out;

	run_loop(&srv, o.poll_us * 1000);
	rc = 0;
out:
	close_all_sessions(&srv);
	listen_rdma_stop(&srv.rdma);
	metrics_stop(&srv.metrics);
	drain_loop(&srv.loop);
out_handler:
	dsm_reg_addr_wipe(&srv.reg_addr);
	handler_destroy(&srv.h);
out_options:
	config_free(&o.file);
	return rc;
}
