/*
 * test_progress.c - stalls, loops and recycling (DESIGN §10), the engine
 * driven by scripted beats and ticks, no processes (harness:
 * progress_test.h). Budgets are in test_budget.c.
 */
#include "progress_test.h"

#define STALL_WORKER                                                           \
	"supervisor: root\nchildren:\n"                                        \
	"  - {worker: a, command: x, heartbeat: 1s, stall_timeout: 10s,"       \
	" backoff: none}\n"

/* Beats every second, progress moved once at 1000: the stall is seen at
 * exactly 11000, the stop at 11000 + 5000 (grace = T / 2). */
static void
test_stall_fires_at_timeout(void **state)
{
	struct run *r = run_new(STALL_WORKER);

	(void)state;
	expect(r, "start root/a\n");
	step(r, "a", 1, "s1");
	assert_int_equal(tree_next_wake(r->t), 11000);
	for (uint64_t at = 2000; at <= 10000; at += 1000) {
		advance(r, at);
		bare_beat(r, "a");
	}
	advance(r, 10999);
	expect(r, "");
	advance(r, 11000);
	expect(r, "stalled root/a\nnudge root/a stall 10000\n");
	assert_int_equal(progress_stalled_ms(N(r, "a"), 12000), 11000);
	for (uint64_t at = 12000; at <= 15000; at += 1000) {
		advance(r, at);
		bare_beat(r, "a");
	}
	advance(r, 15999);
	expect(r, "");
	advance(r, 16000);
	expect(r, "fail root/a stall\nrestarting root/a\nstart root/a\n");
	assert_int_equal(N(r, "a")->last.kind, REASON_STALL);
	run_free(r);
}

/* Progress that moves keeps a worker from stalling, however long it runs;
 * a move after the nudge ends the stall. */
static void
test_stall_moving_and_recovering(void **state)
{
	struct run *r = run_new(STALL_WORKER);

	(void)state;
	r->log[0] = '\0';
	for (uint64_t s = 1; s <= 60; s++) {
		advance(r, 1000 + s * 1000);
		step(r, "a", s, "x");
	}
	expect(r, "");
	for (uint64_t at = 62000; at <= 71000; at += 1000) {
		advance(r, at);
		bare_beat(r, "a");
	}
	expect(r, "stalled root/a\nnudge root/a stall 10000\n");
	advance(r, 72000);
	step(r, "a", 61, "x"); /* it moved within the grace */
	advance(r, 81000);
	expect(r, "");
	assert_int_equal(N(r, "a")->state, NODE_RUNNING);
	run_free(r);
}

/* No beat since the last move: a long call (or a hang, the heartbeat's
 * business), not a stall; the first beat after the window judges. */
static void
test_stall_needs_beats(void **state)
{
	struct run *r = run_new(STALL_WORKER);

	(void)state;
	r->log[0] = '\0';
	step(r, "a", 1, "x");
	advance(r, 30000);
	expect(r, "");
	bare_beat(r, "a");
	expect(r, "stalled root/a\nnudge root/a stall 29000\n");
	advance(r, 35000);
	expect(r, "fail root/a stall\nrestarting root/a\nstart root/a\n");
	run_free(r);
}

#define LOOP_WORKER                                                            \
	"supervisor: root\nchildren:\n"                                        \
	"  - {worker: a, command: x, loop: {repeats: 5}, backoff: none}\n"

/* Steps with states from `seq`, one character each, from step `from`. */
static void
steps(struct run *r, uint64_t *n, const char *seq)
{
	char st[2] = {0};

	for (const char *c = seq; *c; c++) {
		st[0] = *c;
		step(r, "a", ++*n, st);
	}
}

static void
test_loop_period_1(void **state)
{
	struct run *r = run_new(LOOP_WORKER);
	uint64_t n = 0;

	(void)state;
	r->log[0] = '\0';
	steps(r, &n, "xyAAAA");
	expect(r, "");
	steps(r, &n, "A"); /* the same state on 5 steps in a row */
	expect(r, "looping root/a\nnudge root/a loop 1\n");
	assert_int_equal(N(r, "a")->pwatch->loop_period, 1);
	steps(r, &n, "AAAA");
	expect(r, "");
	steps(r, &n, "A"); /* 5 more */
	expect(r, "fail root/a loop\nrestarting root/a\nstart root/a\n");
	run_free(r);
}

static void
test_loop_period_2_and_3(void **state)
{
	struct run *r = run_new(LOOP_WORKER);
	uint64_t n = 0;

	(void)state;
	r->log[0] = '\0';
	steps(r, &n, "ABABABABA");
	expect(r, "");
	steps(r, &n, "B"); /* AB five times */
	expect(r, "looping root/a\nnudge root/a loop 2\n");
	steps(r, &n, "ABABC"); /* it broke out: the suspicion ends */
	expect(r, "");
	assert_int_equal(N(r, "a")->pwatch->loop_period, 0);
	steps(r, &n, "ABCABCABCAB"); /* with the ABC before: 5 x ABC */
	expect(r, "");
	steps(r, &n, "C");
	expect(r, "looping root/a\nnudge root/a loop 3\n");
	steps(r, &n, "ABCAB");
	expect(r, "fail root/a loop\nrestarting root/a\nstart root/a\n");
	run_free(r);
}

/* A state that changes every step is never a loop, however long; and a
 * state repeated on beats whose steps do not grow is not a step. */
static void
test_loop_never_on_changing_states(void **state)
{
	struct run *r = run_new(LOOP_WORKER);
	char st[32];

	(void)state;
	r->log[0] = '\0';
	for (uint64_t s = 1; s <= 5000; s++) {
		snprintf(st, sizeof st, "tool-%llu", (unsigned long long)s);
		step(r, "a", s, st);
	}
	for (int i = 0; i < 50; i++)
		step(r, "a", 5000, "same");
	expect(r, "");
	assert_int_equal(N(r, "a")->pwatch->loop_period, 0);
	run_free(r);
}

/* Only 64 bytes of a state are kept, but all of it is compared: a tool
 * call whose query differs after byte 64 was flagged as a loop. */
static void
test_loop_never_on_states_differing_after_64_bytes(void **state)
{
	struct run *r = run_new(LOOP_WORKER);
	char st[128];

	(void)state;
	r->log[0] = '\0';
	for (uint64_t s = 1; s <= 50; s++) {
		snprintf(st, sizeof st, "tool=web_search query=%.60s%llu",
		         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		         "xx"
		         "xxxxx",
		         (unsigned long long)s);
		step(r, "a", s, st);
	}
	expect(r, "");
	assert_int_equal(N(r, "a")->pwatch->loop_period, 0);
	run_free(r);
}

static void
test_recycle(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: a, command: x, recycle_after: "
	                        "1m}\n");

	(void)state;
	r->log[0] = '\0';
	advance(r, 60999);
	expect(r, "");
	advance(r, 61000);
	expect(r, "recycled root/a\nstop root/a\nstart root/a\n");
	assert_int_equal(N(r, "a")->failures, 0);
	assert_int_equal(N(r, "root")->super->nstamps, 0);
	advance(r, 121000);
	expect(r, "recycled root/a\nstop root/a\nstart root/a\n");
	run_free(r);
}

/* A reload that adds recycling to a running worker arms it. */
static void
test_recycle_added_by_reload(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: a, command: x}\n");
	struct config *more = load_yaml("supervisor: root\nchildren:\n"
	                                "  - {worker: a, command: x, "
	                                "recycle_after: 1m}\n");
	struct reload_report rep;
	const char *why;

	(void)state;
	r->log[0] = '\0';
	advance(r, 30000);
	assert_int_equal(reload_apply(r->t, more->root, r->now, &rep, &why), 0);
	reload_report_free(&rep);
	pump(r);
	assert_int_equal(tree_next_wake(r->t), 61000);
	advance(r, 61000);
	expect(r, "recycled root/a\nstop root/a\nstart root/a\n");
	run_free(r);
	config_free(more);
}

/* A stall window a reload adds to a running worker counts from when it
 * came up, and its wake-up is asked for at once, though the worker had no
 * stall state before. */
static void
test_stall_added_by_reload(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: a, command: x, heartbeat: 1s}\n");
	struct config *more = load_yaml("supervisor: root\nchildren:\n"
	                                "  - {worker: a, command: x, "
	                                "heartbeat: 1s, stall_timeout: 10s}\n");
	struct reload_report rep;
	const char *why;
	uint64_t up = N(r, "a")->running_since;

	(void)state;
	r->log[0] = '\0';
	advance(r, up + 2000);
	bare_beat(r, "a");
	assert_null(N(r, "a")->pwatch);
	assert_int_equal(reload_apply(r->t, more->root, r->now, &rep, &why), 0);
	reload_report_free(&rep);
	pump(r);
	assert_non_null(N(r, "a")->pwatch);
	assert_int_equal(tree_next_wake(r->t), up + 10000);
	run_free(r);
	config_free(more);
}

/* What settings a reload takes away decide nothing more: a stall that is
 * no longer overdue under a longer stall_timeout is not stopped at the old
 * grace; a loop watch turned off forgets its suspicion (status said
 * LOOPING for ever). */
static void
test_reload_takes_back_a_stall_and_a_loop(void **state)
{
	struct run *r = run_new(STALL_WORKER);
	struct config *c;
	uint64_t n = 0;

	(void)state;
	step(r, "a", 1, "s1");
	r->log[0] = '\0';
	for (uint64_t at = 2000; at <= 11000; at += 1000) {
		advance(r, at);
		bare_beat(r, "a");
	}
	expect(r, "stalled root/a\nnudge root/a stall 10000\n");
	c = load_yaml("supervisor: root\nchildren:\n"
	              "  - {worker: a, command: x, heartbeat: 1s,"
	              " stall_timeout: 30s, backoff: none}\n");
	reload_to(r, c);
	for (uint64_t at = 12000; at <= 30000; at += 1000) {
		advance(r, at);
		bare_beat(r, "a");
		expect(r, "");
	}
	assert_int_equal(progress_stalled_ms(N(r, "a"), r->now), 0);
	run_free(r);
	config_free(c);

	r = run_new(LOOP_WORKER);
	steps(r, &n, "AAAAA");
	assert_int_not_equal(N(r, "a")->pwatch->loop_period, 0);
	c = load_yaml("supervisor: root\nchildren:\n"
	              "  - {worker: a, command: x, backoff: none}\n");
	reload_to(r, c);
	assert_int_equal(N(r, "a")->pwatch->loop_period, 0);
	run_free(r);
	config_free(c);
}

/* A recycle due while its supervisor is busy waits for it (a due time in
 * the past once made tree_tick spin for ever). */
static void
test_recycle_waits_for_busy_parent(void **state)
{
	struct run *r = run_new("supervisor: root\nstrategy: one_for_all\n"
	                        "children:\n"
	                        "  - {worker: a, command: x, recycle_after: "
	                        "10s}\n"
	                        "  - {worker: b, command: x, start_timeout: "
	                        "1h}\n");

	(void)state;
	expect(r, "start root/a\nstart root/b\n");
	advance(r, 12500); /* due at 11000: root still waits for b */
	expect(r, "");
	tree_ready(r->t, N(r, "b"), r->now);
	pump(r);
	advance(r, 13000);
	expect(r, "recycled root/a\nstop root/a\nstart root/a\n");
	run_free(r);
}

/* Progress analysis costs no allocation and no heap operation per beat:
 * the worker's one wake-up stays where it was. */
static void
test_beats_touch_no_heap(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: a, command: x, heartbeat: 1s,"
	                        " stall_timeout: 10s, loop: {},"
	                        " budget: {tokens: 1000000000}}\n");
	struct progress p = {0};

	(void)state;
	r->log[0] = '\0';
	for (uint64_t i = 1; i <= 1000; i++) {
		p.steps = i;
		p.tokens = i * 10;
		snprintf(p.state, sizeof p.state, "s%llu",
		         (unsigned long long)i);
		p.state_hash = progress_state_hash(p.state, strlen(p.state));
		tree_beat(r->t, N(r, "a"), &p,
		          PROGRESS_STEPS | PROGRESS_TOKENS | PROGRESS_STATE,
		          r->now + i);
		assert_int_equal(tree_next_wake(r->t), 11000);
	}
	pump(r);
	expect(r, "");
	run_free(r);
}

/* What a worker reported is its incarnation's: status and /metrics showed
 * the last one's steps, tokens, cost and status after a restart, until
 * the new one reported the same fields. */
static void
test_progress_is_per_incarnation(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: a, command: x, backoff: none}\n");
	struct progress p = {.steps = 7, .tokens = 700, .cost = 1.5};
	const struct progress *got;

	(void)state;
	snprintf(p.status, sizeof p.status, "old");
	tree_beat(r->t, N(r, "a"), &p,
	          PROGRESS_STEPS | PROGRESS_TOKENS | PROGRESS_COST |
	                  PROGRESS_STATUS,
	          r->now);
	tree_exited(r->t, N(r, "a"),
	            (struct reason){.kind = REASON_EXIT, .code = 1}, r->now);
	pump(r);
	assert_int_equal(N(r, "a")->starts, 2);
	got = N(r, "a")->progress;
	assert_non_null(got);
	assert_false(progress_shown(got, PROGRESS_STEPS) ||
	             progress_shown(got, PROGRESS_TOKENS) ||
	             progress_shown(got, PROGRESS_COST) ||
	             progress_shown(got, PROGRESS_STATUS));
	p.steps = 1;
	tree_beat(r->t, N(r, "a"), &p, PROGRESS_STEPS, r->now + 1);
	assert_true(progress_shown(got, PROGRESS_STEPS) && got->steps == 1);
	assert_false(progress_shown(got, PROGRESS_TOKENS));
	assert_int_equal(N(r, "a")->progress_moved, r->now + 1);
	run_free(r);
}

/* Idle memory: a worker that is not watched for stalls or loops keeps no
 * struct pwatch through bare beats; its first progress report makes one
 * (its loop ring counts from there), a watched worker has one from the
 * start, and supervisors have their own state, workers none. */
static void
test_pwatch_only_when_needed(void **state)
{
	struct run *r = run_new("supervisor: root\nchildren:\n"
	                        "  - {worker: a, command: x, heartbeat: 1s}\n"
	                        "  - {worker: b, command: x, heartbeat: 1s,"
	                        " stall_timeout: 10s}\n");
	struct progress p = {.steps = 1};

	(void)state;
	assert_non_null(N(r, "root")->super);
	assert_null(N(r, "a")->super);
	assert_non_null(N(r, "b")->pwatch);
	for (uint64_t i = 1; i <= 5; i++) {
		advance(r, r->now + 1000);
		bare_beat(r, "a");
	}
	assert_null(N(r, "a")->pwatch);
	assert_int_equal(progress_pwatch(N(r, "a"))->steps, 0);
	tree_beat(r->t, N(r, "a"), &p, PROGRESS_STEPS, r->now);
	assert_non_null(N(r, "a")->pwatch);
	assert_int_equal(progress_pwatch(N(r, "a"))->steps, 1);
	assert_int_equal(progress_pwatch(N(r, "a"))->inc.steps, 1);
	run_free(r);
}

/* The state an earlier incarnation reported is not this one's: a new
 * incarnation reporting steps only is no loop. */
static void
test_loop_ignores_the_state_carried_over(void **state)
{
	struct run *r =
	        run_new("supervisor: root\nchildren:\n"
	                "  - {worker: a, command: x, loop: {repeats: 5},"
	                " backoff: none}\n");
	struct progress p = {0};

	(void)state;
	step(r, "a", 1, "A");
	crash(r, "a");
	r->log[0] = '\0';
	for (uint64_t s = 1; s <= 10; s++) {
		p.steps = s;
		tree_beat(r->t, N(r, "a"), &p, PROGRESS_STEPS, r->now);
		pump(r);
	}
	assert_null(strstr(r->log, "looping"));
	run_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_loop_ignores_the_state_carried_over),
	        cmocka_unit_test(test_stall_fires_at_timeout),
	        cmocka_unit_test(test_stall_moving_and_recovering),
	        cmocka_unit_test(test_stall_needs_beats),
	        cmocka_unit_test(test_loop_period_1),
	        cmocka_unit_test(test_loop_period_2_and_3),
	        cmocka_unit_test(test_loop_never_on_changing_states),
	        cmocka_unit_test(
	                test_loop_never_on_states_differing_after_64_bytes),
	        cmocka_unit_test(test_recycle),
	        cmocka_unit_test(test_recycle_waits_for_busy_parent),
	        cmocka_unit_test(test_recycle_added_by_reload),
	        cmocka_unit_test(test_stall_added_by_reload),
	        cmocka_unit_test(test_reload_takes_back_a_stall_and_a_loop),
	        cmocka_unit_test(test_beats_touch_no_heap),
	        cmocka_unit_test(test_pwatch_only_when_needed),
	        cmocka_unit_test(test_progress_is_per_incarnation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
