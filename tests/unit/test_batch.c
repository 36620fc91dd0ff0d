/*
 * test_batch.c - the loop gathers I/O only while it is busy: the decision's
 * hysteresis, scripted turns of a loop (how often it wakes, how long its
 * callbacks take) with their times, and the watchers on a real loop
 * (batch.c). The real loop's own timing never decides a test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <ev.h>

#include "batch.h"

static void
test_gather_has_hysteresis(void **state)
{
	(void)state;
	assert_false(batch_gather(false, BATCH_ON_PER_S, 0));
	assert_true(batch_gather(false, BATCH_ON_PER_S + 1, 0));
	/* once gathering, it takes fewer wake-ups to stop: with a 1 ms gap
	 * between polls a busy loop wakes at most ~1,000 times a second */
	assert_true(batch_gather(true, BATCH_ON_PER_S / 2, 0.1));
	assert_true(batch_gather(true, BATCH_OFF_PER_S, 0.1));
	assert_false(batch_gather(true, BATCH_OFF_PER_S - 1, 0.1));
	assert_false(batch_gather(false, 0, 0));
}

/* A loop in its callbacks a third of the time gathers events by itself:
 * a captured flood must not wait between its reads. */
static void
test_no_gathering_when_busy(void **state)
{
	(void)state;
	assert_false(batch_gather(false, 10 * BATCH_ON_PER_S, BATCH_BUSY_MAX));
	assert_false(batch_gather(true, 10 * BATCH_ON_PER_S, 0.5));
	assert_true(batch_gather(true, 10 * BATCH_ON_PER_S, 0.2));
}

/* One turn of a scripted loop: the poll returns at *t, the callbacks take
 * `work` seconds, then the poll waits `gap` seconds for the next event
 * (unless the batch asks to gather). Returns whether the next poll waits. */
static bool
turn(struct batch *b, ev_tstamp *t, ev_tstamp work, ev_tstamp gap)
{
	bool wait;

	batch_polled(b, *t);
	*t += work;
	wait = batch_turn_ended(b, *t);
	*t += gap;
	return wait;
}

/* Many turns alike; returns how many of them asked to wait. */
static int
turns(struct batch *b, ev_tstamp *t, int n, ev_tstamp work, ev_tstamp gap)
{
	int waits = 0;

	while (n-- > 0)
		waits += turn(b, t, work, gap);
	return waits;
}

/* 10,000 wake-ups a second with short callbacks: gathering within a
 * window, every short turn then waits; 50 a second: off within a window,
 * and no turn waits once it is off. */
static void
test_on_while_waking_often_off_when_quiet(void **state)
{
	struct batch b = {0};
	ev_tstamp t = 0;

	(void)state;
	assert_int_equal(turns(&b, &t, 999, 10e-6, 90e-6), 0);
	assert_false(b.on); /* the first window is not over */
	turns(&b, &t, 2, 10e-6, 90e-6);
	assert_true(b.on);
	assert_int_equal(turns(&b, &t, 100, 10e-6, 90e-6), 100);
	turns(&b, &t, 20, 10e-6,
	      0.02); /* two windows: the first still counts the busy turns */
	assert_false(b.on);
	assert_int_equal(turns(&b, &t, 50, 10e-6, 0.02), 0);
}

/* A loop in its callbacks half of the time is not made to wait, however
 * often it wakes. */
static void
test_busy_loop_does_not_gather(void **state)
{
	struct batch b = {0};
	ev_tstamp t = 0;

	(void)state;
	assert_int_equal(turns(&b, &t, 10000, 50e-6, 50e-6), 0);
	assert_false(b.on);
}

/* While gathering, a turn longer than BATCH_LONG_S (a captured flood's
 * read) is followed by a poll at once; the short ones around it wait. */
static void
test_no_wait_after_a_long_turn(void **state)
{
	struct batch b = {0};
	ev_tstamp t = 0;

	(void)state;
	turns(&b, &t, 2000, 10e-6, 90e-6);
	assert_true(b.on);
	assert_true(turn(&b, &t, 10e-6, 0));
	assert_false(turn(&b, &t, 2 * BATCH_LONG_S, 0));
	assert_true(turn(&b, &t, 10e-6, 0));
}

struct quiet {
	ev_timer tick;
	struct batch *b;
	int ticks; /* left to tick */
};

static void
quiet_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct quiet *q = w->data;

	(void)revents;
	if (--q->ticks == 0)
		ev_timer_stop(loop, w);
}

/* On a real loop the watchers count its wake-ups, keep a quiet loop from
 * gathering, and neither keeps the loop running. */
static void
test_real_loop_counts_and_stays_quiet(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct batch b;
	struct quiet q = {.b = &b, .ticks = 15};

	(void)state;
	batch_start(&b, loop);
	ev_timer_init(&q.tick, quiet_cb, 0.01, 0.01);
	q.tick.data = &q;
	ev_timer_start(loop, &q.tick);
	ev_run(loop, 0); /* returns: the batch's watchers are unref'd */
	assert_int_equal(q.ticks, 0);
	assert_true(b.wakes > 0 || b.since > 0);
	assert_false(b.on);
	batch_stop(&b, loop);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_gather_has_hysteresis),
	        cmocka_unit_test(test_no_gathering_when_busy),
	        cmocka_unit_test(test_on_while_waking_often_off_when_quiet),
	        cmocka_unit_test(test_busy_loop_does_not_gather),
	        cmocka_unit_test(test_no_wait_after_a_long_turn),
	        cmocka_unit_test(test_real_loop_counts_and_stays_quiet),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
