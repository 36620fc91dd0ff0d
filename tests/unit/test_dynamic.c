/*
 * test_dynamic.c - dynamic children (DESIGN §12) in the engine, driven by a
 * fake shell as in test_tree.c; the template keys of the config; and the
 * memory ledger's bounds.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"

#include "command.h"
#include "config.h"
#include "dynamic.h"
#include "ledger.h"
#include "reload.h"
#include "tree.h"

struct run {
	struct config *cfg;
	struct config *old; /* the one before a reload: removed nodes' specs */
	struct tree *t;
	char log[8192];
	bool obedient;
	uint64_t now;
};

/* The fake shell: actions as lines, then the sweep the pump does. */
static void
pump(struct run *r)
{
	static const char *ev[] = {
	        "restarting", "gave_up",     "escalated", "stopped",
	        "backoff",    "quarantined", "probing",   "circuit_closed",
	        "failed",     "exhausted",   "task_done", "dead_lettered",
	        "cancelled",  "stalled",     "looping",   "budget_warning"};
	struct action a;

	while (tree_next_action(r->t, &a)) {
		switch (a.kind) {
		case ACT_START:
			logf_(r, "start %s\n", a.node->path);
			break;
		case ACT_STOP:
		case ACT_DRAIN:
			logf_(r, "stop %s\n", a.node->path);
			if (r->obedient)
				tree_exited(
				        r->t, a.node,
				        (struct reason){.kind = REASON_SIGNAL,
				                        .code = 15},
				        r->now);
			break;
		case ACT_EVENT:
			if (a.event != EE_STOPPED && a.event != EE_BACKOFF)
				logf_(r, "%s %s\n",
				      (size_t)a.event < sizeof ev / sizeof *ev
				              ? ev[a.event]
				              : "other",
				      a.node->path);
			break;
		case ACT_EXIT:
			logf_(r, "exit %d\n", a.code);
			break;
		default: /* nudges, progress failures: not used here */
			break;
		}
	}
	dynamic_sweep(r->t);
	tree_sweep(r->t);
}

static struct run *
run_new(const char *yaml)
{
	struct run *r = calloc(1, sizeof *r);

	r->cfg = load_yaml(yaml);
	r->t = tree_new(r->cfg->root);
	r->obedient = true;
	tree_start(r->t, r->now);
	pump(r);
	r->log[0] = '\0';
	return r;
}

static void
run_free(struct run *r)
{
	tree_free(r->t); /* before the configs: its nodes point into them */
	config_free(r->cfg);
	config_free(r->old);
	free(r);
}

/* A reload to yaml, applied; its report in *rep (the caller frees it).
 * The config before is kept in r->old until the next reload or the end. */
static void
reload_to(struct run *r, const char *yaml, struct reload_report *rep)
{
	struct config *cfg = load_yaml(yaml);
	const char *why;

	assert_int_equal(reload_apply(r->t, cfg->root, r->now, rep, &why), 0);
	config_free(r->old);
	r->old = r->cfg;
	r->cfg = cfg;
}

static struct node *
N(struct run *r, const char *name)
{
	struct node *n = tree_find(r->t, name);

	assert_non_null(n);
	return n;
}

static struct node *
spawn(struct run *r, const char *key, enum spawn_refusal want)
{
	char *args[] = {"--task", (char *)key, NULL};
	enum spawn_refusal why = SPAWN_OK;
	struct node *c;

	r->log[0] = '\0';
	c = dynamic_spawn(r->t, N(r, "pool"), key, args, NULL, r->now, &why);
	assert_int_equal(why, want);
	pump(r);
	return c;
}

static void
exit_with(struct run *r, const char *path, int code)
{
	r->log[0] = '\0';
	tree_exited(r->t, N(r, path),
	            (struct reason){.kind = REASON_EXIT, .code = code}, r->now);
	pump(r);
}

static void
expect(struct run *r, const char *want)
{
	if (strcmp(r->log, want) != 0)
		fprintf(stderr, "--- want\n%s--- got\n%s---\n", want, r->log);
	assert_string_equal(r->log, want);
}

#define POOL                                                                   \
	"supervisor: root\nchildren:\n"                                        \
	"  - supervisor: pool\n    max_children: 3\n    intensity: 5\n"        \
	"    template: {command: [work, --x], backoff: none}\n"

static void
test_spawn_done_swept(void **state)
{
	struct run *r = run_new(POOL);
	struct node *c;

	(void)state;
	c = spawn(r, "a", SPAWN_OK);
	expect(r, "start root/pool/a\n");
	assert_string_equal(c->spec->argv[0], "work");
	assert_string_equal(c->spec->argv[2], "--task");
	assert_string_equal(c->spec->argv[3], "a");
	assert_int_equal(c->spec->pol->restart, RESTART_TRANSIENT);
	assert_ptr_equal(dynamic_find(N(r, "pool"), "a"), c);
	exit_with(r, "root/pool/a", 0);
	expect(r, "task_done root/pool/a\n");
	assert_int_equal(N(r, "pool")->nchildren, 0); /* freed */
	assert_null(dynamic_find(N(r, "pool"), "a"));
	run_free(r);
}

static void
test_max_children_refused_with_count(void **state)
{
	struct run *r = run_new(POOL);

	(void)state;
	spawn(r, "a", SPAWN_OK);
	spawn(r, "b", SPAWN_OK);
	spawn(r, "c", SPAWN_OK);
	assert_null(spawn(r, "d", SPAWN_MAX_CHILDREN));
	expect(r, "");
	assert_int_equal(dynamic_count(N(r, "pool")), 3);
	exit_with(r, "root/pool/b", 0); /* room again */
	spawn(r, "d", SPAWN_OK);
	expect(r, "start root/pool/d\n");
	run_free(r);
}

static void
test_refusals(void **state)
{
	struct run *r = run_new(POOL "  - {worker: w, command: x}\n");
	enum spawn_refusal why;

	(void)state;
	assert_null(
	        dynamic_spawn(r->t, N(r, "root"), "k", NULL, NULL, 0, &why));
	assert_int_equal(why, SPAWN_NOT_DYNAMIC);
	command_stop(r->t, N(r, "pool"), 0);
	pump(r);
	assert_null(spawn(r, "a", SPAWN_NOT_RUNNING));
	assert_string_equal(dynamic_refusal_name(SPAWN_MAX_CHILDREN),
	                    "max_children");
	run_free(r);
}

/* A spawned key never shadows a configured name in lookups. */
static void
test_key_does_not_shadow_names(void **state)
{
	struct run *r = run_new(POOL "  - {worker: w, command: x}\n");
	struct node *c;

	(void)state;
	c = spawn(r, "w", SPAWN_OK);
	assert_ptr_equal(tree_find(r->t, "pool/w"), c);
	assert_ptr_equal(tree_find(r->t, "root/pool/w"), c);
	assert_ptr_equal(tree_find(r->t, "w"), N(r, "root/w"));
	c = spawn(r, "pool", SPAWN_OK);
	assert_ptr_equal(tree_find(r->t, "pool"), N(r, "root/pool"));
	assert_ptr_equal(tree_find(r->t, "pool/pool"), c);
	run_free(r);
}

static void
test_failure_restarts_then_permanent_is_dead(void **state)
{
	struct run *r = run_new(POOL);
	struct declaration d = {.kind = DECLARED_PERMANENT};

	(void)state;
	spawn(r, "a", SPAWN_OK);
	exit_with(r, "root/pool/a", 1);
	expect(r, "restarting root/pool/a\nstart root/pool/a\n");
	tree_declare(r->t, N(r, "root/pool/a"), &d, r->now);
	exit_with(r, "root/pool/a", 1);
	expect(r, "failed root/pool/a\ndead_lettered root/pool/a\n");
	assert_int_equal(N(r, "pool")->nchildren, 0);
	assert_int_equal(N(r, "pool")->state, NODE_RUNNING);
	run_free(r);
}

static void
test_intensity_spent_on_it_is_dead(void **state)
{
	struct run *r = run_new("supervisor: root\nintensity: 10\nchildren:\n"
	                        "  - supervisor: pool\n    intensity: 1\n"
	                        "    template: {command: w, backoff: none}\n");

	(void)state;
	spawn(r, "a", SPAWN_OK);
	spawn(r, "b", SPAWN_OK);
	exit_with(r, "root/pool/a", 1);
	expect(r, "restarting root/pool/a\nstart root/pool/a\n");
	exit_with(r, "root/pool/a", 1);
	/* a is the dead letter; b is stopped and comes back with pool */
	expect(r, "dead_lettered root/pool/a\ngave_up root/pool\n"
	          "stop root/pool/b\nescalated root/pool\n"
	          "restarting root/pool\nstart root/pool/b\n");
	assert_int_equal(N(r, "pool")->nchildren, 1);
	run_free(r);
}

static void
test_circuit_open_is_dead(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nchildren:\n"
	                "  - supervisor: pool\n    intensity: 100\n"
	                "    template: {command: w, backoff: none,\n"
	                "               circuit: {failures: 2, window: 1m}}\n");

	(void)state;
	spawn(r, "a", SPAWN_OK);
	exit_with(r, "root/pool/a", 1);
	exit_with(r, "root/pool/a", 1);
	expect(r, "quarantined root/pool/a\ndead_lettered root/pool/a\n");
	assert_int_equal(tree_next_wake(r->t), 0); /* no probe comes */
	run_free(r);
}

#define TEMPORARY_POOL                                                         \
	"supervisor: root\nchildren:\n  - supervisor: pool\n"                  \
	"    template: {command: w, restart: temporary}\n"

static void
test_temporary_failure_is_dead(void **state)
{
	struct run *r = run_new(TEMPORARY_POOL);

	(void)state;
	spawn(r, "a", SPAWN_OK);
	exit_with(r, "root/pool/a", 2);
	expect(r, "dead_lettered root/pool/a\n");
	run_free(r);
}

/* A task of a `restart: temporary` pool whose start failed for want of
 * descriptors or processes never ran: it is started again after a
 * backoff, not dead-lettered "spawn:EMFILE" for good (an SRE's trial). */
static void
test_temporary_task_not_started_for_exhaustion_is_retried(void **state)
{
	struct run *r = run_new(TEMPORARY_POOL);

	(void)state;
	spawn(r, "a", SPAWN_OK);
	r->log[0] = '\0';
	tree_exited(r->t, N(r, "root/pool/a"),
	            (struct reason){.kind = REASON_SPAWN, .code = EMFILE},
	            r->now);
	pump(r);
	expect(r, "restarting root/pool/a\n");
	assert_int_equal(N(r, "root/pool/a")->state, NODE_BACKOFF);
	r->now = tree_next_wake(r->t);
	r->log[0] = '\0';
	tree_tick(r->t, r->now);
	pump(r);
	expect(r, "start root/pool/a\n");
	/* its own failure (it ran) is a temporary child's end as before */
	exit_with(r, "root/pool/a", 2);
	expect(r, "dead_lettered root/pool/a\n");
	run_free(r);
}

static void
test_operator_stop_cancels(void **state)
{
	struct run *r = run_new(POOL);

	(void)state;
	spawn(r, "a", SPAWN_OK);
	r->log[0] = '\0';
	command_stop(r->t, N(r, "root/pool/a"), r->now);
	pump(r);
	expect(r, "stop root/pool/a\ncancelled root/pool/a\n");
	assert_int_equal(N(r, "pool")->nchildren, 0);
	run_free(r);
}

/* A task waiting out its backoff (no process) stopped or drained by an
 * operator: it stayed in the tree "stopped" with its record live for
 * good, a `wait` never answered and its key taken (found in a trial). */
static void
test_operator_stop_in_backoff_cancels(void **state)
{
	for (int drain = 0; drain <= 1; drain++) {
		struct run *r = run_new(
		        "supervisor: root\nchildren:\n  - supervisor: pool\n"
		        "    intensity: 50\n"
		        "    template: {command: w, backoff: {initial: 5s}}\n");

		(void)state;
		spawn(r, "a", SPAWN_OK);
		exit_with(r, "root/pool/a", 1); /* the first: at once */
		exit_with(r, "root/pool/a", 1);
		assert_int_equal(N(r, "root/pool/a")->state, NODE_BACKOFF);
		r->log[0] = '\0';
		if (drain)
			command_drain(r->t, N(r, "root/pool/a"), r->now);
		else
			command_stop(r->t, N(r, "root/pool/a"), r->now);
		pump(r);
		expect(r, "cancelled root/pool/a\n");
		assert_int_equal(N(r, "pool")->nchildren, 0);
		assert_int_equal(tree_next_wake(r->t), 0); /* no restart */
		run_free(r);
	}
}

static void
test_shutdown_does_not_end_tasks(void **state)
{
	struct run *r = run_new(POOL);

	(void)state;
	spawn(r, "a", SPAWN_OK);
	r->log[0] = '\0';
	tree_shutdown(r->t, r->now);
	pump(r);
	expect(r, "stop root/pool/a\nexit 0\n");
	assert_int_equal(N(r, "root/pool/a")->task->end, TASK_END_NONE);
	run_free(r);
}

static void
declare_done(struct run *r, const char *path)
{
	struct declaration d = {.kind = DECLARED_DONE};

	tree_declare(r->t, N(r, path), &d, r->now);
}

static void
exit_by_signal(struct run *r, const char *path)
{
	r->log[0] = '\0';
	tree_exited(r->t, N(r, path),
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, r->now);
	pump(r);
}

/* A task that declared `done` as its pool's spent budget drained it had
 * finished its work: it ended done (its record stayed pending, and a reset
 * of the pool ran it again); one the drain cut short waits for the reset. */
static void
test_done_during_a_budget_drain(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - supervisor: pool\n"
	                        "    budget: {tokens: 1000}\n"
	                        "    template: {command: w, backoff: none}\n");
	struct progress p = {.tokens = 600};

	(void)state;
	spawn(r, "a", SPAWN_OK);
	spawn(r, "b", SPAWN_OK);
	r->obedient = false;
	tree_beat(r->t, N(r, "root/pool/a"), &p, PROGRESS_TOKENS, r->now);
	tree_beat(r->t, N(r, "root/pool/b"), &p, PROGRESS_TOKENS, r->now);
	r->log[0] = '\0';
	pump(r);
	expect(r, "budget_warning root/pool\nstop root/pool/b\n"
	          "stop root/pool/a\n");
	declare_done(r, "root/pool/a");
	exit_with(r, "root/pool/a", 0);
	expect(r, "task_done root/pool/a\n");
	exit_by_signal(r, "root/pool/b");
	expect(r, "exhausted root/pool\n");
	assert_int_equal(N(r, "root/pool/b")->task->end, TASK_END_NONE);
	assert_null(dynamic_find(N(r, "pool"), "a"));
	assert_int_equal(command_reset(r->t, N(r, "pool"), r->now).kind,
	                 REFUSED_NONE);
	r->log[0] = '\0';
	pump(r);
	expect(r, "start root/pool/b\n");
	run_free(r);
}

/* The same on shutdown (and a drain of the tree): `done` declared is the
 * task's end; an exit 0 without it is not (a SIGTERM'd process may exit
 * 0), nor is `done` in a `restart: permanent` pool (never an end there):
 * both are resumed at the next start. */
static void
test_done_during_shutdown(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nchildren:\n"
	                "  - supervisor: pool\n"
	                "    template: {command: w, backoff: none}\n"
	                "  - supervisor: perm\n"
	                "    template: {command: w, restart: permanent}\n");
	enum spawn_refusal why;

	(void)state;
	spawn(r, "a", SPAWN_OK);
	spawn(r, "b", SPAWN_OK);
	dynamic_spawn(r->t, N(r, "perm"), "c", NULL, NULL, r->now, &why);
	pump(r);
	r->obedient = false;
	tree_shutdown(r->t, r->now);
	pump(r);
	declare_done(r, "root/pool/a");
	exit_with(r, "root/pool/a", 0);
	expect(r, "task_done root/pool/a\n");
	exit_with(r, "root/pool/b", 0);
	expect(r, "");
	declare_done(r, "root/perm/c");
	exit_with(r, "root/perm/c", 0);
	expect(r, "exit 0\n");
	assert_int_equal(N(r, "root/pool/b")->task->end, TASK_END_NONE);
	assert_int_equal(N(r, "root/perm/c")->task->end, TASK_END_NONE);
	run_free(r);
}

/* An operator's stop that finds the task finishing: done, not cancelled
 * (its result is the task's); killed without declaring, cancelled. */
static void
test_done_under_an_operator_stop(void **state)
{
	struct run *r = run_new(POOL);

	(void)state;
	spawn(r, "a", SPAWN_OK);
	spawn(r, "b", SPAWN_OK);
	r->obedient = false;
	command_stop(r->t, N(r, "root/pool/a"), r->now);
	command_stop(r->t, N(r, "root/pool/b"), r->now);
	pump(r);
	declare_done(r, "root/pool/a");
	exit_by_signal(r, "root/pool/a");
	expect(r, "task_done root/pool/a\n");
	exit_by_signal(r, "root/pool/b");
	expect(r, "cancelled root/pool/b\n");
	run_free(r);
}

/* A task that ends on its own with `done` while the tree stops, before its
 * stop reached it (its pool is stopped last): done too. */
static void
test_done_on_its_own_during_shutdown(void **state)
{
	struct run *r = run_new("supervisor: root\nstrategy: one_for_all\n"
	                        "children:\n  - supervisor: pool\n"
	                        "    template: {command: w}\n"
	                        "  - {worker: w, command: x}\n");

	(void)state;
	spawn(r, "a", SPAWN_OK);
	r->obedient = false;
	r->log[0] = '\0';
	tree_shutdown(r->t, r->now);
	pump(r);
	expect(r, "stop root/w\n");
	declare_done(r, "root/pool/a");
	exit_with(r, "root/pool/a", 0);
	expect(r, "task_done root/pool/a\n");
	run_free(r);
}

/* A task that said `done` and exited while its pool ran a job waits for
 * the job to be decided; a stop of the pool that calls the job off ended
 * it all the same (it was started again with the pool). */
static void
test_done_pending_when_the_pool_stops(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nchildren:\n  - supervisor: pool\n"
	                "    template: {command: w, start_timeout: 5s}\n");

	(void)state;
	spawn(r, "a", SPAWN_OK);
	tree_ready(r->t, N(r, "root/pool/a"), r->now);
	spawn(r, "b", SPAWN_OK);
	command_restart(r->t, N(r, "pool"), r->now); /* a job: start a, b */
	pump(r);
	assert_int_not_equal(N(r, "pool")->super->job.kind, JOB_NONE);
	declare_done(r, "root/pool/a");
	exit_with(r, "root/pool/a", 0); /* decided once b is ready */
	expect(r, "start root/pool/b\n");
	r->log[0] = '\0';
	command_stop(r->t, N(r, "pool"), r->now);
	pump(r);
	expect(r, "task_done root/pool/a\nstop root/pool/b\n");
	command_start(r->t, N(r, "pool"), r->now);
	r->log[0] = '\0';
	pump(r);
	expect(r, "start root/pool/b\n");
	run_free(r);
}

/* A task drained as its own budget ran out that finished all the same:
 * done, not a dead letter to replay (it would run its work again). */
static void
test_done_as_its_own_budget_ends(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nchildren:\n  - supervisor: pool\n"
	                "    template: {command: w, budget: {tokens: 100}}\n");
	struct progress p = {.tokens = 100};

	(void)state;
	spawn(r, "a", SPAWN_OK);
	spawn(r, "b", SPAWN_OK);
	tree_beat(r->t, N(r, "root/pool/a"), &p, PROGRESS_TOKENS, r->now);
	tree_beat(r->t, N(r, "root/pool/b"), &p, PROGRESS_TOKENS, r->now);
	pump(r);
	declare_done(r, "root/pool/a");
	r->log[0] = '\0';
	tree_exited(r->t, N(r, "root/pool/a"),
	            (struct reason){.kind = REASON_BUDGET}, r->now);
	tree_exited(r->t, N(r, "root/pool/b"),
	            (struct reason){.kind = REASON_BUDGET}, r->now);
	pump(r);
	expect(r, "exhausted root/pool/a\ntask_done root/pool/a\n"
	          "exhausted root/pool/b\ndead_lettered root/pool/b\n");
	run_free(r);
}

/* A significant task that declared done as its own budget ran out ended
 * cleanly: its pool goes on (it gave up, stopping and restarting the other
 * tasks and charging its parent's intensity). */
static void
test_done_significant_task_spares_its_pool(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nchildren:\n  - supervisor: pool\n"
	                "    template: {command: w, significant: true,"
	                " budget: {tokens: 100}}\n");
	struct progress p = {.tokens = 100};

	(void)state;
	spawn(r, "a", SPAWN_OK);
	spawn(r, "b", SPAWN_OK);
	tree_beat(r->t, N(r, "root/pool/a"), &p, PROGRESS_TOKENS, r->now);
	pump(r);
	declare_done(r, "root/pool/a");
	r->log[0] = '\0';
	tree_exited(r->t, N(r, "root/pool/a"),
	            (struct reason){.kind = REASON_BUDGET}, r->now);
	pump(r);
	assert_null(strstr(r->log, "gave_up"));
	assert_null(strstr(r->log, "root/pool/b"));
	run_free(r);
}

/* A template change reaches new children at once and running ones when
 * they restart; the children stay through the reload. */
static void
test_reload_template(void **state)
{
	struct run *r = run_new(POOL);
	struct reload_report rep;

	(void)state;
	spawn(r, "a", SPAWN_OK);
	reload_to(r,
	          "supervisor: root\nchildren:\n"
	          "  - supervisor: pool\n    max_children: 3\n"
	          "    intensity: 5\n"
	          "    template: {command: [new], backoff: none}\n",
	          &rep);
	assert_int_equal(rep.removed.count, 0);
	assert_int_equal(rep.updated.count, 1);
	assert_string_equal(rep.updated.paths[0], "root/pool");
	reload_report_free(&rep);
	config_free(r->old); /* at once: the child's spec is its own */
	r->old = NULL;
	pump(r);
	assert_string_equal(N(r, "root/pool/a")->spec->argv[0], "work");
	spawn(r, "b", SPAWN_OK);
	assert_string_equal(N(r, "root/pool/b")->spec->argv[0], "new");
	exit_with(r, "root/pool/a", 1);
	assert_string_equal(N(r, "root/pool/a")->spec->argv[0], "new");
	assert_string_equal(N(r, "root/pool/a")->spec->argv[1], "--task");
	run_free(r);
}

/* A pool's own keys changed by a reload are applied, and were reported as
 * nothing updated. */
static void
test_reload_reports_a_pools_keys(void **state)
{
	struct run *r = run_new(POOL);
	struct reload_report rep;

	(void)state;
	reload_to(r,
	          "supervisor: root\nchildren:\n"
	          "  - supervisor: pool\n    max_children: 4\n"
	          "    intensity: 5\n"
	          "    template: {command: [work, --x], backoff: none}\n",
	          &rep);
	assert_int_equal(rep.updated.count, 1);
	assert_string_equal(rep.updated.paths[0], "root/pool");
	reload_report_free(&rep);
	assert_int_equal(N(r, "pool")->spec->pol->max_children, 4);
	run_free(r);
}

/* A reload that removes the pool cancels its live tasks (their records
 * were never ended: a `wait` waited for ever); ended ones stay as they
 * were. */
static void
test_reload_removing_the_pool_cancels_its_tasks(void **state)
{
	struct run *r = run_new(POOL);
	struct reload_report rep;

	(void)state;
	spawn(r, "a", SPAWN_OK);
	spawn(r, "b", SPAWN_OK);
	exit_with(r, "root/pool/b", 0);
	expect(r, "task_done root/pool/b\n");
	r->log[0] = '\0';
	reload_to(r,
	          "supervisor: root\nchildren:\n  - worker: w\n    command: "
	          "[w]\n",
	          &rep);
	assert_int_equal(rep.removed.count, 1);
	reload_report_free(&rep);
	pump(r);
	expect(r, "cancelled root/pool/a\nstop root/pool/a\nstart root/w\n");
	run_free(r);
}

/* Ended children leave the tree: 10,000 tasks cost one node at a time. */
static void
test_ten_thousand_tasks_flat(void **state)
{
	struct run *r = run_new(POOL);
	char key[32];

	(void)state;
	for (int i = 0; i < 10000; i++) {
		snprintf(key, sizeof key, "t%d", i);
		spawn(r, key, SPAWN_OK);
		snprintf(key, sizeof key, "root/pool/t%d", i);
		exit_with(r, key, 0);
		assert_int_equal(N(r, "pool")->nchildren, 0);
	}
	assert_int_equal(r->t->ndirty, 0);
	run_free(r);
}

/* While its supervisor runs a job, an ended child stays (held) until the
 * job is done: the job's indices stay right. */
static void
test_sweep_waits_for_a_job(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nchildren:\n  - supervisor: pool\n"
	                "    template: {command: w, start_timeout: 5s}\n");

	(void)state;
	spawn(r, "a", SPAWN_OK);
	tree_ready(r->t, N(r, "root/pool/a"), r->now);
	spawn(r, "b", SPAWN_OK);
	r->obedient = true;
	command_restart(r->t, N(r, "pool"), r->now); /* a job: start a, b */
	pump(r);
	assert_int_not_equal(N(r, "pool")->super->job.kind, JOB_NONE);
	/* a came back and waits for ready; b fails for good meanwhile */
	exit_with(r, "root/pool/a", 0);
	assert_non_null(tree_find(r->t, "root/pool/a"));
	tree_ready(r->t, N(r, "root/pool/b"), r->now);
	pump(r);
	assert_int_equal(N(r, "pool")->super->job.kind, JOB_NONE);
	assert_null(tree_find(r->t, "root/pool/a"));
	run_free(r);
}

static void
test_config_errors(void **state)
{
	static const char *bad[] = {
	        "supervisor: p\ntemplate: {command: x}\nchildren:\n"
	        "  - {worker: a, command: x}\n",
	        "supervisor: p\nstrategy: one_for_all\ntemplate: {command: "
	        "x}\n",
	        "supervisor: p\nspawn_from: [a]\nchildren:\n"
	        "  - {worker: a, command: x}\n",
	        "supervisor: p\nmax_children: 0\ntemplate: {command: x}\n",
	        "supervisor: p\ntemplate: {worker: x, command: x}\n",
	        "supervisor: p\ntemplate: {instances: 2, command: x}\n",
	        "supervisor: p\ntemplate: {}\n",
	        "supervisor: p\ntemplate: {command: x}\nspawn_from: [a/b]\n",
	        /* a scalar: it was taken as no spawner at all */
	        "supervisor: p\ntemplate: {command: x}\nspawn_from: orch\n",
	        /* names no configured worker: it granted nobody, silently */
	        "supervisor: r\nchildren:\n"
	        "  - {supervisor: p, template: {command: x}, spawn_from: "
	        "[orh]}\n"
	        "  - {worker: orch, command: x}\n",
	        /* a supervisor, or a worker of instances: by its own name */
	        "supervisor: r\nchildren:\n"
	        "  - {supervisor: p, template: {command: x}, spawn_from: "
	        "[r]}\n",
	        "supervisor: r\nchildren:\n"
	        "  - {supervisor: p, template: {command: x}, spawn_from: [o]}\n"
	        "  - {worker: o, instances: 2, command: x}\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct config_errors errs = {0};
		struct config *c = parse_yaml(bad[i], &errs);
		if (c != NULL || errs.count == 0)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		assert_null(c);
		assert_true(errs.count > 0);
		config_errors_clear(&errs);
	}
}

static void
test_config_template_inherits_defaults(void **state)
{
	struct config *c = load_yaml(
	        "supervisor: r\nchildren:\n"
	        "  - supervisor: p\n"
	        "    defaults: {shutdown: 1s, environment: {A: 1}}\n"
	        "    max_children: 7\n    key_ttl: 1h\n    spawn_from: [orch]\n"
	        "    template: {command: x, environment: {B: 2}}\n"
	        "  - {worker: orch, command: x}\n");
	char *args[] = {"y", NULL}, *env[] = {"B=3", "C=4", NULL};
	struct spec *s, *p;

	(void)state;
	p = c->root->children[0];
	assert_non_null(p->tmpl);
	assert_int_equal(p->tmpl->pol->shutdown_ms, 1000);
	assert_int_equal(p->pol->max_children, 7);
	assert_int_equal(p->pol->key_ttl_ms, 3600000);
	assert_true(config_spawn_allowed(p, "orch"));
	assert_false(config_spawn_allowed(p, "other"));
	s = config_task_spec(p->tmpl, "k", args, env);
	assert_string_equal(s->name, "k");
	assert_string_equal(s->argv[1], "y");
	assert_null(s->argv[2]);
	assert_string_equal(s->env[0], "B=3"); /* the task's wins */
	assert_string_equal(s->env[1], "C=4");
	assert_null(s->env[2]);
	config_task_spec_free(s);
	config_free(c);
}

static void
test_ledger_bounded_oldest_ended_first(void **state)
{
	struct ledger l;
	struct ledger_rec *live, *r;
	char key[16];

	(void)state;
	ledger_init(&l, 3);
	live = ledger_accept(&l, "p", "live", NULL, NULL, 1);
	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof key, "k%d", i);
		r = ledger_accept(&l, "p", key, NULL, NULL, 1);
		ledger_end(&l, r, LEDGER_DONE, 2, (uint64_t)i);
	}
	assert_int_equal(l.nended, 3);
	assert_int_equal(l.dropped, 2);
	assert_null(ledger_get(&l, "p", "k0"));
	assert_null(ledger_get(&l, "p", "k1"));
	assert_non_null(ledger_get(&l, "p", "k2"));
	assert_ptr_equal(ledger_get(&l, "p", "live"), live);
	assert_ptr_equal(l.oldest, ledger_get(&l, "p", "k2"));
	ledger_free(&l);
}

/* Ended records' data is bounded in bytes too, the oldest dropped first:
 * 20,000 records of a 256 KiB checkpoint were 5 GB (only their count was
 * bounded). */
static void
test_ledger_bounded_in_bytes(void **state)
{
	static char ck[256u << 10];
	struct ledger l;
	struct ledger_rec *r;
	size_t bytes = 0, kept = 0;
	char key[16];

	(void)state;
	ledger_init(&l, 0); /* the default bounds */
	for (int i = 0; i < 400; i++) {
		snprintf(key, sizeof key, "k%d", i);
		r = ledger_accept(&l, "p", key, NULL, NULL, 1);
		ledger_checkpoint(r, 1, ck, sizeof ck);
		ledger_tail(r, "bye\n", 4);
		ledger_end(&l, r, LEDGER_DONE, 2, (uint64_t)i + 1);
	}
	for (r = l.oldest; r != NULL; r = r->newer, kept++)
		bytes += r->checkpoint_len + r->result_len + strlen(r->tail);
	assert_true(bytes <= 64u << 20);
	assert_true(bytes > (64u << 20) - sizeof ck - 4);
	assert_int_equal(l.nended, kept);
	assert_int_equal(l.dropped, 400 - kept);
	assert_null(ledger_get(&l, "p", "k0")); /* the oldest first */
	assert_non_null(ledger_get(&l, "p", "k399"));
	/* a late result (a cancelled task still running) counts too */
	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof key, "k%d", 399 - i);
		ledger_result(&l, ledger_get(&l, "p", key), ck, 64u << 10);
	}
	assert_int_equal(l.nended, kept - 1);
	/* a record taken out (a retry) takes its bytes with it */
	for (int i = 0; i < 3; i++) {
		snprintf(key, sizeof key, "k%d", 399 - i);
		ledger_accept(&l, "p", key, NULL, NULL, 3);
	}
	bytes = 0;
	for (r = l.oldest; r != NULL; r = r->newer)
		bytes += r->checkpoint_len + r->result_len + strlen(r->tail);
	assert_int_equal(l.ended_bytes, bytes);
	ledger_free(&l);
}

/* A pinned ended record (its row not committed) is never dropped for
 * room; unpinned, it goes; dropped while pinned, it is freed at the last
 * unpin (ASan checks the free). */
static void
test_ledger_pins(void **state)
{
	struct ledger l;
	struct ledger_rec *a, *b, *c;

	(void)state;
	ledger_init(&l, 1);
	a = ledger_accept(&l, "p", "a", NULL, NULL, 1);
	ledger_pin(a);
	ledger_end(&l, a, LEDGER_DONE, 2, 2);
	b = ledger_accept(&l, "p", "b", NULL, NULL, 1);
	ledger_end(&l, b, LEDGER_DONE, 3, 3);
	assert_int_equal(l.nended, 2); /* a is pinned: over the cap */
	assert_ptr_equal(ledger_get(&l, "p", "a"), a);
	ledger_unpin(&l, a);
	assert_null(ledger_get(&l, "p", "a"));
	assert_int_equal(l.nended, 1);
	c = ledger_accept(&l, "p", "c", NULL, NULL, 1);
	ledger_pin(c);
	ledger_pin(c);
	ledger_end(&l, c, LEDGER_DEAD, 4, 4);
	ledger_drop(&l, c);
	assert_null(ledger_get(&l, "p", "c"));
	ledger_unpin(&l, c);
	assert_true(c->dropped); /* still held by one pin */
	ledger_unpin(&l, c);     /* freed */
	ledger_free(&l);
}

/* A record dropped while pinned (a drop whose deletion was not stored)
 * put back as it was: found again, ended and counted once more, and the
 * ended list still whole (the put-back one is its newest). */
static void
test_ledger_put_back(void **state)
{
	struct ledger l;
	struct ledger_rec *a, *b;

	(void)state;
	ledger_init(&l, 0);
	a = ledger_accept(&l, "p", "a", NULL, NULL, 1);
	ledger_result(&l, a, "ok", 2);
	ledger_end(&l, a, LEDGER_DEAD, 2, 2);
	b = ledger_accept(&l, "p", "b", NULL, NULL, 1);
	ledger_end(&l, b, LEDGER_DONE, 3, 3);
	ledger_pin(a);
	ledger_drop(&l, a);
	assert_int_equal(l.nended, 1);
	assert_int_equal(l.ended_bytes, 0);
	ledger_put_back(&l, a);
	assert_false(a->dropped);
	assert_ptr_equal(ledger_get(&l, "p", "a"), a);
	assert_int_equal(l.count, 2);
	assert_int_equal(l.nended, 2);
	assert_int_equal(l.ended_bytes, 2);
	assert_int_equal(a->state, LEDGER_DEAD);
	assert_ptr_equal(l.oldest, b);
	assert_ptr_equal(l.newest, a);
	assert_ptr_equal(b->newer, a);
	ledger_unpin(&l, a); /* in the ledger again: not freed */
	ledger_drop(&l, b);
	ledger_drop(&l, a);
	assert_null(l.oldest);
	assert_null(l.newest);
	ledger_free(&l);
}

/* The stored keys: found after add, gone after del, however the
 * probe chains run (many keys, deletions in the middle of chains). */
static void
test_ledger_keys(void **state)
{
	struct ledger_keys k = {0};
	char key[16];

	(void)state;
	assert_false(ledger_keys_has(&k, 42));
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof key, "k%d", i);
		ledger_keys_add(&k, ledger_key_hash("p", key));
	}
	ledger_keys_add(&k, ledger_key_hash("p", "k7")); /* once */
	assert_int_equal(k.n, 5000);
	for (int i = 0; i < 5000; i += 2) {
		snprintf(key, sizeof key, "k%d", i);
		ledger_keys_del(&k, ledger_key_hash("p", key));
	}
	assert_int_equal(k.n, 2500);
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof key, "k%d", i);
		assert_int_equal(ledger_keys_has(&k, ledger_key_hash("p", key)),
		                 i % 2 == 1);
	}
	assert_false(ledger_keys_has(&k, ledger_key_hash("q", "k1")));
	ledger_keys_free(&k);
}

/* A spawn's args and env, up to a frame each, count in that bound too:
 * 2,000 ended records of 60 KiB arguments were 117 MiB, none dropped. */
static void
test_ledger_args_count_in_bytes(void **state)
{
	static char big[60u << 10];
	char *args[] = {big, NULL};
	struct ledger l;
	char key[16];

	(void)state;
	memset(big, 'a', sizeof big - 1);
	ledger_init(&l, 0);
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof key, "k%d", i);
		ledger_end(&l, ledger_accept(&l, "p", key, args, NULL, 1),
		           LEDGER_DONE, 2, (uint64_t)i + 1);
	}
	assert_true(l.dropped > 0);
	assert_true(l.ended_bytes <= 64u << 20);
	assert_non_null(ledger_get(&l, "p", "k1999"));
	ledger_free(&l);
}

static void
test_ledger_record(void **state)
{
	struct ledger l;
	struct ledger_rec *r;
	char *args[] = {"a", NULL};
	char big[LEDGER_REASON_MAX + 50];

	(void)state;
	ledger_init(&l, 0);
	r = ledger_accept(&l, "p", "k", args, NULL, 1);
	for (int i = 0; i < LEDGER_REASONS + 3; i++) {
		snprintf(big, sizeof big, "exit:%d", i);
		ledger_reason(r, big);
	}
	assert_int_equal(r->nreasons, LEDGER_REASONS);
	assert_string_equal(r->reasons[r->r0], "exit:3"); /* oldest kept */
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ledger_reason(r, big);
	assert_true(strlen(r->reasons[(r->r0 + LEDGER_REASONS - 1) %
	                              LEDGER_REASONS]) == LEDGER_REASON_MAX);
	ledger_result(&l, r, "ok", 2);
	r->attempts = 3;
	ledger_end(&l, r, LEDGER_DEAD, 5, 5);
	/* a replay: the same record, its inputs (even its own) kept */
	r = ledger_accept(&l, "p", "k", r->args, r->env, 6);
	assert_int_equal(r->attempts, 3);
	assert_string_equal(r->args[0], "a");
	assert_null(r->result);
	assert_int_equal(r->state, LEDGER_PENDING);
	assert_int_equal(l.nended, 0);
	ledger_drop(&l, r);
	assert_int_equal(l.count, 0);
	for (int i = 0; i < 1000; i++) { /* the hash grows */
		snprintf(big, sizeof big, "k%d", i);
		ledger_accept(&l, "p", big, NULL, NULL, 1);
	}
	assert_non_null(ledger_get(&l, "p", "k999"));
	assert_true(l.nbuckets >= 1000);
	ledger_free(&l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_spawn_done_swept),
	        cmocka_unit_test(test_max_children_refused_with_count),
	        cmocka_unit_test(test_refusals),
	        cmocka_unit_test(test_key_does_not_shadow_names),
	        cmocka_unit_test(test_failure_restarts_then_permanent_is_dead),
	        cmocka_unit_test(test_intensity_spent_on_it_is_dead),
	        cmocka_unit_test(test_circuit_open_is_dead),
	        cmocka_unit_test(test_temporary_failure_is_dead),
	        cmocka_unit_test(
	                test_temporary_task_not_started_for_exhaustion_is_retried),
	        cmocka_unit_test(test_operator_stop_cancels),
	        cmocka_unit_test(test_operator_stop_in_backoff_cancels),
	        cmocka_unit_test(test_shutdown_does_not_end_tasks),
	        cmocka_unit_test(test_done_during_a_budget_drain),
	        cmocka_unit_test(test_done_during_shutdown),
	        cmocka_unit_test(test_done_under_an_operator_stop),
	        cmocka_unit_test(test_done_on_its_own_during_shutdown),
	        cmocka_unit_test(test_done_as_its_own_budget_ends),
	        cmocka_unit_test(test_done_pending_when_the_pool_stops),
	        cmocka_unit_test(test_reload_template),
	        cmocka_unit_test(test_done_significant_task_spares_its_pool),
	        cmocka_unit_test(test_reload_reports_a_pools_keys),
	        cmocka_unit_test(
	                test_reload_removing_the_pool_cancels_its_tasks),
	        cmocka_unit_test(test_ten_thousand_tasks_flat),
	        cmocka_unit_test(test_sweep_waits_for_a_job),
	        cmocka_unit_test(test_config_errors),
	        cmocka_unit_test(test_config_template_inherits_defaults),
	        cmocka_unit_test(test_ledger_bounded_oldest_ended_first),
	        cmocka_unit_test(test_ledger_bounded_in_bytes),
	        cmocka_unit_test(test_ledger_args_count_in_bytes),
	        cmocka_unit_test(test_ledger_record),
	        cmocka_unit_test(test_ledger_pins),
	        cmocka_unit_test(test_ledger_put_back),
	        cmocka_unit_test(test_ledger_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
