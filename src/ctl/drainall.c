/*
 * drainall.c - `agentsupctl drain --wait` of the whole tree. After such a
 * drain agentsupd exits, so the wait is for that exit: a follow of the
 * events, opened before the drain is asked, ends with agentsupd's exit
 * status, and agentsupd waits (a second at most) for its followers to hang
 * up before it exits. In a pod whose PID 1 is agentsupd, the preStop hook
 * that runs this returns before that PID 1 ends, and is not killed with
 * the rest of the pod (a poll of status was: exit 137 each time).
 */
#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "drainall.h"
#include "render.h"
#include "reply.h"

#define DRAINALL_EXIT_INTR 130 /* ^C, as a shell says it */

/* The follower's connection, with its history read: 0, or the exit
 * status, said. */
static int
drainall_follow(struct ctl *f, const struct ctl *c, const char *sock)
{
	struct reply_answer a = {.quiet = false};
	int rc;

	f->fd = -1;
	f->json = c->json;
	f->waitmask = c->waitmask;
	f->reply_ms = CTL_REPLY_MS;
	agentsup_reader_init(&f->reader);
	if (!msgpack_zone_init(&f->zone, 4096)) {
		fprintf(stderr, "agentsupctl: out of memory\n");
		return CTL_EXIT_UNAVAILABLE;
	}
	if (conn_open(f, sock) < 0)
		return CTL_EXIT_UNAVAILABLE;
	if ((rc = reply_ask(f, "events", NULL, 1, &a)) == 0)
		reply_answer_free(&a);
	return rc;
}

/* {ok, result, outcome, status?}, as --wait of a node says its end. */
static void
drainall_json(int rc, const char *result, const char *outcome, int status)
{
	printf("{\"ok\":%s,\"result\":", rc == 0 ? "true" : "false");
	render_json_str(stdout, result, strlen(result));
	printf(",\"outcome\":\"%s\"", outcome);
	if (status >= 0)
		printf(",\"status\":%d", status);
	puts("}");
}

/* Until the follow ends: agentsupd's exit status, or -1 with rc set. */
static int
drainall_await_exit(struct ctl *f, uint64_t deadline, int *rc)
{
	struct agentsup_frame fr;
	const msgpack_object *cause, *status;
	uint64_t now;

	f->late = "agentsupd has not exited";
	for (;;) {
		now = conn_now_ms();
		if (now >= deadline ||
		    conn_next_frame(f, &fr, (int)(deadline - now)) < 0)
			break;
		if (!agentsup_wire_is(&fr, "end"))
			continue; /* an event */
		cause = agentsup_wire_get(&fr.map, "cause");
		status = agentsup_wire_get(&fr.map, "status");
		if (reply_str_is(cause, "exit") && status != NULL &&
		    status->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			return (int)status->via.u64;
		*rc = reply_follow_end(&fr); /* an older agentsupd: no status */
		return -1;
	}
	*rc = f->interrupted ? DRAINALL_EXIT_INTR
	      : f->lost      ? CTL_EXIT_UNAVAILABLE
	                     : CTL_EXIT_TIMEOUT;
	if (f->interrupted)
		fprintf(stderr, "agentsupctl: drain: interrupted waiting for "
		                "agentsupd to exit\n");
	else if (f->lost)
		fprintf(stderr, "agentsupctl: drain: agentsupd went without "
		                "saying how it ended\n");
	else if (now >= deadline)
		fprintf(stderr, "agentsupctl: drain: agentsupd has not exited "
		                "within the --timeout\n");
	return -1;
}

/* The follower's socket is never closed here: agentsupd exits once it is,
 * and as PID 1 its exit kills us; closed by our own exit, it is closed
 * after our exit status is set. */
int
drainall_run(struct ctl *c, const char *sock)
{
	struct ctl f = {.fd = -1};
	struct reply_answer a = {.quiet = false};
	uint64_t deadline = conn_now_ms() + (uint64_t)c->wait_ms;
	char result[512] = "";
	int rc, status;

	if ((rc = drainall_follow(&f, c, sock)) != 0) {
		conn_free(&f);
		return rc;
	}
	if ((rc = reply_ask(c, "drain", NULL, -1, &a)) != 0) {
		conn_free(&f);
		return rc;
	}
	if (a.body->type == MSGPACK_OBJECT_STR)
		snprintf(result, sizeof result, "%.*s",
		         (int)a.body->via.str.size, a.body->via.str.ptr);
	reply_answer_free(&a);
	if (!c->json)
		puts(result);
	fflush(stdout);
	status = drainall_await_exit(&f, deadline, &rc);
	conn_free(&f);
	if (status > 0) {
		fprintf(stderr, "agentsupctl: drain: agentsupd exited %d\n",
		        status);
		rc = CTL_EXIT_REFUSED;
	} else if (status == 0) {
		rc = 0;
	}
	if (c->json)
		drainall_json(rc, result,
		              status >= 0                ? "exited"
		              : rc == CTL_EXIT_TIMEOUT   ? "timeout"
		              : rc == DRAINALL_EXIT_INTR ? "interrupted"
		                                         : "lost",
		              status);
	return rc;
}
