/*
 * task.c - agentsupctl's task commands (DESIGN §12): spawn's options, wait's
 * timeout, and how a task record is shown and turned into an exit status.
 *
 * wait exits 0 when the task is done, 2 when it is dead (a dead letter), 4
 * when it was cancelled, 124 when --timeout passed first (as timeout(1)).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentsup/wire.h"
#include "config.h"
#include "render.h"
#include "task.h"

static int
task_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "agentsupctl: spawn: %s%s\n", msg, arg ? arg : "");
	fputs("usage: agentsupctl spawn SUP [--key K] [--env K=V]... [--retry] "
	      "[-- ARGS...]\n",
	      stderr);
	return TASK_EXIT_USAGE;
}

int
task_parse_spawn(int argc, char **argv, struct task_spawn *sp, bool *json)
{
	int i = 1;

	memset(sp, 0, sizeof *sp);
	sp->env = calloc((size_t)argc + 1, sizeof(char *));
	if (sp->env == NULL)
		return task_usage("out of memory", NULL);
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "--key") == 0 && i + 1 < argc)
			sp->key = argv[++i];
		else if (strcmp(a, "--env") == 0 && i + 1 < argc) {
			if (strchr(argv[i + 1], '=') == NULL)
				return task_usage("--env wants K=V, not ",
				                  argv[i + 1]);
			sp->env[sp->nenv++] = argv[++i];
		} else if (strcmp(a, "--retry") == 0)
			sp->retry = true;
		else if (strcmp(a, "--json") == 0 || strcmp(a, "-j") == 0)
			*json = true;
		else if (a[0] == '-' && a[1] != '\0')
			return task_usage("unknown option ", a);
		else if (sp->sup == NULL)
			sp->sup = a;
		else
			return task_usage(
			        "extra argument (put ARGS after --): ", a);
	}
	if (sp->sup == NULL)
		return task_usage("missing SUP", NULL);
	sp->args = argv + i;
	sp->nargs = argc - i;
	return 0;
}

void
task_spawn_free(struct task_spawn *sp)
{
	free(sp->env);
}

/* {key?, args, env, retry}: env as "K=V" strings. */
void
task_pack_spawn(msgpack_packer *pk, const struct task_spawn *sp)
{
	msgpack_pack_map(pk, 3 + (sp->key != NULL));
	if (sp->key != NULL)
		agentsup_wire_kv_str(pk, "key", sp->key);
	agentsup_wire_pack_str(pk, "args");
	msgpack_pack_array(pk, (size_t)sp->nargs);
	for (int i = 0; i < sp->nargs; i++)
		agentsup_wire_pack_str(pk, sp->args[i]);
	agentsup_wire_pack_str(pk, "env");
	msgpack_pack_array(pk, (size_t)sp->nenv);
	for (int i = 0; i < sp->nenv; i++)
		agentsup_wire_pack_str(pk, sp->env[i]);
	agentsup_wire_pack_str(pk, "retry");
	sp->retry ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

int
task_parse_timeout(const char *s, int *ms)
{
	uint64_t v;

	if (config_parse_duration(s, &v) < 0 || v > 24ull * 3600 * 1000 * 7) {
		fprintf(stderr,
		        "agentsupctl: bad --timeout \"%s\" (e.g. 30s, "
		        "5m, 2h; at most 168h)\n",
		        s);
		return -1;
	}
	*ms = (int)v;
	return 0;
}

/* "pool/a  dead  3 attempts  exit:1 (declared permanent: bad input)";
 * the state as wide as the widest, "cancelling" */
static void
task_line(const msgpack_object *r)
{
	char name[512], state[32], last[256] = "";
	const msgpack_object *n = agentsup_wire_get(r, "attempts");
	unsigned long long attempts =
	        n != NULL && n->type == MSGPACK_OBJECT_POSITIVE_INTEGER
	                ? (unsigned long long)n->via.u64
	                : 0;
	const msgpack_object *rs = agentsup_wire_get(r, "reasons");

	if (rs != NULL && rs->type == MSGPACK_OBJECT_ARRAY &&
	    rs->via.array.size > 0) {
		const msgpack_object *l =
		        &rs->via.array.ptr[rs->via.array.size - 1];
		render_str(l, last, sizeof last);
	}
	/* "attempt" padded as "attempts" when a reason follows; no
	 * trailing blanks when none does */
	printf("%-32s %-10s %3llu attempt%-*s%s%s\n",
	       render_get_s(r, "name", name, sizeof name),
	       render_get_s(r, "state", state, sizeof state), attempts,
	       *last ? 1 : 0, attempts == 1 ? "" : "s", *last ? "  " : "",
	       last);
}

int
task_wait_status(const msgpack_object *rec)
{
	char state[32];

	render_get_s(rec, "state", state, sizeof state);
	if (strcmp(state, "done") == 0)
		return 0;
	if (strcmp(state, "dead") == 0)
		return TASK_EXIT_DEAD;
	if (strcmp(state, "cancelled") == 0)
		return TASK_EXIT_CANCELLED;
	return TASK_EXIT_TIMEOUT;
}

int
task_show(const char *cmd, const msgpack_object *body, bool json)
{
	const msgpack_object *c;
	char name[512], state[32];

	/* a look (wait --timeout 0) at a live task: as a wait that timed out */
	if (strcmp(cmd, "wait") == 0 &&
	    task_wait_status(body) == TASK_EXIT_TIMEOUT) {
		render_get_s(body, "state", state, sizeof state);
		fprintf(stderr,
		        "agentsupctl: the task has not ended (it is %s)\n",
		        state);
		return TASK_EXIT_TIMEOUT;
	}
	if (strcmp(cmd, "wait") == 0 || json) {
		render_json(stdout, body);
		putchar('\n');
		return strcmp(cmd, "wait") == 0 ? task_wait_status(body) : 0;
	}
	if ((strcmp(cmd, "dead") == 0 || strcmp(cmd, "tasks") == 0) &&
	    body->type == MSGPACK_OBJECT_ARRAY) {
		for (uint32_t i = 0; i < body->via.array.size; i++)
			task_line(&body->via.array.ptr[i]);
		return 0;
	}
	if (body->type != MSGPACK_OBJECT_MAP) {
		if (body->type == MSGPACK_OBJECT_STR)
			printf("%.*s\n", (int)body->via.str.size,
			       body->via.str.ptr);
		return 0;
	}
	c = agentsup_wire_get(body, "created");
	render_get_s(body, "name", name, sizeof name);
	render_get_s(body, "state", state, sizeof state);
	if (c != NULL && c->type == MSGPACK_OBJECT_BOOLEAN && c->via.boolean)
		printf("%s: created\n", name);
	else if (strcmp(state, "cancelling") == 0) /* --retry or not */
		printf("%s: not created: the task is cancelling, its process "
		       "still going down (--retry once it has ended: "
		       "agentsupctl wait %s)\n",
		       name, name);
	else
		printf("%s: not created: the task is %s (--retry to run an "
		       "ended one again)\n",
		       name, state);
	return 0;
}
