/*
 * test_tree.c - the engine driven by scripted events, no processes.
 *
 * A fake shell records every action as a line ("start root/a", "stop
 * root/b", "exit 75") and, where a test says so, answers each stop with the
 * process's exit, as an obedient worker would.
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

#include "tree_run.h"

#include "intensity.h"

#define ABCD                                                                   \
	"  - {worker: a, command: x}\n  - {worker: b, command: x}\n"           \
	"  - {worker: c, command: x}\n  - {worker: d, command: x}\n"

static void
test_start_order(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n" ABCD);

	(void)state;
	expect(r, "start root/a\nstart root/b\nstart root/c\nstart root/d\n");
	assert_int_equal(r->t->live, 4);
	run_free(r);
}

/* Each start in the queue, and whether another followed it (y/n): the
 * shell pauses for a worker only after the last of a burst. */
static void
starts_seen(struct tree *t, char *out, size_t len)
{
	struct action a;
	size_t k = 0;

	while (tree_next_action(t, &a))
		if (a.kind == ACT_START && k + 2 < len) {
			out[k++] = a.node->path[strlen(a.node->path) - 1];
			out[k++] = tree_starts_queued(t) ? 'y' : 'n';
		}
	out[k] = '\0';
}

static void
test_starts_queued(void **state)
{
	struct config *cfg = load_yaml("supervisor: root\nstrategy: "
	                               "one_for_all\nchildren:\n" ABCD);
	struct tree *t;
	char seen[32];

	(void)state;
	no_backoff(cfg->root);
	t = tree_new(cfg->root);
	tree_start(t, 0);
	assert_true(tree_starts_queued(t));
	starts_seen(t, seen, sizeof seen);
	assert_string_equal(seen, "aybycydn"); /* the bring-up: one burst */
	assert_false(tree_starts_queued(t));
	tree_exited(t, t->root->children[1],
	            (struct reason){.kind = REASON_EXIT, .code = 1}, 1);
	starts_seen(t, seen, sizeof seen); /* the stops are not answered */
	assert_string_equal(seen, "");
	for (int i = 3; i >= 0; i--)
		if (i != 1)
			tree_exited(t, t->root->children[i],
			            (struct reason){.kind = REASON_SIGNAL,
			                            .code = 15},
			            2);
	starts_seen(t, seen, sizeof seen);
	assert_string_equal(seen, "aybycydn"); /* the group's restart */
	tree_free(t);
	config_free(cfg);
}

static void
test_one_for_one(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n" ABCD);

	(void)state;
	crash(r, "b", 1);
	expect(r, "restarting root/b\nstart root/b\n");
	assert_int_equal(N(r, "b")->starts, 2);
	assert_int_equal(N(r, "a")->starts, 1);
	run_free(r);
}

static void
test_one_for_all(void **state)
{
	struct run *r = run_new("supervisor: root\nstrategy: one_for_all\n"
	                        "children:\n" ABCD);

	(void)state;
	crash(r, "b", 1);
	expect(r, "restarting root/b\nstop root/d\nstop root/c\nstop root/a\n"
	          "start root/a\nstart root/b\nstart root/c\nstart root/d\n");
	run_free(r);
}

static void
test_rest_for_one(void **state)
{
	struct run *r = run_new("supervisor: root\nstrategy: rest_for_one\n"
	                        "children:\n" ABCD);

	(void)state;
	crash(r, "b", 1);
	expect(r, "restarting root/b\nstop root/d\nstop root/c\n"
	          "start root/b\nstart root/c\nstart root/d\n");
	crash(r, "d", 1);
	expect(r, "restarting root/d\nstart root/d\n");
	run_free(r);
}

/* Stops are asynchronous: the next stop waits for the previous exit. */
static void
test_stops_wait_for_exits(void **state)
{
	struct run *r = run_new("supervisor: root\nstrategy: one_for_all\n"
	                        "children:\n" ABCD);

	(void)state;
	r->obedient = false;
	crash(r, "a", 1);
	expect(r, "restarting root/a\nstop root/d\n");
	r->log[0] = '\0';
	tree_exited(r->t, N(r, "d"),
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, 0);
	pump(r);
	expect(r, "stop root/c\n");
	r->log[0] = '\0';
	tree_exited(r->t, N(r, "c"),
	            (struct reason){.kind = REASON_SIGNAL, .code = 9}, 0);
	pump(r);
	expect(r, "stop root/b\n");
	r->log[0] = '\0';
	tree_exited(r->t, N(r, "b"), (struct reason){.kind = REASON_EXIT}, 0);
	pump(r);
	expect(r, "start root/a\nstart root/b\nstart root/c\nstart root/d\n");
	run_free(r);
}

static void
test_transient(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nchildren:\n"
	                "  - {worker: t, command: x, restart: transient}\n");

	(void)state;
	crash(r, "t", 2);
	expect(r, "restarting root/t\nstart root/t\n");
	crash(r, "t", 0);
	expect(r, "");
	assert_int_equal(N(r, "t")->state, NODE_STOPPED);
	r->log[0] = '\0';
	tree_exited(r->t, N(r, "t"),
	            (struct reason){.kind = REASON_SIGNAL, .code = 9}, 0);
	pump(r);
	expect(r, ""); /* already stopped: a late duplicate is ignored */
	run_free(r);
}

static void
test_transient_signal_and_hang_abnormal(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nintensity: 5\nchildren:\n"
	                "  - {worker: t, command: x, restart: transient}\n");

	(void)state;
	r->log[0] = '\0';
	tree_exited(r->t, N(r, "t"),
	            (struct reason){.kind = REASON_SIGNAL, .code = 9}, 0);
	pump(r);
	expect(r, "restarting root/t\nstart root/t\n");
	r->log[0] = '\0';
	tree_exited(r->t, N(r, "t"), (struct reason){.kind = REASON_HANG}, 0);
	pump(r);
	expect(r, "restarting root/t\nstart root/t\n");
	run_free(r);
}

static void
test_temporary(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nchildren:\n"
	                "  - {worker: t, command: x, restart: temporary}\n");

	(void)state;
	crash(r, "t", 1);
	expect(r, "");
	assert_int_equal(N(r, "t")->state, NODE_STOPPED);
	run_free(r);
}

/* OTP: a temporary child stopped by a sibling's failure is not restarted;
 * a transient one that had exited normally is. */
static void
test_one_for_all_restart_types(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nstrategy: one_for_all\nchildren:\n"
	                "  - {worker: p, command: x}\n"
	                "  - {worker: tmp, command: x, restart: temporary}\n"
	                "  - {worker: tr, command: x, restart: transient}\n"
	                "  - {worker: q, command: x}\n");

	(void)state;
	crash(r, "tr", 0); /* normal exit: not restarted, no strategy */
	expect(r, "");
	crash(r, "p", 1);
	expect(r, "restarting root/p\nstop root/q\nstop root/tmp\n"
	          "start root/p\nstart root/tr\nstart root/q\n");
	assert_int_equal(N(r, "tmp")->state, NODE_STOPPED);
	run_free(r);
}

static void
test_intensity_n_allowed_n_plus_1_gives_up(void **state)
{
	struct run *r = run_new("supervisor: root\nintensity: 2\nperiod: 10s\n"
	                        "children:\n  - {worker: w, command: x}\n"
	                        "  - {worker: other, command: x}\n");

	(void)state;
	r->now = 1000;
	crash(r, "w", 1);
	expect(r, "restarting root/w\nstart root/w\n");
	r->now = 2000;
	crash(r, "w", 1);
	expect(r, "restarting root/w\nstart root/w\n");
	r->now = 3000;
	crash(r, "w", 1);
	expect(r, "gave_up root\nstop root/other\nexit 75\n");
	assert_int_equal(r->exit_code, 75);
	assert_int_equal(N(r, "w")->starts, 3);
	run_free(r);
}

static void
test_intensity_zero(void **state)
{
	struct run *r = run_new("supervisor: root\nintensity: 0\n"
	                        "children:\n  - {worker: w, command: x}\n");

	(void)state;
	crash(r, "w", 1);
	expect(r, "gave_up root\nexit 75\n");
	run_free(r);
}

/* Once the exit is queued (agentsupd still runs its last hooks), commands
 * are refused: a restart was answered done, status showed the tree
 * running, and nothing was ever started. */
static void
test_commands_refused_once_exiting(void **state)
{
	struct run *r = run_new("supervisor: root\nintensity: 0\n"
	                        "children:\n  - {worker: w, command: x}\n");
	struct refusal rf;
	char msg[128];

	(void)state;
	crash(r, "w", 1);
	expect(r, "gave_up root\nexit 75\n");
	r->log[0] = '\0';
	rf = command_restart(r->t, N(r, "root"), 0);
	assert_int_equal(rf.kind, REFUSED_EXITED);
	command_refusal_format(rf, msg, sizeof msg);
	assert_string_equal(msg, "agentsupd is exiting: the tree has ended");
	assert_int_equal(command_start(r->t, N(r, "w"), 0).kind,
	                 REFUSED_EXITED);
	assert_int_equal(command_reset(r->t, N(r, "root"), 0).kind,
	                 REFUSED_EXITED);
	pump(r);
	expect(r, "");
	assert_int_equal(N(r, "w")->state, NODE_STOPPED);
	run_free(r);
}

/* The window is inclusive: a stamp exactly `period` old still counts. */
static void
test_window_inclusive_edge(void **state)
{
	struct run *r = run_new("supervisor: root\nintensity: 1\nperiod: 10s\n"
	                        "children:\n  - {worker: w, command: x}\n");

	(void)state;
	r->now = 5000;
	crash(r, "w", 1);
	expect(r, "restarting root/w\nstart root/w\n");
	r->now = 15000;
	crash(r, "w", 1);
	expect(r, "gave_up root\nexit 75\n");
	run_free(r);
}

static void
test_window_slides(void **state)
{
	struct run *r = run_new("supervisor: root\nintensity: 1\nperiod: 10s\n"
	                        "children:\n  - {worker: w, command: x}\n");

	(void)state;
	for (int i = 0; i < 6; i++) {
		r->now = 5000 + (uint64_t)i * 10001;
		crash(r, "w", 1);
		expect(r, "restarting root/w\nstart root/w\n");
	}
	assert_int_equal(intensity_count(r->t->root, r->now), 1);
	run_free(r);
}

static void
test_one_failure_counts_once(void **state)
{
	struct run *r = run_new("supervisor: root\nstrategy: one_for_all\n"
	                        "intensity: 1\nchildren:\n" ABCD);

	(void)state;
	crash(r, "a", 1);
	assert_int_equal(r->t->root->super->nstamps, 1);
	assert_int_equal(r->exit_code, -1);
	crash(r, "c", 1);
	assert_int_equal(r->exit_code, 75);
	run_free(r);
}

static const char nested[] =
        "supervisor: root\nintensity: 1\nperiod: 1m\nchildren:\n"
        "  - {worker: sibling, command: x}\n"
        "  - supervisor: mid\n"
        "    intensity: 1\n"
        "    period: 1m\n"
        "    children:\n"
        "      - supervisor: leaf\n"
        "        intensity: 0\n"
        "        children:\n"
        "          - {worker: w, command: x}\n"
        "          - {worker: w2, command: x}\n";

/* leaf gives up at once; mid restarts it once then gives up; root restarts
 * mid once then gives up: exit 75, and the sibling is never restarted. */
static void
test_nested_escalation(void **state)
{
	struct run *r = run_new(nested);

	(void)state;
	crash(r, "w", 1);
	expect(r, "gave_up root/mid/leaf\nstop root/mid/leaf/w2\n"
	          "escalated root/mid/leaf\nrestarting root/mid/leaf\n"
	          "start root/mid/leaf/w\nstart root/mid/leaf/w2\n");
	crash(r, "w2", 1);
	expect(r, "gave_up root/mid/leaf\nstop root/mid/leaf/w\n"
	          "escalated root/mid/leaf\ngave_up root/mid\n"
	          "escalated root/mid\nrestarting root/mid\n"
	          "start root/mid/leaf/w\nstart root/mid/leaf/w2\n");
	crash(r, "w", 1);
	crash(r, "w", 1);
	expect(r, "gave_up root/mid/leaf\nstop root/mid/leaf/w2\n"
	          "escalated root/mid/leaf\ngave_up root/mid\n"
	          "escalated root/mid\ngave_up root\nstop root/sibling\n"
	          "exit 75\n");
	assert_int_equal(N(r, "sibling")->starts, 1);
	run_free(r);
}

/* A restarted subtree starts with a fresh restart history. */
static void
test_restarted_subtree_fresh_history(void **state)
{
	struct run *r = run_new(
	        "supervisor: root\nintensity: 5\nchildren:\n"
	        "  - supervisor: sub\n    intensity: 1\n    children:\n"
	        "      - {worker: w, command: x}\n"
	        "      - {worker: z, command: x, restart: temporary}\n");

	(void)state;
	crash(r, "w", 1);
	assert_int_equal(N(r, "sub")->super->nstamps, 1);
	crash(r, "w", 1); /* sub gives up, root restarts it */
	assert_int_equal(N(r, "sub")->super->nstamps, 0);
	assert_int_equal(N(r, "sub")->state, NODE_RUNNING);
	/* the temporary child is started again with its restarted parent */
	assert_int_equal(N(r, "z")->state, NODE_RUNNING);
	run_free(r);
}

static void
test_shutdown_reverse_order(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: a, command: x}\n"
	                        "  - supervisor: s\n    children:\n"
	                        "      - {worker: b, command: x}\n"
	                        "      - {worker: c, command: x}\n"
	                        "  - {worker: d, command: x}\n");

	(void)state;
	r->log[0] = '\0';
	tree_shutdown(r->t, 0);
	pump(r);
	expect(r, "stop root/d\nstop root/s/c\nstop root/s/b\nstop root/a\n"
	          "exit 0\n");
	assert_int_equal(r->t->live, 0);
	run_free(r);
}

/* A failure during shutdown is not restarted. */
static void
test_failure_during_shutdown(void **state)
{
	struct run *r = run_new("supervisor: root\nstrategy: one_for_all\n"
	                        "children:\n" ABCD);

	(void)state;
	r->obedient = false;
	r->log[0] = '\0';
	tree_shutdown(r->t, 0);
	pump(r);
	expect(r, "stop root/d\n");
	crash(r, "a", 1);
	expect(r, "");
	r->obedient = true;
	r->log[0] = '\0';
	tree_exited(r->t, N(r, "d"),
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, 0);
	pump(r);
	expect(r, "stop root/c\nstop root/b\nexit 0\n");
	run_free(r);
}

/* With start_timeout a worker must be ready before the next one starts. */
static void
test_start_waits_for_ready(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nchildren:\n"
	                "  - {worker: db, command: x, start_timeout: 5s}\n"
	                "  - {worker: app, command: x}\n");

	(void)state;
	expect(r, "start root/db\n");
	assert_int_equal(N(r, "db")->state, NODE_STARTING);
	r->log[0] = '\0';
	tree_ready(r->t, N(r, "db"), 0);
	pump(r);
	expect(r, "start root/app\n");
	assert_int_equal(r->t->root->state, NODE_RUNNING);
	run_free(r);
}

/* The start_timeout failure of the child being waited on moves the job on,
 * then is handled: one_for_one restarts it. */
static void
test_start_timeout_failure(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nchildren:\n"
	                "  - {worker: db, command: x, start_timeout: 5s}\n"
	                "  - {worker: app, command: x}\n");

	(void)state;
	r->log[0] = '\0';
	tree_exited(r->t, N(r, "db"),
	            (struct reason){.kind = REASON_START_TIMEOUT}, 0);
	pump(r);
	expect(r, "start root/app\nrestarting root/db\nstart root/db\n");
	run_free(r);
}

static void
fail_starting(struct run *r, const char *name)
{
	r->log[0] = '\0';
	tree_exited(r->t, N(r, name),
	            (struct reason){.kind = REASON_EXIT, .code = 1}, 0);
	pump(r);
}

static void
ready_now(struct run *r, const char *name)
{
	r->log[0] = '\0';
	tree_ready(r->t, N(r, name), 0);
	pump(r);
}

/* rest_for_one: a child that fails before it is ready is restarted before
 * a later sibling, which depends on it, is started (app was started after
 * each failed start of db, then stopped by the restart); a temporary one
 * its failed start kept from its first start starts with the others. */
static void
test_start_failure_stops_the_start_there(void **state)
{
	struct run *r = run_new(
	        "supervisor: root\nstrategy: rest_for_one\nintensity: 5\n"
	        "children:\n"
	        "  - {worker: db, command: x, start_timeout: 5s}\n"
	        "  - {worker: app, command: x}\n"
	        "  - {worker: once, command: x, restart: temporary}\n");

	(void)state;
	expect(r, "start root/db\n");
	fail_starting(r, "db");
	expect(r, "restarting root/db\nstart root/db\n");
	fail_starting(r, "db");
	expect(r, "restarting root/db\nstart root/db\n");
	ready_now(r, "db");
	expect(r, "start root/app\nstart root/once\n");
	assert_int_equal(r->t->root->state, NODE_RUNNING);
	run_free(r);
}

/* The same with backoff: the restart waits, then the rest start after db
 * is ready, the temporary one too. */
static void
test_start_failure_with_backoff(void **state)
{
	struct run *r = run_new_with(
	        "supervisor: root\nstrategy: rest_for_one\nintensity: 5\n"
	        "children:\n"
	        "  - {worker: db, command: x, start_timeout: 5s}\n"
	        "  - {worker: app, command: x}\n"
	        "  - {worker: once, command: x, restart: temporary}\n",
	        true);

	(void)state;
	fail_starting(r, "db"); /* the first at once */
	expect(r, "restarting root/db\nstart root/db\n");
	fail_starting(r, "db");
	assert_non_null(strstr(r->log, "backoff root/db"));
	assert_null(strstr(r->log, "start root/"));
	r->log[0] = '\0';
	advance(r, 60000);
	expect(r, "start root/db\n");
	ready_now(r, "db");
	expect(r, "start root/app\nstart root/once\n");
	run_free(r);
}

/* A permanent worker that exits 0 (or declares done) before it is ready
 * never came up: its restarts back off like a failed start's. They were
 * immediate (a clean end counts no failure), so under rest_for_one its
 * later siblings waited while it spent root's intensity in milliseconds.
 * A clean end after it was ready still comes back at once. */
static void
test_clean_exit_before_ready_backs_off(void **state)
{
	struct run *r = run_new_with(
	        "supervisor: root\nstrategy: rest_for_one\nintensity: 5\n"
	        "children:\n"
	        "  - worker: db\n    command: x\n    start_timeout: 5s\n"
	        "    backoff: {initial: 1s, jitter: none}\n"
	        "  - {worker: app, command: x}\n",
	        true);

	(void)state;
	crash(r, "db", 0); /* the first at once */
	expect(r, "restarting root/db\nstart root/db\n");
	declare(r, "db", DECLARED_DONE, 0);
	crash(r, "db", 0);
	expect(r, "restarting root/db\nbackoff root/db 1000ms\n");
	assert_string_equal(state_of(r, "db"), "backoff");
	advance(r, r->now + 1000);
	expect(r, "start root/db\n");
	r->log[0] = '\0';
	tree_ready(r->t, N(r, "db"), r->now);
	pump(r);
	expect(r, "start root/app\n");
	crash(r, "db", 0); /* it was up: a clean end, back at once */
	assert_int_equal(N(r, "db")->failures, 0);
	assert_null(strstr(r->log, "backoff root/db"));
	/* up once is not up now: its next starts that end cleanly before
	 * ready back off again (the last ready's time was kept, and they
	 * looped at once) */
	crash(r, "db", 0);
	expect(r, "restarting root/db\nstart root/db\n");
	crash(r, "db", 0);
	expect(r, "restarting root/db\nbackoff root/db 1000ms\n");
	assert_int_equal(r->exit_code, -1); /* root never gave up */
	run_free(r);
}

/* Such ends open a circuit as failed starts do (supervisord's startretries
 * then FATAL): one that never comes up is quarantined. */
static void
test_clean_exits_before_ready_open_the_circuit(void **state)
{
	struct run *r = run_new_with(
	        "supervisor: root\nintensity: 100\nperiod: 1h\nchildren:\n"
	        "  - worker: w\n    command: x\n    start_timeout: 5s\n"
	        "    circuit: {failures: 3, window: 1m, open: 1m}\n",
	        true);

	(void)state;
	for (int i = 0; i < 3; i++) {
		crash(r, "w", 0);
		if (strcmp(state_of(r, "w"), "backoff") == 0)
			advance(r, N(r, "w")->backoff_until);
	}
	assert_string_equal(state_of(r, "w"), "quarantined");
	run_free(r);
}

/* one_for_all: a group restart whose first start fails starts nothing
 * after it; the failure's restart starts them all once it is ready. */
static void
test_group_restart_start_failure(void **state)
{
	struct run *r = run_new(
	        "supervisor: root\nstrategy: one_for_all\nintensity: 5\n"
	        "children:\n"
	        "  - {worker: db, command: x, start_timeout: 5s}\n"
	        "  - {worker: app, command: x}\n");

	(void)state;
	ready_now(r, "db");
	expect(r, "start root/app\n");
	crash(r, "db", 1);
	expect(r, "restarting root/db\nstop root/app\nstart root/db\n");
	fail_starting(r, "db");
	expect(r, "restarting root/db\nstart root/db\n");
	ready_now(r, "db");
	expect(r, "start root/app\n");
	run_free(r);
}

/* A failed start that is not restarted (temporary) lets the later
 * siblings start; one that spends the intensity starts none of them. */
static void
test_start_failure_not_restarted_or_given_up(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nstrategy: rest_for_one\nchildren:\n"
	                "  - {worker: db, command: x, start_timeout: 5s,"
	                " restart: temporary}\n"
	                "  - {worker: app, command: x}\n");

	(void)state;
	fail_starting(r, "db");
	expect(r, "start root/app\n");
	run_free(r);
	r = run_new("supervisor: root\nstrategy: rest_for_one\n"
	            "intensity: 0\nchildren:\n"
	            "  - {worker: db, command: x, start_timeout: 5s}\n"
	            "  - {worker: app, command: x}\n");
	fail_starting(r, "db");
	expect(r, "gave_up root\nexit 75\n");
	assert_int_equal(N(r, "app")->starts, 0);
	run_free(r);
}

/* OTP: a supervisor past its intensity ends `shutdown`, which the parent
 * of a transient one takes as a normal end: it was restarted and counted
 * as a permanent one (transient meant nothing on a supervisor); one that
 * is significant as well takes its parent down with it. */
static void
test_transient_supervisor_that_gave_up_stays_down(void **state)
{
	const char *tree = "supervisor: root\nintensity: 5\nchildren:\n"
	                   "  - {worker: other, command: x}\n"
	                   "  - supervisor: sub\n"
	                   "    restart: transient\n"
	                   "    intensity: 0\n%s"
	                   "    children:\n"
	                   "      - {worker: crashy, command: x}\n";
	char yaml[512];
	struct run *r;

	(void)state;
	snprintf(yaml, sizeof yaml, tree, "");
	r = run_new(yaml);
	crash(r, "crashy", 1);
	expect(r, "gave_up root/sub\nescalated root/sub\n");
	assert_int_equal(N(r, "sub")->state, NODE_STOPPED);
	assert_int_equal(intensity_count(r->t->root, 0), 0);
	assert_int_equal(N(r, "other")->state, NODE_RUNNING);
	run_free(r);
	snprintf(yaml, sizeof yaml, tree, "    significant: true\n");
	r = run_new(yaml);
	crash(r, "crashy", 1);
	expect(r, "gave_up root/sub\nescalated root/sub\ngave_up root\n"
	          "stop root/other\nexit 75\n");
	run_free(r);
}

/* A reload's restart (SELECT_MARKED) cut short by a start failure took
 * its marks along neither into the group restart that replaced it nor
 * into a give-up: a later reload that changed only b restarted the whole
 * group (a second reader found it). */
static void
test_start_failure_drops_a_reloads_marks(void **state)
{
	const char *fmt =
	        "supervisor: root\nintensity: 5\nchildren:\n"
	        "  - supervisor: s\n"
	        "    strategy: one_for_all\n"
	        "    intensity: %d\n"
	        "    children:\n"
	        "      - {worker: a, command: %s, start_timeout: 5s}\n"
	        "      - {worker: b, command: %s}\n"
	        "      - {worker: c, command: %s}\n";
	struct reload_report rep;
	struct run *r;
	char y[1024];

	(void)state;
	for (int intensity = 0; intensity <= 5; intensity += 5) {
		snprintf(y, sizeof y, fmt, intensity, "x", "x", "x");
		r = run_new(y);
		ready_now(r, "a");
		snprintf(y, sizeof y, fmt, intensity, "x2", "x", "x2");
		run_reload(r, y, &rep); /* a and c changed: both marked */
		pump(r);
		reload_report_free(&rep);
		fail_starting(r, "a"); /* restarted, or s gives up */
		ready_now(r, "a");
		assert_false(N(r, "c")->marked);
		snprintf(y, sizeof y, fmt, intensity, "x2", "x3", "x2");
		r->log[0] = '\0';
		run_reload(r, y, &rep); /* only b changed */
		pump(r);
		assert_string_equal(joined(&rep.restarted), "root/s/b");
		assert_null(strstr(r->log, "stop root/s/c"));
		reload_report_free(&rep);
		run_free(r);
	}
}

/* A temporary child whose spawn found the machine exhausted is retried
 * (it never ran), under one_for_all too: it stayed in backoff for ever,
 * the group restart's start leaving out what is temporary. */
static void
test_temporary_spawn_exhausted_group(void **state)
{
	struct run *r = run_new_with(
	        "supervisor: root\nstrategy: one_for_all\nintensity: 5\n"
	        "children:\n"
	        "  - {worker: a, command: x}\n"
	        "  - {worker: t, command: x, restart: temporary}\n",
	        true);

	(void)state;
	r->log[0] = '\0';
	tree_exited(r->t, N(r, "t"),
	            (struct reason){.kind = REASON_SPAWN, .code = EAGAIN}, 0);
	pump(r);
	advance(r, 60000);
	assert_string_equal(state_of(r, "t"), "running");
	assert_string_equal(state_of(r, "a"), "running");
	run_free(r);
}

/* A supervisor child that gives up while its one_for_all parent starts
 * it: the later sibling is never started, and the parent's intensity
 * spent, agentsupd exits 75. */
static void
test_child_supervisor_gives_up_at_start(void **state)
{
	struct run *r = run_new(
	        "supervisor: root\nstrategy: one_for_all\nintensity: 2\n"
	        "children:\n"
	        "  - supervisor: sub\n"
	        "    intensity: 0\n"
	        "    children:\n"
	        "      - {worker: x, command: x, start_timeout: 5s}\n"
	        "  - {worker: w, command: x}\n");

	(void)state;
	expect(r, "start root/sub/x\n");
	for (int i = 0; i < 3; i++)
		fail_starting(r, "x");
	assert_int_equal(N(r, "w")->starts, 0);
	assert_int_equal(r->exit_code, 75);
	run_free(r);
}

/* A supervisor whose first child failed to start and waits out its
 * backoff is not up: under rest_for_one its later sibling c waited through
 * inner/a's immediate retry, then started as the retry went into backoff,
 * inner/a never ready (a hostile trial found it). It starts once inner's
 * children are up. */
static void
test_a_supervisor_with_a_waiting_group_holds_its_later_siblings(void **state)
{
	struct run *r = run_new_with(
	        "supervisor: root\nstrategy: rest_for_one\nchildren:\n"
	        "  - supervisor: inner\n"
	        "    strategy: rest_for_one\n"
	        "    intensity: 100\n"
	        "    children:\n"
	        "      - worker: a\n"
	        "        command: x\n"
	        "        start_timeout: 5s\n"
	        "        backoff: {initial: 1s, max: 2s, jitter: none}\n"
	        "      - {worker: b, command: x}\n"
	        "  - {worker: c, command: x}\n",
	        true);

	(void)state;
	expect(r, "start root/inner/a\n");
	fail_starting(r, "a"); /* the first at once */
	expect(r, "restarting root/inner/a\nstart root/inner/a\n");
	fail_starting(r, "a"); /* then its backoff */
	assert_null(strstr(r->log, "start root/c"));
	assert_int_equal(N(r, "c")->starts, 0);
	advance(r, 10000);
	expect(r, "start root/inner/a\n");
	ready_now(r, "a");
	expect(r, "start root/inner/b\nstart root/c\n");
	assert_int_equal(r->t->root->super->job.kind, JOB_NONE);
	run_free(r);
}

/* A failure outside the range of a running job waits for the job. */
static void
test_pending_failure(void **state)
{
	struct run *r = run_new("supervisor: root\nstrategy: rest_for_one\n"
	                        "intensity: 5\nchildren:\n" ABCD);

	(void)state;
	r->obedient = false;
	crash(r, "c", 1);
	expect(r, "restarting root/c\nstop root/d\n");
	crash(r, "a", 1); /* outside [c, d]: pending */
	expect(r, "");
	r->obedient = true;
	r->log[0] = '\0';
	tree_exited(r->t, N(r, "d"),
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, 0);
	pump(r);
	expect(r, "start root/c\nstart root/d\nrestarting root/a\n"
	          "stop root/d\nstop root/c\nstop root/b\n"
	          "start root/a\nstart root/b\nstart root/c\nstart root/d\n");
	run_free(r);
}

/* A failure inside the stop range of a running job is absorbed. */
static void
test_absorbed_failure(void **state)
{
	struct run *r = run_new("supervisor: root\nstrategy: one_for_all\n"
	                        "intensity: 5\nchildren:\n" ABCD);

	(void)state;
	r->obedient = false;
	crash(r, "d", 1);
	expect(r, "restarting root/d\nstop root/c\n");
	crash(r, "a", 1); /* about to be stopped anyway */
	expect(r, "");
	r->obedient = true;
	r->log[0] = '\0';
	tree_exited(r->t, N(r, "c"),
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, 0);
	pump(r);
	expect(r, "stop root/b\nstart root/a\nstart root/b\nstart root/c\n"
	          "start root/d\n");
	assert_int_equal(r->t->root->super->nstamps, 1);
	run_free(r);
}

static void
test_drain(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: a, command: x}\n"
	                        "  - supervisor: s\n    children:\n"
	                        "      - {worker: b, command: x}\n");

	(void)state;
	r->log[0] = '\0';
	tree_drain(r->t, 0);
	pump(r);
	expect(r, "drain root/s/b\ndrain root/a\n");
	crash(r, "a", 1); /* any status during a drain: drained, no restart */
	expect(r, "");
	crash(r, "b", 0);
	expect(r, "exit 0\n");
	run_free(r);
}

static void
test_shutdown_cuts_drain_short(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: a, command: x}\n"
	                        "  - {worker: b, command: x}\n");

	(void)state;
	r->obedient = false;
	tree_drain(r->t, 0);
	pump(r);
	r->log[0] = '\0';
	tree_drain(r->t, 0); /* a second drain changes nothing */
	pump(r);
	expect(r, "");
	tree_shutdown(r->t, 0);
	pump(r);
	expect(r, "stop root/a\nstop root/b\n");
	crash(r, "a", 0);
	crash(r, "b", 0);
	expect(r, "exit 0\n");
	run_free(r);
}

static void
test_command_stop_holds(void **state)
{
	struct run *r = run_new("supervisor: root\nstrategy: one_for_all\n"
	                        "intensity: 5\nchildren:\n" ABCD);

	(void)state;
	assert_int_equal(operate(r, command_stop, "b"), REFUSED_NONE);
	expect(r, "stop root/b\n");
	crash(r, "c", 1);
	expect(r, "restarting root/c\nstop root/d\nstop root/a\n"
	          "start root/a\nstart root/c\nstart root/d\n");
	assert_int_equal(operate(r, command_start, "b"), REFUSED_NONE);
	expect(r, "start root/b\n");
	assert_int_equal(operate(r, command_restart, "c"), REFUSED_NONE);
	expect(r, "stop root/c\nstart root/c\n");
	assert_int_equal(intensity_count(r->t->root, 0), 1); /* never counted */
	run_free(r);
}

/* `autostart: false`: held by its config, not started with its
 * supervisor nor by its group's restarts, until an operator starts it;
 * then an ordinary child. A reload that turns it on starts it. */
static void
test_autostart_false(void **state)
{
	struct reload_report rep;
	struct run *r =
	        run_new("supervisor: root\nstrategy: one_for_all\n"
	                "intensity: 5\nchildren:\n"
	                "  - {worker: a, command: x}\n"
	                "  - {worker: b, command: x, autostart: false}\n"
	                "  - {worker: c, command: x}\n");

	(void)state;
	expect(r, "start root/a\nstart root/c\n");
	assert_true(N(r, "b")->held && N(r, "b")->held_config);
	crash(r, "a", 1);
	expect(r, "restarting root/a\nstop root/c\nstart root/a\n"
	          "start root/c\n");
	assert_int_equal(operate(r, command_start, "b"), REFUSED_NONE);
	expect(r, "start root/b\n");
	assert_false(N(r, "b")->held || N(r, "b")->held_config);
	crash(r, "c", 1); /* now one of the group */
	expect(r, "restarting root/c\nstop root/b\nstop root/a\n"
	          "start root/a\nstart root/b\nstart root/c\n");
	assert_int_equal(operate(r, command_stop, "b"), REFUSED_NONE);
	assert_true(N(r, "b")->held && !N(r, "b")->held_config); /* stored */
	/* added by a reload: not started; turned on: started */
	run_reload(r,
	           "supervisor: root\nstrategy: one_for_all\n"
	           "intensity: 5\nchildren:\n"
	           "  - {worker: a, command: x}\n"
	           "  - {worker: b, command: x, autostart: false}\n"
	           "  - {worker: c, command: x}\n"
	           "  - {worker: d, command: x, autostart: false}\n",
	           &rep);
	r->log[0] = '\0';
	pump(r);
	expect(r, "");
	assert_true(N(r, "d")->held_config);
	reload_report_free(&rep);
	run_reload(r,
	           "supervisor: root\nstrategy: one_for_all\n"
	           "intensity: 5\nchildren:\n"
	           "  - {worker: a, command: x}\n"
	           "  - {worker: b, command: x}\n"
	           "  - {worker: c, command: x}\n"
	           "  - {worker: d, command: x}\n",
	           &rep);
	pump(r);
	expect(r, "start root/d\n"); /* b: an operator's stop holds */
	assert_string_equal(joined(&rep.updated), "root/b, root/d");
	reload_report_free(&rep);
	run_free(r);
}

/* A supervisor held by `autostart: false`, with a child held too. */
#define TEAM_HELD                                                              \
	"supervisor: root\nchildren:\n"                                        \
	"  - {worker: a, command: x}\n"                                        \
	"  - supervisor: team\n"                                               \
	"    autostart: false\n"                                               \
	"    children:\n"                                                      \
	"      - {worker: x, command: x, autostart: false}\n"                  \
	"      - {worker: y, command: x}\n"

/* A supervisor held by `autostart: false`: a start of its child is refused
 * naming that hold (not "by command"); an operator's restart of it starts
 * it, and its children but the held one, stopped or running. */
static void
test_autostart_false_supervisor(void **state)
{
	struct run *r = run_new(TEAM_HELD);
	struct refusal rf;
	char msg[256];

	(void)state;
	expect(r, "start root/a\n");
	rf = command_start(r->t, N(r, "x"), 0);
	assert_int_equal(rf.kind, REFUSED_PARENT_DOWN);
	command_refusal_format(rf, msg, sizeof msg);
	assert_non_null(strstr(msg, "root/team is stopped (autostart: false)"));
	assert_int_equal(operate(r, command_restart, "team"), REFUSED_NONE);
	expect(r, "start root/team/y\n");
	assert_int_equal(operate(r, command_restart, "team"), REFUSED_NONE);
	expect(r, "stop root/team/y\nstart root/team/y\n");
	assert_true(N(r, "x")->held_config);
	run_free(r);
}

/* A reload that turns a supervisor's `autostart` on starts it, and with
 * it each of its children once: those the same reload releases or adds
 * were also marked, and once the supervisor's start had started them its
 * own reload job restarted them (stopped a millisecond after starting). */
static void
test_autostart_released_supervisor_starts_children_once(void **state)
{
	struct reload_report rep;
	struct run *r = run_new(TEAM_HELD);

	(void)state;
	expect(r, "start root/a\n");
	run_reload(r,
	           "supervisor: root\nchildren:\n"
	           "  - {worker: a, command: x}\n"
	           "  - supervisor: team\n"
	           "    children:\n"
	           "      - {worker: x, command: x}\n"
	           "      - {worker: y, command: x}\n"
	           "      - {worker: z, command: x}\n",
	           &rep);
	r->log[0] = '\0';
	pump(r);
	expect(r, "start root/team/x\nstart root/team/y\n"
	          "start root/team/z\n");
	assert_int_equal(N(r, "team")->state, NODE_RUNNING);
	reload_report_free(&rep);
	run_free(r);
}

static void
test_command_restart_subtree(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - supervisor: s\n    children:\n"
	                        "      - {worker: a, command: x}\n"
	                        "      - {worker: b, command: x}\n");

	(void)state;
	r->log[0] = '\0';
	assert_int_equal(command_restart(r->t, N(r, "s"), 0).kind,
	                 REFUSED_NONE);
	pump(r);
	expect(r, "stop root/s/b\nstop root/s/a\nstart root/s/a\n"
	          "start root/s/b\n");
	run_free(r);
}

/* Children of a supervisor put in a new order: its start and stop order
 * changed, and the reload's report said nothing (updated []); a removed
 * child alone leaves the others' order as it was. */
static void
test_reload_reorder(void **state)
{
	struct run *r = run_new("supervisor: root\nstrategy: rest_for_one\n"
	                        "children:\n"
	                        "  - {worker: a, command: x}\n"
	                        "  - {worker: b, command: x}\n"
	                        "  - {worker: c, command: x}\n");
	struct reload_report rep;

	(void)state;
	r->log[0] = '\0';
	run_reload(r,
	           "supervisor: root\nstrategy: rest_for_one\nchildren:\n"
	           "  - {worker: c, command: x}\n"
	           "  - {worker: a, command: x}\n"
	           "  - {worker: b, command: x}\n",
	           &rep);
	pump(r);
	expect(r, "");
	assert_string_equal(joined(&rep.updated), "root");
	assert_string_equal(joined(&rep.restarted), "");
	reload_report_free(&rep);
	crash(r, "a", 1); /* rest_for_one in the new order: b, not c */
	expect(r, "restarting root/a\nstop root/b\nstart root/a\n"
	          "start root/b\n");
	r->log[0] = '\0';
	run_reload(r,
	           "supervisor: root\nstrategy: rest_for_one\nchildren:\n"
	           "  - {worker: c, command: x}\n"
	           "  - {worker: b, command: x}\n",
	           &rep);
	pump(r);
	expect(r, "stop root/a\n");
	assert_string_equal(joined(&rep.updated), "");
	assert_string_equal(joined(&rep.removed), "root/a");
	reload_report_free(&rep);
	assert_true(tree_sweep(r->t));
	run_free(r);
}

/* A renamed root whose children are reordered and one updated: it was
 * listed twice (the reorder's entry after its children's, the rename's
 * check looking only at the first). */
static void
test_reload_reorder_renamed_root(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: a, command: x}\n"
	                        "  - {worker: b, command: x}\n");
	struct reload_report rep;

	(void)state;
	run_reload(r,
	           "supervisor: top\nchildren:\n"
	           "  - {worker: b, command: x, heartbeat: 5s}\n"
	           "  - {worker: a, command: x}\n",
	           &rep);
	pump(r);
	assert_string_equal(joined(&rep.updated), "top, top/b");
	reload_report_free(&rep);
	run_free(r);
}

static void
test_reload_diff(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: keep, command: x}\n"
	                        "  - {worker: gone, command: x}\n"
	                        "  - {worker: cmd, command: x}\n"
	                        "  - supervisor: s\n    intensity: 1\n"
	                        "    children:\n"
	                        "      - {worker: pol, command: x}\n");
	struct config *next = load_yaml(
	        "supervisor: root\nchildren:\n"
	        "  - {worker: keep, command: x}\n"
	        "  - {worker: new, command: y}\n"
	        "  - {worker: cmd, command: changed}\n"
	        "  - supervisor: s\n    intensity: 7\n"
	        "    children:\n"
	        "      - {worker: pol, command: x, restart: transient}\n");
	struct reload_report rep;
	struct node *keep = N(r, "keep");
	const char *why = NULL;

	(void)state;
	no_backoff(next->root);
	r->log[0] = '\0';
	assert_int_equal(reload_apply(r->t, next->root, 0, &rep, &why), 0);
	pump(r);
	expect(r, "stop root/gone\nstop root/cmd\nstart root/new\n"
	          "start root/cmd\n");
	assert_string_equal(joined(&rep.added), "root/new");
	assert_string_equal(joined(&rep.removed), "root/gone");
	assert_string_equal(joined(&rep.restarted), "root/cmd");
	assert_string_equal(joined(&rep.updated), "root/s, root/s/pol");
	reload_report_free(&rep);
	assert_ptr_equal(N(r, "keep"), keep);
	assert_int_equal(keep->starts, 1);
	assert_int_equal(intensity_count(r->t->root, 0), 0);
	assert_int_equal(N(r, "s")->spec->pol->intensity, 7);
	config_free(r->cfg);
	r->cfg = next;
	assert_true(tree_sweep(r->t));
	run_free(r);
}

/* --- the table: strategy x restart type (failing child, siblings) x the
 * intensity edge, each case's transcript derived from OTP's rules --------- */

static const char *const strategies[] = {"one_for_one", "one_for_all",
                                         "rest_for_one"};
static const char *const types[] = {"permanent", "transient", "temporary"};

/* The transcript OTP gives for root {a, b, c} when b exits with code. */
static void
table_expect(char *out, size_t len, int strat, int btype, int stype, int code)
{
	bool restarted = btype == 0 || (btype == 1 && code != 0);
	bool sib_back = stype != 2; /* temporary siblings stay down */
	size_t at = 0;

	out[0] = '\0';
	if (!restarted)
		return;
	at += (size_t)snprintf(out + at, len - at, "restarting root/b\n");
	if (strat == 0) {
		snprintf(out + at, len - at, "start root/b\n");
		return;
	}
	at += (size_t)snprintf(out + at, len - at, "stop root/c\n");
	if (strat == 1)
		at += (size_t)snprintf(out + at, len - at, "stop root/a\n");
	if (strat == 1 && sib_back)
		at += (size_t)snprintf(out + at, len - at, "start root/a\n");
	at += (size_t)snprintf(out + at, len - at, "start root/b\n");
	if (sib_back)
		snprintf(out + at, len - at, "start root/c\n");
}

/* The second failure within the window exceeds intensity 1: give up. */
static void
table_expect_give_up(char *out, size_t len, int strat, int stype)
{
	/* temporary siblings that the restart stopped stay down */
	bool c_up = stype != 2 || strat == 0;
	bool a_up = stype != 2 || strat != 1;
	size_t at = 0;

	at += (size_t)snprintf(out + at, len - at, "gave_up root\n");
	if (c_up)
		at += (size_t)snprintf(out + at, len - at, "stop root/c\n");
	if (a_up)
		at += (size_t)snprintf(out + at, len - at, "stop root/a\n");
	snprintf(out + at, len - at, "exit 75\n");
}

static void
test_strategy_table(void **state)
{
	char yaml[1024], want[512], give[512];

	(void)state;
	for (int strat = 0; strat < 3; strat++)
		for (int bt = 0; bt < 3; bt++)
			for (int st = 0; st < 3; st++)
				for (int code = 0; code < 2; code++) {
					snprintf(yaml, sizeof yaml,
					         "supervisor: root\nstrategy: "
					         "%s\nintensity: 1\nperiod: "
					         "10s\n"
					         "children:\n"
					         "  - {worker: a, command: x, "
					         "restart: %s}\n"
					         "  - {worker: b, command: x, "
					         "restart: %s}\n"
					         "  - {worker: c, command: x, "
					         "restart: %s}\n",
					         strategies[strat], types[st],
					         types[bt], types[st]);
					struct run *r = run_new(yaml);
					table_expect(want, sizeof want, strat,
					             bt, st, code);
					crash(r, "b", code);
					if (strcmp(r->log, want) != 0)
						fail_msg("%s b=%s siblings=%s "
						         "exit "
						         "%d:\nwant:\n%sgot:\n%"
						         "s",
						         strategies[strat],
						         types[bt], types[st],
						         code, want, r->log);
					if (want[0] !=
					    '\0') { /* restarted once: the
						       second gives up */
						r->now += 9999;
						table_expect_give_up(
						        give, sizeof give,
						        strat, st);
						crash(r, "b", 1);
						if (strcmp(r->log, give) != 0)
							fail_msg(
							        "%s b=%s "
							        "siblings=%s: "
							        "second "
							        "failure:\n"
							        "want:\n%sgot:"
							        "\n%s",
							        strategies
							                [strat],
							        types[bt],
							        types[st], give,
							        r->log);
					}
					run_free(r);
				}
}

/* Defect 1: a removed supervisor whose children had all stopped finishes
 * at once; its "stopped" event points at it, so it must outlive the sweep
 * until that action has been carried out. */
static void
test_reload_removed_node_outlives_its_actions(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: keep, command: x}\n"
	                        "  - supervisor: s\n    children:\n"
	                        "      - {worker: t, command: x, "
	                        "restart: temporary}\n");
	struct config *next = load_yaml("supervisor: root\nchildren:\n"
	                                "  - {worker: keep, command: x}\n");
	struct reload_report rep;
	const char *why = NULL;
	struct action a;
	size_t stopped = 0;

	(void)state;
	crash(r, "t", 0);
	expect(r, ""); /* temporary: stays down */
	assert_int_equal(reload_apply(r->t, next->root, 0, &rep, &why), 0);
	assert_false(tree_sweep(r->t)); /* actions still point at it */
	while (tree_next_action(r->t, &a))
		if (a.kind == ACT_EVENT && a.event == EE_STOPPED)
			stopped += strlen(a.node->path) > 0;
	assert_int_equal(stopped, 1);
	assert_true(tree_sweep(r->t)); /* now it can go */
	reload_report_free(&rep);
	config_free(r->cfg);
	r->cfg = next;
	run_free(r);
}

/* Defect 5: refusals name their cause. */
static void
test_typed_refusals(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - supervisor: research\n    children:\n"
	                        "      - {worker: fetcher, command: x}\n");
	struct refusal rf;
	char msg[256];

	(void)state;
	assert_int_equal(command_stop(r->t, N(r, "research"), 0).kind,
	                 REFUSED_NONE);
	pump(r);
	rf = command_restart(r->t, N(r, "fetcher"), 0);
	assert_int_equal(rf.kind, REFUSED_PARENT_DOWN);
	assert_ptr_equal(rf.node, N(r, "research"));
	command_refusal_format(rf, msg, sizeof msg);
	assert_string_equal(msg, "its supervisor root/research is stopped (by "
	                         "command); start it first");
	rf = command_start(r->t, N(r, "fetcher"), 0);
	assert_int_equal(rf.kind, REFUSED_PARENT_DOWN);
	r->log[0] = '\0';
	/* restart of a stopped supervisor starts it */
	assert_int_equal(command_restart(r->t, N(r, "research"), 0).kind,
	                 REFUSED_NONE);
	pump(r);
	expect(r, "start root/research/fetcher\n");
	tree_shutdown(r->t, 0);
	pump(r);
	rf = command_start(r->t, N(r, "fetcher"), 0);
	assert_int_equal(rf.kind, REFUSED_SHUTTING_DOWN);
	run_free(r);
}

/* --- restart policy (§9): backoff, circuit, declared reasons ------------- */

#define FLAKY                                                                  \
	"supervisor: root\nintensity: 100\nperiod: 1h\nchildren:\n"            \
	"  - {worker: w, command: x}\n  - {worker: ok, command: x}\n"

static void
test_backoff_sequence_seeded(void **state)
{
	struct run *r = run_new_with(FLAKY, true);
	struct backoff_spec *b =
	        (struct backoff_spec *)&N(r, "w")->spec->pol->backoff;
	uint64_t expect_cap = 100;

	(void)state;
	b->jitter = JITTER_NONE;
	crash(r, "w", 1); /* n = 1: back at once */
	expect(r, "restarting root/w\nstart root/w\n");
	for (int n = 2; n <= 12; n++) {
		char want[128];
		r->now += 1; /* it crashes right away: no reset */
		crash(r, "w", 1);
		snprintf(want, sizeof want,
		         "restarting root/w\nbackoff root/w %llums\n",
		         (unsigned long long)expect_cap);
		expect(r, want);
		assert_string_equal(node_state_name(N(r, "w")->state),
		                    "backoff");
		assert_int_equal(tree_next_wake(r->t), r->now + expect_cap);
		advance(r, r->now + expect_cap - 1);
		expect(r, ""); /* not a millisecond early */
		advance(r, r->now + 1);
		expect(r, "start root/w\n");
		expect_cap = expect_cap * 2 > 30000 ? 30000 : expect_cap * 2;
	}
	run_free(r);
}

static void
test_backoff_full_jitter_replays_with_the_seed(void **state)
{
	uint64_t first[8], again[8];

	(void)state;
	for (int pass = 0; pass < 2; pass++) {
		struct run *r = run_new_with(FLAKY, true);
		rng_seed(&r->t->rng, 42);
		crash(r, "w", 1);
		for (int n = 0; n < 8; n++) {
			uint64_t cap = 100ull << n;
			r->now += 1;
			crash(r, "w", 1);
			uint64_t d = N(r, "w")->backoff_until - r->now;
			assert_true(d <= (cap > 30000 ? 30000 : cap));
			(pass ? again : first)[n] = d;
			advance(r, N(r, "w")->backoff_until);
		}
		run_free(r);
	}
	assert_memory_equal(first, again, sizeof first);
}

static void
test_backoff_resets_after_a_stable_run(void **state)
{
	struct run *r = run_new_with(FLAKY, true);

	(void)state;
	crash(r, "w", 1);
	r->now += 1;
	crash(r, "w", 1);
	advance(r, N(r, "w")->backoff_until);
	expect(r, "start root/w\n");
	r->now += 60000; /* ran reset_after (60 s) without progress reports */
	crash(r, "w", 1);
	expect(r, "restarting root/w\nstart root/w\n");
	/* with progress reports, a stable run must also have moved */
	struct progress p = {.steps = 7};
	tree_beat(r->t, N(r, "w"), &p, PROGRESS_STEPS, r->now);
	r->now += 1;
	crash(r, "w", 1); /* n = 2 */
	advance(r, N(r, "w")->backoff_until);
	r->now += 61000; /* long enough, but its steps never moved */
	tree_beat(r->t, N(r, "w"), &p, PROGRESS_STEPS, r->now);
	crash(r, "w", 1);
	assert_string_equal(node_state_name(N(r, "w")->state), "backoff");
	run_free(r);
}

static void
test_group_restart_stops_at_once_starts_after_backoff(void **state)
{
	struct run *r = run_new_with("supervisor: root\nstrategy: one_for_all\n"
	                             "intensity: 100\nperiod: 1h\nchildren:\n"
	                             "  - {worker: a, command: x}\n"
	                             "  - {worker: b, command: x}\n",
	                             true);
	uint64_t until;

	(void)state;
	crash(r, "b", 1);
	r->now += 1;
	crash(r, "b", 1); /* n = 2: a delay */
	until = N(r, "b")->backoff_until;
	assert_true(until > r->now);
	assert_non_null(strstr(r->log, "stop root/a\n"));
	assert_null(strstr(r->log, "\nstart "));
	advance(r, until);
	expect(r, "start root/a\nstart root/b\n");
	run_free(r);
}

#define BREAKER                                                                \
	"supervisor: root\nintensity: 100\nperiod: 1h\nchildren:\n"            \
	"  - {worker: w, command: x}\n  - {worker: ok, command: x}\n"

static struct run *
breaker(bool significant)
{
	struct run *r = run_new_with(BREAKER, false);
	struct spec *s = (struct spec *)N(r, "w")->spec;

	spec_policy_own(s)->circuit =
	        (struct circuit_spec){.enabled = true,
	                              .failures = 3,
	                              .window_ms = 600000,
	                              .open_ms = 60000,
	                              .open_max_ms = 150000,
	                              .probe_stable_ms = 10000};
	spec_policy_own(s)->significant = significant;
	return r;
}

static void
test_circuit_quarantines_probes_and_closes(void **state)
{
	struct run *r = breaker(false);

	(void)state;
	crash(r, "w", 1);
	crash(r, "w", 1);
	crash(r, "w", 1); /* the 3rd in the window opens it */
	expect(r, "quarantined root/w\n");
	assert_string_equal(node_state_name(N(r, "w")->state), "quarantined");
	assert_int_equal(intensity_count(r->t->root, r->now), 2);
	assert_int_equal(tree_next_wake(r->t), 60000);
	advance(r, 60000);
	expect(r, "probing root/w\nstart root/w\n");
	crash(r, "w", 1); /* the probe fails: open twice as long */
	expect(r, "quarantined root/w\n");
	assert_int_equal(tree_next_wake(r->t), 60000 + 120000);
	advance(r, 180000);
	expect(r, "probing root/w\nstart root/w\n");
	r->now = 180000 + 10000;
	crash(r, "w", 1); /* the next failure reopens it, capped */
	advance(r, r->now + 150000);
	expect(r, "probing root/w\nstart root/w\n");
	advance(r, r->now + 10000); /* stable: closed */
	expect(r, "circuit_closed root/w\n");
	crash(r, "w", 1);
	expect(r, "restarting root/w\nstart root/w\n");
	run_free(r);
}

/* A reload that raises `failures` while the stamp ring holds a failure:
 * the ring grows with it (it was indexed modulo the new count: a heap
 * overflow, which ASan saw), keeping what it held. */
static void
test_circuit_ring_follows_a_reload(void **state)
{
	struct run *r = run_new("supervisor: root\nintensity: 100\n"
	                        "period: 1h\nchildren:\n"
	                        "  - worker: w\n    command: x\n"
	                        "    circuit: {failures: 2, window: 10m}\n");
	struct config *next = load_yaml(
	        "supervisor: root\nintensity: 100\nperiod: 1h\nchildren:\n"
	        "  - worker: w\n    command: x\n"
	        "    circuit: {failures: 6, window: 10m}\n");
	struct reload_report rep;
	const char *why = NULL;

	(void)state;
	no_backoff(next->root);
	crash(r, "w", 1); /* a ring of 2, one stamp */
	expect(r, "restarting root/w\nstart root/w\n");
	assert_int_equal(reload_apply(r->t, next->root, 0, &rep, &why), 0);
	reload_report_free(&rep);
	pump(r);
	r->log[0] = '\0';
	for (int i = 0; i < 4; i++)
		crash(r, "w", 1); /* 2..5 of 6 */
	assert_string_equal(node_state_name(N(r, "w")->state), "running");
	crash(r, "w", 1); /* the 6th, the first one counted */
	assert_string_equal(node_state_name(N(r, "w")->state), "quarantined");
	config_free(r->cfg);
	r->cfg = next;
	run_free(r);
}

static void
test_circuit_significant_child_gives_up(void **state)
{
	struct run *r = breaker(true);

	(void)state;
	crash(r, "w", 1);
	crash(r, "w", 1);
	crash(r, "w", 1);
	expect(r, "quarantined root/w\ngave_up root\nstop root/ok\nexit 75\n");
	run_free(r);
}

static void
test_group_leaves_quarantined_child_out(void **state)
{
	struct run *r = breaker(false);
	struct spec *root = (struct spec *)r->t->root->spec;

	(void)state;
	spec_policy_own(root)->strategy = ONE_FOR_ALL;
	crash(r, "w", 1);
	crash(r, "w", 1);
	crash(r, "w", 1);
	expect(r, "quarantined root/w\n");
	crash(r, "ok", 1);
	expect(r, "restarting root/ok\nstart root/ok\n");
	run_free(r);
}

static void
test_declared_reasons(void **state)
{
	struct run *r =
	        run_new_with("supervisor: root\nstrategy: rest_for_one\n"
	                     "intensity: 1\nperiod: 1h\nchildren:\n"
	                     "  - {worker: a, command: x}\n"
	                     "  - {worker: t, command: x, "
	                     "restart: transient}\n"
	                     "  - {worker: c, command: x}\n",
	                     true);

	(void)state;
	declare(r, "t", DECLARED_DONE, 0);
	crash(r, "t", 3); /* done: a normal exit whatever its status */
	expect(r, "");
	r->log[0] = '\0';
	command_start(r->t, N(r, "t"), r->now);
	pump(r);
	declare(r, "t", DECLARED_RATE_LIMITED, 5000);
	crash(r, "t", 1); /* waits retry_after; no intensity stamp */
	expect(r, "restarting root/t\nbackoff root/t 5000ms\nstop root/c\n");
	assert_int_equal(intensity_count(r->t->root, r->now), 0);
	advance(r, r->now + 5000);
	expect(r, "start root/t\nstart root/c\n");
	declare(r, "t", DECLARED_PERMANENT, 0);
	crash(r, "t", 1);
	expect(r, "failed root/t\n");
	assert_true(node_unhealthy(N(r, "t")));
	declare(r, "c", DECLARED_BUDGET, 0);
	crash(r, "c", 1);
	expect(r, "exhausted root/c\n");
	/* a declaration older than 5 s is not the one for this exit */
	declare(r, "a", DECLARED_PERMANENT, 0);
	r->now += 5001;
	crash(r, "a", 1);
	assert_non_null(strstr(r->log, "restarting root/a\n"));
	/* reset brings the parked ones back */
	r->log[0] = '\0';
	command_reset(r->t, r->t->root, r->now);
	pump(r);
	assert_false(node_unhealthy(N(r, "t")));
	run_free(r);
}

static void
test_spawn_exhaustion_backs_off_uncounted(void **state)
{
	struct run *r = run_new_with("supervisor: root\nintensity: 1\n"
	                             "period: 1h\nchildren:\n"
	                             "  - {worker: w, command: x}\n",
	                             false);

	(void)state;
	for (int i = 0; i < 50; i++) { /* 50 failed spawns: never gives up */
		r->log[0] = '\0';
		tree_exited(r->t, N(r, "w"),
		            (struct reason){.kind = REASON_SPAWN, .code = 24},
		            r->now);
		pump(r);
		assert_non_null(strstr(r->log, "backoff root/w 100ms\n"));
		advance(r, r->now + 100);
		expect(r, "start root/w\n");
	}
	assert_int_equal(intensity_count(r->t->root, r->now), 0);
	run_free(r);
}

static void
test_one_for_one_stops_together(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n" ABCD);

	(void)state;
	r->obedient = false;
	r->log[0] = '\0';
	tree_shutdown(r->t, 0);
	pump(r);
	/* all four told at once (last-first), none waits for another */
	expect(r, "stop root/d\nstop root/c\nstop root/b\nstop root/a\n");
	run_free(r);
}

/* Idle memory: the action queue a burst grew (the first start of 100
 * workers) is freed once drained; a small one is kept for the next turn. */
static void
test_burst_queue_given_back(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nchildren:\n"
	                "  - {worker: w, command: x, instances: 100}\n");
	struct run *small = run_new("supervisor: root\nchildren:\n"
	                            "  - {worker: a, command: x}\n");

	(void)state;
	assert_int_equal(r->t->nacts, 0);
	assert_null(r->t->acts);
	assert_int_equal(r->t->capacts, 0);
	assert_non_null(small->t->acts);
	run_free(r);
	run_free(small);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_start_order),
	        cmocka_unit_test(test_starts_queued),
	        cmocka_unit_test(test_one_for_one),
	        cmocka_unit_test(test_one_for_all),
	        cmocka_unit_test(test_rest_for_one),
	        cmocka_unit_test(test_stops_wait_for_exits),
	        cmocka_unit_test(test_transient),
	        cmocka_unit_test(test_transient_signal_and_hang_abnormal),
	        cmocka_unit_test(test_temporary),
	        cmocka_unit_test(test_one_for_all_restart_types),
	        cmocka_unit_test(test_intensity_n_allowed_n_plus_1_gives_up),
	        cmocka_unit_test(test_intensity_zero),
	        cmocka_unit_test(test_commands_refused_once_exiting),
	        cmocka_unit_test(test_window_inclusive_edge),
	        cmocka_unit_test(test_window_slides),
	        cmocka_unit_test(test_one_failure_counts_once),
	        cmocka_unit_test(test_nested_escalation),
	        cmocka_unit_test(test_restarted_subtree_fresh_history),
	        cmocka_unit_test(test_shutdown_reverse_order),
	        cmocka_unit_test(test_failure_during_shutdown),
	        cmocka_unit_test(test_start_waits_for_ready),
	        cmocka_unit_test(test_start_timeout_failure),
	        cmocka_unit_test(test_start_failure_stops_the_start_there),
	        cmocka_unit_test(test_group_restart_start_failure),
	        cmocka_unit_test(test_start_failure_with_backoff),
	        cmocka_unit_test(test_clean_exit_before_ready_backs_off),
	        cmocka_unit_test(
	                test_clean_exits_before_ready_open_the_circuit),
	        cmocka_unit_test(test_start_failure_not_restarted_or_given_up),
	        cmocka_unit_test(
	                test_transient_supervisor_that_gave_up_stays_down),
	        cmocka_unit_test(test_start_failure_drops_a_reloads_marks),
	        cmocka_unit_test(test_temporary_spawn_exhausted_group),
	        cmocka_unit_test(test_child_supervisor_gives_up_at_start),
	        cmocka_unit_test(
	                test_a_supervisor_with_a_waiting_group_holds_its_later_siblings),
	        cmocka_unit_test(test_pending_failure),
	        cmocka_unit_test(test_absorbed_failure),
	        cmocka_unit_test(test_drain),
	        cmocka_unit_test(test_shutdown_cuts_drain_short),
	        cmocka_unit_test(test_command_stop_holds),
	        cmocka_unit_test(test_autostart_false),
	        cmocka_unit_test(test_autostart_false_supervisor),
	        cmocka_unit_test(
	                test_autostart_released_supervisor_starts_children_once),
	        cmocka_unit_test(test_command_restart_subtree),
	        cmocka_unit_test(test_reload_diff),
	        cmocka_unit_test(test_reload_reorder),
	        cmocka_unit_test(test_reload_reorder_renamed_root),
	        cmocka_unit_test(test_strategy_table),
	        cmocka_unit_test(test_reload_removed_node_outlives_its_actions),
	        cmocka_unit_test(test_typed_refusals),
	        cmocka_unit_test(test_backoff_sequence_seeded),
	        cmocka_unit_test(
	                test_backoff_full_jitter_replays_with_the_seed),
	        cmocka_unit_test(test_backoff_resets_after_a_stable_run),
	        cmocka_unit_test(
	                test_group_restart_stops_at_once_starts_after_backoff),
	        cmocka_unit_test(test_circuit_quarantines_probes_and_closes),
	        cmocka_unit_test(test_circuit_significant_child_gives_up),
	        cmocka_unit_test(test_circuit_ring_follows_a_reload),
	        cmocka_unit_test(test_group_leaves_quarantined_child_out),
	        cmocka_unit_test(test_declared_reasons),
	        cmocka_unit_test(test_spawn_exhaustion_backs_off_uncounted),
	        cmocka_unit_test(test_one_for_one_stops_together),
	        cmocka_unit_test(test_burst_queue_given_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
