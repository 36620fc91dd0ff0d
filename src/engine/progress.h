/*
 * progress.h - what an agent is doing (DESIGN §10): stalls, loops, budgets
 * and recycling, in the pure engine. The shell reads spend and suspicions
 * for status and metrics; the engine's own files call the hooks below.
 */
#ifndef AGENTSUP_PROGRESS_H
#define AGENTSUP_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "tree.h"

/* The limits of a budget, in the order status and metrics show them. */
enum budget_limit {
	BUDGET_TOKENS,
	BUDGET_COST,
	BUDGET_STEPS,
	BUDGET_WALL,
	BUDGET__LIMITS
};

/* --- for the shell (status, metrics, the state store) --------------------- */

/* All a node has spent, its running incarnations' wall time included: a
 * worker's own, a supervisor's subtree's (a walk of it). */
void budget_spend(const struct node *, uint64_t now, struct spend *out);
const char *budget_limit_name(enum budget_limit);
/* A limit (0: none) and a spend as numbers, for one limit. */
double budget_limit_of(const struct budget_spec *, enum budget_limit);
double budget_spend_of(const struct spend *, enum budget_limit);
/* Every node's total summed again from workers' `spend` (what their
 * finished incarnations spent): tree_start() does it, so spend the state
 * store puts back before it counts; call it after restoring later. */
void budget_recount(struct tree *);
/* What progress.c keeps of a worker: its own, or zeros when it has none
 * yet. The spend its running incarnation last reported is `inc`. */
const struct pwatch *progress_pwatch(const struct node *);
/* ms since a stalled worker's progress last moved; 0 when not stalled. */
uint64_t progress_stalled_ms(const struct node *, uint64_t now);

/* --- for the engine's own files ------------------------------------------ */

/* worker.c: it was spawned; it became running; it exited; it was woken. */
void budget_spawned(struct tree *, struct node *);
/* A node spent already when it starts running (spend restored over a limit
 * lowered since, a limit a reload lowered while it waited): judged at the
 * next tick, as a report would have it; nothing else would before it
 * reports again. */
void budget_judge_soon(struct tree *, struct node *);
void progress_running(struct tree *, struct node *);
void budget_ended(struct tree *, struct node *);
void progress_woken(struct tree *, struct node *);
/* tree.c: a beat (fields 0: a bare one), after progress was updated. */
void progress_beat(struct tree *, struct node *, const struct progress *,
                   unsigned fields, bool moved);
/* budget.c for progress.c: spend counted from a beat; the worker's own
 * limits judged at a wake-up (its wall time, and a limit a reload lowered
 * below its spend); when its wall needs judging next (0: never). */
void budget_beat(struct tree *, struct node *, const struct progress *,
                 unsigned fields);
bool budget_woken_judge(struct tree *, struct node *);
uint64_t budget_wall_due(const struct node *);
/* wake.c: a supervisor's wake-up (its wall budget). */
void budget_sup_woken(struct tree *, struct node *);
/* sup.c: a supervisor stopped because its budget is spent. */
void budget_sup_exhausted(struct tree *, struct node *);
/* command.c: `reset` clears the spend of a subtree and makes its
 * exhausted supervisors startable (starting those whose parent runs). */
void budget_reset(struct tree *, struct node *);
/* reload.c: the spec changed; true when the node was exhausted and its
 * new limits are above its spend: it is to be started again. */
bool budget_reloaded(struct tree *, struct node *);
/* A running worker's next wake-up from its stall window, wall budget and
 * recycling. */
void progress_rearm(struct tree *, struct node *);
/* The same after a reload changed its keys: a recycle_after now below its
 * uptime recycles it at the next tick. */
void progress_reloaded(struct tree *, struct node *);
/* A worker's struct pwatch, allocated at the first need (as if made when
 * it came up). */
struct pwatch *progress_watch(struct node *);
/* Ask for a wake-up at `at` unless an earlier one is already asked for. */
void progress_wake_by(struct tree *, struct node *, uint64_t at);
/* The hash loop detection compares: of a state's len bytes, all of them. */
uint64_t progress_state_hash(const char *s, size_t len);

#endif
