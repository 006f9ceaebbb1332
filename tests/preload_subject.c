/*
 * preload_subject.c - an ordinary program, run by test_preload with
 * libdsm-preload.so preloaded (room: tests).  It knows nothing of dsm: it
 * allocates, fills and checks memory through the C library's interfaces,
 * one scenario per argument, and exits 0 only if every byte was right.
 *
 *   preload_subject MODE     (threads, many, calloc, align, mmap, forkexec,
 *                             forkchild, signals, syscall, release,
 *                             mprotect, small, reserve)
 *
 * One mode looks outside itself: `release` watches the memory server's
 * resident memory (its pid in SUBJECT_SERVER_PID) to see freed far memory
 * given back.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "subject %s:%d: check failed: %s\n", \
				__FILE__, __LINE__, #cond);                 \
			exit(1);                                            \
		}                                                           \
	} while (0)

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void fill(void *p, size_t len, uint64_t seed)
{
	uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = mix(seed + i);
}

static int check(const void *p, size_t len, uint64_t seed)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != mix(seed + i))
			return 0;
	return 1;
}

/* Every byte of p is v (reads the memory: keeps stores before it). */
static int check_byte(const void *p, size_t len, uint8_t v)
{
	const volatile uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i] != v)
			return 0;
	return 1;
}

static int zeros(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return 0;
	return 1;
}

/* ---- threads: malloc, realloc, free under contention ----------------- */

#define SLOTS 6

static void *worker(void *arg)
{
	uint64_t id = (uintptr_t)arg, rng = id * 1000003;
	struct { uint64_t *p; size_t len; uint64_t seed; } s[SLOTS] = { 0 };

	for (int it = 0; it < 300; it++) {
		int k = (rng = mix(rng)) % SLOTS;
		size_t len = ((128 << 10) + (rng >> 8) % (1536 << 10)) & ~7UL;

		if (s[k].p) {
			CHECK(check(s[k].p, s[k].len, s[k].seed));
			if (it % 3 == 0) { /* grow or shrink, contents kept */
				size_t keep = len < s[k].len ? len : s[k].len;
				uint64_t *q = realloc(s[k].p, len);

				CHECK(q);
				CHECK(check(q, keep, s[k].seed));
				s[k].p = q;
				s[k].len = len;
				fill(q, len, s[k].seed = mix(rng + 1));
				continue;
			}
			free(s[k].p);
		}
		s[k].p = malloc(len);
		CHECK(s[k].p);
		CHECK(malloc_usable_size(s[k].p) >= len);
		s[k].len = len;
		fill(s[k].p, len, s[k].seed = mix(rng + 2));
	}
	for (int k = 0; k < SLOTS; k++) {
		if (s[k].p)
			CHECK(check(s[k].p, s[k].len, s[k].seed));
		free(s[k].p);
	}
	return NULL;
}

static void mode_threads(void)
{
	pthread_t t[4];

	for (uintptr_t i = 0; i < 4; i++)
		CHECK(pthread_create(&t[i], NULL, worker, (void *)(i + 1)) == 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
}

/* ---- many: 50,000 live large allocations ----------------------------- */

static int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, c;

	CHECK(f);
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static void mode_many(void)
{
	enum { N = 50000, LEN = 20 << 10 }; /* test_preload sets 16K */
	uint64_t **p = calloc(N, sizeof(*p));
	int before = count_maps();

	CHECK(p);
	for (int i = 0; i < N; i++) {
		p[i] = malloc(LEN);
		CHECK(p[i]);
		p[i][0] = mix(i);
		p[i][LEN / 8 - 1] = ~mix(i);
	}
	/* a handful of arenas, not a mapping per block */
	fprintf(stderr, "subject: %d mappings before, %d with %d blocks\n",
		before, count_maps(), N);
	CHECK(count_maps() < before + 64);
	for (int i = 0; i < N; i++) {
		CHECK(p[i][0] == mix(i));
		CHECK(p[i][LEN / 8 - 1] == ~mix(i));
	}
	for (int i = 0; i < N; i += 2) /* free half, refill from the holes */
		free(p[i]);
	for (int i = 0; i < N; i += 2) {
		p[i] = calloc(1, LEN);
		CHECK(p[i] && p[i][0] == 0 && p[i][LEN / 8 - 1] == 0);
		p[i][1] = mix(i);
	}
	for (int i = 0; i < N; i++) {
		if (i % 2 == 0)
			CHECK(p[i][1] == mix(i));
		else
			CHECK(p[i][0] == mix(i));
		free(p[i]);
	}
	free(p);
}

/* ---- calloc: zeros, also where freed far memory is reused ------------- */

static void mode_calloc(void)
{
	size_t len = 4 << 20;
	uint8_t *a = calloc(1, len), *big;

	CHECK(a && zeros(a, len));
	memset(a, 0xab, len);
	/* push a's dirty pages out to the server */
	big = malloc(64 << 20);
	CHECK(big);
	memset(big, 0x5a, 64 << 20);
	free(a);
	for (int round = 0; round < 3; round++) {
		a = calloc(len / 64, 64);
		CHECK(a && zeros(a, len));
		memset(a, 0xcd, len);
		free(a);
	}
	/* calloc after free of a block that was partly written and evicted */
	a = calloc(1, 2 * len);
	CHECK(a && zeros(a, 2 * len));
	free(a);
	free(big);
	/* calloc of pages freed a moment ago, still resident with their old
	 * data (freed memory is kept for reuse): zeros all the same */
	for (int round = 0; round < 3; round++) {
		uint8_t *m = malloc(len / 4);

		CHECK(m);
		memset(m, 0xee, len / 4);
		CHECK(check_byte(m, len / 4, 0xee));
		free(m);
		a = calloc(1, len / 4);
		CHECK(a == m); /* the same pages: the case under test */
		CHECK(zeros(a, len / 4));
		free(a);
	}
	{
		volatile size_t huge = (size_t)1 << 62; /* n * size overflows */

		CHECK(calloc(huge, 8) == NULL && errno == ENOMEM);
	}
}

/* ---- align: the aligned allocators ------------------------------------ */

static void mode_align(void)
{
	for (size_t al = 64; al <= (4 << 20); al <<= 1) {
		size_t len = (256 << 10) + 8 * al % 100000;
		void *p = NULL, *q, *r, *v, *pv;

		CHECK(posix_memalign(&p, al, len) == 0);
		CHECK((uintptr_t)p % al == 0);
		q = aligned_alloc(al, len);
		r = memalign(al, len);
		CHECK(q && r && (uintptr_t)q % al == 0 && (uintptr_t)r % al == 0);
		fill(p, len & ~7UL, al);
		fill(q, len & ~7UL, al + 1);
		fill(r, len & ~7UL, al + 2);
		CHECK(malloc_usable_size(p) >= len);
		CHECK(check(p, len & ~7UL, al) && check(q, len & ~7UL, al + 1) &&
		      check(r, len & ~7UL, al + 2));
		free(p);
		free(q);
		free(r);
		v = valloc(len);
		pv = pvalloc(len + 1);
		CHECK(v && pv && (uintptr_t)v % 4096 == 0 &&
		      (uintptr_t)pv % 4096 == 0);
		CHECK(malloc_usable_size(pv) >= ((len + 1 + 4095) & ~4095UL));
		memset(v, 1, len);
		memset(pv, 2, len + 1);
		free(v);
		free(pv);
	}
	{
		void *p;

		CHECK(posix_memalign(&p, 24, 1 << 20) == EINVAL);
		CHECK(aligned_alloc(24, 1 << 20) == NULL && errno == EINVAL);
	}
}

/* ---- mmap, munmap, mremap, madvise ------------------------------------ */

static void mode_mmap(void)
{
	size_t len = 8 << 20, pg = 4096;
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *g;
	char path[] = "/tmp/dsm-subject-XXXXXX";
	int fd;

	CHECK(m != MAP_FAILED && zeros(m, len));
	fill(m, len, 7);
	/* cut the tail and a hole in the middle, as munmap allows */
	CHECK(munmap(m + len - 16 * pg, 16 * pg) == 0);
	CHECK(munmap(m + 64 * pg, 8 * pg) == 0);
	CHECK(check(m, 64 * pg, 7));
	CHECK(check(m + 72 * pg, len - 88 * pg, 7 + 72 * pg / 8));
	/* mremap: shrink in place, grow (maybe moving), contents kept */
	g = mremap(m + 72 * pg, len - 88 * pg, 256 * pg, 0);
	CHECK(g == m + 72 * pg);
	g = mremap(g, 256 * pg, 4096 * pg, MREMAP_MAYMOVE);
	CHECK(g != MAP_FAILED);
	CHECK(check(g, 256 * pg, 7 + 72 * pg / 8));
	CHECK(zeros(g + 256 * pg, 4096 * pg - 256 * pg));
	/* MADV_DONTNEED: anonymous private memory reads zeros after it */
	CHECK(madvise(g, 16 * pg, MADV_DONTNEED) == 0);
	CHECK(zeros(g, 16 * pg));
	CHECK(check(g + 16 * pg, 240 * pg, 7 + 72 * pg / 8 + 16 * pg / 8));
	CHECK(munmap(g, 4096 * pg) == 0);
	CHECK(munmap(m, 64 * pg) == 0);
	/* a file mapping is the kernel's, not ours */
	fd = mkstemp(path);
	CHECK(fd >= 0 && ftruncate(fd, 1 << 20) == 0);
	unlink(path);
	g = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(g != MAP_FAILED);
	memset(g, 3, 1 << 20);
	CHECK(munmap(g, 1 << 20) == 0);
	CHECK(pread(fd, path, 4, 4096) == 4 && path[0] == 3);
	close(fd);
}

/* ---- fork + exec: system(), popen(), fork/execv ------------------------ */

static void mode_forkexec(void)
{
	size_t len = 32 << 20;
	uint8_t *p = malloc(len);
	char buf[64] = { 0 };
	FILE *f;
	pid_t pid;
	int st;

	CHECK(p);
	fill(p, len, 11);
	CHECK(system("exit 3") != -1);
	CHECK(WEXITSTATUS(system("exit 3")) == 3);
	f = popen("echo far; head -c 200000 /dev/zero | wc -c", "r");
	CHECK(f);
	CHECK(fread(buf, 1, sizeof(buf) - 1, f) > 0);
	CHECK(pclose(f) == 0);
	CHECK(!strcmp(buf, "far\n200000\n"));
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", "exit 5", (char *)NULL);
		_exit(127);
	}
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 5);
	CHECK(check(p, len, 11));
	free(p);
}

/* ---- fork without exec: the child gets SIGSEGV on far memory ---------- */

static void mode_forkchild(void)
{
	size_t len = 4 << 20;
	uint64_t *p = malloc(len);
	pid_t pid;
	int st;

	CHECK(p);
	fill(p, len, 13);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		/* allocating works (the C library's), freeing far memory is a
		 * no-op; touching it is a segmentation fault, never zeros */
		uint8_t *q = malloc(len), *r;

		if (!q)
			_exit(10);
		memset(q, 1, len);
		r = realloc(q, 2 * len);
		if (!r || r[len - 1] != 1)
			_exit(11);
		free(r);
		free(malloc(1 << 20));
		printf("child alive\n");
		fflush(stdout);
		*(volatile uint64_t *)&p[12345];
		_exit(12); /* not reached */
	}
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	if (!WIFSIGNALED(st))
		fprintf(stderr, "subject: child status %#x\n", st);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
	CHECK(check(p, len, 13));
	free(p);
}

/* ---- signals arriving while threads wait in faults --------------------- */

static volatile sig_atomic_t ticks;

static void on_alarm(int sig)
{
	(void)sig;
	ticks++;
}

static void mode_signals(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval it = { { 0, 200 }, { 0, 200 } };
	size_t len = 64 << 20;
	uint64_t *p = malloc(len);

	CHECK(p);
	sigaction(SIGALRM, &sa, NULL);
	CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
	for (int round = 0; round < 2; round++) {
		fill(p, len, 17 + round);
		CHECK(check(p, len, 17 + round));
	}
	it = (struct itimerval){ 0 };
	setitimer(ITIMER_REAL, &it, NULL);
	fprintf(stderr, "subject: %d signals during faults\n", (int)ticks);
	CHECK(ticks > 0);
	free(p);
}

/* ---- system calls into and out of non-resident far memory -------------- */

static void mode_syscall(void)
{
	size_t len = 32 << 20;
	uint8_t *src = malloc(len), *dst = malloc(len), *evict;
	char path[] = "/tmp/dsm-subject-XXXXXX";
	int fd = mkstemp(path);
	FILE *f;

	CHECK(src && dst && fd >= 0);
	unlink(path);
	fill(src, len, 19);
	evict = malloc(len); /* pushes src out of the budget */
	CHECK(evict);
	memset(evict, 1, len);
	/* write(2) from evicted far memory, read(2) into untouched far memory */
	CHECK(write(fd, src, len) == (ssize_t)len);
	CHECK(pread(fd, dst, len, 0) == (ssize_t)len);
	CHECK(check(dst, len, 19));
	/* stdio: fread into far memory */
	f = fdopen(fd, "r");
	CHECK(f && fseek(f, 0, SEEK_SET) == 0);
	memset(evict, 2, len);
	CHECK(fread(evict, 1, len, f) == len);
	CHECK(check(evict, len, 19));
	fclose(f);
	free(src);
	free(dst);
	free(evict);
}

/* ---- release: freed blocks give the server's memory back -------------- */

/* The server's anonymous resident memory, in MiB. */
static long server_rss_mib(void)
{
	const char *pid = getenv("SUBJECT_SERVER_PID");
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	CHECK(pid);
	snprintf(path, sizeof(path), "/proc/%s/status", pid);
	f = fopen(path, "r");
	CHECK(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "RssAnon:", 8))
			kib = atol(line + 8);
	fclose(f);
	CHECK(kib >= 0);
	return kib >> 10;
}

/* Wait up to 10 s for the server's memory to reach at least (more) or at
 * most (!more) mib; the last reading. */
static long wait_server_rss(long mib, int more)
{
	long now = server_rss_mib();

	for (int i = 0; i < 1000 && (more ? now < mib : now > mib); i++) {
		usleep(10000);
		now = server_rss_mib();
	}
	return now;
}

/* 64 blocks of 1 MiB under a 16 MiB budget: most are written back, so
 * the server holds them.  Freed, they must leave the server too, though
 * the arena they came from stays (it is kept as the spare). */
static void mode_release(void)
{
	enum { N = 64, LEN = 1 << 20 };
	long before, held, after;
	uint8_t *b[N];

	/* the server may still be freeing the last subject's regions */
	before = wait_server_rss(16, 0);
	CHECK(before <= 16);

	for (int i = 0; i < N; i++) {
		b[i] = malloc(LEN);
		CHECK(b[i]);
		fill(b[i], LEN, 900 + i);
	}
	held = wait_server_rss(before + 40, 1);
	for (int i = 0; i < N; i++)
		CHECK(check(b[i], LEN, 900 + i));
	for (int i = 0; i < N; i++)
		free(b[i]);
	after = wait_server_rss(before + 8, 0);
	printf("subject release: server memory %ld MiB before, %ld MiB while "
	       "holding 64 MiB, %ld MiB after free\n", before, held, after);
	CHECK(held >= before + 40);
	CHECK(after <= before + 8);
	/* the space is reused and reads as zeros, never as the old data */
	b[0] = malloc(N * (size_t)LEN / 2);
	CHECK(b[0] && zeros(b[0], N * (size_t)LEN / 2));
	free(b[0]);
}

/* ---- mprotect: guard pages, read-only blocks, protection on reuse ------ */

#define PG 4096UL

static sigjmp_buf segv_env;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(segv_env, 1);
}

/* Whether reading (or writing) the byte at p raises SIGSEGV. */
static int segv_on(uint8_t *p, int write)
{
	struct sigaction sa = { .sa_handler = on_segv }, old;
	volatile int hit = 0;

	sigaction(SIGSEGV, &sa, &old);
	if (sigsetjmp(segv_env, 1) == 0) {
		if (write)
			*(volatile uint8_t *)p = 0x77;
		else
			(void)*(volatile uint8_t *)p;
	} else {
		hit = 1;
	}
	sigaction(SIGSEGV, &old, NULL);
	return hit;
}

/* Three times the 16 MiB budget, written: everything else goes out.
 * Through a pointer the compiler cannot see through, or it would drop
 * the stores to a block that is freed unread, and the malloc with them. */
static void *(*volatile set_bytes)(void *, int, size_t) = memset;

static void push_out(void)
{
	size_t len = 48 << 20;
	uint8_t *p = malloc(len);

	CHECK(p);
	set_bytes(p, 0xee, len);
	free(p);
}

/* How many pages of [p, p+len) are in local memory. */
static size_t resident_pages(void *p, size_t len)
{
	unsigned char v[len / PG];
	size_t n = 0;

	CHECK(mincore(p, len, v) == 0);
	for (size_t i = 0; i < len / PG; i++)
		n += v[i] & 1;
	return n;
}

/* Guards every 300 pages, so that some sit in the middle of a 256-page
 * run whatever the block's offset in its stripes, and one at the end. */
static int is_guard(size_t page, size_t npages)
{
	return page % 300 == 150 || page == npages - 1;
}

static void guard_pages(uint8_t *b, size_t npages)
{
	for (size_t i = 0; i < npages; i++)
		if (is_guard(i, npages))
			CHECK(mprotect(b + i * PG, PG, PROT_NONE) == 0);
}

/* Fill or check every page but the guards, in order: the faults of a
 * sequential scan, which zero-fills or prefetches runs of pages across
 * the guards. */
static int scan(uint8_t *b, size_t npages, uint64_t seed, int write)
{
	for (size_t i = 0; i < npages; i++) {
		if (is_guard(i, npages))
			continue;
		if (write)
			fill(b + i * PG, PG, seed + i * PG / 8);
		else if (!check(b + i * PG, PG, seed + i * PG / 8))
			return 0;
	}
	return 1;
}

static int guards_fault(uint8_t *b, size_t npages)
{
	for (size_t i = 0; i < npages; i++)
		if (is_guard(i, npages) &&
		    (!segv_on(b + i * PG, 0) || !segv_on(b + i * PG + 99, 1)))
			return 0;
	return 1;
}

static size_t guards_resident(uint8_t *b, size_t npages)
{
	size_t n = 0;

	for (size_t i = 0; i < npages; i++)
		if (is_guard(i, npages))
			n += resident_pages(b + i * PG, PG);
	return n;
}

/* PROT_NONE guard pages in far blocks: touching one is SIGSEGV; the rest
 * goes out and comes back bit-exact, through prefetch runs and zero-fill
 * runs that reach the guards, and through MADV_DONTNEED over them. */
static void mprotect_guards(void)
{
	size_t n = 2048, len = n * PG;
	uint8_t *old = malloc(len), *fresh = malloc(len);

	CHECK(old && fresh);
	/* written, then guarded: the guards' dirty data goes to the server
	 * first, and prefetch runs from their neighbours include them */
	fill(old, len, 61);
	guard_pages(old, n);
	CHECK(guards_fault(old, n));
	/* guarded before any write: zero-fill runs stop at them, so they
	 * are never made (a dirty page there could not be evicted) */
	guard_pages(fresh, n);
	CHECK(scan(fresh, n, 62, 1));
	push_out();
	CHECK(guards_resident(fresh, n) == 0);
	CHECK(scan(old, n, 61, 0));
	CHECK(scan(fresh, n, 62, 0));
	CHECK(guards_fault(old, n) && guards_fault(fresh, n));
	/* dropped pages stay guarded, and refill around the guards */
	CHECK(madvise(fresh, len, MADV_DONTNEED) == 0);
	CHECK(zeros(fresh, 150 * PG));
	CHECK(scan(fresh, n, 63, 1));
	push_out();
	CHECK(guards_resident(fresh, n) == 0);
	CHECK(scan(fresh, n, 63, 0) && guards_fault(fresh, n));
	free(old);
	free(fresh);
}

/* Read-only after being written (dirty), then writable again. */
static void mprotect_readonly(void)
{
	size_t len = 4 << 20;
	uint8_t *r = malloc(len);

	CHECK(r);
	fill(r, len, 71);
	CHECK(mprotect(r, len, PROT_READ) == 0);
	CHECK(segv_on(r + 12345, 1) && segv_on(r + len - 1, 1));
	push_out();
	CHECK(check(r, len, 71));
	CHECK(segv_on(r + 12345, 1));
	CHECK(mprotect(r, len, PROT_READ | PROT_WRITE) == 0);
	fill(r, len, 72);
	push_out();
	CHECK(check(r, len, 72));
	/* dirty, then inaccessible: its pages still leave local memory
	 * (written back first; a dirty page there could not be copied) */
	fill(r, len, 73);
	CHECK(mprotect(r, len, PROT_NONE) == 0);
	CHECK(segv_on(r, 0) && segv_on(r + len - 1, 0));
	push_out();
	CHECK(resident_pages(r, len) < len / PG / 4);
	/* then readable, then writable */
	CHECK(mprotect(r, len, PROT_READ) == 0);
	CHECK(check(r, len, 73) && segv_on(r + 5, 1));
	CHECK(mprotect(r, len, PROT_READ | PROT_WRITE) == 0);
	fill(r, len, 74);
	push_out();
	CHECK(check(r, len, 74));
	free(r);
}

/* Pages given back with some of them protected come out writable
 * wherever they are handed out again, and zeros where the new owner asks
 * for zeros (calloc, mmap; malloc and realloc may hand back the old data,
 * as the C library does). */
static void mprotect_reuse(void)
{
	size_t len = 2 << 20;
	uint8_t *f = malloc(len), *g;
	volatile uintptr_t was = (uintptr_t)f; /* hidden from -Wuse-after-free */

	/* free */
	CHECK(f);
	fill(f, len, 81);
	CHECK(mprotect(f + len / 2, len / 4, PROT_NONE) == 0);
	CHECK(mprotect(f, PG, PROT_READ) == 0);
	free(f);
	/* not a block any more: like unmapped memory to the kernel */
	CHECK(mprotect((void *)was, PG, PROT_READ) == -1 && errno == ENOMEM);
	g = calloc(1, len); /* first fit: the same pages */
	CHECK((uintptr_t)g == was);
	CHECK(!segv_on(g, 1) && !segv_on(g + len / 2, 0) &&
	      !segv_on(g + len / 2, 1));
	g[0] = g[len / 2] = 0;
	CHECK(zeros(g, len));
	fill(g, len, 82);
	CHECK(check(g, len, 82));
	/* realloc shrinking over protected pages, then growing back in
	 * place (the pages after it are free) */
	CHECK(mprotect(g + len / 2, PG, PROT_NONE) == 0);
	CHECK(mprotect(g + len - PG, PG, PROT_READ) == 0);
	g = realloc(g, len / 2);
	CHECK((uintptr_t)g == was);
	g = realloc(g, len);
	CHECK((uintptr_t)g == was);
	CHECK(!segv_on(g + len / 2, 0) && !segv_on(g + len - 1, 0));
	CHECK(check(g, len / 2, 82));
	fill(g, len, 83);
	CHECK(check(g, len, 83));
	free(g);
	/* munmap, and a new mapping in the same place */
	f = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	CHECK(f != MAP_FAILED);
	was = (uintptr_t)f;
	fill(f, len, 84);
	CHECK(mprotect(f + PG, len - 2 * PG, PROT_NONE) == 0);
	CHECK(munmap(f, len) == 0);
	g = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	CHECK((uintptr_t)g == was && !segv_on(g + PG, 0));
	CHECK(zeros(g, len));
	fill(g, len, 85);
	CHECK(check(g, len, 85));
	/* MAP_FIXED over far memory takes the protection it asks for */
	CHECK(mmap(g + PG, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
		   MAP_FIXED, -1, 0) == g + PG);
	CHECK(segv_on(g + PG, 0) && check(g + 2 * PG, PG, 85 + 2 * PG / 8));
	CHECK(mmap(g + PG, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE |
		   MAP_ANONYMOUS | MAP_FIXED, -1, 0) == g + PG);
	CHECK(zeros(g + PG, PG) && !segv_on(g + PG, 1));
	CHECK(munmap(g, len) == 0);
}

/* What is refused, and a fork child's far memory, which stays a
 * SIGSEGV whatever it asks. */
static void mprotect_refused(void)
{
	size_t solo = 513 << 20; /* over half an arena: one of its own */
	uint8_t *s = malloc(solo), *p = malloc(1 << 20), *b;
	pid_t pid;
	int st;

	CHECK(s && p);
	s[solo - 1] = 1;
	CHECK(mprotect(p + 1, PG, PROT_READ) == -1 && errno == EINVAL);
	CHECK(mprotect(p, PG, PROT_READ | 0x100000) == -1 && errno == EINVAL);
	/* s ends where its arena does: a range past it is not all ours */
	CHECK(mprotect(s + solo - PG, 2 * PG, PROT_READ) == -1 &&
	      errno == ENOMEM);
	CHECK(!segv_on(s + solo - 1, 1)); /* nothing changed */
	/* nor one that only ends in it: with a page mapped just before s,
	 * the kernel alone would change both */
	b = mmap(s - PG, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE |
		 MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	CHECK(mprotect(s - PG, 2 * PG, PROT_READ) == -1 && errno == ENOMEM);
	CHECK(!segv_on(s, 1));
	if (b == s - PG) {
		CHECK(!segv_on(b, 1));
		munmap(b, PG);
	}
	CHECK(mprotect(p, 0, PROT_NONE) == 0 && !segv_on(p, 1));
	fill(p, 1 << 20, 91);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		if (mprotect(p, PG, PROT_READ | PROT_WRITE) != -1 ||
		    errno != EACCES)
			_exit(20);
		(void)*(volatile uint8_t *)p;
		_exit(21); /* not reached */
	}
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	if (!WIFSIGNALED(st))
		fprintf(stderr, "subject: child status %#x\n", st);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
	CHECK(check(p, 1 << 20, 91));
	free(p);
	free(s);
}

static void mode_mprotect(void)
{
	alarm(120); /* a fault nobody serves would hang: fail instead */
	mprotect_guards();
	mprotect_readonly();
	mprotect_reuse();
	mprotect_refused();
}

/* ---- small: one large allocation, for the no-server cases -------------- */

static void mode_small(void)
{
	uint8_t *p = malloc(1 << 20);

	CHECK(p);
	memset(p, 9, 1 << 20);
	CHECK(p[12345] == 9);
	free(p);
	printf("subject ran\n");
}

/* ---- reservations (issue 16: managed runtimes) ------------------------ */

#define RES_ALIGN (64UL << 20)
#define RES_PIECE (1UL << 20)
#define RES_PIECES 48 /* 48 MiB committed: three times the budget */

static uint8_t *piece(uint8_t *heap, int i)
{
	return heap + (size_t)i * RES_PIECE;
}

/* Commit piece i, by mprotect (even) or by mmap(MAP_FIXED) over it (odd),
 * as V8 and the JVM do: it reads as zeros. */
static void commit(uint8_t *heap, int i)
{
	uint8_t *p = piece(heap, i);

	if (i % 2)
		CHECK(mmap(p, RES_PIECE, PROT_READ | PROT_WRITE, MAP_PRIVATE |
			   MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p);
	else
		CHECK(mprotect(p, RES_PIECE, PROT_READ | PROT_WRITE) == 0);
	CHECK(zeros(p, RES_PIECE));
}

/* A reservation of 128 MiB with a hint, trimmed to an aligned 64 MiB by
 * unmapping its ends (glibc's thread heaps and V8 do this). */
static uint8_t *reserve_aligned(void)
{
	uint8_t *raw = mmap((void *)0x500000000000UL, 2 * RES_ALIGN, PROT_NONE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint8_t *heap;

	CHECK(raw != MAP_FAILED);
	heap = (uint8_t *)(((uintptr_t)raw + RES_ALIGN - 1) & ~(RES_ALIGN - 1));
	if (heap > raw)
		CHECK(munmap(raw, heap - raw) == 0);
	CHECK(munmap(heap + RES_ALIGN, raw + 2 * RES_ALIGN - (heap + RES_ALIGN)) == 0);
	return heap;
}

/* A managed runtime's heap: reserved, committed piece by piece past the
 * budget, every byte checked after eviction; pieces decommitted (madvise
 * and mprotect, or mmap(MAP_FIXED, PROT_NONE)) and committed again read
 * as zeros, their neighbours untouched; one mprotect over committed
 * pieces and reserved space; the whole heap unmapped at once;
 * MAP_FIXED_NOREPLACE gets its address or EEXIST. */
static void mode_reserve(void)
{
	uint8_t *heap = reserve_aligned(), *p, *q;

	for (int i = 0; i < RES_PIECES; i++) {
		commit(heap, i);
		fill(piece(heap, i), RES_PIECE, 100 + i);
	}
	for (int i = 0; i < RES_PIECES; i++)
		CHECK(check(piece(heap, i), RES_PIECE, 100 + i));
	p = piece(heap, 5);
	CHECK(madvise(p, RES_PIECE, MADV_DONTNEED) == 0);
	CHECK(mprotect(p, RES_PIECE, PROT_NONE) == 0);
	CHECK(mprotect(p, RES_PIECE, PROT_READ | PROT_WRITE) == 0);
	CHECK(zeros(p, RES_PIECE));
	p = piece(heap, 6);
	CHECK(mmap(p, RES_PIECE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
		   MAP_NORESERVE | MAP_FIXED, -1, 0) == p);
	commit(heap, 6); /* by mprotect */
	CHECK(check(piece(heap, 4), RES_PIECE, 104));
	CHECK(check(piece(heap, 7), RES_PIECE, 107));
	/* committed pieces 40..47 and reserved space 48..55 at once */
	CHECK(mprotect(piece(heap, 40), 16 * RES_PIECE, PROT_READ | PROT_WRITE) == 0);
	for (int i = 40; i < 48; i++)
		CHECK(check(piece(heap, i), RES_PIECE, 100 + i));
	CHECK(zeros(piece(heap, 48), 8 * RES_PIECE));
	CHECK(munmap(heap, RES_ALIGN) == 0);
	/* the heap's address is free again: NOREPLACE gets it exactly */
	q = mmap(heap, RES_ALIGN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
		 MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	CHECK(q == heap);
	CHECK(mmap(heap, RES_PIECE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
		   MAP_FIXED_NOREPLACE, -1, 0) == MAP_FAILED && errno == EEXIST);
	commit(heap, 0);
	fill(heap, RES_PIECE, 7);
	CHECK(check(heap, RES_PIECE, 7));
	CHECK(munmap(heap, RES_ALIGN) == 0);
}

/* ---- advice, mlock and the program's own SIGSEGV handler --------------- */

/* Is "dd" (not dumped) among the VmFlags of the mapping holding p? */
static int not_dumped(const void *p)
{
	char line[512];
	uintptr_t lo, hi, at = (uintptr_t)p;
	int in = 0, dd = -1;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (dd < 0 && fgets(line, sizeof(line), f)) {
		/* a mapping's first line: "lo-hi perms ..."; the others
		 * are "Key: value", which never scan as two numbers */
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = at >= lo && at < hi;
		else if (in && !strncmp(line, "VmFlags:", 8))
			dd = strstr(line, " dd") != NULL;
	}
	fclose(f);
	return dd;
}

static uint8_t *guard;
static volatile sig_atomic_t segvs;

/* A runtime's handler (a GC barrier, a safepoint): a fault on the page
 * it protected is its own; it opens the page and the store goes on. */
static void on_guard_fault(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	if ((uint8_t *)si->si_addr < guard || (uint8_t *)si->si_addr >= guard + 4096)
		_exit(40); /* a fault it did not cause: far memory's */
	segvs++;
	if (mprotect(guard, 4096, PROT_READ | PROT_WRITE))
		_exit(41);
}

static void mode_advice(void)
{
	static const int hints[] = { MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL,
		MADV_WILLNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_COLD,
		MADV_PAGEOUT, MADV_DOFORK, MADV_DONTFORK };
	struct sigaction sa = { .sa_sigaction = on_guard_fault,
				  .sa_flags = SA_SIGINFO };
	size_t len = 48 << 20, mib = 1 << 20;
	uint8_t *p = malloc(len), *evict = malloc(len);

	CHECK(p && evict && (uintptr_t)p % 4096 == 0);
	fill(p, len, 23);
	/* hints are accepted, and change nothing */
	for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
		CHECK(madvise(p, len, hints[i]) == 0);
	CHECK(check(p, len, 23));
	/* one the kernel does not know: EINVAL, as without the shim */
	CHECK(madvise(p, len, 9999) == -1 && errno == EINVAL);
	/* not dumped: the kernel's flag on the mapping, and back */
	CHECK(madvise(p, mib, MADV_DONTDUMP) == 0 && not_dumped(p) == 1);
	CHECK(madvise(p, mib, MADV_DODUMP) == 0 && not_dumped(p) == 0);
	/* MADV_FREE: zeros, the neighbours intact */
	CHECK(madvise(p + mib, mib, MADV_FREE) == 0 && zeros(p + mib, mib));
	CHECK(check(p + 2 * mib, mib, 23 + 2 * mib / 8));
	/* locked pages stay resident while the rest is evicted */
	CHECK(mlock(p, mib) == 0);
	memset(evict, 3, len);
	CHECK(check(p, mib, 23));
	CHECK(munlock(p, mib) == 0);
	/* a SIGSEGV handler sees its own fault on far memory, and only it */
	guard = p + 4 * mib;
	CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
	CHECK(mprotect(guard, 4096, PROT_NONE) == 0);
	memset(evict, 4, len); /* the rest of p far away again */
	/* volatile: the store must come before the count is read */
	*(volatile uint8_t *)&guard[8] = 0x5a;
	CHECK(segvs == 1 && *(volatile uint8_t *)&guard[8] == 0x5a);
	CHECK(check(guard + 4096, len - 4 * mib - 4096, 23 + (4 * mib + 4096) / 8));
	signal(SIGSEGV, SIG_DFL);
	free(evict);
	free(p);
}

int main(int argc, char **argv)
{
	static const struct { const char *name; void (*fn)(void); } modes[] = {
		{ "threads", mode_threads }, { "many", mode_many },
		{ "calloc", mode_calloc }, { "align", mode_align },
		{ "mmap", mode_mmap }, { "forkexec", mode_forkexec },
		{ "forkchild", mode_forkchild }, { "signals", mode_signals },
		{ "syscall", mode_syscall }, { "release", mode_release },
		{ "mprotect", mode_mprotect }, { "small", mode_small },
		{ "reserve", mode_reserve }, { "advice", mode_advice },
	};

	for (size_t i = 0; argc == 2 && i < sizeof(modes) / sizeof(*modes); i++) {
		if (!strcmp(argv[1], modes[i].name)) {
			modes[i].fn();
			return 0;
		}
	}
	fprintf(stderr, "usage: preload_subject MODE\n");
	return 2;
}
