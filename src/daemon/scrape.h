/* scrape.h - what a /metrics scrape of agentsupd shows. */
#ifndef AGENTSUP_SCRAPE_H
#define AGENTSUP_SCRAPE_H

#include "metrics.h"

/* A metrics_render_fn; arg is the struct daemon. */
void scrape_render(void *arg, struct metrics_out *);
/* Serve /metrics at "HOST:PORT", or stop when addr is NULL; an unchanged
 * address changes nothing. -1 (logged, why in *why if not NULL) when it
 * cannot be served. */
struct daemon;
int scrape_configure(struct daemon *, const char *addr, const char **why);

#endif
