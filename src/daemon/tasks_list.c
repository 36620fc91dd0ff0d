/*
 * tasks_list.c - the ledger listed: `dead`, the dead letters as whole
 * records in order of ending, and `tasks [SUP] [STATE]`, every task (of a
 * pool, in a state) a line's worth each in order of acceptance. The
 * store's rows are merged with memory's records, which are newer for a
 * key in both; the answer goes in serve.c's bounded frames.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentsup/wire.h"
#include "client.h"
#include "daemon.h"
#include "ledger.h"
#include "request.h"
#include "serve.h"
#include "tasks_int.h"
#include "taskstore.h"
#include "tree.h"
#include "util.h"

/* The states STATE may name, as records and answers spell them. */
static const char *const tasks_list_states[] = {
        "pending", "running", "cancelling", "done", "dead", "cancelled"};

struct tasks_list {
	struct daemon *d;
	struct taskstore_filter f; /* f.state: stored ones only */
	const char *state;         /* NULL: any */
	bool whole;                /* dead: whole records */
	struct serve_list out;
	msgpack_packer *pk; /* &out.pk, or with newest &kpk */
	size_t total;
	struct ledger_rec **mem; /* in memory, oldest first */
	size_t nmem, next;       /* next: how many of mem were taken */
	/* tasks -n: the newest only, taken newest first (f.desc), their
	 * items kept whole in kept and sent oldest first at the end */
	uint32_t newest;
	msgpack_sbuffer kept;
	msgpack_packer kpk;
	size_t *ends; /* where each item kept ends in kept */
};

/* A line's worth of r, n its live child: its result's size, not its
 * bytes, and none of its inputs or output (wait KEY --timeout 0 has
 * them): 20,000 done tasks listed are not 20,000 results. */
static void
tasks_list_brief(struct tasks_list *t, const struct ledger_rec *r,
                 const struct node *n, const char *state)
{
	msgpack_packer *pk = t->pk;
	char name[2 * REQUEST_NAME_MAX];

	snprintf(name, sizeof name, "%s/%s", r->sup, r->key);
	msgpack_pack_map(pk, 11);
	agentsup_wire_kv_str(pk, "name", name);
	agentsup_wire_kv_str(pk, "sup", r->sup);
	agentsup_wire_kv_str(pk, "key", r->key);
	agentsup_wire_kv_str(pk, "state", state);
	agentsup_wire_kv_uint(pk, "attempts",
	                      r->attempts + (n ? n->starts : 0));
	tasks_pack_reasons(pk, r);
	if (r->result != NULL)
		agentsup_wire_kv_uint(pk, "result_size", r->result_len);
	else
		tasks_kv_nil(pk, "result_size");
	tasks_pack_history(t->d, pk, r, n);
}

/* r listed if it is of the state asked for; live: it is memory's (a row
 * of the store alone has no live child). */
static void
tasks_list_item(struct tasks_list *t, const struct ledger_rec *r, bool live)
{
	const struct node *n =
	        live && !ledger_ended(r)
	                ? tasks_live_node(t->d, r, tasks_sup_find(t->d, r->sup))
	                : NULL;
	const char *state = tasks_state_name(r, n);

	if (t->state != NULL && strcmp(state, t->state) != 0)
		return;
	if (t->newest > 0 && t->total == t->newest)
		return; /* older than the newest asked for */
	if (t->whole)
		tasks_pack_rec(t->d, t->pk, r, -1);
	else
		tasks_list_brief(t, r, n, state);
	t->total++;
	if (t->newest == 0) {
		serve_list_added(&t->out);
		return;
	}
	t->ends = xreallocarray(t->ends, t->total, sizeof *t->ends);
	t->ends[t->total - 1] = t->kept.size;
}

/* The newest kept, newest first, sent oldest first. */
static void
tasks_list_newest(struct tasks_list *t)
{
	for (size_t i = t->total; i-- > 0;) {
		size_t from = i > 0 ? t->ends[i - 1] : 0;

		msgpack_sbuffer_write(&t->out.items, t->kept.data + from,
		                      t->ends[i] - from);
		serve_list_added(&t->out);
	}
}

/* a before b (< 0), the same record (0), or after (> 0), as the store's
 * query orders its rows: by time (of ending, or of acceptance), then
 * pool, then key. */
static int
tasks_list_order(bool by_end, const struct ledger_rec *a,
                 const struct ledger_rec *b)
{
	int64_t x = by_end ? a->ended_ms : a->accepted_ms;
	int64_t y = by_end ? b->ended_ms : b->accepted_ms;
	int c;

	if (x != y)
		return x < y ? -1 : 1;
	c = strcmp(a->sup, b->sup);
	return c != 0 ? c : strcmp(a->key, b->key);
}

static int
tasks_list_by_end(const void *a, const void *b)
{
	return tasks_list_order(true, *(struct ledger_rec *const *)a,
	                        *(struct ledger_rec *const *)b);
}

int
tasks_by_accepted(const void *a, const void *b)
{
	return tasks_list_order(false, *(struct ledger_rec *const *)a,
	                        *(struct ledger_rec *const *)b);
}

/* Memory's next record in the list's order, taken; NULL when all are. */
static struct ledger_rec *
tasks_list_mem_take(struct tasks_list *t)
{
	if (t->next == t->nmem)
		return NULL;
	t->next++;
	return t->mem[t->f.desc ? t->nmem - t->next : t->next - 1];
}

/* Whether memory's next record comes before the stored r in the list. */
static bool
tasks_list_mem_first(const struct tasks_list *t, const struct ledger_rec *r)
{
	int c;

	if (t->next == t->nmem)
		return false;
	c = tasks_list_order(
	        t->f.by_end,
	        t->mem[t->f.desc ? t->nmem - 1 - t->next : t->next], r);
	return t->f.desc ? c > 0 : c < 0;
}

/* A stored record: memory's that come before it first; one that is also
 * in memory is told from memory, and one whose key is no longer among the
 * stored keys' (a drop under way) is gone, as wait and drop say. True
 * once the newest asked for are all taken: no older row is read. */
static bool
tasks_list_row(void *arg, const struct ledger_rec *r)
{
	struct tasks_list *t = arg;
	struct tasks *ts = t->d->tasks;

	while (tasks_list_mem_first(t, r))
		tasks_list_item(t, tasks_list_mem_take(t), true);
	if (ledger_get(&ts->ledger, r->sup, r->key) == NULL &&
	    ledger_keys_has(&ts->keys, ledger_key_hash(r->sup, r->key)))
		tasks_list_item(t, r, false);
	return t->newest > 0 && t->total == t->newest;
}

/* Memory's records of the pool and (for an ended state) the state asked
 * for, in the list's order. */
static void
tasks_list_memory(struct tasks_list *t)
{
	struct ledger *l = &t->d->tasks->ledger;
	struct ledger_iter it = {0};
	struct ledger_rec *r;

	t->mem = xcalloc(l->count + 1, sizeof *t->mem);
	while ((r = ledger_next(l, &it)) != NULL)
		if ((t->f.sup == NULL || strcmp(r->sup, t->f.sup) == 0) &&
		    (t->f.state < 0 ||
		     (ledger_ended(r) && (int)r->state == t->f.state)))
			t->mem[t->nmem++] = r;
	qsort(t->mem, t->nmem, sizeof *t->mem,
	      t->f.by_end ? tasks_list_by_end : tasks_by_accepted);
}

/* STATE checked; which stored rows can be of it: an ended state's own,
 * or none (a live task's record is in memory from its acceptance, or from
 * the start that resumes it, to its end). */
static int
tasks_list_state(struct tasks_list *t, struct client *cl,
                 const struct request *q)
{
	const msgpack_object *s = q->opts;
	size_t i;

	if (s == NULL)
		return 0;
	for (i = 0; i < sizeof tasks_list_states / sizeof *tasks_list_states;
	     i++)
		if (s->via.str.size == strlen(tasks_list_states[i]) &&
		    memcmp(s->via.str.ptr, tasks_list_states[i],
		           s->via.str.size) == 0)
			break;
	if (i == sizeof tasks_list_states / sizeof *tasks_list_states) {
		serve_refuse(cl, q->id,
		             "tasks: STATE is one of pending, running, "
		             "cancelling, done, dead, cancelled");
		return -1;
	}
	t->state = tasks_list_states[i];
	if (strcmp(t->state, "done") == 0)
		t->f.state = LEDGER_DONE;
	else if (strcmp(t->state, "dead") == 0)
		t->f.state = LEDGER_DEAD;
	else if (strcmp(t->state, "cancelled") == 0)
		t->f.state = LEDGER_CANCELLED;
	return 0;
}

/* Whether a pool the tree does not have left a task of any state (STATE
 * may be none of theirs): in memory, or in the store. */
static bool
tasks_list_left(struct daemon *d, const char *sup)
{
	struct ledger_iter it = {0};
	const struct ledger_rec *r;

	while ((r = ledger_next(&d->tasks->ledger, &it)) != NULL)
		if (strcmp(r->sup, sup) == 0)
			return true;
	return d->store != NULL && taskstore_has_sup(d, sup) > 0;
}

/* Everything a listing holds freed; its last frame sent, or not (it was
 * refused). */
static void
tasks_list_free(struct tasks_list *t, bool send)
{
	if (send)
		serve_list_end(&t->out);
	else
		serve_list_drop(&t->out);
	msgpack_sbuffer_destroy(&t->kept);
	free(t->mem);
	free(t->ends);
}

void
tasks_list(struct client *cl, struct daemon *d, const struct request *q)
{
	struct tasks_list t = {.d = d, .f = {.state = -1}};
	const struct node *sup = NULL;

	if (q->cmd == REQ_DEAD) {
		t.whole = t.f.by_end = true;
		t.f.state = LEDGER_DEAD;
	} else if (tasks_list_state(&t, cl, q) < 0) {
		return;
	}
	t.newest = q->lines;
	t.f.desc = t.newest > 0;
	t.f.brief = !t.whole;
	/* SUP by name or path, as records have it (by name); a name the
	 * tree no longer has may still be a removed pool's, and so may a
	 * path it had */
	if (q->name[0] != '\0') {
		sup = tasks_sup_find(d, q->name);
		t.f.sup = sup != NULL ? sup->spec->name : q->name;
		if (sup == NULL) {
			const char *was = tasks_pool_once_at(d, q->name);

			if (was != NULL)
				t.f.sup = was;
		}
	}
	tasks_list_memory(&t);
	serve_list_init(&t.out, cl, q->id);
	msgpack_sbuffer_init(&t.kept);
	msgpack_packer_init(&t.kpk, &t.kept, msgpack_sbuffer_write);
	t.pk = t.newest > 0 ? &t.kpk : &t.out.pk;
	if (d->store != NULL && (t.state == NULL || t.f.state >= 0) &&
	    taskstore_each(d, &t.f, tasks_list_row, &t) < 0) {
		tasks_list_free(&t, false);
		serve_refusef(cl, q->id, "%s: the store cannot be read",
		              request_cmd_name(q->cmd));
		return;
	}
	for (struct ledger_rec *r; (r = tasks_list_mem_take(&t)) != NULL;)
		tasks_list_item(&t, r, true);
	if (t.newest > 0)
		tasks_list_newest(&t);
	if (q->name[0] != '\0' && sup == NULL && t.total == 0 &&
	    !tasks_list_left(d, q->name)) {
		tasks_list_free(&t, false);
		serve_refusef(cl, q->id,
		              "no such supervisor, and no task of "
		              "one: %s",
		              q->name);
		return;
	}
	tasks_list_free(&t, true);
}
