/*
 * contain_int.h - what contain.c, contain_setup.c, contain_mem.c
 * (max_memory) and contain_stale.c share: the handle's insides. Not for the
 * rest of the daemon.
 */
#ifndef AGENTSUP_CONTAIN_INT_H
#define AGENTSUP_CONTAIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "contain.h"

/* A worker's cgroup: its number, the worker's path, and whether it is
 * idle (its worker ended and left nothing: the next start reuses it). */
struct live {
	unsigned long id;
	char *path;
	bool idle;
};

struct watch {
	pid_t pid;
	char *name; /* the cgroup's, or NULL */
	uint64_t limit;
	bool fired;
};

struct contain {
	struct ev_loop *loop;
	char *dir; /* .../agentsup.<pid>, NULL when not contained */
	int dirfd; /* of dir, or -1 */
	char *rel; /* dir relative to the cgroup2 mount, as /proc shows */
	unsigned long next_id; /* of the next worker cgroup */
	char **busy;           /* killed cgroups not yet empty: removed later */
	size_t nbusy;
	struct live *live; /* by number, for who a control peer is */
	size_t nlive, caplive;
	int guard; /* write end of the guard's pipe, or -1 */
	pid_t guard_pid;
	char *helper;     /* agentsup-guard's path, or NULL: a fork runs it */
	struct pidns *ns; /* the workers' PID namespace, or NULL */
	contain_over_fn over;
	contain_lost_fn lost;
	void *arg;
	struct watch *w;
	size_t nw, capw;
	ev_timer memtimer;
	ev_timer busytimer; /* sweeps busy while it holds any */
	uint64_t busy_ms;   /* its last delay */
};

#define CONTAIN_BUSY_FIRST_MS 50
#define CONTAIN_BUSY_MAX_MS   10000

/* val written to file under dirfd: 0, or -1 with errno. */
int contain_write_at(int dirfd, const char *file, const char *val);
/* agentsup.<pid>/ made, locked and proven usable, the guard started: 0, or
 * an errno with nothing left behind (contain_setup.c). */
int contain_setup(struct contain *);
/* The name of the worker path's cgroup number id under agentsup.<pid>/. */
bool contain_name(const char *path, unsigned long id, char *name, size_t len);
/* Cgroups under parent (ours, mine, aside) an agentsupd that is gone
 * left: empty ones removed, one that still holds processes named
 * (contain_stale.c). */
void contain_sweep_stale(const char *parent, const char *mine);
/* max_memory's timer (contain_mem.c). */
void contain_mem_cb(struct ev_loop *, ev_timer *, int);

#endif
