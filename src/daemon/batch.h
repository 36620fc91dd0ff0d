/*
 * batch.h - a busy loop gathers I/O: while agentsupd wakes more than
 * BATCH_ON_PER_S times a second, each poll waits for BATCH_GATHER_S after
 * the last, so one wake-up carries many workers' frames instead of one.
 */
#ifndef AGENTSUP_BATCH_H
#define AGENTSUP_BATCH_H

#include <stdbool.h>

#include <ev.h>

#define BATCH_GATHER_S  0.001 /* the least time between two polls, busy */
#define BATCH_ON_PER_S  2000  /* wake-ups a second that make it busy */
#define BATCH_OFF_PER_S 500   /* ... and, while gathering, make it idle */
#define BATCH_WINDOW_S  0.1   /* wake-ups are counted over this */

struct batch {
	ev_check check;  /* counts the loop's wake-ups, after each poll */
	ev_tstamp since; /* the window's start (ev_now) */
	unsigned wakes;  /* in the window so far */
	bool on;         /* gathering */
};

void batch_start(struct batch *, struct ev_loop *);
void batch_stop(struct batch *, struct ev_loop *);
/* Whether to gather, given whether it does and the wake-ups a second. */
bool batch_busy(bool on, double wakes_per_s);

#endif
