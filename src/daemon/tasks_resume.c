/*
 * tasks_resume.c - the tasks a restart of agentsupd found accepted and not
 * ended in its store, started again: oldest accepted first, each pool as it
 * has room (max_children, the store's queue), at the start and at each
 * pass after a task's end frees a place.
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "daemon.h"
#include "ledger.h"
#include "log.h"
#include "tasks.h"
#include "tasks_int.h"
#include "taskstore.h"
#include "tree.h"
#include "util.h"

/* One record to resume: 1 done (spawned, or it cannot be: cancelled), 0
 * when its supervisor is not running yet. */
#define TASKS_RESUME_FULL 16 /* pools remembered full in one pass */

static int
tasks_resume_one(struct daemon *d, struct ledger_rec *r)
{
	struct node *sup = tasks_sup_find(d, r->sup);
	struct tasks_outcome out;

	if (d->tree->shutting_down || d->tree->draining)
		return 0; /* stays pending: for the next start */
	if (sup != NULL && sup->spec->tmpl != NULL &&
	    sup->state != NODE_RUNNING)
		return 0;
	tasks_spawn(d,
	            &(struct tasks_spawn){.sup = r->sup,
	                                  .key = r->key,
	                                  .args = r->args,
	                                  .env = r->env,
	                                  .retry = true,
	                                  .resuming = true,
	                                  .by = "agentsupd, resumed after a "
	                                        "restart"},
	            &out);
	/* max_children: when a child ends; the store's queue full: at a
	 * later pass (not an end: the task was accepted, and stays so) */
	if (out.error != NULL &&
	    (out.has_count || strcmp(out.error, TASKS_STORE_BEHIND) == 0))
		return 0;
	if (out.error != NULL) {
		ledger_reason(r, out.error);
		ledger_end(&d->tasks->ledger, r, LEDGER_CANCELLED,
		           clock_wall_ms(), clock_now_ms());
		taskstore_save(d, r, 0);
		log_warnx("task %s/%s not resumed: %s", r->sup, r->key,
		          out.error);
		tasks_wake(d, r); /* a `wait` on it has its answer */
	}
	return 1;
}

size_t
tasks_waiting(const struct daemon *d, const char *sup)
{
	struct ledger_iter it = {0};
	const struct ledger_rec *r;
	size_t n = 0, left;

	if (d->tasks == NULL || (left = d->tasks->nresume) == 0 || sup == NULL)
		return d->tasks != NULL ? d->tasks->nresume : 0;
	while (left > 0 && (r = ledger_next(&d->tasks->ledger, &it)) != NULL)
		if (r->resume) {
			left--;
			n += strcmp(r->sup, sup) == 0;
		}
	return n;
}

/* Whether sup is among the n that could take no resume this pass. */
static bool
tasks_sup_full(const char *const *full, size_t n, const char *sup)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(full[i], sup) == 0)
			return true;
	return false;
}

void
tasks_resume(struct daemon *d)
{
	struct tasks *t = d->tasks;
	struct ledger_iter it = {0};
	struct ledger_rec *r, **todo;
	const char *full[TASKS_RESUME_FULL];
	size_t n = 0, nfull = 0, cap = t->nresume;

	if (cap == 0)
		return;
	/* all of them, collected first (a resume may end, and so move,
	 * records), oldest accepted first; a pool that refuses one is not
	 * asked again this pass, and does not hold up the others (64 refused
	 * at the head of the order stopped every other pool's resume) */
	todo = xcalloc(cap, sizeof *todo);
	while (n < cap && (r = ledger_next(&t->ledger, &it)) != NULL)
		if (r->resume)
			todo[n++] = r;
	qsort(todo, n, sizeof *todo, tasks_by_accepted);
	for (size_t i = 0; i < n; i++) {
		if (tasks_sup_full(full, nfull, todo[i]->sup))
			continue;
		if (tasks_resume_one(d, todo[i])) {
			todo[i]->resume = false;
			t->nresume--;
		} else if (nfull < TASKS_RESUME_FULL) {
			full[nfull++] = todo[i]->sup;
		}
	}
	free(todo);
}
