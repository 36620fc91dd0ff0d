/*
 * test_budget.c - budgets (DESIGN §10): the 80 % warning once, exhaustion,
 * spend over incarnations and subtrees, the root's exit 79, reset, reload,
 * restored spend, wall time; the engine driven by scripted beats and ticks
 * (harness: progress_test.h).
 */
#include <math.h>

#include "progress_test.h"

#define BUDGET_WORKER                                                          \
	"supervisor: root\nchildren:\n"                                        \
	"  - {worker: a, command: x, budget: {tokens: 1000}, backoff: none}\n" \
	"  - {worker: b, command: x}\n"

static void
test_budget_warning_once_then_exhausted(void **state)
{
	struct run *r = run_new(BUDGET_WORKER);
	struct spend sp;

	(void)state;
	r->log[0] = '\0';
	tokens(r, "a", 799);
	expect(r, "");
	tokens(r, "a", 800);
	expect(r, "budget_warning root/a tokens\n");
	tokens(r, "a", 950);
	expect(r, "");
	tokens(r, "a", 1000);
	expect(r, "fail root/a budget (drain)\nexhausted root/a\n");
	assert_int_equal(N(r, "a")->state, NODE_EXHAUSTED);
	assert_true(node_unhealthy(N(r, "a")));
	assert_int_equal(N(r, "root")->super->nstamps, 0); /* not counted */
	budget_spend(N(r, "a"), r->now, &sp);
	assert_int_equal(sp.tokens, 1000);
	assert_int_equal(node_account(N(r, "a"))->spend.tokens, 1000);
	run_free(r);
}

/* Exhausted is not escalated, unless the child is significant: then its
 * supervisor gives up (and fails upward as usual). Restarted by its parent,
 * the supervisor leaves the exhausted child down: its spend is still there
 * (a reset or a raised limit brings it back). */
static void
test_budget_significant_escalates(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - supervisor: s\n    children:\n"
	                        "      - {worker: a, command: x, significant: "
	                        "true, budget: {steps: 10}}\n"
	                        "      - {worker: b, command: x}\n");
	struct progress p = {.steps = 10};

	(void)state;
	r->log[0] = '\0';
	tree_beat(r->t, N(r, "a"), &p, PROGRESS_STEPS, r->now);
	pump(r);
	expect(r, "budget_warning root/s/a steps\n"
	          "fail root/s/a budget (drain)\nexhausted root/s/a\n"
	          "gave_up root/s\nstop root/s/b\nescalated root/s\n"
	          "restarting root/s\nstart root/s/b\n");
	assert_int_equal(N(r, "a")->state, NODE_EXHAUSTED);
	run_free(r);
}

/* Spend survives restarts: each incarnation counts from 0. */
static void
test_budget_summed_over_incarnations(void **state)
{
	struct run *r = run_new(BUDGET_WORKER);

	(void)state;
	r->log[0] = '\0';
	tokens(r, "a", 600);
	crash(r, "a");
	expect(r, "restarting root/a\nstart root/a\n");
	tokens(r, "a", 300);
	expect(r, "budget_warning root/a tokens\n");
	tokens(r, "a", 400);
	expect(r, "fail root/a budget (drain)\nexhausted root/a\n");
	run_free(r);
}

#define BUDGET_TREE                                                            \
	"supervisor: root\nbudget: {cost: 10}\nchildren:\n"                    \
	"  - supervisor: s\n    budget: {tokens: 1000}\n    children:\n"       \
	"      - {worker: a, command: x}\n      - {worker: b, command: x}\n"   \
	"  - {worker: c, command: x}\n"

/* A supervisor's spend is its subtree's: when it is spent the subtree is
 * drained and the supervisor is exhausted; its siblings go on. */
static void
test_budget_subtree(void **state)
{
	struct run *r = run_new(BUDGET_TREE);
	struct spend sp;

	(void)state;
	r->log[0] = '\0';
	tokens(r, "a", 600);
	tokens(r, "b", 300);
	expect(r, "budget_warning root/s tokens\n");
	budget_spend(N(r, "s"), r->now, &sp);
	assert_int_equal(sp.tokens, 900);
	tokens(r, "b", 400);
	expect(r, "drain root/s/b\ndrain root/s/a\nexhausted root/s\n");
	assert_int_equal(N(r, "s")->state, NODE_EXHAUSTED);
	assert_int_equal(N(r, "c")->state, NODE_RUNNING);
	assert_int_equal(N(r, "root")->state, NODE_RUNNING);
	/* below it: refused as down, not busy (asked again until a --wait's
	 * timeout), and a restart not queued for a job that never comes */
	assert_int_equal(command_start(r->t, N(r, "a"), r->now).kind,
	                 REFUSED_PARENT_DOWN);
	assert_int_equal(command_restart(r->t, N(r, "a"), r->now).kind,
	                 REFUSED_PARENT_DOWN);
	assert_false(N(r, "a")->restart_asked);
	/* reset: spend cleared, the subtree comes back */
	assert_int_equal(command_reset(r->t, N(r, "s"), r->now).kind,
	                 REFUSED_NONE);
	pump(r);
	expect(r, "start root/s/a\nstart root/s/b\n");
	budget_spend(N(r, "root"), r->now, &sp);
	assert_int_equal(sp.tokens, 0);
	run_free(r);
}

/* The root's budget spent: the tree drains and agentsupd exits 79. */
static void
test_budget_root_exits_79(void **state)
{
	struct run *r = run_new(BUDGET_TREE);
	struct progress p = {.cost = 10.5};

	(void)state;
	r->log[0] = '\0';
	tree_beat(r->t, N(r, "c"), &p, PROGRESS_COST, r->now);
	pump(r);
	expect(r, "budget_warning root cost\ndrain root/c\ndrain root/s/b\n"
	          "drain root/s/a\nexhausted root\nexit 79\n");
	assert_int_equal(r->exit_code, 79);
	run_free(r);
}

static void
test_budget_reset_worker(void **state)
{
	struct run *r = run_new(BUDGET_WORKER);

	(void)state;
	r->log[0] = '\0';
	tokens(r, "a", 1200);
	expect(r, "budget_warning root/a tokens\nfail root/a budget (drain)\n"
	          "exhausted root/a\n");
	assert_int_equal(command_reset(r->t, N(r, "a"), r->now).kind,
	                 REFUSED_NONE);
	pump(r);
	expect(r, "start root/a\n");
	assert_int_equal(node_account(N(r, "a"))->total.tokens, 0);
	tokens(r, "a", 800); /* warned again: the reset cleared it */
	expect(r, "budget_warning root/a tokens\n");
	run_free(r);
}

/* Spend the state store put back before the start counts, in the worker
 * and in its supervisors. */
static void
test_budget_restored_spend(void **state)
{
	struct run *r = calloc(1, sizeof *r);
	struct spend sp;

	(void)state;
	r->cfg = load_yaml(BUDGET_TREE);
	r->t = tree_new(r->cfg->root);
	r->now = 1000;
	account_own(N(r, "a"))->spend =
	        (struct spend){.tokens = 700, .wall_ms = 5000};
	tree_start(r->t, r->now);
	pump(r);
	budget_spend(N(r, "s"), r->now, &sp);
	assert_int_equal(sp.tokens, 700);
	assert_int_equal(sp.wall_ms, 5000);
	r->log[0] = '\0';
	tokens(r, "b", 100);
	expect(r, "budget_warning root/s tokens\n");
	tokens(r, "a", 200);
	expect(r, "drain root/s/b\ndrain root/s/a\nexhausted root/s\n");
	run_free(r);
}

/* A reload that raises the limit above the spend starts it again; one
 * that does not leaves it exhausted. */
static void
test_budget_reload_raises_limit(void **state)
{
	struct run *r = run_new(BUDGET_WORKER);
	struct config *same = load_yaml(BUDGET_WORKER);
	struct config *other =
	        load_yaml("supervisor: root\nchildren:\n"
	                  "  - {worker: a, command: y, budget: {tokens: 1000},"
	                  " backoff: none}\n  - {worker: b, command: x}\n");
	struct config *more =
	        load_yaml("supervisor: root\nchildren:\n"
	                  "  - {worker: a, command: x, budget: {tokens: 5000},"
	                  " backoff: none}\n  - {worker: b, command: x}\n");

	(void)state;
	r->log[0] = '\0';
	tokens(r, "a", 1000);
	r->log[0] = '\0';
	reload_to(r, same);
	expect(r, "");
	assert_int_equal(N(r, "a")->state, NODE_EXHAUSTED);
	/* a new command, the limit as it was: still spent, not started and
	 * killed at once (a hostile trial saw a restart counted for it) */
	reload_to(r, other);
	expect(r, "");
	assert_int_equal(N(r, "a")->state, NODE_EXHAUSTED);
	reload_to(r, more);
	expect(r, "start root/a\n");
	assert_int_equal(node_account(N(r, "a"))->total.tokens,
	                 1000); /* kept */
	tokens(r, "a", 3000);
	expect(r, "budget_warning root/a tokens\n");
	run_free(r);
	config_free(same);
	config_free(other);
	config_free(more);
}

/* The same for a supervisor: raised above its subtree's spend, it starts
 * again with its children. */
static void
test_budget_reload_restarts_subtree(void **state)
{
	struct run *r = run_new(BUDGET_TREE);
	struct config *more =
	        load_yaml("supervisor: root\nbudget: {cost: 10}\nchildren:\n"
	                  "  - supervisor: s\n    budget: {tokens: 5000}\n"
	                  "    children:\n"
	                  "      - {worker: a, command: x}\n"
	                  "      - {worker: b, command: x}\n"
	                  "  - {worker: c, command: x}\n");

	(void)state;
	r->log[0] = '\0';
	tokens(r, "a", 1000);
	expect(r, "budget_warning root/s tokens\ndrain root/s/b\n"
	          "drain root/s/a\nexhausted root/s\n");
	reload_to(r, more);
	expect(r, "start root/s/a\nstart root/s/b\n");
	assert_int_equal(N(r, "s")->state, NODE_RUNNING);
	run_free(r);
	config_free(more);
}

/* Wall time: the warning at 80 % of the running time, the end at 100 %;
 * time before a restart counts. */
static void
test_budget_wall(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: a, command: x, budget: {wall: "
	                        "10s}, backoff: none}\n");

	(void)state;
	r->log[0] = '\0';
	advance(r, 5000);
	crash(r, "a"); /* 4 s spent */
	expect(r, "restarting root/a\nstart root/a\n");
	advance(r, 8999);
	expect(r, "");
	advance(r, 9000); /* 4 + 4 = 8 s */
	expect(r, "budget_warning root/a wall\n");
	advance(r, 11000); /* 10 s */
	expect(r, "fail root/a budget (drain)\nexhausted root/a\n");
	run_free(r);
}

/* A supervisor's wall budget sums its running workers' time. */
static void
test_budget_wall_subtree(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - supervisor: s\n    budget: {wall: 20s}\n"
	                        "    children:\n"
	                        "      - {worker: a, command: x}\n"
	                        "      - {worker: b, command: x}\n");

	(void)state;
	r->log[0] = '\0';
	advance(r, 9000); /* 2 x 8 s = 16 s */
	expect(r, "budget_warning root/s wall\n");
	advance(r, 11000); /* 2 x 10 s */
	expect(r, "drain root/s/b\ndrain root/s/a\nexhausted root/s\n");
	run_free(r);
}

/* A supervisor's spend saturates: 2^64 - 5 tokens and a sibling's 10 do
 * not wrap to 5 under its limit of 1000. */
static void
test_budget_sum_saturates(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nchildren:\n"
	                "  - supervisor: s\n    budget: {tokens: 1000}\n"
	                "    children:\n"
	                "      - {worker: a, command: x}\n"
	                "      - {worker: b, command: x}\n");
	struct spend sp;

	(void)state;
	tokens(r, "a", 10);
	tokens(r, "b", UINT64_MAX - 4);
	budget_spend(N(r, "s"), r->now, &sp);
	assert_true(sp.tokens == UINT64_MAX);
	assert_int_equal(N(r, "s")->state, NODE_EXHAUSTED);
	run_free(r);
}

/* A cost too large to sum (1e301, finite and valid on the wire) spends the
 * budget: it was counted as nothing, and the worker ran on unjudged. Sums of
 * such costs stay finite. */
static void
test_budget_huge_cost_spends(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: a, command: x, budget: "
	                        "{cost: 5}, backoff: none}\n"
	                        "  - {worker: b, command: x}\n");
	struct progress p = {.cost = 1e301};
	struct spend sp;

	(void)state;
	r->log[0] = '\0';
	tree_beat(r->t, N(r, "a"), &p, PROGRESS_COST, r->now);
	pump(r);
	expect(r, "budget_warning root/a cost\n"
	          "fail root/a budget (drain)\nexhausted root/a\n");
	assert_int_equal(N(r, "a")->state, NODE_EXHAUSTED);
	p.cost = 1.7e308;
	tree_beat(r->t, N(r, "b"), &p, PROGRESS_COST, r->now);
	pump(r);
	budget_spend(N(r, "root"), r->now, &sp);
	assert_true(isfinite(sp.cost) && sp.cost >= 1e300);
	run_free(r);
}

/* A counter that goes down and up again within an incarnation counts as
 * its last value (600, 0, 600 is 600, not 1200). */
static void
test_budget_counter_going_down_counts_once(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: a, command: x, budget: "
	                        "{tokens: 1000}, backoff: none}\n");
	struct spend sp;

	(void)state;
	tokens(r, "a", 600);
	tokens(r, "a", 0);
	tokens(r, "a", 600);
	budget_spend(N(r, "a"), r->now, &sp);
	assert_int_equal(sp.tokens, 600);
	assert_int_equal(N(r, "a")->state, NODE_RUNNING);
	run_free(r);
}

/* Spend restored from a store over a limit lowered while agentsupd was
 * down: the worker is judged once running, not left unjudged until it
 * reports more (bare beats report nothing). */
static void
test_budget_restored_over_the_limit_is_judged(void **state)
{
	struct run *r = calloc(1, sizeof *r);

	(void)state;
	r->cfg = load_yaml("supervisor: root\nchildren:\n"
	                   "  - {worker: a, command: x, budget: {tokens: "
	                   "1000}, backoff: none}\n");
	r->t = tree_new(r->cfg->root);
	r->now = 1000;
	r->exit_code = -1;
	account_own(N(r, "a"))->spend = (struct spend){.tokens = 5000};
	tree_start(r->t, r->now);
	pump(r);
	advance(r, 2000);
	bare_beat(r, "a");
	assert_int_not_equal(N(r, "a")->state, NODE_RUNNING);
	assert_non_null(strstr(r->log, "fail root/a budget"));
	run_free(r);
}

/* The same for a limit a reload lowered while the worker waited out its
 * backoff. */
static void
test_budget_lowered_during_backoff_is_judged(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: a, command: x, budget: {tokens: "
	                        "1000}, backoff: {initial: 10s}}\n");
	struct config *lower =
	        load_yaml("supervisor: root\nchildren:\n"
	                  "  - {worker: a, command: x, budget: {tokens: 500},"
	                  " backoff: {initial: 10s}}\n");

	(void)state;
	tokens(r, "a", 600);
	crash(r, "a"); /* n = 1: back at once */
	crash(r, "a"); /* n = 2: waits 10 s */
	assert_int_equal(N(r, "a")->state, NODE_BACKOFF);
	reload_to(r, lower);
	r->log[0] = '\0';
	for (uint64_t at = r->now + 1000, end = r->now + 60000; at <= end;
	     at += 1000) {
		advance(r, at);
		bare_beat(r, "a");
	}
	assert_non_null(strstr(r->log, "fail root/a budget"));
	run_free(r);
	config_free(lower);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_budget_warning_once_then_exhausted),
	        cmocka_unit_test(test_budget_sum_saturates),
	        cmocka_unit_test(test_budget_huge_cost_spends),
	        cmocka_unit_test(test_budget_counter_going_down_counts_once),
	        cmocka_unit_test(test_budget_restored_over_the_limit_is_judged),
	        cmocka_unit_test(test_budget_lowered_during_backoff_is_judged),
	        cmocka_unit_test(test_budget_summed_over_incarnations),
	        cmocka_unit_test(test_budget_significant_escalates),
	        cmocka_unit_test(test_budget_subtree),
	        cmocka_unit_test(test_budget_root_exits_79),
	        cmocka_unit_test(test_budget_reset_worker),
	        cmocka_unit_test(test_budget_restored_spend),
	        cmocka_unit_test(test_budget_reload_raises_limit),
	        cmocka_unit_test(test_budget_reload_restarts_subtree),
	        cmocka_unit_test(test_budget_wall),
	        cmocka_unit_test(test_budget_wall_subtree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
