/* reap.h - every child's exit, routed to whoever owns it. */
#ifndef AGENTSUP_REAP_H
#define AGENTSUP_REAP_H

struct daemon;

/* SIGCHLD blocked and read from a signalfd watched by the loop (before any
 * child is made, before any thread starts). 0, or -1 with errno. */
int reap_open(struct daemon *);
void reap_close(struct daemon *);

#endif
