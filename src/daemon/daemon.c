/*
 * daemon.c - the loop: the wake timer and the ONE action pump (the
 * operator's signals are read in signals.c, reloads applied in apply.c).
 *
 * Callbacks anywhere in the shell only report into the engine. The engine's
 * queued actions are carried out here, in an ev_prepare, once per loop turn
 * after every callback of the turn has run (as tmux drains its command queue
 * and Redis runs beforeSleep), and also right after a reap (reap.c), so that
 * a restart does not wait for the rest of its turn. Nodes that reloads
 * removed are freed only in the ev_prepare, after the queue is empty, since
 * actions point at nodes.
 */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "agentsup/wire.h"
#include "clock.h"
#include "command.h"
#include "contain.h"
#include "control.h"
#include "daemon.h"
#include "hooks.h"
#include "log.h"
#include "nofile.h"
#include "logcap.h"
#include "watch.h"
#include "notify.h"
#include "reap.h"
#include "reload.h"
#include "reloader.h"
#include "signals.h"
#include "scrape.h"
#include "serve.h"
#include "session.h"
#include "dynamic.h"
#include "tasks.h"
#include "statedir.h"
#include "termlog.h"
#include "timer.h"
#include "util.h"

#define EXIT_GAVE_UP 75
#define EXIT_BUDGET  79 /* the root's budget is spent (§10) */

size_t
daemon_max_frame(const struct daemon *d)
{
	return d->cfg->settings.max_frame;
}

/* --- carrying out the engine's actions ----------------------------------- */

static void
act_start(struct daemon *d, struct node *n)
{
	char why[512];
	int err;

	if (session_start(d, n, why, sizeof why) == 0) {
		/* an exec failure is reported by the exit that follows */
		if (n->session->exec_error == NULL)
			events_emit(&d->events, EV_STARTED, n->path,
			            n->session->pid, NULL, n->starts - 1, NULL);
		return;
	}
	/* no process at all (EAGAIN, EMFILE...): a failure like any other,
	 * so the strategy and the intensity decide what happens next, once
	 * this turn's I/O had its turn (act_unstarted_cb) */
	err = errno;
	events_emit(&d->events, EV_EXITED, n->path, 0, "spawn", n->starts - 1,
	            "cannot start: %s", why[0] ? why : strerror(err));
	d->unstarted = xreallocarray(d->unstarted, d->nunstarted + 1,
	                             sizeof *d->unstarted);
	d->unstarted[d->nunstarted++] =
	        (struct daemon_unstarted){n, n->starts, err};
	if (!ev_is_active(&d->unstarted_w))
		timer_after_ms(d->loop, &d->unstarted_w, 0);
}

/* The starts that failed last turn, as exits. Their nodes are alive: a
 * node is swept only once down, and without this exit it is not (a stop
 * meanwhile waits for it). */
static void
act_unstarted_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	size_t n = d->nunstarted;

	(void)loop;
	(void)revents;
	d->nunstarted = 0; /* those the exits start again fail anew */
	for (size_t i = 0; i < n; i++) {
		struct daemon_unstarted u = d->unstarted[i];
		if (u.node->session == NULL && u.node->starts == u.starts)
			tree_exited(d->tree, u.node,
			            (struct reason){.kind = REASON_SPAWN,
			                            .code = u.err},
			            clock_now_ms());
	}
}

/* The restart policy's events (§9): backoff, circuit, declared fates. */
static void
act_policy_event(struct daemon *d, const struct action *a, const char *why)
{
	struct node *n = a->node;
	char dur[32];

	switch (a->event) {
	case EE_BACKOFF:
		util_format_duration(a->value, dur, sizeof dur);
		events_emit(&d->events, EV_BACKOFF, n->path, 0, why, n->starts,
		            "restart in %s (failure %u in a row)", dur,
		            n->failures);
		break;
	case EE_QUARANTINED:
		util_format_duration(node_circuit(n)->open_ms, dur, sizeof dur);
		events_emit(&d->events, EV_QUARANTINED, n->path, 0, why,
		            n->starts - 1, "circuit open; probing in %s", dur);
		break;
	case EE_PROBING:
		events_emit(&d->events, EV_PROBING, n->path, 0, why, a->value,
		            "circuit half-open: one probe start");
		break;
	case EE_CIRCUIT_CLOSED:
		events_emit(&d->events, EV_CIRCUIT_CLOSED, n->path, 0, NULL,
		            n->starts - 1, "the probe ran stably");
		break;
	case EE_FAILED:
		events_emit(&d->events, EV_FAILED, n->path, 0, why,
		            n->starts - 1, "declared permanent: not restarted");
		break;
	case EE_EXHAUSTED:
		events_emit(&d->events, EV_EXHAUSTED, n->path, 0, why,
		            n->starts - 1, "budget spent: not restarted");
		break;
	default:
		watch_event(d, a);
		break;
	}
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
		            a->value, NULL);
		break;
	case EE_GAVE_UP:
		util_format_duration(n->spec->pol->period_ms, per, sizeof per);
		if (a->code) /* a significant child failed for good */
			events_emit(&d->events, EV_GAVE_UP, n->path, 0, why,
			            n->starts - 1,
			            "a significant child is down for good; "
			            "stopping its children");
		else
			events_emit(&d->events, EV_GAVE_UP, n->path, 0, why,
			            n->starts - 1,
			            "more than %u restarts in %s; stopping its "
			            "children",
			            n->spec->pol->intensity, per);
		break;
	case EE_ESCALATED:
		events_emit(&d->events, EV_ESCALATED, n->path, 0, "gave_up",
		            n->starts - 1,
		            a->code ? "ended as shutdown: %s leaves it stopped "
		                      "(restart: transient)"
		                    : "failing to %s",
		            n->parent->path);
		break;
	case EE_STOPPED:
		events_emit(&d->events, EV_STOPPED, n->path, 0, NULL,
		            n->starts - 1, NULL);
		break;
	default:
		act_policy_event(d, a, why);
		break;
	}
}

static void
act_exit(struct daemon *d, int code)
{
	d->exit_code = code;
	if (code == EXIT_GAVE_UP)
		log_warnx("the root supervisor gave up: exiting %d", code);
	else if (code == EXIT_BUDGET)
		log_warnx("the root's budget is spent: exiting %d", code);
	else if (d->drain_started_ms != 0 && !d->tree->shutting_down)
		events_emit(&d->events, EV_DRAIN_DONE, d->tree->root->path, 0,
		            NULL, 0, "after %llums",
		            (unsigned long long)(clock_now_ms() -
		                                 d->drain_started_ms));
	/* a reload held while the tree was busy (a root that gave up waited
	 * out its children's stop): refused, not left unanswered by the
	 * exit, when the pump that would answer it runs no more */
	daemon_reload_settled(d);
	ev_break(d->loop, EVBREAK_ALL);
}

static void
daemon_act(struct daemon *d, const struct action *a)
{
	struct session *s = a->node ? a->node->session : NULL;

	switch (a->kind) {
	case ACT_START:
		tasks_started(d, a->node); /* a task's record first */
		act_start(d, a->node);
		break;
	case ACT_STOP:
		if (s != NULL)
			session_stop(s, (enum stop_how)a->code);
		break;
	case ACT_DRAIN:
		if (s != NULL)
			session_drain(s);
		break;
	case ACT_EVENT:
		if (a->node != NULL && a->node->task != NULL)
			tasks_event(d, a); /* the ledger, waiters, events */
		act_event(d, a);
		break;
	case ACT_EXIT:
		act_exit(d, a->code);
		break;
	case ACT_NUDGE:
	case ACT_FAIL:
		watch_act(d, a);
		break;
	}
}

/* Give the system back the heap the loader and the first start freed
 * (the YAML document, each spec's policy before it was shared): freed
 * chunks between live ones stay resident otherwise. Once, when the first
 * start has settled, and when a reload's old config is freed. */
static void
daemon_trim(struct daemon *d, bool again)
{
	if (d->trimmed && !again)
		return;
	if (d->tree->root->state != NODE_RUNNING)
		return;
	d->trimmed = true;
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

/* Configs replaced by reloads stay while a removed node points into them. */
static void
daemon_retire_sweep(struct daemon *d)
{
	if (d->nretired == 0 || !tree_sweep(d->tree))
		return;
	daemon_release_gone(d);
	for (size_t i = 0; i < d->nretired; i++)
		config_free(d->retired[i]);
	d->nretired = 0;
	daemon_trim(d, true);
}

/* One timer for whatever the engine waits for (backoff, probes...): armed
 * for the earliest, and only when there is one (no idle wake-ups). */
static void
daemon_arm_wake(struct daemon *d)
{
	uint64_t next = tree_next_wake(d->tree), now;

	if (next == d->wake_at)
		return;
	d->wake_at = next;
	if (next == 0) {
		ev_timer_stop(d->loop, &d->wake);
		return;
	}
	now = clock_now_ms();
	timer_after_ms(d->loop, &d->wake, next > now ? next - now : 0);
}

static void
wake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	(void)loop;
	(void)revents;
	d->wake_at = 0;
	tree_tick(d->tree, clock_now_ms());
}

void
daemon_pump_actions(struct daemon *d)
{
	struct action a;

	tasks_resume(d); /* after a restart on a state store: before the
	                    actions, which start them */
	while (tree_next_action(d->tree, &a))
		daemon_act(d, &a);
}

/* The one pump: every action queued during this loop turn, then the
 * removed nodes that no action can point at any more. */
static void
daemon_pump(struct daemon *d)
{
	daemon_reload_settled(d);
	daemon_pump_actions(d);
	dynamic_sweep(d->tree); /* ended tasks' nodes: their record stays */
	if (tree_sweep(d->tree))
		daemon_retire_sweep(d);
	daemon_arm_wake(d);
	daemon_notify_up(d);
	daemon_trim(d, false);
}

static void
pump_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)loop;
	(void)revents;
	daemon_pump(w->data);
}

void
daemon_drain(struct daemon *d)
{
	if (d->drain_started_ms != 0 || d->tree->shutting_down)
		return; /* a second drain changes nothing */
	d->drain_started_ms = clock_now_ms();
	notify_up_send(d->up, "STOPPING=1\nSTATUS=draining %zu workers",
	               d->tree->live);
	events_emit(&d->events, EV_DRAIN_STARTED, d->tree->root->path, 0, NULL,
	            0, "%zu workers", d->tree->live);
	tree_drain(d->tree, d->drain_started_ms);
}

void
daemon_shutdown(struct daemon *d, const char *why)
{
	if (d->tree->shutting_down)
		return;
	notify_up_send(d->up, "STOPPING=1\nSTATUS=stopping (%s)", why);
	events_emit(&d->events, EV_SHUTDOWN, d->tree->root->path, 0, NULL, 0,
	            "%s: stopping the tree", why);
	tree_shutdown(d->tree, clock_now_ms());
}

/* --- life ---------------------------------------------------------------- */

/* Every event also goes to the followers and to the on_event hooks. */
static void
daemon_event_sink(void *arg, const struct event *e, const char *json)
{
	struct daemon *d = arg;

	control_event(d->control, e, json);
	termlog_event(d->termlog, e, json);
	if (d->hooks != NULL)
		hooks_event(d->hooks, events_kind_name(e->kind), json,
		            strlen(json));
}

/* max_memory: a worker over it is stopped, reason `memory`. */
static void
daemon_over_memory(void *arg, pid_t pid, uint64_t rss)
{
	struct daemon *d = arg;
	struct session *s = pidmap_get(&d->pids, pid);

	if (s != NULL)
		session_over_memory(s, rss);
}

/* The workers' PID namespace died, and they with it: an event. */
static void
daemon_contain_lost(void *arg, const char *why)
{
	struct daemon *d = arg;

	events_emit(&d->events, EV_CONTAINMENT_LOST, "", 0, "contain", 0, "%s",
	            why);
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

int
daemon_init(struct daemon *d, const char *sock_opt)
{
	const char *why;

	d->reap_fd = d->reap_epfd = d->sig_fd = -1;
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("PR_SET_CHILD_SUBREAPER (orphans of workers will go "
		         "to init)");
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		fatal("signal SIGPIPE");
	/* signals by signalfd: a worker's SIGCHLD is read with the rest of
	 * the loop's events (no handler, no self-pipe, no second turn), and
	 * a child of ours has no handler to reset (spawn.c) */
	/* not libev's default loop, which reaps every child on each SIGCHLD
	 * with a walk over all of them: reap.c does it by pid */
	if ((d->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_SIGNALFD)) == NULL)
		fatalx("libev: cannot initialise the loop");
	log_attach(d->loop); /* stderr is flushed from the loop */
	if (!msgpack_zone_init(&d->zone, 4096))
		fatalx("out of memory");
	events_init(&d->events, d->cfg->settings.events_file);
	if (d->cfg->settings.state_dir != NULL)
		d->state_dir = xstrdup(d->cfg->settings.state_dir);
	d->contain_mode = d->cfg->settings.contain;
	/* before any child: the probe's is waited for here */
	if ((d->contain = contain_open(d->loop, d->cfg->settings.contain,
	                               daemon_over_memory, daemon_contain_lost,
	                               d, &why)) == NULL) {
		log_warnx("%s", why);
		return -1;
	}
	log_info("containment: %s", why);
	d->termlog = termlog_new();
	d->logcap = logcap_set_new(
	        d->loop, STDERR_FILENO,
	        &(struct logcap_limits){
	                d->cfg->settings.log_dir, d->cfg->settings.log_max,
	                d->cfg->settings.log_keep, d->cfg->settings.log_tail,
	                d->cfg->settings.log_time, d->cfg->settings.log_quiet});
	d->socket_path = socket_path(sock_opt, &d->cfg->settings);
	if ((d->control = control_open(d, d->socket_path, &why)) == NULL) {
		log_warnx("control socket %s: %s", d->socket_path, why);
		return -1;
	}
	/* a hook's agentsupctl finds us (workers get no AGENTSUP_* of ours:
	 * a nested agentsupd would take our socket, spawn.c) */
	if (setenv("AGENTSUP_SOCKET", d->socket_path, 1) < 0)
		log_warn("setenv AGENTSUP_SOCKET");
	d->events.sink = daemon_event_sink;
	d->events.sink_arg = d;
	logcap_set_sink(d->logcap, control_log_line, d->control);
	logcap_set_follow(d->logcap, control_log_followed);
	d->events.tail = session_event_tail;
	d->events.tail_arg = d;
	d->hooks = hooks_new(d->loop, d->cfg->settings.hooks,
	                     d->cfg->settings.nhooks, HOOKS_MAX_RUNNING,
	                     HOOKS_MAX_QUEUED);
	d->tree = tree_new(d->cfg->root);
	d->tasks = tasks_new(d);
	rng_seed(&d->tree->rng, d->seed);
	if (statedir_open(d) < 0)
		return -1;
	ev_init(&d->wake, wake_cb);
	d->wake.data = d;
	ev_init(&d->unstarted_w, act_unstarted_cb);
	d->unstarted_w.data = d;
	if (scrape_configure(d, d->cfg->settings.metrics, NULL) < 0)
		return -1;
	d->reloader =
	        reloader_new(d->loop, d->config_dir, daemon_reload_done, d);
	if (reap_open(d) < 0)
		fatal("signalfd for SIGCHLD");
	ev_prepare_init(&d->pump, pump_cb);
	d->pump.data = d;
	ev_prepare_start(d->loop, &d->pump);
	batch_start(&d->batch, d->loop);
	if (signals_open(d) < 0)
		fatal("signalfd for SIGTERM, SIGINT, SIGHUP and SIGUSR1");
	nofile_raise(); /* four descriptors a worker: see nofile.h */
	if (spawner_init(&d->spawn) < 0)
		fatal("mmap of the spawn stack");
	daemon_notify_init(d);
	return 0;
}

int
daemon_run(struct daemon *d)
{
	log_info("supervising the tree of %s (pid %ld, control %s, jitter "
	         "seed %llu)",
	         d->config_dir, (long)getpid(), d->socket_path,
	         (unsigned long long)d->seed);
	tree_start(d->tree, clock_now_ms());
	ev_run(d->loop, 0);
	/* the hooks of the last events (a root that gave up) still run,
	 * bounded */
	hooks_flush(d->hooks, HOOKS_EXIT_GRACE_MS);
	/* nothing a worker started outlives agentsupd */
	contain_close(d->contain);
	d->contain = NULL;
	if (d->cfg->settings.termination_log != NULL &&
	    termlog_write(d->termlog, d->cfg->settings.termination_log,
	                  d->exit_code) < 0)
		log_warn("termination_log %s",
		         d->cfg->settings.termination_log);
	return d->exit_code;
}

void
daemon_free(struct daemon *d)
{
	d->events.sink = NULL;
	d->events.tail = NULL;
	reloader_free(d->reloader);
	daemon_reload_hold_free(d);
	if (d->logcap != NULL)
		logcap_set_sink(d->logcap, NULL, NULL);
	statedir_close(d);
	spawner_fini(&d->spawn);
	scrape_configure(d, NULL, NULL);
	/* before contain_close, whose PID namespace's end reaps what exited:
	 * a hook's group is killed while its zombie still holds the pid */
	hooks_free(d->hooks);
	d->hooks = NULL;
	contain_close(d->contain);
	reap_orphans_at_exit(); /* nothing we adopted outlives us */
	termlog_free(d->termlog);
	notify_server_close(d->notify);
	notify_up_close(d->up);
	if (d->control != NULL)
		control_close(d->control);
	tasks_free(d->tasks);
	d->tasks = NULL;
	free(d->unstarted);
	free(d->socket_path);
	free(d->state_dir);
	tree_free(d->tree);
	logcap_set_free(d->logcap);
	config_free(d->cfg);
	for (size_t i = 0; i < d->nretired; i++)
		config_free(d->retired[i]);
	free(d->retired);
	for (size_t i = 0; i < d->ngone; i++)
		free(d->gone[i]);
	free(d->gone);
	events_close(&d->events);
	pidmap_free(&d->pids);
	if (d->loop != NULL) {
		batch_stop(&d->batch, d->loop);
		msgpack_zone_destroy(&d->zone);
		reap_close(d);
		signals_close(d);
		log_detach();
		ev_loop_destroy(d->loop);
	}
}
