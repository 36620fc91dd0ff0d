/*
 * tasks_serve.c - the task commands of the control socket: spawn, wait,
 * replay, drop (dead and tasks, the listings, are tasks_list.c's); records
 * packed as the clients read them.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "agentsup/wire.h"
#include "channel.h"
#include "client.h"
#include "clock.h"
#include "control.h"
#include "daemon.h"
#include "dynamic.h"
#include "ledger.h"
#include "log.h"
#include "logcap.h"
#include "request.h"
#include "serve.h"
#include "tasks.h"
#include "taskstore.h"
#include "ckpt.h"
#include "util.h"
#include "store.h"
#include "tasks_int.h"

static void
tasks_pack_strv(msgpack_packer *pk, const char *key, char *const *v)
{
	size_t n = 0;

	while (v != NULL && v[n] != NULL)
		n++;
	agentsup_wire_pack_str(pk, key);
	msgpack_pack_array(pk, n);
	for (size_t i = 0; i < n; i++)
		agentsup_wire_pack_str(pk, v[i]);
}

void
tasks_kv_nil(msgpack_packer *pk, const char *key)
{
	agentsup_wire_pack_str(pk, key);
	msgpack_pack_nil(pk);
}

const char *
tasks_state_name(const struct ledger_rec *r, const struct node *n)
{
	/* stopped by an operator, or its pool removed, on its way down: it
	 * said "pending", as a task about to start would */
	if (n != NULL && (n->held || n->removed))
		return "cancelling";
	if (n != NULL)
		return ledger_state_name(
		        n->state == NODE_RUNNING || n->state == NODE_STARTING
		                ? LEDGER_RUNNING
		                : LEDGER_PENDING);
	return ledger_state_name(r->state);
}

void
tasks_pack_history(struct daemon *d, msgpack_packer *pk,
                   const struct ledger_rec *r, const struct node *n)
{
	/* a live task's newest; an ended one's last, kept in its record */
	uint64_t seq = n != NULL && ckpt_known(d->ckpt, n->path)
	                       ? ckpt_seq(d->ckpt, n->path)
	                       : r->checkpoint_seq;

	if (seq != 0)
		agentsup_wire_kv_uint(pk, "checkpoint_seq", seq);
	else
		tasks_kv_nil(pk, "checkpoint_seq");
	agentsup_wire_kv_int(pk, "accepted_ms", r->accepted_ms);
	if (r->ended_ms)
		agentsup_wire_kv_int(pk, "ended_ms", r->ended_ms);
	else
		tasks_kv_nil(pk, "ended_ms");
	agentsup_wire_kv_uint(pk, "replays", r->replays);
}

void
tasks_pack_reasons(msgpack_packer *pk, const struct ledger_rec *r)
{
	agentsup_wire_pack_str(pk, "reasons");
	msgpack_pack_array(pk, r->nreasons);
	for (unsigned i = 0; i < r->nreasons; i++)
		agentsup_wire_pack_str(
		        pk, r->reasons[(r->r0 + i) % LEDGER_REASONS]);
}

/* The record as a map (created: -1 leaves that key out). Live records
 * show the child's state and attempts of now. */
void
tasks_pack_rec(struct daemon *d, msgpack_packer *pk, const struct ledger_rec *r,
               int created)
{
	struct node *sup = tasks_sup_find(d, r->sup);
	struct node *n = tasks_live_node(d, r, sup);
	char name[2 * REQUEST_NAME_MAX];

	snprintf(name, sizeof name, "%s/%s", r->sup, r->key);
	msgpack_pack_map(pk, 14 + (created >= 0));
	agentsup_wire_kv_str(pk, "name", name);
	agentsup_wire_kv_str(pk, "sup", r->sup);
	agentsup_wire_kv_str(pk, "key", r->key);
	agentsup_wire_kv_str(pk, "state", tasks_state_name(r, n));
	agentsup_wire_kv_uint(pk, "attempts",
	                      r->attempts + (n ? n->starts : 0));
	tasks_pack_strv(pk, "args", r->args);
	tasks_pack_strv(pk, "env", r->env);
	tasks_pack_reasons(pk, r);
	agentsup_wire_pack_str(pk, "result");
	if (r->result != NULL) {
		msgpack_pack_bin(pk, r->result_len);
		msgpack_pack_bin_body(pk, r->result, r->result_len);
	} else {
		msgpack_pack_nil(pk);
	}
	if (r->tail != NULL)
		agentsup_wire_kv_str(pk, "tail", r->tail);
	else
		tasks_kv_nil(pk, "tail");
	tasks_pack_history(d, pk, r, n);
	if (created >= 0) {
		agentsup_wire_pack_str(pk, "created");
		created ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	}
}

void
tasks_answer_rec(struct client *cl, struct daemon *d, uint64_t id,
                 const struct ledger_rec *r, int created)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	serve_res_head(&sb, id, true, false);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	tasks_pack_rec(d, &pk, r, created);
	serve_frame_send(cl, &sb);
	msgpack_sbuffer_destroy(&sb);
}

/* The pool's name a record is filed under, from the part of NAME before
 * SLASH: its name, or its path ("root/pool"), that of a pool a reload
 * removed by its last part. Into a buffer of the caller's. */
static const char *
tasks_pool_name(struct daemon *d, const char *name, const char *slash,
                char *sup, size_t len)
{
	const struct node *n;
	const char *last;

	snprintf(sup, len, "%.*s", (int)(slash - name), name);
	if ((last = strrchr(sup, '/')) == NULL)
		return sup;
	if ((n = tasks_sup_find(d, sup)) != NULL)
		return n->spec->name;
	return last + 1;
}

struct ledger_rec *
tasks_lookup(struct daemon *d, const char *name, const char **why)
{
	struct ledger *l = &d->tasks->ledger;
	const char *slash = strrchr(name, '/');
	struct ledger_iter it = {0};
	struct ledger_rec *r;
	char sups[3][REQUEST_NAME_MAX];
	size_t n;

	*why = NULL;
	if (slash != NULL) /* SUP/KEY or the path status shows */
		return tasks_get(d,
		                 tasks_pool_name(d, name, slash, sups[0],
		                                 sizeof sups[0]),
		                 slash + 1);
	n = taskstore_sups(d, name, sups, 2);
	while ((r = ledger_next(l, &it)) != NULL && n < 3)
		if (strcmp(r->key, name) == 0 &&
		    (n == 0 || strcmp(sups[0], r->sup) != 0) &&
		    (n < 2 || strcmp(sups[1], r->sup) != 0))
			snprintf(sups[n++], sizeof sups[0], "%s", r->sup);
	if (n > 1) {
		*why = "ambiguous key: say SUP/KEY";
		return NULL;
	}
	return n == 1 ? tasks_get(d, sups[0], name) : NULL;
}

const char *
tasks_tail(struct daemon *d, const char *name)
{
	const char *why;
	struct ledger_rec *r = tasks_lookup(d, name, &why);

	if (r == NULL || !ledger_ended(r))
		return NULL;
	return r->tail != NULL ? r->tail : ""; /* it printed nothing */
}

/* --- the control commands ------------------------------------------------- */

/* spawn [SUP, {key?, args?, env?, retry?}] from agentsupctl. */
static const char *
tasks_opts(const msgpack_object *o, char ***args, char ***env, const char **key,
           bool *retry, char *keybuf, size_t keylen)
{
	const msgpack_object *k, *a, *e, *r;

	if (o == NULL)
		return NULL;
	if (o->type != MSGPACK_OBJECT_MAP)
		return "spawn: the options must be a map";
	k = agentsup_wire_get(o, "key");
	a = agentsup_wire_get(o, "args");
	e = agentsup_wire_get(o, "env");
	r = agentsup_wire_get(o, "retry");
	if ((k &&
	     (k->type != MSGPACK_OBJECT_STR || k->via.str.size >= keylen)) ||
	    (a && a->type != MSGPACK_OBJECT_ARRAY) ||
	    (e && e->type != MSGPACK_OBJECT_ARRAY) ||
	    (r && r->type != MSGPACK_OBJECT_BOOLEAN))
		return "spawn: key (string, < 256 bytes), args, env (lists "
		       "of strings), retry (bool)";
	if (k != NULL) {
		memcpy(keybuf, k->via.str.ptr, k->via.str.size);
		keybuf[k->via.str.size] = '\0';
		*key = keybuf;
	}
	*retry = r && r->via.boolean;
	for (int w = 0; w < 2; w++) {
		const msgpack_object *v = w ? e : a;
		uint32_t n = v ? v->via.array.size : 0;
		char **out = xcalloc(n + 1, sizeof *out);
		*(w ? env : args) = out;
		for (uint32_t i = 0; i < n; i++) {
			const msgpack_object *s = &v->via.array.ptr[i];
			if (s->type != MSGPACK_OBJECT_STR ||
			    (s->via.str.size &&
			     memchr(s->via.str.ptr, '\0', s->via.str.size)))
				return "spawn: args and env are strings "
				       "without NUL bytes";
			out[i] = xmalloc(s->via.str.size + 1);
			if (s->via.str.size)
				memcpy(out[i], s->via.str.ptr, s->via.str.size);
			out[i][s->via.str.size] = '\0';
		}
	}
	return NULL;
}

static void
tasks_strv_free(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

static void
tasks_answer_spawn(struct client *cl, struct daemon *d, uint64_t id,
                   const struct tasks_outcome *out)
{
	if (out->error != NULL && out->has_count)
		serve_refusef(cl, id, "%s: %s has %llu live children already",
		              out->error, d->tasks->sup,
		              (unsigned long long)out->count);
	else if (out->error != NULL)
		serve_refuse(cl, id, out->error);
	else if (out->rec != NULL)
		tasks_answer_rec(cl, d, id, out->rec, out->created);
	else
		serve_refuse(cl, id, "the task has no record");
}

/* A control client's spawn answered after the commit of its record. */
struct tasks_ctl_ack {
	uint64_t serial, id;
	bool created;
	char line[2 * REQUEST_NAME_MAX + 16]; /* a drop's answer */
};

static void
tasks_ctl_acked(struct daemon *d, struct ledger_rec *r, void *arg, int rc,
                const char *why)
{
	struct tasks_ctl_ack *a = arg;
	struct client *cl = control_client(d->control, a->serial);

	if (cl != NULL && rc != 0)
		serve_refusef(cl, a->id, "the ledger could not be stored: %s",
		              why);
	else if (cl != NULL)
		tasks_answer_rec(cl, d, a->id, r, a->created);
	free(a);
}

/* in spawned, answered now or (with a store) once its record is
 * committed: an answer never tells of a task a SIGKILL could lose. */
static void
tasks_spawn_answer(struct client *cl, struct daemon *d, uint64_t id,
                   struct tasks_spawn *in)
{
	struct tasks_ctl_ack *a = NULL;
	struct tasks_outcome out;

	if (d->store != NULL) {
		a = xcalloc(1, sizeof *a);
		a->serial = cl->serial;
		a->id = id;
		in->ack = tasks_ctl_acked;
		in->ack_arg = a;
	}
	tasks_spawn(d, in, &out);
	if (out.deferred) {
		a->created = out.created;
		return;
	}
	free(a);
	tasks_answer_spawn(cl, d, id, &out);
}

static void
tasks_serve_spawn(struct client *cl, struct daemon *d, const struct request *q)
{
	char **args = NULL, **env = NULL, keybuf[REQUEST_NAME_MAX], by[64];
	struct tasks_spawn in = {.sup = q->name, .by = by};
	const char *why;

	snprintf(by, sizeof by, "agentsupctl (uid %lu)",
	         (unsigned long)cl->uid);
	why = tasks_opts(q->opts, &args, &env, &in.key, &in.retry, keybuf,
	                 sizeof keybuf);
	if (why != NULL) {
		serve_refuse(cl, q->id, why);
	} else {
		in.args = args;
		in.env = env;
		tasks_spawn_answer(cl, d, q->id, &in);
	}
	tasks_strv_free(args);
	tasks_strv_free(env);
}

static void
tasks_serve_replay(struct client *cl, struct daemon *d, struct ledger_rec *r,
                   uint64_t id)
{
	char by[64];

	if (!ledger_ended(r)) {
		serve_refuse(cl, id, "the task is pending or running");
		return;
	}
	snprintf(by, sizeof by, "agentsupctl (uid %lu)",
	         (unsigned long)cl->uid);
	tasks_spawn_answer(cl, d, id,
	                   &(struct tasks_spawn){.sup = r->sup,
	                                         .key = r->key,
	                                         .args = r->args,
	                                         .env = r->env,
	                                         .retry = true,
	                                         .replay = r,
	                                         .by = by});
}

/* now: a look (wait --timeout 0), a live task's record at once; an ended
 * one's still once its end is committed, as any wait's. */
static void
tasks_serve_wait(struct client *cl, struct daemon *d, struct ledger_rec *r,
                 uint64_t id, bool now)
{
	if ((ledger_ended(r) && tasks_rec_settled(d, r)) ||
	    (now && !ledger_ended(r)))
		tasks_answer_rec(cl, d, id, r, -1);
	else
		tasks_wait_add(d, cl, r, id);
}

/* A dropped task's checkpoints go with its record (part: their deletion,
 * joined to the record's): a task spawned later under the same key starts
 * afresh. */
static void
tasks_forget_checkpoints(struct daemon *d, const struct ledger_rec *r,
                         struct store_part *part)
{
	struct node *sup = tasks_sup_find(d, r->sup);
	char path[3 * REQUEST_NAME_MAX], suffix[3 * REQUEST_NAME_MAX];
	bool here = sup != NULL && sup->spec->tmpl != NULL;

	/* the store's rows of every path ending in /SUP/KEY: where its pool
	 * is, and where it was (a reload moved it, or removed it: its path
	 * unknown then), which a task run there again would be handed */
	snprintf(suffix, sizeof suffix, "/%s/%s", r->sup, r->key);
	if (here)
		snprintf(path, sizeof path, "%s/%s", sup->path, r->key);
	ckpt_forget_task(d->ckpt, here ? path : NULL, suffix, part);
}

/* A drop answered once the row's deletion is committed. */
static void
tasks_drop_acked(struct daemon *d, struct ledger_rec *r, void *arg, int rc,
                 const char *why)
{
	struct tasks_ctl_ack *a = arg;
	struct client *cl = control_client(d->control, a->serial);

	/* not deleted: the record stays as it was (unless a spawn of its key
	 * since made another), in memory and among the stored keys */
	if (rc != 0 && ledger_get(&d->tasks->ledger, r->sup, r->key) == NULL) {
		ledger_put_back(&d->tasks->ledger, r);
		ledger_keys_add(&d->tasks->keys,
		                ledger_key_hash(r->sup, r->key));
	}
	if (cl != NULL && rc != 0)
		serve_refusef(cl, a->id, "the drop could not be stored: %s",
		              why);
	else if (cl != NULL)
		serve_text(cl, a->id, a->line);
	free(a);
}

static void
tasks_serve_drop(struct client *cl, struct daemon *d, struct ledger_rec *r,
                 uint64_t id)
{
	struct tasks_ctl_ack *a = xcalloc(1, sizeof *a);
	struct store_part ckpts;

	if (!ledger_ended(r)) {
		free(a);
		serve_refuse(cl, id,
		             "the task is pending or running: stop it "
		             "first");
		return;
	}
	if (d->store != NULL && !store_ledger_room(d->store)) {
		free(a);
		serve_refuse(cl, id, TASKS_STORE_BEHIND);
		return;
	}
	a->serial = cl->serial;
	a->id = id;
	snprintf(a->line, sizeof a->line, "dropped %s/%s", r->sup, r->key);
	/* its checkpoints' deletion in the job of its row's: the answer
	 * comes once both committed, a failure leaves both */
	tasks_forget_checkpoints(d, r, &ckpts);
	if (d->store == NULL) {
		serve_text(cl, id, a->line);
		free(a);
	} else if (taskstore_forget(d, r, &ckpts, tasks_drop_acked, a) < 0) {
		free(a); /* room was checked: the writer is stopping */
		serve_refuse(cl, id, TASKS_STORE_BEHIND);
		return;
	}
	tasks_wake_now(d, r); /* a wait on its end's write: r goes */
	ledger_drop(&d->tasks->ledger, r);
}

void
tasks_serve(struct client *cl, struct daemon *d, const struct request *q)
{
	struct ledger_rec *r;
	const char *why;

	if (q->cmd == REQ_SPAWN) {
		tasks_serve_spawn(cl, d, q);
		return;
	}
	if (q->cmd == REQ_DEAD || q->cmd == REQ_TASKS) {
		tasks_list(cl, d, q);
		return;
	}
	if ((r = tasks_lookup(d, q->name, &why)) == NULL) {
		serve_refusef(cl, q->id, "%s: %s", q->name,
		              why ? why : "no such task");
		return;
	}
	if (q->cmd == REQ_WAIT) {
		tasks_serve_wait(cl, d, r, q->id,
		                 q->opts != NULL && q->opts->via.boolean);
	} else if (q->cmd == REQ_REPLAY) {
		tasks_serve_replay(cl, d, r, q->id);
	} else if (q->cmd == REQ_DROP) {
		tasks_serve_drop(cl, d, r, q->id);
	}
}
