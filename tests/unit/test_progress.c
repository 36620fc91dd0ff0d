/*
 * test_progress.c - stalls, loops, budgets and recycling (DESIGN §10), the
 * engine driven by scripted beats and ticks, no processes.
 *
 * The fake shell (as in test_tree.c) records every action as a line, and
 * answers a stop, a drain or an engine's failure with the process's exit,
 * as an obedient worker would.
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

#include "command.h"
#include "config.h"
#include "progress.h"
#include "reload.h"
#include "tree.h"

struct run {
	struct config *cfg;
	struct tree *t;
	char log[8192];
	uint64_t now;
	int exit_code;
};

static struct config *
load_yaml(const char *yaml)
{
	char path[] = "/tmp/agentsup-progress-XXXXXX.yaml";
	struct config_errors errs = {0};
	struct config *cfg;
	const char *p = path;
	int fd = mkstemps(path, 5);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
	close(fd);
	cfg = config_load_files(&p, 1, &errs);
	for (size_t i = 0; i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	assert_int_equal(errs.count, 0);
	unlink(path);
	return cfg;
}

static void
logf_(struct run *r, const char *fmt, ...)
{
	size_t at = strlen(r->log);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->log + at, sizeof r->log - at, fmt, ap);
	va_end(ap);
}

static const char *
event_name(enum engine_event e)
{
	switch (e) {
	case EE_RESTARTING:
		return "restarting";
	case EE_GAVE_UP:
		return "gave_up";
	case EE_ESCALATED:
		return "escalated";
	case EE_EXHAUSTED:
		return "exhausted";
	case EE_STALLED:
		return "stalled";
	case EE_LOOPING:
		return "looping";
	case EE_BUDGET_WARNING:
		return "budget_warning";
	case EE_RECYCLED:
		return "recycled";
	case EE_FAILED:
		return "failed";
	default:
		return NULL;
	}
}

static void
pump(struct run *r)
{
	struct action a;
	char why[32];

	while (tree_next_action(r->t, &a)) {
		switch (a.kind) {
		case ACT_START:
			logf_(r, "start %s\n", a.node->path);
			break;
		case ACT_STOP:
		case ACT_DRAIN:
			logf_(r, "%s %s\n",
			      a.kind == ACT_STOP ? "stop" : "drain",
			      a.node->path);
			tree_exited(r->t, a.node,
			            (struct reason){REASON_EXIT, 0}, r->now);
			break;
		case ACT_FAIL:
			reason_format(a.reason, why, sizeof why);
			logf_(r, "fail %s %s%s\n", a.node->path, why,
			      a.code == STOP_DRAIN ? " (drain)" : "");
			tree_exited(r->t, a.node, a.reason, r->now);
			break;
		case ACT_NUDGE:
			logf_(r, "nudge %s %s %llu\n", a.node->path,
			      a.reason.kind == REASON_STALL ? "stall" : "loop",
			      (unsigned long long)a.value);
			break;
		case ACT_EVENT:
			if (event_name(a.event) == NULL)
				break;
			if (a.event == EE_BUDGET_WARNING)
				logf_(r, "budget_warning %s %s\n", a.node->path,
				      budget_limit_name(
				              (enum budget_limit)a.code));
			else
				logf_(r, "%s %s\n", event_name(a.event),
				      a.node->path);
			break;
		case ACT_EXIT:
			logf_(r, "exit %d\n", a.code);
			r->exit_code = a.code;
			break;
		}
	}
}

static struct run *
run_new(const char *yaml)
{
	struct run *r = calloc(1, sizeof *r);

	r->cfg = load_yaml(yaml);
	r->t = tree_new(r->cfg->root);
	r->exit_code = -1;
	r->now = 1000;
	tree_start(r->t, r->now);
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

static struct node *
N(struct run *r, const char *name)
{
	struct node *n = tree_find(r->t, name);

	assert_non_null(n);
	return n;
}

static void
expect(struct run *r, const char *want)
{
	if (strcmp(r->log, want) != 0)
		fprintf(stderr, "--- want\n%s--- got\n%s---\n", want, r->log);
	assert_string_equal(r->log, want);
	r->log[0] = '\0';
}

/* Time passes to `at`: every wake-up on the way is delivered when due. */
static void
advance(struct run *r, uint64_t at)
{
	uint64_t w;

	while ((w = tree_next_wake(r->t)) != 0 && w <= at) {
		r->now = w;
		tree_tick(r->t, w);
		pump(r);
	}
	r->now = at;
}

static void
bare_beat(struct run *r, const char *name)
{
	tree_beat(r->t, N(r, name), NULL, 0, r->now);
	pump(r);
}

/* A beat carrying steps and a state. */
static void
step(struct run *r, const char *name, uint64_t steps, const char *state)
{
	struct progress p = {.steps = steps};

	snprintf(p.state, sizeof p.state, "%s", state);
	tree_beat(r->t, N(r, name), &p, PROGRESS_STEPS | PROGRESS_STATE,
	          r->now);
	pump(r);
}

static void
tokens(struct run *r, const char *name, uint64_t n)
{
	struct progress p = {.tokens = n};

	tree_beat(r->t, N(r, name), &p, PROGRESS_TOKENS, r->now);
	pump(r);
}

static void
crash(struct run *r, const char *name)
{
	tree_exited(r->t, N(r, name), (struct reason){REASON_EXIT, 1}, r->now);
	pump(r);
}

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
	assert_int_equal(N(r, "a")->watch.loop_period, 1);
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
	assert_int_equal(N(r, "a")->watch.loop_period, 0);
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
	assert_int_equal(N(r, "a")->watch.loop_period, 0);
	run_free(r);
}

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
	assert_int_equal(N(r, "root")->nstamps, 0); /* not counted */
	budget_spend(N(r, "a"), r->now, &sp);
	assert_int_equal(sp.tokens, 1000);
	assert_int_equal(N(r, "a")->spend.tokens, 1000);
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
	assert_int_equal(N(r, "a")->watch.total.tokens, 0);
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
	N(r, "a")->spend = (struct spend){.tokens = 700, .wall_ms = 5000};
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
	struct config *more =
	        load_yaml("supervisor: root\nchildren:\n"
	                  "  - {worker: a, command: x, budget: {tokens: 5000},"
	                  " backoff: none}\n  - {worker: b, command: x}\n");
	struct reload_report rep;
	const char *why;

	(void)state;
	r->log[0] = '\0';
	tokens(r, "a", 1000);
	r->log[0] = '\0';
	assert_int_equal(reload_apply(r->t, same->root, r->now, &rep, &why), 0);
	reload_report_free(&rep);
	pump(r);
	expect(r, "");
	assert_int_equal(N(r, "a")->state, NODE_EXHAUSTED);
	assert_int_equal(reload_apply(r->t, more->root, r->now, &rep, &why), 0);
	reload_report_free(&rep);
	pump(r);
	expect(r, "start root/a\n");
	assert_int_equal(N(r, "a")->watch.total.tokens, 1000); /* kept */
	tokens(r, "a", 3000);
	expect(r, "budget_warning root/a tokens\n");
	run_free(r);
	config_free(same);
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
	struct reload_report rep;
	const char *why;

	(void)state;
	r->log[0] = '\0';
	tokens(r, "a", 1000);
	expect(r, "budget_warning root/s tokens\ndrain root/s/b\n"
	          "drain root/s/a\nexhausted root/s\n");
	assert_int_equal(reload_apply(r->t, more->root, r->now, &rep, &why), 0);
	reload_report_free(&rep);
	pump(r);
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
	assert_int_equal(N(r, "root")->nstamps, 0);
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
		tree_beat(r->t, N(r, "a"), &p,
		          PROGRESS_STEPS | PROGRESS_TOKENS | PROGRESS_STATE,
		          r->now + i);
		assert_int_equal(tree_next_wake(r->t), 11000);
	}
	pump(r);
	expect(r, "");
	run_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_stall_fires_at_timeout),
	        cmocka_unit_test(test_stall_moving_and_recovering),
	        cmocka_unit_test(test_stall_needs_beats),
	        cmocka_unit_test(test_loop_period_1),
	        cmocka_unit_test(test_loop_period_2_and_3),
	        cmocka_unit_test(test_loop_never_on_changing_states),
	        cmocka_unit_test(test_budget_warning_once_then_exhausted),
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
	        cmocka_unit_test(test_recycle),
	        cmocka_unit_test(test_recycle_waits_for_busy_parent),
	        cmocka_unit_test(test_recycle_added_by_reload),
	        cmocka_unit_test(test_beats_touch_no_heap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
