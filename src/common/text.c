/*
 * text.c - escaping untrusted text for JSON and for terminals, into a
 * growable buffer with a hard maximum. Both escapers walk the input one unit
 * at a time (a character, or an invalid UTF-8 subpart), so a cut always
 * falls between units and the output is valid in every case.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"
#include "util.h"

enum text_mode { TEXT_JSON, TEXT_TERM };

#define TEXT_UNIT_MAX 16 /* the longest escape of one unit: "\u2028" */

void
text_buf_init(struct text_buf *b, size_t max)
{
	memset(b, 0, sizeof *b);
	b->max = max;
}

void
text_buf_free(struct text_buf *b)
{
	free(b->data);
	text_buf_init(b, b->max);
}

void
text_buf_reset(struct text_buf *b)
{
	text_buf_truncate(b, 0);
	b->overflow = false;
}

void
text_buf_truncate(struct text_buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->data[len] = '\0';
	}
}

/* Room for need more bytes and the NUL, within max; false if over max. */
static bool
text_buf_reserve(struct text_buf *b, size_t need)
{
	size_t cap;

	if (need > b->max - b->len) {
		b->overflow = true;
		return false;
	}
	if (b->len + need < b->cap)
		return true;
	cap = b->cap ? b->cap : 64;
	while (cap <= b->len + need)
		cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
	return true;
}

bool
text_buf_append(struct text_buf *b, const void *p, size_t n)
{
	if (!text_buf_reserve(b, n))
		return false;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return true;
}

bool
text_buf_printf(struct text_buf *b, const char *fmt, ...)
{
	va_list ap;
	bool ok;

	va_start(ap, fmt);
	ok = text_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return ok;
}

bool
text_buf_vprintf(struct text_buf *b, const char *fmt, va_list ap)
{
	va_list copy;
	int n;

	va_copy(copy, ap);
	n = vsnprintf(NULL, 0, fmt, copy);
	va_end(copy);
	if (n < 0 || !text_buf_reserve(b, (size_t)n))
		return false;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return true;
}

/*
 * One character of well-formed UTF-8 (Unicode table 3-7): its length, with
 * the code point in *cp; or minus the length of the maximal invalid subpart
 * (at least 1) when s does not start with one.
 */
static int
text_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	unsigned lo = 0x80, hi = 0xBF;
	uint32_t c = s[0];
	int need;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		need = 1, c &= 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 2, c &= 0x0F;
		lo = s[0] == 0xE0 ? 0xA0 : lo; /* overlong */
		hi = s[0] == 0xED ? 0x9F : hi; /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 3, c &= 0x07;
		lo = s[0] == 0xF0 ? 0x90 : lo; /* overlong */
		hi = s[0] == 0xF4 ? 0x8F : hi; /* above U+10FFFF */
	} else {
		return -1;
	}
	for (int i = 1; i <= need; i++) {
		if ((size_t)i >= len || s[i] < lo || s[i] > hi)
			return -i;
		c = c << 6 | (s[i] & 0x3F);
		lo = 0x80, hi = 0xBF;
	}
	*cp = c;
	return need + 1;
}

bool
text_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t cp;
	int n;

	for (size_t i = 0; i < len; i += (size_t)n)
		if ((n = text_utf8_decode(p + i, len - i, &cp)) < 0)
			return false;
	return true;
}

/* Code points a terminal may act on or that reorder what is shown. */
static bool
text_term_hidden(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 ||
	       (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

/* The escape of the ASCII byte c for JSON, or 0 if it goes as it is. */
static size_t
text_json_ascii(unsigned char c, char *out)
{
	static const char shorts[] = "\"\"\\\\\bb\ff\nn\rr\tt";

	for (const char *p = shorts; *p; p += 2)
		if ((unsigned char)p[0] == c) {
			out[0] = '\\', out[1] = p[1];
			return 2;
		}
	if (c < 0x20 || c == 0x7F)
		return (size_t)snprintf(out, TEXT_UNIT_MAX, "\\u%04x", c);
	return 0;
}

/* The escape of the ASCII byte c for a terminal, or 0 if it goes as is. */
static size_t
text_term_ascii(unsigned char c, char *out)
{
	static const char shorts[] = "\\\\\nn\rr\tt";

	for (const char *p = shorts; *p; p += 2)
		if ((unsigned char)p[0] == c) {
			out[0] = '\\', out[1] = p[1];
			return 2;
		}
	if (c < 0x20 || c == 0x7F)
		return (size_t)snprintf(out, TEXT_UNIT_MAX, "\\x%02x", c);
	return 0;
}

/* The output of the unit at s: its bytes in out, how many input bytes it
 * took in *used. */
static size_t
text_unit(enum text_mode m, const unsigned char *s, size_t len, char *out,
          size_t *used)
{
	uint32_t cp;
	int n = text_utf8_decode(s, len, &cp);
	size_t k;

	if (n == 1) {
		*used = 1;
		k = m == TEXT_JSON ? text_json_ascii(s[0], out)
		                   : text_term_ascii(s[0], out);
		if (k == 0)
			out[k++] = (char)s[0];
		return k;
	}
	if (n < 0 && m == TEXT_JSON) {
		*used = (size_t)-n;
		memcpy(out, "\xEF\xBF\xBD", 3); /* U+FFFD */
		return 3;
	}
	if (n < 0) {
		*used = 1;
		return (size_t)snprintf(out, TEXT_UNIT_MAX, "\\x%02x", s[0]);
	}
	*used = (size_t)n;
	if ((m == TEXT_JSON &&
	     ((cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029)) ||
	    (m == TEXT_TERM && text_term_hidden(cp)))
		return (size_t)snprintf(out, TEXT_UNIT_MAX, "\\u%04x",
		                        (unsigned)cp);
	memcpy(out, s, (size_t)n);
	return (size_t)n;
}

/* The marker's length for a cut of at most n bytes: "…(+N bytes)". */
static size_t
text_marker_len(size_t n)
{
	char tmp[32];

	return (size_t)snprintf(tmp, sizeof tmp, "\xE2\x80\xA6(+%zu bytes)", n);
}

/*
 * The escaper of both modes. With max_out == SIZE_MAX it appends all of s or
 * nothing; otherwise it appends at most max_out bytes, cutting between units
 * and marking the cut. Returns the input bytes left out, or SIZE_MAX.
 */
static size_t
text_escape(struct text_buf *b, enum text_mode m, const char *s, size_t len,
            size_t max_out)
{
	const unsigned char *u = (const unsigned char *)s;
	const size_t start = b->len, q = m == TEXT_JSON;
	bool cutting = max_out != SIZE_MAX;
	size_t limit_all, limit_cut, cut_len = start, cut_in = 0, in = 0;
	char unit[TEXT_UNIT_MAX];

	if (cutting && max_out > b->max - b->len)
		max_out = b->max - b->len; /* cut to the room there is */
	if (cutting && max_out < TEXT_CUT_MIN) {
		b->overflow = true;
		return SIZE_MAX;
	}
	limit_all = cutting ? max_out - q : SIZE_MAX;
	limit_cut = cutting ? max_out - q - text_marker_len(len) : 0;
	if (q && !text_buf_append(b, "\"", 1))
		return SIZE_MAX;
	cut_len = b->len;
	while (in < len) {
		size_t used, n = text_unit(m, u + in, len - in, unit, &used);

		if (b->len - start + n > limit_all ||
		    !text_buf_append(b, unit, n)) {
			if (!cutting)
				goto refuse;
			text_buf_truncate(b, cut_len);
			text_buf_printf(b, "\xE2\x80\xA6(+%zu bytes)",
			                len - cut_in);
			break;
		}
		in += used;
		if (b->len - start <= limit_cut)
			cut_len = b->len, cut_in = in;
	}
	if (q && !text_buf_append(b, "\"", 1))
		goto refuse;
	return in < len ? len - cut_in : 0;
refuse:
	text_buf_truncate(b, start);
	b->overflow = true;
	return SIZE_MAX;
}

bool
text_json_escape(struct text_buf *b, const char *s, size_t len)
{
	return text_escape(b, TEXT_JSON, s, len, SIZE_MAX) == 0;
}

size_t
text_json_escape_cut(struct text_buf *b, const char *s, size_t len,
                     size_t max_out)
{
	return text_escape(b, TEXT_JSON, s, len, max_out);
}

bool
text_term_escape(struct text_buf *b, const char *s, size_t len)
{
	return text_escape(b, TEXT_TERM, s, len, SIZE_MAX) == 0;
}

void
text_term_line(FILE *f, const char *prefix, const char *s, size_t len)
{
	struct text_buf b;

	/* at most 4 bytes out per byte in (\xNN) */
	text_buf_init(&b, 4 * len + 1);
	if (len == 0 || text_term_escape(&b, s, len))
		fprintf(f, "%s%s\n", prefix, len > 0 ? b.data : "");
	else
		fprintf(f, "%s(text that could not be shown)\n", prefix);
	text_buf_free(&b);
}

size_t
text_term_escape_cut(struct text_buf *b, const char *s, size_t len,
                     size_t max_out)
{
	return text_escape(b, TEXT_TERM, s, len, max_out);
}

/* The shortest of %.15g, %.16g, %.17g that reads back as the same double. */
bool
text_json_number(struct text_buf *b, double d)
{
	char tmp[40];

	if (isnan(d) || isinf(d))
		return text_buf_append(b, "null", 4);
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	return text_buf_append(b, tmp, strlen(tmp));
}
