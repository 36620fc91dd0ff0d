/*
 * spawn.c - the shell's hands for starting a worker. Like posix_spawn, the
 * child shares our memory (CLONE_VM) and we wait until it has exec'd
 * (CLONE_VFORK): no page tables are copied, and an exec failure is known
 * when clone returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agentsup/wire.h"
#include "clone3.h"
#include "log.h"
#include "nofile.h"
#include "spawn.h"
#include "spawn_int.h"
#include "util.h"

/* What the child reports through the exec pipe before it gives up. */
struct exec_failure {
	int stage; /* enum below */
	int err;
};

enum {
	STAGE_CHDIR,
	STAGE_STDIN,
	STAGE_STDOUT,
	STAGE_STDERR,
	STAGE_EXEC,
	STAGE_SETUP,
	STAGE_CGROUP,
	STAGE_LIMITS,
	STAGE_IDS,
};

/* Shared with the child: with CLONE_VM it writes here, and CLONE_VFORK
 * keeps the parent waiting until it has exec'd or given up. */
struct spawn {
	const struct spec *spec;
	int chan;
	char **envp;
	pid_t parent;
	const sigset_t *reset; /* signals to put back to SIG_DFL */
	const int *output;     /* capture pipes' write ends */
	int cgroup_fd; /* cgroup.procs: write "0" to join its cgroup, or -1 */
	int fds_below; /* the child's own descriptor table: ours below this */
	bool share_files; /* born on our table (CLONE_FILES), then unshared */
	int nslots;       /* slots (spawner) holding this child's ends */
	int null;         /* /dev/null, read-write, for its stdin */
	const struct spawn_ids *ids;
	struct exec_failure fail;
};

static _Noreturn void
child_fail(struct spawn *sp, int stage, int err)
{
	sp->fail = (struct exec_failure){stage, err};
	_exit(err == ENOENT && stage == STAGE_EXEC ? 127 : 126);
}

static int
child_output(const struct output *o, int target, int cap)
{
	int fd;

	if (o->mode == OUTPUT_INHERIT)
		return 0;
	if (o->mode == OUTPUT_CAPTURE) /* dup2 clears CLOEXEC, unless a no-op */
		return cap == target           ? fcntl(cap, F_SETFD, 0)
		       : dup2(cap, target) < 0 ? -1
		                               : 0;
	fd = o->mode == OUTPUT_NULL
	             ? open("/dev/null", O_WRONLY | O_CLOEXEC)
	             : open(o->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	                    0644);
	if (fd < 0 || dup2(fd, target) < 0)
		return -1;
	close(fd);
	return 0;
}

/* /dev/null on stdin: the spawner's, kept open (no open(2) a restart),
 * unless that one is descriptor 0 itself. */
static int
child_stdin(const struct spawn *sp)
{
	int fd;

	if (sp->null > STDIN_FILENO)
		return dup2(sp->null, STDIN_FILENO) < 0 ? -1 : 0;
	if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 ||
	    dup2(fd, STDIN_FILENO) < 0)
		return -1;
	close(fd);
	return 0;
}

/* execve with a PATH search in the worker's own environment, as execvpe
 * would do but without reading ours. Only async-signal-safe calls. */
static int
child_execvpe(char **argv, char **envp)
{
	const char *p = spawn_env_path(envp);
	char buf[PATH_MAX];
	int saved = ENOENT;

	if (strchr(argv[0], '/') != NULL) {
		execve(argv[0], argv, envp);
		return errno;
	}
	while (*p != '\0') {
		size_t dl = strcspn(p, ":"), nl = strlen(argv[0]);
		if (dl + nl + 2 <= sizeof buf) {
			memcpy(buf, dl ? p : ".", dl ? dl : 1);
			dl = dl ? dl : 1;
			buf[dl] = '/';
			memcpy(buf + dl + 1, argv[0], nl + 1);
			execve(buf, argv, envp);
			if (errno == EACCES)
				saved = EACCES;
			else if (errno != ENOENT && errno != ENOTDIR)
				return errno;
		}
		p += strcspn(p, ":");
		if (*p == ':')
			p++;
	}
	return saved;
}

/* setrlimit for each of `limits:`, soft and hard alike. */
static int
child_limits(const struct limits_spec *l)
{
	static const int res[LIMIT__COUNT] = {
	        [LIMIT_NOFILE] = RLIMIT_NOFILE,
	        [LIMIT_NPROC] = RLIMIT_NPROC,
	        [LIMIT_CORE] = RLIMIT_CORE,
	        [LIMIT_MEMORY] = RLIMIT_AS,
	};
	struct rlimit rl;

	for (int i = 0; i < LIMIT__COUNT; i++) {
		if (!(l->set & (1u << i)))
			continue;
		rl.rlim_cur = rl.rlim_max =
		        l->v[i] == LIMIT_INFINITY ? RLIM_INFINITY : l->v[i];
		if (setrlimit(res[i], &rl) < 0)
			return -1;
	}
	return 0;
}

/* Groups, then gid, then uid, as raw system calls: glibc's wrappers would
 * signal the daemon's threads (setxid), whose memory we share. */
static int
child_ids(const struct spawn_ids *ids)
{
	if (!ids->set)
		return 0;
	if (syscall(SYS_setgroups, ids->ngroups, ids->groups) < 0 ||
	    syscall(SYS_setresgid, ids->gid, ids->gid, ids->gid) < 0 ||
	    syscall(SYS_setresuid, ids->uid, ids->uid, ids->uid) < 0)
		return -1;
	return 0;
}

int
spawn_unshare_fds(int below)
{
	if (close_range((unsigned)below, ~0U, CLOSE_RANGE_UNSHARE) == 0)
		return 0;
	return (int)syscall(SYS_unshare, CLONE_FILES); /* before Linux 5.9 */
}

static int
child_own_fds(const struct spawn *sp)
{
	return sp->share_files ? spawn_unshare_fds(sp->fds_below) : 0;
}

/* In the child, sharing the daemon's memory until exec: only syscalls and
 * writes to its own stack and to *sp. Never returns. */
static int
child_main(void *arg)
{
	struct spawn *sp = arg;
	const struct spec *s = sp->spec;
	sigset_t none;

	/* first: until then any descriptor change would be the daemon's */
	if (child_own_fds(sp) < 0)
		child_fail(sp, STAGE_SETUP, errno);

	/* the daemon's handlers must not run here (they would write to its
	 * memory); ignored signals would survive exec. The rest are default. */
	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(sp->reset, sig) == 1)
			signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (setpgid(0, 0) < 0)
		child_fail(sp, STAGE_SETUP, errno);
	/* into the worker's cgroup before anything could fork */
	if (sp->cgroup_fd >= 0 && write(sp->cgroup_fd, "0", 1) < 0)
		child_fail(sp, STAGE_CGROUP, errno);
	if (s->pol->umask_mode >= 0)
		umask((mode_t)s->pol->umask_mode);
	if (s->directory != NULL && chdir(s->directory) < 0)
		child_fail(sp, STAGE_CHDIR, errno);
	if (child_stdin(sp) < 0)
		child_fail(sp, STAGE_STDIN, errno);
	if (child_output(&s->out, STDOUT_FILENO, sp->output[0]) < 0)
		child_fail(sp, STAGE_STDOUT, errno);
	if (child_output(&s->err, STDERR_FILENO, sp->output[1]) < 0)
		child_fail(sp, STAGE_STDERR, errno);
	/* agentsupd's raised descriptor limit is not the worker's */
	if (nofile_restore() < 0 || child_limits(&s->pol->limits) < 0)
		child_fail(sp, STAGE_LIMITS, errno);
	/* the outputs are open (as agentsupd): now become the worker's user */
	if (child_ids(sp->ids) < 0)
		child_fail(sp, STAGE_IDS, errno);
	/* after the uid change, which would clear it */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		child_fail(sp, STAGE_SETUP, errno);
	/* 0: the daemon, outside the worker's PID namespace (contain.c) */
	if (getppid() != sp->parent && getppid() != 0)
		_exit(126); /* the daemon died before we armed PDEATHSIG */
	/* the channel, deliberately inherited (no CLOEXEC) at AGENTSUP_FD;
	 * every descriptor of ours is CLOEXEC, and any inherited one above
	 * it is closed here */
	if (dup2(sp->chan, AGENTSUP_CHILD_FD) < 0)
		child_fail(sp, STAGE_SETUP, errno);
	if (close_range(AGENTSUP_CHILD_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		for (int i = AGENTSUP_CHILD_FD + 1; i < 65536; i++)
			(void)fcntl(i, F_SETFD, FD_CLOEXEC);
	child_fail(sp, STAGE_EXEC, child_execvpe(s->argv, sp->envp));
}

#if defined(__x86_64__)
/* clone3 sharing our memory on the spawn stack: the child calls fn(arg)
 * there and never returns into a frame of ours (fn ends in _exit; the exit
 * below is a guard). glibc has no clone3 wrapper to do this. */
static long
spawn_clone3(struct clone3_args *ca, int (*fn)(void *), void *arg)
{
	register long r_fn __asm__("r12") = (long)fn;
	register long r_arg __asm__("r13") = (long)arg;
	long ret;

	__asm__ volatile("syscall\n\t"
	                 "testq %%rax, %%rax\n\t"
	                 "jnz 1f\n\t"
	                 "xorl %%ebp, %%ebp\n\t"
	                 "movq %%r13, %%rdi\n\t"
	                 "callq *%%r12\n\t"
	                 "movl %%eax, %%edi\n\t"
	                 "movl $60, %%eax\n\t" /* SYS_exit */
	                 "syscall\n\t"
	                 "hlt\n\t"
	                 "1:\n\t"
	                 : "=a"(ret)
	                 : "0"((long)CLONE3_SYSCALL), "D"(ca), "S"(sizeof *ca),
	                   "r"(r_fn), "r"(r_arg)
	                 : "rcx", "r11", "memory");
	return ret;
}
#endif

static unsigned long
spawn_files_flag(const struct spawn *sp)
{
	return sp->share_files ? CLONE_FILES : 0;
}

/* The child's table is ours below the highest descriptor it uses, + 1. */
static void
spawn_fds_below(struct spawn *sp, int fd)
{
	if (fd >= sp->fds_below)
		sp->fds_below = fd + 1;
}

/* The number to give the child for fd, one of ours: a low slot holding the
 * same file where one is free, so that the child's copy of our table stays
 * small (and its exec closes few). fd itself if there is none. */
static int
spawn_slot(struct spawner *sw, struct spawn *sp, int fd)
{
	int s;

	if (fd < 0)
		return fd;
	if (sp->nslots < SPAWN_SLOTS && (s = sw->slot[sp->nslots]) >= 0 &&
	    dup3(fd, s, O_CLOEXEC) == s) {
		sp->nslots++;
		fd = s;
	}
	spawn_fds_below(sp, fd);
	return fd;
}

/* After the clone: the slots hold /dev/null again (the child has its own
 * table by now, or was never made). */
static void
spawn_slots_clear(struct spawner *sw, struct spawn *sp)
{
	int err = errno;

	for (int i = 0; i < sp->nslots; i++)
		(void)dup3(sw->null, sw->slot[i], O_CLOEXEC);
	sp->nslots = 0;
	errno = err;
}

/* The child, born in its cgroup where clone3 can (CLONE_INTO_CGROUP: no
 * migration, whose lock costs milliseconds), else joining it itself by a
 * write to cgroup.procs before exec; with a pidfd in *pidfd (reap.c), or -1
 * where the kernel makes none. */
static pid_t
spawn_clone(struct spawner *sw, struct spawn *sp, int cgroup_dir, int *pidfd)
{
	unsigned long base = CLONE_VM | CLONE_VFORK | spawn_files_flag(sp);
	int procs = -1;
	pid_t pid;

	*pidfd = -1;
#if defined(__x86_64__)
	if (cgroup_dir >= 0 && !sw->no_clone3) {
		struct clone3_args ca = {
		        .flags = base | CLONE3_INTO_CGROUP |
		                 (sw->no_pidfd ? 0 : CLONE_PIDFD),
		        .pidfd = (uint64_t)(uintptr_t)pidfd,
		        .exit_signal = SIGCHLD,
		        .stack = (uint64_t)(uintptr_t)sw->stack,
		        .stack_size = sw->stack_size,
		        .cgroup = (uint64_t)cgroup_dir,
		};
		long r = spawn_clone3(&ca, child_main, sp);
		if (r > 0)
			return (pid_t)r;
		*pidfd = -1;
		if (r == -EAGAIN || r == -ENOMEM) {
			errno = (int)-r; /* no process now, either way */
			return -1;
		}
		sw->no_clone3 = true; /* old kernel or refused: as below */
		log_warnx("clone3 into a cgroup: %s: joining by cgroup.procs",
		          strerror((int)-r));
	}
#endif
	if (cgroup_dir >= 0 && (procs = openat(cgroup_dir, "cgroup.procs",
	                                       O_WRONLY | O_CLOEXEC)) < 0)
		return -1;
	sp->cgroup_fd = spawn_slot(sw, sp, procs);
	for (;;) {
		pid = clone(child_main, (char *)sw->stack + sw->stack_size,
		            (int)(base | SIGCHLD |
		                  (sw->no_pidfd ? 0 : CLONE_PIDFD)),
		            sp, pidfd);
		if (pid >= 0 || sw->no_pidfd ||
		    (errno != EINVAL && errno != EPERM && errno != ENOSYS))
			break;
		/* refused (a seccomp profile): without; a kernel before 5.2
		 * ignores the flag, and *pidfd stays -1 */
		*pidfd = -1;
		sw->no_pidfd = true;
		log_info("spawn: no pidfd (CLONE_PIDFD refused): every exit "
		         "is found by a walk over the children");
	}
	if (pid < 0)
		*pidfd = -1;
	if (procs >= 0) {
		int err = errno;
		close(procs);
		errno = err;
	}
	return pid;
}

static char *
exec_failure_text(const struct spec *s, const struct exec_failure *f)
{
	switch (f->stage) {
	case STAGE_CHDIR:
		return xasprintf("chdir %s: %s", s->directory,
		                 strerror(f->err));
	case STAGE_STDOUT:
		return xasprintf("stdout %s: %s",
		                 s->out.path ? s->out.path : "capture",
		                 strerror(f->err));
	case STAGE_STDERR:
		return xasprintf("stderr %s: %s",
		                 s->err.path ? s->err.path : "capture",
		                 strerror(f->err));
	case STAGE_EXEC:
		return xasprintf("exec %s: %s", s->argv[0], strerror(f->err));
	case STAGE_CGROUP:
		return xasprintf("joining its cgroup: %s", strerror(f->err));
	case STAGE_LIMITS:
		return xasprintf("limits: %s", strerror(f->err));
	case STAGE_IDS:
		return xasprintf("becoming user %s: %s",
		                 s->user ? s->user : "(agentsupd's)",
		                 strerror(f->err));
	default:
		return xasprintf("setting up the child: %s", strerror(f->err));
	}
}

int
spawn_worker(struct spawner *sw, const struct spawn_args *a,
             struct spawn_result *out)
{
	const struct spec *s = a->spec;
	char *own[SPAWN_ENV_OWN_MAX + 1];
	int nown;
	struct spawn_ids ids;
	struct spawn sp = {.spec = s,
	                   .share_files = sw->share_files,
	                   .reset = &sw->reset,
	                   .parent = sw->pid,
	                   .cgroup_fd = -1,
	                   .ids = &ids,
	                   .fail = {-1, 0}};
	int sv[2], ends[2], err, pidfd;
	sigset_t all, old;
	char *why;
	pid_t pid;

	if (spawn_ids_resolve(s, &ids, &why) < 0) {
		free(why); /* checked at start and reload: the user went since
		            */
		errno = ENOENT;
		return -1;
	}
	if ((nown = spawn_env_own(&sw->env, a, own)) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	sp.envp = spawn_env_build(&sw->env, s, &ids, a->file_env, own,
	                          (size_t)nown);
	sp.chan = spawn_slot(sw, &sp, sv[1]);
	ends[0] = spawn_slot(sw, &sp, a->output[0]);
	ends[1] = spawn_slot(sw, &sp, a->output[1]);
	sp.output = ends;
	sp.null = sw->null;
	spawn_fds_below(&sp, sw->null);

	/* no handler of ours may run in the child before it resets them
	 * (with libev's signalfd there are none: nothing to block) */
	if (sw->handlers) {
		sigfillset(&all);
		sigprocmask(SIG_SETMASK, &all, &old);
	}
	pid = spawn_clone(sw, &sp, a->cgroup_fd, &pidfd);
	err = errno;
	/* the worker first (the kernel's old "child runs first"): woken from
	 * the vfork on the worker's CPU, we would preempt its exec for our
	 * bookkeeping, 0.1-0.2 ms of every restart on a 2-vCPU VM
	 * (docs/benchmarks.md); a no-op when nothing else runs on this CPU.
	 * Not within a burst: there, each yield let one worker's start-up
	 * run before the next spawn on this CPU, while the other CPU idled
	 * (a bring-up of 1,000 took 12 % longer). It cannot fail on Linux. */
	if (pid > 0 && a->last)
		(void)sched_yield();
	spawn_slots_clear(sw, &sp);
	if (sw->handlers)
		sigprocmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		errno = err;
		return -1;
	}
	out->pid = pid;
	out->pidfd = pidfd;
	out->chan = sv[0];
	out->uid = ids.uid;
	out->exec_error =
	        sp.fail.stage >= 0 ? exec_failure_text(s, &sp.fail) : NULL;
	return 0;
}
