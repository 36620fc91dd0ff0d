/*
 * taskstore.c - the task ledger in the state store (DESIGN §11, §12): the
 * `tasks` table, one row per record, written through (every change of a
 * record queues its row; the store's writer group-commits them off the
 * loop), read back at start (taskstore_read.c) so the ledger, key_ttl and
 * dead letters survive agentsupd, and the tasks that were pending or
 * running are started again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "daemon.h"
#include "ledger.h"
#include "log.h"
#include "request.h"
#include "tasks_int.h"
#include "store.h"
#include "taskstore.h"
#include "util.h"

const char taskstore_schema[] =
        "CREATE TABLE IF NOT EXISTS tasks ("
        " sup TEXT NOT NULL, key TEXT NOT NULL, args BLOB, env BLOB,"
        " attempts INTEGER NOT NULL, state INTEGER NOT NULL, reasons TEXT,"
        " result BLOB, accepted_ms INTEGER NOT NULL,"
        " ended_ms INTEGER NOT NULL, replays INTEGER NOT NULL,"
        " checkpoint_seq INTEGER NOT NULL DEFAULT 0, tail TEXT,"
        " PRIMARY KEY (sup, key)) WITHOUT ROWID;";

/* The reason a task stopped by an operator is stored with until its end
 * is (what a restart of agentsupd in between leaves it with). */
#define TASKSTORE_CANCELLING                                                   \
	"cancelled (agentsupd stopped before its process was down)"

/* One row to write (or delete), copied: the record may change meanwhile. */
struct taskstore_job {
	struct daemon *d;
	struct ledger_rec *rec; /* pinned until done; NULL for a drop */
	taskstore_ack_fn *ack;  /* then, on the loop, or NULL */
	void *ack_arg;
	bool drop, noop;
	unsigned seq; /* a write's rec->wseq when it was made */
	char *sup, *key;
	char *args, *env; /* NUL-separated strings */
	size_t args_len, env_len;
	unsigned attempts, replays;
	int state;
	char *reasons; /* '\n'-separated, oldest first */
	uint8_t *result;
	size_t result_len;
	bool has_result;
	int64_t accepted_ms, ended_ms;
	uint64_t checkpoint_seq;
	char *tail; /* NULL: none */
};

/* "a\0b\0" from a NULL-terminated vector (NULL, 0 when empty). */
static char *
taskstore_join(char *const *v, char sep, size_t *len)
{
	size_t n = 0, at = 0;
	char *out;

	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		n += strlen(v[i]) + 1;
	*len = n;
	if (n == 0)
		return NULL;
	out = xmalloc(n);
	for (size_t i = 0; v[i] != NULL; i++) {
		size_t l = strlen(v[i]);
		memcpy(out + at, v[i], l);
		out[at + l] = sep;
		at += l + 1;
	}
	return out;
}

static void
taskstore_job_free(struct taskstore_job *j)
{
	free(j->sup);
	free(j->key);
	free(j->args);
	free(j->env);
	free(j->reasons);
	free(j->result);
	free(j->tail);
	free(j);
}

static int
taskstore_run(sqlite3 *db, void *arg, char *err, size_t errlen)
{
	static const char up[] = "INSERT OR REPLACE INTO tasks (" TASKSTORE_COLS
	                         ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)";
	static const char del[] = "DELETE FROM tasks WHERE sup = ? AND key = ?";
	struct taskstore_job *j = arg;
	sqlite3_stmt *st;
	int rc;

	if (j->noop)
		return 0; /* a barrier: done once what came before committed */
	if ((st = store_stmt(db, j->drop ? del : up, err, errlen)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, j->sup, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, j->key, -1, SQLITE_STATIC);
	if (!j->drop) {
		sqlite3_bind_blob(st, 3, j->args, (int)j->args_len,
		                  SQLITE_STATIC);
		sqlite3_bind_blob(st, 4, j->env, (int)j->env_len,
		                  SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, j->attempts);
		sqlite3_bind_int(st, 6, j->state);
		sqlite3_bind_text(st, 7, j->reasons, -1, SQLITE_STATIC);
		if (j->has_result)
			sqlite3_bind_blob(st, 8,
			                  j->result ? (const void *)j->result
			                            : (const void *)"",
			                  (int)j->result_len, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 8);
		sqlite3_bind_int64(st, 9, j->accepted_ms);
		sqlite3_bind_int64(st, 10, j->ended_ms);
		sqlite3_bind_int64(st, 11, j->replays);
		sqlite3_bind_int64(st, 12, (sqlite3_int64)j->checkpoint_seq);
		sqlite3_bind_text(st, 13, j->tail, -1, SQLITE_STATIC);
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
	sqlite3_reset(st); /* its bindings point into the job */
	return rc == SQLITE_DONE ? 0 : -1;
}

/* A row deleted: a copy read back into memory before the delete
 * committed goes too (a record spawned again since is live or pinned). */
static void
taskstore_unghost(struct daemon *d, const char *sup, const char *key)
{
	struct ledger_rec *r = ledger_get(&d->tasks->ledger, sup, key);

	if (r != NULL && ledger_ended(r) && r->pins == 0 && !r->unsaved)
		ledger_drop(&d->tasks->ledger, r); /* no wait is on it then */
}

/* --- the retry of failed writes ---------------------------------------- */

/* A write failed: the records whose write failed are written again in a
 * while, so a store that fails for a time loses nothing it was given once
 * it works again, whether or not anyone asks for those keys. */
static void
taskstore_retry_arm(struct daemon *d)
{
	struct tasks *t = d->tasks;

	if (t != NULL && !ev_is_active(&t->retry_w)) {
		ev_timer_set(&t->retry_w, TASKSTORE_RETRY_S, 0.);
		ev_timer_start(d->loop, &t->retry_w);
	}
}

static void taskstore_retry_rest(struct daemon *, struct ledger_rec *, void *,
                                 int, const char *);

/* The unsaved records written again: only the first (with probe), whose
 * success brings the rest, so a store still failing costs one failed
 * write (and one event) a round, not one for each record. */
static void
taskstore_retry_save(struct daemon *d, bool probe)
{
	struct ledger_iter it = {0};
	struct ledger_rec *r;
	struct node *n;

	while ((r = ledger_next(&d->tasks->ledger, &it)) != NULL) {
		/* one of its writes in flight may be older than the one
		 * that failed: this one lands after it */
		if (!r->unsaved)
			continue;
		n = tasks_live_node(d, r, tasks_sup_find(d, r->sup));
		if (taskstore_save_ack(
		            d, r, n != NULL ? (unsigned)n->starts : 0,
		            probe ? taskstore_retry_rest : NULL, NULL) < 0 ||
		    probe)
			break; /* the queue is full (said): the next round */
	}
}

/* The probe's write is done: if it was stored, the store works again. */
static void
taskstore_retry_rest(struct daemon *d, struct ledger_rec *r, void *arg, int rc,
                     const char *why)
{
	(void)r;
	(void)arg;
	(void)why;
	if (rc == 0)
		taskstore_retry_save(d, false);
}

void
taskstore_save_unsaved(struct daemon *d)
{
	if (d->tasks != NULL)
		taskstore_retry_save(d, false);
}

static void
taskstore_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	taskstore_retry_save(w->data, true);
}

void
taskstore_retry_init(struct tasks *t, struct daemon *d)
{
	ev_init(&t->retry_w, taskstore_retry_cb);
	t->retry_w.data = d;
}

/* A store error's event path: its supervisor's, as every event has (the
 * record knows only its name, unique in the tree); the name if it went. */
static const char *
taskstore_path(struct daemon *d, const char *sup)
{
	struct node *n = tree_find(d->tree, sup);

	return n != NULL ? n->path : sup;
}

/* On the loop, once the batch committed (or failed): the ack, then the
 * record unpinned (its row is on disk: it may leave memory). */
static void
taskstore_done(void *arg, int rc, const char *why)
{
	struct taskstore_job *j = arg;

	if (rc != 0)
		events_emit(&j->d->events, EV_STORE_ERROR,
		            taskstore_path(j->d, j->sup), 0, "store", 0,
		            "task %s/%s: %s", j->sup, j->key, why);
	if (j->drop && rc == 0)
		taskstore_unghost(j->d, j->sup, j->key);
	/* an older write's success says nothing of a newer one refused */
	if (j->rec != NULL && !j->drop && !j->noop &&
	    (rc != 0 || j->seq == j->rec->wseq))
		j->rec->unsaved = rc != 0;
	if (rc != 0)
		taskstore_retry_arm(j->d);
	/* a barrier answers for the writes of its record before it: one
	 * failed (a spawn refused, its record dropped or put back) */
	if (rc == 0 && j->noop && j->rec != NULL && j->rec->unsaved) {
		rc = -1;
		why = "an earlier write of it was not stored";
	}
	if (j->ack != NULL)
		j->ack(j->d, j->rec, j->ack_arg, rc, why);
	if (j->rec != NULL && !j->drop && j->rec->pins == 1)
		tasks_rec_stored(j->d, j->rec); /* its last write in flight */
	if (j->rec != NULL)
		ledger_unpin(&j->d->tasks->ledger, j->rec);
	taskstore_job_free(j);
}

/* j queued, alone or joined to with (NULL: alone) in one savepoint. -1
 * when the store's queue is full (said, the job freed, no ack; with told
 * the same). */
static int
taskstore_submit(struct daemon *d, struct taskstore_job *j,
                 const struct store_part *with)
{
	const struct store_part me = {taskstore_run, taskstore_done, j};

	j->d = d;
	if ((with == NULL
	             ? store_submit_ledger(d->store, me.run, me.done, j)
	             : store_submit_ledger_joint(d->store, &me, with)) == 0) {
		if (j->rec != NULL)
			ledger_pin(j->rec);
		return 0;
	}
	if (with != NULL)
		with->done(with->arg, -1, "the store's queue is full");
	events_emit(&d->events, EV_STORE_ERROR, taskstore_path(d, j->sup), 0,
	            "store", 0, "task %s/%s: the store's queue is full", j->sup,
	            j->key);
	if (j->rec != NULL && !j->drop && !j->noop)
		j->rec->unsaved = true;
	taskstore_retry_arm(d);
	taskstore_job_free(j);
	return -1;
}

void
taskstore_save(struct daemon *d, struct ledger_rec *r, unsigned live_attempts)
{
	taskstore_save_ack(d, r, live_attempts, NULL, NULL);
}

int
taskstore_barrier(struct daemon *d, struct ledger_rec *r, taskstore_ack_fn *ack,
                  void *arg)
{
	struct taskstore_job *j;

	if (d->store == NULL)
		return -1;
	j = xcalloc(1, sizeof *j);
	j->noop = true;
	j->rec = r;
	j->ack = ack;
	j->ack_arg = arg;
	j->sup = xstrdup(r != NULL ? r->sup : "-");
	j->key = xstrdup(r != NULL ? r->key : "-");
	return taskstore_submit(d, j, NULL);
}

/* The row's state, end and reasons: a task an operator is stopping is
 * stored as it will end, so that a restart meanwhile does not resume it. */
static void
taskstore_job_state(struct taskstore_job *j, const struct ledger_rec *r)
{
	char *reasons[LEDGER_REASONS + 1] = {0};
	bool cancelling = r->cancelling && !ledger_ended(r);
	/* the oldest reason makes room for the cancellation's */
	unsigned nr = 0, skip = cancelling && r->nreasons == LEDGER_REASONS;
	size_t len;

	j->state = cancelling ? LEDGER_CANCELLED : (int)r->state;
	j->ended_ms = cancelling ? r->cancel_ms : r->ended_ms;
	for (unsigned i = skip; i < r->nreasons; i++)
		reasons[nr++] = r->reasons[(r->r0 + i) % LEDGER_REASONS];
	if (cancelling)
		reasons[nr++] = (char *)TASKSTORE_CANCELLING;
	j->reasons = taskstore_join(reasons, '\n', &len);
	if (j->reasons != NULL)
		j->reasons[len - 1] = '\0'; /* the last separator ends it */
}

int
taskstore_save_ack(struct daemon *d, struct ledger_rec *r,
                   unsigned live_attempts, taskstore_ack_fn *ack, void *arg)
{
	struct taskstore_job *j;

	if (d->store == NULL)
		return -1;
	j = xcalloc(1, sizeof *j);
	j->rec = r;
	j->seq = ++r->wseq;
	j->ack = ack;
	j->ack_arg = arg;
	j->sup = xstrdup(r->sup);
	j->key = xstrdup(r->key);
	j->args = taskstore_join(r->args, '\0', &j->args_len);
	j->env = taskstore_join(r->env, '\0', &j->env_len);
	j->attempts = r->attempts + live_attempts;
	taskstore_job_state(j, r);
	j->has_result = r->result != NULL;
	if (r->result != NULL && r->result_len > 0) {
		j->result = xmalloc(r->result_len);
		memcpy(j->result, r->result, r->result_len);
		j->result_len = r->result_len;
	}
	j->accepted_ms = r->accepted_ms;
	j->replays = r->replays;
	j->checkpoint_seq = r->checkpoint_seq;
	j->tail = r->tail != NULL ? xstrdup(r->tail) : NULL;
	ledger_keys_add(&d->tasks->keys, ledger_key_hash(r->sup, r->key));
	return taskstore_submit(d, j, NULL);
}

int
taskstore_forget(struct daemon *d, struct ledger_rec *r,
                 const struct store_part *with, taskstore_ack_fn *ack,
                 void *arg)
{
	struct taskstore_job *j;

	if (d->store == NULL) {
		if (with != NULL && with->done != NULL)
			with->done(with->arg, -1, "no store");
		return -1;
	}
	j = xcalloc(1, sizeof *j);
	j->drop = true;
	j->rec = r;
	j->ack = ack;
	j->ack_arg = arg;
	j->sup = xstrdup(r->sup);
	j->key = xstrdup(r->key);
	if (taskstore_submit(d, j, with) < 0)
		return -1; /* its key still stored */
	ledger_keys_del(&d->tasks->keys, ledger_key_hash(r->sup, r->key));
	return 0;
}
