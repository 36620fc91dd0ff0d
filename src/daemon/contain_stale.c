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
		if (guard_rmdir_below(fd, 0) == 0 &&
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
