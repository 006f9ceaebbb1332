/*
 * test_server_killed.c - the memory server dies under a running client
 * (room: tests).
 *
 * Documented outcome (docs/design.md, "Failures"): the client logs which
 * server was lost; dsm_sync() of dirty resident pages returns an error
 * instead of hanging; touching a page that lived only on that server
 * raises SIGBUS in the touching thread; nothing reads back as zeros.
 * The client runs in a child so the parent can watch it with a timeout.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_util.h"

#define BUDGET (1u << 20)
#define SIZE (16u << 20)

static sigjmp_buf on_bus;

static void bus_handler(int sig __attribute__((unused)))
{
	siglongjmp(on_bus, 1);
}

static int child(struct th_server *srv, int ready_fd, int go_fd)
{
	struct dsm_options o = { .servers = srv->addr, .local_mem = BUDGET };
	volatile uint64_t *far;
	char c = 0;
	int err;

	TH_CHECK(dsm_init(&o) == 0);
	far = dsm_alloc(SIZE);
	TH_CHECK(far);
	for (size_t i = 0; i < SIZE / 8; i += 512)
		far[i] = tc_mix(i); /* most of it ends up on the server */
	far[SIZE / 8 - 1] = 7;  /* resident and dirty */

	TH_CHECK(write(ready_fd, &c, 1) == 1);
	TH_CHECK(read(go_fd, &c, 1) == 1); /* the server is dead now */

	err = dsm_sync((void *)far, SIZE);
	printf("child: dsm_sync after server death: %s\n", dsm_strerror(err));
	if (err == 0)
		return 2;
	/* resident dirty data is still there */
	if (far[SIZE / 8 - 1] != 7)
		return 3;
	signal(SIGBUS, bus_handler);
	if (sigsetjmp(on_bus, 1) == 0) {
		uint64_t v = far[0]; /* evicted long ago: only on the server */

		printf("child: read %#lx from a lost page\n", (unsigned long)v);
		return 4;
	}
	printf("child: SIGBUS on a lost page, as documented\n");
	dsm_shutdown(); /* must not hang with the server gone either */
	return 42;
}

int main(void)
{
	struct th_server srv;
	int ready[2], go[2], status;
	/* room for every failed write-back's line before the one we want */
	static char log[1 << 16];
	char c = 0, logpath[] = "/tmp/dsm-killed-log-XXXXXX";
	pid_t pid;
	int lfd;

	TH_CHECK(th_server_start(&srv, "64M") == 0);
	TH_CHECK(pipe(ready) == 0 && pipe(go) == 0);
	lfd = mkstemp(logpath);
	TH_CHECK(lfd >= 0);
	fflush(stdout);
	pid = fork();
	TH_CHECK(pid >= 0);
	if (pid == 0) {
		dup2(lfd, STDERR_FILENO);
		_exit(child(&srv, ready[1], go[0]));
	}
	TH_CHECK(read(ready[0], &c, 1) == 1);
	th_server_kill(&srv);
	TH_CHECK(write(go[1], &c, 1) == 1);

	/* must finish, not hang: 30 s is far more than it needs */
	pid_t done = 0;

	for (int i = 0; i < 300 && done == 0; i++) {
		done = waitpid(pid, &status, WNOHANG);
		if (done == 0)
			usleep(100000);
	}
	if (done != pid) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fprintf(stderr, "client hung after server death\n");
		return 1;
	}
	TH_CHECK(pread(lfd, log, sizeof(log) - 1, 0) >= 0);
	fprintf(stderr, "--- client log ---\n%s------------------\n", log);
	TH_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42);
	TH_CHECK(strstr(log, "lost connection to memory server") != NULL);
	unlink(logpath);
	printf("server_killed: ok\n");
	return 0;
}
