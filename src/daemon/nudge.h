/*
 * nudge.h - the shell's side of DESIGN §10: nudges sent to workers, the
 * engine's stops for stall, loop and budget, and the events of progress.
 */
#ifndef AGENTSUP_NUDGE_H
#define AGENTSUP_NUDGE_H

#include "tree.h"

struct daemon;

/* ACT_NUDGE and ACT_FAIL. */
void nudge_act(struct daemon *, const struct action *);
/* EE_STALLED, EE_LOOPING, EE_BUDGET_WARNING, EE_RECYCLED as events. */
void nudge_event(struct daemon *, const struct action *);

#endif
