/*
 * tree.h - the supervision engine's public face.
 *
 * Pure: the shell reports what happened (a worker exited, became ready, beat,
 * an operator asked for a stop) with the current time; the engine updates the
 * tree and queues actions (start X, stop Y, wake me at T, exit with 75) that
 * the shell carries out in one place, once per loop turn. It never forks,
 * signals, reads a clock or touches a socket.
 */
#ifndef AGENTSUP_TREE_H
#define AGENTSUP_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "reason.h"
#include "rng.h"

/* A node's state. Workers use every row of the lifecycle table (worker.c);
 * supervisors use stopped, starting, running and stopping. */
enum node_state {
	NODE_STOPPED,  /* not running: never started, exited, or stopped */
	NODE_STARTING, /* spawned, waiting for "ready" / children starting */
	NODE_RUNNING,
	NODE_STOPPING,    /* stop (or drain) sent, waiting for the exit */
	NODE_BACKOFF,     /* failed; its restart waits for its backoff delay */
	NODE_QUARANTINED, /* its circuit is open: not restarted until probed */
	NODE_FAILED,      /* declared permanent: not restarted */
	NODE_EXHAUSTED,   /* its budget is spent: not restarted */
	NODE__STATES
};

/* How a supervisor's stop ends: what it tells its parent. */
enum stop_outcome { OUTCOME_STOPPED, OUTCOME_GAVE_UP, OUTCOME_EXHAUSTED };

enum job_kind { JOB_NONE, JOB_START, JOB_RESTART, JOB_STOP };
enum job_phase { PHASE_STOP, PHASE_START };
/* Stops one child at a time (last-first) or tell them all at once. */
enum job_order { ORDER_SEQUENTIAL, ORDER_TOGETHER };
/* Which children of the range a job touches. */
enum job_select {
	SELECT_RESTARTABLE, /* all but temporary and held children */
	SELECT_ALL,         /* an operator's restart: temporary ones too */
	SELECT_MARKED,      /* a reload: only children marked for it */
	SELECT_WAITING,     /* a group restart's starts, after its wait */
};

/* How a stop goes (DESIGN §9 "graceful by default"). */
enum stop_how {
	STOP_PLAIN,    /* the shutdown sequence; a protocol worker is told to
	                  drain with its shutdown as deadline, not SIGTERM'd */
	STOP_GRACEFUL, /* an operator's or a reload's: a protocol worker
	                  drains (drain_timeout) first, then the sequence */
	STOP_DRAIN,    /* the tree drains (SIGUSR1): drain, or SIGTERM for
	                  workers that never said hello; drain_timeout */
};

/* A child stopped by a group restart whose starts wait (sup.c): for the
 * failed child's backoff (WAIT_CAUSE, that child), or its group's. */
enum group_wait { WAIT_NONE, WAIT_GROUP, WAIT_CAUSE };

/* A supervisor's work in progress: stop children [lo, hi), then (unless
 * JOB_STOP) start them first-last, one settled before the next. */
struct job {
	enum job_kind kind;
	enum job_phase phase;
	enum job_order order;
	enum job_select select;
	enum stop_outcome outcome;
	enum stop_how how; /* how its stops go */
	bool launched;     /* children[cursor] was started in this phase */
	size_t lo, hi, cursor;
	uint64_t not_before; /* its starts wait for the backoff (sup.c) */
	size_t cause;        /* with not_before: the child whose it is */
};

enum circuit_state { CIRCUIT_CLOSED, CIRCUIT_OPEN, CIRCUIT_HALF_OPEN };

/* A child's circuit breaker: failure stamps within the window (a ring of
 * `failures` slots, allocated at the first failure, resized when a reload
 * changes the count) and its open state. */
struct circuit {
	enum circuit_state state;
	unsigned cap; /* the ring's slots */
	uint64_t *stamps;
	unsigned nstamps, stamp0;
	uint64_t open_ms;  /* how long it stays open this time */
	uint64_t probe_at; /* when the half-open probe starts */
};

/* What a node has spent (§10): for a worker, the sum over its finished
 * incarnations of the last values each reported; its running one is added
 * on top by budget.c. Persisted by the state store. */
struct spend {
	uint64_t tokens, steps, wall_ms;
	double cost;
};

/* What a worker said of its coming exit ({t: exit}), kept for 5 s. */
struct declaration {
	enum declared_kind kind;
	uint64_t retry_after_ms;
	uint64_t at; /* when it was said */
	char detail[128];
};

/* What a worker last told us of its progress (hb "progress", "status"). */
#define PROGRESS_STATE_MAX  64
#define PROGRESS_STATUS_MAX 256
struct progress {
	uint64_t steps;
	uint64_t tokens;
	double cost;
	char state[PROGRESS_STATE_MAX + 1]; /* protocol.md: 64 bytes kept */
	uint64_t state_hash; /* of the whole state reported, for loops */
	char status[PROGRESS_STATUS_MAX + 1];
	bool has_steps, has_tokens, has_cost;
	/* fields (PROGRESS_*) last reported by an earlier incarnation: kept
	 * to tell whether the next report moved, shown no more */
	unsigned char carried;
};

/* Which fields a beat carried. */
enum {
	PROGRESS_STEPS = 1,
	PROGRESS_TOKENS = 2,
	PROGRESS_COST = 4,
	PROGRESS_STATE = 8,
	PROGRESS_STATUS = 16,
};

/* What progress.c keeps of a worker that reports progress or is watched
 * for stalls or loops (DESIGN §10): fixed size, allocated at the first
 * need (progress_watch), so a beat costs O(1) and most allocate nothing. */
struct pwatch {
	/* stall */
	uint64_t moved_at;   /* its progress last moved, or it came up */
	uint64_t beat_at;    /* its last beat */
	uint64_t stalled_at; /* nudged for a stall then; 0: not stalled */
	/* loop: hashes of the states of the last steps, newest first, and
	 * for period p the steps in a row whose state equals the one p steps
	 * back */
	uint64_t ring[3];
	unsigned nring;
	unsigned run[3];
	uint64_t steps;       /* the steps of the last beat recorded */
	unsigned loop_period; /* a suspected loop's period, 0: none */
	unsigned loop_steps;  /* steps it went on since it was suspected */
	struct spend inc;     /* its running incarnation's last report */
};

/* What budget.c keeps of a node that has spent something (DESIGN §10):
 * allocated at the first spend (a report, an incarnation's end, a stored
 * row); an idle worker that never ended has none. */
struct account {
	struct spend spend; /* worker: the sum over its finished incarnations
	                       (persisted by the state store) */
	struct spend total; /* all spent but running wall time: a worker's
	                       spend plus its running incarnation's; a
	                       supervisor's spend plus its children's */
	unsigned warned;    /* limits warned of at 80 % (1 << enum limit) */
};

struct session; /* the shell's running instance (session.c) */
struct task;    /* a dynamic child's task (dynamic.h) */

/* What only a supervisor keeps: its job, restart stamps and dynamic
 * children's counters. Allocated with a supervisor's node; a worker's node
 * has none (most nodes are workers). */
struct super {
	struct job job;
	uint64_t *stamps; /* restart times in the window: a ring */
	unsigned nstamps, stamp0;
	unsigned long spawned; /* children made, for SUP/N */
	size_t finished;       /* ended children not yet swept */
	uint64_t group_at;     /* its waiting children's starts are due */
	unsigned long jobs;    /* begun, to tell that one replaced another */
	bool dyn_dirty;        /* in tree.dyn_dirty */
};

/* One supervisor or worker: spec, state machine, counters, shell state.
 * Fields ordered by size (no holes): there is one per worker. */
struct node {
	const struct spec *spec;
	char *path; /* "root/research/fetcher" */
	struct node *parent;
	struct node **children;
	size_t nchildren;
	size_t index;         /* in parent->children */
	struct super *super;  /* supervisor: its own state; worker: NULL */
	unsigned long starts; /* incarnation + 1 */
	uint64_t since_ms;    /* when it entered its state (monotonic) */
	enum node_state state;
	struct reason last; /* why it last stopped */
	struct reason pending_reason;
	bool held;          /* stopped by command: no restart starts it */
	bool held_config;   /* held for `autostart: false`, not by an operator's
	                     * command: not stored, and a reload to true starts
	                     * it */
	bool pending;       /* failed while the parent was busy: handle after */
	bool restart_asked; /* an operator's restart while the parent was
	                     * busy: carried out after its job, as OTP's
	                     * supervisor takes calls one after another */
	bool draining;      /* stopping by drain: its exit is not a failure */
	bool in_run;        /* supervisor: its job loop is on the stack */
	bool marked;        /* a reload restarts (or first starts) it */
	bool removed;       /* taken out by a reload: freed once stopped */
	bool ending; /* worker: stopped for stall, loop or budget: waits */
	unsigned char waiting; /* enum group_wait: its group's starts wait */

	/* worker */
	unsigned failures;                /* consecutive, for backoff */
	enum declared_kind exit_declared; /* what its last exit was declared */
	struct progress *progress;        /* allocated at the first report */
	uint64_t beats;
	uint64_t running_since;  /* when it last became running */
	uint64_t progress_moved; /* when its progress last changed */
	uint64_t backoff_until;
	struct circuit *circuit;      /* NULL until it is needed: closed */
	struct declaration *declared; /* the latest, until used or stale;
	                                 allocated at the first */
	struct account *acct;         /* budget: §10; NULL until it spends */
	uint64_t spawned_at;   /* its running incarnation began (0: none) */
	struct pwatch *pwatch; /* stall, loop: NULL until needed */

	/* the one wake-up it wants (0: none), and its slot in the heap */
	uint64_t wake_at;
	size_t heap_slot;

	/* dynamic children (dynamic.c): a child's task; a child owns its
	 * spec */
	struct task *task;

	/* shell */
	struct session *session;
};

enum action_kind {
	ACT_START, /* spawn this worker */
	ACT_STOP,  /* stop this worker: SIGTERM, its shutdown, SIGKILL;
	              code STOP_GRACEFUL: drain first if it speaks */
	ACT_DRAIN, /* tell this worker to drain, then stop it after
	              drain_timeout */
	ACT_EVENT, /* record an engine decision (event, node, reason) */
	ACT_EXIT,  /* the tree is down: exit with code */
	ACT_NUDGE, /* send the worker {t: nudge}: reason.kind REASON_STALL
	              (value: idle ms; SIGUSR1 too if stall_dump) or
	              REASON_LOOP (value: the period) */
	ACT_FAIL,  /* the engine saw it fail (stall, loop, budget): stop it
	              (code STOP_DRAIN: by a drain first) and report its exit
	              with this reason */
};

enum engine_event {
	EE_RESTARTING,
	EE_GAVE_UP,   /* code 1: a significant child, not the intensity */
	EE_ESCALATED, /* code 1: its parent leaves it stopped (transient) */
	EE_STOPPED,
	EE_BACKOFF,        /* value: the delay in ms */
	EE_QUARANTINED,    /* value: when it will be probed */
	EE_PROBING,        /* its half-open probe starts */
	EE_CIRCUIT_CLOSED, /* the probe passed */
	EE_FAILED,         /* declared permanent */
	EE_EXHAUSTED,      /* budget spent */
	EE_TASK_DONE,      /* a dynamic child's task ended well */
	EE_DEAD_LETTERED,  /* ... will not be retried: a dead letter */
	EE_TASK_CANCELLED, /* ... stopped by an operator */
	EE_STALLED,        /* value: ms since its progress moved */
	EE_LOOPING,        /* value: the period */
	EE_BUDGET_WARNING, /* code: the limit (enum budget_limit) */
	EE_RECYCLED,       /* ran recycle_after: restarted, not a failure */
};

struct action {
	enum action_kind kind;
	struct node *node;
	enum engine_event event;
	struct reason reason;
	int code;
	uint64_t value;
};

struct tree {
	struct node *root;
	uint64_t now;
	bool shutting_down;
	bool draining;
	bool exited; /* ACT_EXIT was queued: nothing more happens */
	/* down for good, exit_code decided: ACT_EXIT waits until what
	 * reloads removed (the graveyard) has stopped too */
	bool ending;
	int exit_code;
	size_t live;            /* workers not STOPPED */
	uint64_t changes;       /* workers' state changes, ever */
	struct node *graveyard; /* removed by a reload, stopping */
	struct action *acts;
	size_t nacts, act0, capacts;
	size_t starts;      /* ACT_STARTs among the queued actions */
	struct rng rng;     /* jitter; seeded by the shell */
	struct node **heap; /* nodes that want a wake-up, earliest first */
	size_t nheap, capheap;
	/* supervisors with ended dynamic children to free (dynamic.c) */
	struct node **dyn_dirty;
	size_t ndirty, capdirty;
};

/* Whether the tree is over: its exit is decided (queued, or waiting for
 * the graveyard), so no command, spawn or reload can change anything. */
static inline bool
tree_over(const struct tree *t)
{
	return t->exited || t->ending;
}

struct tree *tree_new(const struct spec *root);
void tree_free(struct tree *);

/* Events in. Each takes the current monotonic time in ms. */
void tree_start(struct tree *, uint64_t now);
void tree_exited(struct tree *, struct node *, struct reason, uint64_t now);
void tree_ready(struct tree *, struct node *, uint64_t now);
/* The worker declared why it is about to exit ({t: exit}). */
/* What n last declared; an empty declaration when it never did. */
const struct declaration *tree_declaration(const struct node *);
/* A declaration holds for the exit that follows within this long (§9). */
#define DECLARATION_TTL_MS 5000
/* What n declared for an exit now: its declaration's kind while it holds,
 * else DECLARED_NONE. */
enum declared_kind tree_declared(const struct node *, uint64_t now);
void tree_declare(struct tree *, struct node *, const struct declaration *,
                  uint64_t now);
/* Whether field (PROGRESS_*) of p is this incarnation's to show. */
static inline bool
progress_shown(const struct progress *p, unsigned field)
{
	bool has = field == PROGRESS_STEPS    ? p->has_steps
	           : field == PROGRESS_TOKENS ? p->has_tokens
	           : field == PROGRESS_COST   ? p->has_cost
	           : field == PROGRESS_STATE  ? p->state[0] != '\0'
	                                      : p->status[0] != '\0';
	return has && !(p->carried & field);
}
/* A new incarnation: what the last one reported is shown no more (status,
 * metrics), but a report equal to it is still no progress (a crash loop
 * stuck at step 7 is not reset by reaching step 7 again). */
void tree_progress_forget(struct node *);
/* A heartbeat, carrying the fields (PROGRESS_*) of upd it names. */
void tree_beat(struct tree *, struct node *, const struct progress *upd,
               unsigned fields, uint64_t now);
void tree_shutdown(struct tree *, uint64_t now);
void tree_drain(struct tree *, uint64_t now);

/* Time: the earliest wake-up the engine wants (0: none), and the call
 * that delivers it. */
uint64_t tree_next_wake(const struct tree *);
void tree_tick(struct tree *, uint64_t now);

/* Actions out, first queued first. */
bool tree_next_action(struct tree *, struct action *);
/* Whether another worker's start is queued behind the actions taken: a
 * burst (a bring-up, a group restart) the shell need not pause within. */
static inline bool
tree_starts_queued(const struct tree *t)
{
	return t->starts > 0;
}
/* Free nodes that reloads removed and that have stopped: only with no
 * action queued (an action may point at them). True when none is left, so
 * the old specs they pointed into may be freed too. */
bool tree_sweep(struct tree *);

/* What the state store kept of a worker: its spend, its circuit's state
 * and open period, and (open) the time it still had to stay open when
 * agentsupd stopped, as the shell worked it out from the stored wall-clock
 * deadline (0: it has passed). */
struct tree_saved {
	struct spend spend;
	enum circuit_state circuit;
	uint64_t open_ms, open_left_ms;
};

/* At start, before tree_start (restore.c): put a worker's saved facts
 * back; an open circuit stays open (quarantined) for its time left, else
 * it is half-open and the first start is its probe. */
void tree_restore(struct tree *, struct node *, const struct tree_saved *,
                  uint64_t now);

/* Looking things up. */
struct node *tree_find(struct tree *, const char *name_or_path);
const char *node_state_name(enum node_state);
const char *circuit_state_name(enum circuit_state);
/* A node's circuit as read: a closed one with no count when it has none
 * (most never fail: allocated at the first need, circuit.c). */
extern const struct circuit circuit_none;
static inline const struct circuit *
node_circuit(const struct node *n)
{
	return n->circuit != NULL ? n->circuit : &circuit_none;
}
/* A node's account as read: nothing spent when it has none. */
extern const struct account account_none;
static inline const struct account *
node_account(const struct node *n)
{
	return n->acct != NULL ? n->acct : &account_none;
}
/* Its account to be written: allocated at the first need (budget.c). */
struct account *account_own(struct node *);
/* Whether nothing at all was spent (budget.c). */
bool spend_none(const struct spend *);
/* Whether a node holds no process and waits for nothing to finish. */
bool node_down(const struct node *);
/* Whether the node is down for good without an operator having asked: a
 * supervisor that gave up, a worker quarantined, failed or exhausted (a
 * health check's "not as it should be"). */
bool node_unhealthy(const struct node *);

#endif
