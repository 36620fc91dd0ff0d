/* render.h - agentsupctl's output. */
#ifndef AGENTSUP_RENDER_H
#define AGENTSUP_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <msgpack.h>

/* A string object as a C string in buf ("" when absent or not a string),
 * escaped for a terminal (text.h): worker text never forges a line or an
 * escape sequence; too long, it is cut and says so ("?" if buf is too
 * small even for that). */
const char *render_str(const msgpack_object *, char *buf, size_t len);
/* A map's string field as render_str gives it. */
const char *render_get_s(const msgpack_object *m, const char *key, char *buf,
                         size_t len);
/* Whether a map has key set to true. */
bool render_get_flag(const msgpack_object *m, const char *key);
/* A map's integer field into *out; false (*out untouched) when absent or
 * not an integer. */
bool render_get_u(const msgpack_object *m, const char *key, uint64_t *out);
/* n bytes of text as a JSON string (valid UTF-8 whatever they were). */
void render_json_str(FILE *, const char *s, size_t n);
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
