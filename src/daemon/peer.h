/* peer.h - the worker a control peer runs inside, if any. */
#ifndef AGENTSUP_PEER_H
#define AGENTSUP_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct daemon;

enum peer_kind {
	PEER_OUTSIDE, /* not in the supervised tree: an operator */
	PEER_WORKER,  /* inside a worker: *worker or path says which */
	PEER_GONE,    /* exited before it was looked at: nobody can tell (a
	                 worker's child that connected, passed the socket on and
	                 exited would pass for an operator) */
};

/* A worker's path: 32 levels of 64-byte names, and a task's key. */
#define PEER_PATH_MAX 4096

/* The worker a peer (a control client, a signal's sender) belongs to, by
 * agentsupd's sessions (the peer, an ancestor, or its process group) or
 * its cgroup: its node's path in path. */
enum peer_kind peer_worker(struct daemon *, pid_t peer, char *path,
                           size_t pathlen);
/* Whether the worker at path may ask cmd (a control command's name): its
 * `control:` grants. */
bool peer_granted(struct daemon *, const char *path, const char *cmd);

#endif
