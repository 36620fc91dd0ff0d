/*
 * text.h - untrusted text made safe for the place it goes: JSON (always valid
 * UTF-8, no NaN) or a terminal / log line (no control characters), appended
 * to a growable buffer with a hard maximum. Pure: no syscalls.
 *
 * Every append is whole or nothing: when the result would pass the buffer's
 * maximum, the buffer is left as it was, `overflow` is set and false (or, for
 * the _cut forms, SIZE_MAX) is returned. The _cut forms never fail for lack of
 * room in the field: they shorten the text at a character boundary to fit
 * `max_out` bytes of output and say so with "…(+N bytes)", where N is the
 * number of input bytes left out.
 *
 *	struct text_buf b;
 *	text_buf_init(&b, 4096);
 *	text_buf_append(&b, "{\"status\":", 10);
 *	text_json_escape(&b, status, status_len);    // "..." with quotes
 *	text_buf_append(&b, ",\"cost\":", 8);
 *	text_json_number(&b, cost);                  // null for NaN and Inf
 *	text_buf_append(&b, "}", 1);
 *	if (!b.overflow) use(b.data, b.len);         // NUL-terminated too
 *	text_buf_free(&b);
 */
#ifndef AGENTSUP_TEXT_H
#define AGENTSUP_TEXT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct text_buf {
	char *data; /* NUL-terminated once anything was appended, else NULL */
	size_t len; /* bytes in data, the NUL excluded */
	size_t cap; /* bytes allocated */
	size_t max; /* len never exceeds this */
	bool overflow; /* an append was refused since init or reset */
};

/* The shortest useful max_out of a _cut form: quotes and the marker. */
#define TEXT_CUT_MIN 40

/* Whether s (len bytes) is well-formed UTF-8 throughout. */
bool text_utf8_valid(const char *s, size_t len);

void text_buf_init(struct text_buf *, size_t max);
void text_buf_free(struct text_buf *);
/* Empty it for reuse (keeps the memory; clears overflow). */
void text_buf_reset(struct text_buf *);
/* Back to an earlier length (undo a partial record); clears nothing else. */
void text_buf_truncate(struct text_buf *, size_t len);
bool text_buf_append(struct text_buf *, const void *, size_t);
bool text_buf_printf(struct text_buf *, const char *, ...)
        __attribute__((format(printf, 2, 3)));
bool text_buf_vprintf(struct text_buf *, const char *, va_list)
        __attribute__((format(printf, 2, 0)));

/*
 * JSON: a string literal, quotes included. Invalid UTF-8 (overlongs,
 * surrogates, stray continuation bytes, truncated sequences, > U+10FFFF)
 * becomes U+FFFD per maximal invalid subpart; NUL and control characters
 * (C0, DEL, C1) and U+2028/U+2029 are \u-escaped; `"` and `\` escaped.
 */
bool text_json_escape(struct text_buf *, const char *s, size_t len);
/* As above in at most max_out bytes (>= TEXT_CUT_MIN): returns the number
 * of input bytes left out (0 = whole), or SIZE_MAX when nothing was
 * appended (no room in the buffer, or max_out too small). */
size_t text_json_escape_cut(struct text_buf *, const char *s, size_t len,
                            size_t max_out);
/* A JSON number: NaN and infinities, which JSON cannot say, are null. */
bool text_json_number(struct text_buf *, double);

/*
 * A terminal or a log line: printable UTF-8 passes; `\` is "\\", \n \r \t
 * are "\n" "\r" "\t", other C0 and DEL are "\xNN" (ESC is "\x1b"), C1 and
 * bidirectional overrides "\uNNNN", each invalid UTF-8 byte "\xNN". No quotes.
 */
bool text_term_escape(struct text_buf *, const char *s, size_t len);
/* prefix, then s escaped as above, on a line of its own in f: text from a
 * file or a peer (a config error, agentsupd's refusal) never forges a line
 * or an escape sequence. */
void text_term_line(FILE *, const char *prefix, const char *s, size_t len);
size_t text_term_escape_cut(struct text_buf *, const char *s, size_t len,
                            size_t max_out);

#endif
