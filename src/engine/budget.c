/*
 * budget.c - budgets (DESIGN §10): what a worker or a subtree has spent in
 * tokens, cost, steps and wall time, the 80 % warning and the exhaustion.
 *
 * A worker's spend is the sum over its incarnations of the last values each
 * reported (a client counts from 0 in every incarnation), plus its running
 * time. A beat adds what grew since the last report to the worker's total
 * and to every ancestor's: O(depth), no allocation once each has its
 * account (struct account, made at a node's first spend). Running wall
 * time is never added up ahead of time: it is now - spawned_at, summed
 * over a subtree only when a supervisor's wall limit or status asks (a
 * walk), and folded into the totals when an incarnation ends. An account's
 * `spend` holds what a worker's finished incarnations spent: what the
 * state store keeps.
 */
#include <stddef.h>
#include <stdlib.h>

#include "engine.h"
#include "progress.h"
#include "util.h"

#define BUDGET_WARN 0.8 /* the warning comes at 80 % of a limit */

static const char *const budget_names[BUDGET__LIMITS] = {"tokens", "cost",
                                                         "steps", "wall"};

const char *
budget_limit_name(enum budget_limit l)
{
	return budget_names[l];
}

double
budget_limit_of(const struct budget_spec *b, enum budget_limit l)
{
	if (!b->enabled)
		return 0;
	switch (l) {
	case BUDGET_TOKENS:
		return (double)b->tokens;
	case BUDGET_COST:
		return b->cost;
	case BUDGET_STEPS:
		return (double)b->steps;
	case BUDGET_WALL:
		return (double)b->wall_ms;
	case BUDGET__LIMITS:
		break;
	}
	return 0;
}

double
budget_spend_of(const struct spend *s, enum budget_limit l)
{
	switch (l) {
	case BUDGET_TOKENS:
		return (double)s->tokens;
	case BUDGET_COST:
		return s->cost;
	case BUDGET_STEPS:
		return (double)s->steps;
	case BUDGET_WALL:
		return (double)s->wall_ms;
	case BUDGET__LIMITS:
		break;
	}
	return 0;
}

const struct account account_none;

struct account *
account_own(struct node *n)
{
	if (n->acct == NULL)
		n->acct = xcalloc(1, sizeof *n->acct);
	return n->acct;
}

bool
spend_none(const struct spend *s)
{
	return s->tokens == 0 && s->steps == 0 && s->wall_ms == 0 &&
	       !(s->cost > 0);
}

/* The most a cost may count for: far past any limit, and a sum of such
 * costs stays finite. */
#define BUDGET_COST_MAX 1e300

static uint64_t
add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Saturating: a worker's 2^64 - 5 tokens and a sibling's 10 must not sum
 * to 5 under their supervisor's budget. */
static void
spend_add(struct spend *a, const struct spend *d)
{
	a->tokens = add_sat(a->tokens, d->tokens);
	a->steps = add_sat(a->steps, d->steps);
	a->wall_ms = add_sat(a->wall_ms, d->wall_ms);
	a->cost = a->cost < BUDGET_COST_MAX - d->cost ? a->cost + d->cost
	                                              : BUDGET_COST_MAX;
}

static uint64_t
sub_sat(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

static void
spend_sub(struct spend *a, const struct spend *d)
{
	a->tokens = sub_sat(a->tokens, d->tokens);
	a->steps = sub_sat(a->steps, d->steps);
	a->wall_ms = sub_sat(a->wall_ms, d->wall_ms);
	a->cost = a->cost > d->cost ? a->cost - d->cost : 0;
}

/* The running time of the workers of a subtree, and how many run. */
static uint64_t
budget_running(const struct node *top, uint64_t now, unsigned *count)
{
	uint64_t ms = 0;
	unsigned k = 0;

	for (const struct node *n = top; n != NULL; n = tree_walk_next(top, n))
		if (node_is_worker(n) && n->spawned_at != 0) {
			ms += now > n->spawned_at ? now - n->spawned_at : 0;
			k++;
		}
	if (count != NULL)
		*count = k;
	return ms;
}

void
budget_spend(const struct node *n, uint64_t now, struct spend *out)
{
	*out = node_account(n)->total;
	out->wall_ms += budget_running(n, now, NULL);
}

/* Whether the node still runs and so can be warned or exhausted. */
static bool
budget_live(const struct node *n)
{
	if (n->state != NODE_RUNNING && n->state != NODE_STARTING)
		return false;
	return !node_is_worker(n) || !n->ending;
}

/* Warn of each limit reached at 80 % (once); true when one is spent. */
static bool
budget_judge(struct tree *t, struct node *n, const struct spend *s)
{
	const struct budget_spec *b = &n->spec->pol->budget;
	bool spent = false;

	if (!b->enabled || !budget_live(n))
		return false;
	for (unsigned l = 0; l < BUDGET__LIMITS; l++) {
		double lim = budget_limit_of(b, l), got = budget_spend_of(s, l);
		if (lim <= 0 || got < lim * BUDGET_WARN)
			continue;
		if (!(node_account(n)->warned & (1u << l))) {
			account_own(n)->warned |= 1u << l;
			tree_push(t, (struct action){.kind = ACT_EVENT,
			                             .node = n,
			                             .event = EE_BUDGET_WARNING,
			                             .code = (int)l});
		}
		if (got >= lim)
			spent = true;
	}
	return spent;
}

/* Spent: a worker is drained then stopped, reason budget (strategy.c
 * parks it exhausted); a supervisor drains its whole subtree. */
static void
budget_exhaust(struct tree *t, struct node *n)
{
	if (!budget_live(n) || t->shutting_down || t->draining)
		return;
	if (!node_is_worker(n)) {
		sup_begin_stop(t, n, OUTCOME_EXHAUSTED, STOP_DRAIN);
		return;
	}
	n->ending = true;
	wake_set(t, n, 0);
	tree_push(t, (struct action){.kind = ACT_FAIL,
	                             .node = n,
	                             .reason = {.kind = REASON_BUDGET},
	                             .code = STOP_DRAIN});
}

/* A worker's total with its running time. */
static struct spend
budget_worker_now(const struct node *w, uint64_t now)
{
	struct spend s = node_account(w)->total;

	if (w->spawned_at != 0 && now > w->spawned_at)
		s.wall_ms += now - w->spawned_at;
	return s;
}

/* What grew past the incarnation's highest report, as a spend: a counter
 * that goes down and up again (600, 0, 600) counts once, as its last
 * value would (§10), and cannot be lowered by a report. */
static struct spend
budget_delta(struct pwatch *w, const struct progress *u, unsigned fields)
{
	struct spend d = {0};

	if ((fields & PROGRESS_TOKENS) && u->tokens > w->inc.tokens) {
		d.tokens = u->tokens - w->inc.tokens;
		w->inc.tokens = u->tokens;
	}
	if ((fields & PROGRESS_STEPS) && u->steps > w->inc.steps) {
		d.steps = u->steps - w->inc.steps;
		w->inc.steps = u->steps;
	}
	/* a cost past BUDGET_COST_MAX counts as that much (a report of
	 * 1e301 spends any budget, it is not ignored); NaN as nothing */
	if ((fields & PROGRESS_COST) && u->cost >= 0) {
		double c =
		        u->cost < BUDGET_COST_MAX ? u->cost : BUDGET_COST_MAX;

		if (c > w->inc.cost) {
			d.cost = c - w->inc.cost;
			w->inc.cost = c;
		}
	}
	return d;
}

void
budget_beat(struct tree *t, struct node *w, const struct progress *u,
            unsigned fields)
{
	struct spend d = budget_delta(progress_watch(w), u, fields), s;
	struct node *top = NULL;

	if (d.tokens == 0 && d.steps == 0 && !(d.cost > 0))
		return;
	for (struct node *n = w; n != NULL; n = n->parent) {
		spend_add(&account_own(n)->total, &d);
		if (!n->spec->pol->budget.enabled)
			continue;
		/* a supervisor's running wall time is judged by its wake */
		s = n == w ? budget_worker_now(w, t->now) : n->acct->total;
		if (budget_judge(t, n, &s))
			top = n; /* the highest spent one stops all below */
	}
	if (top != NULL)
		budget_exhaust(t, top);
}

bool
budget_woken_judge(struct tree *t, struct node *w)
{
	struct spend s;

	if (!w->spec->pol->budget.enabled)
		return true;
	s = budget_worker_now(w, t->now);
	if (!budget_judge(t, w, &s))
		return true;
	budget_exhaust(t, w);
	return false;
}

/* The wall time at which the next thing happens to a limit: its warning,
 * or once warned its end. */
static uint64_t
budget_wall_target(const struct node *n)
{
	uint64_t lim = n->spec->pol->budget.wall_ms;

	if (node_account(n)->warned & (1u << BUDGET_WALL))
		return lim;
	return (uint64_t)((double)lim * BUDGET_WARN + 0.999);
}

uint64_t
budget_wall_due(const struct node *w)
{
	uint64_t target;

	if (!w->spec->pol->budget.enabled ||
	    w->spec->pol->budget.wall_ms == 0 || w->spawned_at == 0)
		return 0;
	target = budget_wall_target(w);
	return w->spawned_at + sub_sat(target, node_account(w)->total.wall_ms);
}

/* A supervisor's wall limit: when, with as many workers running as now,
 * its next warning or its end comes (0: none runs). */
static uint64_t
budget_sup_due(const struct node *s, uint64_t now, uint64_t spent, unsigned k)
{
	uint64_t target = budget_wall_target(s);

	if (k == 0)
		return 0;
	return now + (sub_sat(target, spent) + k - 1) / k;
}

/* Ask for a supervisor's wall wake-up (never in the past). */
static void
budget_sup_rearm(struct tree *t, struct node *s)
{
	unsigned k;
	uint64_t spent = node_account(s)->total.wall_ms +
	                 budget_running(s, t->now, &k),
	         due = budget_sup_due(s, t->now, spent, k);

	if (due != 0 && budget_live(s))
		progress_wake_by(t, s, due > t->now ? due : t->now);
}

/* The ancestors whose wall limit a start or an exit moves. */
static void
budget_ancestors_rearm(struct tree *t, struct node *w)
{
	for (struct node *s = w->parent; s != NULL; s = s->parent)
		if (s->spec->pol->budget.enabled &&
		    s->spec->pol->budget.wall_ms)
			budget_sup_rearm(t, s);
}

void
budget_sup_woken(struct tree *t, struct node *s)
{
	struct spend sp;

	if (!s->spec->pol->budget.enabled || !budget_live(s))
		return;
	budget_spend(s, t->now, &sp);
	if (budget_judge(t, s, &sp)) {
		budget_exhaust(t, s);
		return;
	}
	if (s->spec->pol->budget.wall_ms)
		budget_sup_rearm(t, s);
}

static bool budget_under_spend(const struct budget_spec *,
                               const struct spend *);

void
budget_spawned(struct tree *t, struct node *w)
{
	w->spawned_at = t->now ? t->now : 1;
	w->ending = false;
	if (w->pwatch != NULL) {
		struct pwatch *pw = w->pwatch;

		pw->inc = (struct spend){0};
		pw->stalled_at = 0;
		pw->nring = 0;
		pw->run[0] = pw->run[1] = pw->run[2] = 0;
		pw->steps = 0;
		pw->loop_period = pw->loop_steps = 0;
	}
	budget_ancestors_rearm(t, w);
	for (struct node *s = w->parent; s != NULL; s = s->parent)
		budget_judge_soon(t, s);
}

void
budget_judge_soon(struct tree *t, struct node *n)
{
	/* a supervisor's total without its running wall time: no walk of
	 * its subtree at every spawn (its wall limit has its own wake) */
	struct spend s = node_is_worker(n) ? budget_worker_now(n, t->now)
	                                   : node_account(n)->total;

	if (n->spec->pol->budget.enabled &&
	    !budget_under_spend(&n->spec->pol->budget, &s))
		progress_wake_by(t, n, t->now + 1);
}

void
budget_ended(struct tree *t, struct node *w)
{
	uint64_t ms;

	if (w->spawned_at == 0)
		return;
	ms = sub_sat(t->now, w->spawned_at);
	w->spawned_at = 0;
	for (struct node *n = w; n != NULL; n = n->parent)
		account_own(n)->total.wall_ms += ms;
	w->acct->spend = w->acct->total;
	if (w->pwatch != NULL)
		w->pwatch->inc = (struct spend){0};
	budget_ancestors_rearm(t, w);
}

/* A supervisor's total, summed again from its subtree. */
static void
budget_sum(struct node *n)
{
	struct spend sum = {0};

	if (node_is_worker(n)) {
		if (n->acct != NULL)
			n->acct->total = n->acct->spend;
		return;
	}
	for (size_t i = 0; i < n->nchildren; i++) {
		budget_sum(n->children[i]);
		spend_add(&sum, &node_account(n->children[i])->total);
	}
	if (n->acct != NULL || !spend_none(&sum))
		account_own(n)->total = sum;
}

void
budget_recount(struct tree *t)
{
	budget_sum(t->root);
}

void
budget_sup_exhausted(struct tree *t, struct node *s)
{
	s->last = (struct reason){.kind = REASON_BUDGET};
	if (s->parent != NULL) {
		strategy_exhausted(t, s);
		return;
	}
	tree_set_state(t, s, NODE_EXHAUSTED);
	tree_event(t, EE_EXHAUSTED, s, s->last);
	tree_exit(t, 79);
}

void
budget_reset(struct tree *t, struct node *n)
{
	struct spend old = node_account(n)->total;

	for (struct node *a = n->parent; a != NULL; a = a->parent)
		if (a->acct != NULL)
			spend_sub(&a->acct->total, &old);
	for (struct node *d = n; d != NULL; d = tree_walk_next(n, d)) {
		free(d->acct); /* nothing spent, nothing warned */
		d->acct = NULL;
		if (d->spawned_at != 0)
			d->spawned_at = t->now; /* its wall counts anew */
		if (node_is_worker(d) || d->state != NODE_EXHAUSTED)
			continue;
		tree_set_state(t, d, NODE_STOPPED);
		d->last = (struct reason){0};
		if (d != n && d->parent->state == NODE_RUNNING &&
		    d->parent->super->job.kind == JOB_NONE && !d->held)
			node_start(t, d);
	}
}

/* Whether every limit of b is above spend s. */
static bool
budget_under_spend(const struct budget_spec *b, const struct spend *s)
{
	for (unsigned l = 0; l < BUDGET__LIMITS; l++) {
		double lim = budget_limit_of(b, l);
		if (lim > 0 && budget_spend_of(s, l) >= lim)
			return false;
	}
	return true;
}

/* Whether every limit is above what the node has spent. */
static bool
budget_under(const struct node *n, uint64_t now)
{
	const struct budget_spec *b = &n->spec->pol->budget;
	struct spend s;

	if (!b->enabled)
		return true;
	budget_spend(n, now, &s);
	return budget_under_spend(b, &s);
}

bool
budget_reloaded(struct tree *t, struct node *n)
{
	const struct budget_spec *b = &n->spec->pol->budget;
	struct spend s;

	bool over = false;

	/* a raised limit may warn again when it is reached */
	budget_spend(n, t->now, &s);
	for (unsigned l = 0; l < BUDGET__LIMITS; l++) {
		double lim = budget_limit_of(b, l);
		if (budget_spend_of(&s, l) < lim * BUDGET_WARN)
			if (n->acct != NULL)
				n->acct->warned &= ~(1u << l);
		over |= lim > 0 && budget_spend_of(&s, l) >= lim;
	}
	if (node_is_worker(n))
		progress_reloaded(t, n); /* new windows, limits, recycling */
	else if (b->enabled && b->wall_ms)
		budget_sup_rearm(t, n);
	/* a limit lowered to what is spent: judged at the next tick, as a
	 * report would have (not in the middle of the reload's walk) */
	if (over && b->enabled && budget_live(n))
		progress_wake_by(t, n, t->now + 1);
	if (n->state != NODE_EXHAUSTED || !budget_under(n, t->now))
		return false;
	tree_set_state(t, n, NODE_STOPPED);
	return true;
}
