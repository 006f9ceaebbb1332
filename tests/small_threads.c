/*
 * small_threads.c - a threaded program whose heap is small blocks, which
 * the C library serves from its per-thread arenas (room: tests):
 * test_preload_programs.sh's small case runs it under dsm-run.
 *
 * Each of 4 threads builds a list of 800,000 nodes of 24 to 200 bytes
 * (about 100 MiB a thread; every 8th from aligned_alloc, every 16th with
 * an 8-byte tag of its own), filled from its own generator; then frees
 * every other node, reallocs the rest to new sizes and adds as many new
 * ones; then walks the list, checking and summing every byte.  Prints
 * each thread's sum, in thread order: the same with or without the shim.
 *   small_threads [nodes per thread]
 */
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define MIN_NODE 24
#define MAX_NODE 200

struct node {
	struct node *next;
	uint64_t *tag;          /* 8 bytes: below any threshold, so the C
	                         * library's, whose heaps may lie between
	                         * the shim's regions; NULL on most nodes */
	uint32_t len;           /* bytes of data */
	uint32_t seed;
	uint8_t data[];
};

#define ALIGNED 64      /* every 8th node: aligned_alloc(ALIGNED, ...) */

struct job {
	unsigned id;
	size_t nodes;
	uint64_t sum;
	int bad;                /* a byte read back wrong */
};

static uint32_t next_rand(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(*s >> 33);
}

static struct node *make(uint64_t *rng)
{
	uint32_t len = MIN_NODE + next_rand(rng) % (MAX_NODE - MIN_NODE);
	uint32_t seed = next_rand(rng);
	size_t size = sizeof(struct node) + len;
	struct node *n;

	if (seed % 8 == 0) {
		n = aligned_alloc(ALIGNED, (size + ALIGNED - 1) & ~(size_t)(ALIGNED - 1));
		if (n && (uintptr_t)n % ALIGNED) {
			fprintf(stderr, "aligned_alloc(%d): %p\n", ALIGNED, (void *)n);
			exit(1);
		}
	} else {
		n = malloc(size);
	}
	if (!n) {
		perror("malloc");
		exit(1);
	}
	n->tag = NULL;
	if (seed % 16 == 1) {
		n->tag = malloc(sizeof(*n->tag));
		if (!n->tag) {
			perror("malloc");
			exit(1);
		}
		*n->tag = seed;
	}
	n->len = len;
	n->seed = seed;
	for (uint32_t i = 0; i < len; i++)
		n->data[i] = (uint8_t)(n->seed + i * 7);
	return n;
}

/* Free every other node, move the others to new sizes, add new ones. */
static struct node *churn(struct node *head, uint64_t *rng)
{
	struct node *out = NULL, *n, *next;
	size_t k = 0;

	for (n = head; n; n = next, k++) {
		next = n->next;
		if (k % 2) {
			free(n->tag);
			free(n);
			n = make(rng);
		} else {
			uint32_t len = MIN_NODE + next_rand(rng) % (MAX_NODE - MIN_NODE);

			n = realloc(n, sizeof(*n) + len);
			if (!n) {
				perror("realloc");
				exit(1);
			}
			for (uint32_t i = n->len; i < len; i++)
				n->data[i] = (uint8_t)(n->seed + i * 7);
			n->len = len;
		}
		if (malloc_usable_size(n) < sizeof(*n) + n->len) {
			fprintf(stderr, "malloc_usable_size too small\n");
			exit(1);
		}
		n->next = out;
		out = n;
	}
	return out;
}

static void *run(void *arg)
{
	struct job *j = arg;
	uint64_t rng = 0x9e3779b97f4a7c15ULL * (j->id + 1);
	struct node *head = NULL, *n, *next;

	for (size_t i = 0; i < j->nodes; i++) {
		n = make(&rng);
		n->next = head;
		head = n;
	}
	head = churn(head, &rng);
	for (n = head; n; n = next) {
		next = n->next;
		for (uint32_t i = 0; i < n->len; i++) {
			j->bad |= n->data[i] != (uint8_t)(n->seed + i * 7);
			j->sum = j->sum * 31 + n->data[i];
		}
		j->bad |= n->tag && *n->tag != n->seed;
		free(n->tag);
		free(n);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	size_t nodes = argc > 1 ? strtoull(argv[1], NULL, 10) : 800000;
	struct job jobs[THREADS];
	pthread_t t[THREADS];
	int bad = 0;

	for (unsigned i = 0; i < THREADS; i++) {
		jobs[i] = (struct job){ .id = i, .nodes = nodes };
		if (pthread_create(&t[i], NULL, run, &jobs[i])) {
			perror("pthread_create");
			return 1;
		}
	}
	for (unsigned i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		printf("thread %u: %zu nodes, sum %016" PRIx64 "\n", i, nodes,
		       jobs[i].sum);
		bad |= jobs[i].bad;
	}
	if (bad)
		fprintf(stderr, "a node read back wrong\n");
	return bad;
}
