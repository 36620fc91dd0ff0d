/*
 * tasks.h - dynamic children in the shell (DESIGN §12): spawns from
 * agentsupctl and from workers, idempotency keys, results, waiters, dead
 * letters, replay and drop, over the task ledger (ledger.h).
 */
#ifndef AGENTSUP_TASKS_H
#define AGENTSUP_TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tree.h"

struct daemon;
struct client;
struct request;
struct spawn_request;
struct spawn_answer;
struct tasks;

/* waits at once: of one connection, and of all (every client's share, so
 * that no connection's waits keep another's out) */
#define TASKS_CLIENT_WAITERS 16
#define TASKS_MAX_WAITERS    (128 * TASKS_CLIENT_WAITERS) /* control.h's */
#define TASKS_MAX_ARGS       1024 /* arguments or variables of one spawn */

struct tasks *tasks_new(struct daemon *);
void tasks_free(struct tasks *);
/* The control commands spawn, wait, dead, replay, drop. */
void tasks_serve(struct client *, struct daemon *, const struct request *);
/* A worker's {t: spawn}: true when the answer is written to *a (its
 * strings live until the next call) for the caller to send; false when it
 * is sent later (with a state store: once the ledger is committed, and in
 * the order of the spawns). */
bool tasks_worker_spawn(struct daemon *, struct node *from,
                        const struct spawn_request *, struct spawn_answer *a);
/* A worker's {t: result}: kept in its task's record. */
void tasks_result(struct daemon *, struct node *, const void *, size_t);
/* A process is being started (ACT_START): a task's restart clears the
 * result of the run before and is saved (any other node: nothing). */
void tasks_started(struct daemon *, struct node *);
/* The process of a task that ended while it ran (a reload cancelled it)
 * is reaped: its checkpoints leave memory now (its end could not release
 * them while the run was attached). */
void tasks_reaped(struct daemon *, const struct node *);
/* An engine event about a task's node (restarting, ended): the pump. */
void tasks_event(struct daemon *, const struct action *);
/* Start again the tasks the store says were pending or running when
 * agentsupd stopped, once their supervisor runs (the pump: cheap when
 * there are none). */
void tasks_resume(struct daemon *);
/* A control client is gone: it waits no more. */
void tasks_client_gone(struct daemon *, struct client *);
/* An operator's stop (or drain) of n, begun: when n is a task's run and
 * there is a state store, its cancellation is stored first and the answer
 * (id) given once it is, true; else false, and the caller answers. */
bool tasks_stop_answer(struct client *, struct daemon *, uint64_t id,
                       const struct node *n);
/* An operator's stop (or drain, cmd its name) of a task by name that has
 * no node: one accepted before agentsupd restarted and waiting to be
 * resumed (its pool not running yet, or full) is cancelled and never
 * runs; answered (once stored) and true, else false. A KEY that more
 * than one pool has is refused as ambiguous (true). */
bool tasks_stop_waiting(struct client *, struct daemon *, uint64_t id,
                        const char *name, const char *cmd);
/* An operator's start, restart or reset of n, begun: the stop it follows
 * is no cancellation any more, and the store says so. */
void tasks_unstopped(struct daemon *, const struct node *n);
/* At start on a state store, whether the checkpoints of path are read
 * into memory: not an ended task's, nor a task's of a pool the config
 * moved or removed since (read when it runs again; ckpt_want_fn; arg the
 * daemon). */
bool tasks_ckpt_wanted(void *d, const char *path);
/* A dynamic supervisor sup had path until now (a reload moved or removed
 * it): a task of it run again elsewhere takes its checkpoints stored
 * there. */
void tasks_pool_was(struct daemon *, const char *sup, const char *path);
/* The paths task n had at its pool's earlier places, the latest first,
 * NULL-terminated (for ckpt_hand); NULL when none (or n is no task).
 * Freed with tasks_paths_free. */
char **tasks_earlier_paths(struct daemon *, const struct node *n);
void tasks_paths_free(char **);
/* An ended task's capture goes (its followers told why). */
void tasks_capture_gone(struct daemon *, const struct node *,
                        const char *capture_name);
/* An ended task's last lines of output by "SUP/KEY" (or KEY), from its
 * record: what `logs` shows once its node is gone ("" if it printed
 * nothing); NULL for no ended task of that name. */
const char *tasks_tail(struct daemon *, const char *name);
/* How many tasks of the pool sup (NULL: of every pool) wait to be resumed
 * (accepted before agentsupd restarted; their pool not running yet, or
 * full): `status` and /metrics show them, who are no node yet. */
size_t tasks_waiting(const struct daemon *, const char *sup);
/* At start on a state store: the ledger read back; the live records are
 * resumed by tasks_resume. -1 with why. */
int tasks_load(struct daemon *, char *why, size_t len);

#endif
