/*
 * auth.h - proving membership of a cluster (room: protocol).
 *
 * Servers and clients of a cluster share a secret file.  A connection
 * proves it knows the secret without sending it, in the handshake:
 *
 *   client -> HELLO       client nonce (8 random bytes)
 *   server -> HELLO reply DSM_HELLO_AUTH, server nonce (16 random bytes)
 *   client -> AUTH        HMAC-SHA256(key, "dsm-client-1" | server nonce |
 *                                          client nonce | server id)
 *   server -> AUTH reply  HMAC-SHA256(key, "dsm-server-1" | client nonce |
 *                                          server nonce | server id)
 *
 * key = SHA-256 of the secret file's bytes.  The server nonce is fresh for
 * every connection, so a recorded AUTH proves nothing on another one
 * (replay); the server's own proof tells the client it is talking to a
 * member, not to an impostor that would serve it made-up pages.  Until
 * AUTH succeeds the server answers anything else with -EACCES and closes.
 * The wire is not encrypted: see docs/design.md, "Security".
 */
#ifndef DSM_AUTH_H
#define DSM_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define DSM_AUTH_KEY_SIZE 32
#define DSM_AUTH_MAC_SIZE 32
#define DSM_AUTH_NONCE_SIZE 16
#define DSM_SECRET_MIN_BYTES 16  /* a shorter secret is refused */

struct dsm_auth_key {
	uint8_t k[DSM_AUTH_KEY_SIZE];
};

/*
 * Read the secret file at path into *key.  Refuses a file that others may
 * read (any group or other permission bit: -EPERM), one shorter than
 * DSM_SECRET_MIN_BYTES (-EINVAL), or one that cannot be read (-errno);
 * err gets a message naming the file and the fix.
 */
int dsm_auth_load(const char *path, struct dsm_auth_key *key, char *err,
		  size_t errlen);

/* The proofs above.  role is 'c' (client's AUTH) or 's' (server's reply). */
void dsm_auth_mac(const struct dsm_auth_key *key, char role,
		  const uint8_t server_nonce[DSM_AUTH_NONCE_SIZE],
		  uint64_t client_nonce, uint32_t server_id,
		  uint8_t mac[DSM_AUTH_MAC_SIZE]);

/* Constant time: 0 if equal. */
int dsm_auth_verify(const uint8_t a[DSM_AUTH_MAC_SIZE],
		    const uint8_t b[DSM_AUTH_MAC_SIZE]);

/* Fill buf with len unpredictable bytes. */
void dsm_auth_random(void *buf, size_t len);

#endif /* DSM_AUTH_H */
