/*
 * statedir.c - the state store at start and exit, and the `nodes` table:
 * every worker's spend (a blob of its fields) and circuit; the `holds`
 * table: the nodes an operator stopped (or drained), which stay stopped
 * across a restart of agentsupd until started. Once a second, and at exit,
 * the tree is summed up; when the sum moved, the rows are written (one
 * job, off the loop). At start the rows are read back before the tree
 * starts (it is start-up: reading synchronously is right).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "ckpt.h"
#include "clock.h"
#include "daemon.h"
#include "log.h"
#include "progress.h"
#include "statedir.h"
#include "store.h"
#include "tasks.h"
#include "taskstore.h"
#include "util.h"

#define STATEDIR_SWEEP_S 1.0
#define SPEND_BLOB       32 /* tokens, steps, wall_ms, cost: 8 bytes each */
#define STATEDIR_FULL    (64u << 10) /* room below which it is full */
#define STATEDIR_SAY_MS  60000       /* failed writes said this often */

static const char statedir_schema[] =
        "CREATE TABLE IF NOT EXISTS nodes ("
        " path TEXT PRIMARY KEY, spend BLOB, circuit INTEGER NOT NULL,"
        " open_ms INTEGER NOT NULL, probe_wall_ms INTEGER NOT NULL)"
        " WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS holds (path TEXT PRIMARY KEY)"
        " WITHOUT ROWID;";

static void statedir_holds_sweep(struct daemon *);

struct statedir_row {
	char *path;
	uint8_t spend[SPEND_BLOB];
	int circuit;
	int64_t open_ms, probe_wall_ms;
};

struct statedir_job {
	struct daemon *d;
	size_t n;
	struct statedir_row rows[];
};

/* --- spend as a blob ------------------------------------------------------ */

static void
put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void
spend_pack(const struct spend *s, uint8_t *b)
{
	uint64_t cost;

	memcpy(&cost, &s->cost, sizeof cost);
	put64(b, s->tokens);
	put64(b + 8, s->steps);
	put64(b + 16, s->wall_ms);
	put64(b + 24, cost);
}

static void
spend_unpack(const uint8_t *b, struct spend *s)
{
	uint64_t cost = get64(b + 24);

	s->tokens = get64(b);
	s->steps = get64(b + 8);
	s->wall_ms = get64(b + 16);
	memcpy(&s->cost, &cost, sizeof cost);
}

/* --- walking the tree ----------------------------------------------------- */

typedef void statedir_visit_fn(struct node *, void *);

static void
statedir_walk(struct node *n, statedir_visit_fn *fn, void *arg)
{
	if (n->spec->kind == KIND_WORKER)
		fn(n, arg);
	for (size_t i = 0; i < n->nchildren; i++)
		statedir_walk(n->children[i], fn, arg);
}

static void
statedir_row_of(const struct node *n, uint64_t now, struct statedir_row *r)
{
	const struct circuit *c = node_circuit(n);

	/* a worker's running incarnation counts too (a SIGKILL of agentsupd
	 * must not forget the tokens it reported), as its total has it since
	 * its last reset; its running wall time is left out (the total has
	 * none), so an idle fleet's rows do not change every second */
	struct spend sp = n->spec->kind == KIND_WORKER ? node_account(n)->total
	                                               : node_account(n)->spend;
	r->path = n->path;
	spend_pack(&sp, r->spend);
	r->circuit = (int)c->state;
	r->open_ms = (int64_t)c->open_ms;
	r->probe_wall_ms =
	        c->state == CIRCUIT_OPEN
	                ? clock_wall_ms() + (int64_t)c->probe_at - (int64_t)now
	                : 0;
}

struct statedir_sum {
	uint64_t h;
	size_t n;
};

/* What the rows would say, summed: FNV over spend and circuit. */
static void
statedir_sum_one(struct node *n, void *arg)
{
	struct statedir_sum *s = arg;
	struct statedir_row r;
	uint8_t b[SPEND_BLOB + 20];

	statedir_row_of(n, 0, &r);
	memcpy(b, r.spend, SPEND_BLOB);
	memcpy(b + SPEND_BLOB, &r.circuit, 4);
	memcpy(b + SPEND_BLOB + 4, &r.open_ms, 8);
	/* a circuit reopened for as long as before moves only its deadline
	 * (monotonic here: the stored wall-clock one moves every second) */
	memcpy(b + SPEND_BLOB + 12, &node_circuit(n)->probe_at, 8);
	s->h = util_fnv_str(util_fnv(s->h, b, sizeof b), n->path);
	s->n++;
}

struct statedir_fill {
	struct statedir_job *j;
	uint64_t now;
};

static void
statedir_fill_one(struct node *n, void *arg)
{
	struct statedir_fill *f = arg;
	struct statedir_row *r = &f->j->rows[f->j->n++];

	statedir_row_of(n, f->now, r);
	r->path = xstrdup(n->path);
}

/* --- the writer's job ----------------------------------------------------- */

static int
statedir_job_run(sqlite3 *db, void *arg, char *err, size_t len)
{
	struct statedir_job *j = arg;
	sqlite3_stmt *st;
	int rc = SQLITE_DONE;

	if (sqlite3_prepare_v2(db,
	                       "INSERT OR REPLACE INTO nodes (path, spend, "
	                       "circuit, open_ms, probe_wall_ms) VALUES "
	                       "(?1, ?2, ?3, ?4, ?5)",
	                       -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, len, "%s", sqlite3_errmsg(db));
		return -1;
	}
	for (size_t i = 0; i < j->n && rc == SQLITE_DONE; i++) {
		const struct statedir_row *r = &j->rows[i];

		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, r->path, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, r->spend, SPEND_BLOB, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, r->circuit);
		sqlite3_bind_int64(st, 4, r->open_ms);
		sqlite3_bind_int64(st, 5, r->probe_wall_ms);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		snprintf(err, len, "%s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* A write of the once-a-second sweep failed (a full disk): an event at
 * the first of a streak and then once a minute with the count, not one a
 * second, which crowded every other event out of the history. */
static void
statedir_failed(struct daemon *d, const char *what, const char *why)
{
	uint64_t now = clock_now_ms();

	if (d->statedir_failed_ms != 0 &&
	    now - d->statedir_failed_ms < STATEDIR_SAY_MS) {
		d->statedir_failures++;
		return;
	}
	if (d->statedir_failures > 0)
		events_emit(&d->events, EV_STORE_ERROR, d->tree->root->path, 0,
		            "store", 0,
		            "%s not written: %s (and %u more failed writes "
		            "since it was last said)",
		            what, why, d->statedir_failures);
	else
		events_emit(&d->events, EV_STORE_ERROR, d->tree->root->path, 0,
		            "store", 0, "%s not written: %s", what, why);
	d->statedir_failed_ms = now;
	d->statedir_failures = 0;
}

/* A write went through: a streak of failures is over. */
static void
statedir_written(struct daemon *d)
{
	if (d->statedir_failed_ms == 0)
		return;
	log_info("state store: spend, circuits and holds written again");
	d->statedir_failed_ms = 0;
	d->statedir_failures = 0;
}

/* A sweep's write done: failed, said and its sum cleared, so that the
 * next sweep writes it again. */
static void
statedir_outcome(struct daemon *d, int rc, const char *what, const char *why,
                 uint64_t *sum)
{
	if (rc < 0) {
		statedir_failed(d, what, why);
		*sum = 0;
	} else {
		statedir_written(d);
	}
}

static void
statedir_job_done(void *arg, int rc, const char *why)
{
	struct statedir_job *j = arg;

	statedir_outcome(j->d, rc, "spend and circuits", why,
	                 &j->d->statedir_sum);
	for (size_t i = 0; i < j->n; i++)
		free(j->rows[i].path);
	free(j);
}

void
statedir_sweep(struct daemon *d)
{
	struct statedir_sum sum = {.h = UTIL_FNV_BASIS};
	struct statedir_fill fill = {.now = clock_now_ms()};

	if (d->store == NULL || d->tree == NULL)
		return;
	statedir_holds_sweep(d);
	statedir_walk(d->tree->root, statedir_sum_one, &sum);
	if (sum.h == d->statedir_sum || sum.n == 0)
		return;
	fill.j = xmalloc(sizeof *fill.j + sum.n * sizeof *fill.j->rows);
	fill.j->d = d;
	fill.j->n = 0;
	statedir_walk(d->tree->root, statedir_fill_one, &fill);
	if (store_submit(d->store, statedir_job_run, statedir_job_done,
	                 fill.j) < 0) {
		statedir_job_done(fill.j, -1, "the store's queue is full");
		return;
	}
	d->statedir_sum = sum.h;
}

static void
statedir_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	statedir_sweep(w->data);
	statedir_watch(w->data);
}

/* --- the operator's holds ------------------------------------------------- */

/* Who is told once a write of the holds is committed (statedir_holds_then). */
struct statedir_then {
	statedir_then_fn *fn;
	void *arg;
};

struct statedir_holds {
	struct daemon *d;
	char **paths;
	size_t n;
	uint64_t h;
	struct statedir_then *then;
	size_t nthen;
};

/* A node whose hold is kept: an operator's (not `autostart: false`'s),
 * configured (a task's stop cancels it, in its record), and not the root
 * (held, nothing at all would start). */
static void
statedir_holds_walk(struct node *n, struct statedir_holds *hs, bool collect)
{
	if (n->held && !n->held_config && n->parent != NULL &&
	    n->task == NULL) {
		hs->h = util_fnv(util_fnv_str(hs->h, n->path), "\n", 1);
		if (collect) {
			hs->paths = xreallocarray(hs->paths, hs->n + 1,
			                          sizeof *hs->paths);
			hs->paths[hs->n++] = xstrdup(n->path);
		}
	}
	if (n->spec->tmpl == NULL) /* a pool's children are tasks */
		for (size_t i = 0; i < n->nchildren; i++)
			statedir_holds_walk(n->children[i], hs, collect);
}

static int
statedir_holds_run(sqlite3 *db, void *arg, char *err, size_t len)
{
	struct statedir_holds *hs = arg;
	sqlite3_stmt *st;
	int rc;

	if ((st = store_stmt(db, "DELETE FROM holds", err, len)) == NULL ||
	    sqlite3_step(st) != SQLITE_DONE)
		goto failed;
	if ((st = store_stmt(db, "INSERT INTO holds (path) VALUES (?1)", err,
	                     len)) == NULL)
		return -1;
	for (size_t i = 0; i < hs->n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, hs->paths[i], -1, SQLITE_STATIC);
		if ((rc = sqlite3_step(st)) != SQLITE_DONE)
			goto failed;
	}
	return 0;
failed:
	if (st != NULL)
		snprintf(err, len, "%s", sqlite3_errmsg(db));
	return -1;
}

static void
statedir_holds_done(void *arg, int rc, const char *why)
{
	struct statedir_holds *hs = arg;

	statedir_outcome(hs->d, rc, "the nodes stopped by command", why,
	                 &hs->d->statedir_holds);
	if (hs->d->statedir_holds_job == hs)
		hs->d->statedir_holds_job = NULL;
	for (size_t i = 0; i < hs->nthen; i++)
		hs->then[i].fn(hs->d, hs->then[i].arg, rc, why);
	free(hs->then);
	for (size_t i = 0; i < hs->n; i++)
		free(hs->paths[i]);
	free(hs->paths);
	free(hs);
}

static void
statedir_holds_sweep(struct daemon *d)
{
	struct statedir_holds sum = {.h = UTIL_FNV_BASIS}, *hs;

	statedir_holds_walk(d->tree->root, &sum, false);
	if (sum.h == d->statedir_holds)
		return;
	hs = xcalloc(1, sizeof *hs);
	hs->d = d;
	statedir_holds_walk(d->tree->root, hs, true);
	if (store_submit(d->store, statedir_holds_run, statedir_holds_done,
	                 hs) < 0) {
		statedir_holds_done(hs, -1, "the store's queue is full");
		return;
	}
	d->statedir_holds = sum.h;
	d->statedir_holds_job = hs;
}

bool
statedir_holds_then(struct daemon *d, statedir_then_fn *fn, void *arg)
{
	struct statedir_holds *hs;

	if (d->store == NULL || d->tree == NULL)
		return false;
	statedir_holds_sweep(d);
	if ((hs = d->statedir_holds_job) == NULL && d->statedir_holds != 0)
		return false; /* stored as they are */
	if (hs == NULL) {     /* its submission failed just now */
		fn(d, arg, -1, "the store's queue is full");
		return true;
	}
	hs->then = xreallocarray(hs->then, hs->nthen + 1, sizeof *hs->then);
	hs->then[hs->nthen++] = (struct statedir_then){fn, arg};
	return true;
}

/* The holds read back: those nodes start stopped, "by command". */
static int
statedir_holds_restore(struct daemon *d, char *why, size_t len)
{
	sqlite3 *db = store_reader(d->store);
	struct statedir_holds sum = {.h = UTIL_FNV_BASIS};
	sqlite3_stmt *st;
	const char *path;
	struct node *n;
	bool stale = false;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT path FROM holds", -1, &st, NULL) !=
	    SQLITE_OK) {
		snprintf(why, len, "%s", sqlite3_errmsg(db));
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		path = (const char *)sqlite3_column_text(st, 0);
		n = path != NULL ? tree_find(d->tree, path) : NULL;
		if (n != NULL && n->parent != NULL && n->task == NULL) {
			n->held = true;
			n->held_config = false; /* an operator's, stored */
			log_info("%s: stopped by command before agentsupd "
			         "restarted: stays stopped until started",
			         n->path);
		} else {
			stale = true;
		}
	}
	if (rc != SQLITE_DONE)
		snprintf(why, len, "%s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	statedir_holds_walk(d->tree->root, &sum, false);
	/* as they are stored; a row of a node the tree no longer has is
	 * written away at once (statedir_open): a node of that name added
	 * later is a new one, and nobody stopped it */
	d->statedir_holds = stale ? 0 : sum.h;
	return rc == SQLITE_DONE ? 0 : -1;
}

/* --- start ---------------------------------------------------------------- */

/* One row read back into its worker, if the tree still has it. The open
 * circuit's deadline was stored as wall-clock time (monotonic time does not
 * survive a restart): what is left of it is worked out here, for the
 * engine. */
static void
statedir_restore_row(struct daemon *d, sqlite3_stmt *st)
{
	const char *path = (const char *)sqlite3_column_text(st, 0);
	struct node *n = path != NULL ? tree_find(d->tree, path) : NULL;
	struct tree_saved sv = {.circuit = CIRCUIT_CLOSED};
	int circuit = sqlite3_column_int(st, 2);
	int64_t left = sqlite3_column_int64(st, 4) - clock_wall_ms();
	char dur[32];

	if (n == NULL || n->spec->kind != KIND_WORKER)
		return;
	if (sqlite3_column_bytes(st, 1) == SPEND_BLOB)
		spend_unpack(sqlite3_column_blob(st, 1), &sv.spend);
	if (circuit == CIRCUIT_OPEN || circuit == CIRCUIT_HALF_OPEN)
		sv.circuit = (enum circuit_state)circuit;
	sv.open_ms = (uint64_t)sqlite3_column_int64(st, 3);
	sv.open_left_ms =
	        circuit == CIRCUIT_OPEN && left > 0 ? (uint64_t)left : 0;
	tree_restore(d->tree, n, &sv, clock_now_ms());
	if (n->state == NODE_QUARANTINED) {
		util_format_duration(node_circuit(n)->probe_at - d->tree->now,
		                     dur, sizeof dur);
		log_info("%s: circuit still open, probe in %s", n->path, dur);
	}
}

static int
statedir_restore(struct daemon *d, char *why, size_t len)
{
	sqlite3 *db = store_reader(d->store);
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db,
	                       "SELECT path, spend, circuit, open_ms, "
	                       "probe_wall_ms FROM nodes",
	                       -1, &st, NULL) != SQLITE_OK) {
		snprintf(why, len, "%s", sqlite3_errmsg(db));
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		statedir_restore_row(d, st);
	if (rc != SQLITE_DONE)
		snprintf(why, len, "%s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return -1;
	return statedir_holds_restore(d, why, len);
}

/* Whether dir's file system has no room left: SQLite says only "disk
 * I/O error" when its first write at open finds none. */
static bool
statedir_full(const char *dir)
{
	struct statvfs sv;

	return statvfs(dir, &sv) == 0 &&
	       (uint64_t)sv.f_bavail * sv.f_frsize < STATEDIR_FULL;
}

int
statedir_open(struct daemon *d)
{
	const char *dir = d->cfg->settings.state_dir;
	char why[512];

	if (dir == NULL) {
		d->ckpt = ckpt_new(NULL, &d->events);
		return 0;
	}
	d->store = store_open(d->loop, dir, ckpt_schema, why, sizeof why);
	if (d->store == NULL ||
	    store_schema(d->store, statedir_schema, why, sizeof why) < 0 ||
	    store_schema(d->store, taskstore_schema, why, sizeof why) < 0 ||
	    tasks_load(d, why, sizeof why) < 0 ||
	    store_mark_version(d->store, why, sizeof why) < 0 ||
	    (d->ckpt = ckpt_new(d->store, &d->events),
	     ckpt_load(d->ckpt, tasks_ckpt_wanted, d, why, sizeof why) < 0) ||
	    statedir_restore(d, why, sizeof why) < 0 ||
	    store_start(d->store, why, sizeof why) < 0) {
		log_warnx("state store %s: %s%s", dir, why,
		          statedir_full(dir) ? " (its file system is full)"
		                             : "");
		store_close(d->store); /* nothing was submitted */
		d->store = NULL;
		return -1;
	}
	if (store_found_empty(d->store)) /* opened as a fresh one: say so */
		log_warnx("state store %s: %s was empty (0 bytes): a fresh one "
		          "is made; if a store was there, the checkpoints, "
		          "tasks and circuits it held are gone",
		          dir, STORE_DB_NAME);
	if (d->statedir_holds == 0) /* stale rows */
		statedir_holds_sweep(d);
	ev_timer_init(&d->statedir_timer, statedir_timer_cb, STATEDIR_SWEEP_S,
	              STATEDIR_SWEEP_S);
	d->statedir_timer.data = d;
	ev_timer_start(d->loop, &d->statedir_timer);
	ev_unref(d->loop);
	log_info("state store %s: the checkpoints of %zu worker%s restored",
	         dir, ckpt_count(d->ckpt), ckpt_count(d->ckpt) == 1 ? "" : "s");
	return 0;
}

void
statedir_close(struct daemon *d)
{
	if (d->store != NULL) {
		if (ev_is_active(&d->statedir_timer)) {
			ev_ref(d->loop);
			ev_timer_stop(d->loop, &d->statedir_timer);
		}
		taskstore_save_unsaved(d);
		statedir_sweep(d);
		store_close(d->store);
		d->store = NULL;
	}
	ckpt_free(d->ckpt);
	d->ckpt = NULL;
}
