/*
 * confdir.c - supervisor.d/ read from disk: the only impure part of loading
 * a configuration. Only regular files are read (a FIFO, a directory or a
 * device named x.yaml is an error, never a wait), each at most
 * CONFIG_MAX_FILE_BYTES and all together at most CONFIG_MAX_DIR_BYTES; the
 * bytes then go to config_parse, which never touches the disk.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "confdir.h"
#include "config.h"
#include "util.h"

extern char **environ;

static const char *
confdir_type(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "a device";
	return "not a regular file";
}

static void
confdir_push(struct confdir *cd, char *path, char *data, size_t len)
{
	cd->files = xreallocarray(cd->files, cd->n + 1, sizeof *cd->files);
	cd->files[cd->n++] = (struct config_source){path, data, len};
}

/* The whole file into a buffer of its own, at most max bytes. */
static int
confdir_slurp(int fd, size_t size, size_t max, char **data, size_t *len)
{
	size_t cap = (size < max ? size : max) + 1, n = 0;
	char *buf = xmalloc(cap + 1);

	for (;;) {
		ssize_t r;

		if (n == cap) { /* it grew since fstat: read on, to max + 1 */
			cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			buf = xrealloc(buf, cap + 1);
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max)
			break;
	}
	buf[n] = '\0';
	*data = buf;
	*len = n;
	return 0;
}

/* One regular file, or an error that says why not; `room` is what the
 * directory's cap leaves. */
static int
confdir_read_file(struct confdir *cd, const char *path, size_t room,
                  struct config_errors *errs)
{
	size_t max =
	        room < CONFIG_MAX_FILE_BYTES ? room : CONFIG_MAX_FILE_BYTES;
	struct stat st;
	char *data;
	size_t len;
	int fd;

	/* links are followed (a Kubernetes ConfigMap is a tree of them);
	 * O_NONBLOCK: opening a FIFO never waits, and fstat refuses it */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		config_errors_add(errs, path, 0, 0, "%s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		config_errors_add(errs, path, 0, 0, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		config_errors_add(errs, path, 0, 0,
		                  "%s (agentsupd reads only regular files)",
		                  confdir_type(st.st_mode));
		close(fd);
		return -1;
	}
	if (confdir_slurp(fd, (size_t)st.st_size, max, &data, &len) < 0) {
		config_errors_add(errs, path, 0, 0, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (len > max) {
		free(data);
		if (max == CONFIG_MAX_FILE_BYTES)
			config_errors_add(
			        errs, path, 0, 0,
			        "more than the %u bytes a file may hold",
			        CONFIG_MAX_FILE_BYTES);
		else
			config_errors_add(errs, path, 0, 0,
			                  "the files hold more than %u bytes "
			                  "together",
			                  CONFIG_MAX_DIR_BYTES);
		return -1;
	}
	confdir_push(cd, xstrdup(path), data, len);
	return 0;
}

int
confdir_read_paths(const char *const *paths, size_t n, struct confdir *cd,
                   struct config_errors *errs)
{
	size_t total = 0, before = errs->total;

	cd->files = NULL;
	cd->n = 0;
	if (n > CONFIG_MAX_FILES) {
		config_errors_add(errs, paths[0], 0, 0,
		                  "%zu files, more than %d", n,
		                  CONFIG_MAX_FILES);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (confdir_read_file(cd, paths[i],
		                      CONFIG_MAX_DIR_BYTES - total, errs) == 0)
			total += cd->files[cd->n - 1].len;
		else if (total >= CONFIG_MAX_DIR_BYTES)
			break;
	}
	if (errs->total > before) {
		config_errors_finish(errs);
		confdir_free(cd);
		return -1;
	}
	return 0;
}

static bool
confdir_is_yaml(const char *n)
{
	size_t l = strlen(n);

	if (n[0] == '.')
		return false;
	return (l > 5 && strcmp(n + l - 5, ".yaml") == 0) ||
	       (l > 4 && strcmp(n + l - 4, ".yml") == 0);
}

static int
confdir_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.yaml / *.yml names of dir as paths, sorted, at most the cap. */
static char **
confdir_list(const char *dir, size_t *np, struct config_errors *errs)
{
	struct dirent *de;
	char **paths = NULL;
	size_t n = 0;
	DIR *d;

	if ((d = opendir(dir)) == NULL) {
		/* a new user's first run: say what was looked for */
		config_errors_add(errs, dir, 0, 0,
		                  "cannot read the config directory: %s "
		                  "(-c DIR names another)",
		                  strerror(errno));
		return NULL;
	}
	while ((de = readdir(d)) != NULL) {
		if (!confdir_is_yaml(de->d_name))
			continue;
		if (n == CONFIG_MAX_FILES) {
			config_errors_add(errs, dir, 0, 0,
			                  "more than %d *.yaml or *.yml files",
			                  CONFIG_MAX_FILES);
			break;
		}
		paths = xreallocarray(paths, n + 1, sizeof(char *));
		paths[n++] = xasprintf("%s/%s", dir, de->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(paths, n, sizeof(char *), confdir_strcmp);
	*np = n;
	return paths;
}

int
confdir_read(const char *dir, struct confdir *cd, struct config_errors *errs)
{
	size_t n = 0, before = errs->total;
	char **paths = confdir_list(dir, &n, errs);
	int rc = -1;

	cd->files = NULL;
	cd->n = 0;
	if (n == 0 && errs->total == before)
		config_errors_add(errs, dir, 0, 0, "no *.yaml or *.yml files");
	if (errs->total == before)
		rc = confdir_read_paths((const char *const *)paths, n, cd,
		                        errs);
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	return rc;
}

void
confdir_free(struct confdir *cd)
{
	for (size_t i = 0; i < cd->n; i++) {
		free((char *)cd->files[i].name);
		free((char *)cd->files[i].data);
	}
	free(cd->files);
	cd->files = NULL;
	cd->n = 0;
}

static struct config *
confdir_parse(struct confdir *cd, struct config_errors *errs)
{
	struct config *cfg;

	cfg = config_parse(cd->files, cd->n, (const char *const *)environ,
	                   errs);
	confdir_free(cd);
	return cfg;
}

struct config *
config_load(const char *dir, struct config_errors *errs)
{
	struct confdir cd;

	if (confdir_read(dir, &cd, errs) < 0)
		return NULL;
	return confdir_parse(&cd, errs);
}

struct config *
config_load_socket(const char *dir, struct config_errors *errs, char **socket)
{
	struct confdir cd;
	struct config *cfg;

	*socket = NULL;
	if (confdir_read(dir, &cd, errs) < 0)
		return NULL;
	cfg = config_parse_socket(cd.files, cd.n, (const char *const *)environ,
	                          errs, socket);
	confdir_free(&cd);
	return cfg;
}

struct config *
config_load_files(const char *const *paths, size_t n,
                  struct config_errors *errs)
{
	struct confdir cd;

	if (confdir_read_paths(paths, n, &cd, errs) < 0)
		return NULL;
	return confdir_parse(&cd, errs);
}
