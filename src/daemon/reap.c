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
 * (hooks, the orphans we adopt as subreaper) is collected by one
 * waitpid(-1) sweep, made only when a signal named something other than a
 * worker with a pidfd, or a hook is running: a worker's restart walks no
 * list of children.
 */
#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "hooks.h"
#include "log.h"
#include "reap.h"
#include "session.h"

#define REAP_BATCH 16

/* Hand one reaped child's status to whoever owns it. */
static void
reap_route(struct daemon *d, pid_t pid, int status)
{
	struct session *s = pidmap_get(&d->pids, pid);

	if (s != NULL) {
		session_reaped(s, status);
		/* its restart now, not after the rest of the loop turn */
		daemon_pump_actions(d);
	} else if (d->hooks != NULL) {
		(void)hooks_reaped(d->hooks, pid, status);
	}
	/* else (not a hook's either) an orphan we adopted as subreaper:
	 * reaped, done */
}

/* One child by its pid: no walk over the others. True if it was a worker
 * with a pidfd (or none at all: reaped already), whose coalesced siblings
 * need no sweep. */
static bool
reap_named(struct daemon *d, pid_t pid, bool *reaped)
{
	struct session *s = pidmap_get(&d->pids, pid);
	bool watched = s != NULL && s->pidfd >= 0;
	int status;
	pid_t r;

	if (pid <= 0)
		return false;
	while ((r = waitpid(pid, &status, WNOHANG)) < 0 && errno == EINTR)
		;
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
	bool sweep = d->hooks != NULL && !hooks_idle(d->hooks);
	ssize_t n;
	int status;
	pid_t pid;

	(void)loop;
	(void)revents;
	while ((n = read(d->reap_fd, si, sizeof si)) > 0 ||
	       (n < 0 && errno == EINTR))
		for (ssize_t i = 0; i < n / (ssize_t)sizeof si[0]; i++)
			if (!reap_named(d, (pid_t)si[i].ssi_pid, &(bool){0}))
				sweep = true;
	if (n < 0 && errno != EAGAIN)
		log_warn("reading SIGCHLD");
	/* the exits the signals did not name */
	while (sweep && ((pid = waitpid(-1, &status, WNOHANG)) > 0 ||
	                 (pid < 0 && errno == EINTR)))
		if (pid > 0)
			reap_route(d, pid, status);
}

/* Workers' pidfds turned readable: their exits, each by its pid, all of
 * them (a spawn burst must not outrun its reaps). A session is freed only
 * by its own reap, and its pidfd closed then (out of the epoll), so the
 * rest of a batch stays valid. */
static void
reap_pidfd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct daemon *d = w->data;
	struct epoll_event ev[REAP_BATCH];
	bool reaped;
	int n;

	(void)loop;
	(void)revents;
	do { /* (one not yet reapable stays ready: the next turn tries) */
		reaped = false;
		while ((n = epoll_wait(d->reap_epfd, ev, REAP_BATCH, 0)) < 0 &&
		       errno == EINTR)
			;
		for (int i = 0; i < n; i++)
			(void)reap_named(
			        d, ((struct session *)ev[i].data.ptr)->pid,
			        &reaped);
	} while (n == REAP_BATCH && reaped);
}

int
reap_watch(struct daemon *d, struct session *s)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};

	return epoll_ctl(d->reap_epfd, EPOLL_CTL_ADD, s->pidfd, &ev);
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
