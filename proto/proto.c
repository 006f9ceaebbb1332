/*
 * proto.c - encoding and checking of dsm wire messages (room: protocol).
 *
 * Every field is written byte by byte in little-endian order, so the wire
 * format does not depend on struct layout or host byte order.  Decoders
 * check lengths before touching a byte: they are fed hostile input (see
 * tests/fuzz_proto.c).
 */
#include "proto.h"

#include <errno.h>
#include <string.h>

/* A cursor over a byte buffer; callers size the buffer first. */
struct cur {
	uint8_t *w;
	const uint8_t *r;
};

static void put16(struct cur *c, uint16_t v)
{
	c->w[0] = v;
	c->w[1] = v >> 8;
	c->w += 2;
}

static void put32(struct cur *c, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		c->w[i] = v >> (8 * i);
	c->w += 4;
}

static void put64(struct cur *c, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		c->w[i] = v >> (8 * i);
	c->w += 8;
}

static uint16_t get16(struct cur *c)
{
	uint16_t v = c->r[0] | (uint16_t)c->r[1] << 8;

	c->r += 2;
	return v;
}

static uint32_t get32(struct cur *c)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v |= (uint32_t)c->r[i] << (8 * i);
	c->r += 4;
	return v;
}

static uint64_t get64(struct cur *c)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)c->r[i] << (8 * i);
	c->r += 8;
	return v;
}

void dsm_hdr_init(struct dsm_hdr *h, uint8_t type, uint16_t flags,
		  uint32_t len, uint64_t id)
{
	memset(h, 0, sizeof(*h));
	h->magic = DSM_PROTO_MAGIC;
	h->version = DSM_PROTO_VERSION;
	h->type = type;
	h->flags = flags;
	h->len = len;
	h->id = id;
}

void dsm_hdr_encode(const struct dsm_hdr *h, uint8_t out[DSM_HDR_SIZE])
{
	struct cur c = { .w = out };

	put32(&c, h->magic);
	c.w[0] = h->version;
	c.w[1] = h->type;
	c.w += 2;
	put16(&c, h->flags);
	put32(&c, h->len);
	put32(&c, (uint32_t)h->status);
	put64(&c, h->id);
}

int dsm_hdr_decode(const uint8_t in[DSM_HDR_SIZE], struct dsm_hdr *h)
{
	struct cur c = { .r = in };

	h->magic = get32(&c);
	h->version = c.r[0];
	h->type = c.r[1];
	c.r += 2;
	h->flags = get16(&c);
	h->len = get32(&c);
	h->status = (int32_t)get32(&c);
	h->id = get64(&c);

	if (h->magic != DSM_PROTO_MAGIC)
		return -EPROTO;
	/* The version is checked before anything else about the message so
	 * that a future peer gets a clean "unsupported version" answer. */
	if (h->version != DSM_PROTO_VERSION)
		return -EPROTONOSUPPORT;
	if (h->flags & ~(DSM_F_REPLY | DSM_F_SERVER))
		return -EPROTO;
	if (h->len > DSM_MAX_PAYLOAD)
		return -EMSGSIZE;
	return 0;
}

void dsm_hello_encode(const struct dsm_hello *m, uint8_t *out)
{
	struct cur c = { .w = out };

	put16(&c, m->min_version);
	put16(&c, m->max_version);
	put32(&c, m->page_size);
	put64(&c, m->nonce);
}

int dsm_hello_decode(const uint8_t *in, size_t len, struct dsm_hello *m)
{
	struct cur c = { .r = in };

	if (len != DSM_HELLO_SIZE)
		return -EINVAL;
	m->min_version = get16(&c);
	m->max_version = get16(&c);
	m->page_size = get32(&c);
	m->nonce = get64(&c);
	if (m->min_version > m->max_version)
		return -EINVAL;
	return 0;
}

void dsm_hello_reply_encode(const struct dsm_hello_reply *m, uint8_t *out)
{
	struct cur c = { .w = out };

	put16(&c, m->version);
	put16(&c, m->flags);
	put32(&c, m->page_size);
	put32(&c, m->server_id);
	put32(&c, m->max_batch_pages);
	put64(&c, m->capacity);
	put64(&c, m->free);
	memcpy(c.w, m->server_nonce, sizeof(m->server_nonce));
}

int dsm_hello_reply_decode(const uint8_t *in, size_t len,
			   struct dsm_hello_reply *m)
{
	struct cur c = { .r = in };

	if (len != DSM_HELLO_REPLY_SIZE)
		return -EINVAL;
	m->version = get16(&c);
	m->flags = get16(&c);
	m->page_size = get32(&c);
	m->server_id = get32(&c);
	m->max_batch_pages = get32(&c);
	m->capacity = get64(&c);
	m->free = get64(&c);
	memcpy(m->server_nonce, c.r, sizeof(m->server_nonce));
	if (m->max_batch_pages == 0 || m->page_size != DSM_PAGE_SIZE ||
	    (m->flags & ~(DSM_HELLO_AUTH | DSM_HELLO_DRAINING |
			  DSM_HELLO_RDMA)))
		return -EINVAL;
	return 0;
}

void dsm_alloc_req_encode(const struct dsm_alloc_req *m, uint8_t *out)
{
	struct cur c = { .w = out };

	put64(&c, m->size);
}

int dsm_alloc_req_decode(const uint8_t *in, size_t len,
			 struct dsm_alloc_req *m)
{
	struct cur c = { .r = in };

	if (len != DSM_ALLOC_REQ_SIZE)
		return -EINVAL;
	m->size = get64(&c);
	if (m->size == 0 || m->size % DSM_PAGE_SIZE)
		return -EINVAL;
	return 0;
}

void dsm_alloc_reply_encode(const struct dsm_alloc_reply *m, uint8_t *out)
{
	struct cur c = { .w = out };

	put64(&c, m->region_id);
	put64(&c, m->pool_off);
	put64(&c, m->size);
	put64(&c, m->addr);
	put32(&c, m->rkey);
	put32(&c, 0);
}

int dsm_alloc_reply_decode(const uint8_t *in, size_t len,
			   struct dsm_alloc_reply *m)
{
	struct cur c = { .r = in };

	if (len != DSM_ALLOC_REPLY_SIZE)
		return -EINVAL;
	m->region_id = get64(&c);
	m->pool_off = get64(&c);
	m->size = get64(&c);
	m->addr = get64(&c);
	m->rkey = get32(&c);
	m->reserved = get32(&c);
	if (m->pool_off % DSM_PAGE_SIZE || m->size % DSM_PAGE_SIZE ||
	    m->reserved)
		return -EINVAL;
	return 0;
}

void dsm_free_req_encode(const struct dsm_free_req *m, uint8_t *out)
{
	struct cur c = { .w = out };

	put64(&c, m->region_id);
}

int dsm_free_req_decode(const uint8_t *in, size_t len, struct dsm_free_req *m)
{
	struct cur c = { .r = in };

	if (len != DSM_FREE_REQ_SIZE)
		return -EINVAL;
	m->region_id = get64(&c);
	return 0;
}

void dsm_rw_req_encode(const struct dsm_rw_req *m, uint8_t *out)
{
	struct cur c = { .w = out };

	put64(&c, m->region_id);
	put64(&c, m->pool_off);
	put32(&c, m->npages);
	put32(&c, 0);
}

int dsm_rw_req_decode(uint8_t type, const uint8_t *in, size_t len,
		      struct dsm_rw_req *m)
{
	struct cur c = { .r = in };
	size_t want;

	if (len < DSM_RW_REQ_SIZE)
		return -EINVAL;
	m->region_id = get64(&c);
	m->pool_off = get64(&c);
	m->npages = get32(&c);
	m->reserved = get32(&c);
	if (m->npages == 0 || m->reserved || m->pool_off % DSM_PAGE_SIZE)
		return -EINVAL;
	/* A DISCARD, INVALIDATE or RECALL carries no data, so it is not
	 * held to a batch (a seal invalidates a whole region). */
	if ((type == DSM_MSG_READ || type == DSM_MSG_WRITE) &&
	    m->npages > DSM_MAX_BATCH_PAGES)
		return -EINVAL;
	want = DSM_RW_REQ_SIZE;
	if (type == DSM_MSG_WRITE)
		want += (size_t)m->npages * DSM_PAGE_SIZE;
	else if (type != DSM_MSG_READ && type != DSM_MSG_DISCARD &&
		 type != DSM_MSG_INVALIDATE && type != DSM_MSG_RECALL)
		return -EINVAL;
	return len == want ? 0 : -EINVAL;
}

void dsm_server_stats_encode(const struct dsm_server_stats *m, uint8_t *out)
{
	struct cur c = { .w = out };
	const uint64_t v[] = { m->capacity, m->used, m->regions, m->clients,
			       m->reads, m->writes, m->pages_read,
			       m->pages_written, m->bytes_in, m->bytes_out,
			       m->errors, m->uptime_ms, m->conn_refused };

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		put64(&c, v[i]);
}

int dsm_server_stats_decode(const uint8_t *in, size_t len,
			    struct dsm_server_stats *m)
{
	struct cur c = { .r = in };
	uint64_t *v[] = { &m->capacity, &m->used, &m->regions, &m->clients,
			  &m->reads, &m->writes, &m->pages_read,
			  &m->pages_written, &m->bytes_in, &m->bytes_out,
			  &m->errors, &m->uptime_ms, &m->conn_refused };

	if (len != DSM_SERVER_STATS_SIZE && len != DSM_SERVER_STATS_SIZE_V2_0)
		return -EINVAL;
	m->conn_refused = 0;
	for (size_t i = 0; i < len / 8; i++)
		*v[i] = get64(&c);
	return 0;
}

void dsm_lease_encode(const struct dsm_lease *m, uint8_t *out)
{
	struct cur c = { .w = out };

	put64(&c, m->client_id);
}

int dsm_lease_decode(const uint8_t *in, size_t len, struct dsm_lease *m)
{
	struct cur c = { .r = in };

	if (len != DSM_LEASE_SIZE)
		return -EINVAL;
	m->client_id = get64(&c);
	return m->client_id ? 0 : -EINVAL;
}

void dsm_auth_msg_encode(const struct dsm_auth_msg *m, uint8_t *out)
{
	memcpy(out, m->mac, sizeof(m->mac));
}

int dsm_auth_msg_decode(const uint8_t *in, size_t len, struct dsm_auth_msg *m)
{
	if (len != DSM_AUTH_MSG_SIZE)
		return -EINVAL;
	memcpy(m->mac, in, sizeof(m->mac));
	return 0;
}

void dsm_goodbye_encode(const struct dsm_goodbye *m, uint8_t *out)
{
	struct cur c = { .w = out };

	put32(&c, (uint32_t)m->reason);
}

int dsm_goodbye_decode(const uint8_t *in, size_t len, struct dsm_goodbye *m)
{
	struct cur c = { .r = in };

	if (len != DSM_GOODBYE_SIZE)
		return -EINVAL;
	m->reason = (int32_t)get32(&c);
	return 0;
}

void dsm_draining_encode(const struct dsm_draining *m, uint8_t *out)
{
	struct cur c = { .w = out };

	put32(&c, m->on);
}

int dsm_draining_decode(const uint8_t *in, size_t len, struct dsm_draining *m)
{
	struct cur c = { .r = in };

	if (len != DSM_DRAINING_SIZE)
		return -EINVAL;
	m->on = get32(&c);
	return m->on > 1 ? -EINVAL : 0;
}

void dsm_share_req_encode(const struct dsm_share_req *m, uint8_t *out)
{
	struct cur c = { .w = out };

	put64(&c, m->region_id);
	put64(&c, m->size);
	memcpy(c.w, m->key, sizeof(m->key));
}

int dsm_share_req_decode(uint8_t type, const uint8_t *in, size_t len,
			 struct dsm_share_req *m)
{
	struct cur c = { .r = in };

	if (len != DSM_SHARE_REQ_SIZE)
		return -EINVAL;
	m->region_id = get64(&c);
	m->size = get64(&c);
	memcpy(m->key, c.r, sizeof(m->key));
	if (m->size == 0 || m->size % DSM_PAGE_SIZE)
		return -EINVAL;
	if (type == DSM_MSG_SHARE_CREATE)
		return m->region_id & ~(uint64_t)(DSM_SHARE_CREATE_SEALED |
						  DSM_SHARE_CREATE_STANDBY) ?
		       -EINVAL : 0;
	if (type == DSM_MSG_SHARE_PROMOTE)
		return m->region_id ? 0 : -EINVAL;
	return type == DSM_MSG_SHARE_ATTACH ? 0 : -EINVAL;
}

void dsm_acquire_encode(const struct dsm_acquire *m, uint8_t *out)
{
	struct cur c = { .w = out };

	put64(&c, m->region_id);
	put64(&c, m->pool_off);
	put32(&c, m->npages);
	c.w[0] = m->mode;
	c.w[1] = m->flags;
	c.w += 2;
	put16(&c, 0);
}

int dsm_acquire_decode(const uint8_t *in, size_t len, struct dsm_acquire *m)
{
	struct cur c = { .r = in };

	if (len != DSM_ACQUIRE_SIZE)
		return -EINVAL;
	m->region_id = get64(&c);
	m->pool_off = get64(&c);
	m->npages = get32(&c);
	m->mode = c.r[0];
	m->flags = c.r[1];
	c.r += 2;
	m->reserved = get16(&c);
	if (m->npages == 0 || m->npages > DSM_MAX_BATCH_PAGES ||
	    m->pool_off % DSM_PAGE_SIZE || m->reserved ||
	    (m->mode != DSM_ACQ_READ && m->mode != DSM_ACQ_WRITE) ||
	    (m->flags & ~DSM_ACQ_DATA))
		return -EINVAL;
	return 0;
}

void dsm_inval_ack_encode(const struct dsm_inval_ack *m, uint8_t *out)
{
	struct cur c = { .w = out };

	put64(&c, m->inval_id);
}

int dsm_inval_ack_decode(const uint8_t *in, size_t len,
			 struct dsm_inval_ack *m)
{
	struct cur c = { .r = in };

	if (len != DSM_INVAL_ACK_SIZE)
		return -EINVAL;
	m->inval_id = get64(&c);
	return m->inval_id ? 0 : -EINVAL;
}

void dsm_lock_req_encode(const struct dsm_lock_req *m, uint8_t *out)
{
	struct cur c = { .w = out };

	put64(&c, m->region_id);
	put64(&c, m->offset);
	put64(&c, m->token);
	put32(&c, m->flags);
	put32(&c, m->reserved);
}

/* The offset's upper bound is the region's size: the handler checks it. */
int dsm_lock_req_decode(const uint8_t *in, size_t len, struct dsm_lock_req *m)
{
	struct cur c = { .r = in };

	if (len != DSM_LOCK_REQ_SIZE)
		return -EINVAL;
	m->region_id = get64(&c);
	m->offset = get64(&c);
	m->token = get64(&c);
	m->flags = get32(&c);
	m->reserved = get32(&c);
	if (m->offset % DSM_LOCK_ALIGN || !m->token ||
	    (m->flags & ~DSM_LOCK_RECLAIM) || m->reserved)
		return -EINVAL;
	return 0;
}

void dsm_lock_reply_encode(const struct dsm_lock_reply *m, uint8_t *out)
{
	struct cur c = { .w = out };

	put32(&c, m->flags);
	put32(&c, 0);
}

int dsm_lock_reply_decode(const uint8_t *in, size_t len,
			  struct dsm_lock_reply *m)
{
	struct cur c = { .r = in };

	if (len != DSM_LOCK_REPLY_SIZE)
		return -EINVAL;
	m->flags = get32(&c);
	m->reserved = get32(&c);
	if ((m->flags & ~DSM_LOCK_OWNER_DIED) || m->reserved)
		return -EINVAL;
	return 0;
}

void dsm_share_move_encode(const struct dsm_share_move *m, uint8_t *out)
{
	struct cur c = { .w = out };

	put64(&c, m->region_id);
	put32(&c, m->step);
	put32(&c, 0);
}

int dsm_share_move_decode(const uint8_t *in, size_t len,
			  struct dsm_share_move *m)
{
	struct cur c = { .r = in };

	if (len != DSM_SHARE_MOVE_SIZE)
		return -EINVAL;
	m->region_id = get64(&c);
	m->step = get32(&c);
	m->reserved = get32(&c);
	if (!m->region_id || m->step < DSM_MOVE_SEAL ||
	    m->step > DSM_MOVE_STANDBY_SEEN || m->reserved)
		return -EINVAL;
	return 0;
}

void dsm_barrier_req_encode(const struct dsm_barrier_req *m, uint8_t *out)
{
	struct cur c = { .w = out };

	memcpy(c.w, m->key, sizeof(m->key));
	c.w += sizeof(m->key);
	put32(&c, m->count);
	put32(&c, m->flags);
	put64(&c, m->token);
}

/* A flag this end does not know is refused, not ignored: a peer that
 * sets it means something we would not do. */
int dsm_barrier_req_decode(const uint8_t *in, size_t len,
			   struct dsm_barrier_req *m)
{
	struct cur c = { .r = in };

	if (len != DSM_BARRIER_REQ_SIZE)
		return -EINVAL;
	memcpy(m->key, c.r, sizeof(m->key));
	c.r += sizeof(m->key);
	m->count = get32(&c);
	m->flags = get32(&c);
	m->token = get64(&c);
	if (!m->count || m->count > DSM_BARRIER_MAX_COUNT ||
	    (m->flags & ~DSM_BARRIER_WITHDRAW) || !m->token)
		return -EINVAL;
	return 0;
}

const char *dsm_msg_name(uint8_t type)
{
	switch (type) {
	case DSM_MSG_HELLO: return "HELLO";
	case DSM_MSG_ALLOC: return "ALLOC";
	case DSM_MSG_FREE: return "FREE";
	case DSM_MSG_READ: return "READ";
	case DSM_MSG_WRITE: return "WRITE";
	case DSM_MSG_STATS: return "STATS";
	case DSM_MSG_PING: return "PING";
	case DSM_MSG_AUTH: return "AUTH";
	case DSM_MSG_LEASE: return "LEASE";
	case DSM_MSG_DISCARD: return "DISCARD";
	case DSM_MSG_SHARE_CREATE: return "SHARE_CREATE";
	case DSM_MSG_SHARE_ATTACH: return "SHARE_ATTACH";
	case DSM_MSG_ACQUIRE: return "ACQUIRE";
	case DSM_MSG_INVAL_ACK: return "INVAL_ACK";
	case DSM_MSG_LOCK: return "LOCK";
	case DSM_MSG_UNLOCK: return "UNLOCK";
	case DSM_MSG_BARRIER: return "BARRIER";
	case DSM_MSG_SHARE_MOVE: return "SHARE_MOVE";
	case DSM_MSG_SHARE_PROMOTE: return "SHARE_PROMOTE";
	case DSM_MSG_GOODBYE: return "GOODBYE";
	case DSM_MSG_INVALIDATE: return "INVALIDATE";
	case DSM_MSG_RECALL: return "RECALL";
	case DSM_MSG_DRAINING: return "DRAINING";
	}
	return "UNKNOWN";
}
