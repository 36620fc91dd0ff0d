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
 * request, a hang deadline) sees no added latency at all; so does a loop
 * busy in its callbacks BATCH_BUSY_MAX of the time or more, whose events
 * gather by themselves while it works. A turn that took
 * longer than BATCH_LONG_S (a captured flood: up to LOGCAP_READ_MAX read
 * and written) is followed by a poll at once: waiting would only leave the
 * pipe full and its writer blocked.
 */
#include "batch.h"

bool
batch_gather(bool on, double wakes_per_s, double busy)
{
	if (busy >= BATCH_BUSY_MAX) /* events gather by themselves */
		return false;
	return on ? wakes_per_s >= BATCH_OFF_PER_S
	          : wakes_per_s > BATCH_ON_PER_S;
}

static void
batch_wait(struct batch *b, struct ev_loop *loop, bool wait)
{
	if (wait != b->waits)
		ev_set_io_collect_interval(loop, wait ? BATCH_GATHER_S : 0);
	b->waits = wait;
}

void
batch_polled(struct batch *b, ev_tstamp now)
{
	ev_tstamp span = now - b->since;

	b->turn = now;
	b->wakes++;
	if (span < BATCH_WINDOW_S)
		return;
	b->on = batch_gather(b->on, b->wakes / span, b->busy / span);
	b->since = now;
	b->busy = 0;
	b->wakes = 0;
}

bool
batch_turn_ended(struct batch *b, ev_tstamp now)
{
	ev_tstamp took = now - b->turn;

	b->busy += took;
	return b->on && took < BATCH_LONG_S;
}

/* After every poll (first of its callbacks). */
static void
batch_check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	(void)revents;
	batch_polled(w->data, ev_now(loop));
}

/* Before every poll (last of the prepare callbacks): wait or not. */
static void
batch_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)revents;
	batch_wait(w->data, loop, batch_turn_ended(w->data, ev_time()));
}

void
batch_start(struct batch *b, struct ev_loop *loop)
{
	b->since = b->turn = ev_now(loop);
	b->busy = 0;
	b->wakes = 0;
	b->on = b->waits = false;
	ev_check_init(&b->check, batch_check_cb);
	ev_set_priority(&b->check, EV_MAXPRI);
	b->check.data = b;
	ev_prepare_init(&b->prepare, batch_prepare_cb);
	ev_set_priority(&b->prepare, EV_MINPRI); /* after the others' */
	b->prepare.data = b;
	ev_check_start(loop, &b->check);
	ev_prepare_start(loop, &b->prepare);
	ev_unref(loop); /* neither keeps the loop running */
	ev_unref(loop);
}

void
batch_stop(struct batch *b, struct ev_loop *loop)
{
	if (!ev_is_active(&b->check))
		return;
	ev_ref(loop);
	ev_ref(loop);
	ev_check_stop(loop, &b->check);
	ev_prepare_stop(loop, &b->prepare);
	batch_wait(b, loop, false);
}
