/*
 * test_reload_policy.c - a reload changes a running node's policy: what
 * the engine derived from the old one (a task's node, an exhausted
 * supervisor, a recycle's wake-up, a budget's verdict) follows the new
 * one. Found by an audit of state kept across n->spec changing; each test
 * failed before its fix.
 */
#include "progress_test.h"
#include "dynamic.h"

/* A reload that removes a supervisor's `template:` and declares a static
 * child whose name is a live task's key: the task's node was matched like a
 * static child's and took the config's spec, which its end then freed
 * (a double free); it is removed like any removed node (config.md). */
static void
test_template_removed_task_key_equals_new_child(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - supervisor: pool\n"
	                        "    template: {command: [work]}\n");
	struct config *next = load_yaml("supervisor: root\nchildren:\n"
	                                "  - supervisor: pool\n    children:\n"
	                                "      - {worker: w, command: x}\n");
	struct reload_report rep;
	enum spawn_refusal why_spawn;
	const char *why;
	struct node *task;

	(void)state;
	task = dynamic_spawn(r->t, N(r, "pool"), "w", NULL, NULL, r->now,
	                     &why_spawn);
	assert_non_null(task);
	pump(r);
	r->log[0] = '\0';
	assert_int_equal(reload_apply(r->t, next->root, r->now, &rep, &why), 0);
	pump(r);
	/* the task is removed (stopped), and root/pool/w is a new node */
	assert_int_equal(rep.removed.count, 1);
	assert_int_equal(rep.added.count, 1);
	reload_report_free(&rep);
	assert_null(N(r, "root/pool/w")->task);
	tree_sweep(r->t);
	run_free(r); /* the old config, then the tree */
	config_free(next);
}

/* Without assertions in the way: what the defect does to memory. */
static void
test_template_removed_memory(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - supervisor: pool\n"
	                        "    template: {command: [work]}\n");
	struct config *next = load_yaml("supervisor: root\nchildren:\n"
	                                "  - supervisor: pool\n    children:\n"
	                                "      - {worker: w, command: x}\n");
	enum spawn_refusal why_spawn;

	(void)state;
	assert_non_null(dynamic_spawn(r->t, N(r, "pool"), "w", NULL, NULL,
	                              r->now, &why_spawn));
	pump(r);
	reload_to(r, next);
	tree_sweep(r->t);
	tree_free(r->t);   /* frees next's spec for w (dynamic_task_free) */
	config_free(next); /* ... which is freed again here */
	config_free(r->cfg);
	free(r);
}

/* An exhausted supervisor with a template whose budget a reload raises
 * runs again, as a static supervisor does (the dynamic path returned
 * before budget_reloaded). */
#define POOL(lim)                                                              \
	"supervisor: root\nchildren:\n"                                        \
	"  - supervisor: pool\n    budget: {tokens: " lim "}\n"                \
	"    template: {command: [work], backoff: none}\n"

static void
test_dynamic_supervisor_budget_raised_by_reload(void **state)
{
	struct run *r = run_new(POOL("1000"));
	struct config *more = load_yaml(POOL("5000"));
	enum spawn_refusal why_spawn;

	(void)state;
	assert_non_null(dynamic_spawn(r->t, N(r, "pool"), "a", NULL, NULL,
	                              r->now, &why_spawn));
	pump(r);
	r->log[0] = '\0';
	tokens(r, "root/pool/a", 1000);
	assert_int_equal(N(r, "pool")->state, NODE_EXHAUSTED);
	r->log[0] = '\0';
	reload_to(r, more);
	/* raised above the spend: it runs again (and takes spawns) */
	assert_int_equal(N(r, "pool")->state, NODE_RUNNING);
	assert_non_null(dynamic_spawn(r->t, N(r, "pool"), "b", NULL, NULL,
	                              r->now, &why_spawn));
	run_free(r);
	config_free(more);
}

/* A recycle_after that a reload sets, or lowers, below a running worker's
 * uptime recycles it at the next tick (a due time in the past asked for
 * no wake-up: never recycled in this incarnation). */
static void
test_recycle_overdue_after_reload(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: a, command: x}\n");
	struct config *more = load_yaml("supervisor: root\nchildren:\n"
	                                "  - {worker: a, command: x, "
	                                "recycle_after: 1m}\n");

	(void)state;
	r->log[0] = '\0';
	advance(r, 2 * 3600 * 1000); /* up for 2 hours */
	reload_to(r, more);
	/* overdue: recycled at the next tick, as an overdue wall limit is */
	assert_int_not_equal(tree_next_wake(r->t), 0);
	advance(r, r->now + 1000);
	expect(r, "recycled root/a\nstop root/a\nstart root/a\n");
	run_free(r);
	config_free(more);
}

/* The same through a lowered value. */
static void
test_recycle_lowered_below_uptime(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: a, command: x, "
	                        "recycle_after: 1h}\n");
	struct config *less = load_yaml("supervisor: root\nchildren:\n"
	                                "  - {worker: a, command: x, "
	                                "recycle_after: 1m}\n");

	(void)state;
	r->log[0] = '\0';
	advance(r, 30 * 60 * 1000); /* 30 min of the 1h */
	reload_to(r, less);
	/* the old 1h wake-up is still asked for; it should be now */
	advance(r, r->now + 1000);
	expect(r, "recycled root/a\nstop root/a\nstart root/a\n");
	run_free(r);
	config_free(less);
}

/* A limit that a reload lowers below what is already spent is enforced at
 * once, as at a report (it was judged only at the next report that spent
 * more: an idle agent ran on over its budget). */
static void
test_worker_limit_lowered_below_spend(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: a, command: x, "
	                        "budget: {tokens: 5000}, backoff: none}\n");
	struct config *less = load_yaml("supervisor: root\nchildren:\n"
	                                "  - {worker: a, command: x, "
	                                "budget: {tokens: 2000}, "
	                                "backoff: none}\n");

	(void)state;
	r->log[0] = '\0';
	tokens(r, "a", 3000);
	expect(r, "");
	reload_to(r, less);
	advance(r, r->now + 1000);
	/* 3000 spent of 2000: warned and drained, as at a report */
	expect(r, "budget_warning root/a tokens\nfail root/a budget (drain)\n"
	          "exhausted root/a\n");
	assert_int_equal(N(r, "a")->state, NODE_EXHAUSTED);
	run_free(r);
	config_free(less);
}

static void
test_supervisor_limit_lowered_below_spend(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - supervisor: s\n"
	                        "    budget: {tokens: 5000}\n    children:\n"
	                        "      - {worker: a, command: x}\n");
	struct config *less = load_yaml("supervisor: root\nchildren:\n"
	                                "  - supervisor: s\n"
	                                "    budget: {tokens: 2000}\n"
	                                "    children:\n"
	                                "      - {worker: a, command: x}\n");

	(void)state;
	r->log[0] = '\0';
	tokens(r, "a", 3000);
	reload_to(r, less);
	advance(r, r->now + 1000);
	assert_int_not_equal(N(r, "s")->state, NODE_RUNNING);
	run_free(r);
	config_free(less);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(
	                test_template_removed_task_key_equals_new_child),
	        cmocka_unit_test(test_template_removed_memory),
	        cmocka_unit_test(
	                test_dynamic_supervisor_budget_raised_by_reload),
	        cmocka_unit_test(test_recycle_overdue_after_reload),
	        cmocka_unit_test(test_recycle_lowered_below_uptime),
	        cmocka_unit_test(test_worker_limit_lowered_below_spend),
	        cmocka_unit_test(test_supervisor_limit_lowered_below_spend),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
