/*
 * spawner.c - what every spawn shares, set up once at start (spawn.h): the
 * signals a child resets, the clone stack, the low slots a child's ends
 * are moved into, and whether a child can unshare our descriptor table.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "spawn.h"
#include "spawn_int.h"

static int
spawner_probe_cb(void *arg)
{
	(void)arg;
	_exit(spawn_unshare_fds(3) == 0 ? 0 : 1);
}

/* Whether a child born on our descriptor table can take its own copy:
 * close_range is Linux 5.9+, and seccomp profiles (Docker's default on
 * older kernels) refuse unshare. A throwaway child tries what every
 * spawn's would; where it cannot, spawns copy the table at the clone. */
static bool
spawner_probe_share(struct spawner *sp)
{
	sigset_t all, old;
	int status;
	pid_t pid;

	sigfillset(&all); /* no handler of ours may run in the child */
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = clone(spawner_probe_cb, (char *)sp->stack + sp->stack_size,
	            CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0)
		return false;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The slots: /dev/null at the lowest free descriptors above the child's
 * channel number, taken while our table is still small. Without them (no
 * /dev/null, no descriptor) spawns give the child its ends where they are. */
static void
spawner_slots(struct spawner *sp)
{
	sp->null = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int i = 0; i < SPAWN_SLOTS; i++)
		sp->slot[i] = sp->null < 0 ? -1
		                           : fcntl(sp->null, F_DUPFD_CLOEXEC,
		                                   AGENTSUP_CHILD_FD + 1);
}

/* Which signals a child must reset: those the daemon handles or ignores.
 * Computed once the daemon's handlers are in place. */
int
spawner_init(struct spawner *sp)
{
	struct sigaction sa;

	sp->null = -1;
	for (int i = 0; i < SPAWN_SLOTS; i++)
		sp->slot[i] = -1;
	spawn_env_mem_init(&sp->env);
	sigemptyset(&sp->reset);
	sp->handlers = false;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP &&
		    sigaction(sig, NULL, &sa) == 0 &&
		    sa.sa_handler != SIG_DFL) {
			sigaddset(&sp->reset, sig);
			sp->handlers |= sa.sa_handler != SIG_IGN;
		}
	sp->pid = getpid();
	sp->stack_size = SPAWN_STACK_SIZE;
	sp->stack = mmap(NULL, sp->stack_size, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (sp->stack == MAP_FAILED) {
		sp->stack = NULL;
		return -1;
	}
	spawner_slots(sp);
	sp->share_files = spawner_probe_share(sp);
	if (!sp->share_files)
		log_info("spawn: the child cannot unshare our descriptor table "
		         "(close_range/unshare refused): each spawn copies it");
	return 0;
}

void
spawner_fini(struct spawner *sp)
{
	if (sp->stack != NULL)
		munmap(sp->stack, sp->stack_size);
	sp->stack = NULL;
	for (int i = 0; i < SPAWN_SLOTS; i++) {
		if (sp->slot[i] >= 0)
			close(sp->slot[i]);
		sp->slot[i] = -1;
	}
	if (sp->null >= 0)
		close(sp->null);
	sp->null = -1;
	spawn_env_mem_free(&sp->env);
}
