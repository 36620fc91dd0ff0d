/* timer.c - every deadline the shell arms goes through here. */
#include "timer.h"

void
timer_after_us(struct ev_loop *loop, ev_timer *w, uint64_t after_us)
{
	ev_timer_stop(loop, w);
	ev_now_update(loop);
	ev_timer_set(w, (double)after_us / 1e6, 0.0);
	ev_timer_start(loop, w);
}

void
timer_after_ms(struct ev_loop *loop, ev_timer *w, uint64_t after_ms)
{
	timer_after_us(loop, w, after_ms * 1000);
}
