/*
 * fuzz_wire.c - libFuzzer target: the frame decoder on an arbitrary stream,
 * the way channel.c and control.c consume it (frame after frame until it
 * wants more or refuses). Any crash, leak or sanitizer report is a bug.
 */
#include <stddef.h>
#include <stdint.h>

#include "agentsup/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agentsup_frame f;
	msgpack_zone zone;
	size_t used = 0;

	if (!msgpack_zone_init(&zone, 1024))
		return 0;
	while (agentsup_wire_decode(data + used, size - used, 4096, &zone,
	                            &f) == AGENTSUP_WIRE_OK) {
		/* touch what a handler would: "t" and a few keys */
		(void)agentsup_wire_is(&f, "hb");
		(void)agentsup_wire_get(&f.map, "progress");
		msgpack_zone_clear(&zone);
		used += f.size;
	}
	msgpack_zone_destroy(&zone);
	return 0;
}
