/*
 * tasks.c - dynamic children in the shell (DESIGN §12).
 *
 * A spawn (from agentsupctl or from a worker in the supervisor's
 * spawn_from) is checked here: the supervisor, the key (a safe charset,
 * bounded), the inputs; then idempotency: a key pending or running answers
 * with that child, a key that ended within key_ttl answers with its record
 * unless --retry. The engine (dynamic.c) makes the child or refuses it
 * (max_children, with the count). Every accepted task has a ledger record
 * from that moment; with a store its child starts once that record is
 * stored (tasks_held.c: a spawn refused for the store never runs). The
 * pump reports restarts and ends to tasks_end.c, which wakes `agentsupctl
 * wait`.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentsup/wire.h"
#include "channel.h"
#include "ckpt.h"
#include "client.h"
#include "clock.h"
#include "daemon.h"
#include "dynamic.h"
#include "ledger.h"
#include "log.h"
#include "request.h"
#include "serve.h"
#include "session.h"
#include "store.h"
#include "tasks.h"
#include "tasks_int.h"
#include "taskstore.h"
#include "util.h"

struct tasks *
tasks_new(struct daemon *d)
{
	struct tasks *t = xcalloc(1, sizeof *t);

	t->loop = d->loop;
	ledger_init(&t->ledger, LEDGER_MAX_ENDED);
	taskstore_retry_init(t, d);
	return t;
}

void
tasks_free(struct tasks *t)
{
	if (t == NULL)
		return;
	ev_timer_stop(t->loop, &t->retry_w);
	for (size_t i = 0; i < t->nearlier; i++) {
		free(t->earlier[i].sup);
		free(t->earlier[i].path);
	}
	ledger_free(&t->ledger);
	ledger_keys_free(&t->keys);
	ledger_numbers_free(&t->numbers);
	free(t->waiters);
	free(t);
}

int
tasks_load(struct daemon *d, char *why, size_t len)
{
	struct tasks *t = d->tasks;
	struct ledger_iter it = {0};
	struct ledger_rec *r;

	/* the ended records live in the store: memory keeps a few */
	t->ledger.max_ended = LEDGER_CACHE;
	if (taskstore_load(d, &t->ledger, why, len) < 0)
		return -1;
	while ((r = ledger_next(&t->ledger, &it)) != NULL)
		if (!ledger_ended(r)) {
			r->resume = true;
			t->nresume++;
		}
	return 0;
}

struct ledger_rec *
tasks_get(struct daemon *d, const char *sup, const char *key)
{
	struct ledger_rec *r = ledger_get(&d->tasks->ledger, sup, key);

	if (r == NULL && d->store != NULL &&
	    ledger_keys_has(&d->tasks->keys, ledger_key_hash(sup, key)))
		r = taskstore_fetch(d, &d->tasks->ledger, sup, key);
	return r;
}

/* A supervisor by name or path, its dynamic children not walked (they are
 * workers, and there may be thousands): what tree_find finds for a
 * supervisor, in time of the configured tree only. */
static struct node *
tasks_sup_walk(struct node *n, const char *name)
{
	struct node *f;

	if (n->spec->kind != KIND_SUPERVISOR)
		return NULL;
	if (strcmp(n->spec->name, name) == 0 || strcmp(n->path, name) == 0)
		return n;
	if (n->spec->tmpl != NULL)
		return NULL;
	for (size_t i = 0; i < n->nchildren; i++)
		if ((f = tasks_sup_walk(n->children[i], name)) != NULL)
			return f;
	return NULL;
}

struct node *
tasks_sup_find(struct daemon *d, const char *name)
{
	return tasks_sup_walk(d->tree->root, name);
}

/* Reloads applied: a node a record points at is valid while it holds. */
static uint64_t
tasks_gen(const struct daemon *d)
{
	return d->events.counts[EV_RELOAD_APPLIED];
}

void
tasks_set_node(struct daemon *d, struct ledger_rec *r, struct node *n)
{
	r->node = n;
	r->node_gen = tasks_gen(d);
	if (n != NULL)
		r->run = n;
}

struct node *
tasks_live_node(struct daemon *d, const struct ledger_rec *r,
                const struct node *sup)
{
	if (ledger_ended(r))
		return NULL;
	if (r->node != NULL && r->node_gen == tasks_gen(d))
		return r->node->task != NULL &&
		                       r->node->task->end == TASK_END_NONE
		               ? r->node
		               : NULL;
	return sup != NULL ? dynamic_find(sup, r->key) : NULL;
}

/* By the name it was spawned under (a reload that removed its template
 * buried the task alone, its parent the graveyard by the time it ends),
 * and only while the record is this run's: a cancelled run still draining
 * must not speak for a retry of its key. */
struct ledger_rec *
tasks_rec_of(struct daemon *d, const struct node *n)
{
	struct ledger_rec *r;

	if (n->task == NULL)
		return NULL;
	r = ledger_get(&d->tasks->ledger, n->task->sup, n->task->key);
	return r != NULL && r->run == n ? r : NULL;
}

/* --- checks --------------------------------------------------------------- */

/* A key is a child's name: letters, digits, '_', '-', '.', at most 64,
 * starting with a letter or digit (no '/', no control bytes). */
static bool
tasks_key_ok(const char *k)
{
	size_t n = strlen(k);

	if (n == 0 || n > LEDGER_KEY_MAX || !isalnum((unsigned char)k[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)k[i]) && k[i] != '_' &&
		    k[i] != '-' && k[i] != '.')
			return false;
	return true;
}

static const char *
tasks_inputs_bad(char *const *args, char *const *env)
{
	size_t n = 0;

	for (; args != NULL && args[n] != NULL; n++)
		if (n >= TASKS_MAX_ARGS)
			return "args: too many arguments";
	for (n = 0; env != NULL && env[n] != NULL; n++) {
		const char *e = env[n];
		size_t k = strcspn(e, "=");
		if (n >= TASKS_MAX_ARGS)
			return "env: too many variables";
		if (k == 0 || e[k] != '=' ||
		    (!isalpha((unsigned char)e[0]) && e[0] != '_'))
			return "env: a bad variable name";
		for (size_t i = 0; i < k; i++)
			if (!isalnum((unsigned char)e[i]) && e[i] != '_')
				return "env: a bad variable name";
		if (strncmp(e, "AGENTSUP_", 9) == 0)
			return "env: AGENTSUP_* is set by agentsupd";
	}
	return NULL;
}

/* --- spawning ------------------------------------------------------------- */

/* A key for SUP/N: the next number no record and no child holds. */
static void
tasks_number(struct daemon *d, struct node *sup, char *buf, size_t len)
{
	/* numbers go on from the highest stored before this start */
	dynamic_number_past(
	        sup, ledger_numbers_max(&d->tasks->numbers, sup->spec->name));
	/* a live child has a record: no scan of the children */
	do
		snprintf(buf, len, "%lu", dynamic_next_number(sup));
	while (tasks_get(d, sup->spec->name, buf) != NULL);
}

/* Without a store, a task run again (retry, replay) starts from the last
 * checkpoint its record kept: moved back to the checkpoint set. */
static void
tasks_seed_checkpoint(struct daemon *d, const struct node *n,
                      struct ledger_rec *r)
{
	if (d->store != NULL || r->checkpoint == NULL)
		return;
	ckpt_seed(d->ckpt, n->path, r->checkpoint_seq, r->checkpoint,
	          r->checkpoint_len);
	ledger_checkpoint(r, r->checkpoint_seq, NULL, 0);
}

static const char *
tasks_refused(struct tasks *t, const char *fmt, const char *a)
{
	snprintf(t->error, sizeof t->error, fmt, a);
	return t->error;
}

/* An answer about r, a record maybe not committed yet: with a store and
 * a write of it in flight, given by in->ack after that write. */
static void
tasks_defer(struct daemon *d, const struct tasks_spawn *in,
            struct ledger_rec *r, struct tasks_outcome *out)
{
	unsigned live = out->node != NULL ? (unsigned)out->node->starts : 0;

	if (in->ack == NULL || r == NULL)
		return;
	/* a write of it failed (its result, its end...): written again,
	 * and this answer waits for that */
	if (r->unsaved) {
		if (taskstore_save_ack(d, r, live, in->ack, in->ack_arg) == 0)
			out->deferred = true;
		else
			out->error = TASKS_STORE_BEHIND;
		return;
	}
	if (r->pins > 0 && taskstore_barrier(d, r, in->ack, in->ack_arg) == 0)
		out->deferred = true;
}

/* Whether r ended less than ttl ago: by the monotonic clock when it ended
 * during this run, by the wall clock when before (a reboot since restarted
 * the monotonic one). */
static bool
tasks_ended_within(const struct ledger_rec *r, uint64_t ttl)
{
	int64_t wall;

	if (r->ended_mono != 0)
		return clock_now_ms() - r->ended_mono < ttl;
	wall = clock_wall_ms();
	return wall < r->ended_ms || (uint64_t)(wall - r->ended_ms) < ttl;
}

/* Idempotency: the live child, or the record of a task that ended within
 * key_ttl. True when the spawn is answered without spawning. */
static bool
tasks_known(struct daemon *d, struct node *sup, const struct tasks_spawn *in,
            const char *key, struct tasks_outcome *out)
{
	struct ledger_rec *r = tasks_get(d, sup->spec->name, key);

	/* a live child has a live record, which knows it (no scan of the
	 * children) */
	out->node = r != NULL ? tasks_live_node(d, r, sup) : NULL;
	out->rec = r;
	if (out->node != NULL) {
		tasks_defer(d, in, r, out);
		return true;
	}
	/* accepted before a restart and waiting to be resumed: that task
	 * (it was refused for max_children when the pool was full) */
	if (r != NULL && !ledger_ended(r) && r->resume && !in->resuming) {
		tasks_defer(d, in, r, out);
		return true;
	}
	if (r != NULL && ledger_ended(r) && !in->retry &&
	    tasks_ended_within(r, sup->spec->pol->key_ttl_ms)) {
		tasks_defer(d, in, r, out);
		return true;
	}
	return false;
}

/* A resumed task was accepted before the restart: its time stays. */
static int64_t
tasks_accepted_ms(const struct tasks_spawn *in, const struct ledger_rec *r)
{
	return in->resuming && r != NULL && r->accepted_ms != 0
	               ? r->accepted_ms
	               : clock_wall_ms();
}

/* A spawn whose record is being written: its child starts once the
 * record is stored; if the write fails the spawn is refused, so the child
 * is taken out unstarted and the record is as it was before (none, or the
 * ended one a retry or a replay started afresh). Never refused and
 * running: a caller told of the error spawns again, maybe under a new key. */
void
tasks_spawn(struct daemon *d, const struct tasks_spawn *in,
            struct tasks_outcome *out)
{
	struct tasks *t = d->tasks;
	struct node *sup = tasks_sup_find(d, in->sup);
	struct tasks_held *h;
	enum spawn_refusal why;
	char num[32];
	const char *key = in->key;

	memset(out, 0, sizeof *out);
	if (sup == NULL || sup->spec->kind != KIND_SUPERVISOR ||
	    sup->spec->tmpl == NULL) {
		out->error = tasks_refused(
		        t, "no dynamic supervisor (with a template) %s",
		        in->sup);
		return;
	}
	snprintf(t->sup, sizeof t->sup, "%s", sup->spec->name);
	if (key != NULL && !tasks_key_ok(key)) {
		out->error = "bad key (letters, digits, '_', '-', '.'; at most "
		             "64; starts with a letter or digit)";
		return;
	}
	if ((out->error = tasks_inputs_bad(in->args, in->env)) != NULL)
		return;
	if (key == NULL) {
		tasks_number(d, sup, num, sizeof num);
		key = num;
	}
	snprintf(t->name, sizeof t->name, "%s/%s", sup->spec->name, key);
	if (tasks_known(d, sup, in, key, out))
		return;
	/* its record must be queued for the answer to mean something */
	if (d->store != NULL && !store_ledger_room(d->store)) {
		out->error = TASKS_STORE_BEHIND;
		return;
	}
	out->node = dynamic_add(d->tree, sup, key, in->args, in->env,
	                        clock_now_ms(), &why);
	if (out->node == NULL) {
		out->error = dynamic_refusal_name(why);
		out->has_count = why == SPAWN_MAX_CHILDREN;
		out->count = dynamic_count(sup);
		return;
	}
	out->created = true;
	if (d->store != NULL) /* a pool added again goes on past it too */
		ledger_numbers_see(&t->numbers, sup->spec->name, key);
	out->node->task->serial = ++t->serial;
	h = tasks_held_new(in, out->rec, t->serial);
	out->rec = ledger_accept(&t->ledger, sup->spec->name, key, in->args,
	                         in->env, tasks_accepted_ms(in, out->rec));
	if (in->resuming && out->rec->attempts > 0) /* a run cut short */
		ledger_reason(out->rec,
		              "resumed: agentsupd stopped while it ran");
	tasks_set_node(d, out->rec, out->node);
	tasks_seed_checkpoint(d, out->node, out->rec);
	if (in->replay != NULL)
		out->rec->replays++;
	tasks_go(d, in, h, out);
}

/* A worker's spawn answered after the commit: to the same run of the
 * same worker, if it is still there. */
struct tasks_worker_ack {
	char path[3 * REQUEST_NAME_MAX]; /* the spawner */
	unsigned long starts;            /* its run */
	struct spawn_answer a;
	char name[2 * REQUEST_NAME_MAX], error[256];
};

static void
tasks_worker_acked(struct daemon *d, struct ledger_rec *r, void *arg, int rc,
                   const char *why)
{
	struct tasks_worker_ack *w = arg;
	struct node *n = tree_find(d->tree, w->path);

	(void)r;
	if (rc != 0 && w->a.ok) {
		snprintf(w->error, sizeof w->error,
		         "the ledger could not be stored: %s", why);
		w->a = (struct spawn_answer){.error = w->error};
	}
	if (n != NULL && n->starts == w->starts && n->session != NULL &&
	    n->session->chan != NULL)
		channel_send_spawned(n->session->chan, &w->a,
		                     daemon_max_frame(d));
	free(w);
}

/* The answer, copied for tasks_worker_acked. */
static struct tasks_worker_ack *
tasks_worker_ack_new(const struct node *from)
{
	struct tasks_worker_ack *w = xcalloc(1, sizeof *w);

	snprintf(w->path, sizeof w->path, "%s", from->path);
	w->starts = from->starts;
	return w;
}

static void
tasks_worker_answer(struct tasks_worker_ack *w, const struct spawn_answer *a)
{
	w->a = *a;
	if (a->name != NULL) {
		snprintf(w->name, sizeof w->name, "%s", a->name);
		w->a.name = w->name;
	}
	if (a->error != NULL) {
		snprintf(w->error, sizeof w->error, "%s", a->error);
		w->a.error = w->error;
	}
}

bool
tasks_worker_spawn(struct daemon *d, struct node *from,
                   const struct spawn_request *r, struct spawn_answer *a)
{
	struct node *sup = tasks_sup_find(d, r->sup);
	struct tasks_worker_ack *w = NULL;
	struct tasks_outcome out = {0};
	char by[128];

	memset(a, 0, sizeof *a);
	if (d->store != NULL) /* every answer after the commits before it */
		w = tasks_worker_ack_new(from);
	if (r->bad != NULL) {
		a->error = r->bad;
	} else if (sup == NULL || sup->spec->kind != KIND_SUPERVISOR ||
	           sup->spec->tmpl == NULL) {
		a->error = tasks_refused(
		        d->tasks, "no dynamic supervisor (with a template) %s",
		        r->sup);
	} else if (from->task != NULL ||
	           !config_spawn_allowed(sup->spec, from->spec->name)) {
		/* a dynamic child is named by its key, which a spawner
		 * chose: it never passes for a configured worker of
		 * spawn_from */
		a->error = tasks_refused(d->tasks,
		                         "not in the spawn_from of %s", r->sup);
	} else {
		snprintf(by, sizeof by, "worker %s", from->path);
		tasks_spawn(d,
		            &(struct tasks_spawn){.sup = r->sup,
		                                  .key = r->key,
		                                  .args = r->args,
		                                  .env = r->env,
		                                  .by = by,
		                                  .ack = w ? tasks_worker_acked
		                                           : NULL,
		                                  .ack_arg = w},
		            &out);
		a->ok = out.error == NULL;
		a->error = out.error;
		a->has_count = out.has_count;
		a->count = out.count;
		a->created = out.created;
		a->name = a->ok ? d->tasks->name : NULL;
	}
	if (w == NULL)
		return true;
	tasks_worker_answer(w, a);
	if (out.deferred ||
	    taskstore_barrier(d, out.rec, tasks_worker_acked, w) == 0)
		return false;
	free(w); /* the store's queue is full: now */
	return true;
}

/* --- answers -------------------------------------------------------------- */
