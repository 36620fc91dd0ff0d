/* pidmap.h - pid -> session, open addressing: an exit costs O(1), never a
 * tree scan. */
#ifndef AGENTSUP_PIDMAP_H
#define AGENTSUP_PIDMAP_H

#include <stddef.h>
#include <sys/types.h>

struct session;

struct pidmap {
	pid_t *keys;
	struct session **vals;
	size_t cap, count;
};

struct session *pidmap_get(const struct pidmap *, pid_t);
void pidmap_put(struct pidmap *, pid_t, struct session *);
void pidmap_del(struct pidmap *, pid_t);
void pidmap_free(struct pidmap *);

#endif
