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

/* --- the workers' cgroups ------------------------------------------------ */

int
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

/* --- open and close (where: contain_setup.c) ---------------------------- */

static void contain_busy_cb(struct ev_loop *, ev_timer *, int);

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
	ev_init(&c->busytimer, contain_busy_cb);
	c->busytimer.data = c;
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

/* Whether the worker left cgroups of its own below its one (a sandbox's,
 * maybe with controllers enabled for them, after which its cgroup cannot
 * take a process): then it is made afresh. A cgroup directory's link
 * count is 2 plus its subdirectories: one fstat, not a read of a file. */
static bool
contain_nested(int fd)
{
	struct stat st;

	return fstat(fd, &st) < 0 || st.st_nlink > 2;
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
			break;            /* then a fresh one */
		if (contain_nested(fd)) { /* its worker's cgroups: not kept */
			close(fd);
			if (guard_rmdir_tree(c->dirfd, name, 0) < 0)
				log_warn("rmdir of %s's cgroup", path);
			contain_live_del(c, l->id);
			break;
		}
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

/* The busy list's timer: off once it is empty; else on, at 50 ms, then
 * doubling up to 10 s: a process stuck dying (D state) costs no steady
 * wake-ups. */
static void
contain_busy_arm(struct contain *c)
{
	if (c->nbusy == 0) {
		ev_timer_stop(c->loop, &c->busytimer);
		c->busy_ms = 0;
	} else if (!ev_is_active(&c->busytimer)) {
		c->busy_ms = c->busy_ms == 0 ? CONTAIN_BUSY_FIRST_MS
		             : c->busy_ms * 2 > CONTAIN_BUSY_MAX_MS
		                     ? CONTAIN_BUSY_MAX_MS
		                     : c->busy_ms * 2;
		timer_after_ms(c->loop, &c->busytimer, c->busy_ms);
	}
}

/* Killed cgroups whose processes were still dying: removed once empty,
 * tried again whenever another worker ends, and by a timer (a tree whose
 * last worker ended has no other end to wait for). */
static void
contain_sweep_busy(struct contain *c)
{
	for (size_t i = 0; i < c->nbusy;) {
		if (guard_rmdir_tree(c->dirfd, c->busy[i], 0) == 0 ||
		    errno != EBUSY) {
			free(c->busy[i]);
			c->busy[i] = c->busy[--c->nbusy];
		} else {
			i++;
		}
	}
	contain_busy_arm(c);
}

static void
contain_busy_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	contain_sweep_busy(t->data);
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
	if (guard_rmdir_tree(c->dirfd, name, 0) < 0 && errno == EBUSY) {
		c->busy = xreallocarray(c->busy, c->nbusy + 1, sizeof *c->busy);
		c->busy[c->nbusy++] = xstrdup(name);
		contain_busy_arm(c); /* tried once already, just now */
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
		    guard_rmdir_tree(c->dirfd, name, 0) < 0 && errno != ENOENT)
			log_warn("rmdir of %s's cgroup", path);
		contain_live_del(c, l->id); /* moves the last one here */
	}
}

bool
contain_reaped(struct contain *c, pid_t pid, int status)
{
	bool killed = WIFSIGNALED(status);
	int code = killed ? WTERMSIG(status) : WEXITSTATUS(status);
	const char *how = killed ? "signal" : "exit";

	if (c == NULL || c->guard < 0 || pid != c->guard_pid)
		return false;
	close(c->guard);
	c->guard = -1;
	/* a guard ends on its own only when it could not set itself up:
	 * another would fail the same way, over and over */
	if (!killed || guard_start(c->helper, c->dirfd, c->dir, &c->guard,
	                           &c->guard_pid) < 0) {
		c->guard = -1;
		log_warnx("containment: the guard (pid %ld) ended (%s %d) and "
		          "no other runs: a SIGKILL of agentsupd would leave "
		          "its workers' descendants running",
		          (long)pid, how, code);
		return true;
	}
	log_warnx("containment: the guard (pid %ld) ended (%s %d): another "
	          "started (pid %ld)",
	          (long)pid, how, code, (long)c->guard_pid);
	return true;
}

void
contain_close(struct contain *c)
{
	int status;

	if (c == NULL)
		return;
	ev_timer_stop(c->loop, &c->memtimer);
	ev_timer_stop(c->loop, &c->busytimer);
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
