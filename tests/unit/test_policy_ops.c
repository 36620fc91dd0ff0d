/*
 * test_policy_ops.c - the restart policy (DESIGN §9) meets the operator
 * and the rest of the tree: start, restart and reset of a worker waiting
 * out its backoff, quarantined or failed; a probe under a supervisor that
 * stopped, shuts down or spent its budget; a declaration that must die with
 * the process that made it; declared reasons before the restart type.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tree_run.h"

#include "circuit.h"
#include "dynamic.h"

#define FLAKY                                                                  \
	"supervisor: root\nintensity: 100\nperiod: 1h\nchildren:\n"            \
	"  - worker: w\n    command: x\n"                                      \
	"    backoff: {initial: 10s, max: 1m, jitter: none}\n"                 \
	"  - {worker: ok, command: x}\n"

#define BREAKER                                                                \
	"supervisor: root\nintensity: 100\nperiod: 1h\nchildren:\n"            \
	"  - worker: w\n    command: x\n    backoff: none\n"                   \
	"    circuit: {failures: 3, window: 10m, open: 1m, open_max: 150s,"    \
	" probe_stable: 10s}\n"                                                \
	"  - {worker: ok, command: x}\n"

#define NESTED(extra)                                                          \
	"supervisor: root\nintensity: 100\nperiod: 1h\nchildren:\n"            \
	"  - supervisor: s\n    intensity: 100\n    period: 1h\n" extra        \
	"    children:\n"                                                      \
	"      - worker: w\n        command: x\n"                              \
	"        circuit: {failures: 3, open: 1m}\n"                           \
	"      - {worker: x, command: x}\n"

static void
quarantine(struct run *r, const char *name)
{
	crash(r, name, 1);
	crash(r, name, 1);
	crash(r, name, 1);
	assert_string_equal(state_of(r, name), "quarantined");
	r->log[0] = '\0';
}

static void
twice_in_backoff(struct run *r, const char *name)
{
	crash(r, name, 1); /* failure 1: at once */
	r->now += 1;
	crash(r, name, 1); /* failure 2: waits */
	assert_string_equal(state_of(r, name), "backoff");
	r->log[0] = '\0';
}

static void
ok_(struct refusal rf)
{
	assert_int_equal(rf.kind, REFUSED_NONE);
}

/* --- start, restart, reset skip every wait ------------------------------- */

static void
test_start_skips_backoff(void **state)
{
	struct run *r = run_new_with(FLAKY, true);

	(void)state;
	twice_in_backoff(r, "w");
	ok_(command_start(r->t, N(r, "w"), r->now));
	pump(r);
	expect(r, "start root/w\n");
	run_free(r);
}

static void
test_start_and_restart_start_a_failed_worker(void **state)
{
	struct run *r = run_new_with(FLAKY, true);

	(void)state;
	declare(r, "w", DECLARED_PERMANENT, 0);
	crash(r, "w", 1);
	expect(r, "failed root/w\n");
	r->log[0] = '\0';
	ok_(command_start(r->t, N(r, "w"), r->now));
	pump(r);
	expect(r, "start root/w\n");
	r->now += 1000;
	declare(r, "w", DECLARED_PERMANENT, 0);
	crash(r, "w", 1);
	r->log[0] = '\0';
	ok_(command_restart(r->t, N(r, "w"), r->now));
	pump(r);
	expect(r, "start root/w\n");
	run_free(r);
}

/* A stop takes the probe away; a start after it probes at once. */
static void
test_start_after_stop_probes_a_quarantined_worker(void **state)
{
	struct run *r = run_new(BREAKER);

	(void)state;
	quarantine(r, "w");
	ok_(command_stop(r->t, N(r, "w"), r->now));
	pump(r);
	advance(r, 3600000); /* no probe while stopped */
	expect(r, "");
	ok_(command_start(r->t, N(r, "w"), r->now));
	pump(r);
	expect(r, "probing root/w\nstart root/w\n");
	run_free(r);
}

static void
test_restart_probes_a_quarantined_worker(void **state)
{
	struct run *r = run_new(BREAKER);

	(void)state;
	quarantine(r, "w");
	ok_(command_restart(r->t, N(r, "w"), r->now));
	pump(r);
	expect(r, "probing root/w\nstart root/w\n");
	run_free(r);
}

static void
test_reset_starts_a_worker_in_backoff(void **state)
{
	struct run *r = run_new_with(FLAKY, true);

	(void)state;
	twice_in_backoff(r, "w");
	ok_(command_reset(r->t, N(r, "w"), r->now));
	pump(r);
	expect(r, "start root/w\n");
	assert_int_equal(N(r, "w")->failures, 0);
	run_free(r);
}

/* A circuit breaker beside a worker that must say ready: an operator's
 * restart of it keeps root busy until its ready. */
#define BUSY_BESIDE                                                            \
	"supervisor: root\nintensity: 100\nperiod: 1h\nchildren:\n"            \
	"  - worker: w\n    command: x\n    backoff: none\n"                   \
	"    circuit: {failures: 3, open: 1m}\n"                               \
	"  - worker: a\n    command: x\n    start_timeout: 1h\n"

static struct run *
busy_beside(void)
{
	struct run *r = run_new_with(BUSY_BESIDE, true);

	tree_ready(r->t, N(r, "a"), r->now);
	pump(r);
	return r;
}

/* root's restart job over a, waiting for a's ready */
static void
restart_awaiting_ready(struct run *r)
{
	r->log[0] = '\0';
	ok_(command_restart(r->t, N(r, "a"), r->now));
	pump(r);
	expect(r, "stop root/a\nstart root/a\n");
	assert_int_equal(r->t->root->super->job.kind, JOB_RESTART);
}

/* An operator's restart of a worker while its supervisor restarts a
 * sibling was refused ("busy"): a deploy script restarting programs one
 * after another failed (found by an SRE's trial). It is carried out once
 * the job is done, as OTP's supervisor takes its calls in turn; a stop
 * asked after it is the later word. */
static void
test_restart_while_busy_comes_after_the_job(void **state)
{
	struct run *r = busy_beside();

	(void)state;
	restart_awaiting_ready(r);
	r->log[0] = '\0';
	ok_(command_restart(r->t, N(r, "w"), r->now));
	pump(r);
	expect(r, "");
	assert_string_equal(state_of(r, "w"), "running");
	tree_ready(r->t, N(r, "a"), r->now);
	pump(r);
	expect(r, "stop root/w\nstart root/w\n");
	/* asked, then stopped before the job ended: stays stopped */
	restart_awaiting_ready(r);
	r->log[0] = '\0';
	ok_(command_restart(r->t, N(r, "w"), r->now));
	ok_(command_stop(r->t, N(r, "w"), r->now));
	pump(r);
	expect(r, "stop root/w\n");
	r->log[0] = '\0';
	tree_ready(r->t, N(r, "a"), r->now);
	pump(r);
	expect(r, "");
	assert_string_equal(state_of(r, "w"), "stopped");
	run_free(r);
}

/* A reset refused for a busy supervisor changes nothing: the worker stays
 * quarantined, its circuit open, its probe where it was. */
static void
test_refused_reset_changes_nothing(void **state)
{
	struct run *r = busy_beside();
	struct refusal rf;

	(void)state;
	quarantine(r, "w");
	restart_awaiting_ready(r);
	rf = command_reset(r->t, N(r, "w"), r->now);
	assert_int_equal(rf.kind, REFUSED_BUSY);
	assert_ptr_equal(rf.node, r->t->root);
	pump(r);
	assert_string_equal(state_of(r, "w"), "quarantined");
	assert_int_equal(node_circuit(N(r, "w"))->state, CIRCUIT_OPEN);
	tree_ready(r->t, N(r, "a"), r->now);
	advance(r, 60000);
	expect(r, "probing root/w\nstart root/w\n");
	run_free(r);
}

static void
test_reset_starts_a_supervisor_below_that_gave_up(void **state)
{
	struct run *r = run_new(
	        "supervisor: root\nintensity: 100\nperiod: 1h\nchildren:\n"
	        "  - supervisor: s\n    restart: temporary\n    intensity: 0\n"
	        "    children:\n"
	        "      - {worker: w, command: x}\n"
	        "  - {worker: ok, command: x}\n");

	(void)state;
	crash(r, "w", 1); /* s gives up; temporary: not restarted */
	assert_true(node_unhealthy(N(r, "s")));
	r->log[0] = '\0';
	ok_(command_reset(r->t, r->t->root, r->now));
	pump(r);
	expect(r, "start root/s/w\n");
	assert_string_equal(state_of(r, "s"), "running");
	run_free(r);
}

/* A reset of a supervisor starts what is down for good below it, not a
 * temporary worker that simply ended, nor one an operator stopped. */
static void
test_reset_of_a_supervisor_starts_only_the_parked(void **state)
{
	struct run *r = run_new(
	        "supervisor: root\nintensity: 100\nperiod: 1h\nchildren:\n"
	        "  - {worker: t, command: x, restart: temporary}\n"
	        "  - {worker: h, command: x}\n"
	        "  - {worker: f, command: x}\n");

	(void)state;
	crash(r, "t", 0);
	ok_(command_stop(r->t, N(r, "h"), r->now));
	declare(r, "f", DECLARED_PERMANENT, 0);
	crash(r, "f", 1);
	r->log[0] = '\0';
	ok_(command_reset(r->t, r->t->root, r->now));
	pump(r);
	expect(r, "start root/f\n");
	assert_string_equal(state_of(r, "t"), "stopped");
	assert_string_equal(state_of(r, "h"), "stopped");
	run_free(r);
}

/* --- a probe never starts what its supervisor stopped -------------------- */

static void
test_probe_waits_for_a_stopped_supervisor(void **state)
{
	struct run *r = run_new(NESTED(""));

	(void)state;
	quarantine(r, "w");
	ok_(command_stop(r->t, N(r, "s"), r->now));
	pump(r);
	expect(r, "stop root/s/x\n");
	advance(r, 60000);
	expect(r, ""); /* nothing of s starts while s is stopped */
	r->now = 61000;
	ok_(command_start(r->t, N(r, "s"), r->now));
	pump(r);
	expect(r, "start root/s/x\n"); /* the probe is rearmed, due now */
	advance(r, 61000);
	expect(r, "probing root/s/w\nstart root/s/w\n");
	run_free(r);
}

static void
test_probe_not_during_shutdown(void **state)
{
	struct run *r = run_new(BREAKER);

	(void)state;
	quarantine(r, "w");
	r->obedient = false; /* ok takes its time to exit */
	r->now = 59000;
	tree_shutdown(r->t, r->now);
	pump(r);
	expect(r, "stop root/ok\n");
	advance(r, 60000);
	expect(r, "");
	run_free(r);
}

static void
test_probe_not_under_an_exhausted_supervisor(void **state)
{
	struct run *r = run_new(NESTED("    budget: {tokens: 100}\n"));
	struct progress p = {.tokens = 100};

	(void)state;
	quarantine(r, "w");
	tree_beat(r->t, N(r, "x"), &p, PROGRESS_TOKENS, r->now);
	pump(r); /* s stops x */
	tree_exited(r->t, N(r, "x"), (struct reason){.kind = REASON_EXIT},
	            r->now);
	pump(r);
	assert_string_equal(state_of(r, "s"), "exhausted");
	advance(r, 60000);
	expect(r, "");
	run_free(r);
}

/* A probe due while its supervisor runs a job comes when the job ends. */
static void
test_probe_due_during_a_job_comes_after_it(void **state)
{
	struct run *r = busy_beside();

	(void)state;
	quarantine(r, "w"); /* probe at 60 s */
	r->now = 58000;
	restart_awaiting_ready(r);
	advance(r, 60000);
	expect(r, "");
	r->now = 63000;
	r->log[0] = '\0';
	tree_ready(r->t, N(r, "a"), r->now);
	pump(r);
	expect(r, "probing root/w\nstart root/w\n");
	run_free(r);
}

/* A significant temporary child that fails is down for good: its
 * supervisor gives up (it went on as if nothing had happened); a clean
 * exit of one is no failure. */
static void
test_significant_temporary_child_failing_gives_up(void **state)
{
	const char *yaml =
	        "supervisor: root\nintensity: 100\nperiod: 1h\nchildren:\n"
	        "  - supervisor: s\n    children:\n"
	        "      - {worker: a, command: x, significant: true,"
	        " restart: temporary}\n"
	        "      - {worker: b, command: x}\n";
	struct run *r = run_new(yaml);

	(void)state;
	crash(r, "a", 0);
	expect(r, "");
	assert_string_equal(state_of(r, "s"), "running");
	run_free(r);
	r = run_new(yaml);
	crash(r, "a", 1);
	/* restarted by its parent, s starts all its children afresh (OTP) */
	expect(r, "gave_up root/s\nstop root/s/b\nescalated root/s\n"
	          "restarting root/s\nstart root/s/a\nstart root/s/b\n");
	run_free(r);
}

/* A clean end (a declared done) leaves no failures in a row: status said
 * "3 failures in a row" of a transient worker that had finished. */
static void
test_a_clean_end_clears_the_failures_in_a_row(void **state)
{
	struct run *r = run_new_with(
	        "supervisor: root\nintensity: 100\nperiod: 1h\nchildren:\n"
	        "  - {worker: w, command: x, restart: transient}\n",
	        true);

	(void)state;
	crash(r, "w", 1);
	r->now += 1;
	crash(r, "w", 1);
	advance(r, r->now + 60000); /* its backoff */
	assert_int_equal(N(r, "w")->failures, 2);
	declare(r, "w", DECLARED_DONE, 0);
	crash(r, "w", 1);
	assert_string_equal(state_of(r, "w"), "stopped");
	assert_int_equal(N(r, "w")->failures, 0);
	run_free(r);
}

/* --- a group restart's wait (§9: the stops at once, the starts wait) ----- */

#define GROUP(strategy)                                                        \
	"supervisor: root\nstrategy: " strategy "\nintensity: 100\n"           \
	"period: 1h\nchildren:\n"                                              \
	"  - {worker: x, command: x, backoff: none}\n"                         \
	"  - worker: a\n    command: x\n"                                      \
	"    backoff: {initial: 5s, jitter: none}\n"                           \
	"  - {worker: b, command: x}\n"

/* a fails twice: its group is stopped at once and waits 5 s, outside any
 * job: root is free, a and b show the wait. */
static struct run *
group_waiting(const char *yaml)
{
	struct run *r = run_new_with(yaml, true);

	crash(r, "a", 1);
	r->now += 1;
	crash(r, "a", 1);
	assert_int_equal(r->t->root->super->job.kind, JOB_NONE);
	assert_string_equal(state_of(r, "a"), "backoff");
	assert_string_equal(state_of(r, "b"), "backoff");
	assert_int_equal(N(r, "b")->backoff_until, r->now + 5000);
	r->log[0] = '\0';
	return r;
}

static void
test_group_wait_ends_with_the_starts_in_order(void **state)
{
	struct run *r = group_waiting(GROUP("rest_for_one"));

	(void)state;
	advance(r, r->now + 4999);
	expect(r, "");
	advance(r, r->now + 1);
	expect(r, "start root/a\nstart root/b\n");
	assert_int_equal(r->t->root->super->job.kind, JOB_NONE);
	run_free(r);
}

/* An operator's start, restart or reset of a waiting child skips the wait
 * for its whole group, in order; a supervisor held by the wait refused
 * them all ("busy"). */
static void
test_group_wait_skipped_by_an_operator(void **state)
{
	struct refusal (*cmd[])(struct tree *, struct node *, uint64_t) = {
	        command_start, command_restart, command_reset};
	const char *who[] = {"a", "b"};

	(void)state;
	for (size_t i = 0; i < sizeof cmd / sizeof *cmd; i++)
		for (size_t k = 0; k < 2; k++) {
			struct run *r = group_waiting(GROUP("one_for_all"));
			ok_(cmd[i](r->t, N(r, who[k]), r->now));
			pump(r);
			expect(r, "start root/x\nstart root/a\nstart root/b\n");
			advance(r, r->now + 5000); /* nothing left waiting */
			expect(r, "");
			run_free(r);
		}
}

/* Another child's failure is handled at once (OTP): under rest_for_one,
 * x's restart starts the rest, which no longer wait. */
static void
test_group_wait_lets_another_failure_through(void **state)
{
	struct run *r = group_waiting(GROUP("rest_for_one"));

	(void)state;
	crash(r, "x", 1);
	expect(r, "restarting root/x\nstart root/x\nstart root/a\n"
	          "start root/b\n");
	advance(r, r->now + 5000);
	expect(r, "");
	run_free(r);
}

/* A reload is not refused during the wait (it was, for the whole tree,
 * while one group kept failing), and the wait goes on after it. A child
 * it adds after the waiting ones joins their wait: it was started at
 * once, before what it comes after (a hostile trial found it). */
static void
test_group_wait_takes_a_reload(void **state)
{
	struct run *r = group_waiting(GROUP("rest_for_one"));
	struct reload_report rep;

	(void)state;
	run_reload_with(r,
	                GROUP("rest_for_one") "  - {worker: c, command: x}\n",
	                &rep, true);
	pump(r);
	assert_string_equal(joined(&rep.added), "root/c");
	expect(r, "");
	assert_string_equal(state_of(r, "c"), "backoff");
	advance(r, r->now + 5000);
	expect(r, "start root/a\nstart root/b\nstart root/c\n");
	reload_report_free(&rep);
	run_free(r);
}

/* A reload that takes a waiting worker's reason to wait away ends the wait
 * (it was listed updated and waited on): backoff now none starts it and
 * its group at once; a circuit now off lets it go; a restart now temporary
 * calls its restart off. */
static void
test_reload_ends_a_wait_its_policy_no_longer_wants(void **state)
{
	struct run *r = group_waiting(GROUP("rest_for_one"));
	struct reload_report rep;

	(void)state;
	run_reload(r, GROUP("rest_for_one"), &rep); /* backoff: none */
	pump(r);
	expect(r, "start root/a\nstart root/b\n");
	reload_report_free(&rep);
	run_free(r);

	r = run_new_with(BREAKER, true);
	quarantine(r, "w");
	run_reload_with(
	        r,
	        "supervisor: root\nintensity: 100\nperiod: 1h\n"
	        "children:\n  - {worker: w, command: x, backoff: none}\n"
	        "  - {worker: ok, command: x}\n",
	        &rep, true);
	pump(r);
	expect(r, "start root/w\n");
	assert_int_equal(node_circuit(N(r, "w"))->state, CIRCUIT_CLOSED);
	reload_report_free(&rep);
	run_free(r);

	r = run_new_with(FLAKY, true);
	twice_in_backoff(r, "w");
	run_reload_with(r,
	                "supervisor: root\nintensity: 100\nperiod: 1h\n"
	                "children:\n  - worker: w\n    command: x\n"
	                "    restart: temporary\n"
	                "    backoff: {initial: 10s, max: 1m, jitter: none}\n"
	                "  - {worker: ok, command: x}\n",
	                &rep, true);
	pump(r);
	assert_string_equal(state_of(r, "w"), "stopped");
	advance(r, r->now + 60000);
	expect(r, "");
	reload_report_free(&rep);
	run_free(r);
}

/* A reset of a supervisor whose group waits starts the group as one job,
 * and what else it starts joins it: a failed worker after the waiting one
 * was reset to stopped and never started (the job kept it out). */
static void
test_group_wait_reset_starts_the_failed_too(void **state)
{
	struct run *r = run_new_with(
	        "supervisor: root\nstrategy: one_for_all\nintensity: 100\n"
	        "period: 1h\nchildren:\n"
	        "  - worker: a\n    command: x\n    start_timeout: 10s\n"
	        "    backoff: {initial: 5s, jitter: none}\n"
	        "  - {worker: q, command: x}\n",
	        true);

	(void)state;
	tree_ready(r->t, N(r, "a"), r->now);
	pump(r);
	declare(r, "q", DECLARED_PERMANENT, 0);
	crash(r, "q", 1);
	assert_string_equal(state_of(r, "q"), "failed");
	r->now += 1;
	crash(r, "a", 1);
	tree_ready(r->t, N(r, "a"), r->now);
	pump(r);
	r->now += 1;
	crash(r, "a", 1); /* the group waits 5 s */
	r->log[0] = '\0';
	ok_(command_reset(r->t, r->t->root, r->now));
	pump(r);
	expect(r, "start root/a\n"); /* q after a's ready */
	tree_ready(r->t, N(r, "a"), r->now);
	pump(r);
	expect(r, "start root/a\nstart root/q\n");
	assert_string_equal(state_of(r, "q"), "running");
	run_free(r);
}

/* An operator's stop takes a child out of its group's wait: started later,
 * it starts alone (it started the next group's wait early, skipping the
 * failed child's backoff). */
static void
test_group_wait_held_child_leaves_it(void **state)
{
	struct run *r = group_waiting(GROUP("one_for_all"));

	(void)state;
	ok_(command_stop(r->t, N(r, "b"), r->now));
	pump(r);
	advance(r, r->now + 5000);
	expect(r, "start root/x\nstart root/a\n");
	r->now += 1;
	crash(r, "a", 1); /* the next wait: 10 s */
	r->log[0] = '\0';
	ok_(command_start(r->t, N(r, "b"), r->now));
	pump(r);
	expect(r, "start root/b\n");
	assert_string_equal(state_of(r, "a"), "backoff");
	run_free(r);
}

/* A group waiting 5 s for a; a reload of its children to children (under
 * one_for_all, intensity 100 in 1h) starts nobody: after the 5 s, x, a and
 * b start together. */
static void
reload_keeps_group_wait(const char *children)
{
	struct run *r = group_waiting(GROUP("one_for_all"));
	struct reload_report rep;
	char yaml[512];

	snprintf(yaml, sizeof yaml,
	         "supervisor: root\nstrategy: one_for_all\n"
	         "intensity: 100\nperiod: 1h\nchildren:\n%s",
	         children);
	run_reload_with(r, yaml, &rep, true);
	pump(r);
	expect(r, "");
	advance(r, r->now + 5000);
	expect(r, "start root/x\nstart root/a\nstart root/b\n");
	reload_report_free(&rep);
	run_free(r);
}

/* The failed child's backoff is the group's wait: a reload that turns a
 * sibling's off leaves it (it ended the wait at once). */
static void
test_group_wait_kept_when_a_siblings_backoff_goes(void **state)
{
	(void)state;
	reload_keeps_group_wait("  - {worker: x, command: x, backoff: none}\n"
	                        "  - worker: a\n    command: x\n"
	                        "    backoff: {initial: 5s, jitter: none}\n"
	                        "  - {worker: b, command: x, backoff: none}\n");
}

/* A child in its own backoff when its group's restart comes waits for the
 * group (it started alone and out of order, then stayed marked waiting
 * while running: an operator's restart of it did nothing). */
static void
test_group_wait_takes_a_child_in_its_own_backoff(void **state)
{
	const char *kids = "intensity: 100\nperiod: 1h\nchildren:\n"
	                   "  - worker: a\n    command: x\n"
	                   "    backoff: {initial: 5s, jitter: none}\n"
	                   "  - worker: y\n    command: x\n"
	                   "    backoff: {initial: 1s, jitter: none}\n";
	char o4o[512], o4a[512];
	struct run *r;
	struct reload_report rep;

	(void)state;
	snprintf(o4o, sizeof o4o, "supervisor: root\n%s", kids);
	snprintf(o4a, sizeof o4a, "supervisor: root\nstrategy: one_for_all\n%s",
	         kids);
	r = run_new_with(o4o, true);
	crash(r, "a", 1);
	r->now += 1;
	crash(r, "y", 1);
	r->now += 1;
	crash(r, "y", 1); /* y waits 1 s by itself */
	run_reload_with(r, o4a, &rep, true);
	pump(r);
	reload_report_free(&rep);
	r->now += 1;
	crash(r, "a", 1); /* the group waits 5 s */
	advance(r, r->now + 1000);
	expect(r, "");
	advance(r, r->now + 4000);
	expect(r, "start root/a\nstart root/y\n");
	r->log[0] = '\0';
	ok_(command_restart(r->t, N(r, "y"), r->now));
	pump(r);
	expect(r, "stop root/y\nstart root/y\n");
	run_free(r);
}

/* --- the third reading of the group wait -------------------------------- */

/* A reload that changes a waiting child's command leaves it to its group
 * (it started alone at once, the failed child's backoff skipped too). */
static void
test_group_wait_reload_of_a_waiting_childs_command(void **state)
{
	(void)state;
	reload_keeps_group_wait("  - {worker: x, command: x, backoff: none}\n"
	                        "  - worker: a\n    command: x\n"
	                        "    backoff: {initial: 5s, jitter: none}\n"
	                        "  - {worker: b, command: y}\n");
	reload_keeps_group_wait("  - {worker: x, command: x, backoff: none}\n"
	                        "  - worker: a\n    command: y\n"
	                        "    backoff: {initial: 5s, jitter: none}\n"
	                        "  - {worker: b, command: x}\n");
}

/* A quarantined child's probe due during its group's wait comes after the
 * group (it started alone while the children before it were down). */
static void
test_group_wait_holds_a_probe(void **state)
{
	struct run *r = run_new_with(
	        "supervisor: root\nstrategy: one_for_all\nintensity: 100\n"
	        "period: 1h\nchildren:\n"
	        "  - {worker: x, command: x, backoff: none}\n"
	        "  - worker: q\n    command: x\n    backoff: none\n"
	        "    circuit: {failures: 1, open: 2s}\n"
	        "  - worker: a\n    command: x\n"
	        "    backoff: {initial: 5s, jitter: none}\n",
	        true);

	(void)state;
	crash(r, "q", 1); /* quarantined, its probe in 2 s */
	crash(r, "a", 1);
	r->now += 1;
	crash(r, "a", 1); /* x, a wait 5 s */
	advance(r, r->now + 2000);
	expect(r, "");
	advance(r, r->now + 3000);
	expect(r, "start root/x\nstart root/a\nprobing root/q\nstart root/q\n");
	run_free(r);
}

#define GAVE_UP_BELOW                                                          \
	"supervisor: root\nstrategy: one_for_all\nintensity: 100\n"            \
	"period: 1h\nchildren:\n"                                              \
	"  - worker: a\n    command: x\n"                                      \
	"    backoff: {initial: 5s, jitter: none}\n"                           \
	"  - supervisor: s\n    intensity: 0\n    period: 1h\n"                \
	"    children:\n      - {worker: w, command: x}\n"

/* A sub-supervisor that once gave up and waits in its group is not
 * unhealthy (status exited 3), and a reset starts it with its group, in
 * order (it started alone, first). */
static void
test_group_wait_of_a_supervisor_that_once_gave_up(void **state)
{
	struct run *r = run_new_with(GAVE_UP_BELOW, true);

	(void)state;
	crash(r, "w", 1); /* s gives up; root restarts a and s */
	r->now += 1000;
	crash(r, "a", 1);
	r->now += 1;
	crash(r, "a", 1); /* a, s wait 5 s */
	assert_string_equal(state_of(r, "s"), "stopped");
	assert_false(node_unhealthy(N(r, "s")));
	r->log[0] = '\0';
	ok_(command_reset(r->t, r->t->root, r->now));
	pump(r);
	expect(r, "start root/a\nstart root/s/w\n");
	run_free(r);
}

/* A waiting sub-supervisor a reload makes temporary is not restarted by
 * its group, as a worker made temporary is not. */
static void
test_group_wait_leaves_a_supervisor_made_temporary(void **state)
{
	struct run *r = run_new_with(GAVE_UP_BELOW, true);
	struct reload_report rep;

	(void)state;
	crash(r, "a", 1);
	r->now += 1;
	crash(r, "a", 1); /* a, s wait 5 s */
	run_reload_with(r,
	                "supervisor: root\nstrategy: one_for_all\n"
	                "intensity: 100\nperiod: 1h\nchildren:\n"
	                "  - worker: a\n    command: x\n"
	                "    backoff: {initial: 5s, jitter: none}\n"
	                "  - supervisor: s\n    restart: temporary\n"
	                "    intensity: 0\n    period: 1h\n"
	                "    children:\n      - {worker: w, command: x}\n",
	                &rep, true);
	pump(r);
	advance(r, r->now + 5000);
	expect(r, "start root/a\n");
	assert_string_equal(state_of(r, "s"), "stopped");
	advance(r, r->now + 60000);
	expect(r, "");
	reload_report_free(&rep);
	run_free(r);
}

/* Two groups of one rest_for_one wait apart: a later one's time does not
 * replace an earlier one's (a waited b's 60 s, its status said 5). */
static void
test_group_waits_keep_their_own_times(void **state)
{
	struct run *r = group_waiting(
	        "supervisor: root\nstrategy: rest_for_one\nintensity: 100\n"
	        "period: 1h\nchildren:\n"
	        "  - {worker: x, command: x, backoff: none}\n"
	        "  - worker: a\n    command: x\n"
	        "    backoff: {initial: 5s, jitter: none}\n"
	        "  - worker: b\n    command: x\n"
	        "    backoff: {initial: 60s, max: 5m, jitter: none}\n");

	(void)state;
	ok_(command_stop(r->t, N(r, "b"), r->now));
	ok_(command_start(r->t, N(r, "b"), r->now)); /* b alone */
	pump(r);
	crash(r, "b", 1);
	r->now += 1;
	crash(r, "b", 1); /* b's own group: 60 s */
	advance(r, r->now + 5000);
	expect(r, "start root/a\n");
	advance(r, r->now + 55000);
	expect(r, "start root/b\n");
	run_free(r);
}

/* One reload that ends a group's wait (the failed child's backoff off)
 * and makes a sibling temporary: the sibling is not started. */
static void
test_group_wait_ended_by_reload_leaves_a_sibling_made_temporary(void **state)
{
	struct run *r = group_waiting(GROUP("one_for_all"));
	struct reload_report rep;

	(void)state;
	run_reload_with(r,
	                "supervisor: root\nstrategy: one_for_all\n"
	                "intensity: 100\nperiod: 1h\nchildren:\n"
	                "  - {worker: x, command: x, backoff: none}\n"
	                "  - {worker: a, command: x, backoff: none}\n"
	                "  - {worker: b, command: x, restart: temporary}\n",
	                &rep, true);
	pump(r);
	expect(r, "start root/x\nstart root/a\n");
	assert_string_equal(state_of(r, "b"), "stopped");
	reload_report_free(&rep);
	run_free(r);
}

/* A stop of the supervisor calls the wait off: nothing starts after. */
static void
test_group_wait_called_off_by_a_stop(void **state)
{
	struct run *r = group_waiting(GROUP("one_for_all"));

	(void)state;
	ok_(command_stop(r->t, r->t->root, r->now));
	pump(r);
	advance(r, r->now + 5000);
	expect(r, "");
	assert_string_equal(state_of(r, "a"), "stopped");
	assert_string_equal(state_of(r, "b"), "stopped");
	run_free(r);
}

/* --- a declaration dies with its process --------------------------------- */

static void
test_declaration_dies_with_a_stopped_process(void **state)
{
	struct run *r = run_new(FLAKY);

	(void)state;
	declare(r, "w", DECLARED_PERMANENT, 0); /* then stopped, not failed */
	ok_(command_stop(r->t, N(r, "w"), r->now));
	pump(r);
	r->now = 1000;
	ok_(command_start(r->t, N(r, "w"), r->now));
	pump(r);
	r->now = 3000;
	crash(r, "w", 1); /* the new process declared nothing */
	expect(r, "restarting root/w\nstart root/w\n");
	run_free(r);
}

static void
test_declaration_dies_in_a_group_restart(void **state)
{
	struct run *r = run_new(
	        "supervisor: root\nstrategy: one_for_all\nintensity: 100\n"
	        "period: 1h\nchildren:\n"
	        "  - {worker: a, command: x}\n  - {worker: w, command: x}\n");

	(void)state;
	declare(r, "w", DECLARED_RATE_LIMITED, 600000);
	crash(r, "a", 1); /* w is stopped and started with the group */
	expect(r, "restarting root/a\nstop root/w\nstart root/a\n"
	          "start root/w\n");
	r->now = 2000;
	crash(r, "w", 1);
	assert_null(strstr(r->log, "backoff root/w"));
	run_free(r);
}

/* --- declared reasons come before the restart type (§9 step 1) ----------- */

static void
test_declared_budget_exhausts_a_temporary_worker(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nchildren:\n"
	                "  - {worker: t, command: x, restart: temporary}\n");

	(void)state;
	declare(r, "t", DECLARED_BUDGET, 0);
	crash(r, "t", 1);
	expect(r, "exhausted root/t\n");
	assert_string_equal(state_of(r, "t"), "exhausted");
	run_free(r);
}

static void
test_declared_permanent_by_significant_temporary_gives_up(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nchildren:\n"
	                "  - supervisor: s\n    children:\n"
	                "      - {worker: w, command: x, restart: temporary, "
	                "significant: true}\n"
	                "      - {worker: x, command: x}\n");

	(void)state;
	declare(r, "w", DECLARED_PERMANENT, 0);
	crash(r, "w", 1);
	assert_string_equal(state_of(r, "w"), "failed");
	assert_non_null(strstr(r->log, "gave_up root/s\n"));
	run_free(r);
}

static void
test_declared_permanent_with_status_0_fails_a_transient(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nchildren:\n"
	                "  - {worker: w, command: x, restart: transient}\n");

	(void)state;
	declare(r, "w", DECLARED_PERMANENT, 0);
	crash(r, "w", 0);
	expect(r, "failed root/w\n");
	run_free(r);
}

static void
test_declared_rate_limit_with_status_0_restarts_a_transient(void **state)
{
	struct run *r = run_new_with(
	        "supervisor: root\nchildren:\n"
	        "  - {worker: w, command: x, restart: transient}\n",
	        true);

	(void)state;
	declare(r, "w", DECLARED_RATE_LIMITED, 5000);
	crash(r, "w", 0);
	expect(r, "restarting root/w\nbackoff root/w 5000ms\n");
	run_free(r);
}

/* --- a reload that changes a parked worker starts it --------------------- */

static void
test_reload_starts_a_changed_failed_worker(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: w, command: old}\n  - {worker: "
	                        "ok, command: x}\n");
	struct reload_report rep;

	(void)state;
	declare(r, "w", DECLARED_PERMANENT, 0); /* say, a bad API key */
	crash(r, "w", 1);
	expect(r, "failed root/w\n");
	r->log[0] = '\0';
	run_reload(r,
	           "supervisor: root\nchildren:\n"
	           "  - {worker: w, command: new}\n"
	           "  - {worker: ok, command: x}\n",
	           &rep);
	pump(r);
	assert_string_equal(joined(&rep.restarted), "root/w");
	expect(r, "start root/w\n");
	reload_report_free(&rep);
	run_free(r);
}

/* --- a start or reset while an operator's stop is under way ------------- */

/* The stop goes on; the start comes once the process is down (an ack that
 * did nothing left it stopped for good, and no longer held). */
static void
test_start_during_an_operators_stop_comes_after_it(void **state)
{
	struct run *r = run_new(FLAKY);

	(void)state;
	r->obedient = false; /* w takes its time to stop */
	r->log[0] = '\0';
	ok_(command_stop(r->t, N(r, "w"), r->now));
	ok_(command_start(r->t, N(r, "w"), r->now));
	pump(r);
	expect(r, "stop root/w\n"); /* one stop, no start yet */
	assert_false(N(r, "w")->held);
	crash(r, "w", 0); /* its exit: down as asked */
	expect(r, "start root/w\n");
	assert_string_equal(state_of(r, "w"), "running");
	assert_int_equal(N(r, "w")->failures, 0); /* not a failure */
	run_free(r);
}

static void
test_reset_during_an_operators_stop_comes_after_it(void **state)
{
	struct run *r = run_new(FLAKY);

	(void)state;
	r->obedient = false;
	r->log[0] = '\0';
	ok_(command_drain(r->t, N(r, "w"), r->now));
	ok_(command_reset(r->t, N(r, "w"), r->now));
	pump(r);
	expect(r, "drain root/w\n");
	crash(r, "w", 0);
	expect(r, "start root/w\n");
	assert_string_equal(state_of(r, "w"), "running");
	run_free(r);
}

/* A supervisor too: its children stop, then it starts them again. */
static void
test_start_during_a_supervisors_stop_comes_after_it(void **state)
{
	struct run *r = run_new(NESTED(""));

	(void)state;
	r->obedient = false;
	r->log[0] = '\0';
	ok_(command_stop(r->t, N(r, "s"), r->now));
	ok_(command_start(r->t, N(r, "s"), r->now));
	pump(r);
	expect(r, "stop root/s/x\nstop root/s/w\n");
	crash(r, "x", 0);
	crash(r, "w", 0);
	expect(r, "start root/s/w\nstart root/s/x\n");
	assert_string_equal(state_of(r, "s"), "running");
	run_free(r);
}

/* What stops for another reason, or the root, is not the operator's to
 * undo: a start says so, and changes nothing. */
static void
test_start_of_what_stops_for_another_reason_is_refused(void **state)
{
	struct run *r = run_new(FLAKY);

	(void)state;
	r->obedient = false;
	ok_(command_stop(r->t, N(r, "root"), r->now));
	pump(r);
	assert_int_equal(command_start(r->t, N(r, "root"), r->now).kind,
	                 REFUSED_STOPPING);
	assert_int_equal(command_start(r->t, N(r, "w"), r->now).kind,
	                 REFUSED_PARENT_DOWN);
	assert_false(N(r, "w")->held);
	assert_true(N(r, "root")->held);
	run_free(r);
}

/* --- a worker a reload moves keeps its name: one process at a time ------- */

#define MOVED(sup)                                                             \
	"supervisor: root\nintensity: 100\nchildren:\n"                        \
	"  - supervisor: x\n    children: [" sup "]\n"                         \
	"  - supervisor: y\n    children: [{worker: z, command: x}]\n"

/* a moved to y starts once the old x/a is down (both ran at once, and
 * the old one's end broke the new one's captured output) */
static void
test_a_moved_worker_starts_once_its_old_place_is_down(void **state)
{
	struct run *r = run_new(MOVED("{worker: a, command: x}"));
	const char *next = "supervisor: root\nintensity: 100\nchildren:\n"
	                   "  - supervisor: x\n    children: [{worker: b, "
	                   "command: x}]\n"
	                   "  - supervisor: y\n    children: [{worker: z, "
	                   "command: x}, {worker: a, command: x}]\n";
	struct reload_report rep;

	(void)state;
	r->obedient = false;
	r->log[0] = '\0';
	run_reload(r, next, &rep);
	pump(r);
	expect(r, "stop root/x/a\nstart root/x/b\n"); /* not root/y/a yet */
	assert_string_equal(joined(&rep.added), "root/x/b, root/y/a");
	reload_report_free(&rep);
	r->log[0] = '\0';
	tree_exited(r->t, r->t->graveyard->children[0],
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, r->now);
	pump(r);
	expect(r, "start root/y/a\n");
	assert_string_equal(state_of(r, "a"), "running");
	assert_int_equal(N(r, "y")->super->job.kind, JOB_NONE);
	run_free(r);
}

/* The old a ends by itself (exit 0) before its removed supervisor's stop
 * reaches it: its new place still starts (it waited for good, and every
 * later reload was refused as busy). */
static void
test_a_moved_worker_starts_when_its_old_place_ends_by_itself(void **state)
{
	struct run *r = run_new(
	        "supervisor: root\nintensity: 100\nchildren:\n"
	        "  - supervisor: x\n    strategy: one_for_all\n"
	        "    children: [{worker: a, command: x}, {worker: b, command: "
	        "x}]\n"
	        "  - supervisor: y\n    children: [{worker: z, command: x}]\n");
	const char *next = "supervisor: root\nintensity: 100\nchildren:\n"
	                   "  - supervisor: y\n    children: [{worker: z, "
	                   "command: x}, {worker: a, command: x}]\n";
	struct reload_report rep;
	struct node *x, *a, *b;

	(void)state;
	r->obedient = false;
	run_reload(r, next, &rep);
	pump(r);
	reload_report_free(&rep);
	x = r->t->graveyard->children[0];
	a = x->children[0];
	b = x->children[1];
	r->log[0] = '\0';
	tree_exited(r->t, a, (struct reason){.kind = REASON_EXIT}, r->now);
	pump(r);
	expect(r, "start root/y/a\n");
	tree_exited(r->t, b, (struct reason){.kind = REASON_SIGNAL, .code = 15},
	            r->now);
	pump(r);
	assert_string_equal(state_of(r, "root/y/a"), "running");
	assert_int_equal(N(r, "y")->super->job.kind, JOB_NONE);
	run_free(r);
}

#define POOL                                                                   \
	"supervisor: root\nchildren:\n"                                        \
	"  - supervisor: pool\n    max_children: 3\n    intensity: 5\n"        \
	"    template: {command: [work, --x], backoff: none}\n"

/* A task stored while its pool runs a job over another child (an
 * operator's start of a task it is still stopping) starts once the job
 * ends (it was answered created and never ran). */
static void
test_a_task_stored_during_a_job_starts_after_it(void **state)
{
	struct run *r = run_new(POOL);
	char *args[] = {NULL};
	enum spawn_refusal why;
	struct node *a, *b;

	(void)state;
	a = dynamic_spawn(r->t, N(r, "pool"), "a", args, NULL, r->now, &why);
	pump(r);
	r->obedient = false;
	ok_(command_stop(r->t, a, r->now));
	b = dynamic_add(r->t, N(r, "pool"), "b", args, NULL, r->now, &why);
	ok_(command_start(r->t, a, r->now)); /* the pool's job over a */
	dynamic_start(r->t, b, r->now);      /* b's record is stored */
	pump(r);
	assert_int_equal(b->starts, 0);
	r->log[0] = '\0';
	tree_exited(r->t, a, (struct reason){.kind = REASON_SIGNAL, .code = 15},
	            r->now);
	pump(r);
	expect(r, "start root/pool/a\nstart root/pool/b\n");
	run_free(r);
}

/* A task whose record is not stored yet is started by its commit only:
 * an operator's restart or start of the pool or of it leaves it (it ran,
 * and the spawn was then refused for the store). */
static void
test_an_uncommitted_task_waits_for_its_commit(void **state)
{
	struct run *r = run_new(POOL);
	char *args[] = {NULL};
	enum spawn_refusal why;
	struct node *b;

	(void)state;
	b = dynamic_add(r->t, N(r, "pool"), "b", args, NULL, r->now, &why);
	r->log[0] = '\0';
	ok_(command_restart(r->t, N(r, "pool"), r->now));
	ok_(command_start(r->t, b, r->now));
	ok_(command_restart(r->t, b, r->now));
	pump(r);
	expect(r, "");
	assert_int_equal(b->starts, 0);
	dynamic_start(r->t, b, r->now);
	pump(r);
	expect(r, "start root/pool/b\n");
	run_free(r);
}

/* An operator's stop or drain of a task whose record is being stored
 * holds: the commit cancels it, as a stop of a running task does (the
 * commit started it, unheld); a start after the stop undoes the stop. */
static void
test_a_stop_before_the_commit_cancels_the_task(void **state)
{
	struct run *r = run_new(POOL);
	char *args[] = {NULL};
	enum spawn_refusal why;
	struct node *b, *c;

	(void)state;
	b = dynamic_add(r->t, N(r, "pool"), "b", args, NULL, r->now, &why);
	c = dynamic_add(r->t, N(r, "pool"), "c", args, NULL, r->now, &why);
	ok_(command_stop(r->t, b, r->now));
	ok_(command_drain(r->t, c, r->now));
	ok_(command_start(r->t, c, r->now)); /* changed its mind */
	r->log[0] = '\0';
	dynamic_start(r->t, b, r->now);
	dynamic_start(r->t, c, r->now);
	pump(r);
	expect(r, "other root/pool/b\nstart root/pool/c\n");
	assert_int_equal(b->task->end, TASK_END_CANCELLED);
	assert_int_equal(b->starts, 0);
	assert_true(b->held);
	run_free(r);
}

/* One removed worker, two waiting for it: itself moved to `other` by its
 * name, and a task spawned in its old place (its path). Both start once it
 * is down, in either order of the tree (only the first did: the other
 * waited for good, or its supervisor's job did and every reload after was
 * refused as busy). */
static void
two_namesakes(bool pool_first)
{
	static const char *other = "  - supervisor: other\n    children: "
	                           "[{worker: z, command: x}%s]\n";
	char o1[128], o2[128], y1[512], y2[512];
	struct run *r;
	struct reload_report rep;
	char *args[] = {NULL};
	enum spawn_refusal sw;
	struct node *k;

	snprintf(o1, sizeof o1, other, "");
	snprintf(o2, sizeof o2, other, ", {worker: x, command: x}");
	snprintf(y1, sizeof y1,
	         "supervisor: root\nintensity: 100\nchildren:\n%s%s",
	         pool_first ? "  - supervisor: pool\n    children: [{worker: "
	                      "x, command: x}]\n"
	                    : o1,
	         pool_first ? o1
	                    : "  - supervisor: pool\n    children: [{worker: "
	                      "x, command: x}]\n");
	snprintf(
	        y2, sizeof y2,
	        "supervisor: root\nintensity: 100\nchildren:\n%s%s",
	        pool_first
	                ? "  - supervisor: pool\n    template: {command: [w]}\n"
	                : o2,
	        pool_first ? o2
	                   : "  - supervisor: pool\n    template: {command: "
	                     "[w]}\n");
	r = run_new(y1);
	r->obedient = false;
	run_reload(r, y2, &rep);
	pump(r);
	reload_report_free(&rep);
	k = dynamic_spawn(r->t, N(r, "pool"), "x", args, NULL, r->now, &sw);
	assert_non_null(k);
	pump(r);
	assert_int_equal(k->starts, 0); /* the old x still stops */
	tree_exited(r->t, r->t->graveyard->children[0],
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, r->now);
	pump(r);
	assert_string_equal(state_of(r, "root/other/x"), "running");
	assert_string_equal(node_state_name(k->state), "running");
	assert_int_equal(N(r, "other")->super->job.kind, JOB_NONE);
	run_free(r);
}

static void
test_two_waiting_for_one_removed_worker_both_start(void **state)
{
	(void)state;
	two_namesakes(false);
	two_namesakes(true);
}

/* A task's place taken by a configured worker in a reload that also
 * renames the root: it waits for the task too (the graveyard keeps the
 * old root's name in its paths). */
static void
test_a_worker_in_a_tasks_place_waits_across_a_root_rename(void **state)
{
	struct run *r = run_new("supervisor: root\nintensity: 100\nchildren:\n"
	                        "  - supervisor: pool\n"
	                        "    template: {command: [work]}\n");
	const char *next = "supervisor: top\nintensity: 100\nchildren:\n"
	                   "  - supervisor: pool\n    children: [{worker: K, "
	                   "command: x}]\n";
	struct reload_report rep;
	char *args[] = {NULL};
	enum spawn_refusal sw;

	(void)state;
	assert_non_null(dynamic_spawn(r->t, N(r, "pool"), "K", args, NULL,
	                              r->now, &sw));
	pump(r);
	r->obedient = false;
	r->log[0] = '\0';
	run_reload(r, next, &rep);
	pump(r);
	reload_report_free(&rep);
	assert_null(strstr(r->log, "start top/pool/K"));
	r->log[0] = '\0';
	tree_exited(r->t, r->t->graveyard->children[0],
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, r->now);
	pump(r);
	expect(r, "start top/pool/K\n");
	run_free(r);
}

/* A reload's job cut short by an operator's stop leaves no mark behind:
 * the same config reloaded later restarts nothing (it restarted w, and
 * the report said restarted []). */
static void
test_a_reload_job_cut_short_leaves_no_mark(void **state)
{
	static const char *tree =
	        "supervisor: root\nchildren:\n"
	        "  - supervisor: s\n    children: [{worker: w, command: %s},"
	        " {worker: v, command: x}]\n";
	char yaml[256];
	struct run *r;
	struct reload_report rep;

	(void)state;
	snprintf(yaml, sizeof yaml, tree, "old");
	r = run_new(yaml);
	snprintf(yaml, sizeof yaml, tree, "new");
	r->obedient = false;
	r->log[0] = '\0';
	run_reload(r, yaml, &rep);
	reload_report_free(&rep);
	pump(r);
	expect(r, "stop root/s/w\n"); /* the reload's job: w restarts */
	ok_(command_stop(r->t, N(r, "s"), r->now));
	pump(r);
	tree_exited(r->t, N(r, "w"),
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, r->now);
	tree_exited(r->t, N(r, "v"),
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, r->now);
	pump(r);
	ok_(command_start(r->t, N(r, "s"), r->now));
	pump(r);
	assert_string_equal(state_of(r, "w"), "running");
	r->log[0] = '\0';
	run_reload(r, yaml, &rep); /* the same config again */
	pump(r);
	expect(r, "");
	assert_string_equal(joined(&rep.restarted), "");
	reload_report_free(&rep);
	run_free(r);
}

/* A lone worker added beside the only root makes the implicit root: the
 * report names the new tree's paths (it said fleet/fleet, fleet/raw). */
static void
test_a_renamed_root_reports_the_new_paths(void **state)
{
	struct run *r = run_new("supervisor: fleet\nchildren:\n"
	                        "  - {worker: planner, command: x}\n");
	/* its own backoff, not run_reload's none: the root is updated too */
	struct config *next =
	        load_yaml("supervisor: root\nchildren:\n"
	                  "  - supervisor: fleet\n    children: [{worker: "
	                  "planner, command: x}]\n"
	                  "  - {worker: raw, command: x}\n");
	struct reload_report rep;
	const char *why = NULL;

	(void)state;
	assert_int_equal(reload_apply(r->t, next->root, r->now, &rep, &why), 0);
	r->retired[r->nretired++] = r->cfg;
	r->cfg = next;
	pump(r);
	assert_string_equal(joined(&rep.added), "root/fleet, root/raw");
	assert_string_equal(joined(&rep.removed), "fleet/planner");
	assert_string_equal(joined(&rep.updated), "root");
	reload_report_free(&rep);
	assert_string_equal(state_of(r, "root/fleet/planner"), "running");
	run_free(r);
}

/* A root renamed and nothing else: every path changes, and the report
 * says so (it said updated [] from a SRE's trial). */
static void
test_a_root_renamed_alone_is_reported(void **state)
{
	struct run *r = run_new("supervisor: rootA\nchildren:\n"
	                        "  - {worker: ck, command: x}\n");
	struct reload_report rep;

	(void)state;
	run_reload(r,
	           "supervisor: rootB\nchildren:\n"
	           "  - {worker: ck, command: x}\n",
	           &rep);
	pump(r);
	assert_string_equal(joined(&rep.updated), "rootB");
	assert_string_equal(joined(&rep.restarted), "");
	assert_string_equal(state_of(r, "rootB/ck"), "running");
	reload_report_free(&rep);
	run_free(r);
}

/* A supervisor's uptime is its own: a child's restart by an operator (a
 * job of the supervisor's) left it at the job's end. */
static void
test_a_childs_restart_leaves_its_supervisors_uptime(void **state)
{
	struct run *r = run_new(NESTED(""));
	uint64_t since = N(r, "s")->since_ms;

	(void)state;
	r->now = 60000;
	ok_(command_restart(r->t, N(r, "w"), r->now));
	pump(r);
	assert_string_equal(state_of(r, "w"), "running");
	assert_int_equal(N(r, "w")->since_ms, 60000);
	assert_int_equal(N(r, "s")->since_ms, since);
	run_free(r);
}

/* --- shutdown cuts every stop short; exit waits for the removed ---------- */

static void
test_shutdown_cuts_an_operators_stop_short(void **state)
{
	struct run *r = run_new(FLAKY);

	(void)state;
	r->obedient = false; /* w drains for its drain_timeout */
	r->log[0] = '\0';
	ok_(command_stop(r->t, N(r, "w"), r->now));
	pump(r);
	expect(r, "stop root/w\n");
	r->log[0] = '\0';
	tree_shutdown(r->t, r->now);
	pump(r);
	expect(r, "stop root/w\nstop root/ok\n"); /* w's drain cut short */
	run_free(r);
}

static struct run *
removed_and_stopping(void)
{
	struct run *r = run_new(FLAKY);
	const char *next = "supervisor: root\nintensity: 0\n"
	                   "children:\n"
	                   "  - {worker: ok, command: x}\n";
	struct reload_report rep;

	r->obedient = false;
	r->log[0] = '\0';
	run_reload(r, next, &rep);
	pump(r);
	expect(r, "stop root/w\n"); /* buried, draining */
	reload_report_free(&rep);
	/* the old config stays while a removed node points into it */
	r->log[0] = '\0';
	return r;
}

static void
test_shutdown_stops_the_removed_and_waits_for_them(void **state)
{
	struct run *r = removed_and_stopping();

	(void)state;
	tree_shutdown(r->t, r->now);
	pump(r);
	expect(r, "stop root/w\nstop root/ok\n");
	r->log[0] = '\0';
	tree_exited(r->t, N(r, "ok"),
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, r->now);
	pump(r);
	expect(r, ""); /* no exit while root/w still runs */
	assert_false(r->t->exited);
	assert_int_not_equal(command_start(r->t, N(r, "ok"), r->now).kind,
	                     REFUSED_NONE);
	tree_exited(r->t, r->t->graveyard->children[0],
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, r->now);
	pump(r);
	expect(r, "exit 0\n");
	run_free(r);
}

static void
test_give_up_exit_waits_for_the_removed(void **state)
{
	struct run *r = removed_and_stopping();

	(void)state;
	r->obedient = true;
	crash(r, "ok", 1); /* intensity 0: the root gives up */
	assert_null(strstr(r->log, "exit 75"));
	r->log[0] = '\0';
	tree_exited(r->t, r->t->graveyard->children[0],
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, r->now);
	pump(r);
	expect(r, "exit 75\n");
	run_free(r);
}

/* A reload does not restart what an operator is stopping: its change is
 * for its next start. */
static void
test_reload_leaves_an_operators_stop_alone(void **state)
{
	struct run *r = run_new(FLAKY);
	const char *next =

	        "supervisor: root\nintensity: 100\nperiod: 1h\nchildren:\n"
	        "  - {worker: w, command: new}\n  - {worker: ok, command: "
	        "x}\n";
	struct reload_report rep;

	(void)state;
	r->obedient = false;
	ok_(command_stop(r->t, N(r, "w"), r->now));
	pump(r);
	r->log[0] = '\0';
	run_reload(r, next, &rep);
	pump(r);
	assert_string_equal(joined(&rep.restarted), "");
	assert_string_equal(joined(&rep.updated), "root/w");
	tree_exited(r->t, N(r, "w"),
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, r->now);
	pump(r);
	expect(r, "");
	assert_string_equal(state_of(r, "w"), "stopped");
	reload_report_free(&rep);
	run_free(r);
}

/* As pump(), each stop with how it goes (the shell drains on graceful). */
static void
pump_how(struct run *r)
{
	struct action a;

	while (tree_next_action(r->t, &a)) {
		if (a.kind == ACT_STOP)
			logf_(r, "stop %s %s\n", a.node->path,
			      a.code == STOP_GRACEFUL ? "graceful"
			      : a.code == STOP_DRAIN  ? "drain"
			                              : "plain");
		else if (a.kind == ACT_START)
			logf_(r, "start %s\n", a.node->path);
		else if (a.kind == ACT_EXIT)
			logf_(r, "exit %d\n", a.code);
	}
}

#define SEQUENTIAL                                                             \
	"  - supervisor: s\n    strategy: one_for_all\n    children:\n"        \
	"      - {worker: a, command: x}\n      - {worker: b, command: x}\n"

/* SIGTERM during an operator's stop of a one_for_all supervisor: the
 * children its job has not reached yet get the shutdown sequence too, not
 * a drain for their drain_timeout. */
static void
test_shutdown_during_a_sequential_stop(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n" SEQUENTIAL);

	(void)state;
	r->obedient = false;
	r->log[0] = '\0';
	ok_(command_stop(r->t, N(r, "s"), r->now));
	pump_how(r);
	expect(r, "stop root/s/b graceful\n");
	r->log[0] = '\0';
	tree_shutdown(r->t, r->now);
	pump_how(r);
	expect(r, "stop root/s/b plain\n");
	r->log[0] = '\0';
	tree_exited(r->t, N(r, "b"),
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, r->now);
	pump_how(r);
	expect(r, "stop root/s/a plain\n");
	run_free(r);
}

static void
test_shutdown_during_a_removed_sequential_stop(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: ok, command: x}\n" SEQUENTIAL);
	const char *next = "supervisor: root\nchildren:\n"
	                   "  - {worker: ok, command: x}\n";
	struct reload_report rep;
	struct node *s;

	(void)state;
	r->obedient = false;
	r->log[0] = '\0';
	run_reload(r, next, &rep);
	reload_report_free(&rep);
	pump_how(r);
	expect(r, "stop root/s/b graceful\n");
	s = r->t->graveyard->children[0];
	r->log[0] = '\0';
	tree_shutdown(r->t, r->now);
	pump_how(r);
	expect(r, "stop root/s/b plain\nstop root/ok plain\n");
	r->log[0] = '\0';
	tree_exited(r->t, N(r, "ok"),
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, r->now);
	tree_exited(r->t, s->children[1],
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, r->now);
	pump_how(r);
	expect(r, "stop root/s/a plain\n");
	r->log[0] = '\0';
	tree_exited(r->t, s->children[0],
	            (struct reason){.kind = REASON_SIGNAL, .code = 15}, r->now);
	pump_how(r);
	expect(r, "exit 0\n");
	run_free(r);
}

/* An exhausted supervisor with a quarantined child: reset (the only way
 * back: start does nothing for it) brings both back. */
static void
test_reset_brings_back_an_exhausted_supervisor_and_its_parked(void **state)
{
	struct run *r = run_new(NESTED("    budget: {tokens: 100}\n"));
	struct progress p = {.tokens = 100};

	(void)state;
	quarantine(r, "w");
	tree_beat(r->t, N(r, "x"), &p, PROGRESS_TOKENS, r->now);
	pump(r);
	tree_exited(r->t, N(r, "x"), (struct reason){.kind = REASON_EXIT},
	            r->now);
	pump(r);
	assert_string_equal(state_of(r, "s"), "exhausted");
	r->log[0] = '\0';
	ok_(command_reset(r->t, r->t->root, r->now));
	pump(r);
	expect(r, "start root/s/w\nstart root/s/x\n"); /* circuit closed */
	assert_string_equal(state_of(r, "s"), "running");
	run_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_start_skips_backoff),
	        cmocka_unit_test(test_start_and_restart_start_a_failed_worker),
	        cmocka_unit_test(
	                test_start_after_stop_probes_a_quarantined_worker),
	        cmocka_unit_test(test_restart_probes_a_quarantined_worker),
	        cmocka_unit_test(test_reset_starts_a_worker_in_backoff),
	        cmocka_unit_test(test_refused_reset_changes_nothing),
	        cmocka_unit_test(test_restart_while_busy_comes_after_the_job),
	        cmocka_unit_test(
	                test_reset_starts_a_supervisor_below_that_gave_up),
	        cmocka_unit_test(
	                test_reset_of_a_supervisor_starts_only_the_parked),
	        cmocka_unit_test(test_probe_waits_for_a_stopped_supervisor),
	        cmocka_unit_test(test_probe_not_during_shutdown),
	        cmocka_unit_test(test_probe_not_under_an_exhausted_supervisor),
	        cmocka_unit_test(test_probe_due_during_a_job_comes_after_it),
	        cmocka_unit_test(
	                test_significant_temporary_child_failing_gives_up),
	        cmocka_unit_test(test_a_clean_end_clears_the_failures_in_a_row),
	        cmocka_unit_test(test_group_wait_ends_with_the_starts_in_order),
	        cmocka_unit_test(test_group_wait_skipped_by_an_operator),
	        cmocka_unit_test(test_group_wait_lets_another_failure_through),
	        cmocka_unit_test(test_group_wait_takes_a_reload),
	        cmocka_unit_test(test_group_wait_called_off_by_a_stop),
	        cmocka_unit_test(
	                test_group_wait_reload_of_a_waiting_childs_command),
	        cmocka_unit_test(test_group_wait_holds_a_probe),
	        cmocka_unit_test(
	                test_group_wait_of_a_supervisor_that_once_gave_up),
	        cmocka_unit_test(
	                test_group_wait_leaves_a_supervisor_made_temporary),
	        cmocka_unit_test(test_group_waits_keep_their_own_times),
	        cmocka_unit_test(
	                test_group_wait_ended_by_reload_leaves_a_sibling_made_temporary),
	        cmocka_unit_test(test_group_wait_reset_starts_the_failed_too),
	        cmocka_unit_test(test_group_wait_held_child_leaves_it),
	        cmocka_unit_test(
	                test_group_wait_kept_when_a_siblings_backoff_goes),
	        cmocka_unit_test(
	                test_group_wait_takes_a_child_in_its_own_backoff),
	        cmocka_unit_test(
	                test_reload_ends_a_wait_its_policy_no_longer_wants),
	        cmocka_unit_test(test_declaration_dies_with_a_stopped_process),
	        cmocka_unit_test(test_declaration_dies_in_a_group_restart),
	        cmocka_unit_test(
	                test_declared_budget_exhausts_a_temporary_worker),
	        cmocka_unit_test(
	                test_declared_permanent_by_significant_temporary_gives_up),
	        cmocka_unit_test(
	                test_declared_permanent_with_status_0_fails_a_transient),
	        cmocka_unit_test(
	                test_declared_rate_limit_with_status_0_restarts_a_transient),
	        cmocka_unit_test(test_reload_starts_a_changed_failed_worker),
	        cmocka_unit_test(
	                test_start_during_an_operators_stop_comes_after_it),
	        cmocka_unit_test(
	                test_reset_during_an_operators_stop_comes_after_it),
	        cmocka_unit_test(
	                test_start_during_a_supervisors_stop_comes_after_it),
	        cmocka_unit_test(
	                test_start_of_what_stops_for_another_reason_is_refused),
	        cmocka_unit_test(
	                test_a_moved_worker_starts_once_its_old_place_is_down),
	        cmocka_unit_test(
	                test_a_moved_worker_starts_when_its_old_place_ends_by_itself),
	        cmocka_unit_test(
	                test_a_task_stored_during_a_job_starts_after_it),
	        cmocka_unit_test(test_an_uncommitted_task_waits_for_its_commit),
	        cmocka_unit_test(
	                test_a_stop_before_the_commit_cancels_the_task),
	        cmocka_unit_test(
	                test_two_waiting_for_one_removed_worker_both_start),
	        cmocka_unit_test(
	                test_a_worker_in_a_tasks_place_waits_across_a_root_rename),
	        cmocka_unit_test(test_a_reload_job_cut_short_leaves_no_mark),
	        cmocka_unit_test(test_a_renamed_root_reports_the_new_paths),
	        cmocka_unit_test(test_a_root_renamed_alone_is_reported),
	        cmocka_unit_test(
	                test_a_childs_restart_leaves_its_supervisors_uptime),
	        cmocka_unit_test(test_shutdown_cuts_an_operators_stop_short),
	        cmocka_unit_test(
	                test_shutdown_stops_the_removed_and_waits_for_them),
	        cmocka_unit_test(test_give_up_exit_waits_for_the_removed),
	        cmocka_unit_test(test_reload_leaves_an_operators_stop_alone),
	        cmocka_unit_test(test_shutdown_during_a_sequential_stop),
	        cmocka_unit_test(
	                test_shutdown_during_a_removed_sequential_stop),
	        cmocka_unit_test(
	                test_reset_brings_back_an_exhausted_supervisor_and_its_parked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
