/* sample.h - the tree as agentsupctl top shows it, one sample a refresh. */
#ifndef AGENTSUP_SAMPLE_H
#define AGENTSUP_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentsup/wire.h"

#define SAMPLE_PATH_MAX 256

/* One node as the last status showed it, and what we computed for it. */
struct row {
	char path[SAMPLE_PATH_MAX], name[64], kind[12], state[16], reason[48];
	char circuit[16];
	int depth;
	long pid; /* 0: none */
	uint64_t restarts, beat_ms, steps, tokens, ticks;
	double cost, budget; /* budget: the largest spend/limit, or < 0 */
	bool held, pending, has_beat, has_steps, has_tokens, has_cost,
	        has_ticks;
	double cpu, steps_rate, tokens_rate; /* < 0: not known yet */
	long rss_kb;                         /* < 0: not known */
};

/* The control connection, the last two samples, and a message for the user
 * (why the connection was lost, what a command answered). */
struct sampler {
	const char *sock;
	int fd;
	uint64_t id;
	uint8_t *buf;
	size_t len, cap, used;
	msgpack_zone zone;
	struct row *rows, *prev;
	size_t nrows, nprev, caprows, capprev;
	double t, tprev; /* when rows and prev were sampled */
	char msg[512];
	bool show_budget, show_circuit; /* some node has a budget, a circuit */
	bool lost; /* msg says why the connection was lost */
	long ticks_per_s, page_kb;
};

/* -1 when out of memory. Nothing is connected yet. */
int sample_init(struct sampler *, const char *socket_path);
void sample_fini(struct sampler *);
/* (Re)connect to agentsupd; -1 with errno (EPERM: not served by root or
 * by us). */
int sample_connect(struct sampler *);
/* Send a request and wait for its answer's "result" (valid until the next
 * call), or NULL with msg saying why; a lost connection is retried at the
 * next request. *more: a list answer has more chunks (sample_more). */
const msgpack_object *sample_request(struct sampler *, const char *cmd,
                                     const char *arg, bool *more);
/* The next chunk of the answer to the last request. */
const msgpack_object *sample_more(struct sampler *, const char *cmd,
                                  bool *more);
/* Take a new sample: rows become prev, status fills rows. */
void sample_refresh(struct sampler *);
/* CLOCK_MONOTONIC in seconds. */
double sample_now(void);

#endif
