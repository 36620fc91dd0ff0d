/* confdir.h - supervisor.d/ read from disk for the pure parser. */
#ifndef AGENTSUP_CONFDIR_H
#define AGENTSUP_CONFDIR_H

#include <stddef.h>

#include "config.h"

/* The bytes of every file read, in the order config_parse takes them. */
struct confdir {
	struct config_source *files; /* name = the path, data owned here */
	size_t n;
};

/* Every *.yaml / *.yml of dir, in byte order of name: 0, or -1 with
 * errors added (a file that is not regular, too large, unreadable). */
int confdir_read(const char *dir, struct confdir *, struct config_errors *);
/* These files, in this order. */
int confdir_read_paths(const char *const *paths, size_t n, struct confdir *,
                       struct config_errors *);
void confdir_free(struct confdir *);

#endif
