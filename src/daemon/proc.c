/*
 * proc.c - the shell's hands: fork/exec a worker, signal its process group,
 * time its deadlines, reap it and report the exit to the engine.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channel.h"
#include "daemon.h"
#include "proc.h"
#include "clock.h"
#include "log.h"
#include "logcap.h"
#include "util.h"

#define AGENTSUP_CHILD_FD 3
#define HANG_GRACE_MS     1000 /* after SIGUSR1, time to dump stacks */

extern char **environ;

/* --- pid map ------------------------------------------------------------- */

static size_t
pid_slot(const struct pidmap *m, pid_t pid)
{
	return ((size_t)pid * 2654435761u) & (m->cap - 1);
}

struct worker *
pidmap_get(const struct pidmap *m, pid_t pid)
{
	if (m->cap == 0)
		return NULL;
	for (size_t i = pid_slot(m, pid);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == 0)
			return NULL;
		if (m->keys[i] == pid)
			return m->vals[i];
	}
}

static void pidmap_put(struct pidmap *, pid_t, struct worker *);

static void
pidmap_grow(struct pidmap *m)
{
	struct pidmap old = *m;

	m->cap = old.cap ? old.cap * 2 : 64;
	m->keys = xcalloc(m->cap, sizeof *m->keys);
	m->vals = xcalloc(m->cap, sizeof *m->vals);
	m->count = 0;
	for (size_t i = 0; i < old.cap; i++)
		if (old.keys[i] != 0)
			pidmap_put(m, old.keys[i], old.vals[i]);
	free(old.keys);
	free(old.vals);
}

static void
pidmap_put(struct pidmap *m, pid_t pid, struct worker *w)
{
	size_t i;

	if ((m->count + 1) * 2 > m->cap)
		pidmap_grow(m);
	for (i = pid_slot(m, pid); m->keys[i] != 0; i = (i + 1) & (m->cap - 1))
		;
	m->keys[i] = pid;
	m->vals[i] = w;
	m->count++;
}

/* Linear probing: delete by shifting later entries back (no tombstones). */
static void
pidmap_del(struct pidmap *m, pid_t pid)
{
	size_t i, j, mask = m->cap - 1;

	if (m->cap == 0)
		return;
	for (i = pid_slot(m, pid); m->keys[i] != pid; i = (i + 1) & mask)
		if (m->keys[i] == 0)
			return;
	m->keys[i] = 0;
	m->count--;
	for (j = (i + 1) & mask; m->keys[j] != 0; j = (j + 1) & mask) {
		size_t home = pid_slot(m, m->keys[j]);
		/* move j back to i unless its home lies in (i, j] */
		if (i <= j ? (home <= i || home > j)
		           : (home <= i && home > j)) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			m->keys[j] = 0;
			i = j;
		}
	}
}

void
pidmap_free(struct pidmap *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof *m);
}

/* --- spawning ------------------------------------------------------------ */

/* What the child reports through the exec pipe before it gives up. */
struct exec_failure {
	int stage; /* enum below */
	int err;
};

enum {
	STAGE_CHDIR,
	STAGE_STDIN,
	STAGE_STDOUT,
	STAGE_STDERR,
	STAGE_EXEC,
	STAGE_SETUP
};

static bool
env_key_in(const char *entry, char **env)
{
	size_t kl = strcspn(entry, "=");

	if (strncmp(entry, "AGENTSUP_", 9) == 0)
		return true; /* ours alone: never a nested daemon's */
	for (char **e = env; e != NULL && *e != NULL; e++)
		if (strncmp(*e, entry, kl) == 0 && (*e)[kl] == '=')
			return true;
	return false;
}

/* agentsupd's environment, then the spec's, then AGENTSUP_*. The strings
 * are borrowed except ours (*own, freed by the caller). */
static char **
build_env(const struct node *n, char **own, size_t nown)
{
	const struct spec *s = n->spec;
	size_t cnt = 0, k = 0;
	char **envp;

	for (char **e = environ; *e != NULL; e++)
		cnt++;
	for (char **e = s->env; e != NULL && *e != NULL; e++)
		cnt++;
	envp = xcalloc(cnt + nown + 1, sizeof *envp);
	for (char **e = environ; *e != NULL; e++)
		if (!env_key_in(*e, s->env))
			envp[k++] = *e;
	for (char **e = s->env; e != NULL && *e != NULL; e++)
		envp[k++] = *e;
	for (size_t i = 0; i < nown; i++)
		envp[k++] = own[i];
	envp[k] = NULL;
	return envp;
}

static const char *
env_path(char **envp)
{
	for (char **e = envp; *e != NULL; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			return *e + 5;
	return "/usr/local/bin:/usr/bin:/bin";
}

/* Shared with the child: with CLONE_VM it writes here, and CLONE_VFORK
 * keeps the parent waiting until it has exec'd or given up. */
struct spawn {
	const struct spec *spec;
	int chan;
	char **envp;
	pid_t parent;
	const sigset_t *reset; /* signals to put back to SIG_DFL */
	int cap[2];            /* capture pipes' write ends, or -1 */
	struct exec_failure fail;
};

static _Noreturn void
child_fail(struct spawn *sp, int stage, int err)
{
	sp->fail = (struct exec_failure){stage, err};
	_exit(err == ENOENT && stage == STAGE_EXEC ? 127 : 126);
}

static int
child_output(const struct output *o, int target, int cap)
{
	int fd;

	if (o->mode == OUTPUT_INHERIT)
		return 0;
	if (o->mode == OUTPUT_CAPTURE) /* dup2 clears CLOEXEC, unless a no-op */
		return cap == target           ? fcntl(cap, F_SETFD, 0)
		       : dup2(cap, target) < 0 ? -1
		                               : 0;
	fd = o->mode == OUTPUT_NULL
	             ? open("/dev/null", O_WRONLY | O_CLOEXEC)
	             : open(o->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	                    0644);
	if (fd < 0 || dup2(fd, target) < 0)
		return -1;
	close(fd);
	return 0;
}

/* execve with a PATH search in the worker's own environment, as execvpe
 * would do but without reading ours. Only async-signal-safe calls. */
static int
child_execvpe(char **argv, char **envp)
{
	const char *p = env_path(envp);
	char buf[PATH_MAX];
	int saved = ENOENT;

	if (strchr(argv[0], '/') != NULL) {
		execve(argv[0], argv, envp);
		return errno;
	}
	while (*p != '\0') {
		size_t dl = strcspn(p, ":"), nl = strlen(argv[0]);
		if (dl + nl + 2 <= sizeof buf) {
			memcpy(buf, dl ? p : ".", dl ? dl : 1);
			dl = dl ? dl : 1;
			buf[dl] = '/';
			memcpy(buf + dl + 1, argv[0], nl + 1);
			execve(buf, argv, envp);
			if (errno == EACCES)
				saved = EACCES;
			else if (errno != ENOENT && errno != ENOTDIR)
				return errno;
		}
		p += strcspn(p, ":");
		if (*p == ':')
			p++;
	}
	return saved;
}

/* In the child, sharing the daemon's memory until exec: only syscalls and
 * writes to its own stack and to *sp. Never returns. */
static int
child_main(void *arg)
{
	struct spawn *sp = arg;
	const struct spec *s = sp->spec;
	sigset_t none;
	int fd;

	/* the daemon's handlers must not run here (they would write to its
	 * memory); ignored signals would survive exec. The rest are default. */
	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(sp->reset, sig) == 1)
			signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (setpgid(0, 0) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		child_fail(sp, STAGE_SETUP, errno);
	if (getppid() != sp->parent)
		_exit(126); /* the daemon died before we armed PDEATHSIG */
	if (s->directory != NULL && chdir(s->directory) < 0)
		child_fail(sp, STAGE_CHDIR, errno);
	if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 ||
	    dup2(fd, STDIN_FILENO) < 0)
		child_fail(sp, STAGE_STDIN, errno);
	close(fd);
	if (child_output(&s->out, STDOUT_FILENO, sp->cap[0]) < 0)
		child_fail(sp, STAGE_STDOUT, errno);
	if (child_output(&s->err, STDERR_FILENO, sp->cap[1]) < 0)
		child_fail(sp, STAGE_STDERR, errno);
	/* the channel, deliberately inherited (no CLOEXEC) at AGENTSUP_FD;
	 * every descriptor of ours is CLOEXEC, and any inherited one above
	 * it is closed here */
	if (dup2(sp->chan, AGENTSUP_CHILD_FD) < 0)
		child_fail(sp, STAGE_SETUP, errno);
	if (close_range(AGENTSUP_CHILD_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		for (int i = AGENTSUP_CHILD_FD + 1; i < 65536; i++)
			(void)fcntl(i, F_SETFD, FD_CLOEXEC);
	child_fail(sp, STAGE_EXEC, child_execvpe(s->argv, sp->envp));
}

static char *
exec_failure_text(const struct spec *s, const struct exec_failure *f)
{
	switch (f->stage) {
	case STAGE_CHDIR:
		return xasprintf("chdir %s: %s", s->directory,
		                 strerror(f->err));
	case STAGE_STDOUT:
		return xasprintf("stdout %s: %s",
		                 s->out.path ? s->out.path : "capture",
		                 strerror(f->err));
	case STAGE_STDERR:
		return xasprintf("stderr %s: %s",
		                 s->err.path ? s->err.path : "capture",
		                 strerror(f->err));
	case STAGE_EXEC:
		return xasprintf("exec %s: %s", s->argv[0], strerror(f->err));
	default:
		return xasprintf("setting up the child: %s", strerror(f->err));
	}
}

/* Which signals a child must reset: those the daemon handles or ignores.
 * Computed once the daemon's handlers are in place. */
void
proc_init(struct daemon *d)
{
	struct sigaction sa;

	sigemptyset(&d->child_reset);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP &&
		    sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL)
			sigaddset(&d->child_reset, sig);
	d->spawn_stack_size = 256 * 1024;
	d->spawn_stack = mmap(NULL, d->spawn_stack_size, PROT_READ | PROT_WRITE,
	                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (d->spawn_stack == MAP_FAILED)
		fatal("mmap of the spawn stack");
}

void
proc_fini(struct daemon *d)
{
	if (d->spawn_stack != NULL && d->spawn_stack != MAP_FAILED)
		munmap(d->spawn_stack, d->spawn_stack_size);
}

static void timer_cb(struct ev_loop *, ev_timer *, int);

/* Start a worker node's process. Like posix_spawn, the child shares our
 * memory (CLONE_VM) and we wait until it has exec'd (CLONE_VFORK): no page
 * tables are copied, and an exec failure is known when clone returns.
 * -1 with errno if no process could be made. */
int
proc_spawn(struct daemon *d, struct node *n)
{
	const struct spec *s = n->spec;
	char *own[5];
	size_t nown = 0;
	struct spawn sp = {.spec = s,
	                   .reset = &d->child_reset,
	                   .parent = getpid(),
	                   .fail = {-1, 0}};
	int sv[2], err;
	sigset_t all, old;
	struct logcap *lc = NULL;
	struct worker *w;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	sp.cap[0] = sp.cap[1] = -1;
	if (s->out.mode == OUTPUT_CAPTURE || s->err.mode == OUTPUT_CAPTURE) {
		lc = logcap_get(d->logcap, s->name);
		if (logcap_pipes(lc, s->out.mode == OUTPUT_CAPTURE,
		                 s->err.mode == OUTPUT_CAPTURE, sp.cap) < 0) {
			err = errno;
			close(sv[0]);
			close(sv[1]);
			errno = err;
			return -1;
		}
	}
	own[nown++] = xasprintf("AGENTSUP_FD=%d", AGENTSUP_CHILD_FD);
	own[nown++] = xasprintf("AGENTSUP_NAME=%s", s->name);
	own[nown++] = xasprintf("AGENTSUP_PATH=%s", n->path);
	own[nown++] = xasprintf("AGENTSUP_INCARNATION=%lu", n->starts - 1);
	if (s->heartbeat_ms)
		own[nown++] = xasprintf("AGENTSUP_HEARTBEAT_MS=%llu",
		                        (unsigned long long)s->heartbeat_ms);
	sp.envp = build_env(n, own, nown);
	sp.chan = sv[1];

	/* no handler of ours may run in the child before it resets them */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = clone(child_main, (char *)d->spawn_stack + d->spawn_stack_size,
	            CLONE_VM | CLONE_VFORK | SIGCHLD, &sp);
	err = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	if (lc != NULL)
		logcap_spawned(lc, pid >= 0);
	free(sp.envp);
	for (size_t i = 0; i < nown; i++)
		free(own[i]);
	if (pid < 0) {
		close(sv[0]);
		errno = err;
		return -1;
	}
	w = xcalloc(1, sizeof *w);
	w->node = n;
	w->d = d;
	w->pid = pid;
	w->spawned_ms = clock_now_ms();
	w->last_beat_us = clock_now_us();
	if (sp.fail.stage >= 0)
		w->exec_error = exec_failure_text(s, &sp.fail);
	ev_init(&w->timer, timer_cb);
	w->timer.data = w;
	n->worker = w;
	pidmap_put(&d->pids, pid, w);
	w->chan = channel_open(w, sv[0]);
	if (w->exec_error == NULL) {
		if (s->start_timeout_ms)
			proc_set_deadline(w, DEADLINE_START,
			                  s->start_timeout_ms);
		else if (s->heartbeat_ms)
			proc_set_deadline(w, DEADLINE_HEARTBEAT,
			                  s->heartbeat_timeout_ms);
	}
	return 0;
}

/* --- signals and deadlines ----------------------------------------------- */

/* Signal the worker's process group, so its own children go with it. */
static void
proc_signal(struct worker *w, int sig)
{
	if (kill(-w->pid, sig) == 0 || errno == ESRCH)
		return;
	/* the worker may have left its group (setsid): reach it at least */
	if (kill(w->pid, sig) < 0 && errno != ESRCH)
		log_warn("kill %ld %s", (long)w->pid, sigabbrev_np(sig));
}

void
proc_set_deadline_us(struct worker *w, enum deadline kind, uint64_t after_us)
{
	ev_timer_stop(w->d->loop, &w->timer);
	w->deadline = kind;
	if (kind == DEADLINE_NONE)
		return;
	ev_timer_set(&w->timer, (double)after_us / 1e6, 0.0);
	ev_timer_start(w->d->loop, &w->timer);
}

void
proc_set_deadline(struct worker *w, enum deadline kind, uint64_t after_ms)
{
	proc_set_deadline_us(w, kind, after_ms * 1000);
}

/* The stop sequence: SIGTERM (and SIGCONT, so a stopped process sees it),
 * SIGKILL after `shutdown`; or SIGKILL at once for brutal_kill. */
void
proc_stop(struct worker *w)
{
	int64_t grace = w->node->spec->shutdown_ms;

	if (w->deadline == DEADLINE_KILL || w->killed)
		return; /* already on its way */
	if (grace == SHUTDOWN_BRUTAL_KILL) {
		proc_signal(w, SIGKILL);
		w->killed = true;
		proc_set_deadline(w, DEADLINE_NONE, 0);
		return;
	}
	proc_signal(w, SIGTERM);
	proc_signal(w, SIGCONT);
	proc_set_deadline(w, DEADLINE_KILL, (uint64_t)grace);
}

/* A drain: the protocol's drain message to a worker that said hello,
 * SIGTERM to one that did not; the stop sequence after drain_timeout. */
void
proc_drain(struct worker *w)
{
	const struct spec *s = w->node->spec;

	if (w->drain_ms != 0 || w->deadline == DEADLINE_KILL || w->killed)
		return;
	w->drain_ms = clock_now_ms();
	if (w->chan == NULL ||
	    channel_send_drain(w->chan, s->drain_timeout_ms) < 0) {
		proc_signal(w, SIGTERM);
		proc_signal(w, SIGCONT);
	}
	proc_set_deadline(w, DEADLINE_DRAIN, s->drain_timeout_ms);
}

/* A failure seen while the process still runs (hang, start_timeout,
 * protocol): record why, then take it down. A hang first gets SIGUSR1 so
 * it can dump its stacks. */
void
proc_hang(struct worker *w, struct reason cause)
{
	if (w->cause.kind != REASON_NONE || w->deadline == DEADLINE_KILL ||
	    w->killed)
		return;
	w->cause = cause;
	if (cause.kind == REASON_HANG) {
		proc_signal(w, SIGUSR1);
		proc_set_deadline(w, DEADLINE_HANG, HANG_GRACE_MS);
		return;
	}
	proc_stop(w);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;
	const struct spec *s = w->node->spec;
	struct daemon *d = w->d;
	uint64_t now_us, deadline_us;

	(void)loop;
	(void)revents;
	switch (w->deadline) {
	case DEADLINE_NONE:
		break;
	case DEADLINE_START:
		events_emit(&d->events, EV_START_TIMEOUT, w->node->path, w->pid,
		            "start_timeout", w->node->starts - 1,
		            "no ready within %llums",
		            (unsigned long long)s->start_timeout_ms);
		proc_hang(w, (struct reason){REASON_START_TIMEOUT, 0});
		break;
	case DEADLINE_HEARTBEAT:
		/* judge only after reading what already waits on the socket */
		if (w->chan != NULL)
			channel_read_pending(w->chan);
		if (w->deadline != DEADLINE_HEARTBEAT)
			break; /* the read changed its fate (protocol error) */
		/* microseconds: a worker is never judged before its deadline */
		now_us = clock_now_us();
		deadline_us = w->last_beat_us + s->heartbeat_timeout_ms * 1000;
		if (deadline_us > now_us) {
			proc_set_deadline_us(w, DEADLINE_HEARTBEAT,
			                     deadline_us - now_us);
			break;
		}
		events_emit(&d->events, EV_HANG, w->node->path, w->pid, "hang",
		            w->node->starts - 1, "no heartbeat for %llums",
		            (unsigned long long)(now_us - w->last_beat_us) /
		                    1000);
		proc_hang(w, (struct reason){REASON_HANG, 0});
		break;
	case DEADLINE_HANG:
	case DEADLINE_DRAIN:
		w->deadline = DEADLINE_NONE;
		proc_stop(w);
		break;
	case DEADLINE_KILL:
		w->deadline = DEADLINE_NONE;
		proc_signal(w, SIGKILL);
		w->killed = true;
		break;
	}
	daemon_run_actions(d);
}

/* --- reaping ------------------------------------------------------------- */

static struct reason
exit_reason(int status)
{
	if (WIFSIGNALED(status))
		return (struct reason){REASON_SIGNAL, WTERMSIG(status)};
	return (struct reason){REASON_EXIT, WEXITSTATUS(status)};
}

static void
worker_free(struct worker *w)
{
	ev_timer_stop(w->d->loop, &w->timer);
	if (w->chan != NULL)
		channel_close(w->chan);
	free(w->exec_error);
	free(w);
}

/* One reaped child (libev reaps in a loop until none is left). */
void
proc_child_cb(struct ev_loop *loop, ev_child *c, int revents)
{
	struct daemon *d = c->data;
	struct worker *w = pidmap_get(&d->pids, c->rpid);
	struct logcap *lc;
	struct reason r;
	struct node *n;
	char why[64];
	uint64_t now;

	(void)loop;
	(void)revents;
	if (w == NULL)
		return; /* an orphan we adopted as subreaper: reaped, done */
	pidmap_del(&d->pids, c->rpid);
	/* whatever the worker left in its group goes with it */
	if (kill(-w->pid, SIGKILL) < 0 && errno != ESRCH && errno != EPERM)
		log_warn("kill group %ld", (long)w->pid);
	n = w->node;
	now = clock_now_ms();
	if ((lc = logcap_find(d->logcap, n->spec->name)) != NULL)
		logcap_exited(lc); /* its last words first */
	r = w->cause.kind != REASON_NONE ? w->cause : exit_reason(c->rstatus);
	if (w->drain_ms != 0 && n->draining) {
		/* a drained worker's own status, whatever failure was seen */
		reason_format(exit_reason(c->rstatus), why, sizeof why);
		events_emit(&d->events, EV_DRAINED, n->path, w->pid, why,
		            n->starts - 1, "after %llums%s",
		            (unsigned long long)(now - w->drain_ms),
		            w->killed ? ", forced" : "");
	} else {
		reason_format(r, why, sizeof why);
		events_emit(&d->events, EV_EXITED, n->path, w->pid, why,
		            n->starts - 1, "%s%s%s",
		            n->state == NODE_STOPPING ? "stopped" : "",
		            w->exec_error && n->state == NODE_STOPPING ? ", "
		                                                       : "",
		            w->exec_error ? w->exec_error : "");
	}
	n->worker = NULL;
	worker_free(w);
	tree_exited(d->tree, n, r, now);
	daemon_run_actions(d);
}
