/*
 * peer.c - which worker, if any, a control peer runs inside: workers do not
 * steer the supervisor (docs/operations.md). The peer itself, an ancestor or
 * its process group leader is a worker's process; or, for a descendant that
 * called setsid and was orphaned to us, its cgroup is a worker's.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "contain.h"
#include "peer.h"

#define PEER_DEPTH 64 /* ancestors walked */

/* ppid and pgid from /proc/PID/stat; -1 when gone. */
static int
peer_stat(pid_t pid, pid_t *ppid, pid_t *pgid)
{
	char path[64], buf[1024], *rp;
	long pp, pg;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* the command name may hold anything, even ") ": after the last */
	if ((rp = strrchr(buf, ')')) == NULL ||
	    sscanf(rp + 1, " %*c %ld %ld", &pp, &pg) != 2)
		return -1;
	*ppid = (pid_t)pp;
	*pgid = (pid_t)pg;
	return 0;
}

enum peer_kind
peer_worker(struct contain *c, pid_t peer, bool (*is_worker)(void *, pid_t),
            void *arg, pid_t *worker, char *path, size_t pathlen)
{
	pid_t p = peer, ppid, pgid, self = getpid();

	*worker = 0;
	path[0] = '\0';
	for (int i = 0; i < PEER_DEPTH && p > 1 && p != self; i++) {
		if (is_worker(arg, p)) {
			*worker = p;
			return PEER_WORKER;
		}
		if (peer_stat(p, &ppid, &pgid) < 0) {
			if (i == 0 && kill(peer, 0) < 0 && errno == ESRCH)
				return PEER_GONE; /* reaped: no trace left */
			break;
		}
		if (pgid > 1 && is_worker(arg, pgid)) {
			*worker = pgid;
			return PEER_WORKER;
		}
		p = ppid;
	}
	/* setsid'd and orphaned (reparented to us): only its cgroup says */
	return contain_worker_of(c, peer, path, pathlen) ? PEER_WORKER
	                                                 : PEER_OUTSIDE;
}
