/* reap.h - every child's exit, routed by pid. */
#ifndef AGENTSUP_REAP_H
#define AGENTSUP_REAP_H

#include <ev.h>

/* libev's ev_child for pid 0: libev reaps in a loop until none is left. */
void reap_child_cb(struct ev_loop *, ev_child *, int);

#endif
