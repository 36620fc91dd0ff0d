/*
 * tasks_held.c - an accepted spawn held until its record is stored (DESIGN
 * §12): its child added but not started, its answer and its spawned (or
 * replayed) event given at the commit; on a failed write the child taken
 * out before it ran and the record dropped or put back as it was, so a
 * spawn refused for the store never runs. Without a store, or for a
 * resume, the child starts at once.
 */
#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "daemon.h"
#include "dynamic.h"
#include "events.h"
#include "ledger.h"
#include "tasks.h"
#include "taskstore.h"
#include "util.h"

#include "tasks_int.h"

struct tasks_held {
	taskstore_ack_fn *ack; /* the spawn's answer */
	void *ack_arg;
	bool fresh;           /* no record before: none after a failure */
	bool restore;         /* an ended one before: prior is what it was */
	unsigned long serial; /* its child's task->serial */
	struct ledger_prior prior;
	enum event_kind event; /* spawned or replayed, once stored */
	char path[3 * REQUEST_NAME_MAX];
	char detail[256];
};

struct tasks_held *
tasks_held_new(const struct tasks_spawn *in, struct ledger_rec *before,
               unsigned long serial)
{
	struct tasks_held *h = xcalloc(1, sizeof *h);

	h->serial = serial;
	h->fresh = before == NULL;
	h->restore = in->ack != NULL && !h->fresh && ledger_ended(before);
	if (h->restore)
		ledger_prior_take(before, &h->prior);
	return h;
}

/* The spawned (or replayed) event, told when the task is accepted for
 * good: at once, or with a store once its record is stored. */
static void
tasks_held_text(struct tasks_held *h, const struct tasks_spawn *in,
                const struct node *n, const struct ledger_rec *r)
{
	h->event = in->replay != NULL ? EV_REPLAYED : EV_SPAWNED;
	snprintf(h->path, sizeof h->path, "%s", n->path);
	if (in->replay != NULL)
		snprintf(h->detail, sizeof h->detail, "replay %u by %s",
		         r->replays, in->by);
	else
		snprintf(h->detail, sizeof h->detail, "key %s by %s", r->key,
		         in->by);
}

/* The spawn refused after all: its child out before it ran, its record
 * dropped or put back as it was. A reload that removed its pool may have
 * cancelled the held child meanwhile (n NULL): that end is undone too, a
 * write of the record as it was queued after the end's own. */
static void
tasks_unaccept(struct daemon *d, struct ledger_rec *r, struct node *n,
               struct tasks_held *h)
{
	if (n != NULL && !dynamic_unspawn(d->tree, n, clock_now_ms())) {
		ledger_prior_free(&h->prior);
		return; /* it ran after all: it ends as any task does */
	}
	tasks_set_node(d, r, NULL);
	if (h->restore) {
		ledger_prior_put(&d->tasks->ledger, r, &h->prior);
		if (n == NULL) /* else unsaved: written back by the retry */
			taskstore_save(d, r, 0);
		return;
	}
	if (!h->fresh)
		return;
	if (n == NULL) /* the row the cancelled end's write may make */
		taskstore_forget(d, r, NULL, NULL, NULL);
	tasks_wake_gone(d, r); /* as a wait made after the refusal */
	ledger_drop(&d->tasks->ledger, r);
}

static void
tasks_held_stored(struct daemon *d, struct ledger_rec *r, void *arg, int rc,
                  const char *why)
{
	struct tasks_held *h = arg;
	struct node *n = tasks_live_node(d, r, tasks_sup_find(d, r->sup));

	if (n != NULL && n->task->serial != h->serial) {
		/* its child was cancelled meanwhile (a reload removed its
		 * pool), and the record went on to another spawn (a retry
		 * since): that one's to start or undo, not this one's */
		ledger_prior_free(&h->prior);
		if (rc == 0) /* accepted and stored, as it was answered */
			events_emit(&d->events, h->event, h->path, 0, NULL, 0,
			            "%s", h->detail);
		h->ack(d, r, h->ack_arg, rc, why);
		free(h);
		return;
	}
	if (rc == 0) {
		if (n != NULL)
			dynamic_start(d->tree, n, clock_now_ms());
		ledger_prior_free(&h->prior);
		events_emit(&d->events, h->event, h->path, 0, NULL, 0, "%s",
		            h->detail);
	} else {
		tasks_unaccept(d, r, n, h);
	}
	h->ack(d, r, h->ack_arg, rc, why);
	free(h);
}

void
tasks_go(struct daemon *d, const struct tasks_spawn *in, struct tasks_held *h,
         struct tasks_outcome *out)
{
	tasks_held_text(h, in, out->node, out->rec);
	if (in->ack == NULL) {
		/* its first start is counted now: a SIGKILL of agentsupd
		 * while it runs does not lose it */
		dynamic_start(d->tree, out->node, clock_now_ms());
		taskstore_save(d, out->rec, (unsigned)out->node->starts);
		events_emit(&d->events, h->event, h->path, 0, NULL, 0, "%s",
		            h->detail);
		free(h);
		return;
	}
	h->ack = in->ack;
	h->ack_arg = in->ack_arg;
	/* stored with the start it makes once stored */
	if (taskstore_save_ack(d, out->rec, 1, tasks_held_stored, h) == 0) {
		out->deferred = true;
		return;
	}
	tasks_unaccept(d, out->rec, out->node, h); /* the writer stopping */
	free(h);
	*out = (struct tasks_outcome){.error = TASKS_STORE_BEHIND};
}
