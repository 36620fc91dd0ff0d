/*
 * nofile.c - agentsupd's descriptor limit (see nofile.h). One per process,
 * hence the statics; a child made with CLONE_VM reads them before its exec.
 */
#include <stdbool.h>
#include <sys/resource.h>

#include "nofile.h"

static struct rlimit nofile_started; /* as agentsupd was started */
static bool nofile_raised;

void
nofile_raise(void)
{
	struct rlimit rl;

	if (nofile_raised || getrlimit(RLIMIT_NOFILE, &rl) < 0 ||
	    rl.rlim_cur >= rl.rlim_max)
		return;
	nofile_started = rl;
	rl.rlim_cur = rl.rlim_max;
	nofile_raised = setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

int
nofile_restore(void)
{
	return nofile_raised ? setrlimit(RLIMIT_NOFILE, &nofile_started) : 0;
}
