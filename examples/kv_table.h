/*
 * kv_table.h - a fixed-size hash table whose slots live in far memory
 * (room: examples).
 *
 * Open addressing with linear probing: a key's record sits at its home
 * slot or in the first free slot after it.  That keeps a lookup inside one
 * or two adjacent slots, usually one page - which matters here, because
 * every page touched that is not resident costs a round trip to the
 * memory server.
 *
 * The table never grows and never deletes; it is an example, not a
 * library.  The functions are not thread-safe for writers: callers give
 * each record a single writer (see kvstore.c).
 */
#ifndef KV_TABLE_H
#define KV_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#define KV_VALUE_SIZE 112

/* 128 bytes: 32 records per 4 KiB page, none split across two pages. */
struct kv_record {
	uint64_t key;
	uint64_t version;              /* 0: empty slot; 1 once inserted,
	                                * +1 per update */
	uint8_t value[KV_VALUE_SIZE];  /* derived from key and version, so
	                                * any reader can check it */
};

struct kv_table {
	struct kv_record *slots;       /* dsm_alloc()ed: far memory */
	uint64_t nslots;
};

/* A table filling `bytes` of far memory.  0, or -errno after printing
 * why.  Fresh dsm memory reads as zeros, i.e. every slot empty. */
int kv_create(struct kv_table *t, uint64_t bytes);
void kv_destroy(struct kv_table *t);

/* The slot where the search for key starts. */
uint64_t kv_home(const struct kv_table *t, uint64_t key);

/* Add key with version 1.  false if it is already there or the table is
 * full. */
bool kv_insert(struct kv_table *t, uint64_t key);

/* The record of key, or NULL if absent. */
struct kv_record *kv_lookup(const struct kv_table *t, uint64_t key);

/* Give a record its next version and the value that goes with it. */
void kv_update(struct kv_record *r);

/* Does the record's value match its key and version? */
bool kv_value_ok(const struct kv_record *r);

/* The table's 64-bit mixing function, a bijection: distinct inputs give
 * distinct outputs (kvstore.c makes its keys with it). */
uint64_t kv_mix(uint64_t x);

#endif
