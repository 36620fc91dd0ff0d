/*
 * bench_wire.c - how many heartbeat frames per second one core decodes:
 * the plain decoder on one buffer, the one frame reader fed in 16 KiB
 * pieces (as agentsup_reader_read gets them), and the reader with the
 * field checks the daemon runs before dispatch. Prints figures; asserts
 * nothing.
 *
 *   bench_wire [FRAMES]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "agentsup/wire.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A stream of n hb frames with progress, as the clients send them. */
static void
bench_stream(msgpack_sbuffer *out, size_t n)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	for (size_t i = 0; i < n; i++) {
		agentsup_wire_begin(&sb);
		msgpack_pack_map(&pk, 3);
		agentsup_wire_kv_str(&pk, "t", "hb");
		agentsup_wire_kv_uint(&pk, "seq", i + 1);
		agentsup_wire_pack_str(&pk, "progress");
		msgpack_pack_map(&pk, 4);
		agentsup_wire_kv_uint(&pk, "steps", i);
		agentsup_wire_kv_uint(&pk, "tokens", i * 100);
		agentsup_wire_pack_str(&pk, "cost");
		msgpack_pack_double(&pk, (double)i * 1e-4);
		agentsup_wire_kv_str(&pk, "state", "thinking");
		agentsup_wire_end(&sb, AGENTSUP_MAX_FRAME);
		msgpack_sbuffer_write(out, sb.data, sb.size);
	}
	msgpack_sbuffer_destroy(&sb);
}

static int
bench_count(void *arg, const struct agentsup_frame *f)
{
	(void)f;
	(*(size_t *)arg)++;
	return 0;
}

static int
bench_checked(void *arg, const struct agentsup_frame *f)
{
	if (agentsup_wire_check_fields(f, NULL) == AGENTSUP_WIRE_OK)
		(*(size_t *)arg)++;
	return 0;
}

static void
bench_report(const char *what, size_t frames, double secs)
{
	printf("%-28s %10zu frames %8.3f s %10.2f M frames/s\n", what, frames,
	       secs, (double)frames / secs / 1e6);
}

/* The reader over the stream in 16 KiB pieces, with fn per frame. */
static void
bench_reader(const char *what, const msgpack_sbuffer *s, msgpack_zone *zone,
             agentsup_frame_fn fn)
{
	struct agentsup_reader r;
	size_t got = 0;
	double t0 = now_s();

	agentsup_reader_init(&r);
	for (size_t at = 0; at < s->size; at += AGENTSUP_READ_CHUNK) {
		size_t n = s->size - at < AGENTSUP_READ_CHUNK
		                   ? s->size - at
		                   : AGENTSUP_READ_CHUNK;
		if (agentsup_reader_feed(&r, (const uint8_t *)s->data + at, n,
		                         AGENTSUP_MAX_FRAME, zone, fn,
		                         &got) < 0)
			abort();
	}
	bench_report(what, got, now_s() - t0);
	agentsup_reader_free(&r);
}

int
main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000000;
	msgpack_sbuffer s;
	msgpack_zone zone;
	struct agentsup_frame f;
	size_t used = 0, got = 0;
	double t0;

	msgpack_sbuffer_init(&s);
	msgpack_zone_init(&zone, 4096);
	bench_stream(&s, n);
	printf("%zu hb frames with progress, %zu bytes each\n", n, s.size / n);
	t0 = now_s();
	while (agentsup_wire_decode((const uint8_t *)s.data + used,
	                            s.size - used, AGENTSUP_MAX_FRAME, &zone,
	                            &f) == AGENTSUP_WIRE_OK) {
		got++;
		used += f.size;
		msgpack_zone_clear(&zone);
	}
	bench_report("decode, one buffer", got, now_s() - t0);
	bench_reader("reader, 16 KiB pieces", &s, &zone, bench_count);
	bench_reader("reader + field checks", &s, &zone, bench_checked);
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&s);
	return 0;
}
