/* store_int.h - what the state store's loop side (store.c) and its
 * writer thread (store_writer.c) share; private to the two. */
#ifndef AGENTSUP_STORE_INT_H
#define AGENTSUP_STORE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include <ev.h>
#include <sqlite3.h>

#include "store.h"

#define STORE_GROUP_MS   4   /* how long a commit waits for more jobs */
#define STORE_GROUP_JOBS 256 /* ... or until this many are queued */

struct store_job {
	store_run_fn *run;
	store_done_fn *done;
	void *arg;
	int rc;
	char why[160];
};

struct store {
	struct ev_loop *loop;
	sqlite3 *db;   /* the writer's, used by the thread once started */
	char *path;    /* state_dir/agentsup.db */
	dev_t dev;     /* ... as it was opened: removed or replaced under us, */
	ino_t ino;     /* it would take every write and keep none */
	dev_t wal_dev; /* the same of its WAL (path-wal) */
	ino_t wal_ino;
	long long wal_size; /* the WAL's size at the last commit: it never
	                     * shrinks but by our own checkpoint(TRUNCATE) */
	int wal_ckpt;     /* the WAL's frames at which the writer checkpoints */
	int wal_frames;   /* ... and its frames at the last commit */
	bool rescue;      /* the WAL was removed: checkpoint what it holds */
	bool found_empty; /* the database had 0 bytes at open (store.c) */
	char broken[160]; /* why nothing more is stored, once it is so */
	sqlite3 *rdb;     /* the loop's reads */
	int lockfd;       /* flock'd: dir/lock */
	int dbfd;         /* flock'd: the database file itself */
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
	/* since when jobs have waited with none handed back: the first
	 * queued into an empty store, or the last batch's end */
	struct timespec waiting_since;
	size_t last; /* jobs in the writer's last batch */
	ev_async wakeup;
};

/* sqlite3_exec of sql; its error into why. */
int store_exec(sqlite3 *db, const char *sql, char *why, size_t len);
/* The monotonic clock; zero if it cannot be read. */
struct timespec store_clock(void);
/* The writer thread's main (arg: the store). */
void *store_writer(void *arg);
/* The writer's prepared statements of db finalized (once it stopped). */
void store_stmts_free(sqlite3 *db);

#endif
