/*
 * test_store.c - the state store's writer: a job's `done` comes after its
 * commit, one failing job does not fail the others of its batch (the two
 * parts of a joint job commit together or not at all), a full queue
 * refuses, and the start refuses a locked, damaged or uncreatable
 * store with a message saying which.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"

struct result {
	int calls, rc;
	char why[160];
	int64_t seen; /* a row read back from a second connection in done */
	const char *path;
};

static char dir[] = "/tmp/test_store.XXXXXX";

static int
job_insert(sqlite3 *db, void *arg, char *err, size_t len)
{
	(void)arg;
	if (sqlite3_exec(db, "INSERT INTO t VALUES (42)", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		snprintf(err, len, "%s", sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

static int
job_fail(sqlite3 *db, void *arg, char *err, size_t len)
{
	(void)arg;
	(void)db;
	snprintf(err, len, "refused");
	return -1;
}

/* What SQLite does on some errors (a full disk, an I/O error): the whole
 * transaction rolled back, not only the statement. */
static int
job_rolled_back(sqlite3 *db, void *arg, char *err, size_t len)
{
	(void)arg;
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	snprintf(err, len, "database or disk is full");
	return -1;
}

/* A job that holds the writer until the test lets it go, so that what is
 * submitted meanwhile is one batch whatever the host's speed (a loaded
 * host's writer took a first job alone before the next was submitted). */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool entered, open;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};

static int
job_gate(sqlite3 *db, void *arg, char *err, size_t len)
{
	(void)db;
	(void)arg;
	(void)err;
	(void)len;
	pthread_mutex_lock(&gate.mu);
	gate.entered = true;
	pthread_cond_broadcast(&gate.cv);
	while (!gate.open)
		pthread_cond_wait(&gate.cv, &gate.mu);
	pthread_mutex_unlock(&gate.mu);
	return 0;
}

/* The writer is in job_gate: what is submitted now waits for one batch. */
static void
gate_entered(void)
{
	pthread_mutex_lock(&gate.mu);
	while (!gate.entered)
		pthread_cond_wait(&gate.cv, &gate.mu);
	pthread_mutex_unlock(&gate.mu);
}

static void
gate_open(void)
{
	pthread_mutex_lock(&gate.mu);
	gate.open = true;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.mu);
}

static void
gate_done(void *arg, int rc, const char *why)
{
	(void)rc;
	(void)why;
	++*(int *)arg;
}

/* The rows committed, read from a second connection. */
static int64_t
rows(const char *path)
{
	char *db_path;
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t n;

	if (asprintf(&db_path, "%s/%s", path, STORE_DB_NAME) < 0)
		abort();
	assert_int_equal(
	        sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL),
	        SQLITE_OK);
	free(db_path);
	assert_int_equal(
	        sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL),
	        SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* In done: is the row already visible to another connection (committed)? */
static void
job_done(void *arg, int rc, const char *why)
{
	struct result *r = arg;

	r->calls++;
	r->rc = rc;
	snprintf(r->why, sizeof r->why, "%s", why);
	r->seen = rows(r->path);
}

static struct store *
open_ok(struct ev_loop *loop)
{
	char why[256] = "";
	struct store *s =
	        store_open(loop, dir, "CREATE TABLE IF NOT EXISTS t (v);", why,
	                   sizeof why);

	assert_non_null(s);
	assert_int_equal(store_start(s, why, sizeof why), 0);
	return s;
}

static void
test_done_after_commit_and_failures_isolated(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct store *s = open_ok(loop);
	struct result ok = {.path = dir}, bad = {.path = dir};

	(void)state;
	assert_int_equal(store_submit(s, job_insert, job_done, &ok), 0);
	assert_int_equal(store_submit(s, job_fail, job_done, &bad), 0);
	while (ok.calls + bad.calls < 2) /* the ev_async of the writer */
		ev_run(loop, EVRUN_ONCE);
	assert_int_equal(ok.rc, 0);
	assert_int_equal(ok.seen, 1); /* committed before done was called */
	assert_int_equal(bad.rc, -1);
	assert_string_equal(bad.why, "refused");
	store_close(s);
	ev_loop_destroy(loop);
}

/* A batch whose transaction SQLite rolled back fails whole: the jobs after
 * it are not run, each in a savepoint that would commit on its own (a
 * spawn answered "could not be stored" was on disk, and ran). */
static void
test_a_batch_rolled_back_by_sqlite_fails_whole(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct store *s = open_ok(loop);
	struct result r[3] = {{.path = dir}, {.path = dir}, {.path = dir}};
	int64_t before = rows(dir);
	int gated = 0;

	(void)state;
	assert_int_equal(store_submit(s, job_gate, gate_done, &gated), 0);
	gate_entered();
	assert_int_equal(store_submit(s, job_insert, job_done, &r[0]), 0);
	assert_int_equal(store_submit(s, job_rolled_back, job_done, &r[1]), 0);
	assert_int_equal(store_submit(s, job_insert, job_done, &r[2]), 0);
	gate_open();
	while (gated + r[0].calls + r[1].calls + r[2].calls < 4)
		ev_run(loop, EVRUN_ONCE);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r[i].rc, -1);
		assert_string_equal(r[i].why, "database or disk is full");
	}
	assert_int_equal(rows(dir), before);
	store_close(s);
	ev_loop_destroy(loop);
}

/* A joint job (a drop: the record's deletion and its checkpoints'): one
 * part's failure undoes the other's writes, both told; while a job alone
 * beside it commits. */
static void
test_a_joint_job_commits_both_parts_or_neither(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct store *s = open_ok(loop);
	struct result r[5] = {{.path = dir},
	                      {.path = dir},
	                      {.path = dir},
	                      {.path = dir},
	                      {.path = dir}};
	int64_t before = rows(dir);

	(void)state;
	assert_int_equal(
	        store_submit_ledger_joint(
	                s, &(struct store_part){job_insert, job_done, &r[0]},
	                &(struct store_part){job_fail, job_done, &r[1]}),
	        0);
	assert_int_equal(store_submit(s, job_insert, job_done, &r[2]), 0);
	assert_int_equal(
	        store_submit_ledger_joint(
	                s, &(struct store_part){job_insert, job_done, &r[3]},
	                &(struct store_part){job_insert, job_done, &r[4]}),
	        0);
	while (r[0].calls + r[1].calls + r[2].calls + r[3].calls + r[4].calls <
	       5)
		ev_run(loop, EVRUN_ONCE);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].rc, -1);
		assert_string_equal(r[i].why, "refused");
	}
	for (int i = 2; i < 5; i++)
		assert_int_equal(r[i].rc, 0);
	assert_int_equal(rows(dir), before + 3); /* not the failed part's */
	store_close(s);
	ev_loop_destroy(loop);
}

static void
test_second_open_is_refused_while_locked(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct store *s = open_ok(loop);
	char why[256] = "";

	(void)state;
	assert_null(store_open(loop, dir, NULL, why, sizeof why));
	assert_non_null(strstr(why, "in use by another live agentsupd"));
	store_close(s);
	s = open_ok(loop); /* free again once closed */
	store_close(s);
	ev_loop_destroy(loop);
}

static void
test_damaged_and_uncreatable(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char bad[] = "/tmp/test_store_bad.XXXXXX", why[256] = "", *p;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(bad));
	assert_true(asprintf(&p, "%s/%s", bad, STORE_DB_NAME) > 0);
	assert_non_null(f = fopen(p, "w"));
	for (int i = 0; i < 200; i++)
		fputs("not a database at all ", f);
	fclose(f);
	assert_null(store_open(loop, bad, NULL, why, sizeof why));
	assert_non_null(strstr(why, "not a database"));
	unlink(p);
	free(p);
	assert_true(asprintf(&p, "%s/lock", bad) > 0);
	unlink(p);
	free(p);
	rmdir(bad);
	assert_null(store_open(loop, "/proc/self/nope/state", NULL, why,
	                       sizeof why));
	assert_non_null(strstr(why, "cannot create"));
	ev_loop_destroy(loop);
}

static void
test_submit_before_start_is_refused(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char why[256];
	struct store *s =
	        store_open(loop, dir, "CREATE TABLE IF NOT EXISTS t (v);", why,
	                   sizeof why);
	struct result r = {.path = dir};

	(void)state;
	assert_non_null(s);
	assert_int_equal(store_submit(s, job_insert, job_done, &r), -1);
	store_close(s);
	assert_int_equal(r.calls, 0);
	ev_loop_destroy(loop);
}

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[64];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_done_after_commit_and_failures_isolated),
	        cmocka_unit_test(
	                test_a_batch_rolled_back_by_sqlite_fails_whole),
	        cmocka_unit_test(
	                test_a_joint_job_commits_both_parts_or_neither),
	        cmocka_unit_test(test_second_open_is_refused_while_locked),
	        cmocka_unit_test(test_damaged_and_uncreatable),
	        cmocka_unit_test(test_submit_before_start_is_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
