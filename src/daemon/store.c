/*
 * store.c - the state store's connections and its queue, the loop's side
 * of it; the writer thread is store_writer.c.
 *
 * The loop queues jobs (a bounded ring under a mutex); the writer takes every
 * job queued, runs them in one transaction (a savepoint each, so one job's
 * failure does not fail the others), commits, and hands the batch back with
 * an ev_async. A job is reported committed only once COMMIT returned: an
 * acknowledgement sent from its `done` is never one of lost data. The writer
 * touches nothing of the loop's but the queues.
 *
 * Group commit: when jobs keep coming from several sources (the last commit
 * ended less than STORE_GROUP_MS ago and held more than one job), a queued
 * job lets others join for up to
 * STORE_GROUP_MS (or until STORE_GROUP_JOBS are queued) before the writer
 * begins, so a thousand checkpoints a second make a few hundred commits
 * (fsyncs) and the loop is woken once per commit rather than once per job;
 * a job that comes alone, after a quiet spell or from one client that waits
 * for each answer before it asks again, is committed at once. A submit
 * signals the writer only when it is idle or a gathering batch is full (so
 * two jobs queued one after the other may be committed apart: what must
 * commit together is one job, store_submit_ledger_joint). The writer is
 * not niced: the loop takes the queue's mutex at every submit, and a
 * low-priority holder preempted on a busy machine would stall the loop behind
 * it (and delay the acks).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "store_int.h"
#include "util.h"

#define STORE_BUSY_MS   1000  /* the reader waits this long for a lock */
#define STORE_CACHE_KIB "512" /* each connection's page cache */
/* queue slots only the ledger's writes may take: a checkpoint flood while
 * the database is locked cannot leave a spawn or a drop unrecorded */
#define STORE_LEDGER_RESERVE 512

sqlite3 *
store_reader(struct store *s)
{
	return s->rdb;
}

int
store_schema(struct store *s, const char *sql, char *why, size_t len)
{
	return store_exec(s->db, sql, why, len);
}

int
store_mark_version(struct store *s, char *why, size_t len)
{
	char sql[48];

	snprintf(sql, sizeof sql, "PRAGMA user_version = %d", STORE_VERSION);
	return store_exec(s->db, sql, why, len);
}

/* --- the loop's side ------------------------------------------------------ */

/* Completions: each job's done, in commit order. */
static void
store_report(struct store *s)
{
	struct store_job *d;
	size_t n;

	pthread_mutex_lock(&s->mu);
	d = s->done;
	n = s->ndone;
	s->done = NULL;
	s->ndone = s->capdone = 0;
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < n; i++)
		d[i].done(d[i].arg, d[i].rc, d[i].why);
	free(d);
}

static void
store_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)revents;
	store_report(w->data);
}

/* Into the queue if fewer than limit jobs wait. */
static int
store_queue(struct store *s, store_run_fn *run, store_done_fn *done, void *arg,
            unsigned limit)
{
	int rc = -1;

	pthread_mutex_lock(&s->mu);
	if (s->started && !s->stopping && s->nq < limit) {
		if (s->nq == 0 && s->busy == 0)
			s->waiting_since = store_clock();
		s->queue[(s->q0 + s->nq) % STORE_QUEUE_MAX] =
		        (struct store_job){
		                .run = run, .done = done, .arg = arg};
		s->nq++;
		/* gathering, it wakes at its deadline anyway */
		if (s->writer == STORE_IDLE ||
		    (s->writer == STORE_GATHERING && s->nq >= STORE_GROUP_JOBS))
			pthread_cond_signal(&s->cv);
		rc = 0;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

uint64_t
store_waiting_ms(struct store *s, size_t *jobs)
{
	struct timespec now = store_clock();
	int64_t ms = 0;

	pthread_mutex_lock(&s->mu);
	*jobs = s->nq + s->busy;
	if (*jobs > 0)
		ms = (int64_t)(now.tv_sec - s->waiting_since.tv_sec) * 1000 +
		     (now.tv_nsec - s->waiting_since.tv_nsec) / 1000000;
	pthread_mutex_unlock(&s->mu);
	return ms > 0 ? (uint64_t)ms : 0;
}

int
store_submit(struct store *s, store_run_fn *run, store_done_fn *done, void *arg)
{
	return store_queue(s, run, done, arg,
	                   STORE_QUEUE_MAX - STORE_LEDGER_RESERVE);
}

int
store_submit_ledger(struct store *s, store_run_fn *run, store_done_fn *done,
                    void *arg)
{
	return store_queue(s, run, done, arg, STORE_QUEUE_MAX);
}

/* Two parts of a joint job. */
struct store_joint {
	struct store_part part[2];
};

/* In the writer thread, in the job's savepoint: a part's failure rolls
 * back the other's writes too. */
static int
store_joint_run(sqlite3 *db, void *arg, char *err, size_t len)
{
	struct store_joint *j = arg;

	for (size_t i = 0; i < 2; i++)
		if (j->part[i].run(db, j->part[i].arg, err, len) < 0)
			return -1;
	return 0;
}

static void
store_joint_done(void *arg, int rc, const char *why)
{
	struct store_joint *j = arg;

	for (size_t i = 0; i < 2; i++)
		j->part[i].done(j->part[i].arg, rc, why);
	free(j);
}

int
store_submit_ledger_joint(struct store *s, const struct store_part *a,
                          const struct store_part *b)
{
	struct store_joint *j = xmalloc(sizeof *j);

	j->part[0] = *a;
	j->part[1] = *b;
	if (store_submit_ledger(s, store_joint_run, store_joint_done, j) == 0)
		return 0;
	free(j);
	return -1;
}

bool
store_ledger_room(struct store *s)
{
	bool room;

	pthread_mutex_lock(&s->mu);
	room = s->started && !s->stopping && s->nq < STORE_QUEUE_MAX;
	pthread_mutex_unlock(&s->mu);
	return room;
}

/* --- open and close ------------------------------------------------------- */

/* flock of file in dir, kept open in *fd for the store's life. */
static int
store_flock(const char *dir, const char *file, int *fd, char *why, size_t len)
{
	char *path = xasprintf("%s/%s", dir, file);

	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd < 0) {
		snprintf(why, len, "cannot open %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	if (flock(*fd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(why, len,
		         errno == EWOULDBLOCK
		                 ? "%s is in use by another live agentsupd"
		                 : "cannot lock %s: %s",
		         errno == EWOULDBLOCK ? dir : path, strerror(errno));
		free(path);
		return -1;
	}
	free(path);
	return 0;
}

/* A database of 0 bytes (and no WAL) at path: SQLite opens it as a
 * fresh, empty one, whatever it held gone. */
static bool
store_empty_file(const char *path)
{
	char *wal = xasprintf("%s-wal", path);
	struct stat st;
	bool empty = stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	             st.st_size == 0 && (stat(wal, &st) < 0 || st.st_size == 0);

	free(wal);
	return empty;
}

bool
store_found_empty(const struct store *s)
{
	return s->found_empty;
}

/* dir exists (made if not) and is ours alone: a flock on dir/lock, and
 * one on the database file itself, so that a lock file removed (a clean-up
 * of a "stale" lock) lets no second agentsupd in beside us. A flock is
 * not a POSIX lock: SQLite's own on the file are not touched by it, and
 * the descriptor is closed only once SQLite has closed the file. */
static int
store_lock(struct store *s, const char *dir, char *why, size_t len)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(why, len, "cannot create %s: %s", dir,
		         strerror(errno));
		return -1;
	}
	if (store_flock(dir, "lock", &s->lockfd, why, len) < 0)
		return -1;
	/* looked at under the lock (another agentsupd's fresh file is not
	 * ours to judge), before our own open makes one */
	s->found_empty = store_empty_file(s->path);
	return store_flock(dir, STORE_DB_NAME, &s->dbfd, why, len);
}

/* The database file's identity, for store_still_there. */
static int
store_identify(struct store *s, char *why, size_t len)
{
	struct stat st;
	char *wal;

	if (stat(s->path, &st) < 0) {
		snprintf(why, len, "%s: %s", s->path, strerror(errno));
		return -1;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	wal = xasprintf("%s-wal", s->path);
	if (stat(wal, &st) < 0) { /* made by the probe's write: WAL mode */
		snprintf(why, len, "%s: %s", wal, strerror(errno));
		free(wal);
		return -1;
	}
	free(wal);
	s->wal_dev = st.st_dev;
	s->wal_ino = st.st_ino;
	return 0;
}

/* One connection, its errors said in why. */
static sqlite3 *
store_connect(const char *path, int flags, char *why, size_t len)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		snprintf(why, len, "%s: %s", path,
		         db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, STORE_BUSY_MS);
	/* a small page cache: the writer appends, the reader reads at start */
	sqlite3_exec(db, "PRAGMA cache_size=-" STORE_CACHE_KIB, NULL, NULL,
	             NULL);
	return db;
}

/* A write at every start: a store we cannot write is said now, not at the
 * first checkpoint. */
static const char store_probe[] =
        "CREATE TABLE IF NOT EXISTS store_meta (k TEXT PRIMARY KEY, v);"
        "INSERT OR REPLACE INTO store_meta VALUES"
        " ('opened_at', strftime('%s', 'now'));";

/* The store's layout version (PRAGMA user_version): one a later
 * agentsupd wrote is refused, so that a downgrade says so instead of
 * writing rows the other build cannot read (or failing every write);
 * an older one is marked ours once our tables are there. */
static int
store_version(struct store *s, const char *path, char *why, size_t len)
{
	sqlite3_stmt *st = NULL;
	long long v = 0;
	bool read = false;

	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) ==
	            SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		v = sqlite3_column_int64(st, 0);
		read = true;
	}
	sqlite3_finalize(st);
	if (!read) {
		snprintf(why, len, "%s: %s", path, sqlite3_errmsg(s->db));
		return -1;
	}
	if (v < 0) { /* no agentsupd writes that: another tool did */
		snprintf(why, len,
		         "%s has store version %lld, which no agentsupd "
		         "writes: not a store of agentsupd's (give it another "
		         "state_dir)",
		         path, v);
		return -1;
	}
	if (v > STORE_VERSION) {
		snprintf(why, len,
		         "%s was written by a later agentsupd (store version "
		         "%lld; this one reads up to %d): run that agentsupd "
		         "(or one as recent) on it, or give this one another "
		         "state_dir",
		         path, v, STORE_VERSION);
		return -1;
	}
	return 0;
}

/* SQLite checkpoints its WAL at 1,000 pages (4 MiB), which on a small
 * file system (a 256 KiB state_dir) is more than there is: the WAL alone
 * filled it and every write failed from then on. The WAL is kept to an
 * eighth of the file system. The writer checkpoints it itself, once it
 * has checked it (store_writer.c): SQLite's own checkpoint copied the
 * zeros of a WAL cut short in place over the database. */
static int
store_wal_frames(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)db;
	(void)name;
	((struct store *)arg)->wal_frames = frames;
	return SQLITE_OK;
}

static void
store_wal_bound(struct store *s, const char *dir)
{
	struct statvfs sv;
	unsigned long long pages = 1000; /* SQLite's own bound */

	if (statvfs(dir, &sv) == 0) {
		unsigned long long eighth = (unsigned long long)sv.f_blocks *
		                            sv.f_frsize / 8 / 4096;
		if (eighth < pages)
			pages = eighth;
	}
	s->wal_ckpt = pages > 0 ? (int)pages : 1;
	/* SQLite's own checkpoint is this hook: replaced, it is off */
	sqlite3_wal_hook(s->db, store_wal_frames, s);
}

/* WAL, synchronous commits, an intact file, our tables. */
static int
store_prepare(struct store *s, const char *path, const char *schema, char *why,
              size_t len)
{
	sqlite3_stmt *st = NULL;
	const char *mode = "";
	char err[160];
	int rc = -1;

	if (store_exec(s->db, "PRAGMA journal_mode=WAL", err, sizeof err) < 0 ||
	    store_exec(s->db, "PRAGMA synchronous=FULL", err, sizeof err) < 0) {
		snprintf(why, len, "%s: %s", path, err);
		return -1;
	}
	if (sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL) ==
	            SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		mode = (const char *)sqlite3_column_text(st, 0);
	if (mode == NULL || strcmp(mode, "ok") != 0)
		snprintf(why, len, "%s is damaged: %s", path,
		         mode && *mode ? mode : sqlite3_errmsg(s->db));
	else if (sqlite3_db_readonly(s->db, "main") == 1)
		snprintf(why, len, "%s is not writable", path);
	else if (store_version(s, path, why, len) < 0)
		; /* said */
	else if ((schema != NULL &&
	          store_exec(s->db, schema, err, sizeof err) < 0) ||
	         store_exec(s->db, store_probe, err, sizeof err) < 0)
		snprintf(why, len, "%s: %s", path, err);
	else
		rc = 0;
	sqlite3_finalize(st);
	return rc;
}

/* The writer's condvar waits on the monotonic clock. */
static void
store_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

struct store *
store_open(struct ev_loop *loop, const char *dir, const char *schema, char *why,
           size_t len)
{
	struct store *s;
	char *path;

	if (sqlib_load(why, len) < 0)
		return NULL;
	s = xcalloc(1, sizeof *s);
	s->path = path = xasprintf("%s/%s", dir, STORE_DB_NAME);
	s->loop = loop;
	s->lockfd = s->dbfd = -1;
	pthread_mutex_init(&s->mu, NULL);
	store_cond_init(&s->cv);
	if (store_lock(s, dir, why, len) < 0 ||
	    (s->db = store_connect(path,
	                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	                           why, len)) == NULL ||
	    (store_wal_bound(s, dir),
	     store_prepare(s, path, schema, why, len) < 0) ||
	    (s->rdb = store_connect(path, SQLITE_OPEN_READONLY, why, len)) ==
	            NULL ||
	    store_identify(s, why, len) < 0) {
		store_close(s);
		return NULL;
	}
	s->queue = xcalloc(STORE_QUEUE_MAX, sizeof *s->queue);
	ev_async_init(&s->wakeup, store_async_cb);
	s->wakeup.data = s;
	ev_async_start(loop, &s->wakeup);
	ev_unref(loop); /* the writer does not keep the loop alive */
	return s;
}

/* After open, the tables and the start's reads: the writer runs. */
int
store_start(struct store *s, char *why, size_t len)
{
	sigset_t all, old;
	int err;

	/* signals are the loop's: the writer is born with them all blocked */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&s->thread, NULL, store_writer, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		snprintf(why, len, "cannot start the writer: %s",
		         strerror(err));
		return -1;
	}
	/* a name for top -H and the benchmarks; cosmetic, so its failure is
	 * of no consequence */
	(void)pthread_setname_np(s->thread, "store-writer");
	s->started = true;
	return 0;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->mu);
		s->stopping = true;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
		store_report(s);
	}
	if (s->queue != NULL) {
		ev_ref(s->loop);
		ev_async_stop(s->loop, &s->wakeup);
	}
	store_stmts_free(s->db);
	sqlite3_close(s->rdb);
	sqlite3_close(s->db);
	if (s->lockfd >= 0)
		close(s->lockfd);
	if (s->dbfd >= 0) /* after SQLite closed it: its POSIX locks are gone */
		close(s->dbfd);
	free(s->queue);
	free(s->done);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->path);
	free(s);
}
