/*
 * watch.h - the shell's side of DESIGN §10: nudges sent to workers, the
 * engine's stops for stall, loop and budget, and the events of progress.
 */
#ifndef AGENTSUP_WATCH_H
#define AGENTSUP_WATCH_H

#include <msgpack.h>
#include <stdint.h>

#include "tree.h"

struct daemon;

/* ACT_NUDGE and ACT_FAIL. */
void watch_act(struct daemon *, const struct action *);
/* EE_STALLED, EE_LOOPING, EE_BUDGET_WARNING, EE_RECYCLED as events. */
void watch_event(struct daemon *, const struct action *);
/* Status keys stalled_ms, loop, budget {limits, spend} (DESIGN §14). */
void watch_status(msgpack_packer *, const struct node *, uint64_t now);

#endif
