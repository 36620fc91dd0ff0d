/*
 * contain.c - a cgroup v2 per worker, killed whole, and a guard for when
 * agentsupd is killed itself.
 *
 * A worker that calls setsid, or double-forks, leaves its process group;
 * one that drops privileges loses its parent-death signal. Only the kernel
 * can still find them all: each worker runs in its own cgroup under
 * <agentsupd's cgroup>/agentsup.<pid>/, and `cgroup.kill` ends every
 * process in it. The child joins its cgroup itself, before exec, by
 * writing "0" to a cgroup.procs descriptor we opened (one async-signal-safe
 * write), so not even its first fork escapes. A guard process, forked at
 * start and blocked on a pipe, sees agentsupd die however it dies (EOF) and
 * kills the whole agentsup.<pid>/ subtree, then removes it.
 *
 * Where no cgroup v2 is writable but the kernel lets us make a PID
 * namespace (root), the workers are born in one held by an init of ours
 * (pidns.c) instead: the kernel kills it whole when agentsupd dies. Both
 * the guard and the init are the small agentsup-guard exec'd (guard.c).
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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "contain.h"
#include "contain_int.h"
#include "guard.h"
#include "log.h"
#include "pidns.h"
#include "timer.h"
#include "util.h"

#define CONTAIN_NAME_PATH 200 /* of a path in a cgroup's name, its end */
#define CONTAIN_ORPHAN    "(an orphan in the PID namespace)"

/* --- where the cgroups live ---------------------------------------------- */

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

static int
contain_write_at(int dirfd, const char *file, const char *val)
{
	int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, val, strlen(val));
	close(fd);
	return n < 0 ? -1 : 0;
}

/* "root/a/b", 7 -> "root:a:b@7" (names hold neither ':' nor '@'; a deep
 * path by its last CONTAIN_NAME_PATH bytes): a fresh cgroup per start,
 * since some kernels kill every child cloned into a cgroup that was once
 * killed (CLONE_INTO_CGROUP and kill_seq). The number is what counts. */
bool
contain_name(const char *path, unsigned long id, char *name, size_t len)
{
	size_t n = strlen(path);
	int k;

	if (n > CONTAIN_NAME_PATH) {
		path += n - CONTAIN_NAME_PATH;
		n = CONTAIN_NAME_PATH;
	}
	if (len <= NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		name[i] = path[i] == '/' ? ':' : path[i];
	k = snprintf(name + n, len - n, "@%lu", id);
	return k > 0 && n + (size_t)k <= NAME_MAX;
}

static void
contain_live_add(struct contain *c, unsigned long id, const char *path)
{
	if (c->nlive == c->caplive) {
		c->caplive = c->caplive ? 2 * c->caplive : 16;
		c->live = xreallocarray(c->live, c->caplive, sizeof *c->live);
	}
	c->live[c->nlive++] = (struct live){id, xstrdup(path), false};
}

static void
contain_live_del(struct contain *c, unsigned long id)
{
	for (size_t i = 0; i < c->nlive; i++)
		if (c->live[i].id == id) {
			free(c->live[i].path);
			c->live[i] = c->live[--c->nlive];
			return;
		}
}

static void
contain_live_idle(struct contain *c, unsigned long id)
{
	for (size_t i = 0; i < c->nlive; i++)
		if (c->live[i].id == id)
			c->live[i].idle = true;
}

/* Whether a cgroup holds no process ("populated 0" in cgroup.events): a
 * worker that left nothing behind. Its cgroup is reused as is, never
 * killed: a killed cgroup kills what is later cloned into it. */
static bool
contain_empty(struct contain *c, const char *name)
{
	char file[NAME_MAX + 16], buf[64];
	ssize_t n;
	int fd;

	snprintf(file, sizeof file, "%s/cgroup.events", name);
	if ((fd = openat(c->dirfd, file, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strncmp(buf, "populated 0\n", 12) == 0;
}

/* Whether a process can join a child cgroup here: a probe child tries. */
static int
contain_probe(int dirfd)
{
	int fd, status, err = 0;
	pid_t pid;

	if (mkdirat(dirfd, "probe", 0755) < 0)
		return errno;
	if ((fd = openat(dirfd, "probe/cgroup.procs", O_WRONLY | O_CLOEXEC)) <
	    0) {
		err = errno;
	} else if ((pid = fork()) == 0) {
		_exit(write(fd, "0", 1) == 1 ? 0 : (errno & 0xff));
	} else if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		err = errno;
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		err = WIFEXITED(status) ? WEXITSTATUS(status) : EIO;
	}
	if (fd >= 0)
		close(fd);
	unlinkat(dirfd, "probe", AT_REMOVEDIR);
	return err;
}

/* --- open and close --------------------------------------------------------
 */

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
static int
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

/* The helper the guard and the init exec; where it is missing, a fork of
 * agentsupd runs them (carrying its memory), said once. */
static void
contain_find_helper(struct contain *c)
{
	char path[PATH_MAX];

	if (guard_helper(path, sizeof path)) {
		c->helper = xstrdup(path);
		return;
	}
	log_warnx("contain: no executable %s next to agentsupd nor in %s: "
	          "the guard is a fork of agentsupd (its memory)",
	          GUARD_HELPER, AGENTSUP_LIBEXECDIR);
}

/* The init died: the daemon says so (an event). */
static void
contain_lost(void *arg, const char *why)
{
	struct contain *c = arg;

	c->lost(c->arg, why);
}

struct contain *
contain_open(struct ev_loop *loop, enum contain_mode mode, contain_over_fn over,
             contain_lost_fn lost, void *arg, const char **why)
{
	struct contain *c = xcalloc(1, sizeof *c);
	static char msg[256];
	int err = 0, nserr;

	c->loop = loop;
	c->dirfd = c->guard = -1;
	c->over = over;
	c->lost = lost;
	c->arg = arg;
	ev_init(&c->memtimer, contain_mem_cb);
	c->memtimer.data = c;
	*why = "contain: none: process groups and PDEATHSIG only";
	if (mode == CONTAIN_NONE)
		return c;
	contain_find_helper(c);
	*why = msg;
	if (mode != CONTAIN_PIDNS && (err = contain_setup(c)) == 0) {
		snprintf(msg, sizeof msg,
		         "a cgroup per worker under %.80s, and a guard (pid "
		         "%ld)",
		         c->dir, (long)c->guard_pid);
		return c;
	}
	if (mode != CONTAIN_CGROUP &&
	    (c->ns = pidns_open(loop, c->helper, contain_lost, c)) != NULL) {
		snprintf(msg, sizeof msg,
		         "a PID namespace held by agentsup-init (pid %ld); "
		         "process groups for restarts",
		         (long)pidns_init_pid(c->ns));
		return c;
	}
	nserr = errno;
	if (mode == CONTAIN_CGROUP)
		snprintf(msg, sizeof msg,
		         "contain: cgroup: no writable cgroup v2 with "
		         "cgroup.kill (%s)",
		         strerror(err));
	else if (mode == CONTAIN_PIDNS)
		snprintf(msg, sizeof msg,
		         "contain: pidns: no PID namespace (%s)",
		         strerror(nserr));
	else
		snprintf(msg, sizeof msg,
		         "no writable cgroup v2 with cgroup.kill (%s) nor PID "
		         "namespace (%s): process groups and PDEATHSIG only",
		         strerror(err), strerror(nserr));
	if (mode != CONTAIN_AUTO) {
		contain_close(c);
		return NULL;
	}
	return c;
}

int
contain_ns_enter(struct contain *c)
{
	return c != NULL && c->ns != NULL ? pidns_enter(c->ns) : 0;
}

void
contain_ns_leave(struct contain *c)
{
	if (c != NULL && c->ns != NULL)
		pidns_leave(c->ns);
}

bool
contain_cgroups(const struct contain *c)
{
	return c != NULL && c->dirfd >= 0;
}

int
contain_enter_fd(struct contain *c, const char *path, unsigned long *id)
{
	char name[NAME_MAX + 1];
	int fd;

	*id = 0;
	if (!contain_cgroups(c))
		return -1;
	for (size_t i = 0; i < c->nlive; i++) {
		struct live *l = &c->live[i];
		if (!l->idle || strcmp(l->path, path) != 0)
			continue;
		if (!contain_name(path, l->id, name, sizeof name) ||
		    (fd = openat(c->dirfd, name,
		                 O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			break; /* then a fresh one */
		l->idle = false;
		*id = l->id;
		return fd;
	}
	if (!contain_name(path, c->next_id + 1, name, sizeof name)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mkdirat(c->dirfd, name, 0755) < 0 && errno != EEXIST)
		return -1;
	if ((fd = openat(c->dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) <
	    0) {
		int err = errno;
		unlinkat(c->dirfd, name, AT_REMOVEDIR);
		errno = err;
		return -1;
	}
	*id = ++c->next_id;
	contain_live_add(c, *id, path);
	return fd;
}

/* Killed cgroups whose processes were still dying: removed once empty,
 * tried again whenever another worker ends. */
static void
contain_sweep_busy(struct contain *c)
{
	for (size_t i = 0; i < c->nbusy;) {
		if (unlinkat(c->dirfd, c->busy[i], AT_REMOVEDIR) == 0 ||
		    errno != EBUSY) {
			free(c->busy[i]);
			c->busy[i] = c->busy[--c->nbusy];
		} else {
			i++;
		}
	}
}

void
contain_kill(struct contain *c, const char *path, unsigned long id)
{
	char name[NAME_MAX + 1], kill[NAME_MAX + 16];

	if (!contain_cgroups(c) || id == 0 ||
	    !contain_name(path, id, name, sizeof name))
		return;
	if (contain_empty(c, name)) {
		contain_live_idle(c, id); /* kept for the next start */
		return;
	}
	contain_live_del(c, id);
	snprintf(kill, sizeof kill, "%s/cgroup.kill", name);
	if (contain_write_at(c->dirfd, kill, "1") < 0 && errno != ENOENT)
		log_warn("cgroup.kill of %s", path);
	contain_sweep_busy(c);
	if (unlinkat(c->dirfd, name, AT_REMOVEDIR) < 0 && errno == EBUSY) {
		c->busy = xreallocarray(c->busy, c->nbusy + 1, sizeof *c->busy);
		c->busy[c->nbusy++] = xstrdup(name);
	}
}

void
contain_forget(struct contain *c, const char *path)
{
	char name[NAME_MAX + 1];

	if (!contain_cgroups(c))
		return;
	for (size_t i = 0; i < c->nlive;) {
		struct live *l = &c->live[i];
		if (!l->idle || strcmp(l->path, path) != 0) {
			i++;
			continue;
		}
		if (contain_name(path, l->id, name, sizeof name) &&
		    unlinkat(c->dirfd, name, AT_REMOVEDIR) < 0 &&
		    errno != ENOENT)
			log_warn("rmdir of %s's cgroup", path);
		contain_live_del(c, l->id); /* moves the last one here */
	}
}

void
contain_close(struct contain *c)
{
	int status;

	if (c == NULL)
		return;
	ev_timer_stop(c->loop, &c->memtimer);
	if (c->dirfd >= 0 && contain_write_at(c->dirfd, "cgroup.kill", "1") < 0)
		log_warn("cgroup.kill of %s", c->dir);
	if (c->guard >= 0) {
		/* the guard removes the cgroups once they are empty */
		close(c->guard);
		while (waitpid(c->guard_pid, &status, 0) < 0 && errno == EINTR)
			;
	} else if (c->dir != NULL) {
		guard_remove_all(c->dirfd, c->dir);
	}
	pidns_close(c->ns); /* the kernel kills what is left in it */
	free(c->helper);
	if (c->dirfd >= 0)
		close(c->dirfd);
	for (size_t i = 0; i < c->nw; i++)
		free(c->w[i].name);
	free(c->w);
	for (size_t i = 0; i < c->nbusy; i++)
		free(c->busy[i]);
	free(c->busy);
	for (size_t i = 0; i < c->nlive; i++)
		free(c->live[i].path);
	free(c->live);
	free(c->dir);
	free(c->rel);
	free(c);
}

/* --- who a control peer is ------------------------------------------------ */

/* The worker whose cgroup holds pid, as its path. */
bool
contain_worker_of(struct contain *c, pid_t pid, char *path, size_t len)
{
	char file[64], line[4096];
	unsigned long id;
	bool found = false;
	size_t rl;
	FILE *f;

	snprintf(file, sizeof file, "/proc/%ld/cgroup", (long)pid);
	if (c->ns != NULL && pidns_holds(c->ns, pid) &&
	    strlen(CONTAIN_ORPHAN) < len) {
		strcpy(path, CONTAIN_ORPHAN); /* in the tree; whose, unknown */
		return true;
	}
	if (!contain_cgroups(c) || (f = fopen(file, "re")) == NULL)
		return false;
	rl = strlen(c->rel);
	while (!found && fgets(line, sizeof line, f) != NULL) {
		char *p = line + 3;
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "0::", 3) != 0 || strncmp(p, c->rel, rl) ||
		    p[rl] != '/')
			continue;
		p += rl + 1;
		p[strcspn(p, "/")] = '\0';
		if ((p = strrchr(p, '@')) == NULL)
			continue;
		id = strtoul(p + 1, NULL, 10);
		for (size_t i = 0; !found && i < c->nlive; i++)
			if (c->live[i].id == id &&
			    strlen(c->live[i].path) < len) {
				strcpy(path, c->live[i].path);
				found = true;
			}
	}
	fclose(f);
	return found;
}
