/*
 * fuzz_control.c - libFuzzer target: bytes from a control client through
 * the frame decoder and the request validator, as control.c does.
 */
#include <stddef.h>
#include <stdint.h>

#include "agentsup/wire.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agentsup_frame f;
	struct request r;
	msgpack_zone zone;
	const char *why;
	size_t used = 0;

	if (!msgpack_zone_init(&zone, 1024))
		return 0;
	while (agentsup_wire_decode(data + used, size - used, 4096, &zone,
	                            &f) == AGENTSUP_WIRE_OK) {
		if (agentsup_wire_is(&f, AGENTSUP_T_REQ))
			(void)request_parse(&f.map, &r, &why);
		msgpack_zone_clear(&zone);
		used += f.size;
	}
	msgpack_zone_destroy(&zone);
	return 0;
}
