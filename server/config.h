/*
 * config.h - dsm-server's config file, KEY=VALUE lines that set its long
 * options (room: server protocol).  See config.c.
 */
#ifndef DSM_SERVER_CONFIG_H
#define DSM_SERVER_CONFIG_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

/* A key is this and the long option's name upper-cased, '-' as '_':
 * DSM_MAX_CONNECTIONS sets --max-connections. */
#define CONFIG_KEY_PREFIX "DSM_"
/* Room for the longest key a name can make. */
#define CONFIG_KEY_MAX 64
/* A config file is a few KiB: the cap keeps --config /dev/zero from
 * filling memory. */
#define CONFIG_MAX_BYTES (1 << 20)

/* One setting of the file, as config_parse hands it over. */
struct config_setting {
	const struct option *opt; /* its entry in the option table */
	const char *value;        /* NULL: a flag set to yes */
	const char *where;        /* "PATH:LINE: KEY", to begin messages */
	unsigned line;
};

/* Applies one setting; nonzero refuses it, and stops the parse. */
typedef int (*config_apply_fn)(void *arg, const struct config_setting *s);

struct config {
	const struct option *opts;       /* getopt_long's table: the keys */
	const char *const *cmdline_only; /* names the file may not set;
					  * NULL-terminated */
	config_apply_fn apply;
	void *arg;
	char *text;     /* config_read's copy of the file, which the
			 * values point into until config_free */
};

/* opt's key ("DSM_LISTEN" for "listen") into key; -ENAMETOOLONG if it
 * does not fit in len. */
int config_key(const char *name, char *key, size_t len);

/* Whether the file may set opt: not if c->cmdline_only names it. */
bool config_settable(const struct config *c, const struct option *opt);

/*
 * Every setting of text (the file at path, cut up in place: the values
 * point into it), in order, through c->apply.  Whole lines only: "#"
 * comments, blank lines, KEY=VALUE with blanks around either ignored and
 * one pair of quotes around VALUE taken off.  An empty VALUE leaves the
 * option unset; a flag's is yes/no, true/false or 1/0.  A key that is no
 * option, or is in c->cmdline_only, or comes twice, is refused.  0, or
 * -EINVAL with "PATH:LINE: KEY: why" in err (a refusal of apply's is
 * "PATH:LINE: KEY: refused").
 */
int config_parse(const struct config *c, const char *path, char *text,
		 char *err, size_t errlen);

/* The file at path read into c->text (at most CONFIG_MAX_BYTES), then
 * config_parse.  0, or nonzero with a message naming path in err. */
int config_read(struct config *c, const char *path, char *err,
		size_t errlen);

/* Frees c->text: the values given to apply are gone after it. */
void config_free(struct config *c);

#endif /* DSM_SERVER_CONFIG_H */
