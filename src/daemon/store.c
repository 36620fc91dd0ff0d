/*
 * store.c - the state store's connection and its writer thread.
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
 * not niced: the loop takes the
 * queue's mutex at every submit, and a low-priority holder preempted on a
 * busy machine would stall the loop behind it (and delay the acks).
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
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "util.h"

#define STORE_BUSY_MS    1000  /* the reader waits this long for a lock */
#define STORE_CACHE_KIB  "512" /* each connection's page cache */
#define STORE_STMTS_MAX  32    /* prepared statements of the jobs' SQL */
#define STORE_GROUP_MS   4     /* how long a commit waits for more jobs */
#define STORE_GROUP_JOBS 256   /* ... or until this many are queued */
/* queue slots only the ledger's writes may take: a checkpoint flood while
 * the database is locked cannot leave a spawn or a drop unrecorded */
#define STORE_LEDGER_RESERVE 512

struct store_job {
	store_run_fn *run;
	store_done_fn *done;
	void *arg;
	int rc;
	char why[160];
};

struct store {
	struct ev_loop *loop;
	sqlite3 *db;  /* the writer's, used by the thread once started */
	char *path;   /* state_dir/agentsup.db */
	dev_t dev;    /* ... as it was opened: removed or replaced under us, */
	ino_t ino;    /* it would take every write and keep none */
	sqlite3 *rdb; /* the loop's reads */
	int lockfd;
	pthread_t thread;
	bool started, stopping;
	enum { STORE_WRITING, STORE_IDLE, STORE_GATHERING } writer;
	struct timespec committed; /* when the writer's last commit ended */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct store_job *queue; /* ring of STORE_QUEUE_MAX */
	size_t q0, nq;
	struct store_job *done; /* finished, for the loop */
	size_t ndone, capdone;
	size_t busy; /* jobs the writer holds */
	size_t last; /* jobs in the writer's last batch */
	ev_async wakeup;
};

sqlite3 *
store_reader(struct store *s)
{
	return s->rdb;
}

static int
store_exec(sqlite3 *db, const char *sql, char *why, size_t len)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK)
		return 0;
	snprintf(why, len, "%s", err != NULL ? err : sqlite3_errmsg(db));
	sqlite3_free(err);
	return -1;
}

int
store_schema(struct store *s, const char *sql, char *why, size_t len)
{
	return store_exec(s->db, sql, why, len);
}

/* --- the writer ----------------------------------------------------------- */

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
static void
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

/* Whether the database file is still the one opened, and still begins
 * as a database: a removed (or replaced) file takes every commit into an
 * unlinked inode, and one emptied or overwritten in place takes them into
 * a file the next start refuses as damaged; either way nothing committed
 * now would be found again. A 16-byte read a group commit. */
static int
store_still_there(const struct store *s, char *why, size_t len)
{
	static const char magic[16] = "SQLite format 3";
	char head[16];
	struct stat st;
	sqlite3_file *f = NULL;

	if (stat(s->path, &st) < 0 || st.st_dev != s->dev ||
	    st.st_ino != s->ino) {
		snprintf(why, len,
		         "%s was removed or replaced: nothing more is stored "
		         "until agentsupd starts again",
		         s->path);
		return -1;
	}
	/* through SQLite's own descriptor: closing one of ours on the file
	 * would drop SQLite's POSIX locks on it */
	if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_FILE_POINTER,
	                         &f) == SQLITE_OK &&
	    f != NULL && f->pMethods != NULL &&
	    f->pMethods->xRead(f, head, (int)sizeof head, 0) == SQLITE_OK &&
	    memcmp(head, magic, sizeof head) == 0)
		return 0;
	snprintf(why, len,
	         "%s was emptied or overwritten: nothing more is stored until "
	         "agentsupd starts again",
	         s->path);
	return -1;
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
			return;
		} else {
			store_exec(db, "ROLLBACK", dummy, sizeof dummy);
		}
	}
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
	pthread_mutex_unlock(&s->mu);
	ev_async_send(s->loop, &s->wakeup);
}

/* The monotonic clock (the condvar's); zero if it cannot be read, which
 * makes every wait for a group end at once. */
static struct timespec
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

static void *
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

/* dir exists (made if not) and is ours alone: flock on dir/lock. */
static int
store_lock(struct store *s, const char *dir, char *why, size_t len)
{
	char *path;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(why, len, "cannot create %s: %s", dir,
		         strerror(errno));
		return -1;
	}
	path = xasprintf("%s/lock", dir);
	s->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(path);
	if (s->lockfd < 0) {
		snprintf(why, len, "cannot open %s/lock: %s", dir,
		         strerror(errno));
		return -1;
	}
	if (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(why, len,
		         errno == EWOULDBLOCK
		                 ? "%s is in use by another live agentsupd"
		                 : "cannot lock %s: %s",
		         dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* The database file's identity, for store_still_there. */
static int
store_identify(struct store *s, char *why, size_t len)
{
	struct stat st;

	if (stat(s->path, &st) < 0) {
		snprintf(why, len, "%s: %s", s->path, strerror(errno));
		return -1;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
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
	s->lockfd = -1;
	pthread_mutex_init(&s->mu, NULL);
	store_cond_init(&s->cv);
	if (store_lock(s, dir, why, len) < 0 ||
	    (s->db = store_connect(path,
	                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	                           why, len)) == NULL ||
	    store_prepare(s, path, schema, why, len) < 0 ||
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
	free(s->queue);
	free(s->done);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->path);
	free(s);
}
