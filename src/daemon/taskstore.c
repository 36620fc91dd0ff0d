/*
 * taskstore.c - the task ledger in the state store (DESIGN §11, §12): the
 * `tasks` table, one row per record, written through (every change of a
 * record queues its row; the store's writer group-commits them off the
 * loop), read back at start so the ledger, key_ttl and dead letters survive
 * agentsupd, and the tasks that were pending or running are started again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "daemon.h"
#include "ledger.h"
#include "log.h"
#include "store.h"
#include "taskstore.h"
#include "util.h"

const char taskstore_schema[] =
        "CREATE TABLE IF NOT EXISTS tasks ("
        " sup TEXT NOT NULL, key TEXT NOT NULL, args BLOB, env BLOB,"
        " attempts INTEGER NOT NULL, state INTEGER NOT NULL, reasons TEXT,"
        " result BLOB, accepted_ms INTEGER NOT NULL,"
        " ended_ms INTEGER NOT NULL, replays INTEGER NOT NULL,"
        " PRIMARY KEY (sup, key)) WITHOUT ROWID;";

/* One row to write (or delete), copied: the record may change meanwhile. */
struct taskstore_job {
	struct daemon *d;
	bool drop;
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

/* The inverse: a NULL-terminated vector (NULL when empty). */
static char **
taskstore_split(const char *b, size_t len, char sep)
{
	size_t n = 0, k = 0, start = 0;
	char **v;

	for (size_t i = 0; i < len; i++)
		n += b[i] == sep;
	if (n == 0)
		return NULL;
	v = xcalloc(n + 1, sizeof *v);
	for (size_t i = 0; i < len && k < n; i++)
		if (b[i] == sep) {
			v[k] = xmalloc(i - start + 1);
			memcpy(v[k], b + start, i - start);
			v[k++][i - start] = '\0';
			start = i + 1;
		}
	return v;
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
	free(j);
}

static int
taskstore_run(sqlite3 *db, void *arg, char *err, size_t errlen)
{
	static const char up[] =
	        "INSERT OR REPLACE INTO tasks VALUES (?,?,?,?,?,?,?,?,?,?,?)";
	static const char del[] = "DELETE FROM tasks WHERE sup = ? AND key = ?";
	struct taskstore_job *j = arg;
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, j->drop ? del : up, -1, &st, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		return -1;
	}
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
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void
taskstore_done(void *arg, int rc, const char *why)
{
	struct taskstore_job *j = arg;

	if (rc != 0)
		events_emit(&j->d->events, EV_STORE_ERROR, j->sup, 0, "store",
		            0, "task %s/%s: %s", j->sup, j->key, why);
	taskstore_job_free(j);
}

static void
taskstore_submit(struct daemon *d, struct taskstore_job *j)
{
	j->d = d;
	if (store_submit(d->store, taskstore_run, taskstore_done, j) < 0) {
		events_emit(&d->events, EV_STORE_ERROR, j->sup, 0, "store", 0,
		            "task %s/%s: the store's queue is full", j->sup,
		            j->key);
		taskstore_job_free(j);
	}
}

void
taskstore_save(struct daemon *d, const struct ledger_rec *r,
               unsigned live_attempts)
{
	struct taskstore_job *j;
	char *reasons[LEDGER_REASONS + 1] = {0};

	if (d->store == NULL)
		return;
	j = xcalloc(1, sizeof *j);
	j->sup = xstrdup(r->sup);
	j->key = xstrdup(r->key);
	j->args = taskstore_join(r->args, '\0', &j->args_len);
	j->env = taskstore_join(r->env, '\0', &j->env_len);
	j->attempts = r->attempts + live_attempts;
	j->state = (int)r->state;
	for (unsigned i = 0; i < r->nreasons; i++)
		reasons[i] = r->reasons[(r->r0 + i) % LEDGER_REASONS];
	size_t rl;
	j->reasons = taskstore_join(reasons, '\n', &rl);
	if (j->reasons != NULL)
		j->reasons[rl - 1] = '\0'; /* the last separator ends it */
	j->has_result = r->result != NULL;
	if (r->result != NULL && r->result_len > 0) {
		j->result = xmalloc(r->result_len);
		memcpy(j->result, r->result, r->result_len);
		j->result_len = r->result_len;
	}
	j->accepted_ms = r->accepted_ms;
	j->ended_ms = r->ended_ms;
	j->replays = r->replays;
	taskstore_submit(d, j);
}

void
taskstore_forget(struct daemon *d, const struct ledger_rec *r)
{
	struct taskstore_job *j;

	if (d->store == NULL)
		return;
	j = xcalloc(1, sizeof *j);
	j->drop = true;
	j->sup = xstrdup(r->sup);
	j->key = xstrdup(r->key);
	taskstore_submit(d, j);
}

/* One row into the ledger. */
static void
taskstore_row(struct ledger *l, sqlite3_stmt *st, int64_t wall, uint64_t mono)
{
	const char *sup = (const char *)sqlite3_column_text(st, 0);
	const char *key = (const char *)sqlite3_column_text(st, 1);
	char **args =
	        taskstore_split(sqlite3_column_blob(st, 2),
	                        (size_t)sqlite3_column_bytes(st, 2), '\0');
	char **env = taskstore_split(sqlite3_column_blob(st, 3),
	                             (size_t)sqlite3_column_bytes(st, 3), '\0');
	const char *reasons = (const char *)sqlite3_column_text(st, 6);
	struct ledger_rec *r;
	int state = sqlite3_column_int(st, 5);

	if (sup == NULL || key == NULL || state < 0 || state > LEDGER_CANCELLED)
		goto out;
	r = ledger_accept(l, sup, key, args, env, sqlite3_column_int64(st, 8));
	r->attempts = (unsigned)sqlite3_column_int64(st, 4);
	r->replays = (unsigned)sqlite3_column_int64(st, 10);
	for (const char *p = reasons; p != NULL && *p;) {
		size_t n = strcspn(p, "\n");
		char one[LEDGER_REASON_MAX + 1];
		snprintf(one, sizeof one, "%.*s", (int)n, p);
		ledger_reason(r, one);
		p += n + (p[n] == '\n');
	}
	if (sqlite3_column_type(st, 7) != SQLITE_NULL)
		ledger_result(r, sqlite3_column_blob(st, 7),
		              (size_t)sqlite3_column_bytes(st, 7));
	if (state >= LEDGER_DONE) {
		int64_t ended = sqlite3_column_int64(st, 9);
		uint64_t ago = wall > ended ? (uint64_t)(wall - ended) : 0;
		ledger_end(l, r, (enum ledger_state)state, ended,
		           mono > ago ? mono - ago : 1);
	}
out:
	for (size_t i = 0; args != NULL && args[i] != NULL; i++)
		free(args[i]);
	free(args);
	for (size_t i = 0; env != NULL && env[i] != NULL; i++)
		free(env[i]);
	free(env);
}

int
taskstore_load(struct daemon *d, struct ledger *l, char *why, size_t len)
{
	sqlite3 *db = store_reader(d->store);
	sqlite3_stmt *st = NULL;
	int64_t wall = clock_wall_ms();
	uint64_t mono = clock_now_ms();
	int rc;

	if (sqlite3_prepare_v2(db,
	                       "SELECT sup, key, args, env, attempts, state, "
	                       "reasons, result, accepted_ms, ended_ms, "
	                       "replays FROM tasks ORDER BY ended_ms",
	                       -1, &st, NULL) != SQLITE_OK) {
		snprintf(why, len, "tasks: %s", sqlite3_errmsg(db));
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		taskstore_row(l, st, wall, mono);
	if (rc != SQLITE_DONE)
		snprintf(why, len, "tasks: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}
