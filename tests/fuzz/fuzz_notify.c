/*
 * fuzz_notify.c - libFuzzer target: a datagram from any local process
 * through the sd_notify parser, with the invariants notify.c relies on.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "notify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct notify_msg m;
	int r = notify_parse(buf, size, &m);

	if (r < 0)
		return 0;
	/* STATUS points inside the datagram, never past it */
	if (m.has_status &&
	    (m.status < buf || m.status + m.status_len > buf + size))
		abort();
	if (!m.has_status && (m.status != NULL || m.status_len != 0))
		abort();
	if ((size_t)r + m.ignored > size)
		abort(); /* each assignment takes at least one byte */
	return 0;
}
