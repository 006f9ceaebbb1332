/*
 * kv_table.c - see kv_table.h (room: examples).
 *
 * Nothing in here knows about far memory: the slots are reached through an
 * ordinary pointer.  The first access to a slot whose page is not resident
 * page-faults, and libdsm fetches the page before the access completes.
 */
#include "kv_table.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dsm.h"

/* A 64-bit mixing function (the splitmix64 finaliser): spreads keys over
 * slots, and turns (key, version) into value bytes that do not repeat. */
uint64_t kv_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

int kv_create(struct kv_table *t, uint64_t bytes)
{
	t->nslots = bytes / sizeof(struct kv_record);
	if (t->nslots == 0) {
		fprintf(stderr, "kvstore: table size too small\n");
		return -EINVAL;
	}
	/* Far memory: from here on only pages we touch take local RAM,
	 * and never more than DSM_LOCAL_MEM of them at a time. */
	t->slots = dsm_alloc(t->nslots * sizeof(struct kv_record));
	if (!t->slots) {
		int err = errno;

		fprintf(stderr, "kvstore: dsm_alloc(%llu bytes): %s\n",
			(unsigned long long)bytes, strerror(err));
		return -err;
	}
	return 0;
}

void kv_destroy(struct kv_table *t)
{
	dsm_free(t->slots);
	t->slots = NULL;
}

uint64_t kv_home(const struct kv_table *t, uint64_t key)
{
	/* multiply-shift maps the hash onto [0, nslots) without a division */
	return (uint64_t)(((unsigned __int128)kv_mix(key) * t->nslots) >> 64);
}

static void make_value(uint64_t key, uint64_t version,
		       uint8_t out[KV_VALUE_SIZE])
{
	for (unsigned i = 0; i < KV_VALUE_SIZE / 8; i++) {
		uint64_t w = kv_mix(key ^ kv_mix(version * 64 + i));

		memcpy(out + i * 8, &w, 8);
	}
}

/* A probe passes records that another thread may be updating.  Keys never
 * change once inserted and a version only goes from one non-zero value to
 * the next, so reading it atomically is all the agreement needed. */
static uint64_t version_of(const struct kv_record *r)
{
	return __atomic_load_n(&r->version, __ATOMIC_RELAXED);
}

/* The slot holding key, or the empty slot ending its probe sequence;
 * NULL only if the table is full and key is not in it. */
static struct kv_record *probe(const struct kv_table *t, uint64_t key)
{
	uint64_t i = kv_home(t, key);

	for (uint64_t n = 0; n < t->nslots; n++) {
		struct kv_record *r = &t->slots[i];

		if (version_of(r) == 0 || r->key == key)
			return r;
		if (++i == t->nslots)
			i = 0;
	}
	return NULL;
}

bool kv_insert(struct kv_table *t, uint64_t key)
{
	struct kv_record *r = probe(t, key);

	if (!r || version_of(r) != 0)
		return false;
	r->key = key;
	make_value(key, 1, r->value);
	r->version = 1;
	return true;
}

struct kv_record *kv_lookup(const struct kv_table *t, uint64_t key)
{
	struct kv_record *r = probe(t, key);

	return r && version_of(r) != 0 ? r : NULL;
}

void kv_update(struct kv_record *r)
{
	make_value(r->key, r->version + 1, r->value);
	__atomic_store_n(&r->version, r->version + 1, __ATOMIC_RELAXED);
}

bool kv_value_ok(const struct kv_record *r)
{
	uint8_t want[KV_VALUE_SIZE];

	make_value(r->key, r->version, want);
	return memcmp(want, r->value, KV_VALUE_SIZE) == 0;
}
