/*
 * daemon_notify.c - sd_notify both ways, the daemon's side: the systemd
 * above told READY=1 once the tree has started and STATUS= as its numbers
 * change; the socket `notify: systemd` workers are given (notify.c speaks
 * the protocol).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "notify.h"
#include "session.h"

/* sd_notify both ways. systemd's variables are for us alone: removed from
 * the environment, so a worker never speaks to systemd as our child (a
 * `notify: systemd` worker gets a NOTIFY_SOCKET of ours instead). */
void
daemon_notify_init(struct daemon *d)
{
	const char *why;

	d->up = notify_up_open(d->loop, getenv("NOTIFY_SOCKET"),
	                       getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"),
	                       &why);
	if (d->up == NULL && why != NULL)
		log_warnx("NOTIFY_SOCKET: %s: not notifying systemd", why);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	d->notify = notify_server_open(d->loop, session_notified, d, &why);
	if (d->notify == NULL)
		log_warnx("sd_notify socket for workers: %s: `notify: systemd` "
		          "workers get none",
		          why);
}

/* Workers down and waiting to be restarted (backoff, quarantined), and
 * down for good (failed, exhausted): what STATUS= adds to the count. */
static void
daemon_notify_count(const struct node *n, size_t *waiting, size_t *given_up)
{
	if (n->spec->kind == KIND_WORKER) {
		if (n->state == NODE_BACKOFF || n->state == NODE_QUARANTINED)
			(*waiting)++;
		else if (n->state == NODE_FAILED || n->state == NODE_EXHAUSTED)
			(*given_up)++;
		return;
	}
	for (size_t i = 0; i < n->nchildren; i++)
		daemon_notify_count(n->children[i], waiting, given_up);
}

/* Tell the systemd above: READY=1 once the first start (or a reload) has
 * settled (the root running: a worker whose start failed waits in its
 * backoff, and holds up no one), then STATUS= whenever the number of
 * workers changed, or of those that are down (counted again after a
 * worker's state changed only: a worker waiting in its backoff and stopped
 * by an operator changes no number of workers running). */
void
daemon_notify_up(struct daemon *d)
{
	size_t waiting = 0, given_up = 0, live = d->tree->live;
	char down[96] = "";

	if (d->up == NULL || d->tree->shutting_down ||
	    d->drain_started_ms != 0 || d->tree->root->state != NODE_RUNNING)
		return;
	if (d->up_ready && d->up_live == live &&
	    d->up_changes == d->tree->changes)
		return;
	d->up_changes = d->tree->changes;
	daemon_notify_count(d->tree->root, &waiting, &given_up);
	if (d->up_ready && d->up_live == live && d->up_waiting == waiting &&
	    d->up_given_up == given_up)
		return;
	if (waiting > 0)
		snprintf(down, sizeof down, "; %zu waiting to restart",
		         waiting);
	if (given_up > 0)
		snprintf(down + strlen(down), sizeof down - strlen(down),
		         "; %zu given up", given_up);
	notify_up_send(d->up, "%sSTATUS=supervising %zu worker%s%s",
	               d->up_ready ? "" : "READY=1\n", live,
	               live == 1 ? "" : "s", down);
	d->up_ready = true;
	d->up_live = live;
	d->up_waiting = waiting;
	d->up_given_up = given_up;
}
