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
#include "daemon.h"
#include "peer.h"
#include "session.h"

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

/* A pid of one of agentsupd's running workers (a session's). */
static bool
peer_is_worker(struct daemon *d, pid_t pid)
{
	return pidmap_get(&d->pids, pid) != NULL;
}

/* The peer, an ancestor or its group leader that is a worker: its pid;
 * 0 for none found; -1 when the peer is gone. */
static pid_t
peer_walk(struct daemon *d, pid_t peer)
{
	pid_t p = peer, ppid, pgid, self = getpid();

	for (int i = 0; i < PEER_DEPTH && p > 1 && p != self; i++) {
		if (peer_is_worker(d, p))
			return p;
		if (peer_stat(p, &ppid, &pgid) < 0) {
			if (i == 0 && kill(peer, 0) < 0 && errno == ESRCH)
				return -1; /* reaped: no trace left */
			break;
		}
		if (pgid > 1 && peer_is_worker(d, pgid))
			return pgid;
		p = ppid;
	}
	return 0;
}

enum peer_kind
peer_worker(struct daemon *d, pid_t peer, char *path, size_t pathlen)
{
	pid_t w = peer_walk(d, peer);

	path[0] = '\0';
	if (w < 0)
		return PEER_GONE;
	if (w > 0) {
		snprintf(path, pathlen, "%s",
		         pidmap_get(&d->pids, w)->node->path);
		return PEER_WORKER;
	}
	/* setsid'd and orphaned (reparented to us): only its cgroup says */
	return contain_worker_of(d->contain, peer, path, pathlen)
	               ? PEER_WORKER
	               : PEER_OUTSIDE;
}

bool
peer_granted(struct daemon *d, const char *path, const char *cmd)
{
	struct node *n = tree_find(d->tree, path);
	uint32_t grant = n != NULL ? n->spec->pol->control : 0;

	return grant == CONTROL_ALL || (grant & config_control_bit(cmd));
}
