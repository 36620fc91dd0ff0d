/*
 * store.h - the durable state store (DESIGN §11): one SQLite database in WAL
 * mode under state_dir, written by one writer thread that group-commits
 * whatever jobs are queued, so the event loop never waits for the disk.
 *
 * A feature adds its own table (store_schema at open) and submits write jobs;
 * each job's `run` is called in the writer thread inside the batch's
 * transaction, and its `done` back on the loop once the batch has committed
 * (rc 0) or failed (rc -1 and why): acknowledge only in `done` with rc 0.
 */
#ifndef AGENTSUP_STORE_H
#define AGENTSUP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include "sqlib.h"

#define STORE_DB_NAME "agentsup.db"
/* The layout of agentsup.db this build writes, kept in its user_version:
 * 0 a store of a build before the version was kept (migrated at start),
 * 1 the tasks table with checkpoint_seq and tail. A build refuses a store
 * of a higher version (a later agentsupd's) rather than write into a
 * layout it does not know. */
#define STORE_VERSION   1
#define STORE_QUEUE_MAX 8192 /* jobs waiting for the writer; then refused */

struct store;

/* In the writer thread: write arg's data with db; -1 (why in err) fails it. */
typedef int store_run_fn(sqlite3 *db, void *arg, char *err, size_t errlen);
/* On the loop: the job's fate (rc 0: committed); frees arg. */
typedef void store_done_fn(void *arg, int rc, const char *why);

/* Whether agentsup.db had 0 bytes (and no WAL) when store_open found it:
 * it opened as a fresh store, whatever it held gone. */
bool store_found_empty(const struct store *);
/* Open (create) dir/agentsup.db, lock it against another agentsupd, check
 * it and make the tables of `schema` (SQL, may be NULL). NULL with why. */
struct store *store_open(struct ev_loop *, const char *dir, const char *schema,
                         char *why, size_t whylen);
/* More tables (another feature's): at open, before the first submit. */
int store_schema(struct store *, const char *sql, char *why, size_t whylen);
/* Once every table is made and migrated: the store is STORE_VERSION's. */
int store_mark_version(struct store *, char *why, size_t whylen);
/* Start the writer thread: after the tables are made and read. */
int store_start(struct store *, char *why, size_t len);
/* The reading connection, for the loop's own (rare) reads: WAL lets it read
 * committed data while the writer writes. */
sqlite3 *store_reader(struct store *);
/* In a job's run (the writer thread): the statement of sql, a string that
 * lives as long as the store (a literal), prepared once and reset for reuse;
 * NULL (why in err) on error. Never finalize it. */
sqlite3_stmt *store_stmt(sqlite3 *db, const char *sql, char *err, size_t len);
/* Queue a job. -1 when the queue is full or the writer has stopped: done is
 * not called, the caller reports the error. */
int store_submit(struct store *, store_run_fn *, store_done_fn *, void *arg);
/* The same for the ledger's writes, which may also take the slots kept for
 * them; store_ledger_room says whether one would be taken now. */
int store_submit_ledger(struct store *, store_run_fn *, store_done_fn *,
                        void *arg);
bool store_ledger_room(struct store *);
/* A job's functions, for a joint submission. */
struct store_part {
	store_run_fn *run;
	store_done_fn *done;
	void *arg;
};
/* The ledger's job a and b as one: both run in one savepoint, so both
 * commit or neither, and each done hears the outcome. -1 when the queue is
 * full: neither done is called, the caller disposes of both. */
int store_submit_ledger_joint(struct store *, const struct store_part *a,
                              const struct store_part *b);
/* How long jobs have waited with none done (a disk that stalls: nothing
 * commits, nothing fails), and how many wait; 0 when none does. */
uint64_t store_waiting_ms(struct store *, size_t *jobs);
/* Write what is queued, stop the writer, report the last completions, close. */
void store_close(struct store *);

#endif
