/*
 * main.c - agentsupd: arguments, start-up, the loop, and the one place where
 * the engine's actions are carried out.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "agentsup/wire.h"
#include "channel.h"
#include "control.h"
#include "daemon.h"
#include "clock.h"
#include "log.h"
#include "logcap.h"
#include "util.h"

#define EXIT_USAGE   64
#define EXIT_GAVE_UP 75
#define EXIT_CONFIG  78

static void
usage(FILE *f)
{
	fprintf(f, "usage: agentsupd [-c DIR] [--socket PATH] [--check]\n"
	           "  -c, --config DIR   the supervisor.d directory "
	           "(default ./supervisor.d)\n"
	           "      --socket PATH  the control socket (also "
	           "AGENTSUP_SOCKET)\n"
	           "      --check        validate DIR, print the tree, exit 0 "
	           "or 78\n"
	           "exit: 0 shutdown or drain done, 64 usage, 75 the root gave "
	           "up, 78 bad config\n");
}

/* --- carrying out the engine's actions ----------------------------------- */

static void
act_start(struct daemon *d, struct node *n)
{
	uint64_t now;

	if (proc_spawn(d, n) == 0) {
		events_emit(&d->events, EV_STARTED, n->path, n->worker->pid,
		            NULL, n->starts - 1, NULL);
		return;
	}
	/* no process at all (EAGAIN, EMFILE...): a failure like any other,
	 * so the strategy and the intensity decide what happens next */
	now = clock_now_ms();
	events_emit(&d->events, EV_EXITED, n->path, 0, "spawn", n->starts - 1,
	            "cannot start: %s", strerror(errno));
	tree_exited(d->tree, n, (struct reason){REASON_SPAWN, errno}, now);
}

static void
act_event(struct daemon *d, const struct action *a)
{
	struct node *n = a->node;
	char why[64], per[32];

	reason_format(a->reason, why, sizeof why);
	switch (a->event) {
	case EE_RESTARTING:
		events_emit(&d->events, EV_RESTARTING, n->path, 0, why,
		            n->starts, NULL);
		break;
	case EE_GAVE_UP:
		util_format_duration(n->spec->period_ms, per, sizeof per);
		events_emit(
		        &d->events, EV_GAVE_UP, n->path, 0, why, n->starts - 1,
		        "more than %u restarts in %s; stopping its children",
		        n->spec->intensity, per);
		break;
	case EE_ESCALATED:
		events_emit(&d->events, EV_ESCALATED, n->path, 0, "gave_up",
		            n->starts - 1, "failing to %s", n->parent->path);
		break;
	case EE_STOPPED:
		events_emit(&d->events, EV_STOPPED, n->path, 0, NULL,
		            n->starts - 1, NULL);
		break;
	}
}

static void
act_exit(struct daemon *d, int code)
{
	d->exit_code = code;
	if (code == EXIT_GAVE_UP)
		log_warnx("the root supervisor gave up: exiting %d", code);
	else if (d->drain_started_ms != 0)
		events_emit(&d->events, EV_DRAIN_DONE, d->tree->root->path, 0,
		            NULL, 0, "after %llums",
		            (unsigned long long)(clock_now_ms() -
		                                 d->drain_started_ms));
	ev_break(d->loop, EVBREAK_ALL);
}

void
daemon_run_actions(struct daemon *d)
{
	struct action a;

	if (d->in_actions)
		return; /* the outer call will get to them */
	d->in_actions = true;
	while (tree_next_action(d->tree, &a)) {
		struct worker *w = a.node ? a.node->worker : NULL;
		switch (a.kind) {
		case ACT_START:
			act_start(d, a.node);
			break;
		case ACT_STOP:
			if (w != NULL)
				proc_stop(w);
			break;
		case ACT_DRAIN:
			if (w != NULL)
				proc_drain(w);
			break;
		case ACT_EVENT:
			act_event(d, &a);
			break;
		case ACT_EXIT:
			act_exit(d, a.code);
			break;
		}
	}
	d->in_actions = false;
}

/* --- reload -------------------------------------------------------------- */

static void
retire_config(struct daemon *d, struct config *old)
{
	d->retired =
	        xreallocarray(d->retired, d->nretired + 1, sizeof *d->retired);
	d->retired[d->nretired++] = old;
	if (!tree_graveyard_sweep(d->tree))
		return;
	for (size_t i = 0; i < d->nretired; i++)
		config_free(d->retired[i]);
	d->nretired = 0;
}

static struct logcap_limits
logcap_limits_of(const struct settings *s)
{
	return (struct logcap_limits){s->log_dir, s->log_max, s->log_keep,
	                              s->log_tail};
}

/* Settings that can change at run time: the events file, the frame limit,
 * output capture's. */
static void
apply_settings(struct daemon *d, const struct settings *old)
{
	const struct settings *s = &d->cfg->settings;
	struct logcap_limits lim = logcap_limits_of(s);

	if ((old->events_file == NULL) != (s->events_file == NULL) ||
	    (s->events_file && strcmp(old->events_file, s->events_file) != 0)) {
		events_set_file(&d->events, s->events_file);
	}
	if ((old->socket == NULL) != (s->socket == NULL) ||
	    (s->socket && strcmp(old->socket, s->socket) != 0))
		log_warnx("the control socket stays at %s until a restart",
		          d->socket_path);
	if (s->max_frame != old->max_frame) {
		d->rbuf_size = 2 * (AGENTSUP_FRAME_HEADER + s->max_frame);
		d->rbuf = xrealloc(d->rbuf, d->rbuf_size);
	}
	logcap_set_limits(d->logcap, &lim);
}

int
daemon_reload(struct daemon *d, char *msg, size_t len)
{
	struct config_errors errs = {0};
	struct reload_report r;
	struct config *cfg, *old;
	const char *why;
	char all[2048] = "";

	if ((cfg = config_load(d->config_dir, &errs)) == NULL) {
		for (size_t i = 0; i < errs.count; i++) {
			size_t at = strlen(all);
			snprintf(all + at, sizeof all - at, "%s%s",
			         i ? "; " : "", errs.msgs[i]);
		}
		snprintf(msg, len, "%zu error%s: %s", errs.count,
		         errs.count == 1 ? "" : "s", all);
		events_emit(&d->events, EV_RELOAD_REFUSED, d->tree->root->path,
		            0, "config", 0, "%s", msg);
		config_errors_clear(&errs);
		return -1;
	}
	if (tree_reload(d->tree, cfg->root, clock_now_ms(), &r, &why) < 0) {
		snprintf(msg, len, "%s", why);
		events_emit(&d->events, EV_RELOAD_REFUSED, d->tree->root->path,
		            0, "busy", 0, "%s", why);
		config_free(cfg);
		return -1;
	}
	old = d->cfg;
	d->cfg = cfg;
	apply_settings(d, &old->settings);
	snprintf(msg, len,
	         "added [%s] removed [%s] restarted [%s] updated [%s]", r.added,
	         r.removed, r.restarted, r.updated);
	events_emit(&d->events, EV_RELOAD_APPLIED, d->tree->root->path, 0, NULL,
	            0, "%s", msg);
	retire_config(d, old);
	return 0;
}

void
daemon_drain(struct daemon *d)
{
	if (d->drain_started_ms != 0 || d->tree->shutting_down)
		return; /* a second drain changes nothing */
	d->drain_started_ms = clock_now_ms();
	events_emit(&d->events, EV_DRAIN_STARTED, d->tree->root->path, 0, NULL,
	            0, "%zu workers", d->tree->live);
	tree_drain(d->tree, d->drain_started_ms);
}

void
daemon_shutdown(struct daemon *d, const char *why)
{
	if (d->tree->shutting_down)
		return;
	events_emit(&d->events, EV_SHUTDOWN, d->tree->root->path, 0, NULL, 0,
	            "%s: stopping the tree", why);
	tree_shutdown(d->tree, clock_now_ms());
}

/* --- signals ------------------------------------------------------------- */

static void
on_stop_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
	struct daemon *d = s->data;
	char why[32];

	(void)loop;
	(void)revents;
	snprintf(why, sizeof why, "SIG%s", sigabbrev_np(s->signum));
	daemon_shutdown(d, why);
	daemon_run_actions(d);
}

static void
on_drain_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
	struct daemon *d = s->data;

	(void)loop;
	(void)revents;
	daemon_drain(d);
	daemon_run_actions(d);
}

static void
on_hup_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
	struct daemon *d = s->data;
	char msg[2048];

	(void)loop;
	(void)revents;
	events_reopen(&d->events);
	logcap_reopen(d->logcap);
	daemon_reload(d, msg, sizeof msg);
	daemon_run_actions(d);
}

static void
signal_watch(struct daemon *d, ev_signal *w, int sig,
             void (*cb)(struct ev_loop *, ev_signal *, int))
{
	ev_signal_init(w, cb, sig);
	w->data = d;
	ev_signal_start(d->loop, w);
}

/* --- start-up ------------------------------------------------------------ */

static struct config *
load_or_report(const char *dir)
{
	struct config_errors errs = {0};
	struct config *cfg = config_load(dir, &errs);

	for (size_t i = 0; i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	if (cfg == NULL)
		fprintf(stderr,
		        "agentsupd: %zu error%s in %s: nothing started\n",
		        errs.count, errs.count == 1 ? "" : "s", dir);
	config_errors_clear(&errs);
	return cfg;
}

/* --socket, then AGENTSUP_SOCKET, then the settings, then the default. */
static char *
socket_path(const char *opt, const struct settings *s)
{
	const char *env = getenv("AGENTSUP_SOCKET");
	char def[256];

	if (opt != NULL)
		return xstrdup(opt);
	if (env != NULL && *env != '\0')
		return xstrdup(env);
	if (s->socket != NULL)
		return xstrdup(s->socket);
	if (agentsup_wire_default_socket(def, sizeof def) < 0)
		fatalx("XDG_RUNTIME_DIR is too long for a socket path");
	return xstrdup(def);
}

static int
daemon_init(struct daemon *d, const char *sock_opt)
{
	struct logcap_limits lim = logcap_limits_of(&d->cfg->settings);
	const char *why;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("PR_SET_CHILD_SUBREAPER (orphans of workers will go "
		         "to init)");
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		fatal("signal SIGPIPE");
	if ((d->loop = ev_default_loop(EVFLAG_AUTO)) == NULL)
		fatalx("libev: cannot initialise the default loop");
	if (!msgpack_zone_init(&d->zone, 4096))
		fatalx("out of memory");
	msgpack_sbuffer_init(&d->sbuf);
	d->rbuf_size = 2 * (AGENTSUP_FRAME_HEADER + d->cfg->settings.max_frame);
	d->rbuf = xmalloc(d->rbuf_size);
	events_init(&d->events, d->cfg->settings.events_file);
	d->logcap = logcap_set_new(d->loop, STDERR_FILENO, &lim);
	d->socket_path = socket_path(sock_opt, &d->cfg->settings);
	if ((d->control = control_open(d, d->socket_path, &why)) == NULL) {
		log_warnx("control socket %s: %s", d->socket_path, why);
		return -1;
	}
	d->events.sink = control_event;
	d->events.sink_arg = d->control;
	logcap_set_sink(d->logcap, control_log_line, d->control);
	d->tree = tree_new(d->cfg->root);
	ev_child_init(&d->child_watcher, proc_child_cb, 0, 0);
	d->child_watcher.data = d;
	ev_child_start(d->loop, &d->child_watcher);
	signal_watch(d, &d->sig_term, SIGTERM, on_stop_signal);
	signal_watch(d, &d->sig_int, SIGINT, on_stop_signal);
	signal_watch(d, &d->sig_usr1, SIGUSR1, on_drain_signal);
	signal_watch(d, &d->sig_hup, SIGHUP, on_hup_signal);
	proc_init(d);
	return 0;
}

static void
daemon_free(struct daemon *d)
{
	d->events.sink = NULL;
	if (d->logcap != NULL)
		logcap_set_sink(d->logcap, NULL, NULL);
	proc_fini(d);
	control_close(d->control);
	free(d->socket_path);
	tree_free(d->tree);
	logcap_set_free(d->logcap);
	config_free(d->cfg);
	for (size_t i = 0; i < d->nretired; i++)
		config_free(d->retired[i]);
	free(d->retired);
	events_close(&d->events);
	pidmap_free(&d->pids);
	msgpack_zone_destroy(&d->zone);
	msgpack_sbuffer_destroy(&d->sbuf);
	free(d->rbuf);
	ev_loop_destroy(d->loop);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"check", no_argument, NULL, 'k'},
	        {"socket", required_argument, NULL, 's'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct daemon d = {0};
	const char *sock = NULL;
	bool check = false;
	int ch;

	d.config_dir = "supervisor.d";
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			d.config_dir = optarg;
			break;
		case 'k':
			check = true;
			break;
		case 's':
			sock = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((d.cfg = load_or_report(d.config_dir)) == NULL)
		return EXIT_CONFIG;
	if (check) {
		config_print(d.cfg, stdout);
		config_free(d.cfg);
		return 0;
	}
	if (daemon_init(&d, sock) < 0) {
		daemon_free(&d);
		return EXIT_CONFIG;
	}
	log_info("supervising the tree of %s (pid %ld, control %s)",
	         d.config_dir, (long)getpid(), d.socket_path);
	tree_start(d.tree, clock_now_ms());
	daemon_run_actions(&d);
	if (!d.tree->exited)
		ev_run(d.loop, 0);
	daemon_free(&d);
	return d.exit_code;
}
