/*
 * main.c - agentsupd's command line: read and check the config, then hand
 * over to the loop in daemon.c.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "envload.h"
#include "spawn.h"
#include "text.h"
#include "util.h"

#define EXIT_USAGE     64
#define EXIT_CANTCREAT 73 /* the control socket cannot be had */
#define EXIT_CONFIG    78

static void
usage(FILE *f)
{
	fprintf(f, "usage: agentsupd [-c DIR] [--socket PATH] [--seed N] "
	           "[--check] [--version]\n"
	           "  -c, --config DIR   the supervisor.d directory "
	           "(default ./supervisor.d)\n"
	           "      --socket PATH  the control socket (also "
	           "AGENTSUP_SOCKET)\n"
	           "      --seed N       seed the backoff jitter (a run can be "
	           "replayed)\n"
	           "      --check        validate DIR, print the tree, exit 0 "
	           "or 78\n"
	           "exit: 0 shutdown or drain done, 64 usage, 70 internal "
	           "error,\n"
	           "  73 the control socket cannot be created, a live "
	           "agentsupd holds it,\n"
	           "     the state store cannot be used or the metrics "
	           "address cannot be bound,\n"
	           "  75 the root gave up, 78 bad config, 79 the root's "
	           "budget is spent\n");
}

/* A random seed for the jitter when none is given; printed at start-up. */
static uint64_t
random_seed(void)
{
	uint64_t seed;

	if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == sizeof seed)
		return seed;
	return (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
}

static int
parse_seed(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	return *s == '\0' || *end != '\0' || errno != 0 || *s == '-' ? -1 : 0;
}

static struct config *
load_or_report(const char *dir)
{
	struct config_errors errs = {0};
	struct config *cfg = config_load(dir, &errs);
	char *why;

	for (size_t i = 0; i < errs.count; i++)
		/* the words it quotes from a file (a key, a value, a
		 * name) escaped: a newline in a file forges no log line */
		text_term_line(stderr, "", errs.msgs[i], strlen(errs.msgs[i]));
	if (cfg == NULL)
		fprintf(stderr,
		        "agentsupd: %zu error%s in %s: nothing started\n",
		        errs.total, errs.total == 1 ? "" : "s", dir);
	config_errors_clear(&errs);
	if (cfg != NULL && spawn_check_ids(cfg->root, &why) < 0) {
		fprintf(stderr, "agentsupd: %s: nothing started\n", why);
		free(why);
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

/* --check's warnings of unreadable env_files, each said once: the copies
 * of an `instances: 50` worker, or fifty workers given one file by
 * `defaults:`, all read it. */
struct check_warned {
	char *why, *first;
	size_t more;
};

struct check_warnings {
	struct check_warned *v;
	size_t n;
};

static void
check_warn(struct check_warnings *w, const char *path, const char *why)
{
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->v[i].why, why) == 0) {
			w->v[i].more++;
			return;
		}
	w->v = xreallocarray(w->v, w->n + 1, sizeof *w->v);
	w->v[w->n++] = (struct check_warned){xstrdup(why), xstrdup(path), 0};
}

/* Whether file is an executable regular file (for this user). */
static bool
check_executable(const char *file)
{
	struct stat st;

	return stat(file, &st) == 0 && S_ISREG(st.st_mode) &&
	       access(file, X_OK) == 0;
}

/* The PATH a worker's command is looked up in: its own environment's,
 * else agentsupd's (spawn_env merges them so). */
static const char *
check_path(const struct spec *s)
{
	const char *p = getenv("PATH");

	for (char **e = s->env; e != NULL && *e != NULL; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			p = *e + 5;
	return p != NULL ? p : "/usr/local/bin:/usr/bin:/bin";
}

/* Whether s's command would be found as its start looks for it: a path
 * (from its directory when relative), or a name in its PATH. */
static bool
check_command_found(const struct spec *s)
{
	const char *cmd = s->argv[0], *p = check_path(s);
	char file[PATH_MAX];
	int n;

	if (strchr(cmd, '/') != NULL) {
		n = cmd[0] != '/' && s->directory != NULL
		            ? snprintf(file, sizeof file, "%s/%s", s->directory,
		                       cmd)
		            : snprintf(file, sizeof file, "%s", cmd);
		return n > 0 && (size_t)n < sizeof file &&
		       check_executable(file);
	}
	for (size_t len; *p != '\0'; p += len + (p[len] == ':')) {
		len = strcspn(p, ":");
		n = snprintf(file, sizeof file, "%.*s/%s", (int)len,
		             len ? p : ".", cmd);
		if (n > 0 && (size_t)n < sizeof file && check_executable(file))
			return true;
	}
	return false;
}

/* --check: what a start of s would need, looked at now (as this user: a
 * warning, not an error, since agentsupd may run as another): its
 * env_files read, its directory there, its command found. A program that
 * fails at every start spends its supervisor's intensity within a second
 * (a folder of lone files: the whole tree, exit 75). */
static void
check_starts(struct check_warnings *w, const struct spec *s, const char *path)
{
	char why[640], ewhy[512], **v, *sub;
	struct stat st;
	int err = 0;

	if (s->env_files != NULL &&
	    envload_read(s, &v, ewhy, sizeof ewhy) < 0) {
		snprintf(why, sizeof why,
		         "%s (its starts fail until it can be read)", ewhy);
		check_warn(w, path, why);
	} else if (s->env_files != NULL) {
		config_free_strv(v);
	}
	if (s->directory != NULL)
		err = stat(s->directory, &st) < 0 ? errno
		      : !S_ISDIR(st.st_mode)      ? ENOTDIR
		                                  : 0;
	if (err != 0) {
		snprintf(why, sizeof why,
		         "directory %s: %s (its starts fail until it is made)",
		         s->directory, strerror(err));
		check_warn(w, path, why);
	} else if (s->argv != NULL && s->argv[0] != NULL &&
	           !check_command_found(s)) {
		snprintf(why, sizeof why,
		         "command %s: not found, or not executable%s (its "
		         "starts fail until it is there)",
		         s->argv[0],
		         strchr(s->argv[0], '/') != NULL ? "" : " in its PATH");
		check_warn(w, path, why);
	}
	if (s->tmpl != NULL) {
		sub = xasprintf("%s/(template)", path);
		check_starts(w, s->tmpl, sub);
		free(sub);
	}
	for (size_t i = 0; i < s->nchildren; i++) {
		sub = xasprintf("%s/%s", path, s->children[i]->name);
		check_starts(w, s->children[i], sub);
		free(sub);
	}
}

static void
check_starts_report(const struct spec *root)
{
	struct check_warnings w = {NULL, 0};

	check_starts(&w, root, root->name);
	for (size_t i = 0; i < w.n; i++) {
		fprintf(stderr, "agentsupd: warning: %s", w.v[i].first);
		if (w.v[i].more > 0)
			fprintf(stderr, " (and %zu more)", w.v[i].more);
		fprintf(stderr, ": %s\n", w.v[i].why);
		free(w.v[i].why);
		free(w.v[i].first);
	}
	free(w.v);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"check", no_argument, NULL, 'k'},
	        {"socket", required_argument, NULL, 's'},
	        {"seed", required_argument, NULL, 'S'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {NULL, 0, NULL, 0},
	};
	struct daemon d = {0};
	const char *sock = NULL;
	bool check = false, seeded = false;
	int ch, rc;

	/* a long-lived daemon: a big answer's buffer (a status, the dead
	 * letters) goes back to the kernel when freed, instead of raising
	 * the heap's high-water mark for good (glibc's dynamic threshold) */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	d.config_dir = "supervisor.d";
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			d.config_dir = optarg;
			break;
		case 'k':
			check = true;
			break;
		case 's':
			sock = optarg;
			break;
		case 'S':
			if (parse_seed(optarg, &d.seed) < 0) {
				fprintf(stderr, "agentsupd: --seed: want a "
				                "whole number\n");
				return EXIT_USAGE;
			}
			seeded = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("agentsupd %s\n", AGENTSUP_VERSION);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((d.cfg = load_or_report(d.config_dir)) == NULL)
		return EXIT_CONFIG;
	if (check) {
		check_starts_report(d.cfg->root);
		config_print(d.cfg, stdout);
		config_free(d.cfg);
		return 0;
	}
	if (!seeded)
		d.seed = random_seed();
	if (daemon_init(&d, sock) < 0) {
		daemon_free(&d);
		return EXIT_CANTCREAT;
	}
	rc = daemon_run(&d);
	daemon_free(&d);
	return rc;
}
