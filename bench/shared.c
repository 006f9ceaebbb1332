/*
 * shared.c - dsm-bench-shared: what coherence costs on shared regions
 * (room: benchmarks).
 *
 *   dsm-bench-shared --server HOST:PORT --mode pingpong [--n N]
 *   dsm-bench-shared --server HOST:PORT --mode readers --readers R
 *                    [--n ROUNDS]
 *   dsm-bench-shared --server HOST:PORT --mode lock --lockers L [--n N]
 *
 * pingpong: two processes hand a token back and forth through one word
 * of a shared page, each writing it when it sees its turn: every handoff
 * is a read of a page the other owns (a RECALL) and a write of a page
 * the other shares (an INVALIDATE).  Reports the time per handoff.
 *
 * readers: a writer rewrites every page of a 1 MiB region, then R
 * readers read every page, ROUNDS times.  A write invalidates the R
 * readers' copies; a read fetches the page (the first reader recalls it
 * from the writer).  Reports the writer's and the readers' time per page
 * (medians over the rounds; the readers' over all readers).
 *
 * lock: L processes (1: uncontended) each take and release one
 * dsm_lock N times, with nothing in between.  Reports the time per
 * acquisition: each process's time over its N, then the median over the
 * processes (with L > 1 a turn waits for the others').
 *
 * The processes are this program again ("child ..."), each with its own
 * libdsm; they meet at barriers in the region itself.  Prints one JSON
 * line.  Nothing here fails on timing; a wrong value read exits 1.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "dsm.h"
#include "util.h"

#define MAX_READERS 4
#define RD_PAGES 256              /* 1 MiB */
#define WPP BENCH_WORDS_PER_PAGE
/* The region: data pages, then a page of control words, then a page of
 * results (one word per process per round). */
#define CTL(p, npages) ((p) + (uint64_t)(npages) * WPP)
#define RES(p, npages) ((p) + (uint64_t)((npages) + 1) * WPP)

struct opts {
	const char *server, *mode;
	uint64_t n, readers;
};

static void spin_until(volatile uint64_t *w, uint64_t v)
{
	uint64_t t0 = dsm_now_ns();

	while (__atomic_load_n(w, __ATOMIC_ACQUIRE) < v) {
		if (dsm_now_ns() - t0 > 120ull * 1000000000)
			bench_die("dsm-bench-shared: a peer never came");
		sched_yield();
	}
}

/* Barrier round r (from 1) of n processes, on control word 0. */
static void arrive(uint64_t *ctl, uint64_t n, uint64_t r)
{
	dsm_fetch_add(&ctl[0], 1);
	spin_until(&ctl[0], r * n);
}

static uint64_t *child_map(const struct opts *o, const char *name,
			   uint64_t npages)
{
	struct dsm_options d = { .servers = o->server,
				 .local_mem = 64ull << 20 };
	uint64_t *p;

	if (dsm_init(&d))
		bench_die("dsm-bench-shared: dsm_init failed");
	p = dsm_map_shared(name, (npages + 2) * BENCH_PAGE, 0);
	if (!p)
		bench_die("dsm-bench-shared: dsm_map_shared failed");
	return p;
}

/* ---- pingpong ------------------------------------------------------- */

static void pingpong_child(const struct opts *o, const char *name, int who)
{
	uint64_t *p = child_map(o, name, 1), *ctl = CTL(p, 1);
	volatile uint64_t *token = p;
	uint64_t t0, ns;

	arrive(ctl, 2, 1);
	t0 = dsm_now_ns();
	for (uint64_t i = 0; i < o->n; i++) {
		spin_until(token, 2 * i + (uint64_t)who);
		*token = 2 * i + (uint64_t)who + 1;
	}
	ns = dsm_now_ns() - t0;
	RES(p, 1)[who] = ns;
	dsm_unmap_shared(p);
	dsm_shutdown();
}

/* ---- readers -------------------------------------------------------- */

static void readers_child(const struct opts *o, const char *name, int who)
{
	uint64_t *p = child_map(o, name, RD_PAGES), *ctl = CTL(p, RD_PAGES);
	uint64_t *res = RES(p, RD_PAGES), procs = 1 + o->readers, b = 0;

	for (uint64_t round = 0; round < o->n; round++) {
		uint64_t t0, v = bench_mix64(round);

		arrive(ctl, procs, ++b);
		t0 = dsm_now_ns();
		for (uint64_t pg = 0; who == 0 && pg < RD_PAGES; pg++)
			p[pg * WPP] = v + pg;
		if (who == 0)
			res[round * procs] = dsm_now_ns() - t0;
		arrive(ctl, procs, ++b);
		t0 = dsm_now_ns();
		for (uint64_t pg = 0; who && pg < RD_PAGES; pg++)
			if (p[pg * WPP] != v + pg)
				bench_die("dsm-bench-shared: a reader saw an "
					  "old page");
		if (who)
			res[round * procs + who] = dsm_now_ns() - t0;
		arrive(ctl, procs, ++b);
	}
	dsm_unmap_shared(p);
	dsm_shutdown();
}

/* ---- lock ----------------------------------------------------------- */

static void lock_child(const struct opts *o, const char *name, int who)
{
	uint64_t *p = child_map(o, name, 1), *ctl = CTL(p, 1), t0;

	arrive(ctl, o->readers, 1);
	t0 = dsm_now_ns();
	for (uint64_t i = 0; i < o->n; i++)
		if (dsm_lock(&p[8]) || dsm_unlock(&p[8]))
			bench_die("dsm-bench-shared: dsm_lock failed");
	RES(p, 1)[who] = dsm_now_ns() - t0;
	dsm_unmap_shared(p);
	dsm_shutdown();
}

/* ---- the parent ----------------------------------------------------- */

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "server", 1, NULL, 's' }, { "mode", 1, NULL, 'm' },
		{ "n", 1, NULL, 'n' }, { "readers", 1, NULL, 'r' },
		{ "lockers", 1, NULL, 'r' },
		{ 0 }
	};
	int c;

	*o = (struct opts){ .n = 0, .readers = 1 };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': o->server = optarg; break;
		case 'm': o->mode = optarg; break;
		case 'n': o->n = bench_arg_u64("--n", optarg); break;
		case 'r': o->readers = bench_arg_u64("--readers", optarg); break;
		default:
			fprintf(stderr, "usage: dsm-bench-shared --server "
				"HOST:PORT --mode pingpong|readers|lock "
				"[--n N] [--readers R] [--lockers L]\n");
			exit(2);
		}
	}
	if (!o->server || !o->mode || optind != argc)
		bench_die("dsm-bench-shared: --server and --mode, please");
	if (strcmp(o->mode, "pingpong") && strcmp(o->mode, "readers") &&
	    strcmp(o->mode, "lock"))
		bench_die("dsm-bench-shared: --mode pingpong, readers or lock");
	if (!o->n)
		o->n = strcmp(o->mode, "readers") ? 5000 : 20;
	if (o->readers < 1 || o->readers > MAX_READERS ||
	    (!strcmp(o->mode, "readers") &&
	     o->n * (1 + o->readers) > WPP))
		bench_die("dsm-bench-shared: 1..4 readers, and rounds x "
			  "processes at most 512");
}

static pid_t spawn(char *self, const struct opts *o, const char *name,
		   int who)
{
	char w[16], n[32], r[16];
	pid_t pid = fork();

	if (pid < 0)
		bench_die("dsm-bench-shared: fork failed");
	if (pid)
		return pid;
	snprintf(w, sizeof(w), "%d", who);
	snprintf(n, sizeof(n), "%" PRIu64, o->n);
	snprintf(r, sizeof(r), "%" PRIu64, o->readers);
	execl("/proc/self/exe", self, "child", o->mode, name, w, n, r,
	      o->server, (char *)NULL);
	_exit(127);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double median_us(uint64_t *v, uint64_t n, uint64_t per)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[n / 2] / 1e3 / per;
}

static void report_lock(const struct opts *o, const uint64_t *res)
{
	uint64_t v[MAX_READERS];

	memcpy(v, res, o->readers * sizeof(*v));
	printf("{\"mode\":\"lock\",\"lockers\":%" PRIu64 ",\"n\":%" PRIu64
	       ",\"us_per_lock\":%.2f}\n", o->readers, o->n,
	       median_us(v, o->readers, o->n));
}

static void report_readers(const struct opts *o, const uint64_t *res)
{
	uint64_t procs = 1 + o->readers, w[128], r[128 * MAX_READERS];
	uint64_t nr = 0;

	for (uint64_t k = 0; k < o->n; k++) {
		w[k] = res[k * procs];
		for (uint64_t i = 1; i < procs; i++)
			r[nr++] = res[k * procs + i];
	}
	printf("{\"mode\":\"readers\",\"readers\":%" PRIu64
	       ",\"rounds\":%" PRIu64 ",\"write_us_per_page\":%.2f,"
	       "\"read_us_per_page\":%.2f}\n", o->readers, o->n,
	       median_us(w, o->n, RD_PAGES), median_us(r, nr, RD_PAGES));
}

int main(int argc, char **argv)
{
	struct dsm_options d = { 0 };
	uint64_t procs, npages, *p;
	char name[64];
	pid_t pid[1 + MAX_READERS];
	int st, bad = 0;
	struct opts o;

	if (argc == 8 && !strcmp(argv[1], "child")) {
		o = (struct opts){ .server = argv[7], .mode = argv[2],
				   .n = strtoull(argv[5], NULL, 10),
				   .readers = strtoull(argv[6], NULL, 10) };
		if (!strcmp(o.mode, "pingpong"))
			pingpong_child(&o, argv[3], atoi(argv[4]));
		else if (!strcmp(o.mode, "lock"))
			lock_child(&o, argv[3], atoi(argv[4]));
		else
			readers_child(&o, argv[3], atoi(argv[4]));
		return 0;
	}
	parse_args(argc, argv, &o);
	procs = !strcmp(o.mode, "pingpong") ? 2 :
		!strcmp(o.mode, "lock") ? o.readers : 1 + o.readers;
	npages = strcmp(o.mode, "readers") ? 1 : RD_PAGES;
	snprintf(name, sizeof(name), "dsm-bench-shared-%d", (int)getpid());
	d.servers = o.server;
	if (dsm_init(&d))
		bench_die("dsm-bench-shared: dsm_init failed");
	/* held here throughout, so the results outlive the children */
	p = dsm_map_shared(name, (npages + 2) * BENCH_PAGE, 0);
	if (!p)
		bench_die("dsm-bench-shared: dsm_map_shared failed");
	for (uint64_t i = 0; i < procs; i++)
		pid[i] = spawn(argv[0], &o, name, (int)i);
	for (uint64_t i = 0; i < procs; i++)
		if (waitpid(pid[i], &st, 0) != pid[i] || !WIFEXITED(st) ||
		    WEXITSTATUS(st))
			bad = 1;
	if (bad)
		bench_die("dsm-bench-shared: a child failed");
	if (!strcmp(o.mode, "lock"))
		report_lock(&o, RES(p, 1));
	else if (!strcmp(o.mode, "pingpong"))
		printf("{\"mode\":\"pingpong\",\"handoffs\":%" PRIu64
		       ",\"us_per_handoff\":%.2f}\n", 2 * o.n,
		       RES(p, 1)[0] / 1e3 / (2 * o.n));
	else
		report_readers(&o, RES(p, npages));
	dsm_unmap_shared(p);
	dsm_shutdown();
	return 0;
}
