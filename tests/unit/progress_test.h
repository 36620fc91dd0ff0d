/*
 * progress_test.h - the fake shell the engine's progress tests share
 * (test_progress.c, test_budget.c), as test_tree.c's: every action a line
 * of a transcript; a stop, a drain or an engine's failure answered with the
 * process's exit, as an obedient worker would.
 */
#ifndef AGENTSUP_PROGRESS_TEST_H
#define AGENTSUP_PROGRESS_TEST_H

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

static inline const char *
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

static inline void
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
			            (struct reason){.kind = REASON_EXIT},
			            r->now);
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

/* A reload to next applied (what it reports not looked at), then the
 * actions it queued carried out. */
static inline void
reload_to(struct run *r, struct config *next)
{
	struct reload_report rep;
	const char *why = NULL;

	assert_int_equal(reload_apply(r->t, next->root, r->now, &rep, &why), 0);
	reload_report_free(&rep);
	pump(r);
}

static inline struct run *
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

static inline void
run_free(struct run *r)
{
	tree_free(r->t);
	config_free(r->cfg);
	free(r);
}

static inline struct node *
N(struct run *r, const char *name)
{
	struct node *n = tree_find(r->t, name);

	assert_non_null(n);
	return n;
}

static inline void
expect(struct run *r, const char *want)
{
	if (strcmp(r->log, want) != 0)
		fprintf(stderr, "--- want\n%s--- got\n%s---\n", want, r->log);
	assert_string_equal(r->log, want);
	r->log[0] = '\0';
}

/* Time passes to `at`: every wake-up on the way is delivered when due. */
static inline void
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

static inline void
bare_beat(struct run *r, const char *name)
{
	tree_beat(r->t, N(r, name), NULL, 0, r->now);
	pump(r);
}

/* A beat carrying steps and a state. */
static inline void
step(struct run *r, const char *name, uint64_t steps, const char *state)
{
	struct progress p = {.steps = steps};
	size_t len = strlen(state);

	/* as channel.c: 64 bytes kept, the hash of all of it */
	memcpy(p.state, state,
	       len < sizeof p.state - 1 ? len : sizeof p.state - 1);
	p.state_hash = progress_state_hash(state, len);
	tree_beat(r->t, N(r, name), &p, PROGRESS_STEPS | PROGRESS_STATE,
	          r->now);
	pump(r);
}

static inline void
tokens(struct run *r, const char *name, uint64_t n)
{
	struct progress p = {.tokens = n};

	tree_beat(r->t, N(r, name), &p, PROGRESS_TOKENS, r->now);
	pump(r);
}

static inline void
crash(struct run *r, const char *name)
{
	tree_exited(r->t, N(r, name),
	            (struct reason){.kind = REASON_EXIT, .code = 1}, r->now);
	pump(r);
}

#endif
