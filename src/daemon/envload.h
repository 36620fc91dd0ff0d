/* envload.h - a worker's `env_file:`, read at each of its starts. */
#ifndef AGENTSUP_ENVLOAD_H
#define AGENTSUP_ENVLOAD_H

#include <stddef.h>

#include "config.h"

/* The entries of every file of s->env_files, in order ("KEY=VALUE",
 * NULL-terminated; a later one sets a key again), into *out: 0, the caller
 * frees them (config_free_strv; NULL when there are none); or -1 with why,
 * naming the file, and errno (nothing allocated). */
int envload_read(const struct spec *s, char ***out, char *why, size_t len);

#endif
