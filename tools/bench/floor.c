/*
 * floor.c - the kernel's floor for what a supervisor does: a minimal C
 * program that keeps N copies of a command running, restarting each the
 * moment it is reaped, with nothing else in the way. The benchmarks measure
 * it exactly as they measure the supervisors.
 *
 *   floor [-s] N command [args...]
 *
 * With -s each copy starts by posix_spawn (glibc: clone(CLONE_VM|
 * CLONE_VFORK), as agentsupd spawns) instead of fork (a copy of the
 * floor's page tables) and execv.
 */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static bool use_posix_spawn;

static pid_t
spawn(char **argv)
{
	pid_t pid;

	if (use_posix_spawn)
		return posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) ==
		                       0
		               ? pid
		               : -1;
	pid = fork();

	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

int
main(int argc, char **argv)
{
	int n;
	pid_t *pids;

	if (argc > 1 && argv[1][0] == '-' && argv[1][1] == 's') {
		use_posix_spawn = true;
		argc--;
		argv++;
	}
	n = argc > 2 ? atoi(argv[1]) : 0;
	if (n <= 0) {
		fprintf(stderr, "usage: floor [-s] N command [args...]\n");
		return 64;
	}
	/* no SA_RESTART: SIGTERM must interrupt wait() */
	struct sigaction sa = {.sa_handler = on_term};
	sigaction(SIGTERM, &sa, NULL);
	if ((pids = calloc((size_t)n, sizeof *pids)) == NULL)
		return 1;
	for (int i = 0; i < n; i++)
		pids[i] = spawn(argv + 2);
	while (!stop) {
		int status;
		pid_t p = wait(&status);
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0)
			break;
		for (int i = 0; i < n; i++)
			if (pids[i] == p)
				pids[i] = spawn(argv + 2);
	}
	for (int i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	while (wait(NULL) > 0)
		;
	free(pids);
	return 0;
}
