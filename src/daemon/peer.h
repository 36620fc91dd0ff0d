/* peer.h - the worker a control peer runs inside, if any. */
#ifndef AGENTSUP_PEER_H
#define AGENTSUP_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct contain;

/* The worker a control peer belongs to: *worker, a pid that is_worker
 * accepted (the peer, an ancestor, or its process group), or path (the
 * worker's path, from its cgroup). false: outside the supervised tree. */
bool peer_worker(struct contain *, pid_t peer, bool (*is_worker)(void *, pid_t),
                 void *arg, pid_t *worker, char *path, size_t pathlen);

#endif
