/* peer.h - the worker a control peer runs inside, if any. */
#ifndef AGENTSUP_PEER_H
#define AGENTSUP_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct contain;

enum peer_kind {
	PEER_OUTSIDE, /* not in the supervised tree: an operator */
	PEER_WORKER,  /* inside a worker: *worker or path says which */
	PEER_GONE,    /* exited before it was looked at: nobody can tell (a
	                 worker's child that connected, passed the socket on and
	                 exited would pass for an operator) */
};

/* The worker a control peer belongs to: *worker, a pid that is_worker
 * accepted (the peer, an ancestor, or its process group), or path (the
 * worker's path, from its cgroup). */
enum peer_kind peer_worker(struct contain *, pid_t peer,
                           bool (*is_worker)(void *, pid_t), void *arg,
                           pid_t *worker, char *path, size_t pathlen);

#endif
