/*
 * engine.h - what the engine's files share among themselves (private: the
 * shell includes tree.h, command.h and reload.h, never this).
 */
#ifndef AGENTSUP_ENGINE_H
#define AGENTSUP_ENGINE_H

#include "tree.h"

/* tree.c: the action queue and node bookkeeping. */
void tree_push(struct tree *, struct action);
void tree_event(struct tree *, enum engine_event, struct node *, struct reason);
/* The same with a value the event carries (a delay, a count), fixed now. */
void tree_event_value(struct tree *, enum engine_event, struct node *,
                      struct reason, uint64_t value);
void tree_set_state(struct tree *, struct node *, enum node_state);
struct node *tree_node_new(const struct spec *, struct node *parent,
                           size_t index);
/* Free a node and its subtree (no action may point at it). */
void tree_node_free(struct node *);
/* The tree is down for good: ACT_EXIT with code once the graveyard has
 * stopped too (at once when it is empty); then, each time a node of the
 * graveyard settles, whether it has. */
void tree_exit(struct tree *, int code);
void tree_exit_when_buried(struct tree *);
/* What n declared for the exit now being handled, if fresh, kept as its
 * exit_declared; used once (a later exit is not covered by it). */
enum declared_kind tree_declared_take(struct tree *, struct node *);
/* Preorder successor of n within the subtree of top, or NULL. */
struct node *tree_walk_next(const struct node *top, const struct node *n);

/* wake.c: the one wake-up a node wants (0: none). */
void wake_set(struct tree *, struct node *, uint64_t at);

/* worker.c: the lifecycle table's inputs. */
void worker_start(struct tree *, struct node *);
void worker_stop(struct tree *, struct node *, enum stop_how);
void worker_exited(struct tree *, struct node *, struct reason);
void worker_ready(struct tree *, struct node *);
void worker_force(struct tree *, struct node *);
void worker_woken(struct tree *, struct node *);
/* Enter a state that holds no process: backoff, quarantined, failed,
 * exhausted (strategy.c decides which). */
void worker_park(struct tree *, struct node *, enum node_state,
                 uint64_t wake_at);

/* sup.c: a supervisor's job runner. */
void sup_start(struct tree *, struct node *);
void sup_stop(struct tree *, struct node *, enum stop_how);
void sup_begin_stop(struct tree *, struct node *, enum stop_outcome,
                    enum stop_how);
void sup_begin_job(struct tree *, struct node *, struct job);
void sup_run(struct tree *, struct node *);
/* A supervisor's wake-up: its waiting children's starts may be due. */
void sup_woken(struct tree *, struct node *);
/* The starts a group restart put off, now, in order (an operator's start
 * skips every wait); nothing if the supervisor is busy or none waits. */
void sup_start_waiting(struct tree *, struct node *);
/* Whether some child of s waits for its group's starts. */
bool sup_group_waits(const struct node *s);
/* Its supervisor's restart job over one child: stop it (or wait for the
 * stop under way), then start it; never counted toward intensity. */
void sup_restart_child(struct tree *, struct node *c);
/* A child reached the state its supervisor asked for (or stopped). */
void sup_child_settled(struct tree *, struct node *sup);

/* reload.c: a worker a reload moved keeps its name; its new place waits
 * until the removed one is down, so one agent never runs twice (with one
 * capture, one checkpoint). */
bool reload_namesake_alive(const struct tree *, const struct node *c);
/* A removed worker is down: the job waiting to start its namesake goes on. */
void reload_buried_down(struct tree *, const struct node *n);

/* strategy.c: what a supervisor does about a failed child. */
void strategy_child_failed(struct tree *, struct node *sup, struct node *c,
                           struct reason);
void strategy_handle_pending(struct tree *, struct node *sup);
/* The pending failure of c decided now (sup has no job). */
void strategy_decide_pending(struct tree *, struct node *sup, struct node *c);
/* Whether the parent of c, a supervisor that gave up, leaves it stopped
 * (transient, not significant) rather than handling a failure. */
bool strategy_left_stopped(const struct node *c);
/* A child whose budget is spent: parked exhausted, its supervisor going on
 * (or giving up if it is significant). */
void strategy_exhausted(struct tree *, struct node *c);

/* Either kind of node. */
void node_start(struct tree *, struct node *);
void node_stop(struct tree *, struct node *, enum stop_how);

static inline bool
node_is_worker(const struct node *n)
{
	return n->spec->kind == KIND_WORKER;
}

#endif
