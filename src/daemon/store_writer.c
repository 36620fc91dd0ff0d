/*
 * store_writer.c - the state store's writer thread: it takes the jobs the
 * loop queued (store.c), lets more join a group commit while they keep
 * coming, runs each in a savepoint of one transaction, commits, and hands
 * the batch back to the loop.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store_int.h"
#include "util.h"

#define STORE_STMTS_MAX 32 /* prepared statements of the jobs' SQL */

int
store_exec(sqlite3 *db, const char *sql, char *why, size_t len)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK)
		return 0;
	snprintf(why, len, "%s", err != NULL ? err : sqlite3_errmsg(db));
	sqlite3_free(err);
	return -1;
}

/* The writer's prepared statements: a job's SQL is parsed once, not at
 * every checkpoint. Only the writer thread touches them (and store_close,
 * after it has stopped). */
static struct {
	sqlite3 *db;
	const char *sql;
	sqlite3_stmt *st;
} store_stmts[STORE_STMTS_MAX];

sqlite3_stmt *
store_stmt(sqlite3 *db, const char *sql, char *err, size_t len)
{
	size_t i = 0;

	while (i < STORE_STMTS_MAX && store_stmts[i].st != NULL &&
	       !(store_stmts[i].db == db && store_stmts[i].sql == sql))
		i++;
	if (i < STORE_STMTS_MAX && store_stmts[i].st != NULL) {
		sqlite3_reset(store_stmts[i].st);
		sqlite3_clear_bindings(store_stmts[i].st);
		return store_stmts[i].st;
	}
	if (i == STORE_STMTS_MAX) {
		snprintf(err, len, "more than %d statements", STORE_STMTS_MAX);
		return NULL;
	}
	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT,
	                       &store_stmts[i].st, NULL) != SQLITE_OK) {
		snprintf(err, len, "%s", sqlite3_errmsg(db));
		store_stmts[i].st = NULL;
		return NULL;
	}
	store_stmts[i].db = db;
	store_stmts[i].sql = sql;
	return store_stmts[i].st;
}

/* Finalize db's statements (the writer has stopped); keep the others. */
void
store_stmts_free(sqlite3 *db)
{
	size_t k = 0;

	for (size_t i = 0; i < STORE_STMTS_MAX && store_stmts[i].st; i++) {
		if (store_stmts[i].db == db)
			sqlite3_finalize(store_stmts[i].st);
		else
			store_stmts[k++] = store_stmts[i];
	}
	for (size_t i = k; i < STORE_STMTS_MAX; i++)
		store_stmts[i].st = NULL;
}

static const char store_sql_savepoint[] = "SAVEPOINT job";
static const char store_sql_release[] = "RELEASE job";

/* A statement without a result, prepared once (two run per job). */
static int
store_step(sqlite3 *db, const char *sql, char *why, size_t len)
{
	sqlite3_stmt *st = store_stmt(db, sql, why, len);

	if (st == NULL)
		return -1;
	if (sqlite3_step(st) != SQLITE_DONE) {
		snprintf(why, len, "%s", sqlite3_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	sqlite3_reset(st);
	return 0;
}

/* One job in its own savepoint: its failure undoes only its writes. */
static void
store_run_one(sqlite3 *db, struct store_job *j)
{
	char dummy[8];

	if (store_step(db, store_sql_savepoint, j->why, sizeof j->why) < 0) {
		j->rc = -1;
		return;
	}
	j->rc = j->run(db, j->arg, j->why, sizeof j->why);
	if (j->rc < 0)
		store_exec(db, "ROLLBACK TO job", dummy, sizeof dummy);
	store_step(db, store_sql_release, dummy, sizeof dummy);
}

/* SQLite's own open WAL (reading through it drops no lock of SQLite's),
 * NULL when there is none. */
static sqlite3_file *
store_wal_file(sqlite3 *db)
{
	sqlite3_file *f = NULL;

	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER,
	                         &f) != SQLITE_OK ||
	    f == NULL || f->pMethods == NULL)
		return NULL;
	return f;
}

/* The WAL's size as SQLite's descriptor sees it; -1 if it cannot say. */
static sqlite3_int64
store_wal_size(sqlite3 *db)
{
	sqlite3_file *f = store_wal_file(db);
	sqlite3_int64 size;

	if (f == NULL || f->pMethods->xFileSize(f, &size) != SQLITE_OK)
		return -1;
	return size;
}

/* msg into why, cut to its bound. */
static void
store_said(char *why, size_t len, const char *msg)
{
	size_t n = strnlen(msg, len - 1);

	memcpy(why, msg, n);
	why[n] = '\0';
}

/* Whether the WAL still begins with its header (a WAL cut short or
 * emptied in place reads zeros there until SQLite next starts it over). */
static bool
store_wal_head(sqlite3 *db)
{
	sqlite3_file *f = store_wal_file(db);
	unsigned char h[4];

	if (f == NULL)
		return true; /* no WAL open: nothing to check */
	if (f->pMethods->xRead(f, h, (int)sizeof h, 0) != SQLITE_OK)
		return false;
	return h[0] == 0x37 && h[1] == 0x7f && h[2] == 0x06 &&
	       (h[3] == 0x82 || h[3] == 0x83);
}

/* The store is unusable until agentsupd starts again: every later batch
 * fails with why, and closing it checkpoints nothing (a WAL cut short
 * would copy its zeros over the database). */
static int
store_broken(struct store *s, char *why, size_t len, const char *fmt,
             const char *path)
{
	/* a long path's message is cut (its end: the bound is the job's) */
	if (snprintf(s->broken, sizeof s->broken, fmt, path) < 0)
		s->broken[0] = '?';
	store_said(why, len, s->broken);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1,
	                  (int *)NULL);
	return -1;
}

/* Whether the database file is still the one opened, and still begins
 * as a database: a removed (or replaced) file takes every commit into an
 * unlinked inode, and one emptied or overwritten in place takes them into
 * a file the next start refuses as damaged; either way nothing committed
 * now would be found again. The same of its WAL, where commits go first:
 * removed, they go to an unlinked file (what it holds is checkpointed
 * into the database first, store_rescue); cut short, its frames are gone
 * and the next checkpoint would copy zeros. A few system calls a group
 * commit. */
static int
store_still_there(struct store *s, char *why, size_t len)
{
	static const char magic[16] = "SQLite format 3";
	char head[16], wal[sizeof s->broken];
	struct stat st;
	sqlite3_file *f = NULL;
	sqlite3_int64 size;

	if (s->broken[0]) {
		store_said(why, len, s->broken);
		return -1;
	}
	if (stat(s->path, &st) < 0 || st.st_dev != s->dev ||
	    st.st_ino != s->ino)
		return store_broken(s, why, len,
		                    "%s was removed or replaced: nothing more "
		                    "is stored until agentsupd starts again",
		                    STORE_DB_NAME);
	/* through SQLite's own descriptor: closing one of ours on the file
	 * would drop SQLite's POSIX locks on it */
	if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_FILE_POINTER,
	                         &f) != SQLITE_OK ||
	    f == NULL || f->pMethods == NULL ||
	    f->pMethods->xRead(f, head, (int)sizeof head, 0) != SQLITE_OK ||
	    memcmp(head, magic, sizeof head) != 0)
		return store_broken(s, why, len,
		                    "%s was emptied or overwritten: nothing "
		                    "more is stored until agentsupd starts "
		                    "again",
		                    STORE_DB_NAME);
	snprintf(wal, sizeof wal, "%s-wal", s->path);
	if (stat(wal, &st) < 0 || st.st_dev != s->wal_dev ||
	    st.st_ino != s->wal_ino) {
		s->rescue = true;
		return store_broken(s, why, len,
		                    "%s was removed or replaced: what was "
		                    "stored is kept, nothing more is stored "
		                    "until agentsupd starts again",
		                    STORE_DB_NAME "-wal");
	}
	if (((size = store_wal_size(s->db)) >= 0 && size < s->wal_size) ||
	    (size > 0 && !store_wal_head(s->db)))
		return store_broken(
		        s, why, len,
		        "%s was cut short in place: what it held "
		        "since the last checkpoint is lost, nothing "
		        "more is stored until agentsupd starts again",
		        STORE_DB_NAME "-wal");
	return 0;
}

/* The WAL was removed: its commits live only in the unlinked file we
 * still hold, so they go into the database now, where the next start
 * finds them. */
static void
store_rescue(struct store *s)
{
	char dummy[8];

	if (!s->rescue)
		return;
	s->rescue = false;
	if (store_exec(s->db, "PRAGMA wal_checkpoint(FULL)", dummy,
	               sizeof dummy) < 0 &&
	    snprintf(s->broken, sizeof s->broken,
	             "the WAL was removed or replaced, and what it held could "
	             "not be written into " STORE_DB_NAME ": %s",
	             sqlite3_errmsg(s->db)) < 0)
		s->broken[0] = '?';
}

/* A full disk: the WAL (SQLite checkpoints it only at 1,000 pages) may be
 * what fills it, on a small state_dir; checkpointed and truncated, its
 * room is free again for the next batch. */
static void
store_reclaim(struct store *s)
{
	char dummy[8];

	if (s->broken[0] == '\0' &&
	    store_exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE)", dummy,
	               sizeof dummy) == 0)
		s->wal_size = 0;
}

/* After a commit: the WAL checkpointed into the database once it has
 * grown to its bound, if it is still whole (SQLite's automatic checkpoint
 * is off: it would copy a WAL cut short in place). */
static void
store_checkpoint(struct store *s)
{
	char why[8];

	s->wal_size = store_wal_size(s->db);
	if (s->wal_frames < s->wal_ckpt ||
	    store_still_there(s, why, sizeof why) < 0)
		return;
	/* a reader in the way: the next time */
	if (store_exec(s->db, "PRAGMA wal_checkpoint(PASSIVE)", why,
	               sizeof why) == 0)
		s->wal_frames = 0;
}

/* One group commit: every job of the batch, then COMMIT; a failed BEGIN
 * or COMMIT fails them all. So does an error on which SQLite rolled the
 * whole transaction back (a full disk, an I/O error): the jobs after it
 * are not run, since each savepoint would then commit on its own (a spawn
 * answered "could not be stored" was on disk and ran at the next start). */
static void
store_write_batch(struct store *s, struct store_job *b, size_t n)
{
	char why[160], dummy[8];
	sqlite3 *db = s->db;
	bool full = false;

	if (store_exec(db, "BEGIN IMMEDIATE", why, sizeof why) == 0) {
		size_t i;
		for (i = 0; i < n && !sqlite3_get_autocommit(db); i++)
			store_run_one(db, &b[i]);
		if (sqlite3_get_autocommit(db)) { /* rolled back by SQLite */
			snprintf(why, sizeof why, "%s",
			         i > 0 ? b[i - 1].why : "rolled back");
			for (; i < n; i++)
				b[i].rc = 0; /* not run: failed below */
		} else if (store_still_there(s, why, sizeof why) == 0 &&
		           store_exec(db, "COMMIT", why, sizeof why) == 0) {
			store_checkpoint(s);
			return;
		} else {
			/* a full disk says so at the commit, the WAL's write */
			full = sqlite3_errcode(db) == SQLITE_FULL;
			store_exec(db, "ROLLBACK", dummy, sizeof dummy);
		}
	}
	store_rescue(s);
	if (full)
		store_reclaim(s);
	for (size_t i = 0; i < n; i++)
		if (b[i].rc == 0) {
			b[i].rc = -1;
			snprintf(b[i].why, sizeof b[i].why, "%s", why);
		}
}

static void
store_hand_back(struct store *s, struct store_job *b, size_t n)
{
	pthread_mutex_lock(&s->mu);
	if (s->ndone + n > s->capdone) {
		s->capdone = s->ndone + n + 64;
		s->done = xrealloc(s->done, s->capdone * sizeof *s->done);
	}
	memcpy(s->done + s->ndone, b, n * sizeof *b);
	s->ndone += n;
	s->busy = 0;
	s->waiting_since = s->committed; /* what still waits, from then */
	pthread_mutex_unlock(&s->mu);
	ev_async_send(s->loop, &s->wakeup);
}

/* The monotonic clock (the condvar's); zero if it cannot be read, which
 * makes every wait for a group end at once. */
struct timespec
store_clock(void)
{
	struct timespec t;

	if (clock_gettime(CLOCK_MONOTONIC, &t) < 0)
		t = (struct timespec){0};
	return t;
}

static struct timespec
store_plus_ms(struct timespec t, long ms)
{
	t.tv_nsec += ms * 1000000;
	t.tv_sec += t.tv_nsec / 1000000000;
	t.tv_nsec %= 1000000000;
	return t;
}

static bool
store_before(struct timespec a, struct timespec b)
{
	return a.tv_sec < b.tv_sec ||
	       (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

/* Under the mutex: wait for a job; while jobs keep coming, let more join
 * the group commit for up to STORE_GROUP_MS; then take them all. 0:
 * stopping, nothing left. */
static size_t
store_take(struct store *s, struct store_job *batch)
{
	struct timespec until, now;
	size_t n = 0;

	s->writer = STORE_IDLE;
	while (s->nq == 0 && !s->stopping)
		pthread_cond_wait(&s->cv, &s->mu);
	now = store_clock();
	if (s->nq > 0 && s->nq < STORE_GROUP_JOBS && !s->stopping &&
	    s->last > 1 &&
	    store_before(now, store_plus_ms(s->committed, STORE_GROUP_MS))) {
		until = store_plus_ms(now, STORE_GROUP_MS);
		s->writer = STORE_GATHERING;
		while (s->nq < STORE_GROUP_JOBS && !s->stopping &&
		       pthread_cond_timedwait(&s->cv, &s->mu, &until) == 0)
			;
	}
	s->writer = STORE_WRITING;
	while (s->nq > 0) {
		batch[n++] = s->queue[s->q0];
		s->q0 = (s->q0 + 1) % STORE_QUEUE_MAX;
		s->nq--;
	}
	s->q0 = 0; /* empty: the ring's first slots again, so only as many
	            * pages as the largest batch are ever touched */
	s->busy = s->last = n;
	return n;
}

void *
store_writer(void *arg)
{
	struct store *s = arg;
	struct store_job *batch = xcalloc(STORE_QUEUE_MAX, sizeof *batch);
	size_t n;

	for (;;) {
		pthread_mutex_lock(&s->mu);
		n = store_take(s, batch);
		pthread_mutex_unlock(&s->mu);
		if (n == 0)
			break;
		store_write_batch(s, batch, n);
		s->committed = store_clock(); /* the writer's alone */
		store_hand_back(s, batch, n);
	}
	free(batch);
	return NULL;
}
