/*
 * auth.c - see auth.h (room: protocol).  The cryptography is libsodium's:
 * HMAC-SHA256, SHA-256, a constant-time compare and the system's random
 * source; nothing here is home-made.
 */
#include "auth.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define SECRET_MAX_BYTES 4096

/* sodium_init() is idempotent and thread-safe; call it before any use. */
static void init(void)
{
	if (sodium_init() < 0)
		abort(); /* no random source: nothing here can be trusted */
}

int dsm_auth_load(const char *path, struct dsm_auth_key *key, char *err,
		  size_t errlen)
{
	uint8_t buf[SECRET_MAX_BYTES];
	size_t len = 0;
	int rc;

	init();
	rc = dsm_private_file_read(path, "secret file", buf, sizeof(buf), &len,
				   err, errlen);
	if (!rc && len < DSM_SECRET_MIN_BYTES) {
		rc = -EINVAL;
		snprintf(err, errlen, "secret file %s: too short (want at least "
			 "16 random bytes, e.g. head -c 32 /dev/urandom | "
			 "base64)", path);
	}
	if (!rc)
		crypto_hash_sha256(key->k, buf, len);
	sodium_memzero(buf, sizeof(buf));
	return rc;
}

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = v >> (8 * i);
}

void dsm_auth_mac(const struct dsm_auth_key *key, char role,
		  const uint8_t server_nonce[DSM_AUTH_NONCE_SIZE],
		  uint64_t client_nonce, uint32_t server_id,
		  uint8_t mac[DSM_AUTH_MAC_SIZE])
{
	crypto_auth_hmacsha256_state st;
	uint8_t cn[8], sid[8];

	init();
	le64(cn, client_nonce);
	le64(sid, server_id);
	crypto_auth_hmacsha256_init(&st, key->k, sizeof(key->k));
	/* The two proofs differ in label and order, so neither side's proof
	 * can be reflected back as the other's. */
	if (role == 'c') {
		crypto_auth_hmacsha256_update(&st, (const uint8_t *)"dsm-client-1", 12);
		crypto_auth_hmacsha256_update(&st, server_nonce, DSM_AUTH_NONCE_SIZE);
		crypto_auth_hmacsha256_update(&st, cn, sizeof(cn));
	} else {
		crypto_auth_hmacsha256_update(&st, (const uint8_t *)"dsm-server-1", 12);
		crypto_auth_hmacsha256_update(&st, cn, sizeof(cn));
		crypto_auth_hmacsha256_update(&st, server_nonce, DSM_AUTH_NONCE_SIZE);
	}
	crypto_auth_hmacsha256_update(&st, sid, sizeof(sid));
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
}

int dsm_auth_verify(const uint8_t a[DSM_AUTH_MAC_SIZE],
		    const uint8_t b[DSM_AUTH_MAC_SIZE])
{
	return sodium_memcmp(a, b, DSM_AUTH_MAC_SIZE) ? -EACCES : 0;
}

void dsm_auth_random(void *buf, size_t len)
{
	init();
	randombytes_buf(buf, len);
}
