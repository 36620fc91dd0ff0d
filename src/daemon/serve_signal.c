/*
 * serve_signal.c - `agentsupctl signal NAME SIG`: a signal sent to the
 * process of a worker, or of every running worker below a supervisor (an
 * agent told to reload its prompts with SIGHUP, to dump its state with
 * SIGUSR1), as supervisorctl's `signal` and `systemctl kill` do. Through
 * the worker's pidfd where there is one, so a pid reused after its exit is
 * never hit. What the worker does then is its own: a signal that ends it
 * is a failure like any other.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "client.h"
#include "daemon.h"
#include "engine.h"
#include "events.h"
#include "request.h"
#include "serve.h"
#include "session.h"

/* 0, or -1 with errno (ESRCH: it is gone, not yet reaped: not counted). */
static int
serve_signal_one(const struct session *s, int sig)
{
	if (s->pidfd >= 0)
		return (int)syscall(SYS_pidfd_send_signal, s->pidfd, sig, NULL,
		                    0);
	return kill(s->pid, sig);
}

void
serve_signal(struct client *cl, struct daemon *d, const struct request *r)
{
	struct node *top = tree_find(d->tree, r->name);
	const char *sig = sigabbrev_np(r->signo);
	unsigned sent = 0, failed = 0;
	char msg[512];
	pid_t one = 0;
	int err = 0;

	if (top == NULL && (top = serve_removed(d, r->name, true)) == NULL) {
		serve_no_such(cl, d, r->id, r->name);
		return;
	}
	for (struct node *n = top; n != NULL; n = tree_walk_next(top, n)) {
		if (n->spec->kind != KIND_WORKER || n->session == NULL ||
		    n->session->pid <= 0)
			continue;
		if (serve_signal_one(n->session, r->signo) == 0) {
			sent++;
			one = n->session->pid;
		} else if (errno != ESRCH) {
			failed++;
			err = errno;
		}
	}
	events_emit(&d->events, EV_COMMAND, top->path, 0, NULL, 0,
	            "signal SIG%s by agentsupctl (uid %lu): %u worker%s%s", sig,
	            (unsigned long)cl->uid, sent, sent == 1 ? "" : "s",
	            sent == 0 && failed == 0 ? ": refused: none running" : "");
	if (failed > 0)
		serve_refusef(cl, r->id,
		              "%s: SIG%s sent to %u worker%s, not to %u: %s",
		              top->path, sig, sent, sent == 1 ? "" : "s",
		              failed, strerror(err));
	else if (sent == 0)
		serve_refusef(
		        cl, r->id,
		        "%s: no worker of it is running: nothing signalled",
		        top->path);
	else {
		if (top->spec->kind == KIND_WORKER)
			snprintf(msg, sizeof msg, "%s: SIG%s sent (pid %ld)",
			         top->path, sig, (long)one);
		else
			snprintf(msg, sizeof msg,
			         "%s: SIG%s sent to %u worker%s", top->path,
			         sig, sent, sent == 1 ? "" : "s");
		serve_text(cl, r->id, msg);
	}
}
