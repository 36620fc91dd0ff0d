/*
 * ckpt_store.c - checkpoints in the state store: the writer thread's jobs
 * (a write, a discard, a deletion) and the loop's reads (at start, and back
 * for a path not in memory). ckpt.c keeps them in memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "ckpt.h"
#include "ckpt_int.h"
#include "store.h"
#include "util.h"

const char ckpt_schema[] =
        "CREATE TABLE IF NOT EXISTS checkpoints ("
        " path TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,"
        " PRIMARY KEY (path, seq)) WITHOUT ROWID;";

/* --- the writer's jobs ---------------------------------------------------- */

/* The writer's statements: ?1 path, ?2 seq, ?3 the oldest seq kept (the
 * loop knows which `keep` are newest: a range, no subquery), ?4 data. */
static const char ckpt_sql_discard[] =
        "DELETE FROM checkpoints WHERE path = ?1 AND seq = ?2";
static const char ckpt_sql_newer[] =
        "DELETE FROM checkpoints WHERE path = ?1 AND seq >= ?2";
static const char ckpt_sql_insert[] =
        "INSERT INTO checkpoints (path, seq, data) VALUES (?1, ?2, ?4)";
static const char ckpt_sql_suffix[] =
        "DELETE FROM checkpoints WHERE (path = substr(?1, 2)"
        " OR substr(path, -length(?1)) = ?1) AND seq >= 0 * ?2";
static const char ckpt_sql_older[] =
        "DELETE FROM checkpoints WHERE path = ?1 AND seq < ?3";
/* ?1 the new path, ?2 the old (its rows are the newest of the task's) */
static const char ckpt_sql_move[] =
        "UPDATE OR REPLACE checkpoints SET path = ?1 WHERE path = ?2";

static int
ckpt_sql(sqlite3 *db, const char *sql, const struct ckpt_job *j, char *err,
         size_t len)
{
	sqlite3_stmt *st = store_stmt(db, sql, err, len);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, j->path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)j->seq);
	if (sqlite3_bind_parameter_count(st) >= 3)
		sqlite3_bind_int64(st, 3, (sqlite3_int64)j->oldest);
	if (sqlite3_bind_parameter_count(st) >= 4)
		sqlite3_bind_blob(st, 4, j->data, (int)j->len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		snprintf(err, len, "%s", sqlite3_errmsg(db));
	sqlite3_reset(st); /* its bindings point into the job's data */
	return rc == SQLITE_DONE ? 0 : -1;
}

/* A task's rows under its old path made its new path's. */
static int
ckpt_sql_moved(sqlite3 *db, const struct ckpt_job *j, char *err, size_t len)
{
	sqlite3_stmt *st = store_stmt(db, ckpt_sql_move, err, len);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, j->path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, j->own, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		snprintf(err, len, "%s", sqlite3_errmsg(db));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* In the writer thread: the checkpoint, and the kept ones of its worker
 * (the path is never changed while a job is in flight). */
static int
ckpt_job_run(sqlite3 *db, void *arg, char *err, size_t len)
{
	struct ckpt_job *j = arg;

	if (j->move)
		return ckpt_sql_moved(db, j, err, len);
	if (j->forget)
		return ckpt_sql(db, ckpt_sql_suffix, j, err, len);
	if (j->discard)
		return ckpt_sql(db, ckpt_sql_discard, j, err, len);
	if (ckpt_sql(db, ckpt_sql_newer, j, err, len) < 0 ||
	    ckpt_sql(db, ckpt_sql_insert, j, err, len) < 0)
		return -1;
	return ckpt_sql(db, ckpt_sql_older, j, err, len);
}

/* On the loop: committed, so the run that sent it (if still there) hears
 * checkpoint_ok; failed, so it hears nothing and the operator is told. */
static void
ckpt_job_done(void *arg, int rc, const char *why)
{
	struct ckpt_job *j = arg;
	struct ckpt_worker *w = j->w;
	bool write = w != NULL && !j->discard && !j->forget && !j->move;

	if (rc < 0)
		ckpt_store_error(j->set, j->path, why);
	else if (write && w->chan != NULL && w->run == j->run)
		channel_send_checkpoint_ok(w->chan, j->seq);
	if (write)
		ckpt_written(w, j, rc == 0);
	if (w != NULL && --w->jobs == 0 && w->released)
		ckpt_remove(j->set, w);
	ckpt_data_unref(j->data);
	free(j->own);
	free(j);
}

/* A write (data: kept bytes, referenced, not copied) or a discard (NULL). */
int
ckpt_submit(struct ckpt_set *cs, struct ckpt_worker *w, uint64_t seq,
            uint8_t *data, size_t len, bool discard)
{
	struct ckpt_job *j = xmalloc(sizeof *j);

	*j = (struct ckpt_job){.set = cs,
	                       .w = w,
	                       .path = w->path,
	                       .run = w->run,
	                       .seq = seq,
	                       .era = w->era,
	                       .oldest = w->nkept ? w->kept[w->nkept - 1].seq
	                                          : seq,
	                       .discard = discard,
	                       .len = len,
	                       .data = data ? ckpt_data_ref(data) : NULL};
	if (store_submit(cs->store, ckpt_job_run, ckpt_job_done, j) == 0) {
		w->jobs++;
		return 0;
	}
	ckpt_data_unref(j->data);
	free(j);
	ckpt_store_error(cs, w->path, "the store's queue is full");
	return -1;
}

/* The deletion from the store of the checkpoints of every path ending in
 * suffix, as a part of its caller's job. The entry w (NULL: none), empty
 * and released, is kept until the deletion is done, so a run of its path
 * that says hello meanwhile starts afresh instead of reading the rows
 * still there. */
void
ckpt_delete_part(struct ckpt_set *cs, struct ckpt_worker *w, const char *suffix,
                 struct store_part *part)
{
	struct ckpt_job *j = xcalloc(1, sizeof *j);
	char *own = xstrdup(suffix);

	*j = (struct ckpt_job){
	        .set = cs, .w = w, .path = own, .own = own, .forget = true};
	if (w != NULL) {
		w->jobs++;
		w->released = true; /* the deletion's completion frees it */
	}
	*part = (struct store_part){ckpt_job_run, ckpt_job_done, j};
}

/* The rows of w's old path from (a task whose pool moved) moved to w's
 * path: queued before any write of the run that took them, so the store
 * keeps them, trims and discards them by w's path. Failed, they stay
 * where they were (said), and w's kept ones have their data in memory
 * only for the newest. */
static void
ckpt_move(struct ckpt_set *cs, struct ckpt_worker *w, const char *from)
{
	struct ckpt_job *j = xcalloc(1, sizeof *j);

	*j = (struct ckpt_job){.set = cs,
	                       .w = w,
	                       .path = w->path,
	                       .own = xstrdup(from),
	                       .move = true};
	if (store_submit(cs->store, ckpt_job_run, ckpt_job_done, j) < 0) {
		ckpt_store_error(cs, w->path, "the store's queue is full");
		free(j->own);
		free(j);
		return;
	}
	w->jobs++;
}

/* With a store: the data of kept[0], on disk only, read back. */
int
ckpt_read_back(struct ckpt_set *cs, struct ckpt_worker *w)
{
	sqlite3 *db = store_reader(cs->store);
	sqlite3_stmt *st;
	int rc = -1;

	if (sqlite3_prepare_v2(db,
	                       "SELECT data FROM checkpoints WHERE path = ?1 "
	                       "AND seq = ?2",
	                       -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, w->path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)w->kept[0].seq);
	if (sqlite3_step(st) == SQLITE_ROW) {
		size_t len = (size_t)sqlite3_column_bytes(st, 0);

		w->kept[0].data =
		        ckpt_data_new(sqlite3_column_blob(st, 0), len);
		w->kept[0].len = len;
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

/* --- reads --------------------------------------------------------------- */

/* One row into w, newest first: its seq in column col, its data (read
 * for the newest only) in col + 1. */
static void
ckpt_take_row(struct ckpt_worker *w, sqlite3_stmt *st, int col)
{
	struct ckpt_kept k = {.seq = (uint64_t)sqlite3_column_int64(st, col)};

	if (w->nkept == 0) { /* the newest, committed */
		k.len = (size_t)sqlite3_column_bytes(st, col + 1);
		k.data = ckpt_data_new(sqlite3_column_blob(st, col + 1), k.len);
		ckpt_last_set(w, &k);
	}
	if (w->nkept == w->capkept) {
		w->capkept = w->capkept ? 2 * w->capkept : 2;
		w->kept = xrealloc(w->kept, w->capkept * sizeof *w->kept);
	}
	w->kept[w->nkept++] = k;
}

/* One row of the start's read (path, seq, data). */
static void
ckpt_load_row(struct ckpt_set *cs, sqlite3_stmt *st)
{
	const char *path = (const char *)sqlite3_column_text(st, 0);

	ckpt_take_row(ckpt_get(cs, path), st, 1);
}

int
ckpt_load(struct ckpt_set *cs, ckpt_want_fn *want, void *arg, char *why,
          size_t len)
{
	sqlite3 *db = store_reader(cs->store);
	sqlite3_stmt *st;
	int rc;

	/* the data column only for each path's newest: older stay on disk */
	if (sqlite3_prepare_v2(
	            db,
	            "SELECT path, seq, CASE WHEN seq = (SELECT max(seq) FROM "
	            "checkpoints c WHERE c.path = checkpoints.path) THEN data "
	            "END FROM checkpoints ORDER BY path, seq DESC",
	            -1, &st, NULL) != SQLITE_OK) {
		snprintf(why, len, "%s", sqlite3_errmsg(db));
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (sqlite3_column_text(st, 0) != NULL && /* a hand-made row */
		    (want == NULL ||
		     want(arg, (const char *)sqlite3_column_text(st, 0))))
			ckpt_load_row(cs, st);
	if (rc != SQLITE_DONE)
		snprintf(why, len, "%s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* The rows of path into w (empty), as ckpt_load reads them: how many. A
 * failed read is a store_error, and w keeps none: -1. */
static int
ckpt_read_rows(struct ckpt_set *cs, struct ckpt_worker *w, const char *path)
{
	sqlite3 *db = store_reader(cs->store);
	sqlite3_stmt *st;
	int rc, n = 0;

	if (sqlite3_prepare_v2(db,
	                       "SELECT seq, data FROM checkpoints "
	                       "WHERE path = ?1 ORDER BY seq DESC",
	                       -1, &st, NULL) != SQLITE_OK) {
		ckpt_store_error(cs, w->path, sqlite3_errmsg(db));
		return -1;
	}
	sqlite3_bind_text(st, 1, path, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ckpt_take_row(w, st, 0);
		n++;
	}
	if (rc != SQLITE_DONE) {
		ckpt_store_error(cs, w->path, sqlite3_errmsg(db));
		ckpt_truncate(w, 0);
		ckpt_last_set(w, &(struct ckpt_kept){0});
		n = -1;
	}
	sqlite3_finalize(st);
	return n;
}

/* A path not in memory (a task that ended, run again): what the store
 * holds of it, as ckpt_load would have read it. Every write of it is
 * committed (its entry went only once they were). A failed read is a
 * store_error, and the run starts without one. */
int
ckpt_read_path(struct ckpt_set *cs, struct ckpt_worker *w)
{
	return ckpt_read_rows(cs, w, w->path);
}

/* A run whose own path has none: a task whose pool moved takes those it
 * had at the latest place that has some. */
void
ckpt_adopt(struct ckpt_set *cs, struct ckpt_worker *w,
           const char *const *earlier)
{
	for (; *earlier != NULL; earlier++) {
		const struct ckpt_worker *o = ckpt_find(cs, *earlier);
		int n;

		if (strcmp(*earlier, w->path) == 0 ||
		    (o != NULL && o->chan != NULL))
			continue; /* a run there has them */
		if ((n = ckpt_read_rows(cs, w, *earlier)) > 0)
			ckpt_move(cs, w, *earlier);
		if (n != 0)
			return;
	}
}
