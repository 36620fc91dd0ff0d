/*
 * taskstore.h - the task ledger in the state store: the `tasks` table,
 * written through (group-committed off the loop). At start only the live
 * records are read back; ended ones are read when asked for, so they live
 * on disk, not in memory.
 */
#ifndef AGENTSUP_TASKSTORE_H
#define AGENTSUP_TASKSTORE_H

#include <stdbool.h>
#include <stddef.h>

#include "request.h"

struct daemon;
struct ledger;
struct ledger_rec;
struct store_part;
struct tasks;

/* The columns every row read or written has, in taskstore_row's order
 * (taskstore_read.c). */
#define TASKSTORE_COLS                                                         \
	"sup, key, args, env, attempts, state, reasons, result, accepted_ms, " \
	"ended_ms, replays, checkpoint_seq, tail"
/* The same without a task's inputs and environment (a listing's line has
 * neither), which may be a frame's size each. */
#define TASKSTORE_COLS_BRIEF                                                   \
	"sup, key, NULL, NULL, attempts, state, reasons, result, "             \
	"accepted_ms, ended_ms, replays, checkpoint_seq, tail"

/* SQL of the tasks table, for store_schema at open. */
extern const char taskstore_schema[];
/* On the loop, once a save (or a barrier) committed (rc 0) or failed; the
 * record is still in memory then. */
typedef void taskstore_ack_fn(struct daemon *, struct ledger_rec *, void *arg,
                              int rc, const char *why);
/* Queue the record's row (live_attempts: starts of its running child);
 * the record is pinned in memory until it is committed. Nothing without a
 * store. */
void taskstore_save(struct daemon *, struct ledger_rec *,
                    unsigned live_attempts);
/* The same, and ack called once it committed. -1 (ack not called) without
 * a store or when the store's queue is full. */
int taskstore_save_ack(struct daemon *, struct ledger_rec *,
                       unsigned live_attempts, taskstore_ack_fn *ack,
                       void *arg);
/* ack called once every write queued so far committed (r, if not NULL,
 * pinned till then). -1 (ack not called) without a store or when the
 * store's queue is full. */
int taskstore_barrier(struct daemon *, struct ledger_rec *,
                      taskstore_ack_fn *ack, void *arg);
/* Queue the deletion of the record's row, and with it (in one savepoint:
 * both or neither) the job part with (NULL: none; a dropped task's
 * checkpoints); ack (with the record, pinned till then: dropped meanwhile,
 * it may be put back) once it is committed. -1 (ack not called, with's
 * done called with -1) without a store or a queue full. */
int taskstore_forget(struct daemon *, struct ledger_rec *,
                     const struct store_part *with, taskstore_ack_fn *ack,
                     void *arg);
/* The retry of the records whose write failed (tasks->retry_w): armed by
 * a failure, every TASKSTORE_RETRY_S while some remain. */
#define TASKSTORE_RETRY_S 5.0
void taskstore_retry_init(struct tasks *, struct daemon *);
/* At a graceful exit: the records whose last write failed written once
 * more (the store closes after it has done them), so an operator's
 * cancellation refused by a store that works again is not left to a
 * retry that never comes. */
void taskstore_save_unsaved(struct daemon *);
/* At start: the live rows into the ledger. -1 with why. */
int taskstore_load(struct daemon *, struct ledger *, char *why, size_t len);
/* An ended record not in memory, read into the ledger (a cache entry);
 * NULL when the store has no such row (or there is no store). */
struct ledger_rec *taskstore_fetch(struct daemon *, struct ledger *,
                                   const char *sup, const char *key);
/* The supervisors with a row of this key (at most max). */
size_t taskstore_sups(struct daemon *, const char *key,
                      char sup[][REQUEST_NAME_MAX], size_t max);
/* Whether the store has a row of supervisor sup: 1, 0, or -1 on a read
 * error or without a store. */
int taskstore_has_sup(struct daemon *, const char *sup);
/* Which rows taskstore_each reads, and in which order. */
struct taskstore_filter {
	const char *sup; /* NULL: every supervisor's */
	int state;       /* an enum ledger_state, -1: any */
	bool by_end;     /* in order of ending, else of acceptance */
	bool desc;       /* the newest first */
	bool brief;      /* records without inputs or environment */
};
/* Every row of the filter, as a record that lives for the call, until fn
 * returns true. -1 on a read error or without a store. */
typedef bool taskstore_each_fn(void *arg, const struct ledger_rec *);
int taskstore_each(struct daemon *, const struct taskstore_filter *,
                   taskstore_each_fn *fn, void *arg);

#endif
