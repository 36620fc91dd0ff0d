/*
 * logcap_reap.c - a thread that closes descriptors of unlinked log files.
 *
 * Rotation opens the oldest file, unlinks it (cheap: the open descriptor
 * keeps the inode) and hands the descriptor here; the close that drops the
 * last reference frees the file's pages and blocks on this thread, whose
 * signals are all blocked. A bounded queue: when it is full, or no thread
 * can be had, the close happens in place, as it would without a reaper.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "logcap_reap.h"
#include "util.h"

#define LOGCAP_REAP_STACK 65536 /* it only ever calls close */

struct logcap_reap {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool started, failed, stop;
	int fds[LOGCAP_REAP_MAX];
	unsigned n;
};

static void *
reap_main(void *arg)
{
	struct logcap_reap *r = arg;
	int fd;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (r->n == 0 && !r->stop)
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->n == 0)
			break;
		fd = r->fds[--r->n];
		pthread_mutex_unlock(&r->mu);
		close(fd);
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

struct logcap_reap *
logcap_reap_new(void)
{
	struct logcap_reap *r = xcalloc(1, sizeof *r);

	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	return r;
}

/* The thread, with every signal blocked (the loop takes them); false if
 * none can be had, said once. */
static bool
reap_start(struct logcap_reap *r)
{
	sigset_t all, old;
	pthread_attr_t attr;
	int err;

	if (r->started || r->failed)
		return r->started;
	if ((err = pthread_attr_init(&attr)) != 0 ||
	    (err = pthread_attr_setstacksize(&attr, LOGCAP_REAP_STACK)) != 0)
		fatalx("pthread_attr: %s", strerror(err));
	sigfillset(&all);
	if ((err = pthread_sigmask(SIG_SETMASK, &all, &old)) != 0)
		fatalx("pthread_sigmask: %s", strerror(err));
	err = pthread_create(&r->thread, &attr, reap_main, r);
	pthread_attr_destroy(&attr);
	if (pthread_sigmask(SIG_SETMASK, &old, NULL) != 0)
		fatalx("pthread_sigmask: cannot restore the signal mask");
	r->started = err == 0;
	r->failed = err != 0;
	if (err != 0)
		log_warnx("log files: no thread to free rotated files (%s): "
		          "freed on the loop",
		          strerror(err));
	return r->started;
}

void
logcap_reap_close(struct logcap_reap *r, int fd)
{
	bool queued = false;

	if (r != NULL && reap_start(r)) {
		pthread_mutex_lock(&r->mu);
		if (r->n < LOGCAP_REAP_MAX) {
			r->fds[r->n++] = fd;
			queued = true;
			pthread_cond_signal(&r->cv);
		}
		pthread_mutex_unlock(&r->mu);
	}
	if (!queued)
		close(fd);
}

void
logcap_reap_free(struct logcap_reap *r)
{
	int err;

	if (r == NULL)
		return;
	if (r->started) {
		pthread_mutex_lock(&r->mu);
		r->stop = true;
		pthread_cond_signal(&r->cv);
		pthread_mutex_unlock(&r->mu);
		if ((err = pthread_join(r->thread, NULL)) != 0)
			fatalx("pthread_join: %s", strerror(err));
	}
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
