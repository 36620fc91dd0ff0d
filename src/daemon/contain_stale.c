/*
 * contain_stale.c - the cgroups an agentsupd left when it and its guard
 * were killed together (kill -9 of both), removed at the next start so
 * they do not pile up. Each agentsupd, then its guard, holds a lock on its
 * agentsup.<pid>/ for its life (contain.c): one nobody holds, whose pid no
 * process has here, is stale.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "contain_int.h"
#include "guard.h"
#include "log.h"

/* A child cgroup of a stale agentsup.<pid>/ removed, if empty: 1, else 0. */
static int
contain_rmdir_children(int fd)
{
	int ok = 1, dfd = dup(fd);
	DIR *dir = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *e;

	if (dir == NULL) {
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	while ((e = readdir(dir)) != NULL)
		if (e->d_type == DT_DIR && strcmp(e->d_name, ".") != 0 &&
		    strcmp(e->d_name, "..") != 0 &&
		    guard_rmdir_tree(fd, e->d_name, 0) < 0 && errno != ENOENT)
			ok = 0; /* populated */
	closedir(dir);
	return ok;
}

/* Whether agentsup.<pid>[.N] belongs to an agentsupd that is gone: nobody
 * holds its lock (agentsupd, then its guard, hold it for their lives, in
 * whatever PID namespace) and no process has its pid here. */
static bool
contain_stale(const char *name, int fd)
{
	char *end;
	long pid = strtol(name + strlen("agentsup."), &end, 10);

	if (end == name + strlen("agentsup.") || (*end != '\0' && *end != '.'))
		return false;
	if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
		return false; /* its pid lives: an agentsupd from before locks
		               */
	return flock(fd, LOCK_EX | LOCK_NB) == 0;
}

void
contain_sweep_stale(const char *parent, const char *mine)
{
	DIR *dir = opendir(parent);
	struct dirent *e;
	int fd;

	if (dir == NULL)
		return;
	while ((e = readdir(dir)) != NULL) {
		if (strncmp(e->d_name, "agentsup.", 9) != 0 ||
		    strcmp(e->d_name, mine) == 0 ||
		    (fd = openat(dirfd(dir), e->d_name,
		                 O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			continue;
		if (!contain_stale(e->d_name, fd)) {
			close(fd);
			continue;
		}
		if (contain_rmdir_children(fd) &&
		    (unlinkat(dirfd(dir), e->d_name, AT_REMOVEDIR) == 0 ||
		     errno == ENOENT)) /* or another agentsupd's sweep */
			log_info("contain: removed %s/%s, left by an agentsupd "
			         "that is gone",
			         parent, e->d_name);
		else
			log_warnx(
			        "contain: %s/%s, left by an agentsupd that is "
			        "gone, still holds processes or cgroups",
			        parent, e->d_name);
		close(fd);
	}
	closedir(dir);
}
