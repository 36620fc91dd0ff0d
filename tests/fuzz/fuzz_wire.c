/*
 * fuzz_wire.c - libFuzzer target: the frame decoder and the one frame
 * reader on an arbitrary stream. The first input byte seeds the split
 * points and, when odd, a limit that changes between pieces (the heap
 * overflows of issue 9). Under one fixed limit, the reader must hand over
 * exactly the frames the plain decoder finds in the whole stream, however
 * the stream is split. Wherever the daemon's fast path (chanread.c) takes a
 * frame for a bare heartbeat, the decoder must find exactly that: a frame
 * of the same size whose map is {t: "hb", seq: unsigned}, its fields
 * valid. Any crash, leak or sanitizer report is a bug.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentsup/wire.h"
#include "chanread.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	size_t sizes[4096];
	size_t n;
	int bad_fields;
};

static int
record(void *arg, const struct agentsup_frame *f)
{
	struct seen *s = arg;
	const char *why;

	/* touch what a handler would */
	(void)agentsup_wire_get(&f->map, "progress");
	if (agentsup_wire_check_fields(f, &why) != AGENTSUP_WIRE_OK)
		s->bad_fields++;
	if (s->n < 4096)
		s->sizes[s->n] = f->size;
	s->n++;
	return 0;
}

/* What the fast path took for a bare heartbeat (bare bytes) is one. */
static void
check_bare(size_t bare, int r, const struct agentsup_frame *f)
{
	const msgpack_object *seq;
	const char *why;

	if (bare == 0)
		return;
	if (r != AGENTSUP_WIRE_OK || f->size != bare ||
	    !agentsup_wire_is(f, "hb") || f->map.via.map.size != 2 ||
	    (seq = agentsup_wire_get(&f->map, "seq")) == NULL ||
	    seq->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    agentsup_wire_check_fields(f, &why) != AGENTSUP_WIRE_OK)
		abort();
}

/* The frames of the whole stream, by the plain decoder; its last status. */
static int
reference(const uint8_t *data, size_t size, size_t max, msgpack_zone *zone,
          struct seen *s)
{
	struct agentsup_frame f;
	size_t used = 0, bare;
	int r;

	for (;;) {
		bare = chanread_bare_hb(data + used, size - used, max);
		r = agentsup_wire_decode(data + used, size - used, max, zone,
		                         &f);
		check_bare(bare, r, &f);
		if (r != AGENTSUP_WIRE_OK)
			break;
		record(s, &f);
		msgpack_zone_clear(zone);
		used += f.size;
	}
	msgpack_zone_clear(zone);
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct seen want, got;
	struct agentsup_reader rd;
	msgpack_zone zone;
	uint32_t rng;
	size_t at = 0, max = 4096;
	int r = 0, changing;

	if (size < 1 || !msgpack_zone_init(&zone, 1024))
		return 0;
	rng = data[0] * 2654435761u + 1;
	changing = data[0] & 1;
	data++;
	size--;
	memset(&want, 0, sizeof want);
	memset(&got, 0, sizeof got);
	int wr = reference(data, size, max, &zone, &want);
	agentsup_reader_init(&rd);
	while (at < size && r == 0) {
		rng = rng * 1103515245u + 12345u;
		size_t piece = 1 + (rng >> 16) % 64;
		piece = piece < size - at ? piece : size - at;
		if (changing)
			max = 1 + (rng >> 8) % 8192;
		r = agentsup_reader_feed(&rd, data + at, piece, max, &zone,
		                         record, &got);
		at += piece;
	}
	if (!changing) {
		/* the same frames, and the same verdict on the rest */
		if (got.n != want.n || got.bad_fields != want.bad_fields)
			abort();
		for (size_t i = 0; i < got.n && i < 4096; i++)
			if (got.sizes[i] != want.sizes[i])
				abort();
		if ((wr == AGENTSUP_WIRE_MORE) != (r == 0))
			abort();
	}
	agentsup_reader_free(&rd);
	msgpack_zone_destroy(&zone);
	return 0;
}
