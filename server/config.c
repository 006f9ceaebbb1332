/*
 * config.c - dsm-server's config file, KEY=VALUE lines that set its long
 * options (room: server protocol).
 *
 * The file has no options of its own: a key is a long option of the
 * command line, found in getopt_long's own table and handed back to the
 * code that applies the command line's.  So an option added to that
 * table can be set here with no change, and a value is checked the same
 * way wherever it comes from.  The format is the one systemd's
 * EnvironmentFile reads, as deploy/dsm.conf.example was one before:
 * whole-line comments, values optionally in quotes.
 *
 * Parsing does no I/O (config_parse takes the text), so a test drives it
 * with an option table of its own.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"

/* What may stand around a key or a value; '\r' for a file written on
 * Windows, whose lines end "\r\n". */
#define BLANKS " \t\r"
/* The first read; each next one doubles it, up to CONFIG_MAX_BYTES. */
#define READ_STEP 4096

__attribute__((format(printf, 3, 4)))
static void fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* s without the blanks around it; the trailing ones are cut in place. */
static char *trim(char *s)
{
	char *end;

	s += strspn(s, BLANKS);
	end = s + strlen(s);
	while (end > s && strchr(BLANKS, end[-1]))
		end--;
	*end = '\0';
	return s;
}

/* Whether s[0..len) could be a key: upper-case letters, digits, '_'. */
static bool key_like(const char *s, size_t len)
{
	if (!len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(s[i] >= 'A' && s[i] <= 'Z') &&
		    !(s[i] >= '0' && s[i] <= '9') && s[i] != '_')
			return false;
	return true;
}

int config_key(const char *name, char *key, size_t len)
{
	size_t plen = strlen(CONFIG_KEY_PREFIX), i;

	if (plen + strlen(name) >= len)
		return -ENAMETOOLONG;
	memcpy(key, CONFIG_KEY_PREFIX, plen);
	for (i = 0; name[i]; i++) {
		char ch = name[i];

		key[plen + i] = ch == '-' ? '_' : (ch >= 'a' && ch <= 'z')
			? (char)(ch - 'a' + 'A') : ch;
	}
	key[plen + i] = '\0';
	return 0;
}

/* The option key sets: DSM_ and the option's name upper-cased, '-' as
 * '_'.  NULL, with the reason in err, for any other key. */
static const struct option *find_option(const struct config *c,
					const char *key, const char *where,
					char *err, size_t errlen)
{
	size_t plen = strlen(CONFIG_KEY_PREFIX), i;
	const char *rest = key + plen;
	char name[CONFIG_KEY_MAX];

	if (strncmp(key, CONFIG_KEY_PREFIX, plen) ||
	    !key_like(rest, strlen(rest)) || strlen(rest) >= sizeof(name)) {
		fail(err, errlen, "%s: unknown key: a key is %s and an "
		     "option's name, as %sLISTEN for --listen", where,
		     CONFIG_KEY_PREFIX, CONFIG_KEY_PREFIX);
		return NULL;
	}
	for (i = 0; rest[i]; i++)
		name[i] = rest[i] == '_' ? '-' : (rest[i] >= 'A' &&
			  rest[i] <= 'Z') ? (char)(rest[i] - 'A' + 'a')
					  : rest[i];
	name[i] = '\0';
	for (const struct option *o = c->opts; o->name; o++)
		if (!strcmp(o->name, name))
			return o;
	fail(err, errlen, "%s: unknown key: there is no option --%s "
	     "(dsm-server --help lists them)", where, name);
	return NULL;
}

bool config_settable(const struct config *c, const struct option *opt)
{
	for (const char *const *n = c->cmdline_only; n && *n; n++)
		if (!strcmp(*n, opt->name))
			return false;
	return true;
}

/* One pair of quotes around *v, as systemd allows, taken off.  -1 if a
 * quote opens and does not close. */
static int unquote(char **v)
{
	size_t len = strlen(*v);
	char q = (*v)[0];

	if (q != '"' && q != '\'')
		return 0;
	if (len < 2 || (*v)[len - 1] != q)
		return -1;
	(*v)[len - 1] = '\0';
	(*v)++;
	return 0;
}

/* A flag's value: 1 (set it), 0 (leave it off), -1 (neither). */
static int flag_value(const char *v)
{
	static const char *const on[] = { "yes", "true", "1" };
	static const char *const off[] = { "no", "false", "0" };

	for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
		if (!strcasecmp(v, on[i]))
			return 1;
		if (!strcasecmp(v, off[i]))
			return 0;
	}
	return -1;
}

/* A line with no '=': its first word is named if it looks like a key;
 * anything else is not repeated, since a stray line may be a secret
 * pasted in the wrong file. */
static int no_equals(const char *path, unsigned n, const char *line,
		     char *err, size_t errlen)
{
	size_t w = strcspn(line, BLANKS);

	if (key_like(line, w))
		fail(err, errlen, "%s:%u: %.*s: no '=': want KEY=VALUE", path,
		     n, (int)w, line);
	else
		fail(err, errlen, "%s:%u: not KEY=VALUE, nor a '#' comment",
		     path, n);
	return -EINVAL;
}

/* Line n: a comment, a blank, or a setting applied.  seen[i]: the line
 * that set option i, so that a second one is refused rather than
 * silently winning. */
static int parse_line(const struct config *c, const char *path, unsigned n,
		      char *line, unsigned *seen, char *err, size_t errlen)
{
	char where[PATH_MAX + CONFIG_KEY_MAX + 32], *eq, *key, *value;
	const struct option *opt;
	int on;

	line = trim(line);
	if (!*line || *line == '#')
		return 0;
	eq = strchr(line, '=');
	if (!eq)
		return no_equals(path, n, line, err, errlen);
	*eq = '\0';
	key = trim(line);
	value = trim(eq + 1);
	snprintf(where, sizeof(where), "%s:%u: %s", path, n, key);
	opt = find_option(c, key, where, err, errlen);
	if (!opt)
		return -EINVAL;
	if (!config_settable(c, opt)) {
		fail(err, errlen, "%s: --%s is for the command line only",
		     where, opt->name);
		return -EINVAL;
	}
	if (seen[opt - c->opts]) {
		fail(err, errlen, "%s: set already, at line %u", where,
		     seen[opt - c->opts]);
		return -EINVAL;
	}
	seen[opt - c->opts] = n;
	if (unquote(&value)) {
		fail(err, errlen, "%s: a quote that does not close", where);
		return -EINVAL;
	}
	if (!*value)
		return 0; /* unset: the option's default */
	if (opt->has_arg == no_argument) {
		on = flag_value(value);
		if (on < 0) {
			fail(err, errlen, "%s: bad value '%s': want yes or no "
			     "(true or false, 1 or 0)", where, value);
			return -EINVAL;
		}
		if (!on)
			return 0;
		value = NULL;
	}
	if (c->apply(c->arg, &(struct config_setting){
		.opt = opt, .value = value, .where = where, .line = n })) {
		fail(err, errlen, "%s: refused", where);
		return -EINVAL;
	}
	return 0;
}

/* The next line of *text, cut off in place; NULL at the end. */
static char *next_line(char **text)
{
	char *line = *text, *nl;

	if (!*line)
		return NULL;
	nl = strchr(line, '\n');
	if (nl) {
		*nl = '\0';
		*text = nl + 1;
	} else {
		*text = line + strlen(line);
	}
	return line;
}

int config_parse(const struct config *c, const char *path, char *text,
		 char *err, size_t errlen)
{
	size_t nopts = 0;
	unsigned *seen, n = 0;
	char *line;
	int rc = 0;

	while (c->opts[nopts].name)
		nopts++;
	seen = calloc(nopts ? nopts : 1, sizeof(*seen));
	if (!seen) {
		fail(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	while (!rc && (line = next_line(&text)))
		rc = parse_line(c, path, ++n, line, seen, err, errlen);
	free(seen);
	return rc;
}

/* All of f, NUL-terminated, into *text; -EFBIG past CONFIG_MAX_BYTES. */
static int read_all(FILE *f, char **text, size_t *len)
{
	size_t cap = READ_STEP, n = 0;
	char *buf = NULL, *bigger;

	for (;;) {
		bigger = realloc(buf, cap + 1);
		if (!bigger) {
			free(buf);
			return -ENOMEM;
		}
		buf = bigger;
		errno = 0;
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap || n > CONFIG_MAX_BYTES)
			break;
		cap = cap * 2 > CONFIG_MAX_BYTES ? CONFIG_MAX_BYTES + 1
						 : cap * 2;
	}
	if (ferror(f) || n > CONFIG_MAX_BYTES) {
		int err = n > CONFIG_MAX_BYTES ? -EFBIG
					       : errno ? -errno : -EIO;

		free(buf);
		return err;
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
}

int config_read(struct config *c, const char *path, char *err,
		size_t errlen)
{
	FILE *f = fopen(path, "r");
	size_t len;
	int rc;

	if (!f) {
		rc = -errno;
		fail(err, errlen, "%s: cannot read the config file: %s", path,
		     strerror(-rc));
		return rc;
	}
	rc = read_all(f, &c->text, &len);
	fclose(f);
	if (rc == -EFBIG) {
		fail(err, errlen, "%s: larger than %d bytes: not a config "
		     "file", path, CONFIG_MAX_BYTES);
		return rc;
	}
	if (rc) {
		fail(err, errlen, "%s: cannot read the config file: %s", path,
		     strerror(-rc));
		return rc;
	}
	if (memchr(c->text, '\0', len)) {
		fail(err, errlen, "%s: holds a NUL byte: not a text file",
		     path);
		return -EINVAL;
	}
	return config_parse(c, path, c->text, err, errlen);
}

void config_free(struct config *c)
{
	free(c->text);
	c->text = NULL;
}
