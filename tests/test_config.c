/*
 * test_config.c - dsm-server's config file parser, server/config.c (room:
 * tests), driven with an option table of its own: comments, blanks,
 * quotes and flags read as documented, each setting handed over once in
 * file order; every malformed line refused with "PATH:LINE: KEY" and its
 * reason, nothing after it applied; files that cannot be read, or are no
 * text, refused with their path.  tests/test_server_config.sh runs the
 * real server on files.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"

#define PATH "t.conf"
#define LOG_MAX 1024
/* The value the test's apply refuses, as a value main.c rejects. */
#define REFUSED "refuse-me"

static const struct option opts[] = {
	{ "listen", required_argument, NULL, 'l' },
	{ "max-connections", required_argument, NULL, 'N' },
	{ "verbose", no_argument, NULL, 'V' },
	{ "config", required_argument, NULL, 'F' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};
static const char *const cmdline_only[] = { "config", "help", NULL };

/* What apply saw: "name=value@line;" per setting, "name@line;" for a
 * flag; and the last value's pointer, to check it outlives the parse. */
struct seen {
	char log[LOG_MAX];
	const char *last;
};

static int record(void *arg, const struct config_setting *s)
{
	struct seen *r = arg;
	size_t n = strlen(r->log);

	if (s->value && !strcmp(s->value, REFUSED))
		return -1;
	if (s->value)
		snprintf(r->log + n, sizeof(r->log) - n, "%s=%s@%u;",
			 s->opt->name, s->value, s->line);
	else
		snprintf(r->log + n, sizeof(r->log) - n, "%s@%u;",
			 s->opt->name, s->line);
	r->last = s->value;
	return 0;
}

static struct config make(struct seen *r)
{
	memset(r, 0, sizeof(*r));
	return (struct config){ .opts = opts, .cmdline_only = cmdline_only,
				.apply = record, .arg = r };
}

/* text parsed: its result, what was applied in r, the message in err. */
static int parse(const char *text, struct seen *r, char *err, size_t len)
{
	struct config c = make(r);
	char *copy = strdup(text);
	int rc;

	TH_CHECK(copy);
	err[0] = '\0';
	rc = config_parse(&c, PATH, copy, err, len);
	free(copy);
	return rc;
}

static void expect_ok(const char *text, const char *want_log)
{
	struct seen r;
	char err[512];
	int rc = parse(text, &r, err, sizeof(err));

	if (rc || strcmp(r.log, want_log)) {
		fprintf(stderr, "parsing:\n%s\ngave %d '%s', applied '%s' "
			"(want '%s')\n", text, rc, err, r.log, want_log);
		TH_CHECK(0);
	}
}

/* text refused with a message holding want, after applying want_log. */
static void expect_refused(const char *text, const char *want,
			   const char *want_log)
{
	struct seen r;
	char err[512];
	int rc = parse(text, &r, err, sizeof(err));

	if (rc != -EINVAL || !strstr(err, want) || strcmp(r.log, want_log)) {
		fprintf(stderr, "parsing:\n%s\ngave %d '%s', applied '%s' "
			"(want -EINVAL '%s', applied '%s')\n", text, rc, err,
			r.log, want, want_log);
		TH_CHECK(0);
	}
}

static void test_format(void)
{
	/* comments, blanks, blanks around key and value, quotes, CRLF, a
	 * last line without '\n' */
	expect_ok("# a comment\n"
		  "\n"
		  "   \t\n"
		  "  # an indented comment\n"
		  "DSM_LISTEN=127.0.0.1:7000\n"
		  " DSM_MAX_CONNECTIONS = \"64\" \r\n",
		  "listen=127.0.0.1:7000@5;max-connections=64@6;");
	expect_ok("DSM_LISTEN='10.0.0.1:7'", "listen=10.0.0.1:7@1;");
	/* '=' inside a value, '#' not at the start of a line: the value's */
	expect_ok("DSM_LISTEN=a=b # c\n", "listen=a=b # c@1;");
	/* an empty value, quoted or not, leaves the option unset */
	expect_ok("DSM_LISTEN=\nDSM_MAX_CONNECTIONS=\"\"\n", "");
	/* flags: yes/true/1 set them, no/false/0 leave them off */
	expect_ok("DSM_VERBOSE=yes\n", "verbose@1;");
	expect_ok("DSM_VERBOSE=TRUE\n", "verbose@1;");
	expect_ok("DSM_VERBOSE=1\n", "verbose@1;");
	expect_ok("DSM_VERBOSE=no\n", "");
	expect_ok("DSM_VERBOSE=false\n", "");
	expect_ok("DSM_VERBOSE=0\n", "");
	expect_ok("", "");
}

static void test_refusals(void)
{
	expect_refused("DSM_LISTEN=x:1\nDSM_BOGUS=1\nDSM_MAX_CONNECTIONS=5\n",
		       PATH ":2: DSM_BOGUS: unknown key: there is no option "
		       "--bogus", "listen=x:1@1;");
	expect_refused("LISTEN=x:1\n", PATH ":1: LISTEN: unknown key: a key "
		       "is DSM_ and an option's name", "");
	expect_refused("dsm_listen=x:1\n", PATH ":1: dsm_listen: unknown key",
		       "");
	expect_refused("DSM_=x\n", PATH ":1: DSM_: unknown key", "");
	expect_refused("DSM_LIS TEN=x\n", PATH ":1: DSM_LIS TEN: unknown key",
		       "");
	expect_refused("DSM_LISTEN x:1\n", PATH ":1: DSM_LISTEN: no '=': "
		       "want KEY=VALUE", "");
	expect_refused("DSM_CONFIG=/etc/other.conf\n", PATH ":1: DSM_CONFIG: "
		       "--config is for the command line only", "");
	expect_refused("DSM_HELP=yes\n", PATH ":1: DSM_HELP: --help is for "
		       "the command line only", "");
	expect_refused("DSM_LISTEN=a:1\n\nDSM_LISTEN=b:2\n", PATH ":3: "
		       "DSM_LISTEN: set already, at line 1", "listen=a:1@1;");
	/* an empty value sets nothing, but a second line is still a second */
	expect_refused("DSM_LISTEN=\nDSM_LISTEN=b:2\n", PATH ":2: DSM_LISTEN: "
		       "set already, at line 1", "");
	expect_refused("DSM_LISTEN=\"x:1\n", PATH ":1: DSM_LISTEN: a quote "
		       "that does not close", "");
	expect_refused("DSM_LISTEN='x:1\"\n", PATH ":1: DSM_LISTEN: a quote "
		       "that does not close", "");
	expect_refused("DSM_LISTEN=\"\n", PATH ":1: DSM_LISTEN: a quote "
		       "that does not close", "");
	expect_refused("DSM_VERBOSE=maybe\n", PATH ":1: DSM_VERBOSE: bad "
		       "value 'maybe': want yes or no", "");
	expect_refused("DSM_LISTEN=" REFUSED "\n", PATH ":1: DSM_LISTEN: "
		       "refused", "");
}

/* A stray line that is no key is not repeated: it may be a secret. */
static void test_stray_line_not_shown(void)
{
	struct seen r;
	char err[512];

	TH_CHECK(parse("DSM_LISTEN=x:1\nhunter2 is the password\n", &r, err,
		       sizeof(err)) == -EINVAL);
	TH_CHECK(strstr(err, PATH ":2: not KEY=VALUE"));
	TH_CHECK(!strstr(err, "hunter2"));
}

static void test_key(void)
{
	char key[CONFIG_KEY_MAX], small[8];

	TH_CHECK(config_key("max-connections", key, sizeof(key)) == 0);
	TH_CHECK(!strcmp(key, "DSM_MAX_CONNECTIONS"));
	TH_CHECK(config_key("listen", small, sizeof(small)) == -ENAMETOOLONG);
}

static void write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "w");

	TH_CHECK(f);
	TH_CHECK(fwrite(buf, 1, len, f) == len);
	TH_CHECK(fclose(f) == 0);
}

static void expect_read(const char *path, int want_rc, const char *want)
{
	struct seen r;
	struct config c = make(&r);
	char err[1024] = "";
	int rc = config_read(&c, path, err, sizeof(err));

	if (rc != want_rc || !strstr(err, want)) {
		fprintf(stderr, "reading %s gave %d '%s' (want %d '%s')\n",
			path, rc, err, want_rc, want);
		TH_CHECK(0);
	}
	config_free(&c);
}

static void test_files(const char *dir)
{
	char path[512], want[600], *big;
	struct seen r;
	struct config c = make(&r);
	char err[1024];

	/* read: the values live on until config_free */
	snprintf(path, sizeof(path), "%s/good.conf", dir);
	write_file(path, "DSM_LISTEN=127.0.0.1:9\n", 23);
	TH_CHECK(config_read(&c, path, err, sizeof(err)) == 0);
	TH_CHECK(r.last && !strcmp(r.last, "127.0.0.1:9"));
	config_free(&c);
	TH_CHECK(c.text == NULL);

	snprintf(path, sizeof(path), "%s/none.conf", dir);
	snprintf(want, sizeof(want), "%s: cannot read the config file: %s",
		 path, strerror(ENOENT));
	expect_read(path, -ENOENT, want);

	snprintf(want, sizeof(want), "%s: cannot read the config file: %s",
		 dir, strerror(EISDIR));
	expect_read(dir, -EISDIR, want);

	snprintf(path, sizeof(path), "%s/nul.conf", dir);
	write_file(path, "DSM_LISTEN=a:1\0\n", 16);
	snprintf(want, sizeof(want), "%s: holds a NUL byte", path);
	expect_read(path, -EINVAL, want);

	/* exactly the cap is read; a byte more is refused */
	big = malloc(CONFIG_MAX_BYTES + 1);
	TH_CHECK(big);
	memset(big, '#', CONFIG_MAX_BYTES + 1);
	big[CONFIG_MAX_BYTES - 1] = '\n';
	snprintf(path, sizeof(path), "%s/max.conf", dir);
	write_file(path, big, CONFIG_MAX_BYTES);
	expect_read(path, 0, "");
	snprintf(path, sizeof(path), "%s/big.conf", dir);
	write_file(path, big, CONFIG_MAX_BYTES + 1);
	snprintf(want, sizeof(want), "%s: larger than %d bytes", path,
		 CONFIG_MAX_BYTES);
	expect_read(path, -EFBIG, want);
	free(big);

	/* unreadable: only where permissions bind (not as root) */
	snprintf(path, sizeof(path), "%s/secret.conf", dir);
	write_file(path, "DSM_LISTEN=a:1\n", 15);
	TH_CHECK(chmod(path, 0) == 0);
	if (geteuid()) {
		snprintf(want, sizeof(want), "%s: cannot read the config "
			 "file: %s", path, strerror(EACCES));
		expect_read(path, -EACCES, want);
	} else {
		printf("SKIP: unreadable file: root reads it anyway\n");
	}
}

int main(void)
{
	char dir[] = "/tmp/dsm-test-config-XXXXXX";
	char cmd[sizeof(dir) + 16];

	test_format();
	test_refusals();
	test_stray_line_not_shown();
	test_key();
	TH_CHECK(mkdtemp(dir));
	test_files(dir);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", dir);
	printf("config_parse: ok\n");
	return 0;
}
