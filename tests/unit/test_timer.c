/*
 * test_timer.c - a deadline armed after a slow callback counts from the
 * real now, not from libev's cached loop time (issue 9, defect 7: a worker
 * got SIGKILL 1 ms after SIGTERM once a reload had taken 10 s).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>
#include <ev.h>

#include "clock.h"
#include "timer.h"

static uint64_t fired_us;

static void
fired_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	fired_us = clock_now_us();
	ev_break(loop, EVBREAK_ALL);
}

/* Make libev's cached time stale by `ms`, as a slow callback would. */
static void
stale_by(struct ev_loop *loop, long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
	                      .tv_nsec = (ms % 1000) * 1000000L};

	ev_now_update(loop);
	nanosleep(&ts, NULL);
}

static void
test_deadline_counts_from_a_fresh_clock(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	ev_timer w;
	uint64_t armed_us;

	(void)state;
	ev_init(&w, fired_cb);
	stale_by(loop, 300);
	armed_us = clock_now_us();
	timer_after_ms(loop, &w, 200);
	ev_run(loop, 0);
	/* with the stale time it fired at once (300 ms "ago" + 200 ms) */
	assert_true(fired_us - armed_us >= 199 * 1000);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_deadline_counts_from_a_fresh_clock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
