/*
 * guard.c - the guard and the namespace init: small processes started at
 * start that outlive agentsupd. Each blocks on a pipe whose other end only
 * agentsupd holds, so it sees agentsupd end however it ends (SIGKILL too:
 * the kernel closes the pipe). The guard then kills every process in
 * agentsupd's cgroups (cgroup.kill of their parent) and removes them; the
 * init, PID 1 of the workers' PID namespace, exits, and the kernel kills
 * every process in the namespace. Nothing else survives the daemon then.
 *
 * Both are exec'd as agentsup-guard (guardbin.c) so that they do not carry
 * agentsupd's memory; where the helper cannot be found, the fork runs the
 * same code. Everything after a fork here is async-signal-safe.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guard.h"

#define GUARD_EMPTY_MS  3000 /* the wait for the cgroups to empty */
#define GUARD_DEPTH_MAX 32   /* cgroups a worker nests below its one */

/* Owned by us or root and writable by nobody else. */
static bool
guard_owned(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 &&
	       (st.st_uid == 0 || st.st_uid == geteuid()) &&
	       (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/* The helper at dir/GUARD_HELPER, if it and dir are trusted: agentsupd
 * runs it (as root, often), so one another user could put there (a
 * binary in /tmp/x found a guard in /tmp/libexec) is not run. */
static bool
guard_candidate(char *path, size_t len, const char *dir)
{
	char real[PATH_MAX];
	int k = snprintf(path, len, "%s/%s", dir, GUARD_HELPER);

	return k > 0 && (size_t)k < len && access(path, X_OK) == 0 &&
	       realpath(dir, real) != NULL && guard_owned(real) &&
	       guard_owned(path);
}

bool
guard_helper(char *path, size_t len)
{
	char exe[PATH_MAX], up[PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	char *slash;
	int k;

	if (n > 0) {
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')) != NULL) {
			*slash = '\0';
			if (guard_candidate(path, len, exe))
				return true;
			/* PREFIX/sbin/agentsupd: cmake --install --prefix
			 * PREFIX moved both from the LIBEXECDIR built in */
			snprintf(up, sizeof up, "%s/../libexec", exe);
			if (guard_candidate(path, len, up))
				return true;
		}
	}
	k = snprintf(path, len, "%s/%s", AGENTSUP_LIBEXECDIR, GUARD_HELPER);
	return k > 0 && (size_t)k < len && access(path, X_OK) == 0;
}

/* Deepest first: a worker may make cgroups of its own below its one (a
 * sandbox such as nsjail does), and a cgroup with a child cannot be
 * removed. getdents64 into the stack, no malloc: async-signal-safe after a
 * fork. */
int
guard_rmdir_below(int fd, int depth)
{
	/* the kernel's record (no libc's dirent64: musl 1.2.4 hides it) */
	struct guard_dirent {
		uint64_t ino;
		int64_t off;
		unsigned short reclen;
		unsigned char type;
		char name[];
	};
	_Alignas(8) char buf[1024];
	int err = 0;
	long n;

	if (depth > GUARD_DEPTH_MAX) {
		errno = EBUSY;
		return -1;
	}
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -1;
	while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
		for (long at = 0; at < n;) {
			struct guard_dirent *e = (void *)(buf + at);
			at += e->reclen;
			if (e->type == DT_DIR && e->name[0] != '.' &&
			    guard_rmdir_tree(fd, e->name, depth + 1) < 0 &&
			    errno != ENOENT && err != EBUSY)
				err = errno; /* EBUSY, if any was: waited for */
		}
	}
	if (n < 0)
		return -1;
	errno = err;
	return err != 0 ? -1 : 0;
}

int
guard_rmdir_tree(int dirfd, const char *name, int depth)
{
	int fd, err = 0;

	if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0)
		return 0; /* no child cgroup: the usual case */
	if (errno != EBUSY && errno != ENOTEMPTY)
		return -1;
	if ((fd = openat(dirfd, name,
	                 O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return -1;
	if (guard_rmdir_below(fd, depth) < 0)
		err = errno;
	close(fd);
	if (err == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
		err = errno;
	errno = err;
	return err != 0 ? -1 : 0;
}

/* Every child cgroup removed once empty, then the parent; bounded. */
void
guard_remove_all(int dirfd, const char *dir)
{
	struct timespec pause = {0, 5 * 1000 * 1000};

	for (int i = 0; i < GUARD_EMPTY_MS / 5; i++) {
		if (guard_rmdir_below(dirfd, 0) == 0 || errno != EBUSY)
			break;
		nanosleep(&pause, NULL);
	}
	for (int i = 0;
	     i < GUARD_EMPTY_MS / 5 && rmdir(dir) < 0 && errno == EBUSY; i++)
		nanosleep(&pause, NULL);
}

/* Ignore the signals a terminal or a group kill sends (the guard and the
 * init share agentsupd's process group): they are there for the SIGKILL
 * case, and end when agentsupd does. Nothing blocked. */
static void
guard_signals(void)
{
	static const int ignored[] = {SIGINT,  SIGTERM, SIGHUP, SIGQUIT,
	                              SIGUSR1, SIGUSR2, SIGPIPE};
	sigset_t none;

	for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++)
		signal(ignored[i], SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

_Noreturn void
guard_run(int rfd, int dirfd, const char *dir)
{
	char c;
	int fd;

	guard_signals();
	/* out of agentsupd's process group since the fork (guard_start): a
	 * SIGKILL of it (a service manager's, a shell's job) must not take
	 * the guard too */
	prctl(PR_SET_NAME, "agentsup-guard");
	while (read(rfd, &c, 1) < 0 && errno == EINTR)
		;
	if ((fd = openat(dirfd, "cgroup.kill", O_WRONLY | O_CLOEXEC)) >= 0)
		(void)write(fd, "1", 1);
	guard_remove_all(dirfd, dir);
	_exit(0);
}

/* SIGCHLD's handler: it only has to interrupt ppoll. */
static void
guard_nothing(int sig)
{
	(void)sig;
}

_Noreturn void
guard_init_run(int rfd)
{
	struct sigaction sa = {.sa_handler = guard_nothing};
	sigset_t chld, none;

	guard_signals();
	prctl(PR_SET_NAME, "agentsup-init");
	/* armed before the fork's exec too; again, harmlessly, in the helper */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&none);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	for (;;) {
		/* readable: EOF, agentsupd is gone or closing; the kernel
		 * then kills the whole namespace as we exit */
		struct pollfd p = {rfd, POLLIN, 0};
		int n = ppoll(&p, 1, NULL, &none), err = errno;
		while (waitpid(-1, NULL, WNOHANG) > 0)
			; /* the orphans that setsid'd or double-forked */
		if (n > 0 || (n < 0 && err != EINTR))
			_exit(0);
	}
}

/* In the child of a fork: the pipe's read end at GUARD_FD_PIPE, the cgroup
 * directory (or -1) at GUARD_FD_DIR, nothing else of agentsupd's (its
 * socket, its files) but stdio; then the helper, or the same code here. */
static _Noreturn void
guard_child(const char *helper, int rfd, int dirfd, const char *dir)
{
	char *const argv_guard[] = {GUARD_HELPER, "guard", (char *)dir, NULL};
	char *const argv_init[] = {GUARD_HELPER, "init", NULL};
	char *const envp[] = {NULL};
	int r = fcntl(rfd, F_DUPFD, 10);
	int d = dirfd >= 0 ? fcntl(dirfd, F_DUPFD, 10) : -1;
	int keep = dirfd >= 0 ? GUARD_FD_DIR : GUARD_FD_PIPE;

	if (r < 0 || dup2(r, GUARD_FD_PIPE) < 0 ||
	    (d >= 0 && dup2(d, GUARD_FD_DIR) < 0))
		_exit(127);
	/* by number: musl (which may build the helper) has no wrapper; where
	 * it is refused (a seccomp profile, Linux before 5.9), one by one:
	 * the init or guard run here, without the helper, for their whole
	 * life, and must hold nothing of agentsupd's (a worker's pidfd kept
	 * here would keep it in agentsupd's epoll after its reap) */
	if (syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0) < 0) {
		struct rlimit rl;
		long top = getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		                           rl.rlim_cur != RLIM_INFINITY
		                   ? (long)rl.rlim_cur
		                   : 65536;
		for (long fd = keep + 1; fd < top; fd++)
			(void)close((int)fd);
	}
	if (helper != NULL)
		execve(helper, dirfd >= 0 ? argv_guard : argv_init, envp);
	if (dirfd >= 0)
		guard_run(GUARD_FD_PIPE, GUARD_FD_DIR, dir);
	guard_init_run(GUARD_FD_PIPE);
}

int
guard_start(const char *helper, int dirfd, const char *dir, int *wfd,
            pid_t *pidp)
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
		/* a session of its own before anything else (guard_run's
		 * setsid came after the exec: a SIGKILL of agentsupd's group
		 * in that moment took the guard too) */
		(void)setsid();
		guard_child(helper, p[0], dirfd, dir);
	}
	/* and from here, whichever runs first: out of our group once this
	 * returns (EPERM: it is a session leader already) */
	(void)setpgid(pid, pid);
	close(p[0]);
	*wfd = p[1];
	*pidp = pid;
	return 0;
}

int
guard_init_start(const char *helper, int *wfd, pid_t *pidp)
{
	int p[2], err;
	long pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	/* fork's semantics, into a new PID namespace: the child is its 1 */
	pid = syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, 0L);
	if (pid < 0) {
		err = errno;
		close(p[0]);
		close(p[1]);
		errno = err;
		return -1;
	}
	if (pid == 0) {
		/* a parent outside the namespace reads as 0: a check that it
		 * is still ours would not work; the pipe says it instead */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		guard_child(helper, p[0], -1, NULL);
	}
	close(p[0]);
	*wfd = p[1];
	*pidp = (pid_t)pid;
	return 0;
}
