/*
 * addr.h - where the registry is and how to log in to it (room:
 * registry).  See addr.c.
 */
#ifndef DSM_REG_ADDR_H
#define DSM_REG_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DSM_REG_DEFAULT_PORT 6379

/*
 * Where the registry is, and how to log in to it.  A Redis with
 * requirepass or ACL users wants AUTH first: pass is sent right after
 * every connect (and reconnect), by the synchronous and the asynchronous
 * side alike.  It never appears in a message: url is what messages show,
 * with the password as "***".
 */
#define DSM_REG_PASS_MAX 512
struct dsm_reg_addr {
	char host[256];
	uint16_t port;
	char user[128];         /* ACL user; empty: Redis's default user */
	char pass[DSM_REG_PASS_MAX]; /* empty: no AUTH */
	bool pass_in_url;       /* ...else from the password file */
	char pass_opt[64];      /* how this program takes a password file,
				 * for messages: "--registry-password-file" */
	char url[320];          /* as given, password redacted */
};

/* "redis://[[USER]:PASSWORD@]HOST[:PORT][/]" or "HOST[:PORT]"; '%XX' in
 * USER and PASSWORD stands for the byte XX.  0 or -EINVAL. */
int dsm_reg_parse_url(const char *url, struct dsm_reg_addr *a);
/* url with any password replaced by "***", for messages: also for a url
 * that does not parse. */
const char *dsm_reg_redact(const char *url, char *buf, size_t len);
/*
 * The registry at url, with the password in pass_file if not NULL (the
 * file's first line; a file others may read is refused, as auth.h's
 * secret file is).  pass_opt names how this program is given a password
 * file ("--registry-password-file"), for messages.  A password both in
 * url and in a file is an error.  0, or -errno with a message in err.
 */
int dsm_reg_addr_init(struct dsm_reg_addr *a, const char *url,
		      const char *pass_file, const char *pass_opt,
		      char *err, size_t errlen);
/* Forget the password (the memory it was in, too). */
void dsm_reg_addr_wipe(struct dsm_reg_addr *a);
/* AUTH [user] password as argv for hiredis: its argc, 0 if a has no
 * password.  The pointers are into a. */
int dsm_reg_auth_argv(const struct dsm_reg_addr *a, const char *argv[3],
		      size_t len[3]);
/* What to tell the operator when Redis answers AUTH (or, with no
 * password sent, a first command) with the error reply: wrong password,
 * a password missing or one given to a Redis that has none. */
void dsm_reg_auth_error(const struct dsm_reg_addr *a, const char *reply,
			char *err, size_t errlen);
/* Whether an error reply means "log in first". */
bool dsm_reg_noauth(const char *reply);

#endif /* DSM_REG_ADDR_H */
