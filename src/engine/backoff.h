/* backoff.h - how long a failed child waits before its restart (§9). */
#ifndef AGENTSUP_BACKOFF_H
#define AGENTSUP_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

#include "tree.h"

/* Whether c has run for need_ms by now and, if it reports progress, its
 * progress moved in that time: the reset rule and the circuit's probe. */
bool backoff_stable(const struct node *c, uint64_t now, uint64_t need_ms);
/* Count a failure of c at now: its consecutive failures after the reset
 * rule, plus this one. */
unsigned backoff_count(struct node *c, uint64_t now);
/* The delay before restart n (1 = the first): 0, then capped exponential
 * with the spec's jitter, drawn from the tree's generator. */
uint64_t backoff_delay(struct tree *, const struct backoff_spec *, unsigned n);

#endif
