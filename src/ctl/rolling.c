/*
 * rolling.c - `agentsupctl restart NAME --rolling`: the children of a
 * supervisor NAME, or the copies of a worker of `instances:` NAME, are
 * restarted one at a time, each a new process and up (as restart --wait
 * says) before the next is touched, as PM2's reload and a Kubernetes
 * rollout do: a fleet is never short of more than one copy. The rollout
 * stops at the first that does not come up; the rest keep their old
 * processes, and the exit status says so.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "opwait.h"
#include "render.h"
#include "reply.h"
#include "rolling.h"

/* What the rollout restarts, in start order. */
struct rolling {
	char **names;
	size_t n, done;
	size_t skipped; /* not up before it, or gone during it: left alone */
};

/* The next target has gone: out of the list, counted as left alone. */
static void
rolling_drop(struct rolling *r)
{
	free(r->names[r->done]);
	memmove(&r->names[r->done], &r->names[r->done + 1],
	        (r->n - r->done - 1) * sizeof *r->names);
	r->n--;
	r->skipped++;
}

static void
rolling_free(struct rolling *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->names[i]);
	free(r->names);
}

static int
rolling_add(struct rolling *r, const msgpack_object *node)
{
	char path[1024], **grown;

	grown = realloc(r->names, (r->n + 1) * sizeof *r->names);
	if (grown == NULL)
		return -1;
	r->names = grown;
	render_get_s(node, "path", path, sizeof path);
	if ((r->names[r->n] = strdup(path)) == NULL)
		return -1;
	r->n++;
	return 0;
}

/* Whether a child is up, so that restarting it keeps the fleet's size
 * (one stopped, held, or waiting out a backoff is left as it is). */
static bool
rolling_up(const msgpack_object *node)
{
	char state[32];

	render_get_s(node, "state", state, sizeof state);
	return strcmp(state, "running") == 0 || strcmp(state, "starting") == 0;
}

/* Whether node is NAME (by name or path). */
static bool
rolling_is(const msgpack_object *node, const char *name)
{
	char buf[1024];

	return strcmp(render_get_s(node, "name", buf, sizeof buf), name) == 0 ||
	       strcmp(render_get_s(node, "path", buf, sizeof buf), name) == 0;
}

/* Whether node is a copy of NAME: a name (its instance_of), or a path (its
 * supervisor's path, then its instance_of). */
static bool
rolling_copy_of(const msgpack_object *node, const char *name)
{
	char of[256], path[1024];
	const char *slash;
	size_t dir;

	if (render_get_s(node, "instance_of", of, sizeof of)[0] == '\0')
		return false; /* nil: not a copy */
	if (strcmp(of, name) == 0)
		return true;
	render_get_s(node, "path", path, sizeof path);
	slash = strrchr(path, '/');
	dir = slash != NULL ? (size_t)(slash - path) + 1 : 0;
	return dir > 0 && strncmp(name, path, dir) == 0 &&
	       strcmp(name + dir, of) == 0;
}

/* A target, unless it is a pool's task (tasks come and go: not restarted)
 * or not up (left as it is, counted). */
static int
rolling_take(struct rolling *r, const msgpack_object *node)
{
	char key[8];

	if (render_get_s(node, "key", key, sizeof key)[0] != '\0')
		return 0;
	if (!rolling_up(node)) {
		r->skipped++;
		return 0;
	}
	return rolling_add(r, node);
}

/* From the whole tree's status (depth-first, each node's depth): the
 * children of the supervisor NAME, or the copies of NAME. 0; 1 when NAME
 * is a worker, 3 when it names a supervisor and copies both; 2 when there
 * is no NAME; -1 out of memory. */
static int
rolling_pick(struct rolling *r, const msgpack_object *list, const char *name)
{
	const msgpack_object *nodes = list->via.array.ptr;
	uint32_t n = list->via.array.size, i, at = n, copies = 0;
	uint64_t depth, d;
	char kind[32];

	for (i = 0; i < n; i++) {
		if (at == n && rolling_is(&nodes[i], name))
			at = i;
		copies += rolling_copy_of(&nodes[i], name);
	}
	if (at < n && copies > 0)
		return 3;
	if (at < n) {
		render_get_s(&nodes[at], "kind", kind, sizeof kind);
		if (strcmp(kind, "supervisor") != 0)
			return 1;
		render_get_u(&nodes[at], "depth", &depth);
		for (i = at + 1;
		     i < n && render_get_u(&nodes[i], "depth", &d) && d > depth;
		     i++)
			if (d == depth + 1 && rolling_take(r, &nodes[i]) < 0)
				return -1;
		return 0;
	}
	for (i = 0; i < n; i++)
		if (rolling_copy_of(&nodes[i], name) &&
		    rolling_take(r, &nodes[i]) < 0)
			return -1;
	return copies > 0 ? 0 : 2;
}

/* A refusal of ours, said as agentsupd's are (--json: on stdout too). */
static int
rolling_refuse(const struct ctl *c, const char *msg, const char *name)
{
	char text[1024];

	snprintf(text, sizeof text, msg, name);
	fprintf(stderr, "agentsupctl: restart --rolling: %s\n", text);
	if (c->json) {
		fputs("{\"ok\":false,\"error\":", stdout);
		render_json_str(stdout, text, strlen(text));
		puts("}");
	}
	return CTL_EXIT_REFUSED;
}

/* NAME's children, or its copies: 0, or the exit status, said. */
static int
rolling_targets(struct ctl *c, const char *name, struct rolling *r)
{
	struct reply_answer a = {.quiet = false};
	int rc = reply_ask(c, "status", NULL, -1, &a);

	if (rc == 0)
		rc = rolling_pick(r, a.body, name);
	reply_answer_free(&a);
	if (rc == 1)
		return rolling_refuse(c,
		                      "%s is a worker: name a supervisor, or a "
		                      "worker of `instances:` by its own name",
		                      name);
	if (rc == 3)
		return rolling_refuse(
		        c,
		        "%s names both a supervisor and the copies of a "
		        "worker of `instances:` (their paths too): rename "
		        "one of them to roll it",
		        name);
	if (rc == 2) { /* no NAME: agentsupd's own words (a typo...) */
		a = (struct reply_answer){.quiet = false};
		if ((rc = reply_ask(c, "status", name, -1, &a)) == 0)
			rc = rolling_refuse(c,
			                    "%s came while it was looked for: "
			                    "ask again",
			                    name);
		reply_answer_free(&a);
	}
	if (rc < 0) {
		perror("agentsupctl");
		rc = CTL_EXIT_UNAVAILABLE;
	}
	return rc;
}

/* Whether a target has gone since it was listed (a reload removed it,
 * even if it is still stopping): no failure of the rollout, one fewer to
 * restart. Asked with the whole answer time (reply_ms), not what a wait
 * before it left. */
static bool
rolling_gone(struct ctl *c, const char *path, int reply_ms)
{
	struct reply_answer a = {.quiet = true};
	int rc;

	c->reply_ms = reply_ms;
	rc = reply_ask(c, "status", path, -1, &a);
	bool gone = rc == CTL_EXIT_REFUSED ||
	            (rc == 0 && a.body->type == MSGPACK_OBJECT_ARRAY &&
	             a.body->via.array.size > 0 &&
	             render_get_flag(&a.body->via.array.ptr[0], "removed"));

	reply_answer_free(&a);
	return gone;
}

/* One target's restart --wait, within the rollout's deadline (or, without
 * --timeout, the default wait of one restart). */
static int
rolling_one(struct ctl *c, const char *name, uint64_t deadline)
{
	struct opwait w = {.cmd = "restart", .name = name};
	uint64_t now = conn_now_ms();
	struct reply_answer a;
	int rc;

	if (deadline == 0)
		deadline = now + OPWAIT_DEFAULT_MS;
	w.timeout_ms = deadline > now ? (int)(deadline - now) : 1;
	w.deadline = deadline > now ? deadline : now + 1;
	if ((rc = opwait_ask(c, &w, &a)) == 0) {
		reply_answer_free(&a);
		rc = opwait_run(c, &w);
	}
	opwait_free(&w);
	return rc;
}

static void
rolling_json(const struct rolling *r, int rc)
{
	printf("{\"ok\":%s,\"restarted\":[", rc == 0 ? "true" : "false");
	for (size_t i = 0; i < r->done; i++) {
		if (i > 0)
			putchar(',');
		render_json_str(stdout, r->names[i], strlen(r->names[i]));
	}
	fputs("],\"stopped_at\":", stdout);
	if (rc != 0 && r->done < r->n)
		render_json_str(stdout, r->names[r->done],
		                strlen(r->names[r->done]));
	else
		fputs("null", stdout);
	printf(",\"left\":%zu,\"skipped\":%zu}\n", r->n - r->done, r->skipped);
}

int
rolling_run(struct ctl *c, const char *name)
{
	struct rolling r = {0};
	uint64_t deadline =
	        c->timeout_given ? conn_now_ms() + (uint64_t)c->wait_ms : 0;
	bool json = c->json;
	int reply_ms = c->reply_ms; /* each --wait takes it down to its end */
	int rc = name[0] == '\0' ? rolling_refuse(c, "%s", "NAME is empty")
	                         : rolling_targets(c, name, &r);
	bool listed = rc == 0;

	c->json = false; /* one object for the whole rollout, at its end */
	while (rc == 0 && r.done < r.n) {
		if (rolling_gone(c, r.names[r.done], reply_ms)) {
			rolling_drop(&r);
			continue;
		}
		if (!json)
			printf("restarting %s (%zu of %zu)\n", r.names[r.done],
			       r.done + 1, r.n);
		fflush(stdout);
		if ((rc = rolling_one(c, r.names[r.done], deadline)) == 0) {
			r.done++;
		} else if (!c->interrupted && !c->lost &&
		           rolling_gone(c, r.names[r.done], reply_ms)) {
			fprintf(stderr,
			        "agentsupctl: restart --rolling %s: %s is gone "
			        "(a reload removed it): left out\n",
			        name, r.names[r.done]);
			rolling_drop(&r);
			rc = 0;
		} else {
			fprintf(stderr,
			        "agentsupctl: restart --rolling %s: stopped at "
			        "%s; %zu of %zu restarted, the rest keep their "
			        "processes\n",
			        name, r.names[r.done], r.done, r.n);
		}
	}
	c->json = json;
	if (rc == 0 && !json)
		printf("%s: %zu restarted one at a time%s\n", name, r.n,
		       r.skipped ? " (those not up left as they are)" : "");
	if (json && listed)
		rolling_json(&r, rc);
	rolling_free(&r);
	return rc;
}
