/*
 * test_shared_mem.c - shared regions through libdsm, across processes
 * (room: tests).  Each case forks processes that dsm_init, map one region
 * by name and work on it at once, then checks what they saw:
 *
 *   - counters: dsm_fetch_add from 4 processes; the sum and the values
 *     returned are exact (no add lost or seen twice);
 *   - ring: a producer and a consumer pass a checksummed stream through
 *     a ring buffer, in order, none lost;
 *   - litmus: message passing (a flag seen set means the data before it
 *     is seen) and store buffering (with fences, never both zero);
 *   - model: processes write their own words of pages they all write,
 *     with a budget far below the region (eviction meets invalidation),
 *     and check every word they read against what its writer could
 *     have written by then;
 *   - threads: 24 threads of one process fault at once on pages another
 *     process owns, more than the home queues per session;
 *   - locks: two counters on two pages kept equal under dsm_lock by 4
 *     processes, exact; a randomized model under a lock with a budget a
 *     quarter of the region; a holder killed (the next gets -EOWNERDEAD);
 *     a lock and a barrier that time out are taken back; dsm_barrier
 *     starts and ends the rounds;
 *   - killed: a holder SIGKILLed with a dirty page; the others go on and
 *     read what it wrote back last;
 *   - the API's errors and the region's lifetime.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client_util.h"

#define PAGE 4096u
#define WORDS_PER_PAGE (PAGE / 8)
#define WAIT_NS (60ull * 1000000000) /* any one wait */

static struct th_server srv;
static const char *server_addr; /* srv.addr, or a child's argv */
/* Iterations are divided by this (a child's optional 5th argument): the
 * multi-node suite runs the cases in emulated guests, where an ownership
 * transfer costs milliseconds. */
static unsigned scale = 1;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* In a child: a library of its own, and the region mapped. */
static uint64_t *child_map(const char *name, size_t size, size_t budget)
{
	struct dsm_options o = { .servers = server_addr, .local_mem = budget };
	uint64_t *p;
	int err = dsm_init(&o);

	if (err) {
		fprintf(stderr, "child dsm_init: %s\n", dsm_strerror(err));
		_exit(1);
	}
	p = dsm_map_shared(name, size, 0);
	if (!p) {
		fprintf(stderr, "child dsm_map_shared(%s): %s\n", name,
			strerror(errno));
		_exit(1);
	}
	return p;
}

static void child_done(uint64_t *p, int status, const char *name, int who)
{
	struct dsm_stats st;
	int err;

	if (dsm_stats(&st) == 0)
		printf("  %s[%d]: %lu ownership requests, %lu copies given "
		       "up, %lu evicted, %lu written back\n", name, who,
		       (unsigned long)st.ownership_requests,
		       (unsigned long)st.copies_given_up,
		       (unsigned long)st.pages_evicted,
		       (unsigned long)st.pages_written_back);
	/* its "servers ADDR=TRANSPORT" line: the multinode test checks
	 * which transport the child used */
	if (getenv("DSM_TRANSPORT"))
		dsm_stats_print(stdout);
	err = dsm_unmap_shared(p);

	if (err) {
		fprintf(stderr, "child dsm_unmap_shared: %s\n",
			dsm_strerror(err));
		status = 1;
	}
	dsm_shutdown();
	fflush(stdout);
	_exit(status);
}

typedef int (*child_fn)(uint64_t *p, int who);

struct spec {
	const char *name;       /* the case */
	const char *region;     /* the shared region's name */
	size_t size, budget;
	child_fn fn;
};

static const struct spec *spec_named(const char *name);

/* A child is this program again (a fork of a process whose engine runs
 * would inherit its state, not its threads): "child NAME WHO ADDR
 * [SCALE]".  tests/multinode/rdma.sh starts children on two guests. */
static pid_t spawn(const struct spec *s, int who)
{
	char w[16];
	pid_t pid = fork();

	TH_CHECK(pid >= 0);
	if (pid == 0) {
		snprintf(w, sizeof(w), "%d", who);
		execl("/proc/self/exe", "test_shared_mem", "child", s->name,
		      w, srv.addr, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int child_main(char **argv)
{
	const struct spec *s = spec_named(argv[2]);
	uint64_t *p;

	if (!s)
		return 2;
	/* "-": the servers come from the environment (DSM_REGISTRY) */
	server_addr = strcmp(argv[4], "-") ? argv[4] : NULL;
	if (argv[5])
		scale = (unsigned)atoi(argv[5]);
	if (!scale)
		return 2;
	p = child_map(s->region, s->size, s->budget);
	child_done(p, s->fn(p, atoi(argv[3])), s->name, atoi(argv[3]));
	return 1;
}

/* Run n children of s at once; every one must exit 0. */
static void run(const struct spec *s, int n)
{
	pid_t pid[8];
	int st;

	TH_CHECK(n <= 8);
	for (int i = 0; i < n; i++)
		pid[i] = spawn(s, i);
	for (int i = 0; i < n; i++) {
		TH_CHECK(waitpid(pid[i], &st, 0) == pid[i]);
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "%s: child %d failed (status %#x)\n",
				s->name, i, st);
			exit(1);
		}
	}
}

/* Spin until *w reaches at least v (acquire), within WAIT_NS. */
static int wait_at_least(volatile uint64_t *w, uint64_t v, const char *what)
{
	uint64_t t0 = now_ns();

	while (__atomic_load_n(w, __ATOMIC_ACQUIRE) < v) {
		if (now_ns() - t0 > WAIT_NS) {
			fprintf(stderr, "timed out waiting for %s\n", what);
			return -1;
		}
		sched_yield();
	}
	return 0;
}

/* A barrier of n processes in shared memory: round r (from 1). */
static int arrive(uint64_t *bar, int n, uint64_t r)
{
	dsm_fetch_add(bar, 1);
	return wait_at_least(bar, r * n, "the other processes");
}

/* ---- counters ------------------------------------------------------- */

#define CT_PROCS 4
#define CT_ADDS 1500
/* page 0: one counter; page 1: the sums of the old values; page 2..5:
 * four more counters, on pages of their own; page 6: the start line */

/* Every add counted once: the counters, and the old values returned
 * (0 .. n-1, each once, so their sum is n(n-1)/2). */
static int counters_check(const uint64_t *p)
{
	uint64_t m = CT_ADDS / scale, n = (uint64_t)CT_PROCS * m;
	int bad = p[0] != n || p[WORDS_PER_PAGE] != n * (n - 1) / 2;

	/* counter k gets 2 from each process's adds i with i % 4 == k */
	for (uint64_t k = 0; k < 4; k++)
		bad |= p[(2 + k) * WORDS_PER_PAGE] !=
		       2 * CT_PROCS * ((m + 3 - k) / 4);
	if (bad)
		fprintf(stderr, "counters: %lu of %lu adds counted, sum of old "
			"values %lu\n", (unsigned long)p[0], (unsigned long)n,
			(unsigned long)p[WORDS_PER_PAGE]);
	return bad;
}

static int counters_child(uint64_t *p, int who)
{
	uint64_t sum = 0;

	/* all at once, or one might be done before the next begins */
	if (arrive(&p[6 * WORDS_PER_PAGE], CT_PROCS, 1))
		return 1;
	for (uint64_t i = 0; i < CT_ADDS / scale; i++) {
		sum += dsm_fetch_add(&p[0], 1);
		dsm_fetch_add(&p[(2 + i % 4) * WORDS_PER_PAGE], 2);
	}
	dsm_fetch_add(&p[WORDS_PER_PAGE], sum);
	if (arrive(&p[6 * WORDS_PER_PAGE], CT_PROCS, 2))
		return 1;
	return who == 0 ? counters_check(p) : 0;
}

/* Nobody holds it after the children: it is gone. */
static void test_lifetime(void)
{
	const struct spec *s = spec_named("counters");
	uint64_t *p;

	run(s, CT_PROCS);
	p = dsm_map_shared(s->region, s->size, 0);
	TH_CHECK(p);
	/* Gone with its last holder: a new region of zeros. */
	TH_CHECK(p[0] == 0);
	TH_CHECK(dsm_unmap_shared(p) == 0);
	printf("lifetime: ok\n");
}

/* The same, but the parent holds the region throughout, so it survives
 * the children and is checked afterwards. */
static void test_counters_held(void)
{
	const struct spec *s = spec_named("counters-held");
	uint64_t n = (uint64_t)CT_PROCS * CT_ADDS;
	uint64_t *p = dsm_map_shared(s->region, s->size, 0);

	TH_CHECK(p);
	run(s, CT_PROCS);
	TH_CHECK(counters_check(p) == 0 && p[0] == n);
	TH_CHECK(dsm_unmap_shared(p) == 0);
	printf("counters: ok\n");
}

/* ---- ring buffer ----------------------------------------------------- */

#define RING_SLOTS 64                   /* 8 slots a page */
#define RING_MSGS 4000
#define SLOT_WORDS 64                   /* 512 bytes */
/* page 0: tail (written by the producer); page 1: head (consumer);
 * pages 2..9: the slots */

static uint64_t *slot(uint64_t *p, uint64_t i)
{
	return &p[2 * WORDS_PER_PAGE + (i % RING_SLOTS) * SLOT_WORDS];
}

static int ring_child(uint64_t *p, int who)
{
	volatile uint64_t *tail = &p[0], *head = &p[WORDS_PER_PAGE];

	for (uint64_t i = 0; i < RING_MSGS / scale; i++) {
		uint64_t *m = slot(p, i);

		if (who == 0) { /* producer */
			if (wait_at_least(head, i + 1 > RING_SLOTS ?
					  i + 1 - RING_SLOTS : 0, "room"))
				return 1;
			for (int w = 1; w < SLOT_WORDS; w++)
				m[w] = tc_mix(i * SLOT_WORDS + w);
			m[0] = i;
			__atomic_store_n(tail, i + 1, __ATOMIC_RELEASE);
			continue;
		}
		if (wait_at_least(tail, i + 1, "a message"))
			return 1;
		if (m[0] != i) {
			fprintf(stderr, "ring: message %lu is %lu\n",
				(unsigned long)i, (unsigned long)m[0]);
			return 1;
		}
		for (int w = 1; w < SLOT_WORDS; w++)
			if (m[w] != tc_mix(i * SLOT_WORDS + w)) {
				fprintf(stderr, "ring: message %lu word %d "
					"wrong\n", (unsigned long)i, w);
				return 1;
			}
		__atomic_store_n(head, i + 1, __ATOMIC_RELEASE);
	}
	return 0;
}

static void test_ring(void)
{
	const struct spec *s = spec_named("ring");

	run(s, 2);
	printf("ring: ok (%d messages)\n", RING_MSGS);
}

/* ---- litmus ---------------------------------------------------------- */

#define LIT_ITERS 300
/* MP: page 0 data, page 1 flags, a word per iteration.  SB: page 2 x,
 * page 3 y, a word per iteration; page 4: the barrier; page 5: the
 * results (r0, r1 per iteration: 2 words); page 6: MP's lockstep. */

static int mp_child(uint64_t *p, int who)
{
	volatile uint64_t *data = p, *flag = p + WORDS_PER_PAGE;
	uint64_t *ack = p + 6 * WORDS_PER_PAGE;

	for (uint64_t i = 0; i < LIT_ITERS / scale; i++) {
		if (who == 0) {
			/* lockstep: the reader holds the data page, read
			 * in the last round, when it is written */
			if (wait_at_least(ack, i, "the reader"))
				return 1;
			data[i] = i + 1;
			__atomic_store_n(&flag[i], 1, __ATOMIC_RELEASE);
			continue;
		}
		if (wait_at_least(&flag[i], 1, "the flag"))
			return 1;
		if (data[i] != i + 1) {
			fprintf(stderr, "MP: iteration %lu saw the flag but "
				"not the data\n", (unsigned long)i);
			return 1;
		}
		__atomic_store_n(ack, i + 1, __ATOMIC_RELEASE);
	}
	return 0;
}

/* A full fence.  ThreadSanitizer refuses atomic_thread_fence; a locked
 * read-modify-write is as full a fence on x86-64. */
static void full_fence(void)
{
#ifdef __SANITIZE_THREAD__
	static uint64_t word;

	__atomic_fetch_add(&word, 0, __ATOMIC_SEQ_CST);
#else
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

/* Both rounds' results written, and never both zero (1 is 0 read). */
static int sb_check(const uint64_t *res, uint64_t iters)
{
	for (uint64_t i = 0; i < iters; i++)
		if (!res[2 * i] || !res[2 * i + 1] ||
		    (res[2 * i] == 1 && res[2 * i + 1] == 1)) {
			fprintf(stderr, "SB: round %lu gave r0 %ld, r1 %ld\n",
				(unsigned long)i, (long)res[2 * i] - 1,
				(long)res[2 * i + 1] - 1);
			return 1;
		}
	return 0;
}

static int sb_child(uint64_t *p, int who)
{
	uint64_t *x = p + 2 * WORDS_PER_PAGE, *y = p + 3 * WORDS_PER_PAGE;
	uint64_t *bar = p + 4 * WORDS_PER_PAGE, *res = p + 5 * WORDS_PER_PAGE;
	uint64_t *mine = who ? y : x, *theirs = who ? x : y;

	uint64_t iters = LIT_ITERS / 2 / scale;

	for (uint64_t i = 0; i < iters; i++) {
		if (arrive(bar, 2, i + 1))
			return 1;
		__atomic_store_n(&mine[i], 1, __ATOMIC_RELAXED);
		full_fence();
		res[2 * i + who] = __atomic_load_n(&theirs[i],
						   __ATOMIC_RELAXED) + 1;
	}
	if (arrive(bar, 2, iters + 1))
		return 1;
	return who == 1 ? sb_check(res, iters) : 0;
}

static void test_litmus(void)
{
	const struct spec *mp = spec_named("mp"), *sb = spec_named("sb");
	uint64_t *p = dsm_map_shared(mp->region, mp->size, 0);

	TH_CHECK(p);
	run(mp, 2);
	run(sb, 2);
	TH_CHECK(sb_check(p + 5 * WORDS_PER_PAGE, LIT_ITERS / 2) == 0);
	TH_CHECK(dsm_unmap_shared(p) == 0);
	printf("litmus: ok (MP %d, SB %d iterations)\n", LIT_ITERS,
	       LIT_ITERS / 2);
}

/* ---- the model ------------------------------------------------------- */

#define MD_PROCS 3
#define MD_PAGES 256                    /* 1 MiB */
#define MD_BUDGET (64 * PAGE)           /* a quarter */
#define MD_OPS 6000
/* Word w of the region belongs to process w % MD_PROCS, which alone
 * writes it: (writer, word, version) packed, versions rising.  Pages are
 * written by every process (false sharing on purpose).  A process checks
 * its own words read back exactly its last version, and others' words
 * never go back to an older version than it saw before. */

static uint64_t pack(uint64_t who, uint64_t word, uint64_t ver)
{
	return ver << 24 | word << 4 | who;
}

static int model_child(uint64_t *p, int who)
{
	uint64_t nwords = MD_PAGES * WORDS_PER_PAGE / 64; /* 8 a page */
	uint64_t *seen = calloc(nwords, sizeof(*seen));
	uint64_t rng = tc_mix(who + 1);
	int bad = 0;

	TH_CHECK(seen);
	for (int op = 0; op < MD_OPS && !bad; op++) {
		uint64_t k = (rng = tc_mix(rng)) % nwords, w = k * 64;
		uint64_t owner = k % MD_PROCS, v = p[w];

		if (v && ((v & 15) != owner || (v >> 4 & 0xfffff) != k % (1 << 20))) {
			fprintf(stderr, "model: word %lu holds %#lx\n",
				(unsigned long)k, (unsigned long)v);
			bad = 1;
		} else if (owner == (uint64_t)who && v != seen[k]) {
			fprintf(stderr, "model: my word %lu reads %#lx, I "
				"wrote %#lx\n", (unsigned long)k,
				(unsigned long)v, (unsigned long)seen[k]);
			bad = 1;
		} else if ((v >> 24) < (seen[k] >> 24)) {
			fprintf(stderr, "model: word %lu went back from "
				"version %lu to %lu\n", (unsigned long)k,
				(unsigned long)(seen[k] >> 24),
				(unsigned long)(v >> 24));
			bad = 1;
		}
		seen[k] = v;
		if (owner == (uint64_t)who && rng % 2) {
			seen[k] = pack(who, k % (1 << 20), (v >> 24) + 1);
			p[w] = seen[k];
		}
	}
	free(seen);
	return bad;
}

static void test_model(void)
{
	const struct spec *s = spec_named("model");

	run(s, MD_PROCS);
	printf("model: ok (%d processes, %d ops each, budget 1/4)\n",
	       MD_PROCS, MD_OPS);
}

/* ---- many faults of one process at once ------------------------------ */

#define TH_PAGES 48
#define TH_THREADS 24

struct th_arg {
	uint64_t *p;
	int t, bad;
};

static void *reader(void *arg)
{
	struct th_arg *a = arg;

	/* every other page: no two faults in order, so no runs (one
	 * ACQUIRE each) */
	for (int pg = a->t; pg < TH_PAGES; pg += TH_THREADS)
		if (a->p[2 * pg * WORDS_PER_PAGE] != (uint64_t)pg + 1)
			a->bad = 1;
	return NULL;
}

/* Process 0 writes every page and waits; process 1 reads them all from
 * 24 threads at once: more ownership requests, each recalling process
 * 0's page, than the home queues per session (16). */
static int threads_child(uint64_t *p, int who)
{
	uint64_t *flag = &p[2 * TH_PAGES * WORDS_PER_PAGE];
	struct th_arg a[TH_THREADS];
	pthread_t th[TH_THREADS];
	int bad = 0;

	if (who == 0) {
		for (int pg = 0; pg < TH_PAGES; pg++)
			p[2 * pg * WORDS_PER_PAGE] = pg + 1;
		__atomic_store_n(flag, 1, __ATOMIC_RELEASE);
		return wait_at_least(flag, 2, "the readers");
	}
	if (wait_at_least(flag, 1, "the writer"))
		return 1;
	for (int t = 0; t < TH_THREADS; t++) {
		a[t] = (struct th_arg){ p, t, 0 };
		TH_CHECK(pthread_create(&th[t], NULL, reader, &a[t]) == 0);
	}
	for (int t = 0; t < TH_THREADS; t++) {
		pthread_join(th[t], NULL);
		bad |= a[t].bad;
	}
	__atomic_store_n(flag, 2, __ATOMIC_RELEASE);
	return bad;
}

static void test_threads(void)
{
	run(spec_named("threads"), 2);
	printf("threads: ok (%d threads, %d pages)\n", TH_THREADS, TH_PAGES);
}

/* ---- a holder killed ------------------------------------------------- */

/* Page 0 written back as 1, then made 2 and never written back; page 2
 * says so (reading it recalls that page alone). */
static int killed_child(uint64_t *q, int who)
{
	(void)who;
	q[0] = 1;
	q[WORDS_PER_PAGE] = 7;
	if (dsm_sync(q, 2 * PAGE))
		return 1;
	q[0] = 2;
	__atomic_store_n(&q[2 * WORDS_PER_PAGE], 1, __ATOMIC_RELEASE);
	for (;;)
		pause();
}

static void test_killed(void)
{
	const struct spec *s = spec_named("killed");
	uint64_t *p = dsm_map_shared(s->region, s->size, 0);
	pid_t pid;
	int st;

	TH_CHECK(p);
	pid = spawn(s, 0);
	TH_CHECK(wait_at_least(&p[2 * WORDS_PER_PAGE], 1, "the holder") == 0);
	TH_CHECK(kill(pid, SIGKILL) == 0);
	TH_CHECK(waitpid(pid, &st, 0) == pid && WIFSIGNALED(st));
	/* the page's owner is gone: its last write-back is what there is */
	TH_CHECK(p[0] == 1);
	TH_CHECK(p[WORDS_PER_PAGE] == 7);
	p[0] = 3;
	TH_CHECK(dsm_fetch_add(&p[0], 1) == 3 && p[0] == 4);
	TH_CHECK(dsm_unmap_shared(p) == 0);
	printf("killed: ok\n");
}

/* ---- locks and barriers ---------------------------------------------- */

#define LK_PROCS 4
#define LK_ITERS 300
/* Two counters on two pages, kept equal under one lock: a lock that let
 * two holders in at once would lose increments of one or the other. */
static int locked_child(uint64_t *p, int who)
{
	uint64_t *a = &p[WORDS_PER_PAGE], *b = &p[2 * WORDS_PER_PAGE];
	uint64_t n = (uint64_t)LK_PROCS * (LK_ITERS / scale);
	int bad = 0;

	if (dsm_barrier("locked-start", LK_PROCS))
		return 1;
	for (uint64_t i = 0; i < LK_ITERS / scale && !bad; i++) {
		if (dsm_lock(&p[0]))
			return 1;
		bad = *a != *b;
		*a += 1;
		*b += 1;
		if (dsm_unlock(&p[0]))
			return 1;
	}
	if (dsm_barrier("locked-end", LK_PROCS))
		return 1;
	if (!bad && who == 0 && (*a != n || *b != n)) {
		fprintf(stderr, "locked: %lu and %lu, want %lu\n",
			(unsigned long)*a, (unsigned long)*b, (unsigned long)n);
		bad = 1;
	}
	return bad;
}

static void test_locked(void)
{
	run(spec_named("locked"), LK_PROCS);
	printf("locked: ok (%d processes, %d critical sections each)\n",
	       LK_PROCS, LK_ITERS);
}

/*
 * Many threads of each process taking one lock: more waiters than a
 * connection has credits over RDMA (proto.h).  Without the client's gate
 * (client/locks.c) every credit is held by a waiting LOCK and the
 * holder's UNLOCK queues behind them: nobody moves until the timeout.
 */
#define LT_PROCS 2
#define LT_THREADS 24
#define LT_ITERS 50

struct lt_arg {
	uint64_t *p;
	int bad;
};

static void *lt_thread(void *arg)
{
	struct lt_arg *t = arg;
	uint64_t *a = &t->p[WORDS_PER_PAGE], *b = &t->p[2 * WORDS_PER_PAGE];

	for (unsigned i = 0; i < LT_ITERS / scale && !t->bad; i++) {
		if (dsm_lock(&t->p[0])) {
			t->bad = 1;
			break;
		}
		t->bad = *a != *b;
		*a += 1;
		*b += 1;
		if (dsm_unlock(&t->p[0]))
			t->bad = 1;
	}
	return NULL;
}

static int lockthreads_child(uint64_t *p, int who)
{
	uint64_t n = (uint64_t)LT_PROCS * LT_THREADS * (LT_ITERS / scale);
	struct lt_arg args[LT_THREADS];
	pthread_t th[LT_THREADS];
	int bad = 0, started = 0;

	if (dsm_barrier("lockthreads-start", LT_PROCS))
		return 1;
	for (; started < LT_THREADS; started++) {
		args[started] = (struct lt_arg){ .p = p };
		if (pthread_create(&th[started], NULL, lt_thread,
				   &args[started])) {
			bad = 1;
			break;
		}
	}
	for (int i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		bad |= args[i].bad;
	}
	if (dsm_barrier("lockthreads-end", LT_PROCS))
		return 1;
	if (!bad && who == 0 && (p[WORDS_PER_PAGE] != n ||
				 p[2 * WORDS_PER_PAGE] != n)) {
		fprintf(stderr, "lockthreads: %lu and %lu, want %lu\n",
			(unsigned long)p[WORDS_PER_PAGE],
			(unsigned long)p[2 * WORDS_PER_PAGE], (unsigned long)n);
		bad = 1;
	}
	return bad;
}

static void test_lockthreads(void)
{
	run(spec_named("lockthreads"), LT_PROCS);
	printf("lockthreads: ok (%d processes of %d threads, %d critical "
	       "sections each)\n", LT_PROCS, LT_THREADS, LT_ITERS);
}

/*
 * A randomized model under a lock, with a budget a quarter of the
 * region: each critical section checks words against the step that last
 * wrote them (kept in the region too), then writes others at the next
 * step.  Page 0: the lock word and the step; pages 1-4: the step of
 * each word's last write; then 256 pages of data, 8 checked words each.
 */
#define LM_PAGES 256
#define LM_WORDS (LM_PAGES * 8)
#define LM_OPS 400

static uint64_t *lm_word(uint64_t *p, uint64_t w)
{
	return &p[(5 + w / 8) * WORDS_PER_PAGE + (w % 8) * 64];
}

static int lm_section(uint64_t *p, uint64_t *rng)
{
	uint64_t *steps = &p[WORDS_PER_PAGE], step = p[1] + 1;

	for (int k = 0; k < 8; k++) {
		uint64_t w = (*rng = tc_mix(*rng)) % LM_WORDS;
		uint64_t want = steps[w] ? tc_mix(steps[w] << 16 | w) : 0;

		if (*lm_word(p, w) != want) {
			fprintf(stderr, "lock model: word %lu is %#lx, step "
				"%lu wrote %#lx\n", (unsigned long)w,
				(unsigned long)*lm_word(p, w),
				(unsigned long)steps[w], (unsigned long)want);
			return 1;
		}
	}
	for (int k = 0; k < 4; k++) {
		uint64_t w = (*rng = tc_mix(*rng)) % LM_WORDS;

		*lm_word(p, w) = tc_mix(step << 16 | w);
		steps[w] = step;
	}
	p[1] = step;
	return 0;
}

static int lockmodel_child(uint64_t *p, int who)
{
	uint64_t rng = tc_mix(who + 100);
	int bad = 0;

	for (int op = 0; op < LM_OPS / (int)scale && !bad; op++) {
		if (dsm_lock(&p[0]))
			return 1;
		bad = lm_section(p, &rng);
		if (dsm_unlock(&p[0]))
			return 1;
	}
	return bad;
}

static void test_lockmodel(void)
{
	run(spec_named("lockmodel"), 3);
	printf("lock model: ok (3 processes, %d sections each, budget 1/4)\n",
	       LM_OPS);
}

/* Holds the lock at page 0 and says so on page 1, then waits to die. */
static int holder_child(uint64_t *p, int who)
{
	(void)who;
	if (dsm_lock(&p[0]))
		return 1;
	__atomic_store_n(&p[WORDS_PER_PAGE], 1, __ATOMIC_RELEASE);
	for (;;)
		pause();
}

/* DSM_LOCK_TIMEOUT_MS is 300 here: a lock the parent holds times out
 * and is taken back, then is granted once the parent lets go; a barrier
 * nobody else comes to times out and is taken back, so the next round
 * needs two arrivals again.  Page 1 is the conversation. */
static int waiter_child(uint64_t *p, int who)
{
	uint64_t *say = &p[WORDS_PER_PAGE], t0 = now_ns();

	(void)who;
	if (dsm_lock(&p[0]) != -ETIMEDOUT || now_ns() - t0 < 250000000)
		return 1;
	__atomic_store_n(say, 1, __ATOMIC_RELEASE);
	if (wait_at_least(say, 2, "the parent's unlock") || dsm_lock(&p[0]) ||
	    dsm_unlock(&p[0]))
		return 1;
	if (dsm_barrier("lonely", 2) != -ETIMEDOUT)
		return 1;
	__atomic_store_n(say, 3, __ATOMIC_RELEASE);
	return dsm_barrier("lonely", 2) != 0;
}

static void test_lock_death_and_timeouts(void)
{
	const struct spec *s = spec_named("holder");
	uint64_t *p = dsm_map_shared(s->region, s->size, 0);
	pid_t pid;
	int st;

	TH_CHECK(p);
	pid = spawn(s, 0);
	TH_CHECK(wait_at_least(&p[WORDS_PER_PAGE], 1, "the holder") == 0);
	TH_CHECK(kill(pid, SIGKILL) == 0 && waitpid(pid, &st, 0) == pid);
	TH_CHECK(dsm_lock(&p[0]) == -EOWNERDEAD); /* and held now */
	TH_CHECK(dsm_unlock(&p[0]) == 0);
	TH_CHECK(dsm_lock(&p[0]) == 0); /* said once */
	p[WORDS_PER_PAGE] = 0;
	setenv("DSM_LOCK_TIMEOUT_MS", "300", 1);
	pid = spawn(spec_named("waiter"), 0);
	unsetenv("DSM_LOCK_TIMEOUT_MS");
	TH_CHECK(wait_at_least(&p[WORDS_PER_PAGE], 1, "the waiter") == 0);
	TH_CHECK(dsm_unlock(&p[0]) == 0);
	__atomic_store_n(&p[WORDS_PER_PAGE], 2, __ATOMIC_RELEASE);
	TH_CHECK(wait_at_least(&p[WORDS_PER_PAGE], 3, "the waiter") == 0);
	TH_CHECK(dsm_barrier("lonely", 2) == 0);
	TH_CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
		 WEXITSTATUS(st) == 0);
	TH_CHECK(dsm_unmap_shared(p) == 0);
	printf("lock death and timeouts: ok\n");
}

static void test_lock_errors(void)
{
	uint64_t *p = dsm_map_shared("lock-errors", PAGE, 0), priv = 0;

	TH_CHECK(p);
	TH_CHECK(dsm_lock(&priv) == -EINVAL);
	TH_CHECK(dsm_lock((char *)p + 4) == -EINVAL);
	TH_CHECK(dsm_unlock(&p[3]) == -EPERM);
	TH_CHECK(dsm_lock(&p[3]) == 0);
	TH_CHECK(dsm_lock(&p[3]) == -EDEADLK);
	TH_CHECK(dsm_lock(&p[4]) == 0); /* another word, another lock */
	TH_CHECK(dsm_unlock(&p[3]) == 0 && dsm_unlock(&p[4]) == 0);
	TH_CHECK(dsm_barrier("x", 0) == -EINVAL);
	TH_CHECK(dsm_barrier("", 1) == -EINVAL);
	TH_CHECK(dsm_barrier(NULL, 1) == -EINVAL);
	TH_CHECK(dsm_barrier("x", 1) == 0); /* a barrier of one passes */
	TH_CHECK(dsm_unmap_shared(p) == 0);
	TH_CHECK(dsm_lock(&p[3]) == -EINVAL); /* unmapped */
	printf("lock errors: ok\n");
}

/* ---- errors and lifetime --------------------------------------------- */

static void test_errors(void)
{
	uint64_t *p = dsm_map_shared("errors", 2 * PAGE, 0), *q, priv;
	uint64_t *heap = dsm_alloc(PAGE);
	char longname[300];

	TH_CHECK(p && heap);
	errno = 0;
	TH_CHECK(!dsm_map_shared("errors", 4 * PAGE, 0) && errno == EINVAL);
	TH_CHECK(!dsm_map_shared("", PAGE, 0) && errno == EINVAL);
	TH_CHECK(!dsm_map_shared(NULL, PAGE, 0) && errno == EINVAL);
	TH_CHECK(!dsm_map_shared("x", 0, 0) && errno == EINVAL);
	TH_CHECK(!dsm_map_shared("x", PAGE, 1) && errno == EINVAL);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	TH_CHECK(!dsm_map_shared(longname, PAGE, 0) && errno == EINVAL);
	/* mapped twice by one process: the server refuses a second hold */
	TH_CHECK(!dsm_map_shared("errors", 2 * PAGE, 0) && errno == EEXIST);
	errno = 0;
	TH_CHECK(dsm_fetch_add(&priv, 1) == 0 && errno == EINVAL);
	errno = 0;
	TH_CHECK(dsm_fetch_add(heap, 1) == 0 && errno == EINVAL);
	errno = 0;
	TH_CHECK(dsm_fetch_add((uint64_t *)((char *)p + 4), 1) == 0 &&
		 errno == EINVAL);
	TH_CHECK(dsm_unmap_shared(heap) == -EINVAL);
	dsm_free(p); /* refused, logged: p stays mapped */
	p[1] = 42;
	TH_CHECK(dsm_unmap_shared(p) == 0);
	q = dsm_map_shared("errors", 4 * PAGE, 0); /* gone: any size now */
	TH_CHECK(q && q[1] == 0);
	TH_CHECK(dsm_unmap_shared(q) == 0);
	dsm_free(heap);
	printf("errors: ok\n");
}

static const struct spec specs[] = {
	{ "counters", "counters", 8 * PAGE, 1 << 20, counters_child },
	{ "counters-held", "counters-held", 8 * PAGE, 1 << 20,
	  counters_child },
	{ "ring", "ring", 10 * PAGE, 1 << 20, ring_child },
	{ "mp", "litmus", 8 * PAGE, 1 << 20, mp_child },
	{ "sb", "litmus", 8 * PAGE, 1 << 20, sb_child },
	{ "model", "model", MD_PAGES * PAGE, MD_BUDGET, model_child },
	{ "killed", "killed", 4 * PAGE, 1 << 20, killed_child },
	{ "threads", "threads", (2 * TH_PAGES + 1) * PAGE, 1 << 20,
	  threads_child },
	{ "locked", "locked", 4 * PAGE, 1 << 20, locked_child },
	{ "lockthreads", "lockthreads", 4 * PAGE, 1 << 20, lockthreads_child },
	{ "lockmodel", "lockmodel", (5 + LM_PAGES) * PAGE, 64 * PAGE,
	  lockmodel_child },
	{ "holder", "lock-death", 2 * PAGE, 1 << 20, holder_child },
	{ "waiter", "lock-death", 2 * PAGE, 1 << 20, waiter_child },
};

static const struct spec *spec_named(const char *name)
{
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
		if (!strcmp(specs[i].name, name))
			return &specs[i];
	return NULL;
}

int main(int argc, char **argv)
{
	struct dsm_options o = { 0 };
	struct dsm_stats st;

	if ((argc == 5 || argc == 6) && !strcmp(argv[1], "child"))
		return child_main(argv);
	TH_CHECK(th_server_start(&srv, "256M") == 0);
	server_addr = srv.addr;
	o.servers = srv.addr;
	o.local_mem = 1 << 20;
	TH_CHECK(dsm_init(&o) == 0);
	test_errors();
	test_counters_held();
	test_lifetime();
	test_ring();
	test_litmus();
	test_model();
	test_threads();
	test_lock_errors();
	test_locked();
	test_lockthreads();
	test_lockmodel();
	test_lock_death_and_timeouts();
	test_killed();
	TH_CHECK(dsm_stats(&st) == 0);
	dsm_shutdown();
	th_server_stop(&srv);
	printf("shared_mem: ok\n");
	return 0;
}
