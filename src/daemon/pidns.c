/*
 * pidns.c - the workers' PID namespace, held by an init of ours.
 *
 * The init is cloned with CLONE_NEWPID and exec's agentsup-guard (guard.c).
 * Workers are born in its namespace by setns(CLONE_NEWPID) around their
 * clone, which sets only the namespace of this thread's next children:
 * agentsupd stays in its own, stays every worker's parent (SIGCHLD, its
 * process group, PDEATHSIG, host pids in status) and keeps making threads
 * (which a lasting setns would forbid: EINVAL). A pidfd tells the loop if
 * the init dies; the next spawn makes a new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "guard.h"
#include "log.h"
#include "pidns.h"
#include "util.h"

#define PIDNS_PF_EXITING 0x4 /* the kernel's PF_EXITING */

struct pidns {
	struct ev_loop *loop;
	char *helper; /* agentsup-guard, or NULL */
	pid_t pid;    /* the init, or 0 when lost */
	int w;        /* the init's pipe: closing it ends the namespace */
	int nsfd;     /* /proc/<init>/ns/pid */
	int selfns;   /* /proc/self/ns/pid: back to it after a spawn */
	dev_t dev;    /* the namespace's, for pidns_holds */
	ino_t ino;
	char stat[64];     /* /proc/<init>/stat */
	uint64_t lost_ms;  /* the last loss */
	uint64_t again_ms; /* a lost init is made again from then on */
	ev_io died;        /* on the init's pidfd */
	pidns_lost_fn lost;
	void *arg;
};

static void pidns_died_cb(struct ev_loop *, ev_io *, int);

/* Forget the init (dead or being ended): its descriptors closed. */
static void
pidns_drop(struct pidns *ns)
{
	if (ev_is_active(&ns->died))
		ev_io_stop(ns->loop, &ns->died);
	if (ns->died.fd >= 0)
		close(ns->died.fd);
	ev_io_set(&ns->died, -1, EV_READ);
	if (ns->nsfd >= 0)
		close(ns->nsfd);
	if (ns->w >= 0)
		close(ns->w);
	ns->nsfd = ns->w = -1;
	ns->pid = 0;
}

/* A new init, its namespace's descriptor and a pidfd watched: -1, errno. */
static int
pidns_start(struct pidns *ns)
{
	char path[64];
	struct stat st;
	int pidfd, err;

	if (guard_init_start(ns->helper, &ns->w, &ns->pid) < 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%ld/ns/pid", (long)ns->pid);
	snprintf(ns->stat, sizeof ns->stat, "/proc/%ld/stat", (long)ns->pid);
	if ((ns->nsfd = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(ns->nsfd, &st) < 0 ||
	    (pidfd = (int)syscall(SYS_pidfd_open, ns->pid, 0)) < 0) {
		err = errno;
		pidns_drop(ns); /* EOF: it ends, and is reaped by the loop */
		errno = err;
		return -1;
	}
	ns->dev = st.st_dev;
	ns->ino = st.st_ino;
	ev_io_set(&ns->died, pidfd, EV_READ);
	ev_io_start(ns->loop, &ns->died);
	return 0;
}

/* The init is gone: so is every worker (the kernel killed them; their
 * exits arrive as usual). Said once; the next spawn makes a new init, at
 * once unless the last one was lost less than PIDNS_RETRY_MS ago. */
static void
pidns_lose(struct pidns *ns)
{
	uint64_t now = clock_now_ms();
	char why[128];

	snprintf(why, sizeof why,
	         "the PID namespace's init (pid %ld) died: every process in "
	         "it was killed",
	         (long)ns->pid);
	log_warnx("contain: %s", why);
	pidns_drop(ns);
	ns->again_ms = now - ns->lost_ms >= PIDNS_RETRY_MS
	                       ? now
	                       : now + PIDNS_RETRY_MS;
	ns->lost_ms = now;
	ns->lost(ns->arg, why);
}

static void
pidns_died_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	pidns_lose(w->data);
}

struct pidns *
pidns_open(struct ev_loop *loop, const char *helper, pidns_lost_fn lost,
           void *arg)
{
	struct pidns *ns = xcalloc(1, sizeof *ns);
	int err;

	ns->loop = loop;
	ns->helper = helper != NULL ? xstrdup(helper) : NULL;
	ns->w = ns->nsfd = -1;
	ns->lost = lost;
	ns->arg = arg;
	ev_io_init(&ns->died, pidns_died_cb, -1, EV_READ);
	ns->died.data = ns;
	if ((ns->selfns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC)) <
	            0 ||
	    pidns_start(ns) < 0 || pidns_enter(ns) < 0) {
		err = errno;
		pidns_close(ns);
		errno = err;
		return NULL;
	}
	pidns_leave(ns);
	return ns;
}

pid_t
pidns_init_pid(const struct pidns *ns)
{
	return ns->pid;
}

/* Whether the init is exiting (PF_EXITING in /proc/PID/stat's flags): it
 * kills the namespace and waits for us to reap the workers before its
 * pidfd says it ended, so a worker killed with it is reaped, and would be
 * restarted into the dying namespace (ENOMEM), first. */
static bool
pidns_exiting(const struct pidns *ns)
{
	char buf[512], *rp;
	unsigned flags;
	ssize_t n;
	int fd;

	if ((fd = open(ns->stat, O_RDONLY | O_CLOEXEC)) < 0)
		return true;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	return (rp = strrchr(buf, ')')) == NULL ||
	       sscanf(rp + 1, " %*c %*d %*d %*d %*d %*d %u", &flags) != 1 ||
	       (flags & PIDNS_PF_EXITING) != 0;
}

int
pidns_enter(struct pidns *ns)
{
	if (ns->pid != 0 && pidns_exiting(ns))
		pidns_lose(ns);
	if (ns->pid == 0) {
		/* EAGAIN: the machine's trouble, not the worker's; retried
		 * after its backoff, not counted against its intensity */
		if (clock_now_ms() < ns->again_ms) {
			errno = EAGAIN;
			return -1;
		}
		if (pidns_start(ns) < 0) {
			log_warn("contain: a new PID namespace");
			ns->again_ms = clock_now_ms() + PIDNS_RETRY_MS;
			errno = EAGAIN;
			return -1;
		}
		log_info("contain: a new PID namespace, its init pid %ld",
		         (long)ns->pid);
	}
	return setns(ns->nsfd, CLONE_NEWPID);
}

void
pidns_leave(struct pidns *ns)
{
	/* back to our own: allowed, it is our active namespace */
	if (setns(ns->selfns, CLONE_NEWPID) < 0)
		log_warn("contain: setns back to agentsupd's PID namespace");
}

bool
pidns_holds(const struct pidns *ns, pid_t pid)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof path, "/proc/%ld/ns/pid", (long)pid);
	return ns->pid != 0 && stat(path, &st) == 0 && st.st_dev == ns->dev &&
	       st.st_ino == ns->ino;
}

void
pidns_close(struct pidns *ns)
{
	pid_t init, r;
	int status;

	if (ns == NULL)
		return;
	init = ns->pid;
	pidns_drop(ns);
	/* the init's end waits for every process of the namespace to be
	 * reaped: the workers are ours to reap */
	while (init > 0 &&
	       ((r = waitpid(-1, &status, __WALL)) >= 0 || errno == EINTR))
		if (r == init)
			break;
	if (ns->selfns >= 0)
		close(ns->selfns);
	free(ns->helper);
	free(ns);
}
