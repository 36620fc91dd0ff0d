/*
 * reap.c - routing each reaped child to whoever owns it, as tini's
 * reap_zombies and s6-svscan's pid index do: O(1) by pid, never a scan.
 */
#include "daemon.h"
#include "hooks.h"
#include "reap.h"
#include "session.h"

void
reap_child_cb(struct ev_loop *loop, ev_child *c, int revents)
{
	struct daemon *d = c->data;
	struct session *s = pidmap_get(&d->pids, c->rpid);

	(void)loop;
	(void)revents;
	if (s != NULL) {
		session_reaped(s, c->rstatus);
		/* its restart now, not after the rest of the loop turn */
		daemon_pump_actions(d);
	} else if (d->hooks != NULL) {
		(void)hooks_reaped(d->hooks, c->rpid, c->rstatus);
	}
	/* else (not a hook's either) an orphan we adopted as subreaper:
	 * reaped, done */
}
