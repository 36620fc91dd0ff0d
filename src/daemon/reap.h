/* reap.h - every child's exit, routed to whoever owns it. */
#ifndef AGENTSUP_REAP_H
#define AGENTSUP_REAP_H

struct daemon;
struct session;

/* SIGCHLD blocked and read from a signalfd watched by the loop (before any
 * child is made, before any thread starts). 0, or -1 with errno. */
int reap_open(struct daemon *);
void reap_close(struct daemon *);
/* A new session: its pidfd watched, so that its exit is found even when
 * its SIGCHLD coalesces with another's (without one, or if the watch
 * fails, every SIGCHLD sweeps while it lives). */
void reap_watch(struct daemon *, struct session *);
/* Its end (before it is freed): the pidfd out of the epoll and closed. */
void reap_unwatch(struct daemon *, struct session *);
/* At exit, after the hooks and the containment are gone: every process
 * still our child is an orphan we adopted as subreaper (a hook's
 * descendant that left its group, a worker's where no cgroup held it),
 * and is killed and reaped. */
void reap_orphans_at_exit(void);

#endif
