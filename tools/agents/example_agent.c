/*
 * example_agent.c - an agent worker in C on libagentsup.
 *
 * Works in steps, beats with progress after each, drains when asked (the
 * current step is finished, then it exits 0). For the demo it can also
 * misbehave on purpose: crash or hang with a given chance per step.
 *
 *   example_agent [--step-ms N] [--crash P] [--hang P] [--ready-ms N]
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

int
main(int argc, char **argv)
{
	int step_ms = (int)arg_num(argc, argv, "--step-ms", 500);
	double crash = arg_num(argc, argv, "--crash", 0);
	double hang = arg_num(argc, argv, "--hang", 0);
	int ready_ms = (int)arg_num(argc, argv, "--ready-ms", 0);
	struct agentsup_progress p = {.set = AGENTSUP_STEPS | AGENTSUP_TOKENS |
	                                     AGENTSUP_COST | AGENTSUP_STATE};
	struct agentsup *a = agentsup_open("c");

	if (a == NULL) {
		perror("agentsup_open");
		return 1;
	}
	srand((unsigned)(time(NULL) ^ getpid()));
	if (ready_ms > 0)
		agentsup_wait(a, ready_ms); /* "loading the model" */
	agentsup_ready(a);
	while (!agentsup_draining(a, NULL)) {
		agentsup_wait(a, step_ms); /* one unit of work */
		if (chance(crash)) {
			fprintf(stderr,
			        "%s: simulated crash after %llu steps\n",
			        agentsup_name(a), (unsigned long long)p.steps);
			return 1;
		}
		if (chance(hang)) {
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
	}
	fprintf(stderr, "%s: drained after %llu steps\n", agentsup_name(a),
	        (unsigned long long)p.steps);
	agentsup_close(a);
	return 0;
}
