/*
 * test_batch.c - the loop gathers I/O only while it is busy: the decision's
 * hysteresis, and a real loop turning it on when it spins and off again
 * when it goes quiet (batch.c).
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

struct spin {
	ev_idle idle;  /* every turn polls without waiting: a busy loop */
	ev_timer tick; /* a quiet loop: a wake-up every 20 ms */
	struct batch *b;
	int turns;   /* left to spin */
	int ticks;   /* left to tick */
	bool was_on; /* gathering seen while spinning */
};

static void
idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct spin *s = (struct spin *)w;

	(void)revents;
	s->was_on |= s->b->on;
	if (--s->turns == 0 || s->was_on)
		ev_idle_stop(loop, w);
}

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct spin *s = w->data;

	(void)revents;
	if (--s->ticks == 0 || (!s->b->on && s->was_on))
		ev_timer_stop(loop, w);
}

static void
test_on_while_spinning_off_when_quiet(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct batch b;
	struct spin s = {.b = &b, .turns = 10000000, .ticks = 100};

	(void)state;
	batch_start(&b, loop);
	assert_false(b.on);
	ev_idle_init(&s.idle, idle_cb);
	ev_idle_start(loop, &s.idle);
	ev_run(loop, 0); /* spins until gathering (or gives up) */
	assert_true(s.was_on);
	ev_timer_init(&s.tick, tick_cb, 0.02, 0.02);
	s.tick.data = &s;
	ev_timer_start(loop, &s.tick);
	ev_run(loop, 0); /* 50 wake-ups a second: off within a window */
	assert_false(b.on);
	assert_true(s.ticks > 0);
	batch_stop(&b, loop);
	ev_loop_destroy(loop);
}

/* Busy for s seconds, as a turn that carried a flood. */
static void
busy_for(double s)
{
	ev_tstamp end = ev_time() + s;

	while (ev_time() < end)
		;
}

struct turns {
	ev_timer tick;
	struct batch *b;
	int n;
	int after_long, after_short; /* waits seen after each kind of turn */
	bool last_long;
};

/* Every fourth turn is long; the wait chosen for the poll after each turn
 * is seen at the start of the next. */
static void
turns_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct turns *t = w->data;

	(void)revents;
	if (t->n > 0 && t->b->on && t->b->waits)
		t->last_long ? t->after_long++ : t->after_short++;
	t->last_long = t->n % 4 == 1;
	if (t->last_long)
		busy_for(2 * BATCH_LONG_S);
	if (++t->n == 60)
		ev_timer_stop(loop, w);
}

static void
test_no_wait_after_a_long_turn(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct batch b;
	struct spin s = {.b = &b, .turns = 10000000};
	struct turns t = {.b = &b};

	(void)state;
	batch_start(&b, loop);
	ev_idle_init(&s.idle, idle_cb);
	ev_idle_start(loop, &s.idle);
	ev_run(loop, 0);
	assert_true(b.on);
	/* 1,000 turns a second keep it on; none waits after a long one */
	ev_timer_init(&t.tick, turns_cb, 0.001, 0.001);
	t.tick.data = &t;
	ev_timer_start(loop, &t.tick);
	ev_run(loop, 0);
	assert_int_equal(t.after_long, 0);
	assert_true(t.after_short > 0);
	batch_stop(&b, loop);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_gather_has_hysteresis),
	        cmocka_unit_test(test_no_gathering_when_busy),
	        cmocka_unit_test(test_on_while_spinning_off_when_quiet),
	        cmocka_unit_test(test_no_wait_after_a_long_turn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
