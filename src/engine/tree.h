/*
 * tree.h - the supervision engine.
 *
 * Pure: the shell reports what happened (a worker exited, became ready, an
 * operator asked for a stop) with the current time; the engine updates the
 * tree and queues actions (start X, stop Y, exit with 75) for the shell to
 * carry out. It never forks, signals, reads a clock or touches a socket.
 */
#ifndef AGENTSUP_TREE_H
#define AGENTSUP_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum node_state {
	NODE_STOPPED,  /* not running: never started, exited, or stopped */
	NODE_STARTING, /* spawned, waiting for "ready" / children starting */
	NODE_RUNNING,
	NODE_STOPPING, /* stop (or drain) sent, waiting for the exit */
};

enum reason_kind {
	REASON_NONE,
	REASON_EXIT,          /* code = exit status */
	REASON_SIGNAL,        /* code = signal number */
	REASON_HANG,          /* missed its heartbeat deadline */
	REASON_START_TIMEOUT, /* no "ready" within start_timeout */
	REASON_PROTOCOL,      /* broke the wire protocol */
	REASON_SPAWN,         /* could not be forked: code = errno */
	REASON_GAVE_UP,       /* a supervisor exceeded its intensity */
};

struct reason {
	enum reason_kind kind;
	int code;
};

/* How a supervisor's stop ends: what it tells its parent. */
enum stop_outcome { OUTCOME_STOPPED, OUTCOME_GAVE_UP };

enum job_kind { JOB_NONE, JOB_START, JOB_RESTART, JOB_STOP };

/* A supervisor's work in progress: stop children [lo, hi) last-first, then
 * (unless JOB_STOP) start them first-last, one settled before the next. */
struct job {
	enum job_kind kind;
	bool starting; /* in the start phase */
	bool launched; /* children[cursor] was started in this phase */
	bool parallel; /* a drain: every child told at once, not in turn */
	bool forced;   /* an operator's restart: temporary children too */
	bool marked;   /* a reload: only children with `marked` set */
	enum stop_outcome outcome;
	size_t lo, hi, cursor;
};

struct worker; /* the shell's running instance (proc.c) */

/* One supervisor or worker: spec, state machine, counters, shell state. */
struct node {
	const struct spec *spec;
	char *path; /* "root/research/fetcher" */
	struct node *parent;
	struct node **children;
	size_t nchildren;
	size_t index; /* in parent->children */
	enum node_state state;
	bool held;          /* stopped by command: no restart starts it */
	bool pending;       /* failed while the parent was busy: handle after */
	bool draining;      /* stopping by drain: its exit is not a failure */
	bool in_run;        /* supervisor: its job loop is on the stack */
	bool marked;        /* a reload restarts (or first starts) it */
	struct reason last; /* why it last stopped */
	struct reason pending_reason;
	unsigned long starts; /* incarnation + 1 */
	uint64_t since_ms;    /* when it entered its state (monotonic) */

	/* supervisor */
	struct job job;
	uint64_t *
	        stamps; /* restart times in the window, a ring of intensity+1 */
	unsigned nstamps, stamp0;

	/* shell */
	struct worker *worker;
};

enum action_kind {
	ACT_START, /* spawn this worker */
	ACT_STOP,  /* stop this worker: SIGTERM, its shutdown, SIGKILL */
	ACT_DRAIN, /* tell this worker to drain, then stop it after
	              drain_timeout */
	ACT_EVENT, /* record an engine decision (event, node, reason) */
	ACT_EXIT,  /* the tree is down: exit with code */
};

enum engine_event { EE_RESTARTING, EE_GAVE_UP, EE_ESCALATED, EE_STOPPED };

struct action {
	enum action_kind kind;
	struct node *node;
	enum engine_event event;
	struct reason reason;
	int code;
};

struct tree {
	struct node *root;
	uint64_t now;
	bool shutting_down;
	bool draining;
	bool exited;            /* ACT_EXIT was queued: nothing more happens */
	size_t live;            /* workers not STOPPED */
	struct node *graveyard; /* removed by a reload, stopping */
	struct action *acts;
	size_t nacts, act0, capacts;
};

struct tree *tree_new(const struct spec *root);
void tree_free(struct tree *);

/* Events in. Each takes the current monotonic time in ms. */
void tree_start(struct tree *, uint64_t now);
void tree_exited(struct tree *, struct node *, struct reason, uint64_t now);
void tree_ready(struct tree *, struct node *, uint64_t now);
void tree_shutdown(struct tree *, uint64_t now);
void tree_drain(struct tree *, uint64_t now);
int tree_command_stop(struct tree *, struct node *, uint64_t now);
int tree_command_start(struct tree *, struct node *, uint64_t now);
int tree_command_restart(struct tree *, struct node *, uint64_t now);
int tree_command_drain(struct tree *, struct node *, uint64_t now);

/* What a reload did, one line each list ("a, b"), for the event. */
struct reload_report {
	char added[512], removed[512], restarted[512], updated[512];
	unsigned nadded, nremoved, nrestarted, nupdated;
};

/* Apply a new, valid spec tree as a diff; -1 (nothing changed) while busy. */
int tree_reload(struct tree *, const struct spec *root, uint64_t now,
                struct reload_report *, const char **why);
/* Free stopped nodes that reloads removed; true when none is left running
 * (so the old specs they pointed into may be freed). */
bool tree_graveyard_sweep(struct tree *);

/* Actions out, first queued first. */
bool tree_next_action(struct tree *, struct action *);

/* Looking things up. */
struct node *tree_find(struct tree *, const char *name_or_path);
unsigned tree_window_restarts(const struct node *, uint64_t now);
bool reason_abnormal(struct reason);
void reason_format(struct reason, char *, size_t);
const char *node_state_name(enum node_state);

#endif
