/* channel.h - one worker's socket: frames in and out, heartbeat bookkeeping. */
#ifndef AGENTSUP_CHANNEL_H
#define AGENTSUP_CHANNEL_H

#include <stdbool.h>
#include <stdint.h>

struct worker;
struct channel;

/* What the worker last told us of its progress (hb "progress", "status"). */
struct progress {
	uint64_t steps;
	uint64_t tokens;
	double cost;
	char state[64];
	char status[256];
	bool has_steps, has_tokens, has_cost;
};

struct channel *channel_open(struct worker *, int fd);
void channel_close(struct channel *);
void channel_read_pending(struct channel *);
int channel_send_drain(struct channel *, uint64_t deadline_ms);
bool channel_said_hello(const struct channel *);
uint64_t channel_beats(const struct channel *);
const struct progress *channel_progress(const struct channel *);

#endif
