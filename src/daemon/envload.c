/*
 * envload.c - a worker's `env_file:` read at each of its starts, so that a
 * key rotated in the file is the next start's (as systemd's
 * EnvironmentFile=). A file is read whole before the spawn, bounded, and
 * never blocks the loop (a FIFO named .env is refused, not waited on); one
 * that cannot be read fails the start, with its name and why.
 */
#include <errno.h>
#include <stdbool.h>
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
envload_file(const char *path, int nofollow, char *buf, char *why, size_t len)
{
	struct stat st;
	ssize_t n, got = 0;
	int fd, err;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY |
	                             nofollow)) < 0) {
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

#define ENVLOAD_HOPS 40 /* symlinks followed on one path, as the kernel */

/* Whether a directory may hand a file to a worker of another user: root's
 * or agentsupd's, and writable by no one else (a sticky one, as /tmp, may
 * be: its entries are their owners'). */
static bool
envload_dir_trusted(const struct stat *st)
{
	return (st->st_uid == 0 || st->st_uid == geteuid()) &&
	       (!(st->st_mode & (S_IWGRP | S_IWOTH)) ||
	        (st->st_mode & S_ISVTX));
}

/* The next component of *rest (cut off in place), or NULL at the end. */
static char *
envload_component(char **rest)
{
	char *c;

	while (**rest == '/')
		(*rest)++;
	if (**rest == '\0')
		return NULL;
	c = *rest;
	*rest += strcspn(*rest, "/");
	if (**rest == '/')
		*(*rest)++ = '\0';
	return c;
}

/* For a worker that runs as another user, agentsupd reads its env_file as
 * root: a directory on the path that someone else may write (the worker's
 * own), or a symlink someone else made, would let the worker swap in a
 * link to a file of root's that it may not read and get its lines in its
 * environment. So the path is resolved here as the kernel would, one
 * component at a time: every directory passed through (symlinks' targets
 * included) must be trusted, every symlink followed must be root's or
 * agentsupd's. The resolved path (no symlink left: opened with
 * O_NOFOLLOW), or NULL with why. */
static char *
envload_resolve(const char *path, char *why, size_t len)
{
	char cwd[4096], *todo, *rest, *comp, *done, *next;
	struct stat st;
	int hops = 0, err = EACCES;
	bool missing;

	if (path[0] != '/' && getcwd(cwd, sizeof cwd) == NULL) {
		snprintf(why, len, "getcwd: %s", strerror(errno));
		return NULL;
	}
	if (path[0] == '\0' || path[strlen(path) - 1] == '/') {
		snprintf(why, len, "%s", strerror(ENOTDIR));
		errno = ENOTDIR; /* a file's path, not a directory's */
		return NULL;
	}
	todo = path[0] == '/' ? xstrdup(path) : xasprintf("%s/%s", cwd, path);
	done = xstrdup("");
	for (rest = todo; (comp = envload_component(&rest)) != NULL;) {
		if (strcmp(comp, ".") == 0)
			continue;
		if (strcmp(comp, "..") == 0) { /* within what was checked */
			*(strrchr(done, '/') ? strrchr(done, '/') : done) =
			        '\0';
			continue;
		}
		if (stat(done[0] ? done : "/", &st) == 0 &&
		    !envload_dir_trusted(&st)) {
			snprintf(why, len,
			         "%s may be written by others than root: not "
			         "read for a worker that runs as another user "
			         "(a symlink there would hand it any file of "
			         "root's)",
			         done[0] ? done : "/");
			goto refused;
		}
		next = xasprintf("%s/%s", done, comp);
		if ((missing = lstat(next, &st) < 0) && *rest != '\0') {
			/* a directory missing on the way: one made there before
			 * the open (a symlink in /tmp) would never be checked
			 */
			err = errno;
			snprintf(why, len, "%s: %s", next, strerror(err));
			free(next);
			goto refused;
		}
		if (missing || !S_ISLNK(st.st_mode)) {
			free(done); /* a directory, or the file (missing: open
			             * says; O_NOFOLLOW refuses a link put
			             * there) */
			done = next;
			continue;
		}
		if ((st.st_uid != 0 && st.st_uid != geteuid()) ||
		    ++hops > ENVLOAD_HOPS) {
			snprintf(
			        why, len,
			        hops > ENVLOAD_HOPS
			                ? "%s: too many symlinks"
			                : "%s is a symlink of another user's: "
			                  "not followed for a worker that runs "
			                  "as another user",
			        next);
			free(next);
			goto refused;
		}
		{
			char target[4096];
			ssize_t n = readlink(next, target, sizeof target - 1);
			char *again;

			free(next);
			if (n < 0) {
				snprintf(why, len, "readlink: %s",
				         strerror(errno));
				goto refused;
			}
			target[n] = '\0';
			again = xasprintf("%s/%s", target, rest);
			free(todo);
			todo = rest = again;
			if (target[0] == '/')
				done[0] = '\0';
		}
	}
	free(todo);
	return done;
refused:
	free(todo);
	free(done);
	errno = err;
	return NULL;
}

/* One file's entries appended to *v (of *n). -1 with why. */
static int
envload_one(const struct spec *s, const char *spec_path, char ***v, size_t *n,
            char *buf, char *why, size_t len)
{
	bool optional = spec_path[0] == '-';
	const char *p = optional ? spec_path + 1 : spec_path;
	char *path, *real = NULL, fwhy[256], **got;
	size_t k = 0;
	ssize_t size;
	int err, nofollow = 0;

	path = p[0] != '/' && s->directory != NULL
	               ? xasprintf("%s/%s", s->directory, p)
	               : xstrdup(p);
	if (s->user != NULL && geteuid() == 0) {
		if ((real = envload_resolve(path, fwhy, sizeof fwhy)) == NULL) {
			err = errno;
			if (optional &&
			    err == ENOENT) { /* - : may be missing */
				free(path);
				return 0;
			}
			snprintf(why, len, "env_file %s: %s", path, fwhy);
			free(path);
			errno = err;
			return -1;
		}
		nofollow = O_NOFOLLOW; /* resolved: a link now was swapped in */
	}
	size = envload_file(real != NULL ? real : path, nofollow, buf, fwhy,
	                    sizeof fwhy);
	free(real);
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
