/*
 * logsub.h - whether a worker's captured output is of a supervisor's
 * subtree, for the clients that follow a subtree (agentsupctl logs SUP -f).
 */
#ifndef AGENTSUP_LOGSUB_H
#define AGENTSUP_LOGSUB_H

#include <stdbool.h>
#include <stdint.h>

#include "session.h"

struct daemon;

/* The last capture name looked up and its node's path. */
struct logsub {
	char name[SESSION_CAPTURE_NAME_MAX];
	char *path;   /* NULL until a lookup found a node */
	uint64_t gen; /* the reloads applied when it was looked up */
};

/* The path of the node whose output is kept under name (a worker's name,
 * a task's POOL:KEY), or NULL if none is in the tree. Valid until the next
 * call. */
const char *logsub_path(struct logsub *, struct daemon *, const char *name);
/* Whether path is below the supervisor at sup (a path). */
bool logsub_under(const char *path, const char *sup);
void logsub_free(struct logsub *);

#endif
