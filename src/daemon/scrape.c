/*
 * scrape.c - what a /metrics scrape shows (DESIGN §13): the tree's nodes,
 * the events by kind, and agentsupd's own memory, descriptors and loop lag.
 * Everything is read at scrape time; nothing here runs between scrapes.
 *
 * The text format wants every sample of a family in one group, so the tree
 * is walked once per family: cheap next to the formatting itself.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "clock.h"
#include "daemon.h"
#include "hooks.h"
#include "intensity.h"
#include "log.h"
#include "metrics.h"
#include "progress.h"
#include "scrape.h"
#include "session.h"
#include "tasks.h"

typedef void (*scrape_node_fn)(struct metrics_out *, const struct node *,
                               uint64_t now_us);

static void
scrape_walk(struct metrics_out *o, const struct node *n, scrape_node_fn fn,
            uint64_t now_us)
{
	fn(o, n, now_us);
	for (size_t i = 0; i < n->nchildren && !o->overflow; i++)
		scrape_walk(o, n->children[i], fn, now_us);
}

static const char *
scrape_kind(const struct node *n)
{
	return n->spec->kind == KIND_SUPERVISOR ? "supervisor" : "worker";
}

/* A state set: every state of every node, 1 for the one it is in, so an
 * alert on a state never sees a stale series. */
static void
scrape_state(struct metrics_out *o, const struct node *n, uint64_t now_us)
{
	(void)now_us;
	for (unsigned st = 0; st < NODE__STATES; st++)
		metrics_sample(
		        o, "agentsup_node_state", (unsigned)n->state == st,
		        "path", n->path, "kind", scrape_kind(n), "state",
		        node_state_name((enum node_state)st), (char *)NULL);
}

static void
scrape_state_seconds(struct metrics_out *o, const struct node *n,
                     uint64_t now_us)
{
	uint64_t since_us = n->since_ms * 1000;

	metrics_sample(o, "agentsup_node_state_seconds",
	               now_us > since_us ? (double)(now_us - since_us) / 1e6
	                                 : 0.,
	               "path", n->path, (char *)NULL);
}

static void
scrape_restarts(struct metrics_out *o, const struct node *n, uint64_t now_us)
{
	(void)now_us;
	metrics_sample(o, "agentsup_restarts_total",
	               n->starts > 0 ? (double)(n->starts - 1) : 0., "path",
	               n->path, (char *)NULL);
}

static void
scrape_heartbeat(struct metrics_out *o, const struct node *n, uint64_t now_us)
{
	const struct session *w = n->session;

	/* what the run is held to: a reload's heartbeat reaches it at its
	 * next start */
	if (w == NULL || n->spec->kind != KIND_WORKER ||
	    w->beat_timeout_ms == 0)
		return;
	metrics_sample(o, "agentsup_heartbeat_age_seconds",
	               now_us > w->last_beat_us
	                       ? (double)(now_us - w->last_beat_us) / 1e6
	                       : 0.,
	               "path", n->path, (char *)NULL);
}

static const struct progress *
scrape_progress_of(const struct node *n)
{
	return n->progress;
}

static void
scrape_steps(struct metrics_out *o, const struct node *n, uint64_t now_us)
{
	const struct progress *p = scrape_progress_of(n);

	(void)now_us;
	if (p != NULL && progress_shown(p, PROGRESS_STEPS))
		metrics_sample(o, "agentsup_progress_steps", (double)p->steps,
		               "path", n->path, (char *)NULL);
}

static void
scrape_tokens(struct metrics_out *o, const struct node *n, uint64_t now_us)
{
	const struct progress *p = scrape_progress_of(n);

	(void)now_us;
	if (p != NULL && progress_shown(p, PROGRESS_TOKENS))
		metrics_sample(o, "agentsup_progress_tokens", (double)p->tokens,
		               "path", n->path, (char *)NULL);
}

static void
scrape_cost(struct metrics_out *o, const struct node *n, uint64_t now_us)
{
	const struct progress *p = scrape_progress_of(n);

	(void)now_us;
	if (p != NULL && progress_shown(p, PROGRESS_COST))
		metrics_sample(o, "agentsup_progress_cost", p->cost, "path",
		               n->path, (char *)NULL);
}

static void
scrape_window(struct metrics_out *o, const struct node *n, uint64_t now_us)
{
	if (n->spec->kind == KIND_SUPERVISOR)
		metrics_sample(o, "agentsup_supervisor_window_restarts",
		               intensity_count(n, now_us / 1000), "path",
		               n->path, (char *)NULL);
}

static void
scrape_intensity(struct metrics_out *o, const struct node *n, uint64_t now_us)
{
	(void)now_us;
	if (n->spec->kind == KIND_SUPERVISOR)
		metrics_sample(o, "agentsup_supervisor_intensity",
		               n->spec->pol->intensity, "path", n->path,
		               (char *)NULL);
}

/* The circuit as a state set, for workers that have one configured. */
static void
scrape_circuit(struct metrics_out *o, const struct node *n, uint64_t now_us)
{
	(void)now_us;
	if (n->spec->kind != KIND_WORKER || !n->spec->pol->circuit.enabled)
		return;
	for (unsigned st = CIRCUIT_CLOSED; st <= CIRCUIT_HALF_OPEN; st++)
		metrics_sample(o, "agentsup_circuit_state",
		               (unsigned)node_circuit(n)->state == st, "path",
		               n->path, "state",
		               circuit_state_name((enum circuit_state)st),
		               (char *)NULL);
}

static void
scrape_failures(struct metrics_out *o, const struct node *n, uint64_t now_us)
{
	(void)now_us;
	if (n->spec->kind == KIND_WORKER)
		metrics_sample(o, "agentsup_consecutive_failures", n->failures,
		               "path", n->path, (char *)NULL);
}

/* A budget's limits and what was spent against them (DESIGN §10), for
 * nodes with a budget: wall time in seconds. */
static void
scrape_budget(struct metrics_out *o, const struct node *n, uint64_t now_us,
              bool limits)
{
	const struct budget_spec *b = &n->spec->pol->budget;
	struct spend sp;

	if (!b->enabled)
		return;
	budget_spend(n, now_us / 1000, &sp);
	for (unsigned l = 0; l < BUDGET__LIMITS; l++) {
		double lim = budget_limit_of(b, l);
		double v = limits ? lim : budget_spend_of(&sp, l);
		if (lim <= 0)
			continue;
		metrics_sample(o,
		               limits ? "agentsup_budget_limit"
		                      : "agentsup_budget_spend",
		               l == BUDGET_WALL ? v / 1000.0 : v, "path",
		               n->path, "limit", budget_limit_name(l),
		               (char *)NULL);
	}
}

static void
scrape_budget_spend(struct metrics_out *o, const struct node *n,
                    uint64_t now_us)
{
	scrape_budget(o, n, now_us, false);
}

static void
scrape_budget_limit(struct metrics_out *o, const struct node *n,
                    uint64_t now_us)
{
	scrape_budget(o, n, now_us, true);
}

/* One family: its header, then every node's samples. */
static void
scrape_family(struct metrics_out *o, const struct tree *t, const char *name,
              const char *type, const char *help, scrape_node_fn fn,
              uint64_t now_us)
{
	metrics_family(o, name, type, help);
	scrape_walk(o, t->root, fn, now_us);
}

static void
scrape_tree(struct metrics_out *o, const struct tree *t, uint64_t now_us)
{
	static const struct {
		const char *name, *type, *help;
		scrape_node_fn fn;
	} fams[] = {
	        {"agentsup_node_state", "gauge",
	         "1 for the state each node is in, 0 for the others.",
	         scrape_state},
	        {"agentsup_node_state_seconds", "gauge",
	         "How long each node has been in its state.",
	         scrape_state_seconds},
	        {"agentsup_restarts_total", "counter",
	         "Restarts of each node (its incarnation number).",
	         scrape_restarts},
	        {"agentsup_heartbeat_age_seconds", "gauge",
	         "Since the last heartbeat of each monitored, live worker.",
	         scrape_heartbeat},
	        {"agentsup_progress_steps", "gauge",
	         "Steps the worker last reported (per incarnation).",
	         scrape_steps},
	        {"agentsup_progress_tokens", "gauge",
	         "Tokens the worker last reported (per incarnation).",
	         scrape_tokens},
	        {"agentsup_progress_cost", "gauge",
	         "Cost the worker last reported (per incarnation).",
	         scrape_cost},
	        {"agentsup_consecutive_failures", "gauge",
	         "A worker's failures in a row (its backoff step).",
	         scrape_failures},
	        {"agentsup_circuit_state", "gauge",
	         "1 for the state of each configured circuit, 0 for the "
	         "others.",
	         scrape_circuit},
	        {"agentsup_supervisor_window_restarts", "gauge",
	         "Restarts within the supervisor's intensity period.",
	         scrape_window},
	        {"agentsup_supervisor_intensity", "gauge",
	         "Restarts a supervisor allows within its period.",
	         scrape_intensity},
	        {"agentsup_budget_spend", "gauge",
	         "Spent against each limit of a budget (wall in seconds; a "
	         "supervisor's: its subtree's).",
	         scrape_budget_spend},
	        {"agentsup_budget_limit", "gauge",
	         "Each limit of a budget (wall in seconds).",
	         scrape_budget_limit},
	};

	for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++)
		scrape_family(o, t, fams[i].name, fams[i].type, fams[i].help,
		              fams[i].fn, now_us);
}

static void
scrape_events(struct metrics_out *o, const struct events *ev)
{
	metrics_family(o, "agentsup_events_total", "counter",
	               "Events emitted since agentsupd started, by kind.");
	for (int k = 0; k < EV__COUNT; k++)
		metrics_sample(o, "agentsup_events_total",
		               (double)ev->counts[k], "kind",
		               events_kind_name((enum event_kind)k),
		               (char *)NULL);
}

static void
scrape_restart_reasons(struct metrics_out *o, const struct events *ev)
{
	metrics_family(o, "agentsup_restarts_by_reason_total", "counter",
	               "Restart decisions since agentsupd started, by the "
	               "kind of failure.");
	for (size_t i = 0; i < ev->nrestarts; i++)
		metrics_sample(o, "agentsup_restarts_by_reason_total",
		               (double)ev->restarts[i].n, "reason",
		               ev->restarts[i].reason, (char *)NULL);
}

/* The hooks' runs by outcome: an alert hook that no longer runs (a path
 * gone, a webhook that times out) is itself something to alert on. */
static void
scrape_hooks(struct metrics_out *o, const struct hooks *h)
{
	static const struct hooks_counts none;
	const struct hooks_counts *c = h != NULL ? hooks_counts(h) : &none;
	const struct {
		const char *outcome;
		uint64_t n;
	} rows[] = {{"started", c->started},
	            {"failed", c->failed},
	            {"exec_failed", c->exec_failed},
	            {"timed_out", c->timed_out},
	            {"dropped", c->dropped}};

	metrics_family(o, "agentsup_hooks_total", "counter",
	               "on_event hook runs since agentsupd started: started, "
	               "failed (a non-zero exit or a signal), exec_failed (not "
	               "executed), timed_out (killed), dropped (the queue was "
	               "full).");
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		metrics_sample(o, "agentsup_hooks_total", (double)rows[i].n,
		               "outcome", rows[i].outcome, (char *)NULL);
}

/* Resident bytes from /proc/self/statm; -1 when unreadable. */
static double
scrape_rss(void)
{
	unsigned long size, resident;
	FILE *f = fopen("/proc/self/statm", "re");
	int n;

	if (f == NULL)
		return -1;
	n = fscanf(f, "%lu %lu", &size, &resident);
	fclose(f);
	if (n != 2)
		return -1;
	return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

/* Open descriptors, the one reading /proc/self/fd left out. */
static double
scrape_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (dir == NULL)
		return -1;
	while ((e = readdir(dir)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return (double)(n - 1);
}

static void
scrape_gauge(struct metrics_out *o, const char *name, const char *help,
             double v)
{
	if (v < 0)
		return; /* not measurable here: no sample rather than a lie */
	metrics_family(o, name, "gauge", help);
	metrics_sample(o, name, v, (char *)NULL);
}

/* The loop lag: how long this loop turn has run before the scrape got its
 * turn (libev's cached time against a fresh clock). */
static void
scrape_daemon(struct metrics_out *o, const struct daemon *d)
{
	double lag = ev_time() - ev_now(d->loop);

	scrape_gauge(o, "agentsup_workers_live",
	             "Worker processes that are not stopped.",
	             (double)d->tree->live);
	scrape_gauge(o, "agentsup_process_resident_memory_bytes",
	             "agentsupd's resident memory.", scrape_rss());
	scrape_gauge(o, "agentsup_process_open_fds",
	             "agentsupd's open file descriptors.", scrape_fds());
	scrape_gauge(
	        o, "agentsup_checkpoint_workers",
	        "Worker paths whose checkpoints agentsupd holds in memory.",
	        d->ckpt ? (double)ckpt_count(d->ckpt) : 0.);
	scrape_gauge(o, "agentsup_tasks_resume_waiting",
	             "Tasks accepted before agentsupd restarted that wait to "
	             "be resumed (their pool not running yet, or full).",
	             (double)tasks_waiting(d, NULL));
	scrape_gauge(o, "agentsup_loop_lag_seconds",
	             "How long the current event loop turn had run when the "
	             "scrape was served.",
	             lag > 0 ? lag : 0.);
}

void
scrape_render(void *arg, struct metrics_out *o)
{
	const struct daemon *d = arg;
	uint64_t t0 = clock_now_us();

	scrape_tree(o, d->tree, t0);
	scrape_events(o, &d->events);
	scrape_restart_reasons(o, &d->events);
	scrape_hooks(o, d->hooks);
	scrape_daemon(o, d);
	scrape_gauge(o, "agentsup_scrape_render_seconds",
	             "How long rendering this scrape took, up to this line.",
	             (double)(clock_now_us() - t0) / 1e6);
}

/* Serve /metrics at addr (NULL: not at all), keeping d->metrics as it is
 * when the address did not change. At a reload the new address is bound
 * before the old one closes, unless it is the same port on another host. */
int
scrape_configure(struct daemon *d, const char *addr, const char **whyp)
{
	struct metrics_limits lim = METRICS_LIMITS_DEFAULT;
	struct metrics *m;
	const char *why;

	if (d->metrics != NULL && addr != NULL &&
	    strcmp(metrics_addr(d->metrics), addr) == 0)
		return 0;
	if (addr == NULL) {
		metrics_close(d->metrics);
		d->metrics = NULL;
		return 0;
	}
	m = metrics_open(d->loop, addr, &lim, scrape_render, d, &why);
	if (m == NULL && d->metrics != NULL) {
		metrics_close(d->metrics);
		d->metrics = NULL;
		m = metrics_open(d->loop, addr, &lim, scrape_render, d, &why);
	}
	if (m == NULL) {
		log_warnx("metrics %s: %s", addr, why);
		if (whyp != NULL)
			*whyp = why;
		return -1;
	}
	metrics_close(d->metrics);
	d->metrics = m;
	log_info("serving metrics at http://%s/metrics", addr);
	return 0;
}
