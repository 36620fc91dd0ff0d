/*
 * agent_int.h - the handle of libagentsup, shared by agent.c (the channel:
 * connect, queue, read, wait) and agent_msg.c (the messages). Private.
 */
#ifndef AGENT_INT_H
#define AGENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "agentsup/agent.h"
#include "agentsup/wire.h"

#define AGENT_MAX_OUT  (1u << 20)  /* queued output, beyond one frame */
#define AGENT_KEEP_OUT (64u << 10) /* buffers above this are freed */
/* agentsupd is trusted: a sanity bound, over a welcome with the largest
 * checkpoint (checkpoint.max, 16 MiB) and its fields */
#define AGENT_MAX_IN ((16u << 20) + (64u << 10))

struct agentsup {
	int fd; /* -1 when unsupervised or closed */
	char name[128];
	char path[512];
	unsigned long incarnation;
	uint64_t heartbeat_ms;
	uint64_t timeout_ms;
	size_t max_send; /* the largest body agentsupd takes from us */
	/* the largest checkpoint it takes (welcome), 0: off; UINT64_MAX until
	 * welcome says (an older agentsupd says nothing: it judges) */
	uint64_t ckpt_max;
	int welcomed;
	int draining;
	uint64_t drain_deadline_ms;
	uint64_t seq; /* of the last heartbeat */
	/* what welcome restored */
	unsigned long restarts;
	char last_reason[128];
	uint8_t *restored;
	size_t restored_len;
	uint64_t restored_seq;
	uint64_t ckpt_seq;   /* the last checkpoint sent */
	uint64_t ckpt_acked; /* the last one acknowledged */
	agentsup_nudge_fn on_nudge;
	void *nudge_arg;
	agentsup_spawned_fn on_spawned;
	void *spawned_arg;
	msgpack_sbuffer sb; /* the frame being encoded */
	msgpack_zone zone;
	struct agentsup_reader reader;
	uint8_t *out; /* queued frames: out[outoff..outlen) */
	size_t outoff, outlen, outcap;
	int reading;  /* in the reader: a callback's send reads nothing */
	int in_errno; /* a send's read failed: the next process says so */
};

/* Shared by the library's files, exported by neither: the prefix keeps a
 * static link clear of an agent's own names (an agent_send of its own
 * took the library's calls over), hidden keeps them out of the .so. */
#define AGENT_PRIVATE __attribute__((visibility("hidden")))

/* agent.c: queue the frame encoded in a->sb and send what the socket
 * takes; send what is queued. */
AGENT_PRIVATE int agentsup_agent_send(struct agentsup *);
AGENT_PRIVATE int agentsup_agent_flush(struct agentsup *);

/* agent_msg.c: hello, and the reader's callback for agentsupd's frames. */
AGENT_PRIVATE int agentsup_msg_hello(struct agentsup *, const char *lang);
AGENT_PRIVATE int agentsup_msg_on_frame(void *arg,
                                        const struct agentsup_frame *);

#endif
