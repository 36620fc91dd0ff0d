/*
 * hooks_spawn.c - a hook's process. The event's JSON goes through a memfd:
 * writing to it never blocks, the hook reads it as a seekable stdin, and no
 * pipe needs watching. Spawned as a worker is (clone with
 * CLONE_VM|CLONE_VFORK: an exec failure is known when clone returns), in a
 * process group of its own with PDEATHSIG.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "hooks_spawn.h"
#include "nofile.h"

#define HOOKS_STACK_SIZE (128 * 1024)

/* Shared with the child (CLONE_VM): it writes err if it cannot exec. */
struct hook_child {
	char **argv;
	int input;
	pid_t parent;
	int err;
};

/* In the child, sharing our memory until exec: only syscalls. */
static int
hooks_child_main(void *arg)
{
	struct hook_child *c = arg;
	sigset_t none;

	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (setpgid(0, 0) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
	    nofile_restore() < 0 || dup2(c->input, STDIN_FILENO) < 0) {
		c->err = errno;
		_exit(126);
	}
	if (getppid() != c->parent)
		_exit(126); /* the daemon died before PDEATHSIG was armed */
	/* every descriptor of ours is CLOEXEC already; this makes sure */
	(void)close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	execvp(c->argv[0], c->argv);
	c->err = errno;
	_exit(errno == ENOENT ? 127 : 126);
}

/* The event's JSON in a memfd, at offset 0; -1 with errno. */
static int
hooks_input(const char *json, size_t len)
{
	int fd = memfd_create("agentsup-hook", MFD_CLOEXEC);
	size_t at = 0;

	if (fd < 0)
		return -1;
	while (at < len) {
		ssize_t n = write(fd, json + at, len - at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		at += (size_t)n;
	}
	if (write(fd, "\n", 1) != 1 || lseek(fd, 0, SEEK_SET) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

pid_t
hooks_spawn(void **stack, char **argv, const char *json, size_t len, int *err)
{
	struct hook_child c = {argv, -1, getpid(), 0};
	sigset_t all, old;
	pid_t pid;
	int e;

	*err = 0;
	if (*stack == NULL) {
		void *p = mmap(NULL, HOOKS_STACK_SIZE, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
		if (p == MAP_FAILED)
			return -1;
		*stack = p;
	}
	if ((c.input = hooks_input(json, len)) < 0)
		return -1;
	/* no handler of ours may run in the child before it resets them */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = clone(hooks_child_main, (char *)*stack + HOOKS_STACK_SIZE,
	            CLONE_VM | CLONE_VFORK | SIGCHLD, &c);
	e = errno;
	*err = pid < 0 ? 0 : c.err;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(c.input);
	errno = e;
	return pid;
}

void
hooks_spawn_free(void *stack)
{
	if (stack != NULL)
		munmap(stack, HOOKS_STACK_SIZE);
}
