/*
 * serve_node.c - start, stop, restart, drain and reset of a node by
 * agentsupctl. With a state store, an operator's stop lasts across a
 * restart of agentsupd (a hold, statedir.c), so the answer waits for the
 * hold's commit: an answered stop is never undone by a SIGKILL of
 * agentsupd a moment later, nor an answered start.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "client.h"
#include "clock.h"
#include "command.h"
#include "control.h"
#include "daemon.h"
#include "engine.h"
#include "events.h"
#include "log.h"
#include "request.h"
#include "serve.h"
#include "statedir.h"
#include "tasks.h"
#include "util.h"

/* A command answered once the holds it changed are stored. */
struct serve_node_ack {
	uint64_t serial, id;
	char *path;
	bool held; /* what the command left it: stopped until started */
};

static void
serve_node_acked(struct daemon *d, void *arg, int rc, const char *why)
{
	struct serve_node_ack *a = arg;
	struct client *cl = control_client(d->control, a->serial);

	if (cl != NULL && rc != 0)
		serve_refusef(cl, a->id,
		              "%s is %s, but that could not be stored: %s (it "
		              "is written again every second; were agentsupd "
		              "to restart before that succeeds, it would %s)",
		              a->path, a->held ? "stopped" : "started", why,
		              a->held ? "start it again" : "keep it stopped");
	else if (cl != NULL)
		serve_text(cl, a->id, a->path);
	free(a->path);
	free(a);
}

/* The answer deferred until the operator's holds as they are now are
 * committed; false when they are (or there is no store): answer now. */
static bool
serve_node_held(struct client *cl, struct daemon *d, const struct request *r,
                const struct node *n)
{
	struct serve_node_ack *a = xcalloc(1, sizeof *a);

	a->serial = cl->serial;
	a->id = r->id;
	a->path = xstrdup(n->path);
	a->held = n->held;
	if (statedir_holds_then(d, serve_node_acked, a))
		return true;
	free(a->path);
	free(a);
	return false;
}

/* A refused command, said: a supervisor busy with its children, or a
 * node still stopping, will take it a moment later (again). */
static void
serve_node_refuse(struct client *cl, const struct request *r,
                  const struct node *n, struct refusal rf, const char *why)
{
	char *msg;

	if (asprintf(&msg, "cannot %s %s: %s", request_cmd_name(r->cmd),
	             n->path, why) < 0)
		fatalx("out of memory");
	if (rf.kind == REFUSED_BUSY || rf.kind == REFUSED_STOPPING)
		serve_refuse_again(cl, r->id, msg);
	else
		serve_refuse(cl, r->id, msg);
	free(msg);
}

void
serve_node_command(struct client *cl, struct daemon *d, const struct request *r)
{
	struct node *n = tree_find(d->tree, r->name);
	uint64_t now = clock_now_ms();
	struct refusal rf = {REFUSED_NONE, NULL};
	char why[512];

	if (n == NULL && (r->cmd == REQ_STOP || r->cmd == REQ_DRAIN) &&
	    tasks_stop_waiting(cl, d, r->id, r->name, request_cmd_name(r->cmd)))
		return;
	if (n == NULL) {
		serve_no_such(cl, d, r->id, r->name);
		return;
	}
	if (r->cmd == REQ_START)
		rf = command_start(d->tree, n, now);
	else if (r->cmd == REQ_STOP)
		rf = command_stop(d->tree, n, now);
	else if (r->cmd == REQ_RESTART)
		rf = command_restart(d->tree, n, now);
	else if (r->cmd == REQ_DRAIN)
		rf = command_drain(d->tree, n, now);
	else if (r->cmd == REQ_RESET)
		rf = command_reset(d->tree, n, now);
	command_refusal_format(rf, why, sizeof why);
	/* before the events of what it did (the pump runs them); a refused
	 * one says so: an audit trail showed resets that never happened */
	events_emit(&d->events, EV_COMMAND, n->path, 0, NULL, 0,
	            "%s by agentsupctl (uid %lu)%s%s", request_cmd_name(r->cmd),
	            (unsigned long)cl->uid,
	            rf.kind != REFUSED_NONE ? ": refused: " : "",
	            rf.kind != REFUSED_NONE ? why : "");
	if (rf.kind != REFUSED_NONE)
		serve_node_refuse(cl, r, n, rf, why);
	else if (((r->cmd != REQ_STOP && r->cmd != REQ_DRAIN) ||
	          !tasks_stop_answer(cl, d, r->id, n)) && /* a task's */
	         !serve_node_held(cl, d, r, n))
		serve_text(cl, r->id, n->path);
	if (rf.kind == REFUSED_NONE) {
		statedir_sweep(d);
		control_reconfigured(d->control); /* its holds counted anew */
	}
	/* a reset starts a worker it names whatever stopped it, as a start */
	if (rf.kind == REFUSED_NONE &&
	    (r->cmd == REQ_START || r->cmd == REQ_RESTART ||
	     r->cmd == REQ_RESET))
		tasks_unstopped(d, n);
}
