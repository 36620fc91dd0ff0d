/*
 * batch.h - a busy loop gathers I/O: while agentsupd wakes more than
 * BATCH_ON_PER_S times a second, each poll waits until BATCH_GATHER_S has
 * passed since the last one, so one wake-up carries many workers' frames
 * instead of one; only while the loop is mostly idle (less than
 * BATCH_BUSY_MAX of the time in callbacks), and never after a turn longer
 * than BATCH_LONG_S: a flood whose reads are bounded must not wait.
 */
#ifndef AGENTSUP_BATCH_H
#define AGENTSUP_BATCH_H

#include <stdbool.h>

#include <ev.h>

#define BATCH_GATHER_S  0.001   /* the least time between two polls, busy */
#define BATCH_LONG_S    0.00025 /* a turn this long polls again at once */
#define BATCH_ON_PER_S  2000    /* wake-ups a second that make it busy */
#define BATCH_OFF_PER_S 500     /* ... and, while gathering, make it idle */
#define BATCH_WINDOW_S  0.1     /* wake-ups are counted over this */
#define BATCH_BUSY_MAX  0.33    /* of the window in callbacks: no gathering */

struct batch {
	ev_check check;     /* after each poll, before its callbacks */
	ev_prepare prepare; /* before each poll: wait or not */
	ev_tstamp since;    /* the window's start (ev_now) */
	ev_tstamp turn;     /* this turn's start (ev_now after the poll) */
	ev_tstamp busy;     /* seconds of the window in callbacks */
	unsigned wakes;     /* in the window so far */
	bool on;            /* busy: gathering */
	bool waits;         /* the interval set now is BATCH_GATHER_S */
};

void batch_start(struct batch *, struct ev_loop *);
void batch_stop(struct batch *, struct ev_loop *);
/* Whether to gather, given whether it does, the wake-ups a second and the
 * share of the time spent in callbacks. */
bool batch_gather(bool on, double wakes_per_s, double busy);
/* The loop's two moments, with their times: a poll returned at now (counts
 * a wake-up, decides at a window's end); a turn's callbacks ended at now
 * (returns whether the next poll waits). The callbacks pass libev's clock;
 * tests pass a script. */
void batch_polled(struct batch *, ev_tstamp now);
bool batch_turn_ended(struct batch *, ev_tstamp now);

#endif
