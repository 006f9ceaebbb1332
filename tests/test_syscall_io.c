/*
 * test_syscall_io.c - read(2) into far memory and write(2) out of it,
 * through pages that are not resident, bit-exact (room: tests).
 *
 * These faults are raised by the kernel inside copy_to_user and
 * copy_from_user, not by the program's own loads and stores; they reach
 * dsm only when the userfaultfd was created without UFFD_USER_MODE_ONLY
 * (README: "Permissions").
 */
#include <fcntl.h>
#include <unistd.h>

#include "client_util.h"

#define BUDGET (2u << 20)
#define SIZE (32u << 20)
#define CHUNK (1u << 20)

static void fill_file(const char *path, uint8_t *expect)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);

	TH_CHECK(fd >= 0);
	for (size_t i = 0; i < SIZE / 8; i++)
		((uint64_t *)expect)[i] = tc_mix(i);
	TH_CHECK(write(fd, expect, SIZE) == SIZE);
	close(fd);
}

static void read_into(const char *path, uint8_t *far)
{
	int fd = open(path, O_RDONLY);

	TH_CHECK(fd >= 0);
	for (size_t off = 0; off < SIZE; off += CHUNK)
		TH_CHECK(read(fd, far + off, CHUNK) == CHUNK);
	close(fd);
}

static void write_from(const char *path, const uint8_t *far)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);

	TH_CHECK(fd >= 0);
	/* backwards, so the pages written out first are the ones evicted
	 * longest ago */
	for (size_t off = SIZE; off > 0; off -= CHUNK)
		TH_CHECK(pwrite(fd, far + off - CHUNK, CHUNK, off - CHUNK) ==
			 CHUNK);
	close(fd);
}

int main(void)
{
	char in[] = "/tmp/dsm-sysio-in-XXXXXX", out[] = "/tmp/dsm-sysio-out-XXXXXX";
	struct th_server srv;
	uint8_t *expect = malloc(SIZE), *back = malloc(SIZE), *far;
	struct dsm_stats s;
	int fd;

	TH_CHECK(expect && back);
	close(mkstemp(in));
	close(mkstemp(out));
	fill_file(in, expect);
	tc_start(&srv, "256M", BUDGET, 0);
	far = dsm_alloc(SIZE);
	TH_CHECK(far);

	read_into(in, far);   /* kernel writes into missing pages */
	write_from(out, far); /* kernel reads evicted pages */

	fd = open(out, O_RDONLY);
	TH_CHECK(fd >= 0 && read(fd, back, SIZE) == SIZE);
	close(fd);
	TH_CHECK(memcmp(back, expect, SIZE) == 0);
	TH_CHECK(memcmp(far, expect, SIZE) == 0);

	s = tc_stats();
	printf("fetched %lu written back %lu evicted %lu\n",
	       (unsigned long)s.pages_fetched,
	       (unsigned long)s.pages_written_back,
	       (unsigned long)s.pages_evicted);
	TH_CHECK(s.pages_fetched > 0 && s.pages_written_back > 0);
	dsm_free(far);
	dsm_shutdown();
	th_server_stop(&srv);
	unlink(in);
	unlink(out);
	free(expect);
	free(back);
	printf("syscall_io: ok\n");
	return 0;
}
