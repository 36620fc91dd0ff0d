/*
 * fuzz_http.c - libFuzzer target: bytes from a /metrics client through the
 * request head parser, checking what its callers rely on.
 */
#include <stddef.h>
#include <stdint.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct http_request r, r2;

	switch (http_parse(buf, size, &r)) {
	case HTTP_OK:
		/* the head is within the bytes given and the limit, the path
		 * within the head; a shorter prefix is never a whole head */
		if (r.head_len > size || r.head_len > HTTP_MAX_HEAD ||
		    r.path < buf || r.path + r.path_len > buf + r.head_len ||
		    r.nheaders > HTTP_MAX_HEADERS ||
		    http_parse(buf, r.head_len - 1, &r2) == HTTP_OK)
			__builtin_trap();
		break;
	case HTTP_MORE:
		if (size >= HTTP_MAX_HEAD)
			__builtin_trap(); /* the limit always ends the wait */
		break;
	case HTTP_ERROR:
		if (r.status != 400 && r.status != 405 && r.status != 414 &&
		    r.status != 431 && r.status != 505)
			__builtin_trap();
		break;
	}
	return 0;
}
