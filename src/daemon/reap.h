/* reap.h - every child's exit, routed to whoever owns it. */
#ifndef AGENTSUP_REAP_H
#define AGENTSUP_REAP_H

struct daemon;
struct session;

/* SIGCHLD blocked and read from a signalfd watched by the loop (before any
 * child is made, before any thread starts). 0, or -1 with errno. */
int reap_open(struct daemon *);
void reap_close(struct daemon *);
/* Watch the session's pidfd, so that its exit is found even when its
 * SIGCHLD coalesces with another's. 0, or -1 with errno. */
int reap_watch(struct daemon *, struct session *);

#endif
