/*
 * example_agent.c - an agent worker in C on libagentsup.
 *
 * Works in steps, beats with progress after each, drains when asked (the
 * current step is finished, then it exits 0). After every step it stores a
 * checkpoint (its step and token counts), and on a restart it resumes from
 * the one agentsupd hands back. For the demo it can also misbehave on
 * purpose: crash (declaring it transient) or hang with a given chance per
 * step.
 *
 *   example_agent [--step-ms N] [--crash P] [--hang P] [--hang-at STEP]
 *                 [--ready-ms N]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <agentsup/agent.h>

static double
arg_num(int argc, char **argv, const char *name, double dflt)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return atof(argv[i + 1]);
	return dflt;
}

static int
chance(double p)
{
	return p > 0 && (double)rand() / RAND_MAX < p;
}

/* Resume the counts from the restored checkpoint, "STEPS TOKENS". */
static void
resume(struct agentsup *a, struct agentsup_progress *p)
{
	char text[64];
	size_t len;
	const char *ck = agentsup_restored_checkpoint(a, &len);
	unsigned long long steps, tokens;

	if (ck == NULL || len >= sizeof text)
		return;
	memcpy(text, ck, len);
	text[len] = '\0';
	if (sscanf(text, "%llu %llu", &steps, &tokens) != 2)
		return;
	p->steps = steps;
	p->tokens = tokens;
	fprintf(stderr, "%s: resuming at step %llu (restart %lu, after %s)\n",
	        agentsup_name(a), steps, agentsup_restarts(a),
	        agentsup_last_reason(a));
}

static void
save(struct agentsup *a, const struct agentsup_progress *p)
{
	char text[64];
	int n = snprintf(text, sizeof text, "%llu %llu",
	                 (unsigned long long)p->steps,
	                 (unsigned long long)p->tokens);

	if (agentsup_checkpoint(a, text, (size_t)n) < 0)
		perror("agentsup_checkpoint");
}

int
main(int argc, char **argv)
{
	int step_ms = (int)arg_num(argc, argv, "--step-ms", 500);
	double crash = arg_num(argc, argv, "--crash", 0);
	double hang = arg_num(argc, argv, "--hang", 0);
	/* a sure hang at this step; not again once resumed past it */
	double hang_at = arg_num(argc, argv, "--hang-at", 0);
	int ready_ms = (int)arg_num(argc, argv, "--ready-ms", 0);
	struct agentsup_progress p = {.set = AGENTSUP_STEPS | AGENTSUP_TOKENS |
	                                     AGENTSUP_COST | AGENTSUP_STATE};
	struct agentsup *a = agentsup_open("c");
	uint64_t resumed;

	if (a == NULL) {
		perror("agentsup_open");
		return 1;
	}
	srand((unsigned)(time(NULL) ^ getpid()));
	if (agentsup_await_welcome(a, 2000) == 0)
		resume(a, &p);
	if (ready_ms > 0)
		agentsup_wait(a, ready_ms); /* "loading the model" */
	agentsup_ready(a);
	resumed = p.steps;
	while (!agentsup_draining(a, NULL)) {
		agentsup_wait(a, step_ms); /* one unit of work */
		if (chance(crash)) {
			fprintf(stderr,
			        "%s: simulated crash after %llu steps\n",
			        agentsup_name(a), (unsigned long long)p.steps);
			agentsup_exit_reason(a, AGENTSUP_DECLARED_TRANSIENT, 0,
			                     "simulated crash");
			agentsup_flush(a, 1000);
			agentsup_close(a);
			return 1;
		}
		if (chance(hang) ||
		    (hang_at > 0 && (double)p.steps == hang_at &&
		     p.steps > resumed)) {
			fprintf(stderr, "%s: simulated hang (no more beats)\n",
			        agentsup_name(a));
			for (;;)
				pause();
		}
		p.steps++;
		p.tokens += 100 + (uint64_t)(rand() % 400);
		p.cost = (double)p.tokens * 2e-6;
		p.state = "working";
		if (agentsup_beat(a, &p, "browsing") < 0)
			perror("agentsup_beat");
		save(a, &p);
	}
	fprintf(stderr, "%s: drained after %llu steps\n", agentsup_name(a),
	        (unsigned long long)p.steps);
	agentsup_close(a);
	return 0;
}
