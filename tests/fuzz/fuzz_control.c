/*
 * fuzz_control.c - libFuzzer target for both ends of the control socket:
 * bytes from a client through the frame decoder and the request validator,
 * as control.c reads them, and bytes from a server (answers, chunks of a
 * status, events) through agentsupctl's renderers and health check.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "agentsup/wire.h"
#include "render.h"
#include "request.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (freopen("/dev/null", "w", stdout) == NULL) /* the renderers print */
		return -1;
	return 0;
}

/* What agentsupctl does with an answer's result and with an event. */
static void
fuzz_answer(const struct agentsup_frame *f)
{
	const msgpack_object *r = agentsup_wire_get(&f->map, "result");
	const msgpack_object *e = agentsup_wire_get(&f->map, "event");

	if (r != NULL && r->type == MSGPACK_OBJECT_ARRAY) {
		(void)render_count_unhealthy(r);
		(void)render_tree(r, true);
		for (uint32_t i = 0; i < r->via.array.size; i++)
			render_event(&r->via.array.ptr[i], false);
	}
	if (r != NULL)
		render_json(stdout, r);
	if (e != NULL)
		render_event(e, false);
}

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
		else
			fuzz_answer(&f);
		msgpack_zone_clear(&zone);
		used += f.size;
	}
	msgpack_zone_destroy(&zone);
	return 0;
}
