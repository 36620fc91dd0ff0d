/*
 * tasks_end.c - what the engine and the workers report about dynamic
 * children (DESIGN §12): results, restarts and ends into the ledger (with
 * the last lines of output and the last checkpoint), the events, and the
 * `agentsupctl wait`s they answer. tasks.c accepts the spawns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentsup/wire.h"
#include "ckpt.h"
#include "client.h"
#include "clock.h"
#include "contain.h"
#include "control.h"
#include "dynamic.h"
#include "daemon.h"
#include "ledger.h"
#include "log.h"
#include "logcap.h"
#include "serve.h"
#include "session.h"
#include "tasks.h"
#include "taskstore.h"
#include "util.h"

#include "tasks_int.h"

/* --- what the engine and the workers report ------------------------------- */

void
tasks_result(struct daemon *d, struct node *n, const void *data, size_t len)
{
	struct ledger_rec *r = tasks_rec_of(d, n);

	if (r == NULL) {
		log_warnx("worker %s: a result, but it is no task: ignored",
		          n->path);
		return;
	}
	ledger_result(&d->tasks->ledger, r, data, len);
	/* an ended record counted its starts already */
	taskstore_save(d, r, ledger_ended(r) ? 0 : (unsigned)n->starts);
}

void
tasks_started(struct daemon *d, struct node *n)
{
	struct ledger_rec *r = tasks_rec_of(d, n);

	if (r == NULL || n->starts < 2)
		return;         /* a first start: its spawn saved it */
	ledger_result_clear(r); /* a failed run's is not the task's */
	taskstore_save(d, r, (unsigned)n->starts);
}

/* Every wait on r answered: with its record, or (gone) as a wait on a
 * key with no record is. */
static void
tasks_wake_with(struct daemon *d, struct ledger_rec *r, bool gone)
{
	struct tasks *t = d->tasks;
	size_t k = 0;

	for (size_t i = 0; i < t->nwaiters; i++) {
		struct tasks_waiter *w = &t->waiters[i];

		if (w->rec != r) {
			t->waiters[k++] = *w;
			continue;
		}
		if (gone)
			serve_refusef(w->cl, w->id, "%s/%s: no such task",
			              r->sup, r->key);
		else
			tasks_answer_rec(w->cl, d, w->id, r, -1);
		w->cl->waiting = false; /* unless another wait of its stays */
	}
	t->nwaiters = k;
	for (size_t i = 0; i < k; i++)
		t->waiters[i].cl->waiting = true;
}

void
tasks_wake_now(struct daemon *d, struct ledger_rec *r)
{
	tasks_wake_with(d, r, false);
}

void
tasks_wake_gone(struct daemon *d, struct ledger_rec *r)
{
	tasks_wake_with(d, r, true);
}

/* A `wait` that said "done" must not be undone by a crash before the
 * write: while a write of r is in flight or failed, the answer waits for
 * the write's success (tasks_rec_stored). */
void
tasks_wake(struct daemon *d, struct ledger_rec *r)
{
	if (tasks_rec_settled(d, r))
		tasks_wake_now(d, r);
}

bool
tasks_rec_settled(const struct daemon *d, const struct ledger_rec *r)
{
	return d->store == NULL || (r->pins == 0 && !r->unsaved);
}

void
tasks_rec_stored(struct daemon *d, struct ledger_rec *r)
{
	if (ledger_ended(r) && !r->unsaved) /* else not its end: a replay */
		tasks_wake_now(d, r);
}

/* Its events' followers, once they have its last one. */
static void
tasks_events_ended(struct daemon *d, const struct node *n)
{
	char why[256];

	snprintf(why, sizeof why,
	         "task %s has ended: no more of its events will come "
	         "(agentsupctl wait %s gives its record)",
	         n->path, n->path);
	control_events_ended(d->control, n->path, why);
}

void
tasks_capture_gone(struct daemon *d, const struct node *n, const char *name)
{
	char why[256];

	snprintf(why, sizeof why,
	         "task %s has ended: nothing more to follow "
	         "(agentsupctl wait %s gives its record)",
	         n->path, n->path);
	logcap_remove(d->logcap, name);
	control_log_removed(d->control, name, why);
}

/* The ended task's last lines of output into its record; its capture is
 * freed with its node (memory stays flat however many tasks end). */
static void
tasks_take_tail(struct daemon *d, const struct node *n, struct ledger_rec *r)
{
	char buf[LEDGER_TAIL_MAX], nbuf[SESSION_CAPTURE_NAME_MAX];
	const char *name = session_capture_name(n, nbuf);
	struct logcap *lc;
	size_t len;

	if (d->logcap == NULL || (lc = logcap_find(d->logcap, name)) == NULL)
		return;
	if ((len = logcap_tail(lc, LOGCAP_TAIL_LINES, buf, sizeof buf)) > 0)
		ledger_tail(r, buf, len);
	/* SUP:KEY: its alone; a process still running (cancelled by a
	 * reload) keeps its pipes until its reap (session.c) */
	if (n->session == NULL)
		tasks_capture_gone(d, n, name);
}

/* The ended task's checkpoints leave memory: with a store they are on
 * disk (read back if it runs again); without one its record keeps the
 * newest, and goes with it when the bounded ledger lets it go. */
static void
tasks_keep_checkpoint(struct daemon *d, const struct node *n,
                      struct ledger_rec *r)
{
	const void *data;
	uint64_t seq;
	size_t len;

	if (d->store == NULL &&
	    (data = ckpt_newest(d->ckpt, n->path, &len, &seq)) != NULL)
		ledger_checkpoint(r, seq, data, len);
	ckpt_release(d->ckpt, n->path);
}

void
tasks_reaped(struct daemon *d, const struct node *n)
{
	struct ledger_rec *r =
	        ledger_get(&d->tasks->ledger, n->task->sup, n->task->key);
	struct node *live;

	/* a run of its key at the same path (retried once its pool was
	 * added back) has them now: handed, or seeded from the record */
	if (r != NULL &&
	    (live = tasks_live_node(d, r, tasks_sup_find(d, r->sup))) != NULL &&
	    strcmp(live->path, n->path) == 0)
		return;
	ckpt_release(d->ckpt, n->path);
}

/* "exit:3 (declared permanent: bad input)" */
static void
tasks_reason_text(const struct node *n, struct reason why, char *buf,
                  size_t len)
{
	char r[64];

	reason_format(why, r, sizeof r);
	if (n->exit_declared != DECLARED_NONE)
		snprintf(buf, len, "%s (declared %s%s%s)", r,
		         declared_name(n->exit_declared),
		         tree_declaration(n)->detail[0] ? ": " : "",
		         tree_declaration(n)->detail);
	else
		snprintf(buf, len, "%s", r);
}

/* Why a task was cancelled: an operator, or a reload that removed its
 * supervisor, or only its supervisor's template (the task buried alone). */
static const char *
tasks_cancel_text(const struct daemon *d, const struct node *n)
{
	if (!n->removed)
		return "cancelled";
	if (n->parent == d->tree->graveyard)
		return "cancelled: its supervisor's template was removed by a "
		       "reload";
	return "cancelled: its supervisor was removed by a reload";
}

void
tasks_event(struct daemon *d, const struct action *a)
{
	struct node *n = a->node;
	struct ledger_rec *r = tasks_rec_of(d, n);
	enum ledger_state st;
	char why[LEDGER_REASON_MAX + 64]; /* cut to LEDGER_REASON_MAX */

	if (r == NULL)
		return;
	tasks_reason_text(n, a->reason, why, sizeof why);
	/* the record carries its last checkpoint (replay starts from it);
	 * a run again that has not said hello yet has none in memory */
	if (ckpt_known(d->ckpt, n->path))
		ledger_checkpoint(r, ckpt_received_seq(d->ckpt, n->path), NULL,
		                  0);
	switch (a->event) {
	case EE_RESTARTING:
		ledger_reason(r, why);
		taskstore_save(d, r, (unsigned)n->starts);
		return;
	case EE_TASK_DONE:
		st = LEDGER_DONE;
		break;
	case EE_DEAD_LETTERED:
		st = LEDGER_DEAD;
		break;
	case EE_TASK_CANCELLED:
		st = LEDGER_CANCELLED;
		snprintf(why, sizeof why, "%s", tasks_cancel_text(d, n));
		break;
	default:
		return;
	}
	ledger_reason(r, why);
	tasks_keep_checkpoint(d, n, r);
	tasks_take_tail(d, n, r);
	if (n->session == NULL) /* else at its reap (session.c) */
		contain_forget(d->contain, n->path); /* its cgroup not reused */
	r->attempts += (unsigned)n->starts;
	if (r->node == n)
		tasks_set_node(d, r, NULL);
	ledger_end(&d->tasks->ledger, r, st, clock_wall_ms(), clock_now_ms());
	taskstore_save(d, r, 0);
	if (st == LEDGER_DEAD) { /* its output is the record's by now */
		char *detail = xasprintf(
		        "will not be retried; agentsupctl replay %s/%s", r->sup,
		        r->key);
		events_emit_ex(
		        &d->events,
		        &(struct event){.kind = EV_DEAD_LETTERED,
		                        .path = n->path,
		                        .reason = why,
		                        .restarts =
		                                n->starts ? n->starts - 1 : 0,
		                        .detail = detail,
		                        .tail = r->tail});
		free(detail);
	} else
		events_emit(&d->events, EV_TASK_DONE, n->path, 0, why,
		            n->starts ? n->starts - 1 : 0, "%s%s",
		            ledger_state_name(st),
		            r->result ? ", with a result" : "");
	tasks_events_ended(d, n);
	tasks_wake(d, r);
}

_Static_assert(TASKS_MAX_WAITERS >= CONTROL_MAX_CLIENTS * TASKS_CLIENT_WAITERS,
               "room for every client's share of waits");

/* The waits cl has under way: each connection may hold only its share. */
static int
tasks_client_waits(const struct tasks *t, const struct client *cl)
{
	int n = 0;

	for (size_t i = 0; i < t->nwaiters; i++)
		n += t->waiters[i].cl == cl;
	return n;
}

void
tasks_wait_add(struct daemon *d, struct client *cl, struct ledger_rec *r,
               uint64_t id)
{
	struct tasks *t = d->tasks;

	if (tasks_client_waits(t, cl) == TASKS_CLIENT_WAITERS) {
		serve_refusef(
		        cl, id,
		        "too many waits at once on this connection (%d at "
		        "most)",
		        TASKS_CLIENT_WAITERS);
		return;
	}
	if (t->nwaiters == TASKS_MAX_WAITERS) { /* more clients than bounded */
		serve_refuse(cl, id, "too many waits at once");
		return;
	}
	if (t->nwaiters == t->capwaiters) {
		t->capwaiters = t->capwaiters == 0 ? 8 : 2 * t->capwaiters;
		if (t->capwaiters > TASKS_MAX_WAITERS)
			t->capwaiters = TASKS_MAX_WAITERS;
		t->waiters = xreallocarray(t->waiters, t->capwaiters,
		                           sizeof *t->waiters);
	}
	t->waiters[t->nwaiters++] =
	        (struct tasks_waiter){.cl = cl, .id = id, .rec = r};
	cl->waiting = true; /* no idle deadline while it waits */
}

void
tasks_client_gone(struct daemon *d, struct client *cl)
{
	struct tasks *t = d->tasks;
	size_t k = 0;

	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nwaiters; i++)
		if (t->waiters[i].cl != cl)
			t->waiters[k++] = t->waiters[i];
	t->nwaiters = k;
}
