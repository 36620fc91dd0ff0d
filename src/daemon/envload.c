/*
 * envload.c - a worker's `env_file:` read at each of its starts, so that a
 * key rotated in the file is the next start's (as systemd's
 * EnvironmentFile=). A file is read whole before the spawn, bounded, and
 * never blocks the loop (a FIFO named .env is refused, not waited on); one
 * that cannot be read fails the start, with its name and why.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "envload.h"
#include "util.h"

/* The whole file at path into buf (CONFIG_ENVFILE_MAX + 1 bytes): its
 * length, or -1 with why and errno. */
static ssize_t
envload_file(const char *path, char *buf, char *why, size_t len)
{
	struct stat st;
	ssize_t n, got = 0;
	int fd, err;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)) <
	    0) {
		err = errno;
		snprintf(why, len, "%s", strerror(err));
		errno = err;
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		err = errno;
		snprintf(why, len, "fstat: %s", strerror(err));
		close(fd);
		errno = err;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, len, "not a regular file");
		close(fd);
		errno = EINVAL;
		return -1;
	}
	/* one byte more than the bound: a file that grew is seen */
	while (got <= (ssize_t)CONFIG_ENVFILE_MAX &&
	       (n = read(fd, buf + got,
	                 CONFIG_ENVFILE_MAX + 1 - (size_t)got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = errno;
			snprintf(why, len, "read: %s", strerror(err));
			close(fd);
			errno = err;
			return -1;
		}
		got += n;
	}
	close(fd);
	return got;
}

/* For a worker that runs as another user, agentsupd reads its env_file as
 * root: a directory on the path that someone else may write (the worker's
 * own, say) could hold a symlink to any file of root's, which the worker
 * would get in its environment. So every directory on the path as written,
 * each followed, must be root's or agentsupd's and writable by no one else
 * (a sticky one, as /tmp, may be: its entries are their owners'). 0, or -1
 * with why. */
static int
envload_trusted(const char *path, char *why, size_t len)
{
	char cwd[4096], *abs, *slash;
	struct stat st;
	int rc = 0;

	if (path[0] == '/')
		abs = xstrdup(path);
	else if (getcwd(cwd, sizeof cwd) != NULL)
		abs = xasprintf("%s/%s", cwd, path);
	else {
		snprintf(why, len, "getcwd: %s", strerror(errno));
		return -1;
	}
	for (slash = abs; rc == 0 && (slash = strchr(slash, '/')) != NULL;
	     slash++) {
		char keep = slash[1];

		slash[slash == abs ? 1 : 0] = '\0'; /* "/" itself first */
		if (stat(abs, &st) == 0 && S_ISDIR(st.st_mode) &&
		    ((st.st_uid != 0 && st.st_uid != geteuid()) ||
		     ((st.st_mode & (S_IWGRP | S_IWOTH)) &&
		      !(st.st_mode & S_ISVTX)))) {
			snprintf(why, len,
			         "%s may be written by others than root: not "
			         "read for a worker that runs as another user "
			         "(a "
			         "symlink there would hand it any file of "
			         "root's)",
			         abs);
			rc = -1;
		}
		if (slash == abs)
			slash[1] = keep;
		else
			*slash = '/';
	}
	free(abs);
	return rc;
}

/* One file's entries appended to *v (of *n). -1 with why. */
static int
envload_one(const struct spec *s, const char *spec_path, char ***v, size_t *n,
            char *buf, char *why, size_t len)
{
	bool optional = spec_path[0] == '-';
	const char *p = optional ? spec_path + 1 : spec_path;
	char *path, fwhy[256], **got;
	size_t k = 0;
	ssize_t size;
	int err;

	path = p[0] != '/' && s->directory != NULL
	               ? xasprintf("%s/%s", s->directory, p)
	               : xstrdup(p);
	if (s->user != NULL && geteuid() == 0 &&
	    envload_trusted(path, fwhy, sizeof fwhy) < 0) {
		snprintf(why, len, "env_file %s: %s", path, fwhy);
		free(path);
		errno = EACCES;
		return -1;
	}
	size = envload_file(path, buf, fwhy, sizeof fwhy);
	err = size < 0 ? errno : EINVAL;
	if (size < 0 && optional && err == ENOENT) {
		free(path);
		return 0;
	}
	if (size < 0 || config_envfile_parse(buf, (size_t)size, &got, fwhy,
	                                     sizeof fwhy) < 0) {
		snprintf(why, len, "env_file %s: %s", path, fwhy);
		free(path);
		errno = err;
		return -1;
	}
	free(path);
	while (got[k] != NULL)
		k++;
	*v = xreallocarray(*v, *n + k + 1, sizeof **v);
	memcpy(*v + *n, got, (k + 1) * sizeof *got);
	*n += k;
	free(got);
	return 0;
}

int
envload_read(const struct spec *s, char ***out, char *why, size_t len)
{
	char **v = NULL, *buf;
	size_t n = 0;
	int err;

	*out = NULL;
	if (s->env_files == NULL || s->env_files[0] == NULL)
		return 0;
	buf = xmalloc(CONFIG_ENVFILE_MAX + 1);
	for (char **f = s->env_files; *f != NULL; f++)
		if (envload_one(s, *f, &v, &n, buf, why, len) < 0) {
			err = errno;
			free(buf);
			config_free_strv(v);
			errno = err;
			return -1;
		}
	free(buf);
	*out = v;
	return 0;
}
