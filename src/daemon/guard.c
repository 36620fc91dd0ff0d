/*
 * guard.c - the guard: a small process forked at start that outlives
 * agentsupd. Blocked on a pipe whose other end only agentsupd holds, it
 * sees agentsupd end however it ends (SIGKILL too: the kernel closes the
 * pipe), then kills every process in agentsupd's cgroups (cgroup.kill of
 * their parent) and removes them. Nothing else survives the daemon then.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "guard.h"

#define GUARD_EMPTY_MS 3000 /* the wait for the cgroups to empty */

/* Every child cgroup removed once empty, then the parent; bounded. */
void
guard_remove_all(int dirfd, const char *dir)
{
	struct timespec pause = {0, 5 * 1000 * 1000};
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	for (int i = 0; d != NULL && i < GUARD_EMPTY_MS / 5; i++) {
		bool busy = false;
		rewinddir(d);
		while ((e = readdir(d)) != NULL)
			if (e->d_type == DT_DIR && e->d_name[0] != '.' &&
			    unlinkat(dirfd, e->d_name, AT_REMOVEDIR) < 0 &&
			    errno == EBUSY)
				busy = true;
		if (!busy)
			break;
		nanosleep(&pause, NULL);
	}
	if (d != NULL)
		closedir(d);
	else if (fd >= 0)
		close(fd);
	for (int i = 0;
	     i < GUARD_EMPTY_MS / 5 && rmdir(dir) < 0 && errno == EBUSY; i++)
		nanosleep(&pause, NULL);
}

/* The guard: blocked until agentsupd is gone, however it went, then
 * everything it supervised goes too. Ignores the signals a terminal or a
 * group kill sends, so it is there for the SIGKILL case. */
static _Noreturn void
guard_main(int rfd, int dirfd, const char *dir)
{
	static const int ignored[] = {SIGINT,  SIGTERM, SIGHUP, SIGQUIT,
	                              SIGUSR1, SIGUSR2, SIGPIPE};
	char c;
	int fd;

	for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++)
		signal(ignored[i], SIG_IGN);
	prctl(PR_SET_NAME, "agentsup-guard");
	while (read(rfd, &c, 1) < 0 && errno == EINTR)
		;
	if ((fd = openat(dirfd, "cgroup.kill", O_WRONLY | O_CLOEXEC)) >= 0)
		(void)write(fd, "1", 1);
	guard_remove_all(dirfd, dir);
	_exit(0);
}

int
guard_start(int dirfd, const char *dir, int *wfd, pid_t *pidp)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	if ((pid = fork()) < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		/* keep stdio, the pipe's read end and the cgroup directory:
		 * nothing else of agentsupd's (its socket, its files) */
		int lo = p[0] < dirfd ? p[0] : dirfd;
		int hi = p[0] < dirfd ? dirfd : p[0];
		(void)close_range(3, (unsigned)lo - 1, 0);
		(void)close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
		(void)close_range((unsigned)hi + 1, ~0U, 0);
		guard_main(p[0], dirfd, dir);
	}
	close(p[0]);
	*wfd = p[1];
	*pidp = pid;
	return 0;
}
