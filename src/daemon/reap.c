/*
 * reap.c - routing each reaped child to whoever owns it, as tini's
 * reap_zombies and s6-svscan's pid index do: O(1) by pid.
 *
 * SIGCHLD comes through a signalfd of our own, not libev's child watcher:
 * libev's default loop answers each SIGCHLD with waitpid(-1) until none is
 * left, and each of those calls walks every child the daemon has (with
 * 1,000 workers, a tenth of a millisecond when cold, twice before a
 * restart). The signal names the child that exited (the first, when
 * several exits coalesce into one signal): that one is reaped by its pid
 * and its restart runs at once.
 *
 * A coalesced exit of a worker is not lost: each worker's pidfd, in an
 * epoll of our own that the loop watches as one descriptor, turns readable
 * when it exits, and is reaped by its pid as well. Whatever else exits
 * (hooks, the orphans we adopt as subreaper, the PID namespace's init) is
 * collected by a waitpid(-1) sweep: at once when a signal names something
 * other than a worker with a pidfd, while a hook runs or a worker without
 * a pidfd lives; else a second later, once (an exit that coalesced with a
 * worker's), so a worker's restart walks no list of children and nothing
 * stays a zombie for long.
 *
 * A worker or hook leads a process group, and what it leaves there is
 * killed with it: before the reap, while its zombie still holds the pid.
 * Once reaped, the number is free, and may be another process's group.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "contain.h"
#include "daemon.h"
#include "hooks.h"
#include "log.h"
#include "reap.h"
#include "session.h"

#define REAP_BATCH       16
#define REAP_LATE_S      1.0 /* the sweep a worker's signal put off */
#define REAP_EXIT_ROUNDS 100 /* at exit, 10 ms apart: the orphans' sweep */

/* Hand one reaped child's status to whoever owns it. */
static void
reap_route(struct daemon *d, pid_t pid, int status)
{
	struct session *s = pidmap_get(&d->pids, pid);

	if (s != NULL) {
		session_reaped(s, status);
		/* its restart now, not after the rest of the loop turn */
		daemon_pump_actions(d);
	} else if (d->hooks == NULL || !hooks_reaped(d->hooks, pid, status)) {
		(void)contain_reaped(d->contain, pid, status);
	}
	/* else (not a hook's nor the guard) an orphan we adopted as
	 * subreaper: reaped, done */
}

/* Kill the group a worker or a hook led, before its zombie is reaped. */
static void
reap_kill_group(struct daemon *d, pid_t pid)
{
	if (pidmap_get(&d->pids, pid) == NULL &&
	    (d->hooks == NULL || !hooks_owns(d->hooks, pid)))
		return;
	if (kill(-pid, SIGKILL) < 0 && errno != ESRCH && errno != EPERM)
		log_warn("kill group %ld", (long)pid);
}

/* One exited child (P_PID: pid; P_ALL: any), its group killed first, then
 * reaped: its pid, 0 if none has exited, -1 with errno (ECHILD: none). */
static pid_t
reap_one(struct daemon *d, idtype_t which, pid_t pid, int *status)
{
	siginfo_t si;
	pid_t r;

	do {
		si.si_pid = 0;
		r = waitid(which, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
	} while (r < 0 && errno == EINTR);
	if (r < 0 || si.si_pid == 0)
		return r;
	reap_kill_group(d, si.si_pid);
	while ((r = waitpid(si.si_pid, status, WNOHANG)) < 0 && errno == EINTR)
		;
	return r;
}

/* Every child that has exited: one walk over all of them (two: the peek
 * and the reap). */
static void
reap_sweep(struct daemon *d)
{
	int status;
	pid_t pid;

	ev_timer_stop(d->loop, &d->sweep_w);
	while ((pid = reap_one(d, P_ALL, 0, &status)) > 0)
		reap_route(d, pid, status);
}

static void
reap_late_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	reap_sweep(w->data);
}

/* One child by its pid: no walk over the others. True if it was a worker
 * with a pidfd (or none at all: reaped already), whose coalesced siblings
 * need no sweep now. *reaped: it was reaped here. */
static bool
reap_named(struct daemon *d, pid_t pid, bool *reaped)
{
	struct session *s = pidmap_get(&d->pids, pid);
	bool watched = s != NULL && s->pidfd >= 0;
	int status;
	pid_t r;

	if (pid <= 0)
		return false;
	r = reap_one(d, P_PID, pid, &status);
	if (r == pid) {
		reap_route(d, pid, status);
		*reaped = true;
	}
	/* 0: not ours to reap yet; ECHILD: reaped already (its pidfd) */
	return watched || (r < 0 && errno == ECHILD);
}

static void
reap_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct daemon *d = w->data;
	struct signalfd_siginfo si[REAP_BATCH];
	bool now = d->reap_unwatched > 0 ||
	           (d->hooks != NULL && !hooks_idle(d->hooks)),
	     later = false;
	ssize_t n;

	(void)loop;
	(void)revents;
	while ((n = read(d->reap_fd, si, sizeof si)) > 0 ||
	       (n < 0 && errno == EINTR))
		for (ssize_t i = 0; i < n / (ssize_t)sizeof si[0]; i++) {
			if (reap_named(d, (pid_t)si[i].ssi_pid, &(bool){0}))
				later = true;
			else
				now = true;
		}
	if (n < 0 && errno != EAGAIN)
		log_warn("reading SIGCHLD");
	/* the exits the signals did not name */
	if (now)
		reap_sweep(d);
	else if (later && !ev_is_active(&d->sweep_w))
		ev_timer_start(d->loop, &d->sweep_w);
}

/* Workers' pidfds turned readable: their exits, each by its pid, all of
 * them (a spawn burst must not outrun its reaps). An entry holds the pid,
 * never the session: a session found no more is skipped. */
static void
reap_pidfd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct daemon *d = w->data;
	struct epoll_event ev[REAP_BATCH];
	bool reaped, one;
	int n;

	(void)loop;
	(void)revents;
	do {
		reaped = false;
		while ((n = epoll_wait(d->reap_epfd, ev, REAP_BATCH, 0)) < 0 &&
		       errno == EINTR)
			;
		for (int i = 0; i < n; i++) {
			pid_t pid = (pid_t)ev[i].data.u64;
			struct session *s = pidmap_get(&d->pids, pid);

			if (s == NULL || s->pidfd < 0)
				continue;
			one = false;
			(void)reap_named(d, pid, &one);
			reaped |= one;
			/* a traced worker is reapable only once its tracer
			 * lets go: the SIGCHLD that follows names it */
			if (!one)
				(void)epoll_ctl(d->reap_epfd, EPOLL_CTL_MOD,
				                s->pidfd,
				                &(struct epoll_event){0});
		}
	} while (n == REAP_BATCH && reaped);
}

void
reap_watch(struct daemon *d, struct session *s)
{
	struct epoll_event ev = {.events = EPOLLIN,
	                         .data.u64 = (uint64_t)s->pid};

	if (s->pidfd >= 0 &&
	    epoll_ctl(d->reap_epfd, EPOLL_CTL_ADD, s->pidfd, &ev) < 0) {
		log_warn("%s: watching its pidfd", s->node->path);
		close(s->pidfd);
		s->pidfd = -1;
	}
	if (s->pidfd < 0)
		d->reap_unwatched++; /* then every SIGCHLD sweeps */
}

void
reap_unwatch(struct daemon *d, struct session *s)
{
	if (s->pidfd < 0) {
		d->reap_unwatched--;
		return;
	}
	/* out of the epoll first: a copy of the pidfd in a child being
	 * forked would keep the entry alive past the close */
	(void)epoll_ctl(d->reap_epfd, EPOLL_CTL_DEL, s->pidfd, NULL);
	close(s->pidfd);
	s->pidfd = -1;
}

int
reap_open(struct daemon *d)
{
	sigset_t chld;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0 ||
	    (d->reap_fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		return -1;
	ev_io_init(&d->reap_w, reap_cb, d->reap_fd, EV_READ);
	ev_set_priority(&d->reap_w, EV_MAXPRI); /* restarts first */
	d->reap_w.data = d;
	ev_io_start(d->loop, &d->reap_w);
	ev_timer_init(&d->sweep_w, reap_late_cb, REAP_LATE_S, 0.);
	d->sweep_w.data = d;
	if ((d->reap_epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		log_warn("epoll for the workers' pidfds: each exit is found "
		         "by a walk over the children");
		d->spawn.no_pidfd = true;
		return 0;
	}
	ev_io_init(&d->pidfd_w, reap_pidfd_cb, d->reap_epfd, EV_READ);
	ev_set_priority(&d->pidfd_w, EV_MAXPRI);
	d->pidfd_w.data = d;
	ev_io_start(d->loop, &d->pidfd_w);
	return 0;
}

void
reap_close(struct daemon *d)
{
	ev_timer_stop(d->loop, &d->sweep_w);
	if (d->reap_epfd >= 0) {
		ev_io_stop(d->loop, &d->pidfd_w);
		close(d->reap_epfd);
		d->reap_epfd = -1;
	}
	if (d->reap_fd < 0)
		return;
	ev_io_stop(d->loop, &d->reap_w);
	close(d->reap_fd);
	d->reap_fd = -1;
}

/* SIGKILL to each of this process's children (of any of its threads);
 * how many there were. */
static unsigned
reap_kill_children(void)
{
	DIR *tasks = opendir("/proc/self/task");
	struct dirent *t;
	unsigned n = 0;

	if (tasks == NULL)
		return 0;
	while ((t = readdir(tasks)) != NULL) {
		char path[64];
		FILE *f;
		long pid;

		if (t->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/self/task/%.20s/children",
		         t->d_name);
		if ((f = fopen(path, "re")) == NULL)
			continue;
		while (fscanf(f, "%ld", &pid) == 1)
			if (pid > 1 && kill((pid_t)pid, SIGKILL) == 0)
				n++;
		fclose(f);
	}
	closedir(tasks);
	return n;
}

void
reap_orphans_at_exit(void)
{
	unsigned killed = 0, n;
	pid_t p;

	/* a killed orphan's own children come to us in turn: again, until
	 * none is left (or, something stuck in the kernel, for a second) */
	for (int round = 0; round < REAP_EXIT_ROUNDS; round++) {
		while ((p = waitpid(-1, NULL, WNOHANG)) > 0 ||
		       (p < 0 && errno == EINTR))
			;
		if (p < 0 && errno == ECHILD)
			break;
		if ((n = reap_kill_children()) == 0 && p == 0)
			break; /* only the exiting, not yet reapable */
		killed += n;
		(void)usleep(10000);
	}
	if (killed > 0)
		log_warnx("at exit: %u SIGKILL(s) to what was left behind "
		          "(orphans adopted as subreaper)",
		          killed);
}
