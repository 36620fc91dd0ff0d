/*
 * reloader.c - a reload never stops supervision.
 *
 * Reading and parsing the largest config the caps accept takes a few hundred
 * milliseconds; on the event loop that is as long without a restart, a
 * heartbeat read or a status answer. The parse is pure (config_parse takes
 * bytes and an environment), so it runs on a thread of its own and hands the
 * tree back with an ev_async; only the diff is applied on the loop, where the
 * tree lives. A thread rather than a forked parser: the parsed tree is
 * pointers into the heap, which a second process would have to serialise
 * back. The thread blocks every signal (they are the loop's), and it
 * touches nothing but its own job: the directory name, a copy of the
 * environment, and the outcome, read by the loop only after the join.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "confdir.h"
#include "log.h"
#include "reloader.h"
#include "util.h"

extern char **environ;

/* The waiters of one parse. */
struct reloader_wait {
	struct reload_waiter *w;
	size_t n;
};

struct reloader {
	struct ev_loop *loop;
	char *dir;
	reloader_done_fn *done;
	void *arg;
	ev_async finished;
	pthread_t thread;
	bool running;  /* a parse is under way */
	bool threaded; /* ... on the thread (else it ran on the loop) */
	bool again;    /* asked for while running: one more parse after */
	struct reloader_wait now, next;
	/* the job: written by the parse, read by the loop after the join */
	char **envp;
	struct config *cfg;
	struct config_errors errs;
};

static void
reloader_wait_add(struct reloader_wait *q, const struct reload_waiter *w)
{
	if (w == NULL)
		return;
	q->w = xreallocarray(q->w, q->n + 1, sizeof *q->w);
	q->w[q->n++] = *w;
}

/* agentsupd's environment as it is now: ${VAR} expands from it. */
static char **
reloader_envp(void)
{
	size_t n = 0;
	char **v;

	while (environ[n] != NULL)
		n++;
	v = xcalloc(n + 1, sizeof *v);
	for (size_t i = 0; i < n; i++)
		v[i] = xstrdup(environ[i]);
	return v;
}

static void
reloader_envp_free(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* The parse itself: what config_load does, with the job's environment. */
static void *
reloader_main(void *arg)
{
	struct reloader *r = arg;
	struct confdir cd;

	r->cfg = NULL;
	if (confdir_read(r->dir, &cd, &r->errs) == 0) {
		r->cfg = config_parse(cd.files, cd.n,
		                      (const char *const *)r->envp, &r->errs);
		confdir_free(&cd);
	}
	ev_async_send(r->loop, &r->finished);
	return NULL;
}

/* Start a parse: on its thread, or on the loop when no thread can be had
 * (no process slot: the reload is slow, never lost). */
static void
reloader_start(struct reloader *r)
{
	sigset_t all, old;
	int err;

	r->running = true;
	r->envp = reloader_envp();
	memset(&r->errs, 0, sizeof r->errs);
	ev_async_start(r->loop, &r->finished);
	sigfillset(&all);
	if ((err = pthread_sigmask(SIG_SETMASK, &all, &old)) != 0)
		fatalx("pthread_sigmask: %s", strerror(err));
	err = pthread_create(&r->thread, NULL, reloader_main, r);
	if (pthread_sigmask(SIG_SETMASK, &old, NULL) != 0)
		fatalx("pthread_sigmask: cannot restore the signal mask");
	r->threaded = err == 0;
	if (err != 0) {
		log_warnx("reload: no thread for the parse (%s): parsing on "
		          "the loop",
		          strerror(err));
		reloader_main(r);
	}
}

static void
finished_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct reloader *r = w->data;
	struct reloader_wait done;
	struct config *cfg;
	int err;

	(void)loop;
	(void)revents;
	if (!r->running)
		return;
	if (r->threaded && (err = pthread_join(r->thread, NULL)) != 0)
		fatalx("pthread_join: %s", strerror(err));
	ev_async_stop(r->loop, &r->finished);
	r->running = false;
	reloader_envp_free(r->envp);
	r->envp = NULL;
	cfg = r->cfg;
	r->cfg = NULL;
	done = r->now;
	r->now = r->next;
	r->next = (struct reloader_wait){NULL, 0};
	r->done(r->arg, cfg, &r->errs, done.w, done.n);
	config_errors_clear(&r->errs);
	free(done.w);
	if (r->again) {
		r->again = false;
		reloader_start(r);
	}
}

struct reloader *
reloader_new(struct ev_loop *loop, const char *dir, reloader_done_fn *done,
             void *arg)
{
	struct reloader *r = xcalloc(1, sizeof *r);

	r->loop = loop;
	r->dir = xstrdup(dir);
	r->done = done;
	r->arg = arg;
	ev_async_init(&r->finished, finished_cb);
	r->finished.data = r;
	return r;
}

void
reloader_request(struct reloader *r, const struct reload_waiter *w)
{
	if (r->running) {
		r->again = true;
		reloader_wait_add(&r->next, w);
		return;
	}
	reloader_wait_add(&r->now, w);
	reloader_start(r);
}

void
reloader_free(struct reloader *r)
{
	int err;

	if (r == NULL)
		return;
	if (r->running) {
		if (r->threaded && (err = pthread_join(r->thread, NULL)) != 0)
			fatalx("pthread_join: %s", strerror(err));
		ev_async_stop(r->loop, &r->finished);
		config_free(r->cfg);
		config_errors_clear(&r->errs);
		reloader_envp_free(r->envp);
	}
	free(r->now.w);
	free(r->next.w);
	free(r->dir);
	free(r);
}
