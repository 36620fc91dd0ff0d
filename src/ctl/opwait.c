/*
 * opwait.c - `agentsupctl start|stop|restart|drain NAME --wait`: agentsupd
 * answers a command once it has begun (a stop's shutdown can take its
 * worker's whole `shutdown`, and no client is held for that); --wait then
 * follows NAME's status until the command has been carried out, as
 * supervisorctl and systemctl do, so that a script can go on.
 *
 * Done: for stop and drain, NAME down (stopped, or down for good); for
 * start and restart, nothing of NAME's subtree starting or stopping, no
 * worker of it still the process it was before a restart, and NAME
 * running (exit 3, as `status`, when a node below is not in the state it
 * should be; 1 when NAME itself did not come up).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "opwait.h"
#include "render.h"
#include "reply.h"

#define OPWAIT_POLL_FIRST_MS 20
#define OPWAIT_POLL_MAX_MS   250
#define OPWAIT_SETTLE_MS     1000 /* a worker up this long is up */
#define OPWAIT_EXIT_INTR     130  /* ^C, as a shell says it */

static bool
opwait_is(const msgpack_object *n, const char *key, const char *want)
{
	char buf[64];

	return strcmp(render_get_s(n, key, buf, sizeof buf), want) == 0;
}

/* A count or pid of a status node; 0 when absent (nil). */
static uint64_t
opwait_uint(const msgpack_object *n, const char *key)
{
	uint64_t v = 0;

	(void)render_get_u(n, key, &v);
	return v;
}

/* How often n has started, the first start too (an older agentsupd has
 * only its restarts, which a first start leaves at 0). */
static uint64_t
opwait_starts(const msgpack_object *n)
{
	uint64_t v;

	return render_get_u(n, "starts", &v) ? v : opwait_uint(n, "restarts");
}

bool
opwait_command(const char *cmd)
{
	return strcmp(cmd, "start") == 0 || strcmp(cmd, "stop") == 0 ||
	       strcmp(cmd, "restart") == 0 || strcmp(cmd, "drain") == 0;
}

static bool
opwait_stops(const struct opwait *w)
{
	return strcmp(w->cmd, "stop") == 0 || strcmp(w->cmd, "drain") == 0;
}

/* What a look the wait's end cuts short says: the wait timed out, NAME as
 * at the last look, not agentsupd failing to answer "within 0.001 s" (a
 * loaded host). */
static void
opwait_late(struct ctl *c, struct opwait *w)
{
	bool seen = w->state[0] != '\0';

	snprintf(w->late, sizeof w->late,
	         "%s: timed out after %dms waiting for %s (%s%s)", w->cmd,
	         w->timeout_ms, w->name,
	         seen ? "it is " : "agentsupd has answered no look at it",
	         w->state);
	c->late_whole = w->late;
}

/* NAME's subtree as status lists it (NAME first), asked within what is
 * left of the wait; 0, or the exit status, said. *gone (after the
 * command): NAME is no more (a stopped task ended, a node a reload
 * removed has stopped: not said); w->removed: it is still stopping
 * (refused, not said). The caller frees a. */
static int
opwait_status(struct ctl *c, struct opwait *w, bool after,
              struct reply_answer *a, bool *gone)
{
	uint64_t now = conn_now_ms();
	int rc;

	c->reply_ms = w->deadline > now && w->deadline - now < CTL_REPLY_MS
	                      ? (int)(w->deadline - now)
	              : w->deadline > now ? CTL_REPLY_MS
	                                  : 1;
	if (c->reply_ms < CTL_REPLY_MS)
		opwait_late(c, w);
	a->quiet = true;
	rc = reply_ask(c, "status", w->name, -1, a);
	c->late_whole = NULL;
	if (rc == 0 && a->body->type == MSGPACK_OBJECT_ARRAY &&
	    a->body->via.array.size > 0)
		render_get_s(&a->body->via.array.ptr[0], "state", w->state,
		             sizeof w->state);
	/* removed by a reload and still stopping: a stop's wait goes on
	 * until it is gone (its process reaped), as the reload stops it */
	w->removed = rc == CTL_EXIT_REFUSED && opwait_stops(w) &&
	             render_get_flag(&a->f.map, "removed");
	if (w->removed)
		strcpy(w->state, "stopping, removed by a reload");
	*gone = rc == CTL_EXIT_REFUSED && after && opwait_stops(w) &&
	        !w->removed;
	/* --json, after the command: said in the outcome */
	if (rc == CTL_EXIT_REFUSED && !*gone && !w->removed)
		return reply_say_refused("status", &a->f, c->json && !after);
	if (c->interrupted) {
		fprintf(stderr, "agentsupctl: %s: interrupted waiting for %s\n",
		        w->cmd, w->name);
		return OPWAIT_EXIT_INTR;
	}
	if (rc != 0 && c->timed_out)
		return CTL_EXIT_TIMEOUT; /* said: no reply within the rest */
	if (rc == 0 && (a->body->type != MSGPACK_OBJECT_ARRAY ||
	                a->body->via.array.size == 0)) {
		fprintf(stderr, "agentsupctl: status of %s: not a list\n",
		        w->name);
		rc = CTL_EXIT_UNAVAILABLE;
	}
	return rc;
}

static void
opwait_nodes_free(struct opwait *w)
{
	for (size_t i = 0; i < w->nnodes; i++)
		free(w->nodes[i].path);
	free(w->nodes);
	w->nodes = NULL;
	w->nnodes = 0;
}

static int
opwait_node_cmp(const void *a, const void *b)
{
	return strcmp(((const struct opwait_node *)a)->path,
	              ((const struct opwait_node *)b)->path);
}

/* Each worker below NAME as it was before (its starts, failures and
 * process), sorted by path; -1 out of memory. */
static int
opwait_keep_nodes(struct opwait *w, const msgpack_object *v)
{
	char path[1024];

	opwait_nodes_free(w); /* of a try refused */
	if ((w->nodes = calloc(v->via.array.size, sizeof *w->nodes)) == NULL)
		return -1;
	for (uint32_t i = 0; i < v->via.array.size; i++) {
		const msgpack_object *n = &v->via.array.ptr[i];
		struct opwait_node *o = &w->nodes[w->nnodes];
		if (!opwait_is(n, "kind", "worker"))
			continue;
		if ((o->path = strdup(render_get_s(n, "path", path,
		                                   sizeof path))) == NULL)
			return -1;
		o->starts = opwait_starts(n);
		o->failures = opwait_uint(n, "consecutive_failures");
		o->pid = opwait_uint(n, "pid");
		w->nnodes++;
	}
	qsort(w->nodes, w->nnodes, sizeof *w->nodes, opwait_node_cmp);
	return 0;
}

/* n as it was before the command, or NULL (not a worker below NAME then). */
static const struct opwait_node *
opwait_was(const struct opwait *w, const msgpack_object *n)
{
	char path[1024];
	struct opwait_node key = {.path = path};

	render_get_s(n, "path", path, sizeof path);
	return w->nnodes == 0 ? NULL
	                      : bsearch(&key, w->nodes, w->nnodes,
	                                sizeof *w->nodes, opwait_node_cmp);
}

/* Before the command: how often NAME has started, whether it ran, and
 * each worker below it (whose process a restart must replace). */
static int
opwait_before(struct ctl *c, struct opwait *w)
{
	struct reply_answer a;
	const msgpack_object *v;
	bool gone;
	int rc;

	if (w->deadline == 0)
		w->deadline = conn_now_ms() + (uint64_t)w->timeout_ms;
	if ((rc = opwait_status(c, w, false, &a, &gone)) != 0) {
		reply_answer_free(&a);
		return rc;
	}
	v = a.body;
	w->starts = opwait_starts(&v->via.array.ptr[0]);
	w->was_running = opwait_is(&v->via.array.ptr[0], "state", "running");
	w->worker = opwait_is(&v->via.array.ptr[0], "kind", "worker");
	rc = opwait_stops(w) ? 0 : opwait_keep_nodes(w, v);
	reply_answer_free(&a);
	if (rc < 0) {
		perror("agentsupctl");
		return CTL_EXIT_UNAVAILABLE;
	}
	return 0;
}

/* A restart's worker still the process it was before. */
static bool
opwait_old_pid(const struct opwait *w, const msgpack_object *n)
{
	const struct opwait_node *o;
	uint64_t pid = opwait_uint(n, "pid");

	return strcmp(w->cmd, "restart") == 0 && pid != 0 &&
	       (o = opwait_was(w, n)) != NULL && o->pid == pid;
}

/* A worker that failed and started again since the command (one started
 * again by another operator's restart has not failed): below NAME, not
 * up (flapping, or a start that failed), counted as not in the state it
 * should be, and not waited for. */
static bool
opwait_failed_since(const struct opwait *w, const msgpack_object *n)
{
	const struct opwait_node *o = opwait_was(w, n);

	return o != NULL && opwait_starts(n) >= o->starts + 2 &&
	       opwait_uint(n, "consecutive_failures") > o->failures;
}

/* A worker running for less than OPWAIT_SETTLE_MS: not yet up, as a
 * process that exits at once would count (supervisord's startsecs, PM2's
 * min_uptime). */
static bool
opwait_young(const msgpack_object *n)
{
	return opwait_is(n, "kind", "worker") &&
	       opwait_is(n, "state", "running") &&
	       opwait_uint(n, "uptime_ms") < OPWAIT_SETTLE_MS;
}

/* NAME a worker that failed and started again since the command, and is
 * not up for good: its start failed. */
static bool
opwait_failed_start(const struct opwait *w, const msgpack_object *top)
{
	return w->worker && opwait_failed_since(w, top) &&
	       (!opwait_is(top, "state", "running") || opwait_young(top));
}

/* A worker the command started that is not up yet: NAME itself, or one
 * below it started once since (not a task of a pool, whose tasks come and
 * go, nor one that failed since: that is the outcome's). */
static bool
opwait_awaits(const struct opwait *w, const msgpack_object *n, bool top)
{
	const struct opwait_node *o;
	char key[8];

	if (!opwait_young(n))
		return false;
	return top || (render_get_s(n, "key", key, sizeof key)[0] == '\0' &&
	               (o = opwait_was(w, n)) != NULL &&
	               opwait_starts(n) == o->starts + 1);
}

/* Whether the subtree nodes have settled after the command. */
static bool
opwait_settled(const struct opwait *w, const msgpack_object *nodes)
{
	const msgpack_object *top = &nodes->via.array.ptr[0];

	if (opwait_stops(w))
		return !opwait_is(top, "state", "running") &&
		       !opwait_is(top, "state", "starting") &&
		       !opwait_is(top, "state", "stopping") &&
		       !opwait_is(top, "state", "backoff");
	/* a start of what runs: nothing to wait for (as systemctl start of
	 * an active unit) */
	if ((strcmp(w->cmd, "start") == 0 && w->was_running) ||
	    opwait_failed_start(w, top))
		return true;
	for (uint32_t i = 0; i < nodes->via.array.size; i++) {
		const msgpack_object *n = &nodes->via.array.ptr[i];
		if (i > 0 && opwait_failed_since(w, n))
			continue; /* the outcome's, not waited for */
		if (opwait_is(n, "state", "starting") ||
		    opwait_is(n, "state", "stopping") || opwait_old_pid(w, n) ||
		    opwait_awaits(w, n, i == 0))
			return false;
	}
	/* a stopped NAME is still to be started (a start is stored first),
	 * unless it started and ended since (a one-shot), or is held */
	return !opwait_is(top, "state", "stopped") ||
	       opwait_starts(top) > w->starts || render_get_flag(top, "held");
}

/* The exit status of a settled start or restart, said when not 0. */
static int
opwait_outcome(const struct opwait *w, const msgpack_object *nodes)
{
	const msgpack_object *top = &nodes->via.array.ptr[0];
	char state[32], reason[64];
	size_t bad;

	if (opwait_stops(w))
		return 0;
	render_get_s(top, "state", state, sizeof state);
	render_get_s(top, "last_reason", reason, sizeof reason);
	if (strcmp(state, "stopped") == 0 && strcmp(reason, "exit:0") == 0 &&
	    !render_get_flag(top, "held"))
		return 0; /* it ran, and ended as it should */
	if (strcmp(state, "running") != 0 || opwait_failed_start(w, top)) {
		fprintf(stderr, "agentsupctl: %s did not come up: %s%s%s\n",
		        w->name,
		        strcmp(state, "running") == 0 ? "failed, running again"
		                                      : state,
		        reason[0] ? ", last " : "", reason);
		return CTL_EXIT_REFUSED;
	}
	bad = render_count_unhealthy(nodes);
	for (uint32_t i = 1; i < nodes->via.array.size; i++)
		bad += render_get_flag(&nodes->via.array.ptr[i], "healthy") &&
		       opwait_failed_since(w, &nodes->via.array.ptr[i]);
	if (bad == 0)
		return 0;
	fprintf(stderr,
	        "agentsupctl: %s is running; %zu node%s below it %s not in "
	        "the state %s should be\n",
	        w->name, bad, bad == 1 ? "" : "s", bad == 1 ? "is" : "are",
	        bad == 1 ? "it" : "they");
	return CTL_EXIT_UNHEALTHY;
}

/* A pause between looks, never past the wait's end. */
static void
opwait_sleep(const struct opwait *w, unsigned ms)
{
	uint64_t now = conn_now_ms();
	struct timespec ts;

	if (now >= w->deadline)
		return;
	if (w->deadline - now < ms)
		ms = (unsigned)(w->deadline - now);
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000;
	nanosleep(&ts, NULL);
}

/* The command's answer (NAME's path), kept for --json's outcome. */
static int
opwait_keep(struct opwait *w, const msgpack_object *body)
{
	if (body->type != MSGPACK_OBJECT_STR)
		return 0;
	if ((w->result = strndup(body->via.str.ptr, body->via.str.size)) ==
	    NULL) {
		perror("agentsupctl");
		return CTL_EXIT_UNAVAILABLE;
	}
	return 0;
}

/* --json: the wait's outcome as one object on stdout, for a script that
 * reads more than the exit status: {ok, result (the command's answer),
 * outcome, node (NAME's last status, null when there is none)}. */
static void
opwait_json(const struct opwait *w, int rc, bool settled,
            const msgpack_object *nodes)
{
	const char *outcome = rc == 0                    ? "done"
	                      : rc == CTL_EXIT_UNHEALTHY ? "unhealthy"
	                      : rc == CTL_EXIT_TIMEOUT   ? "timeout"
	                      : rc == OPWAIT_EXIT_INTR   ? "interrupted"
	                      : rc == CTL_EXIT_REFUSED && settled ? "not_up"
	                      : rc == CTL_EXIT_REFUSED            ? "refused"
	                                               : "unavailable";

	printf("{\"ok\":%s,\"result\":", rc == 0 ? "true" : "false");
	if (w->result != NULL)
		render_json_str(stdout, w->result, strlen(w->result));
	else
		fputs("null", stdout);
	printf(",\"outcome\":\"%s\",", outcome);
	if (w->error != NULL && rc != 0) { /* why it was not taken */
		fputs("\"error\":", stdout);
		render_json_str(stdout, w->error, strlen(w->error));
		putchar(',');
	}
	fputs("\"node\":", stdout);
	if (nodes != NULL && nodes->type == MSGPACK_OBJECT_ARRAY &&
	    nodes->via.array.size > 0)
		render_json(stdout, &nodes->via.array.ptr[0]);
	else
		fputs("null", stdout);
	puts("}");
}

/* A refusal's text, kept to be said if it lasts to the deadline. */
static int
opwait_keep_error(struct opwait *w, const struct agentsup_frame *f)
{
	const msgpack_object *e = agentsup_wire_get(&f->map, "error");

	free(w->error);
	w->error = e != NULL && e->type == MSGPACK_OBJECT_STR
	                   ? strndup(e->via.str.ptr, e->via.str.size)
	                   : strdup("refused");
	if (w->error == NULL)
		perror("agentsupctl");
	return w->error != NULL ? 0 : -1;
}

/* The command, sent again while agentsupd refuses it for a moment (its
 * supervisor busy with a restart, NAME still stopping: again), as
 * systemctl queues a job behind the one running; each try after a fresh
 * look at NAME. 0 with a, the accepted answer (the caller frees it), or
 * the exit status, said. */
int
opwait_ask(struct ctl *c, struct opwait *w, struct reply_answer *a)
{
	unsigned poll = OPWAIT_POLL_FIRST_MS;
	int rc;

	for (;;) {
		if (w->error != NULL && conn_now_ms() >= w->deadline) {
			fprintf(stderr,
			        "agentsupctl: %s: timed out after %dms: %s was "
			        "not free to take it\n",
			        w->cmd, w->timeout_ms, w->name);
			rc = CTL_EXIT_TIMEOUT;
			break;
		}
		if ((rc = opwait_before(c, w)) == CTL_EXIT_TIMEOUT)
			fprintf(stderr, "agentsupctl: %s %s: not sent\n",
			        w->cmd, w->name); /* a script must know */
		if (rc != 0)
			break;
		a->quiet = true;
		if ((rc = reply_ask(c, w->cmd, w->name, -1, a)) == 0 &&
		    (rc = opwait_keep(w, a->body)) != 0)
			reply_answer_free(a);
		if (rc == 0) {
			free(w->error); /* taken at last */
			w->error = NULL;
			return 0;
		}
		if (rc == CTL_EXIT_REFUSED && opwait_stops(w) &&
		    render_get_flag(&a->f.map, "removed")) {
			w->removed = true; /* by a reload since the look */
			strcpy(w->state, "stopping, removed by a reload");
			reply_answer_free(a);
			return rc;
		}
		if (rc != CTL_EXIT_REFUSED)
			break;
		if (!render_get_flag(&a->f.map, "again")) {
			rc = reply_refused(c, w->cmd, &a->f); /* said, once */
			reply_answer_free(a);
			return rc;
		}
		/* refused for a moment: said (on stderr) once more at the
		 * end, if it lasts until then */
		if (opwait_keep_error(w, &a->f) < 0) {
			reply_answer_free(a);
			return CTL_EXIT_UNAVAILABLE;
		}
		reply_answer_free(a);
		opwait_sleep(w, poll); /* ^C waits blocked for the next look */
		poll = poll * 2 > OPWAIT_POLL_MAX_MS ? OPWAIT_POLL_MAX_MS
		                                     : poll * 2;
	}
	if ((rc == CTL_EXIT_UNAVAILABLE || rc == CTL_EXIT_NO_ANSWER) &&
	    c->timed_out)
		rc = CTL_EXIT_TIMEOUT; /* no answer within the wait */
	if (rc == CTL_EXIT_TIMEOUT && w->error != NULL)
		fprintf(stderr, "agentsupctl: %s\n", w->error);
	if (c->json && (rc == CTL_EXIT_TIMEOUT || rc == OPWAIT_EXIT_INTR))
		opwait_json(w, rc, false, NULL);
	return rc;
}

/* After the command was taken: NAME's status until it settles, or the
 * deadline. */
int
opwait_run(struct ctl *c, struct opwait *w)
{
	unsigned poll = OPWAIT_POLL_FIRST_MS;
	struct reply_answer a;
	bool gone, settled = false;
	int rc;

	for (;;) {
		rc = opwait_status(c, w, true, &a, &gone);
		if (rc != 0 && !w->removed) {
			if (gone)
				rc = 0; /* ended, and its node went with it */
			a.body = NULL;
			break;
		}
		if (rc == 0 && (settled = opwait_settled(w, a.body))) {
			rc = opwait_outcome(w, a.body);
			break;
		}
		if (conn_now_ms() >= w->deadline) {
			fprintf(stderr,
			        "agentsupctl: %s: timed out after %dms waiting "
			        "for %s (it is %s)\n",
			        w->cmd, w->timeout_ms, w->name, w->state);
			rc = CTL_EXIT_TIMEOUT;
			break;
		}
		reply_answer_free(&a);
		opwait_sleep(w, poll);
		poll = poll * 2 > OPWAIT_POLL_MAX_MS ? OPWAIT_POLL_MAX_MS
		                                     : poll * 2;
	}
	if (c->json)
		opwait_json(w, rc, settled, a.body);
	reply_answer_free(&a);
	return rc;
}

void
opwait_free(struct opwait *w)
{
	opwait_nodes_free(w);
	free(w->result);
	free(w->error);
}
