/*
 * taskstore_read.c - the task ledger read back from the state store: the
 * live records and every stored key at start (a store of an earlier
 * layout migrated first), and the ended records the loop asks for
 * (`wait`, `dead`, a spawn of a stored key); taskstore.c writes them.
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

/* A vector taskstore.c joined ("a\0b\0") split again: NULL-terminated,
 * NULL when empty. */
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

/* One row into the ledger: its record, NULL when the row is bad. */
static struct ledger_rec *
taskstore_row(struct ledger *l, sqlite3_stmt *st)
{
	const char *sup = (const char *)sqlite3_column_text(st, 0);
	const char *key = (const char *)sqlite3_column_text(st, 1);
	char **args =
	        taskstore_split(sqlite3_column_blob(st, 2),
	                        (size_t)sqlite3_column_bytes(st, 2), '\0');
	char **env = taskstore_split(sqlite3_column_blob(st, 3),
	                             (size_t)sqlite3_column_bytes(st, 3), '\0');
	const char *reasons = (const char *)sqlite3_column_text(st, 6);
	const char *tail = (const char *)sqlite3_column_text(st, 12);
	struct ledger_rec *r = NULL;
	int state = sqlite3_column_int(st, 5);

	if (sup == NULL || key == NULL || state < 0 || state > LEDGER_CANCELLED)
		goto out;
	r = ledger_accept(l, sup, key, NULL, NULL, sqlite3_column_int64(st, 8));
	r->args = args; /* the split's own: a listing of a large store's */
	r->env = env;   /* inputs copied them once more (17 % of its time) */
	args = env = NULL;
	r->attempts = (unsigned)sqlite3_column_int64(st, 4);
	r->replays = (unsigned)sqlite3_column_int64(st, 10);
	r->checkpoint_seq = (uint64_t)sqlite3_column_int64(st, 11);
	for (const char *p = reasons; p != NULL && *p;) {
		size_t n = strcspn(p, "\n");
		char one[LEDGER_REASON_MAX + 1];
		snprintf(one, sizeof one, "%.*s", (int)n, p);
		ledger_reason(r, one);
		p += n + (p[n] == '\n');
	}
	if (sqlite3_column_type(st, 7) != SQLITE_NULL)
		ledger_result(l, r, sqlite3_column_blob(st, 7),
		              (size_t)sqlite3_column_bytes(st, 7));
	if (tail != NULL)
		ledger_tail(r, tail, strlen(tail));
	/* ended before this start: the monotonic clock may have restarted
	 * (a reboot) since, so key_ttl counts by the wall clock; an end
	 * ahead of it (the clock set back) counts from now, not for ever */
	if (state >= LEDGER_DONE) {
		int64_t ended = sqlite3_column_int64(st, 9),
		        now = clock_wall_ms();
		ledger_end(l, r, (enum ledger_state)state,
		           ended < now ? ended : now, 0);
	}
out:
	for (size_t i = 0; args != NULL && args[i] != NULL; i++)
		free(args[i]);
	free(args);
	for (size_t i = 0; env != NULL && env[i] != NULL; i++)
		free(env[i]);
	free(env);
	return r;
}

/* A store made before the checkpoint_seq and tail columns: add them (on
 * the writer's connection, before the writer starts). */
static int
taskstore_migrate(struct daemon *d, char *why, size_t len)
{
	sqlite3_stmt *st = NULL;
	bool has = false;

	if (sqlite3_prepare_v2(store_reader(d->store),
	                       "SELECT 1 FROM pragma_table_info('tasks') "
	                       "WHERE name = 'tail'",
	                       -1, &st, NULL) != SQLITE_OK) {
		snprintf(why, len, "tasks: %s",
		         sqlite3_errmsg(store_reader(d->store)));
		return -1;
	}
	has = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	if (has)
		return 0;
	return store_schema(d->store,
	                    "ALTER TABLE tasks ADD COLUMN checkpoint_seq "
	                    "INTEGER NOT NULL DEFAULT 0;"
	                    "ALTER TABLE tasks ADD COLUMN tail TEXT;",
	                    why, len);
}

/* The hash of every stored (sup, key) (ended ones stay on disk), and
 * each supervisor's highest SUP/N number. */
static int
taskstore_keys(struct daemon *d, char *why, size_t len)
{
	sqlite3 *db = store_reader(d->store);
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT sup, key FROM tasks", -1, &st,
	                       NULL) != SQLITE_OK) {
		snprintf(why, len, "tasks: %s", sqlite3_errmsg(db));
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *sup = (const char *)sqlite3_column_text(st, 0);
		const char *key = (const char *)sqlite3_column_text(st, 1);
		if (sup == NULL || key == NULL)
			continue;
		ledger_keys_add(&d->tasks->keys, ledger_key_hash(sup, key));
		ledger_numbers_see(&d->tasks->numbers, sup, key);
	}
	if (rc != SQLITE_DONE)
		snprintf(why, len, "tasks: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* The indexes the newest of a listing are read by (dead -n 1 of a 94 MiB
 * store sorted every row on the loop: 1.4 s). Only a speed-up: a store
 * that cannot take them (a full disk) is used without. */
static void
taskstore_index(struct daemon *d)
{
	char why[256];

	d->tasks->indexed =
	        store_schema(d->store,
	                     "CREATE INDEX IF NOT EXISTS tasks_by_end ON tasks "
	                     "(state, ended_ms);"
	                     "CREATE INDEX IF NOT EXISTS tasks_by_accepted ON "
	                     "tasks (accepted_ms, state);",
	                     why, sizeof why) == 0;
	if (!d->tasks->indexed)
		log_warnx(
		        "state store: tasks: the indexes of their listings "
		        "cannot be made (%s); dead -n and tasks -n read every "
		        "row",
		        why);
}

int
taskstore_load(struct daemon *d, struct ledger *l, char *why, size_t len)
{
	sqlite3 *db = store_reader(d->store);
	sqlite3_stmt *st = NULL;
	int rc;

	if (taskstore_migrate(d, why, len) < 0 ||
	    taskstore_keys(d, why, len) < 0)
		return -1;
	taskstore_index(d);
	/* the live records only: the ended ones are read when asked for */
	if (sqlite3_prepare_v2(db,
	                       "SELECT " TASKSTORE_COLS " FROM tasks WHERE "
	                       "state < 2",
	                       -1, &st, NULL) != SQLITE_OK) {
		snprintf(why, len, "tasks: %s", sqlite3_errmsg(db));
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		taskstore_row(l, st);
	if (rc != SQLITE_DONE)
		snprintf(why, len, "tasks: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* The loop's read: the statement of sql on the store's reader, NULL (said
 * as a store_error) when it cannot be prepared. */
static sqlite3_stmt *
taskstore_read(struct daemon *d, const char *sql)
{
	sqlite3 *db = store_reader(d->store);
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK)
		return st;
	events_emit(&d->events, EV_STORE_ERROR, "tasks", 0, "store", 0,
	            "tasks: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return NULL;
}

struct ledger_rec *
taskstore_fetch(struct daemon *d, struct ledger *l, const char *sup,
                const char *key)
{
	sqlite3_stmt *st;
	struct ledger_rec *r = NULL;

	if (d->store == NULL ||
	    (st = taskstore_read(d, "SELECT " TASKSTORE_COLS " FROM tasks "
	                            "WHERE sup = ?1 AND key = ?2")) == NULL)
		return NULL;
	sqlite3_bind_text(st, 1, sup, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		r = taskstore_row(l, st);
	sqlite3_finalize(st);
	return r;
}

size_t
taskstore_sups(struct daemon *d, const char *key, char sup[][REQUEST_NAME_MAX],
               size_t max)
{
	sqlite3_stmt *st;
	size_t n = 0;

	if (d->store == NULL ||
	    (st = taskstore_read(d, "SELECT DISTINCT sup FROM tasks WHERE "
	                            "key = ?1")) == NULL)
		return 0;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	while (n < max && sqlite3_step(st) == SQLITE_ROW)
		snprintf(sup[n++], REQUEST_NAME_MAX, "%s",
		         sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return n;
}

int
taskstore_has_sup(struct daemon *d, const char *sup)
{
	sqlite3_stmt *st;
	int rc;

	if (d->store == NULL ||
	    (st = taskstore_read(d, "SELECT 1 FROM tasks WHERE sup = ?1 "
	                            "LIMIT 1")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, sup, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* Each row of st to fn, a record that lives for the call, until fn says
 * it has enough. SQLITE_DONE, or the error that ended the read. */
static int
taskstore_rows(sqlite3_stmt *st, taskstore_each_fn *fn, void *arg, bool *enough)
{
	struct ledger scratch;
	int rc = SQLITE_DONE;

	ledger_init(&scratch, 1);
	while (!*enough && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct ledger_rec *r = taskstore_row(&scratch, st);

		if (r == NULL)
			continue;
		*enough = fn(arg, r);
		ledger_drop(&scratch, r);
	}
	ledger_free(&scratch);
	return *enough ? SQLITE_DONE : rc;
}

/* The newest first: the keys in an index's order, read from its entries
 * alone and filtered there (a pool or a state that few rows have costs
 * no row read), then each row by its key, no more than fn takes. Whole
 * rows in the index's order had each entry's row looked up before the
 * filter, and a lookup in a table WITHOUT ROWID copies the row whole
 * (its key): tasks SUP -n 1 of a 189 MiB store took 0.9 s. */
static int
taskstore_newest(struct daemon *d, const struct taskstore_filter *f,
                 const char *state, taskstore_each_fn *fn, void *arg)
{
	const char *col = f->by_end ? "ended_ms" : "accepted_ms";
	sqlite3_stmt *keys, *row;
	bool enough = false;
	char sql[320];
	int rc;

	snprintf(
	        sql, sizeof sql,
	        "SELECT sup, key FROM tasks%s WHERE (?1 IS NULL OR sup = ?1)%s "
	        "ORDER BY %s DESC, sup DESC, key DESC",
	        !d->tasks->indexed ? ""
	        : f->by_end        ? " INDEXED BY tasks_by_end"
	                           : " INDEXED BY tasks_by_accepted",
	        state, col);
	if ((keys = taskstore_read(d, sql)) == NULL)
		return -1;
	snprintf(sql, sizeof sql,
	         "SELECT %s FROM tasks WHERE sup = ?1 AND key = ?2",
	         f->brief ? TASKSTORE_COLS_BRIEF : TASKSTORE_COLS);
	if ((row = taskstore_read(d, sql)) == NULL) {
		sqlite3_finalize(keys);
		return -1;
	}
	if (f->sup != NULL)
		sqlite3_bind_text(keys, 1, f->sup, -1, SQLITE_STATIC);
	while (!enough && (rc = sqlite3_step(keys)) == SQLITE_ROW) {
		sqlite3_reset(row);
		sqlite3_bind_text(row, 1,
		                  (const char *)sqlite3_column_text(keys, 0),
		                  -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(row, 2,
		                  (const char *)sqlite3_column_text(keys, 1),
		                  -1, SQLITE_TRANSIENT);
		if ((rc = taskstore_rows(row, fn, arg, &enough)) != SQLITE_DONE)
			break;
	}
	sqlite3_finalize(row);
	sqlite3_finalize(keys);
	return enough || rc == SQLITE_DONE ? 0 : -1;
}

int
taskstore_each(struct daemon *d, const struct taskstore_filter *f,
               taskstore_each_fn *fn, void *arg)
{
	char sql[512], state[48] = "";
	sqlite3_stmt *st;
	bool enough = false;
	int rc;

	if (d->store == NULL)
		return -1;
	if (f->state >= 0 && f->desc)
		snprintf(state, sizeof state, " AND state = %d", f->state);
	else if (f->state >= 0) /* off the indexes, as the time below */
		snprintf(state, sizeof state,
		         " AND CAST(state AS INTEGER) = %d", f->state);
	if (f->desc)
		return taskstore_newest(d, f, state, fn, arg);
	/* All of them: scanned and sorted, off the indexes (NOT INDEXED
	 * does not keep a table WITHOUT ROWID off them), since a row found
	 * by an index's entry is copied whole at each step of the search:
	 * 3.4 s for a 94 MiB store's 200 rows, against 1.8 s. The time as
	 * taskstore_row reads it (a number), so that the merge with memory's
	 * records sees the order it expects in a store made by hand too. */
	snprintf(sql, sizeof sql,
	         "SELECT %s FROM tasks WHERE (?1 IS NULL OR sup = ?1)%s "
	         "ORDER BY CAST(%s AS INTEGER), sup, key",
	         f->brief ? TASKSTORE_COLS_BRIEF : TASKSTORE_COLS, state,
	         f->by_end ? "ended_ms" : "accepted_ms");
	if ((st = taskstore_read(d, sql)) == NULL)
		return -1;
	if (f->sup != NULL)
		sqlite3_bind_text(st, 1, f->sup, -1, SQLITE_STATIC);
	rc = taskstore_rows(st, fn, arg, &enough);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}
