/*
 * metrics.h - the /metrics endpoint: a tiny HTTP/1.x server that answers one
 * request per connection with the Prometheus text format (version 0.0.4),
 * and the helpers a render callback uses to write that format correctly.
 *
 * A leaf: it owns its sockets, buffers and limits, and knows nothing of the
 * tree; what a scrape shows comes from the render callback. With no client
 * connected it costs one idle listening descriptor and no timer.
 */
#ifndef AGENTSUP_METRICS_H
#define AGENTSUP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <ev.h>

/* The body of one scrape, built by the render callback. */
struct metrics_out {
	char *buf;
	size_t len, cap;
	size_t max;    /* past this the scrape fails with 500, never grows */
	bool overflow; /* something did not fit: the body is not sent */
};

typedef void (*metrics_render_fn)(void *arg, struct metrics_out *);

struct metrics_limits {
	size_t max_clients;    /* connections at once; the oldest gives way */
	double client_timeout; /* seconds from accept to the last byte out */
	size_t max_body;       /* bytes of one response body */
};

#define METRICS_LIMITS_DEFAULT                                                 \
	{                                                                      \
		16, 10.0, 16u << 20                                            \
	}

struct metrics;

/* Listen on "HOST:PORT" ("127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464",
 * "[::]:9464"; an empty host or "*" is every IPv4 address). NULL with *why
 * set when the address is malformed or cannot be bound. */
struct metrics *metrics_open(struct ev_loop *, const char *addr,
                             const struct metrics_limits *, metrics_render_fn,
                             void *arg, const char **why);
/* Close the listener and every client. NULL is fine. */
void metrics_close(struct metrics *);
/* The address as configured ("127.0.0.1:9464"). */
const char *metrics_addr(const struct metrics *);

/* --- writing the exposition format --------------------------------------- */

void metrics_out_init(struct metrics_out *, size_t max);
void metrics_out_free(struct metrics_out *);
/* "# HELP name help" and "# TYPE name type" (counter, gauge, ...). */
void metrics_family(struct metrics_out *, const char *name, const char *type,
                    const char *help);
/* One sample: name{k1="v1",...} value. Labels are NULL-terminated key,
 * value pairs; values are escaped (backslash, quote, newline). */
void metrics_sample(struct metrics_out *, const char *name, double value, ...)
        __attribute__((sentinel));
/* The same with the pairs in an array of 2 * npairs strings. */
void metrics_sample_labels(struct metrics_out *, const char *name, double value,
                           const char *const *kv, size_t npairs);

#endif
