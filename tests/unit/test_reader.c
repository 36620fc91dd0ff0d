/*
 * test_reader.c - the one frame reader over real sockets: frames split at
 * every byte, many frames in one read, a limit lowered or raised while a
 * split frame is held (the heap overflows of issue 9), hostile headers, EOF
 * mid-frame, and what an idle reader holds (nothing).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "agentsup/wire.h"

struct got {
	uint64_t seqs[1024];
	size_t datalen[1024];
	size_t n;
	size_t stop_at; /* stop after this many frames; 0: never */
};

struct fixture {
	int sv[2]; /* [0] the reader's end, [1] the writer's */
	msgpack_zone zone;
	struct agentsup_reader r;
	struct got got;
	msgpack_sbuffer sb;
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof *fx);

	if (fx == NULL ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fx->sv) < 0 ||
	    !msgpack_zone_init(&fx->zone, 1024))
		return -1;
	agentsup_reader_init(&fx->r);
	msgpack_sbuffer_init(&fx->sb);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	close(fx->sv[0]);
	if (fx->sv[1] >= 0)
		close(fx->sv[1]);
	msgpack_zone_destroy(&fx->zone);
	agentsup_reader_free(&fx->r);
	msgpack_sbuffer_destroy(&fx->sb);
	free(fx);
	return 0;
}

static int
collect(void *arg, const struct agentsup_frame *f)
{
	struct got *g = arg;
	const msgpack_object *seq = agentsup_wire_get(&f->map, "seq");
	const msgpack_object *data = agentsup_wire_get(&f->map, "data");

	assert_true(g->n < 1024);
	assert_non_null(seq);
	g->seqs[g->n] = seq->via.u64;
	g->datalen[g->n] = data ? data->via.bin.size : 0;
	/* the payload arrived intact */
	for (size_t i = 0; data && i < data->via.bin.size; i++)
		assert_int_equal((uint8_t)data->via.bin.ptr[i], (uint8_t)i);
	g->n++;
	return g->stop_at != 0 && g->n == g->stop_at;
}

/* Append a checkpoint-like frame {t, seq, data: datalen bytes} to sb. */
static void
add_frame(msgpack_sbuffer *out, uint64_t seq, size_t datalen)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char *data = malloc(datalen + 1);

	for (size_t i = 0; i < datalen; i++)
		data[i] = (char)(uint8_t)i;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	agentsup_wire_begin(&sb);
	msgpack_pack_map(&pk, datalen ? 3 : 2);
	agentsup_wire_kv_str(&pk, "t", "checkpoint");
	agentsup_wire_kv_uint(&pk, "seq", seq);
	if (datalen) {
		agentsup_wire_pack_str(&pk, "data");
		msgpack_pack_bin(&pk, datalen);
		msgpack_pack_bin_body(&pk, data, datalen);
	}
	assert_int_equal(agentsup_wire_end(&sb, 16u << 20), 0);
	msgpack_sbuffer_write(out, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	free(data);
}

static void
put(struct fixture *fx, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = send(fx->sv[1], c, n, MSG_NOSIGNAL);
		assert_true(w > 0);
		c += w;
		n -= (size_t)w;
	}
}

static int
rd(struct fixture *fx, size_t max)
{
	return agentsup_reader_read(&fx->r, fx->sv[0], max, &fx->zone, collect,
	                            &fx->got);
}

/* Read until nothing waits; the last non-positive result. */
static int
drain(struct fixture *fx, size_t max)
{
	int r;

	while ((r = rd(fx, max)) > 0)
		;
	return r;
}

/* Three frames written in two pieces, cut at every byte. */
static void
test_split_at_every_byte(void **state)
{
	struct fixture *fx = *state;
	msgpack_sbuffer s;

	msgpack_sbuffer_init(&s);
	add_frame(&s, 1, 0);
	add_frame(&s, 2, 40);
	add_frame(&s, 3, 5);
	for (size_t cut = 0; cut <= s.size; cut++) {
		fx->got.n = 0;
		put(fx, s.data, cut);
		assert_int_equal(drain(fx, 4096), AGENTSUP_READ_AGAIN);
		put(fx, s.data + cut, s.size - cut);
		assert_int_equal(drain(fx, 4096), AGENTSUP_READ_AGAIN);
		assert_int_equal(fx->got.n, 3);
		for (int i = 0; i < 3; i++)
			assert_int_equal(fx->got.seqs[i], i + 1);
		assert_int_equal(agentsup_reader_pending(&fx->r), 0);
		assert_null(fx->r.part);
	}
	/* and one byte per read */
	fx->got.n = 0;
	for (size_t i = 0; i < s.size; i++) {
		put(fx, s.data + i, 1);
		assert_int_equal(rd(fx, 4096), 1);
	}
	assert_int_equal(fx->got.n, 3);
	assert_int_equal(fx->got.datalen[1], 40);
	msgpack_sbuffer_destroy(&s);
}

static void
test_many_frames_in_one_read(void **state)
{
	struct fixture *fx = *state;
	msgpack_sbuffer s;

	msgpack_sbuffer_init(&s);
	for (uint64_t i = 0; i < 500; i++)
		add_frame(&s, i, 0);
	assert_true(s.size < AGENTSUP_READ_CHUNK);
	put(fx, s.data, s.size);
	assert_int_equal(rd(fx, 64), (int)s.size);
	assert_int_equal(fx->got.n, 500);
	assert_int_equal(fx->got.seqs[499], 499);
	assert_null(fx->r.part); /* nothing held, nothing allocated */
	assert_int_equal(fx->r.partcap, 0);
	msgpack_sbuffer_destroy(&s);
}

/* Issue 9, defect 3: the limit is lowered while a split frame is held. The
 * held frame is now over the limit: refused, and nothing overflows. */
static void
test_limit_lowered_while_split(void **state)
{
	struct fixture *fx = *state;
	msgpack_sbuffer s;

	msgpack_sbuffer_init(&s);
	add_frame(&s, 1, 1000);
	put(fx, s.data, 100);
	assert_int_equal(drain(fx, 4096), AGENTSUP_READ_AGAIN);
	assert_int_equal(agentsup_reader_pending(&fx->r), 100);
	put(fx, s.data + 100, s.size - 100);
	assert_int_equal(rd(fx, 512), AGENTSUP_WIRE_TOO_LONG);
	assert_int_equal(fx->got.n, 0);
	assert_int_equal(agentsup_reader_pending(&fx->r), 0);
	/* a split header, then a lower limit */
	agentsup_reader_free(&fx->r);
	static const uint8_t hdr[] = {0, 0, 0x10, 0};
	assert_int_equal(agentsup_reader_feed(&fx->r, hdr, 2, 8192, &fx->zone,
	                                      collect, &fx->got),
	                 0);
	assert_int_equal(agentsup_reader_feed(&fx->r, hdr + 2, 2, 100,
	                                      &fx->zone, collect, &fx->got),
	                 AGENTSUP_WIRE_TOO_LONG);
	msgpack_sbuffer_destroy(&s);
}

/* Issue 9, defect 2: the limit is raised while a split frame is held; the
 * frame completes, and a frame larger than the old limit follows. */
static void
test_limit_raised_while_split(void **state)
{
	struct fixture *fx = *state;
	msgpack_sbuffer s;
	size_t first;

	msgpack_sbuffer_init(&s);
	add_frame(&s, 1, 50);
	first = s.size;
	add_frame(&s, 2, 100000);
	put(fx, s.data, 20);
	assert_int_equal(drain(fx, 100), AGENTSUP_READ_AGAIN);
	put(fx, s.data + 20, 1000); /* the rest of one, part of two */
	assert_int_equal(drain(fx, 1u << 20), AGENTSUP_READ_AGAIN);
	assert_int_equal(fx->got.n, 1);
	assert_int_equal(agentsup_reader_pending(&fx->r), 1020 - first);
	assert_true(fx->r.partcap < 2048); /* grown with what arrived */
	put(fx, s.data + 1020, s.size - 1020);
	assert_int_equal(drain(fx, 1u << 20), AGENTSUP_READ_AGAIN);
	assert_int_equal(fx->got.n, 2);
	assert_int_equal(fx->got.datalen[1], 100000);
	assert_null(fx->r.part);
	msgpack_sbuffer_destroy(&s);
}

static void
test_oversize_header(void **state)
{
	struct fixture *fx = *state;
	static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0x80};
	static const uint8_t over[] = {0, 0, 1, 1}; /* 257 > 256 */

	put(fx, huge, sizeof huge);
	assert_int_equal(rd(fx, AGENTSUP_MAX_FRAME), AGENTSUP_WIRE_TOO_LONG);
	assert_null(fx->r.part);
	assert_int_equal(agentsup_reader_feed(&fx->r, over, 4, 256, &fx->zone,
	                                      collect, &fx->got),
	                 AGENTSUP_WIRE_TOO_LONG);
	assert_int_equal(agentsup_reader_feed(&fx->r, over, 4, 257, &fx->zone,
	                                      collect, &fx->got),
	                 0);
	assert_int_equal(agentsup_reader_pending(&fx->r), 4);
}

static void
test_eof_mid_frame(void **state)
{
	struct fixture *fx = *state;
	msgpack_sbuffer s;
	size_t first;

	msgpack_sbuffer_init(&s);
	add_frame(&s, 1, 0);
	first = s.size;
	add_frame(&s, 2, 300);
	put(fx, s.data, s.size - 1);
	close(fx->sv[1]);
	fx->sv[1] = -1;
	assert_int_equal(drain(fx, 4096), 0);
	assert_int_equal(fx->got.n, 1);
	assert_int_equal(agentsup_reader_pending(&fx->r), s.size - 1 - first);
	msgpack_sbuffer_destroy(&s);
}

static void
test_zero_length_frame(void **state)
{
	struct fixture *fx = *state;
	static const uint8_t zero[] = {0, 0, 0, 0};

	put(fx, zero, 2);
	assert_int_equal(rd(fx, 4096), 2);
	put(fx, zero + 2, 2);
	assert_int_equal(rd(fx, 4096), AGENTSUP_WIRE_NOT_MAP);
	put(fx, zero, 4);
	assert_int_equal(rd(fx, 4096), AGENTSUP_WIRE_NOT_MAP);
}

/* A bad frame after good ones in the same read: the good ones are handed
 * over, then the error. */
static void
test_bad_frame_after_good(void **state)
{
	struct fixture *fx = *state;
	msgpack_sbuffer s;
	static const uint8_t bad[] = {0, 0, 0, 4, 0x81, 0xa1, 0x74, 0xc1};

	msgpack_sbuffer_init(&s);
	add_frame(&s, 7, 0);
	msgpack_sbuffer_write(&s, (const char *)bad, sizeof bad);
	put(fx, s.data, s.size);
	assert_int_equal(rd(fx, 4096), AGENTSUP_WIRE_INVALID);
	assert_int_equal(fx->got.n, 1);
	msgpack_sbuffer_destroy(&s);
}

static void
test_callback_stops(void **state)
{
	struct fixture *fx = *state;
	msgpack_sbuffer s;

	msgpack_sbuffer_init(&s);
	for (int i = 0; i < 5; i++)
		add_frame(&s, (uint64_t)i, 0);
	fx->got.stop_at = 2;
	put(fx, s.data, s.size);
	assert_int_equal(rd(fx, 4096), AGENTSUP_READ_STOPPED);
	assert_int_equal(fx->got.n, 2);
	msgpack_sbuffer_destroy(&s);
}

static void
test_errors(void **state)
{
	struct fixture *fx = *state;
	int fd[2];

	assert_int_equal(rd(fx, 4096), AGENTSUP_READ_AGAIN);
	assert_int_equal(agentsup_reader_read(&fx->r, -1, 4096, &fx->zone,
	                                      collect, &fx->got),
	                 AGENTSUP_READ_ERRNO);
	assert_int_equal(errno, EBADF);
	assert_int_equal(pipe(fd), 0); /* not a socket */
	assert_int_equal(agentsup_reader_read(&fx->r, fd[0], 4096, &fx->zone,
	                                      collect, &fx->got),
	                 AGENTSUP_READ_ERRNO);
	assert_int_equal(errno, ENOTSOCK);
	assert_string_equal(agentsup_wire_strerror(AGENTSUP_READ_ERRNO),
	                    strerror(ENOTSOCK));
	close(fd[0]);
	close(fd[1]);
}

/* A 256 KiB checkpoint across many reads, under a limit that allows it. */
static void
test_large_frame(void **state)
{
	struct fixture *fx = *state;
	msgpack_sbuffer s;
	size_t at = 0;

	msgpack_sbuffer_init(&s);
	add_frame(&s, 9, 256 * 1024);
	while (at < s.size) {
		size_t n = s.size - at < 7000 ? s.size - at : 7000;
		put(fx, s.data + at, n);
		at += n;
		assert_true(drain(fx, 300 * 1024) == AGENTSUP_READ_AGAIN);
		assert_true(fx->r.partcap <= s.size);
	}
	assert_int_equal(fx->got.n, 1);
	assert_int_equal(fx->got.datalen[0], 256 * 1024);
	msgpack_sbuffer_destroy(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	        T(test_split_at_every_byte),
	        T(test_many_frames_in_one_read),
	        T(test_limit_lowered_while_split),
	        T(test_limit_raised_while_split),
	        T(test_oversize_header),
	        T(test_eof_mid_frame),
	        T(test_zero_length_frame),
	        T(test_bad_frame_after_good),
	        T(test_callback_stops),
	        T(test_errors),
	        T(test_large_frame),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
