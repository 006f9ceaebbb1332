/*
 * addr.c - where the registry is and how to log in to it (room: registry):
 * parsing redis:// URLs, redacting their passwords, reading the password
 * file, and naming a refused AUTH.  No I/O beyond the password file.
 */
#include "addr.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---- names ------------------------------------------------------------ */

/* USER or PASSWORD of a url: '%XX' is the byte XX, so that a password
 * may hold '@' or ':'.  A NUL byte is refused. */
static int unescape(const char *s, size_t n, char *out, size_t cap)
{
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned int c = (unsigned char)s[i];

		if (c == '%') {
			if (n - i < 3 || !isxdigit((unsigned char)s[i + 1]) ||
			    !isxdigit((unsigned char)s[i + 2]) ||
			    sscanf(s + i + 1, "%2x", &c) != 1 || !c)
				return -EINVAL;
			i += 2;
		}
		if (j + 1 >= cap)
			return -EINVAL;
		out[j++] = c;
	}
	out[j] = '\0';
	return 0;
}

/* "USER:PASSWORD" (USER may be empty, PASSWORD may not), or "USER"
 * alone, whose password comes from a file.  Messages show a lone word as
 * "***" (dsm_reg_redact): someone may have put a password there. */
static int parse_userinfo(const char *s, size_t n, struct dsm_reg_addr *a)
{
	const char *colon = memchr(s, ':', n);

	if (!n || (colon && colon == s + n - 1))
		return -EINVAL;
	if (!colon)
		return unescape(s, n, a->user, sizeof(a->user));
	if (unescape(s, colon - s, a->user, sizeof(a->user)) ||
	    unescape(colon + 1, s + n - colon - 1, a->pass, sizeof(a->pass)))
		return -EINVAL;
	a->pass_in_url = true;
	return 0;
}

int dsm_reg_parse_url(const char *url, struct dsm_reg_addr *a)
{
	const char *p = url, *at;
	char hostport[300];
	size_t n;

	memset(a, 0, sizeof(*a));
	if (!url || !*url || strlen(url) >= sizeof(a->url) - 3)
		return -EINVAL;
	dsm_reg_redact(url, a->url, sizeof(a->url));
	if (!strncmp(p, "redis://", 8)) {
		p += 8;
		/* the last '@': a password might hold an unescaped one */
		at = strrchr(p, '@');
		if (at && parse_userinfo(p, at - p, a))
			goto inval;
		if (at)
			p = at + 1;
	}
	n = strcspn(p, "/");
	if (!n || n >= sizeof(hostport) || (p[n] && strcmp(p + n, "/")))
		goto inval; /* no path or database */
	memcpy(hostport, p, n);
	hostport[n] = '\0';
	/* "host:port" and "[v6]:port"; a bare IPv6 address needs its port */
	if (hostport[0] == '[' || strchr(hostport, ':')) {
		if (dsm_parse_hostport(hostport, a->host, sizeof(a->host),
				       &a->port))
			goto inval;
		return 0;
	}
	if (n >= sizeof(a->host) || strchr(hostport, '@'))
		goto inval;
	memcpy(a->host, hostport, n + 1);
	a->port = DSM_REG_DEFAULT_PORT;
	return 0;
inval:
	dsm_reg_addr_wipe(a);
	return -EINVAL;
}

const char *dsm_reg_redact(const char *url, char *buf, size_t len)
{
	const char *p = url ? url : "", *at = strrchr(p, '@');
	size_t scheme = strncmp(p, "redis://", 8) ? 0 : 8;
	const char *colon;

	if (!at || at < p + scheme) {
		snprintf(buf, len, "%s", p);
		return buf;
	}
	/* keep the scheme and a user name; anything else before the '@'
	 * may be (part of) a password */
	colon = memchr(p + scheme, ':', at - p - scheme);
	if (colon)
		snprintf(buf, len, "%.*s:***%s", (int)(colon - p), p, at);
	else
		snprintf(buf, len, "%.*s***%s", (int)scheme, p, at);
	return buf;
}

/* ---- logging in -------------------------------------------------------- */

void dsm_reg_addr_wipe(struct dsm_reg_addr *a)
{
	explicit_bzero(a->pass, sizeof(a->pass));
}

/* The password is the file's one line: an editor's final newline is
 * not part of it, but a second line is a mistake worth naming. */
static int read_password(struct dsm_reg_addr *a, const char *path,
			 char *err, size_t errlen)
{
	char buf[DSM_REG_PASS_MAX];
	size_t len;
	int rc = dsm_private_file_read(path, "registry password file", buf,
				       sizeof(buf), &len, err, errlen);

	if (rc)
		goto out;
	if (len && buf[len - 1] == '\n')
		len--;
	if (len && buf[len - 1] == '\r')
		len--;
	rc = -EINVAL;
	if (len == sizeof(buf))
		snprintf(err, errlen, "registry password file %s: longer than "
			 "%d bytes", path, DSM_REG_PASS_MAX - 1);
	else if (!len)
		snprintf(err, errlen, "registry password file %s is empty",
			 path);
	else if (memchr(buf, '\n', len) || memchr(buf, '\0', len))
		snprintf(err, errlen, "registry password file %s: want the "
			 "password alone on one line", path);
	else
		rc = 0;
	if (!rc) {
		memcpy(a->pass, buf, len);
		a->pass[len] = '\0';
	}
out:
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

int dsm_reg_addr_init(struct dsm_reg_addr *a, const char *url,
		      const char *pass_file, const char *pass_opt,
		      char *err, size_t errlen)
{
	char shown[320];
	int rc;

	if (dsm_reg_parse_url(url, a)) {
		snprintf(err, errlen, "registry '%s': expected "
			 "redis://[[USER]:PASSWORD@]HOST[:PORT]",
			 dsm_reg_redact(url, shown, sizeof(shown)));
		return -EINVAL;
	}
	snprintf(a->pass_opt, sizeof(a->pass_opt), "%s", pass_opt);
	if (!pass_file && a->user[0] && !a->pass_in_url) {
		snprintf(err, errlen, "registry %s names a user but no "
			 "password: give the password with %s", a->url,
			 pass_opt);
		return -EINVAL;
	}
	if (!pass_file)
		return 0;
	if (a->pass_in_url) {
		snprintf(err, errlen, "registry %s: a password in the URL and "
			 "another in %s: give one (the file: a URL shows in "
			 "ps)", a->url, pass_opt);
		dsm_reg_addr_wipe(a);
		return -EINVAL;
	}
	rc = read_password(a, pass_file, err, errlen);
	if (rc)
		dsm_reg_addr_wipe(a);
	return rc;
}

int dsm_reg_auth_argv(const struct dsm_reg_addr *a, const char *argv[3],
		      size_t len[3])
{
	int n = 0;

	if (!a->pass[0])
		return 0;
	argv[n++] = "AUTH";
	if (a->user[0])
		argv[n++] = a->user;
	argv[n++] = a->pass;
	for (int i = 0; i < n; i++)
		len[i] = strlen(argv[i]);
	return n;
}

bool dsm_reg_noauth(const char *reply)
{
	return reply && !strncmp(reply, "NOAUTH", 6);
}

static bool starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

void dsm_reg_auth_error(const struct dsm_reg_addr *a, const char *reply,
			char *err, size_t errlen)
{
	const char *from = a->pass_in_url ? "the password in the URL"
					  : a->pass_opt;

	reply = reply ? reply : "";
	if (dsm_reg_noauth(reply))
		snprintf(err, errlen, "registry %s requires a password: put "
			 "it in a file (mode 0600) and give that with %s",
			 a->url, a->pass_opt);
	/* Redis 6+ and older Redis say these two differently */
	else if (starts(reply, "WRONGPASS") ||
		 starts(reply, "ERR invalid password"))
		snprintf(err, errlen, "registry %s: password refused; check %s",
			 a->url, from);
	else if (starts(reply, "ERR AUTH <password> called without") ||
		 starts(reply, "ERR Client sent AUTH, but no password"))
		snprintf(err, errlen, "registry %s has no password set, but "
			 "%s gives one: drop it, or set requirepass on that "
			 "Redis", a->url, from);
	else if (a->pass[0] && strstr(reply, a->pass))
		snprintf(err, errlen, "registry %s refused AUTH (its reply "
			 "quotes the password, so it is not shown)", a->url);
	else
		snprintf(err, errlen, "registry %s refused AUTH: %s", a->url,
			 reply);
}
