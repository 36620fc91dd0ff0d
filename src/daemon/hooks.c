/*
 * hooks.c - `on_event:` commands, supervisord's event listeners done as
 * short-lived processes.
 *
 * The event's JSON goes through a memfd: writing to it never blocks, the
 * hook reads it as a seekable stdin, and no pipe needs watching. A hook is
 * spawned as a worker is (clone with CLONE_VM|CLONE_VFORK: an exec failure
 * is known when clone returns), in a process group of its own with
 * PDEATHSIG, and is killed with its group after its timeout. At most
 * max_running run at once; further events wait in a bounded ring, and past
 * that they are dropped, counted and logged.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hooks.h"
#include "log.h"
#include "nofile.h"
#include "util.h"

#define HOOKS_STACK_SIZE (128 * 1024)
#define HOOKS_KIND_MAX   32

/* One on_event entry, owned. */
struct hook {
	char **kinds;
	char **argv;
	uint64_t timeout_ms;
};

/* An event waiting for a free slot: what to run and what to feed it. */
struct hook_job {
	char **argv;
	uint64_t timeout_ms;
	char *json;
	size_t len;
	char kind[HOOKS_KIND_MAX];
};

/* A running hook process. pid 0: the slot is free. */
struct hook_run {
	struct hooks *h;
	pid_t pid;
	ev_timer timer;
	char *name; /* argv[0], for the log */
	char kind[HOOKS_KIND_MAX];
	uint64_t timeout_ms;
	bool quiet; /* its failure is logged already (exec, timeout) */
};

struct hooks {
	struct ev_loop *loop;
	struct hook *hooks;
	size_t nhooks;
	struct hook_run *runs;
	unsigned max_running, nrunning;
	struct hook_job *queue; /* a ring of max_queued */
	unsigned max_queued, q0, qlen;
	void *stack; /* the child's, until it execs */
	struct hooks_counts counts;
	uint64_t dropped_unlogged; /* since the drops were last said */
	bool dropping;             /* the queue was full: until it drains */
	double dropped_said;       /* when they were last said (ev_time) */
};

#define HOOKS_DROPS_SAID_S 10.0 /* a storm's drops summed this often */

/* Shared with the child (CLONE_VM): it writes err if it cannot exec. */
struct hook_child {
	char **argv;
	int input;
	pid_t parent;
	int err;
};

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

static void
hooks_clear_specs(struct hooks *h)
{
	for (size_t i = 0; i < h->nhooks; i++) {
		hooks_strv_free(h->hooks[i].kinds);
		hooks_strv_free(h->hooks[i].argv);
	}
	free(h->hooks);
	h->hooks = NULL;
	h->nhooks = 0;
}

void
hooks_set(struct hooks *h, const struct hook_spec *specs, size_t n)
{
	hooks_clear_specs(h);
	h->hooks = xcalloc(n ? n : 1, sizeof *h->hooks);
	for (size_t i = 0; i < n; i++) {
		h->hooks[i].kinds = hooks_strv_dup(specs[i].kinds);
		h->hooks[i].argv = hooks_strv_dup(specs[i].argv);
		h->hooks[i].timeout_ms = specs[i].timeout_ms;
	}
	h->nhooks = n;
}

void
hooks_warn_unknown(const struct hooks *h, bool (*known)(const char *))
{
	for (size_t i = 0; i < h->nhooks; i++)
		for (char **k = h->hooks[i].kinds; *k != NULL; k++)
			if (!known(*k))
				log_warnx("on_event: no event is of kind "
				          "\"%s\" (hook %s)",
				          *k, h->hooks[i].argv[0]);
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
	h->stack = MAP_FAILED;
	hooks_set(h, specs, n);
	return h;
}

/* --- spawning ------------------------------------------------------------ */

/* In the child, sharing our memory until exec: only syscalls. */
static int
hooks_child_main(void *arg)
{
	struct hook_child *c = arg;
	sigset_t none;

	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (setpgid(0, 0) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
	    nofile_restore() < 0 || dup2(c->input, STDIN_FILENO) < 0) {
		c->err = errno;
		_exit(126);
	}
	if (getppid() != c->parent)
		_exit(126); /* the daemon died before PDEATHSIG was armed */
	/* every descriptor of ours is CLOEXEC already; this makes sure */
	(void)close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	execvp(c->argv[0], c->argv);
	c->err = errno;
	_exit(errno == ENOENT ? 127 : 126);
}

/* The event's JSON in a memfd, at offset 0; -1 with errno. */
static int
hooks_input(const char *json, size_t len)
{
	int fd = memfd_create("agentsup-hook", MFD_CLOEXEC);
	size_t at = 0;

	if (fd < 0)
		return -1;
	while (at < len) {
		ssize_t n = write(fd, json + at, len - at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		at += (size_t)n;
	}
	if (write(fd, "\n", 1) != 1 || lseek(fd, 0, SEEK_SET) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* clone + exec; the pid, or -1 (logged). *err set if exec failed. */
static pid_t
hooks_clone(struct hooks *h, char **argv, int input, int *err)
{
	struct hook_child c = {argv, input, getpid(), 0};
	sigset_t all, old;
	pid_t pid;

	if (h->stack == MAP_FAILED) {
		h->stack = mmap(NULL, HOOKS_STACK_SIZE, PROT_READ | PROT_WRITE,
		                MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
		if (h->stack == MAP_FAILED)
			return -1;
	}
	/* no handler of ours may run in the child before it resets them */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = clone(hooks_child_main, (char *)h->stack + HOOKS_STACK_SIZE,
	            CLONE_VM | CLONE_VFORK | SIGCHLD, &c);
	*err = pid < 0 ? errno : c.err;
	sigprocmask(SIG_SETMASK, &old, NULL);
	return pid;
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

/* Start one hook in a free slot. Failures are logged here, once. */
static void
hooks_run(struct hooks *h, struct hook_run *r, char **argv, uint64_t timeout_ms,
          const char *kind, const char *json, size_t len)
{
	int input = hooks_input(json, len), err = 0;
	pid_t pid;

	if (input < 0) {
		h->counts.exec_failed++;
		log_warn("hook %s (%s): the event's input", argv[0], kind);
		return;
	}
	pid = hooks_clone(h, argv, input, &err);
	close(input);
	if (pid < 0) {
		h->counts.exec_failed++;
		log_warnx("hook %s (%s): cannot start: %s", argv[0], kind,
		          strerror(err ? err : errno));
		return;
	}
	h->counts.started++;
	*r = (struct hook_run){.h = h,
	                       .pid = pid,
	                       .name = xstrdup(argv[0]),
	                       .timeout_ms = timeout_ms,
	                       .quiet = err != 0};
	snprintf(r->kind, sizeof r->kind, "%s", kind);
	if (err != 0) {
		/* it exits at once; the reap frees the slot */
		h->counts.exec_failed++;
		log_warnx("hook %s (%s): exec: %s", argv[0], kind,
		          strerror(err));
	}
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

static void
hooks_enqueue(struct hooks *h, const struct hook *k, const char *kind,
              const char *json, size_t len)
{
	struct hook_job *j;

	if (h->qlen == h->max_queued) {
		h->counts.dropped++;
		if (!h->dropping) {
			h->dropping = true;
			h->dropped_said = ev_time();
			log_warnx(
			        "hooks: %u running and %u waiting: dropping "
			        "the hook %s for an event \"%s\" (and counting "
			        "further drops)",
			        h->nrunning, h->qlen, k->argv[0], kind);
		} else {
			h->dropped_unlogged++;
			if (ev_time() - h->dropped_said >= HOOKS_DROPS_SAID_S)
				hooks_say_dropped(h);
		}
		return;
	}
	j = &h->queue[(h->q0 + h->qlen++) % h->max_queued];
	j->argv = hooks_strv_dup(k->argv);
	j->timeout_ms = k->timeout_ms;
	j->json = xmalloc(len ? len : 1);
	memcpy(j->json, json, len);
	j->len = len;
	snprintf(j->kind, sizeof j->kind, "%s", kind);
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
		/* in order: nothing overtakes an event already waiting */
		if (h->qlen == 0 && (r = hooks_free_slot(h)) != NULL)
			hooks_run(h, r, h->hooks[i].argv,
			          h->hooks[i].timeout_ms, kind, json, len);
		else
			hooks_enqueue(h, &h->hooks[i], kind, json, len);
	}
}

/* A slot freed: start what waits, and say how many were dropped. */
static void
hooks_next(struct hooks *h)
{
	struct hook_run *r;

	while (h->qlen > 0 && (r = hooks_free_slot(h)) != NULL) {
		struct hook_job j = h->queue[h->q0];
		h->q0 = (h->q0 + 1) % h->max_queued;
		h->qlen--;
		hooks_run(h, r, j.argv, j.timeout_ms, j.kind, j.json, j.len);
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
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
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
	while (h->qlen > 0) {
		struct hook_job *j = &h->queue[h->q0];
		hooks_strv_free(j->argv);
		free(j->json);
		h->q0 = (h->q0 + 1) % h->max_queued;
		h->qlen--;
	}
	hooks_clear_specs(h);
	if (h->stack != MAP_FAILED)
		munmap(h->stack, HOOKS_STACK_SIZE);
	free(h->runs);
	free(h->queue);
	free(h);
}
