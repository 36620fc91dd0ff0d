/*
 * fanout_agent.c - dynamic children from C, on libagentsup (DESIGN §12).
 *
 *   fanout_agent spawn SUP KEY...   ask SUP for one child per KEY (argument:
 *                                   the key), print each answer as a line
 *                                   "KEY ok|refused NAME created|existing
 *                                   ERROR COUNT", then stay until drained
 *   fanout_agent result TEXT        send TEXT as the task's result, exit 0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <agentsup/agent.h>

#define FANOUT_WAIT_MS 10000

struct fanout {
	int answers;
};

/* One answer to a spawn, in the order they were sent. */
static void
fanout_spawned(void *arg, const struct agentsup_spawned *s)
{
	struct fanout *f = arg;

	printf("%s %s %s %s %llu\n", s->ok ? "ok" : "refused",
	       s->name && *s->name ? s->name : "-",
	       s->created ? "created" : "existing",
	       s->error && *s->error ? s->error : "-",
	       (unsigned long long)s->count);
	fflush(stdout);
	f->answers++;
}

static int
fanout_spawn(struct agentsup *a, const char *sup, int n, char **keys)
{
	struct fanout f = {0};

	agentsup_on_spawned(a, fanout_spawned, &f);
	for (int i = 0; i < n; i++) {
		const char *argv[] = {"result", keys[i], NULL};
		const char *env[] = {"FANOUT=c", NULL};
		if (agentsup_spawn(a, sup, keys[i], argv, env) < 0) {
			perror("fanout_agent: spawn");
			return 1;
		}
	}
	for (int waited = 0; f.answers < n && waited < FANOUT_WAIT_MS;
	     waited += 100)
		if (agentsup_wait(a, 100) < 0)
			return 1;
	while (!agentsup_draining(a, NULL))
		if (agentsup_wait(a, 1000) < 0)
			break;
	return f.answers == n ? 0 : 1;
}

int
main(int argc, char **argv)
{
	struct agentsup *a = agentsup_open("c");
	int rc = 64;

	if (a == NULL)
		return 70;
	agentsup_await_welcome(a, 5000);
	if (argc >= 3 && strcmp(argv[1], "spawn") == 0) {
		rc = fanout_spawn(a, argv[2], argc - 3, argv + 3);
	} else if (argc == 3 && strcmp(argv[1], "result") == 0) {
		char out[256];
		snprintf(out, sizeof out, "%s from C (%s)", argv[2],
		         getenv("FANOUT") ? getenv("FANOUT") : "?");
		rc = agentsup_result(a, out, strlen(out)) < 0 ||
		     agentsup_flush(a, 5000) < 0;
	} else {
		fprintf(stderr, "usage: fanout_agent spawn SUP KEY... | "
		                "result TEXT\n");
	}
	agentsup_close(a);
	return rc;
}
