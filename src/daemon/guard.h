/* guard.h - the process that ends everything in agentsupd's cgroups when
 * agentsupd itself ends, even by SIGKILL (contain.c's). */
#ifndef AGENTSUP_GUARD_H
#define AGENTSUP_GUARD_H

#include <sys/types.h>

/* Fork the guard for the cgroup directory dir (dirfd open on it): *wfd is
 * the pipe end to close (or to lose, by dying) to set it off. -1, errno. */
int guard_start(int dirfd, const char *dir, int *wfd, pid_t *pid);
/* Remove every child cgroup of dir once empty, then dir; bounded. */
void guard_remove_all(int dirfd, const char *dir);

#endif
