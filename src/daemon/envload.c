/*
 * envload.c - a worker's `env_file:` read at each of its starts, so that a
 * key rotated in the file is the next start's (as systemd's
 * EnvironmentFile=). A file is read whole before the spawn, bounded, and
 * never blocks the loop (a FIFO named .env is refused, not waited on); one
 * that cannot be read fails the start, with its name and why.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "envload.h"
#include "util.h"

/* The whole file open at fd (closed here) into buf (CONFIG_ENVFILE_MAX +
 * 1 bytes): its length, or -1 with why and errno. */
static ssize_t
envload_file(int fd, char *buf, char *why, size_t len)
{
	struct stat st;
	ssize_t n, got = 0;
	int err;

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
#define ENVLOAD_OPEN (O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
#define ENVLOAD_DIR  (O_RDONLY | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW)

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

/* A path walked one component at a time by descriptor (envload_walk). */
struct envload_walk {
	int dirfd;  /* the directory reached so far: checked, trusted */
	char *done; /* its path, for messages */
	char *todo; /* the path still to walk: rest points into it */
	char *rest;
	int hops; /* symlinks followed */
	char *why;
	size_t len;
};

static int envload_refuse(struct envload_walk *, int, const char *, ...)
        __attribute__((format(printf, 3, 4)));

/* An error of the walk: why says it, errno is err. */
static int
envload_refuse(struct envload_walk *w, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->why, w->len, fmt, ap);
	va_end(ap);
	errno = err;
	return -1;
}

/* fd, the directory at name (owned: taken here), becomes the one the walk
 * looks names up in, if no one but root (or agentsupd) may change what
 * those names are. Checked on the descriptor: what is checked is what is
 * used, whatever is renamed meanwhile. */
static int
envload_enter(struct envload_walk *w, int fd, char *name)
{
	struct stat st = {.st_nlink = 0};
	int err;

	if (fstat(fd, &st) < 0 || !envload_dir_trusted(&st)) {
		err = errno;
		if (st.st_nlink == 0) /* fstat failed */
			envload_refuse(w, err, "%s: %s", name[0] ? name : "/",
			               strerror(err));
		else
			envload_refuse(w, EACCES,
			               "%s may be written by others than "
			               "root: not read for a worker that runs "
			               "as another user (a symlink there would "
			               "hand it any file of root's)",
			               name[0] ? name : "/");
		close(fd);
		free(name);
		return -1;
	}
	if (w->dirfd >= 0)
		close(w->dirfd);
	free(w->done);
	w->dirfd = fd;
	w->done = name;
	return 0;
}

/* The walk starts again at /. */
static int
envload_root(struct envload_walk *w)
{
	int fd = open("/", ENVLOAD_DIR);

	if (fd < 0)
		return envload_refuse(w, errno, "/: %s", strerror(errno));
	return envload_enter(w, fd, xstrdup(""));
}

/* comp, in the walk's directory, did not open as a directory or file of
 * its own: a symlink is followed if it is root's or agentsupd's (the
 * directory is trusted, so no one else can swap it for another), anything
 * else ends the walk. */
static int
envload_follow(struct envload_walk *w, const char *comp)
{
	char target[4096], *again;
	struct stat st;
	ssize_t n;

	if (fstatat(w->dirfd, comp, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return envload_refuse(w, errno, "%s/%s: %s", w->done, comp,
		                      strerror(errno));
	if (!S_ISLNK(st.st_mode))
		return envload_refuse(w, ENOTDIR, "%s/%s: not a directory",
		                      w->done, comp);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return envload_refuse(w, EACCES,
		                      "%s/%s is a symlink of another user's: "
		                      "not followed for a worker that runs as "
		                      "another user",
		                      w->done, comp);
	if (++w->hops > ENVLOAD_HOPS)
		return envload_refuse(w, ELOOP, "%s/%s: too many symlinks",
		                      w->done, comp);
	n = readlinkat(w->dirfd, comp, target, sizeof target);
	if (n < 0 || (size_t)n == sizeof target)
		return envload_refuse(w, n < 0 ? errno : ENAMETOOLONG,
		                      "readlink %s/%s: %s", w->done, comp,
		                      strerror(n < 0 ? errno : ENAMETOOLONG));
	target[n] = '\0';
	again = w->rest[0] ? xasprintf("%s/%s", target, w->rest)
	                   : xstrdup(target);
	free(w->todo);
	w->todo = w->rest = again;
	return target[0] == '/' ? envload_root(w) : 0;
}

/* One step of the walk: comp, the last component (last) or a directory
 * on the way. 1 with the file open in *fd at the end, 0 to go on, -1. */
static int
envload_step(struct envload_walk *w, const char *comp, bool last, int *fd)
{
	char *name;

	if (strcmp(comp, "..") == 0) { /* the directory's, as the kernel */
		name = xstrdup(w->done);
		*(strrchr(name, '/') ? strrchr(name, '/') : name) = '\0';
		if ((*fd = openat(w->dirfd, comp, ENVLOAD_DIR)) < 0) {
			free(name);
			return envload_refuse(w, errno, "%s/..: %s", w->done,
			                      strerror(errno));
		}
		return envload_enter(w, *fd, name);
	}
	if (last &&
	    (*fd = openat(w->dirfd, comp, ENVLOAD_OPEN | O_NOFOLLOW)) >= 0)
		return 1;
	if (!last && (*fd = openat(w->dirfd, comp, ENVLOAD_DIR)) >= 0)
		return envload_enter(w, *fd, xasprintf("%s/%s", w->done, comp));
	if (errno != ELOOP && errno != ENOTDIR)
		/* missing on the way too: one made there before the open (a
		 * symlink in /tmp) would never be checked */
		return envload_refuse(w, errno, "%s/%s: %s", w->done, comp,
		                      strerror(errno));
	return envload_follow(w, comp);
}

/* For a worker that runs as another user, agentsupd reads its env_file as
 * root: a directory on the path that someone else may write (the worker's
 * own), or a symlink someone else made, would let the worker swap in a
 * link to a file of root's that it may not read and get its lines in its
 * environment. So the path is walked here as the kernel would, by
 * descriptor, one component at a time: every directory passed through
 * (symlinks' targets included) must be trusted, checked on the descriptor
 * it is then used by, and every symlink followed must be root's or
 * agentsupd's. The file open, or -1 with why and errno. */
static int
envload_open_checked(const char *path, char *why, size_t len)
{
	struct envload_walk w = {.dirfd = -1, .why = why, .len = len};
	char cwd[4096], *comp = NULL;
	int fd = -1, rc;

	if (path[0] != '/' && getcwd(cwd, sizeof cwd) == NULL) {
		snprintf(why, len, "getcwd: %s", strerror(errno));
		return -1;
	}
	if (path[0] == '\0' || path[strlen(path) - 1] == '/') {
		snprintf(why, len, "%s", strerror(ENOTDIR));
		errno = ENOTDIR; /* a file's path, not a directory's */
		return -1;
	}
	w.todo = w.rest =
	        path[0] == '/' ? xstrdup(path) : xasprintf("%s/%s", cwd, path);
	if ((rc = envload_root(&w)) == 0)
		while ((comp = envload_component(&w.rest)) != NULL)
			if (strcmp(comp, ".") != 0 &&
			    (rc = envload_step(&w, comp, w.rest[0] == '\0',
			                       &fd)) != 0)
				break;
	if (rc == 0 && comp == NULL) /* it ended at a directory */
		rc = envload_refuse(&w, EISDIR, "%s", strerror(EISDIR));
	rc = rc > 0 ? fd : -1;
	fd = errno;
	if (w.dirfd >= 0)
		close(w.dirfd);
	free(w.done);
	free(w.todo);
	errno = fd;
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
	ssize_t size = -1;
	int err, fd;

	path = p[0] != '/' && s->directory != NULL
	               ? xasprintf("%s/%s", s->directory, p)
	               : xstrdup(p);
	if (s->user != NULL && geteuid() == 0)
		fd = envload_open_checked(path, fwhy, sizeof fwhy);
	else if ((fd = open(path, ENVLOAD_OPEN)) < 0)
		snprintf(fwhy, sizeof fwhy, "%s", strerror(errno));
	if (fd >= 0)
		size = envload_file(fd, buf, fwhy, sizeof fwhy);
	err = size < 0 ? errno : EINVAL;
	if (size < 0 && optional && err == ENOENT) { /* - : may be missing */
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
