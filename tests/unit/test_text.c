/*
 * test_text.c - escaping hostile text for JSON and terminals: tables of
 * inputs with their exact outputs, cuts at every length, and the buffer's
 * whole-or-nothing rule.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "text.h"
#include "util.h"

struct esc_case {
	const char *in;
	size_t len; /* 0: strlen(in) */
	const char *json;
	const char *term;
};

#define FFFD "\xEF\xBF\xBD"

static const struct esc_case cases[] = {
        {"plain", 0, "\"plain\"", "plain"},
        {"", 0, "\"\"", ""},
        {"a\"b\\c", 0, "\"a\\\"b\\\\c\"", "a\"b\\\\c"},
        {"line\nforged 12:00 root/x started", 0,
         "\"line\\nforged 12:00 root/x started\"",
         "line\\nforged 12:00 root/x started"},
        {"\r\t\b\f", 0, "\"\\r\\t\\b\\f\"", "\\r\\t\\x08\\x0c"},
        {"\x1b[2J\x1b]0;title\x07", 0, "\"\\u001b[2J\\u001b]0;title\\u0007\"",
         "\\x1b[2J\\x1b]0;title\\x07"},
        {"del\x7f", 0, "\"del\\u007f\"", "del\\x7f"},
        /* NUL inside a (msgpack) string, which has a length */
        {"a\0b", 3, "\"a\\u0000b\"", "a\\x00b"},
        /* valid 2-, 3- and 4-byte characters pass */
        {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", 0,
         "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"",
         "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"},
        /* the highest code point, U+10FFFF */
        {"\xF4\x8F\xBF\xBF", 0, "\"\xF4\x8F\xBF\xBF\"", "\xF4\x8F\xBF\xBF"},
        /* above it: F4 90 is not a valid start */
        {"\xF4\x90\x80\x80", 0, "\"" FFFD FFFD FFFD FFFD "\"",
         "\\xf4\\x90\\x80\\x80"},
        /* overlongs: "/" in two bytes, NUL in two, U+0000 in three */
        {"\xC0\xAF", 0, "\"" FFFD FFFD "\"", "\\xc0\\xaf"},
        {"\xC0\x80", 0, "\"" FFFD FFFD "\"", "\\xc0\\x80"},
        {"\xE0\x80\x80", 0, "\"" FFFD FFFD FFFD "\"", "\\xe0\\x80\\x80"},
        {"\xF0\x80\x80\xAF", 0, "\"" FFFD FFFD FFFD FFFD "\"",
         "\\xf0\\x80\\x80\\xaf"},
        /* surrogates, alone and paired (CESU-8) */
        {"\xED\xA0\x80", 0, "\"" FFFD FFFD FFFD "\"", "\\xed\\xa0\\x80"},
        {"\xED\xA0\xBD\xED\xB8\x80", 0, "\"" FFFD FFFD FFFD FFFD FFFD FFFD "\"",
         "\\xed\\xa0\\xbd\\xed\\xb8\\x80"},
        /* lone continuation bytes, and bytes that never occur */
        {"a\x80z", 0, "\"a" FFFD "z\"", "a\\x80z"},
        {"\xBF\xFE\xFF", 0, "\"" FFFD FFFD FFFD "\"", "\\xbf\\xfe\\xff"},
        /* a truncated sequence is one maximal subpart: one U+FFFD */
        {"\xE2\x82", 0, "\"" FFFD "\"", "\\xe2\\x82"},
        {"\xF0\x9F\x98x", 0, "\"" FFFD "x\"", "\\xf0\\x9f\\x98x"},
        /* C1 controls (U+009B is an 8-bit CSI) and line separators */
        {"\xC2\x9B"
         "31m",
         0, "\"\\u009b31m\"", "\\u009b31m"},
        {"a\xE2\x80\xA8z", 0, "\"a\\u2028z\"", "a\\u2028z"},
        /* a right-to-left override reorders a terminal's line */
        {"\xE2\x80\xAEtxt.exe", 0, "\"\xE2\x80\xAEtxt.exe\"", "\\u202etxt.exe"},
};

/* Durations as --check and the reload report show them: exact (1234567 ms
 * was "1.23e+03s"). */
static void
test_durations_shown_exactly(void **state)
{
	static const struct {
		uint64_t ms;
		const char *want;
	} durs[] = {{0, "0s"},      {999, "999ms"},         {1000, "1s"},
	            {1500, "1.5s"}, {1234567, "1234.567s"}, {1010, "1.01s"},
	            {60000, "1m"},  {7200000, "2h"},        {61001, "61.001s"}};
	char buf[32];

	(void)state;
	for (size_t i = 0; i < sizeof durs / sizeof durs[0]; i++) {
		util_format_duration(durs[i].ms, buf, sizeof buf);
		assert_string_equal(buf, durs[i].want);
	}
}

static void
test_escape_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct esc_case *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->in);
		struct text_buf b;

		text_buf_init(&b, 1024);
		assert_true(text_json_escape(&b, c->in, len));
		assert_string_equal(b.data, c->json);
		text_buf_reset(&b);
		assert_true(text_term_escape(&b, c->in, len));
		assert_string_equal(b.data ? b.data : "", c->term);
		text_buf_free(&b);
	}
}

/* True if s[0..len) is well-formed UTF-8 without control characters. */
static bool
clean_utf8(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t n = s[i] < 0x80   ? 1
		           : s[i] < 0xE0 ? 2
		           : s[i] < 0xF0 ? 3
		                         : 4;

		if (s[i] < 0x20 || s[i] == 0x7F ||
		    (s[i] >= 0x80 && s[i] < 0xC2) || s[i] > 0xF4 || i + n > len)
			return false;
		for (size_t k = 1; k < n; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
		i += n;
	}
	return true;
}

/* Every byte string of length 2 (and many of 3): clean output always. */
static void
test_every_short_input_is_clean(void **state)
{
	struct text_buf b;
	unsigned char in[3];

	(void)state;
	text_buf_init(&b, 256);
	for (unsigned v = 0; v < 0x10000; v++) {
		in[0] = (unsigned char)(v >> 8), in[1] = (unsigned char)v;
		in[2] = (unsigned char)(v * 7);
		for (size_t len = 2; len <= 3; len++) {
			text_buf_reset(&b);
			assert_true(text_json_escape(&b, (char *)in, len));
			assert_true(clean_utf8((unsigned char *)b.data, b.len));
			text_buf_reset(&b);
			assert_true(text_term_escape(&b, (char *)in, len));
			assert_true(clean_utf8((unsigned char *)b.data, b.len));
		}
	}
	text_buf_free(&b);
}

/* A cut at every budget: within the budget, valid, marked with the count of
 * the bytes left out, never splitting a character. */
static void
test_cut_at_every_budget(void **state)
{
	const char *s = "ab\xF0\x9F\x98\x80\n\xE2\x82\xAC"
	                "cd\x80"
	                "efghijklmnopqrstuvwxyz0123456789";
	size_t len = strlen(s);
	struct text_buf b;
	char want[64];

	(void)state;
	text_buf_init(&b, 4096);
	for (size_t max = TEXT_CUT_MIN; max < 120; max++) {
		text_buf_reset(&b);
		size_t cut = text_json_escape_cut(&b, s, len, max);
		assert_true(cut != SIZE_MAX);
		assert_true(b.len <= max);
		assert_true(clean_utf8((unsigned char *)b.data, b.len));
		assert_int_equal(b.data[0], '"');
		assert_int_equal(b.data[b.len - 1], '"');
		if (cut == 0) {
			assert_null(strstr(b.data, "bytes)"));
			continue;
		}
		snprintf(want, sizeof want, "\xE2\x80\xA6(+%zu bytes)\"", cut);
		assert_true(b.len >= strlen(want));
		assert_string_equal(b.data + b.len - strlen(want), want);
	}
	/* the whole string fits a large budget: no marker */
	text_buf_reset(&b);
	assert_int_equal(text_json_escape_cut(&b, s, len, 1000), 0);
	text_buf_free(&b);
}

static void
test_term_cut_keeps_escapes_whole(void **state)
{
	char s[200];
	struct text_buf b;

	(void)state;
	memset(s, '\x1b', sizeof s); /* each one is four bytes out */
	text_buf_init(&b, 4096);
	size_t cut = text_term_escape_cut(&b, s, sizeof s, 64);
	assert_true(cut > 0 && cut != SIZE_MAX);
	assert_true(b.len <= 64);
	/* only whole "\x1b" escapes before the marker */
	size_t head = strstr(b.data, "\xE2\x80\xA6") - b.data;
	assert_int_equal(head % 4, 0);
	assert_int_equal(head / 4 + cut, sizeof s);
	text_buf_free(&b);
}

/* An append past the maximum leaves the buffer as it was. */
static void
test_whole_or_nothing(void **state)
{
	struct text_buf b;

	(void)state;
	text_buf_init(&b, 16);
	assert_true(text_buf_append(&b, "0123456789", 10));
	assert_false(text_json_escape(&b, "abcdef", 6)); /* 8 > 6 left */
	assert_true(b.overflow);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "0123456789");
	assert_false(text_buf_printf(&b, "%s", "abcdefg"));
	assert_string_equal(b.data, "0123456789");
	assert_true(text_buf_printf(&b, "%d", 123456));
	assert_string_equal(b.data, "0123456789123456");
	assert_false(text_buf_append(&b, "x", 1));
	text_buf_reset(&b);
	assert_false(b.overflow);
	assert_int_equal(b.len, 0);
	/* a cut form cuts to the room there is, or refuses below the minimum */
	assert_int_equal(text_json_escape_cut(&b, "x", 1, 100), SIZE_MAX);
	text_buf_free(&b);

	text_buf_init(&b, 50);
	assert_true(text_buf_append(&b, "{", 1));
	char big[100];
	memset(big, 'a', sizeof big);
	size_t cut = text_json_escape_cut(&b, big, sizeof big, 1000);
	assert_true(cut > 0 && cut != SIZE_MAX);
	assert_true(b.len <= 50);
	text_buf_free(&b);
}

static void
test_numbers(void **state)
{
	static const struct {
		double d;
		const char *want;
	} t[] = {
	        {0, "0"},
	        {-0.0, "-0"},
	        {1.5, "1.5"},
	        {0.1, "0.1"},
	        {1e300, "1e+300"},
	        {123456789, "123456789"},
	        {NAN, "null"},
	        {-NAN, "null"},
	        {INFINITY, "null"},
	        {-INFINITY, "null"},
	        {0.30000000000000004, "0.30000000000000004"},
	};
	struct text_buf b;

	(void)state;
	text_buf_init(&b, 64);
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		text_buf_reset(&b);
		assert_true(text_json_number(&b, t[i].d));
		assert_string_equal(b.data, t[i].want);
	}
	text_buf_free(&b);
}

/* text_utf8_valid: what a control request's NAME must be. */
static void
test_utf8_valid(void **state)
{
	(void)state;
	assert_true(text_utf8_valid("", 0));
	assert_true(text_utf8_valid(
	        "root/w\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 15));
	assert_false(text_utf8_valid("\xff\xfe", 2));
	assert_false(text_utf8_valid("a\xc3", 2));            /* truncated */
	assert_false(text_utf8_valid("\xc0\xaf", 2));         /* overlong */
	assert_false(text_utf8_valid("\xed\xa0\x80", 3));     /* a surrogate */
	assert_false(text_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}

/* util_fnv is FNV-1a: its published 64-bit test vectors. */
static void
test_fnv_known_values(void **state)
{
	(void)state;
	assert_true(util_fnv(UTIL_FNV_BASIS, "", 0) == 0xcbf29ce484222325ull);
	assert_true(util_fnv_str(UTIL_FNV_BASIS, "a") == 0xaf63dc4c8601ec8cull);
	assert_true(util_fnv(UTIL_FNV_BASIS, "foobar", 6) ==
	            0x85944171f73967e8ull);
	assert_true(util_fnv_str(util_fnv_str(UTIL_FNV_BASIS, "foo"), "bar") ==
	            util_fnv_str(UTIL_FNV_BASIS, "foobar"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_escape_table),
	        cmocka_unit_test(test_durations_shown_exactly),
	        cmocka_unit_test(test_every_short_input_is_clean),
	        cmocka_unit_test(test_cut_at_every_budget),
	        cmocka_unit_test(test_term_cut_keeps_escapes_whole),
	        cmocka_unit_test(test_whole_or_nothing),
	        cmocka_unit_test(test_numbers),
	        cmocka_unit_test(test_utf8_valid),
	        cmocka_unit_test(test_fnv_known_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
