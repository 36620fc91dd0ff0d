/*
 * http.h - a bounded, pure parser of one HTTP/1.x request head (the request
 * line and the headers), enough to serve /metrics to Prometheus and to refuse
 * anything else with the right status. No allocation, no I/O: bytes in, a
 * verdict out. Bytes after the head are ignored (the server answers once and
 * closes).
 */
#ifndef AGENTSUP_HTTP_H
#define AGENTSUP_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_MAX_HEAD    8192 /* request line + headers + the blank line */
#define HTTP_MAX_HEADERS 100
#define HTTP_MAX_TARGET  2048 /* the request target, query included */

enum http_verdict {
	HTTP_OK,    /* a whole, valid head: see struct http_request */
	HTTP_MORE,  /* valid so far; more bytes needed */
	HTTP_ERROR, /* refuse with http_request.status */
};

/* HTTP_OTHER: none read yet, or one not allowed (the request fails) */
enum http_method { HTTP_OTHER, HTTP_GET, HTTP_HEAD };

/* What a valid head asked for. path points into the parsed buffer. */
struct http_request {
	enum http_method method; /* on HTTP_ERROR too, once read: a HEAD's
	                            error answer has no body */
	const char *path; /* the target without its query, not terminated */
	size_t path_len;
	int minor;       /* HTTP/1.minor: 0 or 1 */
	size_t head_len; /* bytes of the head, the blank line included */
	size_t nheaders;
	int status;         /* on HTTP_ERROR: 400, 405, 414, 431 or 505 */
	const char *reason; /* on HTTP_ERROR: why, for a log line */
};

/* Parse buf[0..len) as the start of a request. Only the first HTTP_MAX_HEAD
 * bytes are ever looked at. */
enum http_verdict http_parse(const char *buf, size_t len,
                             struct http_request *);
/* Whether a valid request is for exactly this path (a query is allowed). */
bool http_path_is(const struct http_request *, const char *path);
/* "Bad Request" for 400, ...; "Error" for a status it does not know. */
const char *http_status_text(int status);

#endif
