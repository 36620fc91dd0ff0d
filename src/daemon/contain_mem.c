/*
 * contain_mem.c - `max_memory`: a worker's memory read every
 * CONTAIN_MEMORY_CHECK_MS while some running worker sets it (no timer
 * otherwise), from its cgroup where it has one (contain.c).
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "contain.h"
#include "contain_int.h"
#include "timer.h"
#include "util.h"

#define CONTAIN_MAX_PROCS     4096 /* pids summed for a cgroup's RSS */
#define CONTAIN_MEM_DEPTH_MAX 32   /* cgroups a worker nests below its one */

static uint64_t
contain_statm_rss(pid_t pid)
{
	char path[64];
	unsigned long long size, rss;
	FILE *f;
	int n;

	snprintf(path, sizeof path, "/proc/%ld/statm", (long)pid);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	n = fscanf(f, "%llu %llu", &size, &rss);
	fclose(f);
	return n == 2 ? rss * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

/* The RSS of every process in the cgroup open at fd and in the cgroups
 * below it (a worker may nest its own, as a sandbox does: memory.current
 * counts them), at most *budget processes in all; false when its
 * cgroup.procs cannot be read. */
static bool
contain_tree_rss(int fd, int depth, int *budget, uint64_t *total)
{
	struct dirent *e;
	FILE *f = NULL;
	DIR *d = NULL;
	long pid;
	int pfd, dfd;

	if ((pfd = openat(fd, "cgroup.procs", O_RDONLY | O_CLOEXEC)) < 0 ||
	    (f = fdopen(pfd, "r")) == NULL) {
		if (pfd >= 0)
			close(pfd);
		return false;
	}
	for (; *budget > 0 && fscanf(f, "%ld", &pid) == 1; (*budget)--)
		*total += contain_statm_rss((pid_t)pid);
	fclose(f);
	if (depth >= CONTAIN_MEM_DEPTH_MAX ||
	    (dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return true;
	if ((d = fdopendir(dfd)) == NULL) {
		close(dfd);
		return true;
	}
	while (*budget > 0 && (e = readdir(d)) != NULL) {
		int sub;
		if (e->d_type != DT_DIR || e->d_name[0] == '.' ||
		    (sub = openat(dirfd(d), e->d_name,
		                  O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			continue;
		(void)contain_tree_rss(sub, depth + 1, budget, total);
		close(sub);
	}
	closedir(d);
	return true;
}

/* The worker's memory: its cgroup's memory.current where the memory
 * controller is on, else the RSS of every process in its cgroup and those
 * below it, else of its own process. */
static uint64_t
contain_rss(struct contain *c, const struct watch *w)
{
	char file[NAME_MAX + 32];
	unsigned long long v;
	uint64_t total = 0;
	FILE *f = NULL;
	int fd, budget;
	bool ok;

	if (w->name == NULL)
		return contain_statm_rss(w->pid);
	snprintf(file, sizeof file, "%s/memory.current", w->name);
	if ((fd = openat(c->dirfd, file, O_RDONLY | O_CLOEXEC)) >= 0 &&
	    (f = fdopen(fd, "r")) != NULL && fscanf(f, "%llu", &v) == 1) {
		fclose(f);
		return v;
	}
	if (f != NULL)
		fclose(f);
	else if (fd >= 0)
		close(fd);
	if ((fd = openat(c->dirfd, w->name,
	                 O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return contain_statm_rss(w->pid);
	budget = CONTAIN_MAX_PROCS;
	ok = contain_tree_rss(fd, 0, &budget, &total);
	close(fd);
	return ok ? total : contain_statm_rss(w->pid);
}

void
contain_mem_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct contain *c = t->data;
	uint64_t rss;

	(void)loop;
	(void)revents;
	for (size_t i = 0; i < c->nw; i++) {
		struct watch *w = &c->w[i];
		if (w->fired || (rss = contain_rss(c, w)) <= w->limit)
			continue;
		w->fired = true;
		c->over(c->arg, w->pid, rss); /* must not unwatch */
	}
	if (c->nw > 0)
		timer_after_ms(c->loop, &c->memtimer, CONTAIN_MEMORY_CHECK_MS);
}

void
contain_watch(struct contain *c, pid_t pid, const char *path, unsigned long id,
              uint64_t limit)
{
	char name[NAME_MAX + 1];

	if (c->nw == c->capw) {
		c->capw = c->capw ? 2 * c->capw : 8;
		c->w = xreallocarray(c->w, c->capw, sizeof *c->w);
	}
	c->w[c->nw++] = (struct watch){
	        pid,
	        id != 0 && contain_name(path, id, name, sizeof name)
	                ? xstrdup(name)
	                : NULL,
	        limit, false};
	if (!ev_is_active(&c->memtimer))
		timer_after_ms(c->loop, &c->memtimer, CONTAIN_MEMORY_CHECK_MS);
}

void
contain_unwatch(struct contain *c, pid_t pid)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nw; i++)
		if (c->w[i].pid == pid) {
			free(c->w[i].name);
			c->w[i] = c->w[--c->nw];
			break;
		}
	if (c->nw == 0)
		ev_timer_stop(c->loop, &c->memtimer); /* no idle wake-ups */
}

void
contain_rewatch(struct contain *c, pid_t pid, const char *path,
                unsigned long id, uint64_t limit)
{
	for (size_t i = 0; i < c->nw; i++) {
		if (c->w[i].pid != pid)
			continue;
		if (limit == 0)
			contain_unwatch(c, pid);
		else /* one already over stays reported: it is being stopped */
			c->w[i].limit = limit;
		return;
	}
	if (limit != 0)
		contain_watch(c, pid, path, id, limit);
}
