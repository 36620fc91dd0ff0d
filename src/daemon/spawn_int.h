/*
 * spawn_int.h - what spawn.c (a spawn) and spawner.c (set up once) share.
 * Nothing else includes it.
 */
#ifndef AGENTSUP_SPAWN_INT_H
#define AGENTSUP_SPAWN_INT_H

#define AGENTSUP_CHILD_FD 3 /* the channel, in the worker */

/* Born sharing our descriptor table (CLONE_FILES: the clone copies none
 * of it), the child takes a copy of the part below the descriptors it
 * needs only: with 1,000 workers the daemon holds thousands, which a whole
 * copy, then exec's close-on-exec, would each touch at every spawn. In the
 * child: 0, or -1 with errno. */
int spawn_unshare_fds(int below);

#endif
