/*
 * signals.c - the operator's signals: SIGTERM and SIGINT stop the tree,
 * SIGHUP reloads it, SIGUSR1 drains it.
 *
 * They come through a signalfd of our own, not libev's signal watchers,
 * because a signalfd names the sender: workers do not steer the supervisor
 * by signals either. One sent by a process inside a worker's tree (as a
 * control client is told: peer.c) is ignored unless the worker's
 * `control:` grants what it would do (shutdown, reload, drain). The
 * kernel's own (a terminal's ^C) and a sender outside the tree or already
 * gone act as always. Every child unblocks them before its exec.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "peer.h"
#include "signals.h"

#define SIGNALS_BATCH 8

/* config_stop_signals' numbers, in its order. */
static const int signals_stop_numbers[] = {
        SIGTERM, SIGINT,   SIGQUIT, SIGHUP,  SIGUSR1,
        SIGUSR2, SIGWINCH, SIGPWR,  SIGKILL,
};
_Static_assert(sizeof signals_stop_numbers / sizeof *signals_stop_numbers ==
                       STOP_SIGNALS,
               "one number per name of config_stop_signals");

int
signals_stop(int place)
{
	return place >= 0 && place < STOP_SIGNALS ? signals_stop_numbers[place]
	                                          : SIGTERM;
}

/* Whether si was sent from inside a worker not granted cmd: said, and
 * ignored. */
static bool
signals_refused(struct daemon *d, const struct signalfd_siginfo *si,
                const char *cmd)
{
	char path[PEER_PATH_MAX], name[32];

	if ((si->ssi_code != SI_USER && si->ssi_code != SI_QUEUE &&
	     si->ssi_code != SI_TKILL) ||
	    (pid_t)si->ssi_pid <= 0 ||
	    peer_worker(d, (pid_t)si->ssi_pid, path, sizeof path) !=
	            PEER_WORKER ||
	    peer_granted(d, path, cmd))
		return false;
	snprintf(name, sizeof name, "SIG%s", sigabbrev_np((int)si->ssi_signo));
	log_warnx("signal: ignored %s from pid %lu inside worker %s, which "
	          "may not %s (grant it with `control: [%s]`)",
	          name, (unsigned long)si->ssi_pid, path, cmd, cmd);
	return true;
}

/* One signal: what it asks, unless its sender may not. */
static void
signals_one(struct daemon *d, const struct signalfd_siginfo *si)
{
	int sig = (int)si->ssi_signo;
	const char *cmd = sig == SIGHUP    ? "reload"
	                  : sig == SIGUSR1 ? "drain"
	                                   : "shutdown";
	char why[32];

	if (signals_refused(d, si, cmd))
		return;
	if (sig == SIGHUP) {
		daemon_reload(d, 0, 0);
	} else if (sig == SIGUSR1) {
		daemon_drain(d);
	} else {
		snprintf(why, sizeof why, "SIG%s", sigabbrev_np(sig));
		daemon_shutdown(d, why);
	}
}

static void
signals_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct daemon *d = w->data;
	struct signalfd_siginfo si[SIGNALS_BATCH];
	ssize_t n;

	(void)loop;
	(void)revents;
	while ((n = read(d->sig_fd, si, sizeof si)) > 0 ||
	       (n < 0 && errno == EINTR))
		for (ssize_t i = 0; i < n / (ssize_t)sizeof si[0]; i++)
			signals_one(d, &si[i]);
	if (n < 0 && errno != EAGAIN)
		log_warn("reading signals");
}

int
signals_open(struct daemon *d)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
	    (d->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		return -1;
	ev_io_init(&d->sig_w, signals_cb, d->sig_fd, EV_READ);
	d->sig_w.data = d;
	ev_io_start(d->loop, &d->sig_w);
	return 0;
}

void
signals_close(struct daemon *d)
{
	if (d->sig_fd < 0)
		return;
	ev_io_stop(d->loop, &d->sig_w);
	close(d->sig_fd);
	d->sig_fd = -1;
}
