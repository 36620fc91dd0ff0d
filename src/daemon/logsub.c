/*
 * logsub.c - whether a worker's captured output is of a supervisor's
 * subtree. Output comes by capture name; a follower of a subtree needs its
 * node's path, which only a walk of the tree gives. Lines come in runs of
 * one name (a read of one pipe), so the last name's path is kept: one walk
 * a run, not one a line, and again after a reload (which may move a node).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "logsub.h"
#include "util.h"

const char *
logsub_path(struct logsub *ls, struct daemon *d, const char *name)
{
	uint64_t gen = d->events.counts[EV_RELOAD_APPLIED];
	char key[SESSION_CAPTURE_NAME_MAX];
	const struct node *n;

	if (ls->path != NULL && ls->gen == gen && strcmp(ls->name, name) == 0)
		return ls->path;
	free(ls->path);
	ls->path = NULL;
	if (!session_capture_key(name, key, sizeof key))
		return NULL; /* no capture has such a name */
	if ((n = tree_find(d->tree, key)) == NULL)
		return NULL; /* not kept: a node may come under that name */
	memcpy(ls->name, name, strlen(name) + 1);
	ls->path = xstrdup(n->path);
	ls->gen = gen;
	return ls->path;
}

bool
logsub_under(const char *path, const char *sup)
{
	size_t l = strlen(sup);

	return strncmp(path, sup, l) == 0 && path[l] == '/';
}

void
logsub_free(struct logsub *ls)
{
	free(ls->path);
	ls->path = NULL;
}
