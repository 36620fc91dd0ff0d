/*
 * bench_progress.c - the pure engine's cost per heartbeat with progress
 * analysis on every worker (stall + loop + budget, DESIGN §10): N workers
 * under one supervisor with a budget of its own, each beat carrying steps,
 * tokens, cost and a state that changes every step. No processes, no
 * sockets: tree_beat() alone, what agentsupd adds per beat once a frame is
 * decoded. Prints beats/s on one core and the allocations made meanwhile.
 *
 *   bench_progress [WORKERS] [BEATS]     default 1000 20000000
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "progress.h"
#include "tree.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The tree as YAML, parsed by the real parser. */
static struct config *
bench_config(unsigned n)
{
	size_t cap = 256 + (size_t)n * 200, at = 0;
	char *y = malloc(cap);
	struct config_source src;
	struct config_errors errs = {0};
	struct config *cfg;

	at += (size_t)snprintf(y + at, cap - at,
	                       "supervisor: root\nbudget: {tokens: "
	                       "1000000000000000000}\nchildren:\n");
	for (unsigned i = 0; i < n; i++)
		at += (size_t)snprintf(
		        y + at, cap - at,
		        "  - {worker: w%u, command: x, heartbeat: 1s, "
		        "stall_timeout: 1h, loop: {repeats: 5}, budget: "
		        "{tokens: 1000000000000000000, cost: "
		        "1000000000000000}}\n",
		        i);
	src = (struct config_source){"bench.yaml", y, at};
	cfg = config_parse(&src, 1, NULL, &errs);
	for (size_t i = 0; i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	free(y);
	return cfg;
}

int
main(int argc, char **argv)
{
	unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 1000;
	unsigned long beats = argc > 2 ? strtoul(argv[2], NULL, 10) : 20000000;
	struct config *cfg = bench_config(n);
	struct node **w;
	struct progress p = {0};
	struct action a;
	struct tree *t;
	struct mallinfo2 m0, m1;
	double t0, t1;
	uint64_t now = 1000;

	if (cfg == NULL)
		return 1;
	t = tree_new(cfg->root);
	tree_start(t, now);
	while (tree_next_action(t, &a))
		;
	w = calloc(n, sizeof *w);
	for (unsigned i = 0; i < n; i++)
		w[i] = t->root->children[i];
	/* a first beat of each allocates its progress record, once */
	for (unsigned i = 0; i < n; i++)
		tree_beat(t, w[i], &p, PROGRESS_STEPS, now);
	m0 = mallinfo2();
	t0 = now_s();
	for (unsigned long b = 0; b < beats; b++) {
		struct node *x = w[b % n];
		uint64_t s = b / n + 1;
		p.steps = s;
		p.tokens = s * 100;
		p.cost = (double)s * 1e-4;
		memcpy(p.state, "tool-", 5);
		p.state[5] = (char)('a' + s % 26); /* never the same twice */
		p.state[6] = (char)('a' + (s / 26) % 26);
		p.state[7] = '\0';
		tree_beat(t, x, &p,
		          PROGRESS_STEPS | PROGRESS_TOKENS | PROGRESS_COST |
		                  PROGRESS_STATE,
		          now + b / 1000000);
	}
	t1 = now_s();
	m1 = mallinfo2();
	while (tree_next_action(t, &a))
		if (a.kind != ACT_EVENT)
			fprintf(stderr, "unexpected action %d\n", (int)a.kind);
	printf("engine heartbeat ingest, stall + loop + budget on every "
	       "worker: %u workers, %lu beats\n",
	       n, beats);
	printf("%.1f ns per beat, %.2f M beats/s on one core\n",
	       1e9 * (t1 - t0) / (double)beats,
	       (double)beats / (t1 - t0) / 1e6);
	printf("heap in use: %zu -> %zu bytes (%+ld) over the run\n",
	       m0.uordblks, m1.uordblks, (long)m1.uordblks - (long)m0.uordblks);
	free(w);
	tree_free(t);
	config_free(cfg);
	return 0;
}
