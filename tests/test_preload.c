/*
 * test_preload.c - libdsm-preload.so under an ordinary program
 * (preload_subject.c) (room: tests): each scenario runs as its own process
 * with the shim preloaded against a server of our own and a small budget,
 * and must exit 0 having checked every byte; its stats file must show far
 * memory really used.  Then the failure cases: no server (one warning,
 * local memory) and no server with DSM_REQUIRE=1 (an error and exit status
 * 1).
 *
 *   test_preload SHIM SUBJECT
 *
 * Skipped under the sanitizer builds: an instrumented shim would have to
 * come after the sanitizer's runtime, whose malloc then wins, so there is
 * nothing to test (docs/design.md, "Sanitizers").
 */
#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static const char *shim, *subject;
static char dir[] = "/tmp/dsm-preload-XXXXXX";

/* Run the subject in mode with the shim and env (NULL-terminated
 * NAME=VALUE list); stderr goes to dir/err.  Its wait status. */
static int run(const char *mode, const char *const *env)
{
	char path[300];
	pid_t pid;
	int st;

	snprintf(path, sizeof(path), "%s/stats", dir);
	unlink(path);
	fflush(NULL);
	pid = fork();
	TH_CHECK(pid >= 0);
	if (pid == 0) {
		int fd;

		snprintf(path, sizeof(path), "%s/err", dir);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || dup2(fd, 2) < 0)
			_exit(126);
		snprintf(path, sizeof(path), "%s/stats", dir);
		setenv("DSM_STATS_FILE", path, 1);
		setenv("LD_PRELOAD", shim, 1);
		for (; env && *env; env++)
			putenv((char *)*env);
		execl(subject, subject, mode, (char *)NULL);
		_exit(127);
	}
	TH_CHECK(waitpid(pid, &st, 0) == pid);
	return st;
}

static char *slurp(const char *name)
{
	static char buf[65536];
	char path[300];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* A counter from the stats file, summed over its blocks; -1 if none. */
static long long stat_of(const char *key)
{
	char *s = slurp("stats"), want[64];
	long long sum = -1;
	size_t kl;

	if (!s)
		return -1;
	kl = (size_t)snprintf(want, sizeof(want), "%s=", key);
	for (char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (!strncmp(l, want, kl))
			sum = (sum < 0 ? 0 : sum) + atoll(l + kl);
	}
	return sum;
}

/* What the stats must show besides faults: pages fetched back and
 * evicted (PAGED), or evictions but not one fetch (NO_FETCH: freed far
 * memory is never read back from a server), or nothing more (ANY). */
enum expect { ANY, PAGED, NO_FETCH };

static void expect_ok(const char *mode, const char *const *env,
		      enum expect want)
{
	int st = run(mode, env);
	long long fetched, evicted;

	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "preload %s: status %#x; its stderr:\n%s\n", mode,
			st, slurp("err") ? slurp("err") : "");
		exit(1);
	}
	fetched = stat_of("pages_fetched");
	evicted = stat_of("pages_evicted");
	printf("preload %-10s ok: fetched %lld, evicted %lld, zero-filled %lld\n",
	       mode, fetched, evicted, stat_of("pages_zero_filled"));
	TH_CHECK(stat_of("missing_faults") > 0); /* far memory was used */
	if (want == PAGED)
		TH_CHECK(fetched > 0 && evicted > 0);
	if (want == NO_FETCH)
		TH_CHECK(fetched == 0 && evicted > 0 &&
			 stat_of("pages_written_back") > 0);
}

int main(int argc, char **argv)
{
	static const char *const budget[] = { "DSM_LOCAL_MEM=16M", NULL };
	static const char *const many[] = { "DSM_LOCAL_MEM=16M",
		"DSM_PRELOAD_THRESHOLD=16K", NULL };
	char servers[128], server_pid[64], *err;
	const char *noserver[] = { "DSM_SERVERS=127.0.0.1:1", NULL, NULL };
	struct th_server srv;
	int st;

#ifdef TH_SANITIZED
	printf("SKIP: the shim replaces malloc, as the sanitizer runtime "
	       "does; it cannot be tested under a sanitizer\n");
	return 77;
#endif
	TH_CHECK(argc == 3);
	shim = argv[1];
	subject = argv[2];
	TH_CHECK(mkdtemp(dir));
	TH_CHECK(th_server_start(&srv, "16G") == 0);
	snprintf(servers, sizeof(servers), "DSM_SERVERS=%s", srv.addr);
	putenv(servers);
	snprintf(server_pid, sizeof(server_pid), "SUBJECT_SERVER_PID=%d",
		 (int)srv.pid);
	putenv(server_pid);
	unsetenv("DSM_REGISTRY");
	unsetenv("DSM_REQUIRE");

	expect_ok("threads", budget, PAGED);
	expect_ok("many", many, PAGED);
	expect_ok("calloc", budget, NO_FETCH);
	expect_ok("align", budget, ANY);
	expect_ok("mmap", budget, ANY);
	expect_ok("forkexec", budget, PAGED);
	expect_ok("forkchild", budget, ANY);
	expect_ok("signals", budget, PAGED);
	expect_ok("syscall", budget, PAGED);
	expect_ok("release", budget, PAGED);
	expect_ok("mprotect", budget, PAGED);
	/* reservations committed later (issue 16) */
	expect_ok("reserve", budget, PAGED);
	/* advice, mlock and a SIGSEGV handler of the program's (issue 16) */
	expect_ok("advice", budget, PAGED);

	/* No server: the program runs on local memory, with one warning. */
	st = run("small", noserver);
	err = slurp("err");
	TH_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	TH_CHECK(err && strstr(err, "no memory server reachable") &&
		 strstr(err, "running on local memory"));
	TH_CHECK(strchr(err, '\n') == err + strlen(err) - 1); /* one line */
	TH_CHECK(stat_of("pid") < 0); /* no far memory, no stats */
	printf("preload no server: ran locally, warned once\n");

	/* ... unless the user required it. */
	noserver[1] = "DSM_REQUIRE=1";
	st = run("small", noserver);
	err = slurp("err");
	TH_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	TH_CHECK(err && strstr(err, "DSM_REQUIRE=1"));
	printf("preload DSM_REQUIRE=1 without server: exit status 1\n");

	/* A bad setting is named, and not blamed on the server, which is
	 * up: before dsm_check_config the shim said "no memory server
	 * reachable (...: Invalid argument)" for DSM_PREFETCH= */
	{
		const char *bad[] = { servers, "DSM_PREFETCH=", NULL, NULL };

		st = run("small", bad);
		err = slurp("err");
		TH_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		TH_CHECK(err && strstr(err, "DSM_PREFETCH") &&
			 strstr(err, "a DSM_* setting is wrong") &&
			 !strstr(err, "no memory server reachable"));
		TH_CHECK(stat_of("pid") < 0);
		bad[2] = "DSM_REQUIRE=1";
		st = run("small", bad);
		TH_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
		printf("preload bad setting: named, ran locally; exit 1 with "
		       "DSM_REQUIRE=1\n");
	}

	th_server_stop(&srv);
	slurp("x");
	unlink(strcat(strcpy(servers, dir), "/err"));
	unlink(strcat(strcpy(servers, dir), "/stats"));
	rmdir(dir);
	return 0;
}
