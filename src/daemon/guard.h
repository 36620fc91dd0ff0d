/* guard.h - the processes that outlive agentsupd to end what it supervised
 * (contain.c's, pidns.c's): the guard, which ends everything in agentsupd's
 * cgroups when agentsupd ends, even by SIGKILL, and the init of the
 * workers' PID namespace. Both are the small program agentsup-guard
 * (guardbin.c) exec'd after the fork, or, where it cannot be found, the
 * forked agentsupd itself running the same functions. Async-signal-safe
 * after the fork, and free of the daemon's other files. */
#ifndef AGENTSUP_GUARD_H
#define AGENTSUP_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifndef AGENTSUP_LIBEXECDIR
#define AGENTSUP_LIBEXECDIR "/usr/libexec" /* set by the build */
#endif
#define GUARD_HELPER  "agentsup-guard"
#define GUARD_FD_PIPE 3 /* in the helper: the pipe's read end */
#define GUARD_FD_DIR  4 /* in the helper: the cgroup directory */

/* The helper's path: next to the running agentsupd (a build tree), in
 * ../libexec from it (an install moved by --prefix), each only where it
 * and its directory are ours or root's and nobody else's to write; else
 * in libexecdir (an install). False when none is executable. */
bool guard_helper(char *path, size_t len);
/* Fork the guard for the cgroup directory dir (dirfd open on it), exec'ing
 * helper (or NULL: the fork runs it): *wfd is the pipe end to close (or to
 * lose, by dying) to set it off. -1, errno. */
int guard_start(const char *helper, int dirfd, const char *dir, int *wfd,
                pid_t *pid);
/* Clone the init of a new PID namespace (helper as above): it reaps the
 * orphans there and ends, and with it the namespace, when *wfd closes or
 * agentsupd dies. -1, errno (EPERM: no CAP_SYS_ADMIN). */
int guard_init_start(const char *helper, int *wfd, pid_t *pid);
/* The cgroup name below dirfd removed with every cgroup below it (depth:
 * 0 from a caller). 0, or -1 with errno (EBUSY: processes are left). */
int guard_rmdir_tree(int dirfd, const char *name, int depth);
/* The same for every child cgroup of the one open at fd (which stays). */
int guard_rmdir_below(int fd, int depth);
/* Remove every child cgroup of dir once empty, then dir; bounded. */
void guard_remove_all(int dirfd, const char *dir);
/* The two roles, in the helper or in the fork: never return. */
_Noreturn void guard_run(int rfd, int dirfd, const char *dir);
_Noreturn void guard_init_run(int rfd);

#endif
