/*
 * test_chanread.c - a channel's reads with the heartbeat fast path
 * (chanread.c): a bare {t: hb, seq} in every packing of seq is a beat and
 * only that; every other frame, one before hello, one split across reads,
 * one packed otherwise or lying about its length goes through the reader,
 * in the order the frames came.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "chanread.h"

#define MAX_FRAME 65536

struct fx {
	int sv[2];
	msgpack_zone zone;
	struct agentsup_reader r;
	char order[64]; /* 'B' a bare beat, else the frame's type's first */
	size_t n;
};

static int
on_hb(void *arg)
{
	struct fx *f = arg;

	f->order[f->n++] = 'B';
	return 0;
}

static int
on_frame(void *arg, const struct agentsup_frame *fr)
{
	struct fx *f = arg;

	f->order[f->n++] = fr->type_len > 0 ? fr->type[0] : '?';
	return 0;
}

static int
setup(void **state)
{
	static struct fx f;

	memset(&f, 0, sizeof f);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f.sv) < 0 ||
	    !msgpack_zone_init(&f.zone, 1024))
		return -1;
	agentsup_reader_init(&f.r);
	*state = &f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	close(f->sv[0]);
	close(f->sv[1]);
	msgpack_zone_destroy(&f->zone);
	agentsup_reader_free(&f->r);
	return 0;
}

/* A frame of the body's bytes, with its header, sent whole. */
static void
put(struct fx *f, const uint8_t *body, size_t n)
{
	uint8_t h[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16),
	                (uint8_t)(n >> 8), (uint8_t)n};

	assert_int_equal(write(f->sv[1], h, 4), 4);
	assert_int_equal(write(f->sv[1], body, n), (ssize_t)n);
}

#define HB 0x82, 0xa1, 't', 0xa2, 'h', 'b', 0xa3, 's', 'e', 'q'

static const uint8_t hb_fix[] = {HB, 0x05};
static const uint8_t hb_u8[] = {HB, 0xcc, 200};
static const uint8_t hb_u16[] = {HB, 0xcd, 1, 0};
static const uint8_t hb_u32[] = {HB, 0xce, 1, 0, 0, 0};
static const uint8_t hb_u64[] = {HB, 0xcf, 1, 0, 0, 0, 0, 0, 0, 0};
static const uint8_t hb_status[] = {0x83, 0xa1, 't', 0xa2, 'h',  'b', 0xa3,
                                    's',  'e',  'q', 0x01, 0xa6, 's', 't',
                                    'a',  't',  'u', 's',  0xa1, 'x'};
static const uint8_t hb_seq_first[] = {0x82, 0xa3, 's',  'e', 'q', 0x01,
                                       0xa1, 't',  0xa2, 'h', 'b'};
static const uint8_t ready[] = {0x81, 0xa1, 't', 0xa5, 'r', 'e', 'a', 'd', 'y'};

static int
read_all(struct fx *f, bool bare, size_t max_frame)
{
	return chanread_recv(&f->r, f->sv[0], max_frame, &f->zone, bare, on_hb,
	                     on_frame, f);
}

static void
test_every_packing_of_seq_is_a_beat(void **state)
{
	struct fx *f = *state;

	put(f, hb_fix, sizeof hb_fix);
	put(f, hb_u8, sizeof hb_u8);
	put(f, hb_u16, sizeof hb_u16);
	put(f, hb_u32, sizeof hb_u32);
	put(f, hb_u64, sizeof hb_u64);
	assert_true(read_all(f, true, MAX_FRAME) > 0);
	assert_string_equal(f->order, "BBBBB");
}

static void
test_before_hello_every_frame_is_decoded(void **state)
{
	struct fx *f = *state;

	put(f, hb_fix, sizeof hb_fix);
	put(f, hb_u64, sizeof hb_u64);
	assert_true(read_all(f, false, MAX_FRAME) > 0);
	assert_string_equal(f->order, "hh");
}

static void
test_other_frames_in_order(void **state)
{
	struct fx *f = *state;

	put(f, hb_fix, sizeof hb_fix);
	put(f, hb_status, sizeof hb_status);
	put(f, hb_u8, sizeof hb_u8);
	put(f, ready, sizeof ready);
	put(f, hb_seq_first, sizeof hb_seq_first);
	put(f, hb_fix, sizeof hb_fix);
	assert_true(read_all(f, true, MAX_FRAME) > 0);
	assert_string_equal(f->order, "BhBrhB");
}

static void
test_split_frame_goes_through_the_reader(void **state)
{
	struct fx *f = *state;
	uint8_t h[4] = {0, 0, 0, sizeof hb_fix};

	assert_int_equal(write(f->sv[1], h, 4), 4);
	assert_int_equal(write(f->sv[1], hb_fix, 3), 3);
	assert_int_equal(read_all(f, true, MAX_FRAME), 7);
	assert_int_equal(f->n, 0);
	assert_int_equal(write(f->sv[1], hb_fix + 3, sizeof hb_fix - 3),
	                 (ssize_t)sizeof hb_fix - 3);
	put(f, hb_fix, sizeof hb_fix);
	assert_true(read_all(f, true, MAX_FRAME) > 0);
	assert_string_equal(f->order, "hh"); /* the rest of that read too */
	put(f, hb_fix, sizeof hb_fix);
	assert_true(read_all(f, true, MAX_FRAME) > 0);
	assert_string_equal(f->order, "hhB");
}

/* A frame whose body is a bare beat and one more byte is no beat: the
 * reader refuses it (bytes after the map). */
static void
test_a_longer_frame_is_no_beat(void **state)
{
	struct fx *f = *state;
	uint8_t body[sizeof hb_fix + 1];

	memcpy(body, hb_fix, sizeof hb_fix);
	body[sizeof hb_fix] = 0xc0;
	put(f, body, sizeof body);
	assert_int_equal(read_all(f, true, MAX_FRAME), AGENTSUP_WIRE_TRAILING);
	assert_int_equal(f->n, 0);
}

/* A frame that ends after "seq", its value missing: whatever byte follows
 * in the read is no seq (the fuzzer found this one). */
static void
test_a_frame_without_its_seq_is_no_beat(void **state)
{
	struct fx *f = *state;
	const uint8_t head[] = {HB};

	const uint8_t after = 0x84; /* no msgpack unsigned integer */

	put(f, head, sizeof head);
	assert_int_equal(write(f->sv[1], &after, 1), 1);
	assert_true(read_all(f, true, MAX_FRAME) < 0);
	assert_int_equal(f->n, 0);
}

static void
test_over_the_limit_is_refused(void **state)
{
	struct fx *f = *state;

	put(f, hb_u64, sizeof hb_u64);
	assert_int_equal(read_all(f, true, sizeof hb_u64 - 1),
	                 AGENTSUP_WIRE_TOO_LONG);
	assert_int_equal(f->n, 0);
}

static void
test_bare_hb_sizes(void **state)
{
	uint8_t buf[64] = {0, 0, 0, sizeof hb_u16};

	(void)state;
	memcpy(buf + 4, hb_u16, sizeof hb_u16);
	assert_int_equal(chanread_bare_hb(buf, 4 + sizeof hb_u16, MAX_FRAME),
	                 4 + sizeof hb_u16);
	/* not whole yet */
	assert_int_equal(
	        chanread_bare_hb(buf, 4 + sizeof hb_u16 - 1, MAX_FRAME), 0);
	/* a negative fixint, a float: not an unsigned seq */
	buf[3] = sizeof hb_fix;
	memcpy(buf + 4, hb_fix, sizeof hb_fix);
	buf[4 + sizeof hb_fix - 1] = 0xff;
	assert_int_equal(chanread_bare_hb(buf, 4 + sizeof hb_fix, MAX_FRAME),
	                 0);
	buf[4 + sizeof hb_fix - 1] = 0xca;
	assert_int_equal(chanread_bare_hb(buf, 4 + sizeof hb_fix, MAX_FRAME),
	                 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(
	                test_every_packing_of_seq_is_a_beat, setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_before_hello_every_frame_is_decoded, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(test_other_frames_in_order,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_split_frame_goes_through_the_reader, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(test_a_longer_frame_is_no_beat,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_a_frame_without_its_seq_is_no_beat, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(test_over_the_limit_is_refused,
	                                        setup, teardown),
	        cmocka_unit_test(test_bare_hb_sizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
