/* timer.h - arming libev timers from a fresh clock. */
#ifndef AGENTSUP_TIMER_H
#define AGENTSUP_TIMER_H

#include <stdint.h>

#include <ev.h>

/* Fire w after_us microseconds from now, now being read fresh: libev's
 * cached loop time is stale after a slow callback, and a deadline computed
 * from it would fire early (a SIGKILL right after SIGTERM). */
void timer_after_us(struct ev_loop *, ev_timer *, uint64_t after_us);
void timer_after_ms(struct ev_loop *, ev_timer *, uint64_t after_ms);

#endif
