/*
 * tree_run.h - the fake shell the engine's scripted tests drive it with
 * (test_tree.c, test_policy_ops.c): every action recorded as a line
 * ("start root/a", "stop root/b", "exit 75") and, where a test says so,
 * each stop answered with the process's exit, as an obedient worker would.
 * Each test is its own program, so these are static.
 */
#ifndef AGENTSUP_TEST_TREE_RUN_H
#define AGENTSUP_TEST_TREE_RUN_H

#include "fixture.h"

#include "command.h"
#include "config.h"
#include "reload.h"
#include "tree.h"

struct run {
	struct config *cfg;
	struct config *retired[4]; /* reloads' old ones, while nodes use them */
	size_t nretired;
	struct tree *t;
	char log[8192]; /* actions, one per line */
	bool obedient;  /* answer each stop with an exit */
	uint64_t now;
	int exit_code;
};

/* Carry out actions as the fake shell. */
static inline void
pump(struct run *r)
{
	static const char *ev[] = {
	        "restarting", "gave_up",     "escalated", "stopped",
	        "backoff",    "quarantined", "probing",   "circuit_closed",
	        "failed",     "exhausted"};
	struct action a;

	while (tree_next_action(r->t, &a)) {
		switch (a.kind) {
		case ACT_START:
			logf_(r, "start %s\n", a.node->path);
			break;
		case ACT_STOP:
			logf_(r, "stop %s\n", a.node->path);
			if (r->obedient)
				tree_exited(
				        r->t, a.node,
				        (struct reason){.kind = REASON_SIGNAL,
				                        .code = 15},
				        r->now);
			break;
		case ACT_DRAIN:
			logf_(r, "drain %s\n", a.node->path);
			break;
		case ACT_EVENT:
			if (a.event == EE_BACKOFF)
				logf_(r, "backoff %s %llums\n", a.node->path,
				      (unsigned long long)a.value);
			else if (a.event != EE_STOPPED)
				logf_(r, "%s %s\n",
				      (size_t)a.event < sizeof ev / sizeof *ev
				              ? ev[a.event]
				              : "other",
				      a.node->path);
			break;
		case ACT_EXIT:
			logf_(r, "exit %d\n", a.code);
			r->exit_code = a.code;
			break;
		case ACT_NUDGE:
		case ACT_FAIL:
			break;
		}
	}
}

/* OTP's semantics: immediate restarts (as `backoff: none`). */
static inline void
no_backoff(struct spec *s)
{
	spec_policy_own(s)->backoff.enabled = false;
	for (size_t i = 0; i < s->nchildren; i++)
		no_backoff(s->children[i]);
}

static inline struct run *
run_new_with(const char *yaml, bool backoff)
{
	struct run *r = calloc(1, sizeof *r);

	r->cfg = load_yaml(yaml);
	if (!backoff)
		no_backoff(r->cfg->root);
	r->t = tree_new(r->cfg->root);
	r->obedient = true;
	r->exit_code = -1;
	tree_start(r->t, r->now);
	pump(r);
	return r;
}

static inline struct run *
run_new(const char *yaml)
{
	return run_new_with(yaml, false);
}

static inline void
run_free(struct run *r)
{
	tree_free(r->t);
	config_free(r->cfg);
	for (size_t i = 0; i < r->nretired; i++)
		config_free(r->retired[i]);
	free(r);
}

/* A reload of yaml that the tree takes (backoff none unless backoff, as
 * run_new's): its report in rep, for the caller to read and free; the old
 * config kept while removed nodes may point into it. Its actions are not
 * pumped. */
static inline void
run_reload_with(struct run *r, const char *yaml, struct reload_report *rep,
                bool backoff)
{
	struct config *next = load_yaml(yaml);
	const char *why = NULL;

	if (!backoff)
		no_backoff(next->root);
	assert_int_equal(reload_apply(r->t, next->root, r->now, rep, &why), 0);
	assert_true(r->nretired < sizeof r->retired / sizeof *r->retired);
	r->retired[r->nretired++] = r->cfg;
	r->cfg = next;
}

static inline void
run_reload(struct run *r, const char *yaml, struct reload_report *rep)
{
	run_reload_with(r, yaml, rep, false);
}

static inline struct node *
N(struct run *r, const char *name)
{
	struct node *n = tree_find(r->t, name);

	assert_non_null(n);
	return n;
}

static inline void
crash(struct run *r, const char *name, int code)
{
	r->log[0] = '\0';
	tree_exited(r->t, N(r, name),
	            (struct reason){.kind = REASON_EXIT, .code = code}, r->now);
	pump(r);
}

/* An operator's command on name, its actions carried out into a fresh
 * log: the refusal's kind (REFUSED_NONE: taken). */
static inline enum refusal_kind
operate(struct run *r,
        struct refusal (*cmd)(struct tree *, struct node *, uint64_t),
        const char *name)
{
	enum refusal_kind k;

	r->log[0] = '\0';
	k = cmd(r->t, N(r, name), r->now).kind;
	pump(r);
	return k;
}

/* A reload list as "a, b", for comparing. */
static inline const char *
joined(const struct reload_list *l)
{
	static char buf[1024];
	size_t at = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < l->count; i++)
		at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s",
		                       i ? ", " : "", l->paths[i]);
	return buf;
}

static inline void
expect(struct run *r, const char *want)
{
	if (strcmp(r->log, want) != 0)
		fprintf(stderr, "--- want\n%s--- got\n%s---\n", want, r->log);
	assert_string_equal(r->log, want);
}

/* Let time pass to t, delivering the wake-ups the engine asked for. */
static inline void
advance(struct run *r, uint64_t to)
{
	r->log[0] = '\0';
	r->now = to;
	tree_tick(r->t, to);
	pump(r);
}

static inline void
declare(struct run *r, const char *name, enum declared_kind k,
        uint64_t retry_after_ms)
{
	struct declaration d = {.kind = k, .retry_after_ms = retry_after_ms};

	tree_declare(r->t, N(r, name), &d, r->now);
}

static inline const char *
state_of(struct run *r, const char *name)
{
	return node_state_name(N(r, name)->state);
}

#endif
