/*
 * batch.c - the loop gathers I/O while it is busy (issues 9 and 12).
 *
 * A wake-up costs a context switch whatever it carries: at 10,000 writes a
 * second from 200 workers the switches were half of agentsupd's time. While
 * the loop wakes more than BATCH_ON_PER_S times a second, libev's
 * io_collect_interval makes it wait until BATCH_GATHER_S has passed since
 * the last poll, so the next poll returns many ready descriptors at once; an
 * event then waits at most that long. Below BATCH_OFF_PER_S it is back to
 * polling at once, so an idle or quiet daemon (a restart, a control
 * request, a hang deadline) sees no added latency at all.
 */
#include "batch.h"

bool
batch_busy(bool on, double wakes_per_s)
{
	return on ? wakes_per_s >= BATCH_OFF_PER_S
	          : wakes_per_s > BATCH_ON_PER_S;
}

/* After every poll: one more wake-up; at the window's end, decide. */
static void
batch_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct batch *b = (struct batch *)w;
	ev_tstamp now = ev_now(loop), span = now - b->since;
	bool on;

	(void)revents;
	b->wakes++;
	if (span < BATCH_WINDOW_S)
		return;
	on = batch_busy(b->on, b->wakes / span);
	if (on != b->on)
		ev_set_io_collect_interval(loop, on ? BATCH_GATHER_S : 0);
	b->on = on;
	b->since = now;
	b->wakes = 0;
}

void
batch_start(struct batch *b, struct ev_loop *loop)
{
	b->since = ev_now(loop);
	b->wakes = 0;
	b->on = false;
	ev_check_init(&b->check, batch_cb);
	ev_check_start(loop, &b->check);
	ev_unref(loop); /* it does not keep the loop running */
}

void
batch_stop(struct batch *b, struct ev_loop *loop)
{
	if (!ev_is_active(&b->check))
		return;
	ev_ref(loop);
	ev_check_stop(loop, &b->check);
	ev_set_io_collect_interval(loop, 0);
}
