/*
 * test_wire.c - the frame codec: round trips, any split of the stream, and
 * every kind of hostile frame.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agentsup/wire.h"

static msgpack_zone zone;

static int
setup(void **state)
{
	(void)state;
	return msgpack_zone_init(&zone, 1024) ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	msgpack_zone_destroy(&zone);
	return 0;
}

/* A frame around raw body bytes. */
static size_t
frame(uint8_t *out, const uint8_t *body, size_t n)
{
	out[0] = (uint8_t)(n >> 24);
	out[1] = (uint8_t)(n >> 16);
	out[2] = (uint8_t)(n >> 8);
	out[3] = (uint8_t)n;
	memcpy(out + 4, body, n);
	return n + 4;
}

static int
decode(const uint8_t *buf, size_t len, struct agentsup_frame *f)
{
	msgpack_zone_clear(&zone);
	return agentsup_wire_decode(buf, len, AGENTSUP_MAX_FRAME, &zone, f);
}

/* An hb frame with progress, built with the encoder. */
static void
make_hb(msgpack_sbuffer *sb, uint64_t seq)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	agentsup_wire_begin(sb);
	msgpack_pack_map(&pk, 3);
	agentsup_wire_kv_str(&pk, "t", "hb");
	agentsup_wire_kv_uint(&pk, "seq", seq);
	agentsup_wire_pack_str(&pk, "progress");
	msgpack_pack_map(&pk, 2);
	agentsup_wire_kv_uint(&pk, "steps", 42);
	agentsup_wire_kv_str(&pk, "state", "thinking");
	assert_int_equal(agentsup_wire_end(sb, AGENTSUP_MAX_FRAME), 0);
}

static void
test_round_trip(void **state)
{
	msgpack_sbuffer sb;
	struct agentsup_frame f;
	const msgpack_object *seq, *prog, *steps;

	(void)state;
	msgpack_sbuffer_init(&sb);
	make_hb(&sb, 7);
	assert_int_equal(decode((uint8_t *)sb.data, sb.size, &f), 0);
	assert_int_equal(f.size, sb.size);
	assert_true(agentsup_wire_is(&f, "hb"));
	assert_false(agentsup_wire_is(&f, "h"));
	seq = agentsup_wire_get(&f.map, "seq");
	assert_non_null(seq);
	assert_int_equal(seq->via.u64, 7);
	prog = agentsup_wire_get(&f.map, "progress");
	steps = agentsup_wire_get(prog, "steps");
	assert_int_equal(steps->via.u64, 42);
	assert_null(agentsup_wire_get(&f.map, "absent"));
	msgpack_sbuffer_destroy(&sb);
}

/* Every split point of a two-frame stream yields the same two messages. */
static void
test_any_split(void **state)
{
	msgpack_sbuffer sb;
	uint8_t stream[512], acc[512];
	size_t len;

	(void)state;
	msgpack_sbuffer_init(&sb);
	make_hb(&sb, 1);
	memcpy(stream, sb.data, sb.size);
	len = sb.size;
	make_hb(&sb, 2);
	memcpy(stream + len, sb.data, sb.size);
	len += sb.size;
	for (size_t cut = 0; cut <= len; cut++) {
		uint64_t seqs[2];
		size_t n = 0, have = 0, used = 0;
		struct agentsup_frame f;
		/* feed in two reads: [0, cut) then [cut, len) */
		for (int part = 0; part < 2; part++) {
			size_t from = part ? cut : 0, to = part ? len : cut;
			memcpy(acc + have, stream + from, to - from);
			have += to - from;
			int r;
			while ((r = decode(acc + used, have - used, &f)) == 0) {
				seqs[n++] = agentsup_wire_get(&f.map, "seq")
				                    ->via.u64;
				used += f.size;
			}
			assert_int_equal(r, AGENTSUP_WIRE_MORE);
		}
		assert_int_equal(n, 2);
		assert_int_equal(seqs[0], 1);
		assert_int_equal(seqs[1], 2);
	}
	msgpack_sbuffer_destroy(&sb);
}

static void
expect_body(const uint8_t *body, size_t n, int want)
{
	uint8_t buf[256];
	struct agentsup_frame f;

	assert_int_equal(decode(buf, frame(buf, body, n), &f), want);
}

static void
test_too_long(void **state)
{
	uint8_t hdr[4] = {0, 1, 0, 1}; /* 65537 > 64 KiB */
	struct agentsup_frame f;

	(void)state;
	assert_int_equal(decode(hdr, 4, &f), AGENTSUP_WIRE_TOO_LONG);
	hdr[0] = 0xff; /* 4 GiB: refused from the header alone */
	assert_int_equal(decode(hdr, 4, &f), AGENTSUP_WIRE_TOO_LONG);
	hdr[0] = 0;
	hdr[1] = 0; /* 257 bytes claimed, 0 here: just incomplete */
	assert_int_equal(decode(hdr, 4, &f), AGENTSUP_WIRE_MORE);
	assert_int_equal(decode(hdr, 3, &f), AGENTSUP_WIRE_MORE);
}

static void
test_not_map(void **state)
{
	static const uint8_t arr[] = {0x91, 0x01};
	static const uint8_t str[] = {0xa1, 't'};

	(void)state;
	expect_body(arr, sizeof arr, AGENTSUP_WIRE_NOT_MAP);
	expect_body(str, sizeof str, AGENTSUP_WIRE_NOT_MAP);
	expect_body(arr, 0, AGENTSUP_WIRE_NOT_MAP); /* empty body */
}

static void
test_truncated_and_trailing(void **state)
{
	/* {"t": "hb"} is 81 a1 74 a2 68 62 */
	static const uint8_t ok[] = {0x81, 0xa1, 't', 0xa2, 'h', 'b'};
	static const uint8_t cut[] = {0x81, 0xa1, 't', 0xa2, 'h'};
	static const uint8_t trail[] = {0x81, 0xa1, 't', 0xa2, 'h', 'b', 0xc0};
	static const uint8_t two[] = {0x81, 0xa1, 't', 0xa2, 'h', 'b', 0x80};

	(void)state;
	expect_body(ok, sizeof ok, AGENTSUP_WIRE_OK);
	expect_body(cut, sizeof cut, AGENTSUP_WIRE_TRUNCATED);
	expect_body(trail, sizeof trail, AGENTSUP_WIRE_TRAILING);
	expect_body(two, sizeof two, AGENTSUP_WIRE_TRAILING);
}

static void
test_no_type(void **state)
{
	static const uint8_t empty[] = {0x80};
	static const uint8_t notstr[] = {0x81, 0xa1, 't', 0x05};
	static const uint8_t other[] = {0x81, 0xa1, 'x', 0xa1, 'y'};

	(void)state;
	expect_body(empty, sizeof empty, AGENTSUP_WIRE_NO_TYPE);
	expect_body(notstr, sizeof notstr, AGENTSUP_WIRE_NO_TYPE);
	expect_body(other, sizeof other, AGENTSUP_WIRE_NO_TYPE);
}

/* A 5-byte body claiming 2^32-1 map entries is refused before msgpack-c
 * could reserve room for them. */
static void
test_claims_refused_before_allocating(void **state)
{
	static const uint8_t bigmap[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t bigarr[] = {0x81, 0xa1, 'x',  0xdd,
	                                 0xff, 0xff, 0xff, 0xff};
	static const uint8_t bigstr[] = {0x81, 0xa1, 't',  0xdb,
	                                 0x7f, 0xff, 0xff, 0xff};
	static const uint8_t bigbin[] = {0x81, 0xa1, 'x', 0xc6, 0, 0, 1, 0};
	static const uint8_t bigext[] = {0x81, 0xa1, 'x', 0xc9, 0, 0, 1, 0, 1};
	static const uint8_t map16[] = {0xde, 0x00, 0x03, 0xa1, 't', 0xa1, 'x'};

	(void)state;
	expect_body(bigmap, sizeof bigmap, AGENTSUP_WIRE_CLAIM);
	expect_body(bigarr, sizeof bigarr, AGENTSUP_WIRE_CLAIM);
	expect_body(bigstr, sizeof bigstr, AGENTSUP_WIRE_TRUNCATED);
	expect_body(bigbin, sizeof bigbin, AGENTSUP_WIRE_TRUNCATED);
	expect_body(bigext, sizeof bigext, AGENTSUP_WIRE_TRUNCATED);
	expect_body(map16, sizeof map16, AGENTSUP_WIRE_CLAIM);
}

static void
test_depth(void **state)
{
	uint8_t body[64];
	size_t n = 0;

	(void)state;
	/* {"t": "x", "d": [[[[...]]]]} nested past the limit */
	body[n++] = 0x82;
	body[n++] = 0xa1;
	body[n++] = 't';
	body[n++] = 0xa1;
	body[n++] = 'x';
	body[n++] = 0xa1;
	body[n++] = 'd';
	for (int i = 0; i < AGENTSUP_MAX_DEPTH + 1; i++)
		body[n++] = 0x91;
	body[n++] = 0xc0;
	expect_body(body, n, AGENTSUP_WIRE_DEPTH);
	/* at the limit it is fine */
	n = 7;
	for (int i = 0; i < AGENTSUP_MAX_DEPTH - 1; i++)
		body[n++] = 0x91;
	body[n++] = 0xc0;
	expect_body(body, n, AGENTSUP_WIRE_OK);
}

static void
test_invalid_byte(void **state)
{
	static const uint8_t bad[] = {0x81, 0xa1, 't', 0xc1};

	(void)state;
	expect_body(bad, sizeof bad, AGENTSUP_WIRE_INVALID);
}

static void
test_all_scalar_types(void **state)
{
	/* {"t":"x", ints, float, nil, bool, bin, ext, fixext} all well formed
	 */
	static const uint8_t body[] = {
	        0x8a, 0xa1, 't',  0xa1, 'x',  0x00, 0xcc, 0xff, 0x01, 0xcd,
	        0xff, 0xff, 0x02, 0xcb, 0,    0,    0,    0,    0,    0,
	        0,    0,    0x03, 0xc0, 0x04, 0xc3, 0x05, 0xc4, 0x02, 'a',
	        'b',  0x06, 0xc7, 0x01, 0x05, 'z',  0x07, 0xd4, 0x01, 0x02,
	        0x08, 0xd3, 0,    0,    0,    0,    0,    0,    0,    1};

	(void)state;
	expect_body(body, sizeof body, AGENTSUP_WIRE_OK);
	for (size_t cut = 1; cut < sizeof body; cut++)
		assert_int_not_equal(agentsup_wire_check(body, cut),
		                     AGENTSUP_WIRE_OK);
}

static void
test_encoder_limit(void **state)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char big[2048];

	(void)state;
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	agentsup_wire_begin(&sb);
	msgpack_pack_map(&pk, 2);
	agentsup_wire_kv_str(&pk, "t", "hb");
	agentsup_wire_kv_str(&pk, "status", big);
	assert_int_equal(agentsup_wire_end(&sb, 1024), -1);
	assert_int_equal(agentsup_wire_end(&sb, AGENTSUP_MAX_FRAME), 0);
	msgpack_sbuffer_destroy(&sb);
	assert_string_equal(agentsup_wire_strerror(AGENTSUP_WIRE_CLAIM),
	                    "container claims more elements than the frame "
	                    "holds");
}

/* Objects for the field checks, built by hand. */
#define OBJ(tp, field, v) ((msgpack_object){.type = tp, .via.field = v})
#define U(v)              OBJ(MSGPACK_OBJECT_POSITIVE_INTEGER, u64, v)
#define NEG(v)            OBJ(MSGPACK_OBJECT_NEGATIVE_INTEGER, i64, v)
#define D(v)              OBJ(MSGPACK_OBJECT_FLOAT64, f64, v)
#define BOOL(v)           OBJ(MSGPACK_OBJECT_BOOLEAN, boolean, v)
#define NIL               ((msgpack_object){.type = MSGPACK_OBJECT_NIL})
#define S(s)                                                                   \
	((msgpack_object){.type = MSGPACK_OBJECT_STR,                          \
	                  .via.str = {sizeof(s) - 1, s}})
#define BIN(s)                                                                 \
	((msgpack_object){.type = MSGPACK_OBJECT_BIN,                          \
	                  .via.bin = {sizeof(s) - 1, s}})
#define ARR(a)                                                                 \
	((msgpack_object){.type = MSGPACK_OBJECT_ARRAY,                        \
	                  .via.array = {sizeof(a) / sizeof(a[0]), a}})
#define MAP(m)                                                                 \
	((msgpack_object){.type = MSGPACK_OBJECT_MAP,                          \
	                  .via.map = {sizeof(m) / sizeof(m[0]), m}})

struct fcase {
	const char *t;
	const char *k1, *k2; /* NULL: absent */
	msgpack_object v1, v2;
	int ok;
};

static int
check_case(const struct fcase *c, const char **why)
{
	msgpack_object_kv kv[3] = {{S("t"), {0}}};
	struct agentsup_frame f = {0};
	uint32_t n = 1;

	kv[0].val.type = MSGPACK_OBJECT_STR;
	kv[0].val.via.str.ptr = c->t;
	kv[0].val.via.str.size = (uint32_t)strlen(c->t);
	if (c->k1) {
		kv[n].key.type = MSGPACK_OBJECT_STR;
		kv[n].key.via.str.ptr = c->k1;
		kv[n].key.via.str.size = (uint32_t)strlen(c->k1);
		kv[n++].val = c->v1;
	}
	if (c->k2) {
		kv[n].key.type = MSGPACK_OBJECT_STR;
		kv[n].key.via.str.ptr = c->k2;
		kv[n].key.via.str.size = (uint32_t)strlen(c->k2);
		kv[n++].val = c->v2;
	}
	f.map.type = MSGPACK_OBJECT_MAP;
	f.map.via.map.size = n;
	f.map.via.map.ptr = kv;
	f.type = c->t;
	f.type_len = strlen(c->t);
	return agentsup_wire_check_fields(&f, why);
}

/* Issue 10, item 7: a known field of the wrong type is refused; unknown
 * keys and types pass. */
static void
test_field_types(void **state)
{
	msgpack_object strs[] = {S("a"), S("b")}, mixed[] = {S("a"), U(1)};
	msgpack_object_kv env[] = {{S("K"), S("v")}};
	msgpack_object_kv badenv[] = {{S("K"), U(1)}};
	msgpack_object_kv prog[] = {{S("steps"), U(3)}, {S("cost"), D(0.5)}};
	msgpack_object_kv nan[] = {{S("cost"), D(NAN)}};
	msgpack_object_kv inf[] = {{S("cost"), D(INFINITY)}};
	msgpack_object_kv negcost[] = {{S("cost"), D(-1)}};
	msgpack_object_kv strsteps[] = {{S("steps"), S("3")}};
	const struct fcase cases[] = {
	        {"hello", "v", "pid", U(1), U(42), 1},
	        {"hello", "v", "pid", U(1), S("42"), 0},
	        {"hello", "v", "pid", U(1), NEG(-1), 0},
	        {"hello", "v", "lang", U(1), U(3), 0},
	        {"hello", "v", "lang", U(1), S("c"), 1},
	        {"hello", "pid", NULL, U(1), NIL, 0}, /* no v */
	        {"hello", "v", NULL, S("1"), NIL, 0},
	        {"hello", "v", "pid", U(1), NIL, 0}, /* nil is not absent */
	        {"hb", NULL, NULL, NIL, NIL, 1},
	        {"hb", "seq", "status", U(1), S("ok"), 1},
	        {"hb", "seq", NULL, D(1), NIL, 0},
	        {"hb", "status", NULL, U(1), NIL, 0},
	        {"hb", "progress", NULL, MAP(prog), NIL, 1},
	        {"hb", "progress", NULL, S("x"), NIL, 0},
	        {"hb", "progress", NULL, MAP(nan), NIL, 0},
	        {"hb", "progress", NULL, MAP(inf), NIL, 0},
	        {"hb", "progress", NULL, MAP(negcost), NIL, 0},
	        {"hb", "progress", NULL, MAP(strsteps), NIL, 0},
	        {"exit", "reason", "retry_after_ms", S("rate_limited"), U(5),
	         1},
	        {"exit", "reason", "retry_after_ms", S("rate_limited"), D(5),
	         0},
	        {"exit", "detail", NULL, S("x"), NIL, 0},
	        {"exit", "reason", "detail", S("done"), BIN("x"), 0},
	        {"extend", "ms", NULL, U(1000), NIL, 1},
	        {"extend", "ms", NULL, NEG(-5), NIL, 0},
	        {"extend", NULL, NULL, NIL, NIL, 0},
	        {"checkpoint", "seq", "data", U(1), BIN("xy"), 1},
	        {"checkpoint", "seq", "data", U(1), S("xy"), 0},
	        {"checkpoint", "data", NULL, BIN("xy"), NIL, 0},
	        {"result", "data", NULL, S("done"), NIL, 1},
	        {"result", "data", NULL, BIN("done"), NIL, 1},
	        {"result", "data", NULL, U(1), NIL, 0},
	        {"spawn", "sup", "args", S("pool"), ARR(strs), 1},
	        {"spawn", "sup", "args", S("pool"), ARR(mixed), 0},
	        {"spawn", "sup", "env", S("pool"), MAP(env), 1},
	        {"spawn", "sup", "env", S("pool"), MAP(badenv), 0},
	        {"spawn", "key", NULL, S("k"), NIL, 0},
	        {"req", "id", "cmd", U(1), S("status"), 1},
	        {"req", "id", "cmd", S("1"), S("status"), 0},
	        {"welcome", "restarts", "checkpoint", U(2), BIN("c"), 1},
	        {"welcome", "checkpoint_seq", "last_reason", U(2), U(1), 0},
	        {"nudge", "reason", "idle_ms", S("stall"), U(9), 1},
	        {"spawned", "ok", "count", BOOL(false), U(9), 1},
	        {"spawned", "ok", NULL, U(1), NIL, 0},
	        {"drain", "deadline_ms", NULL, S("soon"), NIL, 0},
	        /* unknown keys and types pass */
	        {"hb", "mystery", NULL, S("x"), NIL, 1},
	        {"future", "pid", NULL, S("x"), NIL, 1},
	};
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		why = NULL;
		int r = check_case(&cases[i], &why);
		if (r != (cases[i].ok ? AGENTSUP_WIRE_OK : AGENTSUP_WIRE_FIELD))
			fail_msg("case %zu (%s %s): %d", i, cases[i].t,
			         cases[i].k1 ? cases[i].k1 : "", r);
		if (!cases[i].ok)
			assert_non_null(why);
	}
	why = NULL;
	check_case(&cases[1], &why);
	assert_string_equal(why, "\"pid\" must be an unsigned integer");
	check_case(&cases[14], &why);
	assert_string_equal(why, "\"cost\" must be a finite number >= 0");
	assert_int_equal(check_case(&cases[1], NULL), AGENTSUP_WIRE_FIELD);
}

/* The same through the decoder: hello with pid as a string. */
static void
test_field_types_decoded(void **state)
{
	/* {"t":"hello","v":1,"pid":"7"} */
	static const uint8_t body[] = {0x83, 0xa1, 't', 0xa5, 'h',  'e',
	                               'l',  'l',  'o', 0xa1, 'v',  0x01,
	                               0xa3, 'p',  'i', 'd',  0xa1, '7'};
	uint8_t buf[64];
	struct agentsup_frame f;

	(void)state;
	assert_int_equal(decode(buf, frame(buf, body, sizeof body), &f), 0);
	assert_int_equal(agentsup_wire_check_fields(&f, NULL),
	                 AGENTSUP_WIRE_FIELD);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_any_split),
	        cmocka_unit_test(test_too_long),
	        cmocka_unit_test(test_not_map),
	        cmocka_unit_test(test_truncated_and_trailing),
	        cmocka_unit_test(test_no_type),
	        cmocka_unit_test(test_claims_refused_before_allocating),
	        cmocka_unit_test(test_depth),
	        cmocka_unit_test(test_invalid_byte),
	        cmocka_unit_test(test_all_scalar_types),
	        cmocka_unit_test(test_encoder_limit),
	        cmocka_unit_test(test_field_types),
	        cmocka_unit_test(test_field_types_decoded),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
