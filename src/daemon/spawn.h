/*
 * spawn.h - starting a worker's process: clone + exec with the channel at
 * its fixed descriptor, its own process group and parent-death signal.
 * A leaf: it knows specs, never the tree or the loop.
 */
#ifndef AGENTSUP_SPAWN_H
#define AGENTSUP_SPAWN_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

#define SPAWN_STACK_SIZE (256 * 1024)

/* What every spawn shares: the child's stack until it execs, and the
 * signals a child must put back to their default. */
struct spawner {
	void *stack;
	size_t stack_size;
	sigset_t reset;
};

/* Who the worker is, for its AGENTSUP_* environment. */
struct spawn_args {
	const struct spec *spec;
	const char *path;
	unsigned long incarnation;
	const char *notify_socket; /* NOTIFY_SOCKET for `notify: systemd` */
	int output[2]; /* `capture`: the pipes' ends for fd 1 and 2 (logcap) */
};

/* A started process: its pid, the daemon's end of the channel, and why
 * exec failed when it did (the process then exits 126 or 127 at once). */
struct spawn_result {
	pid_t pid;
	int chan;
	char *exec_error; /* malloc'd, or NULL */
};

/* After the daemon's signal handlers are in place. -1 with errno. */
int spawner_init(struct spawner *);
void spawner_fini(struct spawner *);
/* 0, or -1 with errno when no process could be made at all. */
int spawn_worker(struct spawner *, const struct spawn_args *,
                 struct spawn_result *);

#endif
