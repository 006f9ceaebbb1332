/*
 * test_unprivileged.c - far memory for a user who may not trap kernel-mode
 * faults (no /dev/userfaultfd access, vm.unprivileged_userfaultfd=0, no
 * CAP_SYS_PTRACE) (room: tests).  Documented behaviour (README
 * "Permissions"): dsm_init succeeds with one warning saying what to change;
 * loads and stores work; a system call writing into a non-resident page
 * fails with EFAULT rather than reading or writing wrong data.
 *
 * Needs root to become an unprivileged user; skips with the reason
 * otherwise, or when this machine already lets everyone trap kernel faults.
 */
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_util.h"

static int sysctl_unprivileged(void)
{
	int fd = open("/proc/sys/vm/unprivileged_userfaultfd", O_RDONLY);
	char c = '0';

	if (fd >= 0) {
		if (read(fd, &c, 1) != 1)
			c = '0';
		close(fd);
	}
	return c == '1';
}

static int child(const char *addr, int logfd)
{
	struct dsm_options o = { .servers = addr, .local_mem = 1u << 20 };
	char *far;
	int fd;

	dup2(logfd, STDERR_FILENO);
	if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
		return 10;
	if (dsm_init(&o))
		return 11;
	far = dsm_alloc(1u << 20);
	if (!far)
		return 12;
	far[0] = 1; /* user-mode faults work */
	if (far[0] != 1)
		return 13;
	fd = open("/proc/self/cmdline", O_RDONLY);
	/* page 128 was never touched, nor its 64 KiB block (a fault
	 * zero-fills the block around it): the kernel's own fault cannot be
	 * served */
	if (read(fd, far + 128 * 4096, 16) != -1 || errno != EFAULT)
		return 14;
	close(fd);
	dsm_free(far);
	dsm_shutdown();
	return 0;
}

int main(void)
{
	char logpath[] = "/tmp/dsm-unpriv-log-XXXXXX", log[4096] = "";
	struct th_server srv;
	int status, lfd;
	pid_t pid;

	if (geteuid() != 0) {
		printf("SKIP: needs root to switch to an unprivileged user\n");
		return 77;
	}
	if (sysctl_unprivileged()) {
		printf("SKIP: vm.unprivileged_userfaultfd=1 lets every user "
		       "trap kernel faults; nothing to degrade\n");
		return 77;
	}
	TH_CHECK(th_server_start(&srv, "16M") == 0);
	lfd = mkstemp(logpath);
	TH_CHECK(lfd >= 0);
	fchmod(lfd, 0666);
	pid = fork();
	TH_CHECK(pid >= 0);
	if (pid == 0)
		_exit(child(srv.addr, lfd));
	TH_CHECK(waitpid(pid, &status, 0) == pid);
	TH_CHECK(pread(lfd, log, sizeof(log) - 1, 0) >= 0);
	fprintf(stderr, "--- child log ---\n%s-----------------\n", log);
	th_server_stop(&srv);
	unlink(logpath);
	TH_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	TH_CHECK(strstr(log, "limited to user-mode faults") != NULL);
	printf("unprivileged: ok\n");
	return 0;
}
