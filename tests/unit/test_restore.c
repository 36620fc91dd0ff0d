/*
 * test_restore.c - a worker's saved facts put back at start (restore.c),
 * driven by scripted events as test_tree.c: an open circuit stays open for
 * the time it had left, one whose time has passed is half-open.
 */
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

#include "config.h"
#include "tree.h"

#define TREE                                                                   \
	"supervisor: root\nintensity: 100\nperiod: 1h\nchildren:\n"            \
	"  - worker: w\n    command: x\n    backoff: none\n"                   \
	"    circuit: {failures: 3, window: 10m, open: 1m, open_max: 3m,"      \
	" probe_stable: 10s}\n"                                                \
	"  - {worker: ok, command: x, backoff: none}\n"

struct run {
	struct config *cfg;
	struct tree *t;
	char log[2048]; /* actions, one per line */
	uint64_t now;
};

/* Carry out actions as a fake shell: starts and the circuit's events. */
static void
pump(struct run *r)
{
	struct action a;

	while (tree_next_action(r->t, &a)) {
		if (a.kind == ACT_START)
			logf_(r, "start %s\n", a.node->path);
		else if (a.kind == ACT_EVENT && a.event == EE_QUARANTINED)
			logf_(r, "quarantined %s\n", a.node->path);
		else if (a.kind == ACT_EVENT && a.event == EE_PROBING)
			logf_(r, "probing %s\n", a.node->path);
		else if (a.kind == ACT_EVENT && a.event == EE_RESTARTING)
			logf_(r, "restarting %s\n", a.node->path);
	}
}

/* The tree of a new agentsupd at `now`, w's saved facts put back first. */
static struct run *
restored(const struct tree_saved *sv, uint64_t now)
{
	struct run *r = calloc(1, sizeof *r);

	r->cfg = load_yaml(TREE);
	r->t = tree_new(r->cfg->root);
	r->now = now;
	tree_restore(r->t, tree_find(r->t, "w"), sv, now);
	tree_start(r->t, now);
	pump(r);
	return r;
}

static void
run_free(struct run *r)
{
	tree_free(r->t);
	config_free(r->cfg);
	free(r);
}

static void
expect(struct run *r, const char *want)
{
	if (strcmp(r->log, want) != 0)
		fprintf(stderr, "--- want\n%s--- got\n%s---\n", want, r->log);
	assert_string_equal(r->log, want);
	r->log[0] = '\0';
}

static struct node *
W(struct run *r)
{
	return tree_find(r->t, "w");
}

static void
advance(struct run *r, uint64_t to)
{
	r->now = to;
	tree_tick(r->t, to);
	pump(r);
}

static void
crash(struct run *r)
{
	tree_exited(r->t, W(r), (struct reason){.kind = REASON_EXIT, .code = 1},
	            r->now);
	pump(r);
}

static void
test_open_circuit_waits_its_time_left(void **state)
{
	struct tree_saved sv = {.circuit = CIRCUIT_OPEN,
	                        .open_ms = 60000,
	                        .open_left_ms = 20000};
	struct run *r = restored(&sv, 5000);

	(void)state;
	expect(r, "start root/ok\n"); /* w is not started */
	assert_string_equal(node_state_name(W(r)->state), "quarantined");
	assert_string_equal(circuit_state_name(node_circuit(W(r))->state),
	                    "open");
	assert_int_equal(node_circuit(W(r))->probe_at, 25000);
	assert_int_equal(tree_next_wake(r->t), 25000);
	advance(r, 24999);
	expect(r, "");
	advance(r, 25000); /* its time is up: the probe, as ever */
	expect(r, "probing root/w\nstart root/w\n");
	assert_string_equal(circuit_state_name(node_circuit(W(r))->state),
	                    "half_open");
	crash(r); /* a failed probe reopens it for twice as long */
	expect(r, "quarantined root/w\n");
	assert_int_equal(tree_next_wake(r->t), 25000 + 120000);
	run_free(r);
}

static void
test_open_circuit_whose_time_passed_is_half_open(void **state)
{
	struct tree_saved sv = {
	        .circuit = CIRCUIT_OPEN, .open_ms = 60000, .open_left_ms = 0};
	struct run *r = restored(&sv, 5000);

	(void)state;
	expect(r, "start root/w\nstart root/ok\n"); /* the probe at once */
	assert_string_equal(circuit_state_name(node_circuit(W(r))->state),
	                    "half_open");
	crash(r); /* one failure reopens it, for twice as long */
	expect(r, "quarantined root/w\n");
	assert_int_equal(tree_next_wake(r->t), 5000 + 120000);
	run_free(r);
}

static void
test_probing_circuit_is_half_open(void **state)
{
	struct tree_saved sv = {.circuit = CIRCUIT_HALF_OPEN,
	                        .open_ms = 120000,
	                        .open_left_ms = 50000};
	struct run *r = restored(&sv, 0);

	(void)state;
	expect(r, "start root/w\nstart root/ok\n");
	assert_string_equal(circuit_state_name(node_circuit(W(r))->state),
	                    "half_open");
	crash(r);
	expect(r, "quarantined root/w\n");
	assert_int_equal(tree_next_wake(r->t), 180000); /* capped at 3m */
	run_free(r);
}

static void
test_time_left_never_exceeds_the_open_period(void **state)
{
	/* the wall clock went back a day while agentsupd was down */
	struct tree_saved sv = {.circuit = CIRCUIT_OPEN,
	                        .open_ms = 60000,
	                        .open_left_ms = 86400000};
	struct run *r = restored(&sv, 1000);

	(void)state;
	expect(r, "start root/ok\n");
	assert_int_equal(tree_next_wake(r->t), 61000);
	run_free(r);
}

static void
test_spend_and_a_disabled_circuit(void **state)
{
	struct tree_saved sv = {.spend = {.tokens = 7, .steps = 3},
	                        .circuit = CIRCUIT_OPEN,
	                        .open_ms = 60000,
	                        .open_left_ms = 20000};
	struct run *r = calloc(1, sizeof *r);

	(void)state;
	r->cfg = load_yaml("supervisor: root\nchildren:\n"
	                   "  - {worker: w, command: x}\n");
	r->t = tree_new(r->cfg->root);
	tree_restore(r->t, W(r), &sv, 0);
	tree_start(r->t, 0);
	pump(r);
	/* no circuit configured now: started at once, spend kept */
	expect(r, "start root/w\n");
	assert_int_equal(node_account(W(r))->spend.tokens, 7);
	assert_int_equal(node_account(W(r))->spend.steps, 3);
	assert_string_equal(circuit_state_name(node_circuit(W(r))->state),
	                    "closed");
	run_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_open_circuit_waits_its_time_left),
	        cmocka_unit_test(
	                test_open_circuit_whose_time_passed_is_half_open),
	        cmocka_unit_test(test_probing_circuit_is_half_open),
	        cmocka_unit_test(test_time_left_never_exceeds_the_open_period),
	        cmocka_unit_test(test_spend_and_a_disabled_circuit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
