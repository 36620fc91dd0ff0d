/*
 * hooks.c - `on_event:` commands, supervisord's event listeners done as
 * short-lived processes.
 *
 * A hook's process (hooks_spawn.c) has the event's JSON as its stdin, a
 * process group of its own, and is killed with its group after its
 * timeout. At most
 * max_running run at once; further events wait in a bounded queue, and past
 * that they are dropped, counted and logged. The entries share them
 * fairly: while another entry has work, one entry runs at most
 * max_running - 1 at once, a waiting event of another goes first, and a
 * full queue drops from the entry that holds most of it, so that a slow
 * hook on a frequent event (`exited`) cannot hold up or crowd out the
 * alert on a rare one (`gave_up`).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hooks.h"
#include "hooks_spawn.h"
#include "log.h"
#include "util.h"

#define HOOKS_KIND_MAX 32

/* One on_event entry, owned. */
struct hook {
	char **kinds;
	char **argv;
	uint64_t timeout_ms;
	bool failing;    /* its start failed, said: the next are counted */
	unsigned unsaid; /* ... this many, until one starts */
};

/* An event waiting for a free slot: what to run and what to feed it. */
struct hook_job {
	char **argv;
	uint64_t timeout_ms;
	char *json;
	size_t len;
	size_t entry; /* its on_event entry's index, for fairness */
	char kind[HOOKS_KIND_MAX];
};

/* A running hook process. pid 0: the slot is free. */
struct hook_run {
	struct hooks *h;
	pid_t pid;
	ev_timer timer;
	char *name; /* argv[0], for the log */
	size_t entry;
	char kind[HOOKS_KIND_MAX];
	uint64_t timeout_ms;
	bool quiet;      /* its failure is logged already (exec, timeout) */
	bool unexecuted; /* its exec failed: exec_failed, neither started
	                  * nor failed */
};

struct hooks {
	struct ev_loop *loop;
	struct hook *hooks;
	size_t nhooks;
	struct hook_run *runs;
	unsigned max_running, nrunning;
	struct hook_job *queue; /* max_queued, oldest first */
	unsigned max_queued, qlen;
	void *stack; /* the child's, until it execs */
	struct hooks_counts counts;
	uint64_t dropped_unlogged; /* since the drops were last said */
	bool dropping;             /* the queue was full: until it drains */
	double dropped_said;       /* when they were last said (ev_time) */
};

#define HOOKS_DROPS_SAID_S 10.0 /* a storm's drops summed this often */

static char **
hooks_strv_dup(char **v)
{
	size_t n = 0;
	char **out;

	while (v[n] != NULL)
		n++;
	out = xcalloc(n + 1, sizeof *out);
	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(v[i]);
	return out;
}

static void
hooks_strv_free(char **v)
{
	for (char **s = v; s != NULL && *s != NULL; s++)
		free(*s);
	free(v);
}

/* The failures a hook's entry counted and did not say, said as it goes
 * (a reload that drops it, agentsupd's exit): none is lost unsaid. */
static void
hooks_say_unsaid(const struct hook *k)
{
	if (k->failing && k->unsaid > 0)
		log_warnx("hook %s: %u more failure%s to start after the one "
		          "said",
		          k->argv[0], k->unsaid, k->unsaid == 1 ? "" : "s");
}

static void
hooks_clear_specs(struct hooks *h)
{
	for (size_t i = 0; i < h->nhooks; i++) {
		hooks_say_unsaid(&h->hooks[i]);
		hooks_strv_free(h->hooks[i].kinds);
		hooks_strv_free(h->hooks[i].argv);
	}
	free(h->hooks);
	h->hooks = NULL;
	h->nhooks = 0;
}

/* A reload's entries: one that runs the same command as before keeps
 * what its failures to start were (said once, not again at each reload). */
void
hooks_set(struct hooks *h, const struct hook_spec *specs, size_t n)
{
	struct hook *k = xcalloc(n ? n : 1, sizeof *k);

	for (size_t i = 0; i < n; i++) {
		k[i].kinds = hooks_strv_dup(specs[i].kinds);
		k[i].argv = hooks_strv_dup(specs[i].argv);
		k[i].timeout_ms = specs[i].timeout_ms;
		for (size_t j = 0; j < h->nhooks && !k[i].failing; j++)
			if (h->hooks[j].failing &&
			    util_strv_equal(h->hooks[j].argv, k[i].argv)) {
				k[i].failing = true;
				k[i].unsaid = h->hooks[j].unsaid;
				h->hooks[j].failing = false; /* carried */
			}
	}
	hooks_clear_specs(h);
	h->hooks = k;
	h->nhooks = n;
}

struct hooks *
hooks_new(struct ev_loop *loop, const struct hook_spec *specs, size_t n,
          unsigned max_running, unsigned max_queued)
{
	struct hooks *h = xcalloc(1, sizeof *h);

	h->loop = loop;
	h->max_running = max_running ? max_running : 1;
	h->max_queued = max_queued;
	h->runs = xcalloc(h->max_running, sizeof *h->runs);
	h->queue = xcalloc(max_queued ? max_queued : 1, sizeof *h->queue);
	h->stack = NULL;
	hooks_set(h, specs, n);
	return h;
}

static void hooks_timeout_cb(struct ev_loop *, ev_timer *, int);

static struct hook_run *
hooks_free_slot(struct hooks *h)
{
	for (unsigned i = 0; i < h->max_running; i++)
		if (h->runs[i].pid == 0)
			return &h->runs[i];
	return NULL;
}

/* How many of entry's hooks run now. */
static unsigned
hooks_running(const struct hooks *h, size_t entry)
{
	unsigned n = 0;

	for (unsigned i = 0; i < h->max_running; i++)
		n += h->runs[i].pid != 0 && h->runs[i].entry == entry;
	return n;
}

/* Whether entry may take a free slot now: all of them while it is alone
 * with work, all but one while another entry's event waits. */
static bool
hooks_may_run(const struct hooks *h, size_t entry)
{
	bool others = false;

	for (unsigned i = 0; i < h->qlen && !others; i++)
		others = h->queue[i].entry != entry;
	return !others || h->max_running < 2 ||
	       hooks_running(h, entry) < h->max_running - 1;
}

/* entry's hook, if it still runs argv0 (a job queued before a reload
 * keeps its index into the entries it was queued by). */
static struct hook *
hooks_entry(struct hooks *h, size_t entry, const char *argv0)
{
	return entry < h->nhooks && strcmp(h->hooks[entry].argv[0], argv0) == 0
	               ? &h->hooks[entry]
	               : NULL;
}

/* A start of entry's hook failed: said the first time, counted from then
 * until one starts (a missing path said it at every event of a flapping
 * fleet, as many lines as the events). False: not to be said. */
static bool
hooks_start_failed(struct hooks *h, size_t entry, const char *argv0)
{
	struct hook *k = hooks_entry(h, entry, argv0);

	h->counts.exec_failed++;
	if (k != NULL && k->failing) {
		k->unsaid++;
		return false;
	}
	if (k != NULL)
		k->failing = true;
	return true;
}

/* entry's hook started: once its starts had failed, that they no longer
 * do, and how many failures went unsaid. */
static void
hooks_started(struct hooks *h, size_t entry, const char *name)
{
	struct hook *k = hooks_entry(h, entry, name);

	if (k == NULL || !k->failing)
		return;
	log_info("hook %s: starts again (%u more failure%s to start after "
	         "the one said)",
	         name, k->unsaid, k->unsaid == 1 ? "" : "s");
	k->failing = false;
	k->unsaid = 0;
}

/* Start one hook in a free slot. Failures are logged here, once. */
static void
hooks_run(struct hooks *h, struct hook_run *r, size_t entry, char **argv,
          uint64_t timeout_ms, const char *kind, const char *json, size_t len)
{
	int err = 0;
	pid_t pid = hooks_spawn(&h->stack, argv, json, len, &err);

	if (pid < 0) {
		err = errno;
		if (hooks_start_failed(h, entry, argv[0]))
			log_warnx("hook %s (%s): cannot start: %s (its next "
			          "failures are counted, not said, until it "
			          "starts)",
			          argv[0], kind, strerror(err));
		return;
	}
	h->counts.started += err == 0;
	*r = (struct hook_run){.h = h,
	                       .pid = pid,
	                       .entry = entry,
	                       .name = xstrdup(argv[0]),
	                       .timeout_ms = timeout_ms,
	                       .quiet = err != 0,
	                       .unexecuted = err != 0};
	snprintf(r->kind, sizeof r->kind, "%s", kind);
	if (err != 0 && hooks_start_failed(h, entry, argv[0]))
		/* it exits at once; the reap frees the slot */
		log_warnx("hook %s (%s): exec: %s (its next failures are "
		          "counted, not said, until it starts)",
		          argv[0], kind, strerror(err));
	else if (err == 0)
		hooks_started(h, entry, argv[0]);
	ev_timer_init(&r->timer, hooks_timeout_cb, (double)timeout_ms / 1e3,
	              0.0);
	r->timer.data = r;
	ev_timer_start(h->loop, &r->timer);
	h->nrunning++;
}

static void
hooks_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct hook_run *r = t->data;

	(void)loop;
	(void)revents;
	r->h->counts.timed_out++;
	r->quiet = true;
	log_warnx("hook %s (%s): still running after %llums: killed", r->name,
	          r->kind, (unsigned long long)r->timeout_ms);
	if (kill(-r->pid, SIGKILL) < 0 && kill(r->pid, SIGKILL) < 0 &&
	    errno != ESRCH)
		log_warn("hook %s: kill %ld", r->name, (long)r->pid);
}

/* --- events in, exits out ------------------------------------------------ */

static bool
hooks_wants(const struct hook *k, const char *kind)
{
	for (char **s = k->kinds; *s != NULL; s++)
		if (strcmp(*s, kind) == 0)
			return true;
	return false;
}

/* The drops since they were last said, if any: in a storm every
 * HOOKS_DROPS_SAID_S, when the queue drains, and at exit. */
static void
hooks_say_dropped(struct hooks *h)
{
	if (h->dropped_unlogged > 0)
		log_warnx("hooks: %llu more event(s) dropped while the queue "
		          "was full",
		          (unsigned long long)h->dropped_unlogged);
	h->dropped_unlogged = 0;
	h->dropped_said = ev_time();
}

/* The queue's job i out of it (the caller owns what it held). */
static struct hook_job
hooks_take(struct hooks *h, unsigned i)
{
	struct hook_job j = h->queue[i];

	memmove(&h->queue[i], &h->queue[i + 1],
	        (h->qlen - i - 1) * sizeof *h->queue);
	h->qlen--;
	return j;
}

/* A full queue: the newest event of the entry holding most of it goes
 * (the one coming, if that is its entry's): a flood of one entry's events
 * does not crowd out another's. Counted, said once per storm. */
static bool
hooks_make_room(struct hooks *h, size_t entry, const char *kind)
{
	unsigned most = 0, mine = 0, n;
	size_t hog = entry;
	int last = -1;

	for (unsigned i = 0; i < h->qlen; i++) {
		n = 0;
		for (unsigned k = 0; k < h->qlen; k++)
			n += h->queue[k].entry == h->queue[i].entry;
		if (h->queue[i].entry == entry)
			mine = n;
		if (n > most)
			most = n, hog = h->queue[i].entry;
	}
	if (hog != entry && most > mine + 1)
		for (unsigned i = 0; i < h->qlen; i++)
			if (h->queue[i].entry == hog)
				last = (int)i;
	h->counts.dropped++;
	if (!h->dropping) {
		h->dropping = true;
		h->dropped_said = ev_time();
		log_warnx("hooks: %u running and %u waiting: dropping the hook "
		          "%s for an event \"%s\" (and counting further drops)",
		          h->nrunning, h->qlen,
		          last >= 0 ? h->queue[last].argv[0]
		                    : h->hooks[entry].argv[0],
		          last >= 0 ? h->queue[last].kind : kind);
	} else {
		h->dropped_unlogged++;
		if (ev_time() - h->dropped_said >= HOOKS_DROPS_SAID_S)
			hooks_say_dropped(h);
	}
	if (last < 0)
		return false;
	struct hook_job j = hooks_take(h, (unsigned)last);
	hooks_strv_free(j.argv);
	free(j.json);
	return true;
}

static void
hooks_enqueue(struct hooks *h, size_t entry, const char *kind, const char *json,
              size_t len)
{
	const struct hook *k = &h->hooks[entry];
	struct hook_job *j;

	if (h->qlen == h->max_queued && !hooks_make_room(h, entry, kind))
		return;
	j = &h->queue[h->qlen++];
	j->argv = hooks_strv_dup(k->argv);
	j->timeout_ms = k->timeout_ms;
	j->json = xmalloc(len ? len : 1);
	memcpy(j->json, json, len);
	j->len = len;
	j->entry = entry;
	snprintf(j->kind, sizeof j->kind, "%s", kind);
}

/* Whether entry has an event waiting (its own come in order). */
static bool
hooks_entry_waits(const struct hooks *h, size_t entry)
{
	for (unsigned i = 0; i < h->qlen; i++)
		if (h->queue[i].entry == entry)
			return true;
	return false;
}

void
hooks_event(struct hooks *h, const char *kind, const char *json, size_t len)
{
	struct hook_run *r;

	if (len > HOOKS_MAX_JSON)
		len = HOOKS_MAX_JSON; /* events are far smaller: never happens
		                       */
	for (size_t i = 0; i < h->nhooks; i++) {
		if (!hooks_wants(&h->hooks[i], kind))
			continue;
		/* nothing overtakes an event of its entry already waiting */
		if (!hooks_entry_waits(h, i) && hooks_may_run(h, i) &&
		    (r = hooks_free_slot(h)) != NULL)
			hooks_run(h, r, i, h->hooks[i].argv,
			          h->hooks[i].timeout_ms, kind, json, len);
		else
			hooks_enqueue(h, i, kind, json, len);
	}
}

/* A slot freed: start what waits, and say how many were dropped. */
static void
hooks_next(struct hooks *h)
{
	struct hook_run *r;

	while ((r = hooks_free_slot(h)) != NULL) {
		unsigned i = 0;

		/* the oldest event of an entry that may run: of its entry's,
		 * the oldest (skipped entries keep their order) */
		while (i < h->qlen && !hooks_may_run(h, h->queue[i].entry))
			i++;
		if (i == h->qlen)
			break;
		struct hook_job j = hooks_take(h, i);
		hooks_run(h, r, j.entry, j.argv, j.timeout_ms, j.kind, j.json,
		          j.len);
		hooks_strv_free(j.argv);
		free(j.json);
	}
	if (h->qlen == 0 && h->dropping) {
		hooks_say_dropped(h);
		h->dropping = false;
	}
}

static void
hooks_report(struct hooks *h, const struct hook_run *r, int status)
{
	if ((WIFEXITED(status) && WEXITSTATUS(status) == 0) || r->unexecuted)
		return;
	h->counts.failed++;
	if (r->quiet)
		return;
	if (WIFSIGNALED(status))
		log_warnx("hook %s (%s): killed by SIG%s", r->name, r->kind,
		          sigabbrev_np(WTERMSIG(status)));
	else
		log_warnx("hook %s (%s): exited %d", r->name, r->kind,
		          WEXITSTATUS(status));
}

static struct hook_run *
hooks_run_of(const struct hooks *h, pid_t pid)
{
	for (unsigned i = 0; i < h->max_running && pid > 0; i++)
		if (h->runs[i].pid == pid)
			return &h->runs[i];
	return NULL;
}

bool
hooks_owns(const struct hooks *h, pid_t pid)
{
	return hooks_run_of(h, pid) != NULL;
}

bool
hooks_reaped(struct hooks *h, pid_t pid, int status)
{
	struct hook_run *r = hooks_run_of(h, pid);

	if (r == NULL)
		return false;
	ev_timer_stop(h->loop, &r->timer);
	/* whatever it left in its group went with it: reap.c, before the
	 * reap */
	hooks_report(h, r, status);
	free(r->name);
	*r = (struct hook_run){0};
	h->nrunning--;
	hooks_next(h);
	return true;
}

bool
hooks_idle(const struct hooks *h)
{
	return h->nrunning == 0 && h->qlen == 0;
}

static void
hooks_flush_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	*(bool *)t->data = true;
}

void
hooks_flush(struct hooks *h, uint64_t grace_ms)
{
	bool expired = false;
	ev_timer grace;

	if (h == NULL)
		return;
	if (hooks_idle(h)) {
		hooks_say_dropped(h);
		return;
	}
	ev_timer_init(&grace, hooks_flush_cb, (double)grace_ms / 1e3, 0.0);
	grace.data = &expired;
	ev_timer_start(h->loop, &grace);
	while (!hooks_idle(h) && !expired)
		ev_run(h->loop, EVRUN_ONCE);
	ev_timer_stop(h->loop, &grace);
	if (!hooks_idle(h))
		log_warnx(
		        "hooks: exiting with %u still running (killed) and %u "
		        "waiting (dropped)",
		        h->nrunning, h->qlen);
	hooks_say_dropped(h);
}

const struct hooks_counts *
hooks_counts(const struct hooks *h)
{
	return &h->counts;
}

void
hooks_free(struct hooks *h)
{
	if (h == NULL)
		return;
	for (unsigned i = 0; i < h->max_running; i++) {
		struct hook_run *r = &h->runs[i];
		if (r->pid == 0)
			continue;
		ev_timer_stop(h->loop, &r->timer);
		(void)kill(-r->pid, SIGKILL);
		free(r->name);
	}
	for (unsigned i = 0; i < h->qlen; i++) {
		hooks_strv_free(h->queue[i].argv);
		free(h->queue[i].json);
	}
	hooks_clear_specs(h);
	hooks_spawn_free(h->stack);
	free(h->runs);
	free(h->queue);
	free(h);
}
