/*
 * tasks_stop.c - an operator's stop (or drain) of a task: with a state
 * store its cancellation is stored before the answer, while its process
 * still goes down, so that a restart of agentsupd meanwhile does not run
 * it again; a start, restart or reset before it is down undoes that.
 */
#include <stdio.h>
#include <stdlib.h>

#include "client.h"
#include "clock.h"
#include "control.h"
#include "daemon.h"
#include "dynamic.h"
#include "events.h"
#include "ledger.h"
#include "serve.h"
#include "tasks.h"
#include "taskstore.h"
#include "util.h"

#include "tasks_int.h"

/* An operator's stop of a task, answered once its cancellation is
 * stored. */
struct tasks_stop_ack {
	uint64_t serial, id;
	char *path;
};

/* The answer to a stop whose cancellation could not be stored: the stop
 * goes on, and the operator knows what a restart would do. */
static void
tasks_stop_unstored(struct client *cl, uint64_t id, const char *path,
                    const char *why)
{
	serve_refusef(cl, id,
	              "%s is stopping, but its cancellation could not be "
	              "stored: %s (it is written again every %.0f s and when "
	              "agentsupd exits; were agentsupd to restart before that "
	              "succeeds, it would run again)",
	              path, why, TASKSTORE_RETRY_S);
}

static void
tasks_stop_acked(struct daemon *d, struct ledger_rec *r, void *arg, int rc,
                 const char *why)
{
	struct tasks_stop_ack *a = arg;
	struct client *cl = control_client(d->control, a->serial);

	(void)r;
	if (cl != NULL && rc != 0)
		tasks_stop_unstored(cl, a->id, a->path, why);
	else if (cl != NULL)
		serve_text(cl, a->id, a->path);
	free(a->path);
	free(a);
}

bool
tasks_stop_answer(struct client *cl, struct daemon *d, uint64_t id,
                  const struct node *n)
{
	struct ledger_rec *r;
	struct tasks_stop_ack *a;

	if (d->store == NULL || n->task == NULL ||
	    (r = tasks_rec_of(d, n)) == NULL || ledger_ended(r))
		return false;
	r->cancelling = true;
	r->cancel_ms = clock_wall_ms();
	a = xcalloc(1, sizeof *a);
	a->serial = cl->serial;
	a->id = id;
	a->path = xstrdup(n->path);
	if (taskstore_save_ack(d, r, (unsigned)n->starts, tasks_stop_acked, a) <
	    0) {
		free(a->path);
		free(a);
		tasks_stop_unstored(cl, id, n->path, TASKS_STORE_BEHIND);
	}
	return true;
}

bool
tasks_stop_waiting(struct client *cl, struct daemon *d, uint64_t id,
                   const char *name, const char *cmd)
{
	const struct node *sup;
	struct ledger_rec *r;
	struct tasks_stop_ack *a;
	const char *why;
	char *path, *reason;

	r = tasks_lookup(d, name, &why);
	if (r == NULL && why != NULL) { /* a KEY in more than one pool */
		serve_refusef(cl, id, "%s: %s", name, why);
		return true;
	}
	if (r == NULL || ledger_ended(r) || !r->resume)
		return false;
	sup = tasks_sup_find(d, r->sup);
	path = xasprintf("%s/%s", sup != NULL ? sup->path : r->sup, r->key);
	reason = xasprintf("cancelled by agentsupctl (uid %lu) before it was "
	                   "resumed",
	                   (unsigned long)cl->uid);
	r->resume = false;
	d->tasks->nresume--;
	events_emit(&d->events, EV_COMMAND, path, 0, NULL, 0,
	            "%s by agentsupctl (uid %lu): it was waiting to be resumed",
	            cmd, (unsigned long)cl->uid);
	ledger_reason(r, reason);
	ledger_end(&d->tasks->ledger, r, LEDGER_CANCELLED, clock_wall_ms(),
	           clock_now_ms());
	events_emit(&d->events, EV_TASK_DONE, path, 0, reason, 0, "%s",
	            ledger_state_name(LEDGER_CANCELLED));
	a = xcalloc(1, sizeof *a);
	a->serial = cl->serial;
	a->id = id;
	a->path = path;
	if (d->store == NULL) /* none: nothing to resume it from */
		tasks_stop_acked(d, r, a, 0, NULL);
	else if (taskstore_save_ack(d, r, 0, tasks_stop_acked, a) < 0) {
		tasks_stop_unstored(cl, id, path, TASKS_STORE_BEHIND);
		free(a->path);
		free(a);
	}
	tasks_wake(d, r); /* a `wait` on it has its answer */
	free(reason);
	return true;
}

void
tasks_unstopped(struct daemon *d, const struct node *n)
{
	struct ledger_rec *r;

	if (n->task == NULL || (r = tasks_rec_of(d, n)) == NULL ||
	    !r->cancelling || ledger_ended(r))
		return;
	r->cancelling = false;
	taskstore_save(d, r, (unsigned)n->starts);
}
