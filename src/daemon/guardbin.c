/*
 * guardbin.c - agentsup-guard, the small program the guard and the PID
 * namespace's init run as (guard.c): exec'd by agentsupd right after the
 * fork, so that neither carries agentsupd's memory. Not for users:
 *   agentsup-guard guard DIR   (pipe at fd 3, DIR's descriptor at fd 4)
 *   agentsup-guard init        (pipe at fd 3; PID 1 of a new namespace)
 */
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "guard.h"

/* Whether agentsupd handed us descriptor fd (not a user at a shell). */
static bool
guardbin_has(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

int
main(int argc, char **argv)
{
	static const char usage[] =
	        "agentsup-guard: a helper of agentsupd, started by it only\n";

	if (argc == 3 && strcmp(argv[1], "guard") == 0 &&
	    guardbin_has(GUARD_FD_PIPE) && guardbin_has(GUARD_FD_DIR))
		guard_run(GUARD_FD_PIPE, GUARD_FD_DIR, argv[2]);
	if (argc == 2 && strcmp(argv[1], "init") == 0 &&
	    guardbin_has(GUARD_FD_PIPE))
		guard_init_run(GUARD_FD_PIPE);
	(void)!write(STDERR_FILENO, usage, sizeof usage - 1);
	return 2;
}
