/*
 * contain_setup.c - finding where the workers' cgroups can live: the
 * cgroup2 mount and our own cgroup, agentsup.<pid>/ made under it and
 * locked as ours, proven usable by a probe child, agentsupd moved into a
 * leaf of its own when it is alone in a delegated cgroup, and the guard
 * started (contain.c opens, uses and closes it).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clone3.h"
#include "contain_int.h"
#include "guard.h"
#include "log.h"
#include "util.h"

/* The cgroup2 mount point, from /proc/self/mountinfo. */
static char *
contain_mount(void)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], mnt[PATH_MAX], *found = NULL;

	if (f == NULL)
		return NULL;
	while (found == NULL && fgets(line, sizeof line, f) != NULL) {
		char *sep = strstr(line, " - ");
		if (sep != NULL && strncmp(sep, " - cgroup2 ", 11) == 0 &&
		    sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1)
			found = xstrdup(mnt);
	}
	fclose(f);
	return found;
}

/* Our own cgroup v2 path ("0::/a/b" in /proc/self/cgroup). */
static char *
contain_self(void)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[4096], *found = NULL;

	if (f == NULL)
		return NULL;
	while (found == NULL && fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			found = xstrdup(line + 3);
		}
	fclose(f);
	return found;
}

/* A child born in the probe cgroup, as the workers are (clone3's
 * CLONE_INTO_CGROUP, the same permission checks as a move): no move of a
 * running process, which waits for an RCU grace period (10 ms of every
 * start here); -1 with ENOSYS where clone3 cannot do it (an old kernel,
 * or a seccomp filter: ENOSYS, EPERM...), as spawn.c falls back. */
static pid_t
contain_probe_born(int dirfd)
{
	struct clone3_args ca = {.flags = CLONE3_INTO_CGROUP,
	                         .exit_signal = SIGCHLD};
	int fd = openat(dirfd, "probe", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err;
	long pid;

	if (fd < 0)
		return -1;
	ca.cgroup = (uint64_t)fd;
	/* no CLONE_VM: the child has its own copy, as after fork */
	pid = syscall(CLONE3_SYSCALL, &ca, sizeof ca);
	if (pid == 0)
		_exit(0);
	err = errno;
	close(fd);
	if (pid < 0) /* a moved child says whether it can join, not this */
		errno = err == EAGAIN || err == ENOMEM ? err : ENOSYS;
	return (pid_t)pid;
}

/* A child moving itself into the probe cgroup (cgroup.procs). */
static pid_t
contain_probe_moved(int dirfd)
{
	int fd = openat(dirfd, "probe/cgroup.procs", O_WRONLY | O_CLOEXEC);
	pid_t pid;

	if (fd < 0)
		return -1;
	if ((pid = fork()) == 0)
		_exit(write(fd, "0", 1) == 1 ? 0 : (errno & 0xff));
	close(fd);
	return pid;
}

/* Whether a process can join a child cgroup here: a probe child tries. */
static int
contain_probe(int dirfd)
{
	int status, err = 0;
	pid_t pid;

	if (mkdirat(dirfd, "probe", 0755) < 0)
		return errno;
	pid = contain_probe_born(dirfd);
	if (pid < 0 && errno == ENOSYS)
		pid = contain_probe_moved(dirfd);
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		err = errno;
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		err = WIFEXITED(status) ? WEXITSTATUS(status) : EIO;
	unlinkat(dirfd, "probe", AT_REMOVEDIR);
	return err;
}

#define CONTAIN_DIR_TRIES 100 /* agentsup.<pid>, then .2, .3, ... */

/* agentsup.<pid>/ under our cgroup, ours alone: made here, never one that
 * exists (a pid is a PID namespace's: two agentsupd as PID 1 of their
 * containers in one cgroup shared agentsup.1, and the first to exit
 * killed the other's workers); agentsup.<pid>.N when it is taken. */
static int
contain_mkdir(struct contain *c, const char *mnt, const char *self)
{
	const char *base = strcmp(self, "/") ? self : "";
	long pid = (long)getpid();

	for (int n = 1; n <= CONTAIN_DIR_TRIES; n++) {
		free(c->rel);
		free(c->dir);
		c->rel = n == 1 ? xasprintf("%s/agentsup.%ld", base, pid)
		                : xasprintf("%s/agentsup.%ld.%d", base, pid, n);
		c->dir = xasprintf("%s%s", mnt, c->rel);
		if (mkdir(c->dir, 0755) == 0)
			return 0;
		if (errno != EEXIST)
			return errno;
	}
	return EEXIST;
}

#define CONTAIN_LOCK_TRIES 3

/* Our new directory opened and locked for our life (see contain_stale);
 * EAGAIN when another agentsupd's sweep took it first, in the moment
 * before the lock, as it would a stale one: then make it again. */
static int
contain_lock(struct contain *c)
{
	struct stat by_fd, by_name;

	c->dirfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0)
		return errno == ENOENT ? EAGAIN : errno;
	if (flock(c->dirfd, LOCK_EX | LOCK_NB) == 0 &&
	    fstat(c->dirfd, &by_fd) == 0 && stat(c->dir, &by_name) == 0 &&
	    by_fd.st_ino == by_name.st_ino)
		return 0;
	close(c->dirfd);
	c->dirfd = -1;
	return EAGAIN; /* held by its sweep, or removed */
}

#define CONTAIN_LEAF "agentsupd"

/* Whether agentsupd is alone in the cgroup.procs of the cgroup at dirfd. */
static bool
contain_alone(int dirfd)
{
	char buf[64], me[24];
	int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	snprintf(me, sizeof me, "%ld\n", (long)getpid());
	return strcmp(buf, me) == 0;
}

/* A cgroup delegated to agentsupd alone (systemd's Delegate=yes): agentsupd
 * moves into a leaf of it, so that it holds no process itself and may hand
 * the memory controller down to the workers' (cgroup v2's rule: a cgroup
 * that enables controllers for its children holds no process). The root,
 * or a cgroup shared with a shell or others, is left as it is. */
static void
contain_leaf(const char *mnt, const char *self)
{
	char *own;
	int fd;

	if (strcmp(self, "/") == 0)
		return;
	own = xasprintf("%s%s", mnt, self);
	if ((fd = open(own, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0 &&
	    contain_alone(fd)) {
		if (mkdirat(fd, CONTAIN_LEAF, 0755) < 0 && errno != EEXIST)
			log_warn("containment: cannot make the leaf "
			         "%s/" CONTAIN_LEAF,
			         own);
		else if (contain_write_at(fd, CONTAIN_LEAF "/cgroup.procs",
		                          "0") < 0)
			log_warn("containment: cannot move into "
			         "%s/" CONTAIN_LEAF,
			         own);
		else
			(void)contain_write_at(fd, "cgroup.subtree_control",
			                       "+memory");
	}
	if (fd >= 0)
		close(fd);
	free(own);
}

/* Our cgroup directory, proven usable; an errno otherwise. */
int
contain_setup(struct contain *c)
{
	char *mnt = contain_mount(), *self = contain_self();
	int err = 0;

	if (mnt == NULL || self == NULL) {
		err = ENOENT;
		goto out;
	}
	for (int tries = 0;; tries++) {
		if ((err = contain_mkdir(c, mnt, self)) != 0) {
			free(c->dir); /* not ours to remove */
			free(c->rel);
			c->dir = c->rel = NULL;
			goto out;
		}
		if ((err = contain_lock(c)) != EAGAIN ||
		    tries == CONTAIN_LOCK_TRIES)
			break;
	}
	if (err == 0 && faccessat(c->dirfd, "cgroup.kill", W_OK, 0) < 0)
		err = ENOTSUP; /* before Linux 5.14: no cgroup.kill */
	if (err == 0)
		err = contain_probe(c->dirfd);
	if (err == 0)
		contain_leaf(mnt, self);
	if (err == 0)
		/* max_memory reads memory.current where the controller is ours
		 * to enable; it is not everywhere (hybrid hosts) */
		(void)contain_write_at(c->dirfd, "cgroup.subtree_control",
		                       "+memory");
	if (err == 0 && guard_start(c->helper, c->dirfd, c->dir, &c->guard,
	                            &c->guard_pid) < 0)
		err = errno;
	if (err == 0) {
		char *slash = strrchr(c->dir, '/');
		*slash = '\0'; /* the parent, for a moment */
		contain_sweep_stale(c->dir, slash + 1);
		*slash = '/';
	}
out:
	free(mnt);
	free(self);
	if (err != 0 && c->dir != NULL) {
		if (c->dirfd >= 0)
			close(c->dirfd);
		rmdir(c->dir);
		c->dirfd = -1;
		free(c->dir);
		free(c->rel);
		c->dir = c->rel = NULL;
	}
	return err;
}
