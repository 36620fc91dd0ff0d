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
#include "text.h"

#define SPAWN_STACK_SIZE (256 * 1024)

/* Low descriptors kept for a child's own ends (its channel, stdout, stderr,
 * cgroup.procs): moved there for the clone, so the child's copy of our
 * table stops a few entries in, not at the thousands the workers hold. */
#define SPAWN_SLOTS 4

struct spawn_env_key;
/* What a spawn's environment is made in (spawn_env.c), kept from one spawn
 * to the next: once grown to the largest environment, a spawn allocates
 * nothing. (A string a variable, freed after the clone, left a hole in the
 * heap for each worker started: 90 KiB with 1,000, all resident.) */
struct spawn_env_mem {
	char **envp; /* the environment passed to exec */
	size_t envcap;
	struct text_buf own; /* the worker's own variables, NUL after each */
	struct spawn_env_key *sorted; /* env_file entries by name */
	bool *last;                   /* ... each one the last of its name */
	size_t sortcap;
};

/* What every spawn shares: the child's stack until it execs, the signals a
 * child must put back to their default, and its environment's memory. */

struct spawner {
	void *stack;
	size_t stack_size;
	sigset_t reset;
	bool handlers;    /* some signal has a handler: block all at a spawn */
	bool no_clone3;   /* clone3 into a cgroup failed once: not again */
	bool no_pidfd;    /* CLONE_PIDFD refused once: not again */
	bool share_files; /* a child can unshare our descriptor table */
	pid_t pid;        /* the daemon's */
	int null;         /* /dev/null: what a slot holds between spawns */
	int slot[SPAWN_SLOTS]; /* -1: none (then the ends stay where they are)
	                        */
	struct spawn_env_mem env;
};

#define SPAWN_MAX_GROUPS 256 /* supplementary groups of a `user:` */

/* Who the worker is, for its AGENTSUP_* environment, and where it goes. */
struct spawn_args {
	const struct spec *spec;
	const char *path;
	unsigned long incarnation;
	const char *notify_socket; /* NOTIFY_SOCKET for `notify: systemd` */
	/* AGENTSUP_SOCKET for a worker granted `control:` (else none: a
	 * nested agentsupd would take ours) */
	const char *control_socket;
	int output[2]; /* `capture`: the pipes' ends for fd 1 and 2 (logcap) */
	/* its env_file's entries (envload.c), NULL-terminated, or NULL */
	char *const *file_env;
	int cgroup_fd; /* its cgroup's directory (contain.c), or -1 */
	bool last; /* no other start follows in this turn (spawn.c yields) */
};

/* `user:` and `group:` resolved in the parent, before the clone: the child
 * may not read /etc/passwd (not async-signal-safe). */
#define SPAWN_USER_ENV 4 /* HOME, USER, LOGNAME, SHELL */

struct spawn_ids {
	bool set;
	uid_t uid;
	gid_t gid;
	int ngroups;
	gid_t groups[SPAWN_MAX_GROUPS];
	/* `user:`'s entry, for the worker's HOME, USER, LOGNAME and SHELL
	 * (as systemd's User= sets them): "HOME=/home/agent"..., or all
	 * empty for no switch or a uid without an entry */
	char env[SPAWN_USER_ENV][1024];
};

/* A started process: its pid, the daemon's end of the channel, and why
 * exec failed when it did (the process then exits 126 or 127 at once). */
struct spawn_result {
	pid_t pid;
	int pidfd; /* its pidfd (reap.c), or -1 */
	int chan;
	char *exec_error; /* malloc'd, or NULL */
	uid_t uid;        /* the user it runs as */
};

/* After the daemon's signal handlers are in place. -1 with errno. */
int spawner_init(struct spawner *);
void spawner_fini(struct spawner *);
/* Resolve a worker's user: and group:; -1 with *why (malloc'd). */
int spawn_ids_resolve(const struct spec *, struct spawn_ids *, char **why);
/* Whether every worker under root can be started as its user: and group:
 * say (they exist, and agentsupd may switch to them): -1 with *why
 * (malloc'd) naming the first that cannot. */
int spawn_check_ids(const struct spec *root, char **why);
/* 0, or -1 with errno when no process could be made at all. */
int spawn_worker(struct spawner *, const struct spawn_args *,
                 struct spawn_result *);

#endif
