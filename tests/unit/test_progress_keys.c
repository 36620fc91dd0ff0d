/*
 * test_progress_keys.c - the keys of DESIGN §10 (stall_timeout, stall_grace,
 * stall_dump, loop, budget, extend_max, recycle_after): good and bad values,
 * inheritance, reload comparison and --check's output.
 */
#include "config_test.h"

#define W "worker: w\ncommand: x\n"

static void
test_stall_keys(void **state)
{
	struct config *cfg;

	(void)state;
	cfg = parse_ok(W "heartbeat: 1s\nstall_timeout: 10s\n");
	assert_int_equal(worker(cfg)->pol->stall_timeout_ms, 10000);
	assert_int_equal(worker(cfg)->pol->stall_grace_ms, 5000); /* T / 2 */
	assert_false(worker(cfg)->pol->stall_dump);
	config_free(cfg);
	cfg = parse_ok(W "heartbeat: 1s\nstall_timeout: 10s\nstall_grace: 0\n"
	                 "stall_dump: true\n");
	assert_int_equal(worker(cfg)->pol->stall_grace_ms, 0);
	assert_true(worker(cfg)->pol->stall_dump);
	config_free(cfg);
	parse_bad(W "stall_timeout: 10s\n", "stall_timeout needs heartbeat");
	parse_bad(W "heartbeat: 1s\nstall_grace: 1s\n",
	          "stall_grace without stall_timeout");
	parse_bad(W "heartbeat: 1s\nstall_dump: true\n",
	          "stall_dump without stall_timeout");
	parse_bad(W "heartbeat: 1s\nstall_timeout: 0\n",
	          "stall_timeout: must be more than zero");
	parse_bad(W "heartbeat: 1s\nstall_timeout: 1s\nstall_dump: yes\n",
	          "stall_dump: want true or false");
}

static void
test_loop_key(void **state)
{
	struct config *cfg;

	(void)state;
	cfg = parse_ok(W "loop: {}\n");
	assert_int_equal(worker(cfg)->pol->loop_repeats, 5);
	config_free(cfg);
	cfg = parse_ok(W "loop: {repeats: 3}\n");
	assert_int_equal(worker(cfg)->pol->loop_repeats, 3);
	config_free(cfg);
	cfg = parse_ok(W "loop: none\n");
	assert_int_equal(worker(cfg)->pol->loop_repeats, 0);
	config_free(cfg);
	parse_bad(W "loop: {repeats: 1}\n",
	          "loop.repeats: want a whole number");
	parse_bad(W "loop: {times: 3}\n", "loop: unknown key \"times\"");
	parse_bad(W "loop: 5\n", "loop: want none or a mapping");
}

static void
test_budget_key(void **state)
{
	struct config *cfg;
	const struct spec *w;

	(void)state;
	cfg = parse_ok(W "budget: {tokens: 1000, cost: 2.5, steps: 40, "
	                 "wall: 1h}\n");
	w = worker(cfg);
	assert_true(w->pol->budget.enabled);
	assert_int_equal(w->pol->budget.tokens, 1000);
	assert_true(w->pol->budget.cost == 2.5);
	assert_int_equal(w->pol->budget.steps, 40);
	assert_int_equal(w->pol->budget.wall_ms, 3600000);
	config_free(cfg);
	/* on a supervisor, and through defaults to its workers */
	cfg = parse_ok("supervisor: s\nbudget: {cost: 10}\n"
	               "defaults: {budget: {tokens: 5}}\n"
	               "children:\n  - {worker: a, command: x}\n"
	               "  - {worker: b, command: x, budget: none}\n");
	assert_true(cfg->root->pol->budget.enabled);
	assert_true(cfg->root->pol->budget.cost == 10);
	assert_int_equal(cfg->root->children[0]->pol->budget.tokens, 5);
	assert_false(cfg->root->children[1]->pol->budget.enabled);
	config_free(cfg);
	parse_bad(W "budget: {}\n", "budget: name at least one");
	parse_bad(W "budget: {tokens: 0}\n", "budget.tokens: want a whole");
	parse_bad(W "budget: {cost: -1}\n", "budget.cost: want a number");
	/* the bounds said: "1e300" read as no number at all */
	parse_bad(W "budget: {cost: 1e300}\n", "at most 1e15, written out");
	parse_bad(W "budget: {wall: soon}\n", "budget.wall: want a duration");
	parse_bad(W "budget: {dollars: 3}\n",
	          "budget: unknown key \"dollars\"");
	parse_bad(W "budget: 100\n", "budget: want none or a mapping");
}

static void
test_extend_and_recycle_keys(void **state)
{
	struct config *cfg;

	(void)state;
	cfg = parse_ok(W);
	assert_int_equal(worker(cfg)->pol->extend_max_ms, 600000);
	assert_int_equal(worker(cfg)->pol->recycle_after_ms, 0);
	config_free(cfg);
	cfg = parse_ok(W "extend_max: 30s\nrecycle_after: 1h\n");
	assert_int_equal(worker(cfg)->pol->extend_max_ms, 30000);
	assert_int_equal(worker(cfg)->pol->recycle_after_ms, 3600000);
	config_free(cfg);
	parse_bad(W "recycle_after: 0\n", "recycle_after: must be more");
}

/* A changed §10 key is a policy change (a reload updates it in place),
 * never a process change. */
static void
test_policy_equal(void **state)
{
	static const char *const variants[] = {
	        W "heartbeat: 1s\nstall_timeout: 9s\n",
	        W "heartbeat: 1s\nstall_timeout: 10s\nstall_grace: 1s\n",
	        W "heartbeat: 1s\nstall_timeout: 10s\nstall_dump: true\n",
	        W "heartbeat: 1s\nstall_timeout: 10s\nloop: {}\n",
	        W "heartbeat: 1s\nstall_timeout: 10s\nbudget: {tokens: 1}\n",
	        W "heartbeat: 1s\nstall_timeout: 10s\nextend_max: 1s\n",
	        W "heartbeat: 1s\nstall_timeout: 10s\nrecycle_after: 1h\n",
	};
	struct config *base = parse_ok(W "heartbeat: 1s\nstall_timeout: 10s\n");

	(void)state;
	for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
		struct config *v = parse_ok(variants[i]);
		assert_false(spec_policy_equal(worker(base), worker(v)));
		assert_true(spec_process_equal(worker(base), worker(v)));
		config_free(v);
	}
	config_free(base);
}

static void
test_check_prints_them(void **state)
{
	struct config *cfg = parse_ok(
	        "supervisor: s\nbudget: {cost: 10, wall: 1h}\nchildren:\n"
	        "  - {worker: a, command: x, heartbeat: 1s, stall_timeout: 10s,"
	        " stall_dump: true, loop: {repeats: 4}, budget: {tokens: 100},"
	        " extend_max: 30s, recycle_after: 2h}\n");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	(void)state;
	config_print(cfg, f);
	fclose(f);
	assert_non_null(strstr(buf, "[budget cost 10, wall 1h]"));
	assert_non_null(strstr(buf, "[stall 10s, grace 5s, dump]"));
	assert_non_null(strstr(buf, "[loop 4 repeats]"));
	assert_non_null(strstr(buf, "[budget tokens 100]"));
	assert_non_null(strstr(buf, "[extend at most 30s]"));
	assert_non_null(strstr(buf, "[recycle after 2h]"));
	free(buf);
	config_free(cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_stall_keys),
	        cmocka_unit_test(test_loop_key),
	        cmocka_unit_test(test_budget_key),
	        cmocka_unit_test(test_extend_and_recycle_keys),
	        cmocka_unit_test(test_policy_equal),
	        cmocka_unit_test(test_check_prints_them),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
