/* clock.h - CLOCK_MONOTONIC, read fresh every time (never a cached loop time).
 */
#ifndef AGENTSUP_CLOCK_H
#define AGENTSUP_CLOCK_H

#include <stdint.h>

uint64_t clock_now_ms(void);
uint64_t clock_now_us(void);
/* The wall clock, ms since the epoch: only for showing times. */
int64_t clock_wall_ms(void);

#endif
