/*
 * tasks_moved.c - where pools were: the places a dynamic supervisor left
 * (a reload moved or removed it; at start, stored task rows under a path
 * the config no longer gives it), so that its tasks run again elsewhere
 * take their checkpoints from there (ckpt_adopt), and which stored
 * checkpoints the start reads into memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "dynamic.h"
#include "ledger.h"
#include "request.h"
#include "tasks.h"
#include "util.h"

#include "tasks_int.h"

void
tasks_pool_was(struct daemon *d, const char *sup, const char *path)
{
	struct tasks *t = d->tasks;

	for (size_t i = 0; i < t->nearlier; i++)
		if (strcmp(t->earlier[i].sup, sup) == 0 &&
		    strcmp(t->earlier[i].path, path) == 0)
			return;
	if (t->nearlier == TASKS_EARLIER_MAX) { /* the oldest goes */
		free(t->earlier[0].sup);
		free(t->earlier[0].path);
		memmove(t->earlier, t->earlier + 1,
		        --t->nearlier * sizeof *t->earlier);
	}
	t->earlier[t->nearlier++] =
	        (struct tasks_earlier){xstrdup(sup), xstrdup(path)};
}

const char *
tasks_pool_once_at(struct daemon *d, const char *path)
{
	struct tasks *t = d->tasks;

	for (size_t i = t->nearlier; i-- > 0;)
		if (strcmp(t->earlier[i].path, path) == 0)
			return t->earlier[i].sup;
	return NULL;
}

char **
tasks_earlier_paths(struct daemon *d, const struct node *n)
{
	struct tasks *t = d->tasks;
	char **v = NULL;
	size_t k = 0;

	if (d->store == NULL || n->task == NULL || n->parent == NULL)
		return NULL; /* without a store the record seeds the run */
	for (size_t i = t->nearlier; i-- > 0;) {
		const struct tasks_earlier *e = &t->earlier[i];

		if (strcmp(e->sup, n->task->sup) != 0 ||
		    strcmp(e->path, n->parent->path) == 0)
			continue; /* another pool's, or where it is now */
		v = xreallocarray(v, k + 2, sizeof *v);
		v[k++] = xasprintf("%s/%s", e->path, n->task->key);
		v[k] = NULL;
	}
	return v;
}

void
tasks_paths_free(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* At start: whether parent/key, parent a path where no dynamic
 * supervisor is now, was a task's of one before: the store has a task of
 * that name and key (not a configured worker's path that looks like one,
 * whose checkpoints a task spawned afresh must not take), and no pool has
 * the name now (removed: a reload may add it back elsewhere) or one has it
 * elsewhere (the config moved it). Remembered, so its tasks run again
 * take their checkpoints from there. */
static bool
tasks_pool_moved(struct daemon *d, const char *parent, const char *key)
{
	const char *slash = strrchr(parent, '/');
	const char *name = slash != NULL ? slash + 1 : parent;
	struct node *sup = tasks_sup_find(d, name);

	if (!ledger_keys_has(&d->tasks->keys, ledger_key_hash(name, key)))
		return false;
	if (sup != NULL &&
	    (sup->spec->tmpl == NULL || strcmp(sup->spec->name, name) != 0 ||
	     strcmp(sup->path, parent) == 0))
		return false;
	tasks_pool_was(d, name, parent);
	return true;
}

bool
tasks_ckpt_wanted(void *arg, const char *path)
{
	struct daemon *d = arg;
	const char *slash = strrchr(path, '/');
	char parent[3 * REQUEST_NAME_MAX];
	struct node *sup;
	struct ledger_rec *r;

	if (slash == NULL || (size_t)(slash - path) >= sizeof parent)
		return true;
	memcpy(parent, path, (size_t)(slash - path));
	parent[slash - path] = '\0';
	if ((sup = tasks_sup_find(d, parent)) != NULL &&
	    sup->spec->tmpl != NULL && strcmp(sup->path, parent) == 0) {
		r = ledger_get(&d->tasks->ledger, sup->spec->name, slash + 1);
		return r != NULL && !ledger_ended(r); /* a task to resume */
	}
	/* a configured worker's, or of no known task; a task's of a pool
	 * moved or removed since stay on disk: taken when it runs again
	 * (ckpt_adopt) */
	return !tasks_pool_moved(d, parent, slash + 1);
}
