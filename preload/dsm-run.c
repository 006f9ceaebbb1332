/*
 * dsm-run.c - run an unmodified program with its large allocations in far
 * memory (room: preload shim).
 *
 *   dsm-run [--local-mem SIZE] [--servers LIST | --registry URL] [...]
 *           -- PROGRAM ARGS...
 *
 * Sets the environment libdsm-preload.so reads, runs the program with the
 * shim preloaded, waits for it, and prints to stderr how much of its
 * memory went far against its peak resident set (noting a program that
 * kept most of it local), then the far-memory stats of the run (summed
 * over every process of the run that used far memory), unless --quiet;
 * --stats-file keeps each process's block there too.  The exit status is
 * the program's (128 + signal if it was killed).
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stats_file.h"

#ifndef DSM_PRELOAD_INSTALLED
#define DSM_PRELOAD_INSTALLED "/usr/local/lib/libdsm-preload.so"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dsm-run [options] -- PROGRAM [ARGS...]\n"
		"Run PROGRAM with its large allocations in far memory "
		"(LD_PRELOAD=libdsm-preload.so).\n"
		"  --local-mem SIZE     resident budget (DSM_LOCAL_MEM), e.g. 256M\n"
		"  --servers LIST       host:port[,host:port...] (DSM_SERVERS)\n"
		"  --registry URL       redis://host:port (DSM_REGISTRY)\n"
		"  --cluster NAME       cluster in the registry (DSM_CLUSTER)\n"
		"  --secret-file PATH   the cluster's secret (DSM_SECRET_FILE)\n"
		"  --registry-password-file PATH\n"
		"                       the registry's Redis password, in a "
		"mode-0600 file\n"
		"                       (DSM_REGISTRY_PASSWORD_FILE)\n"
		"  --threshold SIZE     smallest allocation put in far memory "
		"(DSM_PRELOAD_THRESHOLD, default 128K;\n"
		"                       16 to 4K: small blocks too, from slabs)\n"
		"  --replicas N         copies of each page, on N distinct servers "
		"(DSM_REPLICAS, 1 to 3, default 1)\n"
		"  --require            fail if no server is reachable "
		"(DSM_REQUIRE=1)\n"
		"  --stats-file PATH    also write the stats there (key=value "
		"lines, one block per process)\n"
		"  --quiet              print no stats\n"
		"  --help               this text\n"
		"Environment: DSM_PRELOAD_LIB overrides where the shim is found.\n"
		"Exit status: the program's; 128+N if signal N killed it; 2 for "
		"a usage error; 127 if it could not be run.\n");
}

static void die_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "dsm-run: %s%s%s\n", msg, arg ? ": " : "",
		arg ? arg : "");
	usage(stderr);
	exit(2);
}

/* The shim: $DSM_PRELOAD_LIB, else beside us in a build tree
 * (build/preload/), else where it is installed. */
static const char *find_shim(char *buf, size_t len)
{
	const char *env = getenv("DSM_PRELOAD_LIB");
	char self[PATH_MAX];
	ssize_t n;

	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		char *slash;

		self[n] = '\0';
		if ((slash = strrchr(self, '/'))) {
			*slash = '\0';
			snprintf(buf, len, "%s/libdsm-preload.so", self);
			if (access(buf, R_OK) == 0)
				return buf;
			snprintf(buf, len, "%s/../lib/libdsm-preload.so", self);
			if (access(buf, R_OK) == 0)
				return buf;
		}
	}
	return DSM_PRELOAD_INSTALLED;
}

#define NKEYS 21
static const char *const keys[NKEYS] = {
	"missing_faults", "wp_faults", "pages_fetched", "pages_zero_filled",
	"pages_written_back", "pages_evicted", "pages_prefetched",
	"prefetch_used", "bytes_in", "bytes_out", "blocktime_ns",
	"resident_pages", "budget_pages", "fault_p50_ns", "fault_p99_ns",
	"pages_moved", "pages_replicated", "fetch_failovers",
	"pages_rereplicated", "degraded_stripes", "arenas",
};

/* The run's processes' blocks, summed (a budget: the largest). */
struct run_stats {
	unsigned long long sum[NKEYS], far_peak, budget_pages;
	unsigned procs;
	char transports[600];
};

static int read_stats(const char *path, struct run_stats *st)
{
	unsigned long long v;
	char line[640], key[64];
	FILE *f = fopen(path, "r");

	memset(st, 0, sizeof(*st));
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		/* which transport reached which server: the last process's
		 * (they connect alike) */
		if (!strncmp(line, "transports=", 11)) {
			snprintf(st->transports, sizeof(st->transports), "%.*s",
				 (int)strcspn(line + 11, "\n"), line + 11);
			continue;
		}
		if (sscanf(line, "%63[^=]=%llu", key, &v) != 2)
			continue;
		st->procs += !strcmp(key, "pid");
		/* each process's peak, added: at most what was far at once */
		if (!strcmp(key, "arena_bytes_peak"))
			st->far_peak += v;
		if (!strcmp(key, "budget_pages") && v > st->budget_pages)
			st->budget_pages = v;
		for (int i = 0; i < NKEYS; i++)
			if (!strcmp(key, keys[i]))
				st->sum[i] += v;
	}
	fclose(f);
	return 0;
}

static const char *human(char *buf, size_t cap, unsigned long long bytes)
{
	if (bytes >= 1ULL << 30)
		snprintf(buf, cap, "%.1f GiB", bytes / 1073741824.0);
	else if (bytes >= 1ULL << 20)
		snprintf(buf, cap, "%.1f MiB", bytes / 1048576.0);
	else
		snprintf(buf, cap, "%.1f KiB", bytes / 1024.0);
	return buf;
}

static unsigned long long key_sum(const struct run_stats *st, const char *k)
{
	for (int i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i], k))
			return st->sum[i];
	return 0;
}

/*
 * The first lines a user reads: how much of the program's memory went
 * far, against how much it kept resident.  A resident set well over the
 * budget with little far memory is a program whose memory the shim does
 * not see (a runtime that maps its heap without the C library, or small
 * allocations), and is said as such.
 */
static void print_headline(const struct run_stats *st, unsigned long long rss)
{
	unsigned long long budget = st->budget_pages * 4096;
	char a[32], b[32], c[32], d[32];

	fprintf(stderr, "dsm-run: far memory: %s at most in use, %s written "
		"back to the servers; the program's resident set peaked at %s "
		"(local budget %s)\n", human(a, sizeof(a), st->far_peak),
		human(b, sizeof(b), key_sum(st, "bytes_out")),
		human(c, sizeof(c), rss), human(d, sizeof(d), budget));
	/* what is resident beyond the budget is not far memory's */
	if (budget && rss > 2 * budget && rss - budget > st->far_peak)
		fprintf(stderr, "dsm-run: note: most of the program's memory "
			"stayed local: its resident set peaked at %s, over "
			"twice the budget, while %s was far memory. The "
			"shim places allocations of at least --threshold made "
			"through the C library; a runtime that maps its heap "
			"itself (a static Go binary) and small allocations stay "
			"local (README, \"Unmodified programs\")\n",
			human(a, sizeof(a), rss),
			human(b, sizeof(b), st->far_peak));
}

/* Is "pid=PID" a line of the file at path? */
static bool has_block(const char *path, long pid)
{
	char line[640], want[32];
	bool found = false;
	FILE *f = fopen(path, "r");

	if (!f)
		return false;
	snprintf(want, sizeof(want), "pid=%ld\n", pid);
	while (!found && fgets(line, sizeof(line), f))
		found = !strcmp(line, want);
	fclose(f);
	return found;
}

/* Append the file at from to the one at to; false if it could not. */
static bool append_file(const char *from, const char *to)
{
	char buf[4096];
	size_t n;
	bool ok = true;
	FILE *in = fopen(from, "r"), *out = in ? fopen(to, "a") : NULL;

	if (!out) {
		if (in)
			fclose(in);
		return false;
	}
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		ok = ok && fwrite(buf, 1, n, out) == n;
	fclose(in);
	return fclose(out) == 0 && ok;
}

/*
 * The snapshots the run's processes kept beside the stats file
 * (PATH.dsm-snapshot.PID, preload/stats_file.h): with take, those of processes that
 * left no block at exit are appended to it, as their figures; all are
 * removed.  Returns how many were taken.
 */
static unsigned snapshots(const char *path, bool take)
{
	char buf[PATH_MAX], file[PATH_MAX + 300], *slash;
	const char *dir = ".", *base = path;
	size_t blen, tag = strlen(STATS_SNAPSHOT_TAG);
	unsigned taken = 0;
	struct dirent *e;
	DIR *d;

	snprintf(buf, sizeof(buf), "%s", path);
	slash = strrchr(buf, '/');
	if (slash) {
		base = path + (slash - buf) + 1;
		slash[slash == buf] = '\0'; /* "/x": the root stays "/" */
		dir = buf;
	}
	blen = strlen(base);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char *end;
		long pid;

		const char *tail = e->d_name + blen + tag;

		if (strncmp(e->d_name, base, blen) ||
		    strncmp(e->d_name + blen, STATS_SNAPSHOT_TAG, tag))
			continue;
		pid = strtol(tail, &end, 10);
		if (end == tail || pid <= 0 || (*end && strcmp(end, ".tmp")))
			continue;
		snprintf(file, sizeof(file), "%s/%s", dir, e->d_name);
		if (take && !*end && !has_block(path, pid) &&
		    append_file(file, path))
			taken++;
		unlink(file);
	}
	closedir(d);
	return taken;
}

/* The headline and every counter, summed over the processes. */
static void print_stats(const char *path, unsigned long long rss,
			unsigned snapped)
{
	struct run_stats st;

	if (read_stats(path, &st) || !st.procs) {
		char a[32];

		/* exit handlers write the stats: a process that ends
		 * without them (_exit, a signal) leaves none */
		fprintf(stderr, "dsm-run: no far-memory stats from the run: no "
			"process used far memory, or none ran its exit handlers "
			"(the program's resident set peaked at %s)\n",
			human(a, sizeof(a), rss));
		return;
	}
	print_headline(&st, rss);
	if (snapped)
		fprintf(stderr, "dsm-run: %u process%s ended without exit "
			"handlers (a Go program does): %s figures are from "
			"the last snapshot, taken at most %d ms before the "
			"end\n", snapped, snapped == 1 ? "" : "es",
			snapped == 1 ? "its" : "their", STATS_SNAPSHOT_MS);
	fprintf(stderr, "dsm-run: far-memory stats (%u process%s):\n",
		st.procs, st.procs == 1 ? "" : "es");
	for (int i = 0; i < NKEYS; i++) {
		/* percentiles do not add up: show them for one process only */
		if (st.procs > 1 && strstr(keys[i], "_p"))
			continue;
		fprintf(stderr, "  %-20s %llu\n", keys[i], st.sum[i]);
	}
	if (st.transports[0])
		fprintf(stderr, "  %-20s %s\n", "transports", st.transports);
}

static void set(const char *name, const char *value)
{
	if (value && setenv(name, value, 1)) {
		perror("dsm-run: setenv");
		exit(127);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "local-mem", required_argument, NULL, 'm' },
		{ "servers", required_argument, NULL, 's' },
		{ "registry", required_argument, NULL, 'r' },
		{ "cluster", required_argument, NULL, 'c' },
		{ "secret-file", required_argument, NULL, 'k' },
		{ "registry-password-file", required_argument, NULL, 'p' },
		{ "threshold", required_argument, NULL, 't' },
		{ "replicas", required_argument, NULL, 'N' },
		{ "require", no_argument, NULL, 'R' },
		{ "stats-file", required_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *stats_file = NULL, *shim, *old;
	char shim_buf[PATH_MAX + 32], tmp_stats[] = "/tmp/dsm-run-XXXXXX";
	char cwd[PATH_MAX], abs_stats[2 * PATH_MAX];
	char *preload;
	bool quiet = false, own_file = false;
	unsigned snapped;
	int c, status;
	pid_t pid;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'm': set("DSM_LOCAL_MEM", optarg); break;
		case 's': set("DSM_SERVERS", optarg); break;
		case 'r': set("DSM_REGISTRY", optarg); unsetenv("DSM_SERVERS"); break;
		case 'c': set("DSM_CLUSTER", optarg); break;
		case 'k': set("DSM_SECRET_FILE", optarg); break;
		case 'p': set("DSM_REGISTRY_PASSWORD_FILE", optarg); break;
		case 't': set("DSM_PRELOAD_THRESHOLD", optarg); break;
		case 'N': set("DSM_REPLICAS", optarg); break;
		case 'R': set("DSM_REQUIRE", "1"); break;
		case 'f': stats_file = optarg; break;
		case 'q': quiet = true; break;
		case 'h': usage(stdout); return 0;
		default: die_usage("unknown option", NULL);
		}
	}
	if (optind >= argc)
		die_usage("no program given", NULL);
	shim = find_shim(shim_buf, sizeof(shim_buf));
	if (access(shim, R_OK)) {
		fprintf(stderr, "dsm-run: %s: %s (set DSM_PRELOAD_LIB)\n", shim,
			strerror(errno));
		return 127;
	}
	/* the program may chdir: its processes must find the same file */
	if (stats_file && stats_file[0] != '/' && getcwd(cwd, sizeof(cwd)) &&
	    snprintf(abs_stats, sizeof(abs_stats), "%s/%s", cwd, stats_file) <
		    (int)sizeof(abs_stats))
		stats_file = abs_stats;
	if (!stats_file && !quiet) {
		int fd = mkstemp(tmp_stats);

		if (fd < 0) {
			perror("dsm-run: mkstemp");
			return 127;
		}
		close(fd);
		stats_file = tmp_stats;
		own_file = true;
	} else if (stats_file && truncate(stats_file, 0) && errno != ENOENT) {
		fprintf(stderr, "dsm-run: %s: %s\n", stats_file, strerror(errno));
		return 127;
	}
	if (stats_file)
		snapshots(stats_file, false); /* an earlier run's */
	set("DSM_STATS_FILE", stats_file);
	old = getenv("LD_PRELOAD");
	if (asprintf(&preload, "%s%s%s", shim, old && *old ? ":" : "",
		     old ? old : "") < 0)
		return 127;
	set("LD_PRELOAD", preload);

	/* Like system(): the terminal's ^C and ^\ are for the program. */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	pid = fork();
	if (pid < 0) {
		perror("dsm-run: fork");
		return 127;
	}
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		execvp(argv[optind], argv + optind);
		fprintf(stderr, "dsm-run: %s: %s\n", argv[optind], strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			perror("dsm-run: waitpid");
			return 127;
		}
	snapped = stats_file ? snapshots(stats_file, true) : 0;
	if (!quiet) {
		struct rusage ru;

		/* the largest process of the run (waited for) */
		getrusage(RUSAGE_CHILDREN, &ru);
		print_stats(stats_file, (unsigned long long)ru.ru_maxrss * 1024,
			    snapped);
	}
	if (own_file)
		unlink(stats_file);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
