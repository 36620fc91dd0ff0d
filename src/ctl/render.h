/* render.h - agentsupctl's output. */
#ifndef AGENTSUP_RENDER_H
#define AGENTSUP_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <msgpack.h>

/* Any msgpack object as JSON. */
void render_json(FILE *, const msgpack_object *);
/* A status answer (an array of node maps, depth-first) as a tree; -1 when
 * out of memory. */
int render_tree(const msgpack_object *nodes, bool color);
/* One event as a line (or as JSON). */
void render_event(const msgpack_object *, bool json);
/* How many nodes of a status answer are not in the state they should be. */
size_t render_count_unhealthy(const msgpack_object *nodes);

#endif
