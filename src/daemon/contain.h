/*
 * contain.h - making a worker's descendants end with it (DESIGN §13): a
 * cgroup v2 per worker under agentsupd's own, killed whole (cgroup.kill) at
 * the worker's reap and at agentsupd's exit, and a guard process that kills
 * them all if agentsupd itself dies by SIGKILL; else, where the kernel
 * permits, a PID namespace for the workers (pidns.c) that the kernel kills
 * whole when agentsupd dies. Else the process group and PDEATHSIG only.
 * Also the slow RSS check of `max_memory` and who a control peer is.
 * A leaf: it knows paths and pids, never the tree.
 */
#ifndef AGENTSUP_CONTAIN_H
#define AGENTSUP_CONTAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "config.h"

#define CONTAIN_MEMORY_CHECK_MS 1000 /* max_memory: RSS read this often */

struct contain;

/* Over max_memory: pid's worker uses rss bytes (once per watch). */
typedef void (*contain_over_fn)(void *arg, pid_t pid, uint64_t rss);
/* The PID namespace's init died, and every worker with it (why: text). */
typedef void (*contain_lost_fn)(void *arg, const char *why);

/* Set up containment as `mode` asks: NULL with *why when `contain: cgroup`
 * or `contain: pidns` cannot be had; otherwise a handle (cgroups, a PID
 * namespace or neither, as *why says). Call before the loop reaps
 * children. */
struct contain *contain_open(struct ev_loop *, enum contain_mode,
                             contain_over_fn, contain_lost_fn, void *arg,
                             const char **why);
/* Around a spawn: the child is born in the workers' PID namespace, if
 * any. -1 with errno when the namespace is lost (the spawn fails). */
int contain_ns_enter(struct contain *);
void contain_ns_leave(struct contain *);
/* Whether workers get a cgroup each. */
bool contain_cgroups(const struct contain *);
/* The worker's cgroup, made if need be: a descriptor of its directory, for
 * clone3's CLONE_INTO_CGROUP or its cgroup.procs (the caller closes it),
 * or -1 when workers are not contained (errno set on a real failure). */
int contain_enter_fd(struct contain *, const char *path, unsigned long *id);
/* SIGKILL everything left in the worker's cgroup (id from
 * contain_enter_fd; 0: none): its setsid'd and double-forked descendants
 * too; then remove the cgroup, now or once it is empty. */
void contain_kill(struct contain *, const char *path, unsigned long id);
/* The worker will not start again (an ended task): its idle cgroup is
 * removed, not kept for a next start. */
void contain_forget(struct contain *, const char *path);
/* max_memory: check pid's worker (its cgroup, or its process) every
 * CONTAIN_MEMORY_CHECK_MS while watched. */
void contain_watch(struct contain *, pid_t, const char *path, unsigned long id,
                   uint64_t limit);
void contain_unwatch(struct contain *, pid_t);
/* A running worker's max_memory changed by a reload: the new limit from
 * now on (0: no more watching; a first one: watched from now). */
void contain_rewatch(struct contain *, pid_t, const char *path,
                     unsigned long id, uint64_t limit);
/* The worker whose cgroup holds pid, as its path (peer.c's last resort). */
bool contain_worker_of(struct contain *, pid_t, char *path, size_t len);
/* A reaped child that was the guard (killed on its own: the OOM killer's
 * pick, an operator's kill): another is started, so that a SIGKILL of
 * agentsupd still ends every worker. False if pid is not the guard. */
bool contain_reaped(struct contain *, pid_t, int status);
/* Kill every contained process, remove the cgroups, end the guard. */
void contain_close(struct contain *);

#endif
