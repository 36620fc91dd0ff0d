/*
 * test_hooks.c - the on_event leaf alone: events run in order through a
 * bounded queue, overflow is counted, failures and timeouts are counted,
 * and the reaper's routing answers only for the hooks' own pids.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "hooks.h"

static char out[64];

static void
reap_cb(struct ev_loop *loop, ev_child *c, int revents)
{
	(void)loop;
	(void)revents;
	assert_true(hooks_reaped(c->data, c->rpid, c->rstatus));
}

/* Run the loop until every hook is done, reaping as the daemon does. */
static void
run_until_idle(struct ev_loop *loop, struct hooks *h)
{
	ev_child child;

	ev_child_init(&child, reap_cb, 0, 0);
	child.data = h;
	ev_child_start(loop, &child);
	while (!hooks_idle(h))
		ev_run(loop, EVRUN_ONCE);
	ev_child_stop(loop, &child);
}

static char *kinds_exited[] = {"exited", NULL};

static void
test_order_bound_and_overflow(void **state)
{
	struct ev_loop *loop = ev_default_loop(0);
	char script[128], *argv[] = {"/bin/sh", "-c", script, NULL};
	struct hook_spec spec = {kinds_exited, argv, 10000};
	struct hooks *h;
	char line[64], buf[256] = "";
	FILE *f;

	(void)state;
	snprintf(out, sizeof out, "/tmp/test_hooks.%ld", (long)getpid());
	unlink(out);
	snprintf(script, sizeof script, "cat >> %s", out);
	h = hooks_new(loop, &spec, 1, 1, 2);
	for (int i = 0; i < 5; i++) {
		snprintf(line, sizeof line, "{\"n\":%d}", i);
		hooks_event(h, "exited", line, strlen(line));
	}
	hooks_event(h, "started", "{}", 2); /* no hook for it */
	/* one runs, two wait, two are dropped */
	assert_int_equal(hooks_counts(h)->started, 1);
	assert_int_equal(hooks_counts(h)->dropped, 2);
	assert_false(hooks_idle(h));
	assert_false(hooks_reaped(h, 1, 0)); /* not a hook's pid */
	run_until_idle(loop, h);
	assert_int_equal(hooks_counts(h)->started, 3);
	assert_int_equal(hooks_counts(h)->failed, 0);
	f = fopen(out, "r");
	assert_non_null(f);
	assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
	fclose(f);
	unlink(out);
	/* in the order the events came, each with its newline */
	assert_string_equal(buf, "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n");
	hooks_free(h);
}

static char *kinds_gave_up[] = {"gave_up", NULL};

/* Whether path holds text (the loop turning until it does, or 10 s). */
static bool
run_until_written(struct ev_loop *loop, struct hooks *h, const char *path,
                  const char *text)
{
	char buf[512];
	ev_child child;
	bool found = false;
	FILE *f;

	ev_child_init(&child, reap_cb, 0, 0);
	child.data = h;
	ev_child_start(loop, &child);
	for (int i = 0; i < 1000 && !found; i++) {
		ev_run(loop, EVRUN_NOWAIT);
		if ((f = fopen(path, "r")) != NULL) {
			size_t n = fread(buf, 1, sizeof buf - 1, f);
			buf[n] = '\0';
			fclose(f);
			found = strstr(buf, text) != NULL;
		}
		if (!found)
			usleep(10000); /* the hook's process on its way */
	}
	ev_child_stop(loop, &child);
	return found;
}

/* A hook on a frequent event filled the slots and the queue: the alert of
 * another entry waited behind all of it, or was dropped (an SRE's trial).
 * It takes the place of the flooding entry's newest, and the first free
 * place: here event 0's hook ends at once, 1..4 wait for a trigger, and
 * the alert must run before any of them can. */
static void
test_an_entry_cannot_crowd_out_another(void **state)
{
	struct ev_loop *loop = ev_default_loop(0);
	char slow[256], fast[128], trig[64];
	char *slow_argv[] = {"/bin/sh", "-c", slow, NULL};
	char *fast_argv[] = {"/bin/sh", "-c", fast, NULL};
	struct hook_spec specs[] = {{kinds_exited, slow_argv, 10000},
	                            {kinds_gave_up, fast_argv, 10000}};
	struct hooks *h;
	char line[64], buf[512];
	FILE *f;

	(void)state;
	snprintf(out, sizeof out, "/tmp/test_hooks.%ld", (long)getpid());
	snprintf(trig, sizeof trig, "/tmp/test_hooks.%ld.go", (long)getpid());
	unlink(out);
	unlink(trig);
	snprintf(slow, sizeof slow,
	         "read l; case $l in *'\"n\":0}'*) exit 0;; esac; "
	         "while [ ! -e %s ]; do sleep 0.01; done; echo \"$l\" >> %s",
	         trig, out);
	snprintf(fast, sizeof fast, "cat >> %s", out);
	h = hooks_new(loop, specs, 2, 2, 4);
	for (int i = 0; i < 7; i++) {
		snprintf(line, sizeof line, "{\"n\":%d}", i);
		hooks_event(h, "exited", line, strlen(line));
	}
	hooks_event(h, "gave_up", "{\"alert\":1}", 11);
	/* 0 and 1 run, 2..5 waited; 6 was dropped, then 5 for the alert */
	assert_int_equal(hooks_counts(h)->started, 2);
	assert_int_equal(hooks_counts(h)->dropped, 2);
	/* 0 ends: its place is the alert's (1 holds the other, and 2..4 would
	 * hold both till the trigger, so the alert is written only if it went
	 * first) */
	assert_true(run_until_written(loop, h, out, "{\"alert\":1}"));
	close(open(trig, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	run_until_idle(loop, h);
	assert_int_equal(hooks_counts(h)->started, 6);
	f = fopen(out, "r");
	assert_non_null(f);
	buf[fread(buf, 1, sizeof buf - 1, f)] = '\0';
	fclose(f);
	for (int i = 1; i <= 4; i++) {
		snprintf(line, sizeof line, "{\"n\":%d}", i);
		assert_non_null(strstr(buf, line));
	}
	assert_null(strstr(buf, "{\"n\":5}")); /* its place went to the alert */
	assert_null(strstr(buf, "{\"n\":6}")); /* dropped: the queue was full */
	unlink(out);
	unlink(trig);
	hooks_free(h);
}

static void
test_failures_and_timeout(void **state)
{
	struct ev_loop *loop = ev_default_loop(0);
	char *fail[] = {"/bin/sh", "-c", "exit 3", NULL};
	char *missing[] = {"/nonexistent/hook", NULL};
	char *hang[] = {"/bin/sleep", "100", NULL};
	struct hook_spec specs[] = {{kinds_exited, fail, 10000},
	                            {kinds_exited, missing, 10000},
	                            {kinds_exited, hang, 100}};
	struct hooks *h = hooks_new(loop, specs, 3, 4, 4);

	(void)state;
	hooks_event(h, "exited", "{}", 2);
	run_until_idle(loop, h);
	assert_int_equal(hooks_counts(h)->exec_failed, 1);
	assert_int_equal(hooks_counts(h)->timed_out, 1);
	/* exit 3 and SIGKILL; the missing one was never started */
	assert_int_equal(hooks_counts(h)->failed, 2);
	assert_int_equal(hooks_counts(h)->started, 2);
	hooks_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_order_bound_and_overflow),
	        cmocka_unit_test(test_an_entry_cannot_crowd_out_another),
	        cmocka_unit_test(test_failures_and_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
