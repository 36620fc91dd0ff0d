/*
 * scalar.c - the strict types of a config value. libyaml leaves every scalar
 * untyped, so each is typed here: "no" is a string, never false, "10" is ten
 * seconds only where a duration is expected, and a boolean is exactly
 * `true` or `false`.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "parse.h"
#include "util.h"

int
config_parse_duration(const char *s, uint64_t *ms)
{
	uint64_t whole = 0, frac = 0, fracdiv = 1, mult;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (whole > UINT64_MAX / 10 / 3600000)
			return CONFIG_DURATION_TOO_LONG;
		whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		for (; isdigit((unsigned char)*p); p++) {
			if (fracdiv >= 1000000)
				return -1; /* more precision than a ms */
			frac = frac * 10 + (uint64_t)(*p - '0');
			fracdiv *= 10;
		}
	}
	if (strcmp(p, "ms") == 0)
		mult = 1;
	else if (*p == '\0' || strcmp(p, "s") == 0)
		mult = 1000;
	else if (strcmp(p, "m") == 0)
		mult = 60000;
	else if (strcmp(p, "h") == 0)
		mult = 3600000;
	else
		return -1;
	if (mult == 1 && fracdiv != 1)
		return -1; /* "1.5ms": below our resolution */
	/* bounded (5124095576031h wrapped to 34 minutes; and a deadline in
	 * microseconds must not wrap either) */
	if (whole > CONFIG_MAX_DURATION_MS / mult ||
	    whole * mult + frac * mult / fracdiv > CONFIG_MAX_DURATION_MS)
		return CONFIG_DURATION_TOO_LONG;
	*ms = whole * mult + frac * mult / fracdiv;
	return 0;
}

int
scalar_uint(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

/* A plain decimal ("2", "1.5"): no sign, no exponent, no inf or nan. */
int
scalar_number(const char *s, double max, double *out)
{
	uint64_t whole = 0, frac = 0, fracdiv = 1;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		whole = whole * 10 + (uint64_t)(*p - '0');
		if ((double)whole > max)
			return -1;
	}
	if (*p == '.') {
		if (!isdigit((unsigned char)*++p))
			return -1;
		for (; isdigit((unsigned char)*p); p++) {
			if (fracdiv >= 1000000)
				return -1;
			frac = frac * 10 + (uint64_t)(*p - '0');
			fracdiv *= 10;
		}
	}
	if (*p != '\0')
		return -1;
	*out = (double)whole + (double)frac / (double)fracdiv;
	return *out > max ? -1 : 0;
}

int
scalar_bool(const char *s, bool *out)
{
	if (strcmp(s, "true") == 0)
		*out = true;
	else if (strcmp(s, "false") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

int
scalar_enum(const char *const *names, const char *s)
{
	for (int i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

bool
scalar_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CONFIG_NAME_MAX || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '_' && c != '-' && c != '.')
			return false;
	}
	return true;
}

bool
scalar_env_key_ok(const char *s, size_t len)
{
	if (len == 0 || (!isalpha((unsigned char)*s) && *s != '_'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

/* Append n bytes to a growing string, within CONFIG_MAX_VALUE_BYTES. */
static int
scalar_put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n > CONFIG_MAX_VALUE_BYTES)
		return -1;
	if (*len + n + 1 > *cap) {
		while (*len + n + 1 > *cap)
			*cap = *cap ? *cap * 2 : 64;
		*buf = xrealloc(*buf, *cap);
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

#define SCALAR_EXPAND_DEPTH 8 /* levels of ${A:-${B:-...}} */

/* One value's expansion: the result growing, and why it failed. */
struct scalar_exp {
	const char *(*get)(void *, const char *, size_t);
	void *ctx;
	char *buf;
	size_t len, cap;
	char *why;
	size_t whylen;
	bool toolong;
};

static int scalar_expand_word(struct scalar_exp *, const char **, int depth,
                              bool emit);

/* Append n bytes when emit: a default not taken is checked, not kept. */
static int
scalar_emit(struct scalar_exp *x, bool emit, const char *s, size_t n)
{
	if (emit && scalar_put(&x->buf, &x->len, &x->cap, s, n) < 0) {
		x->toolong = true;
		return -1;
	}
	return 0;
}

/* The ${NAME} or ${NAME:-word} at *pp, the depth-th nested; *pp past its
 * closing brace. The word is expanded as a value is (a shell's
 * ${X:-${Y}/logs}), and only when it is taken are its variables looked
 * up, as a shell does. */
static int
scalar_expand_ref(struct scalar_exp *x, const char **pp, int depth, bool emit)
{
	const char *dollar = *pp, *name = dollar + 2, *p = name, *close, *val;
	size_t nlen;

	if (depth > SCALAR_EXPAND_DEPTH) {
		snprintf(x->why, x->whylen,
		         "${NAME:-word} nested deeper than %d levels",
		         SCALAR_EXPAND_DEPTH);
		return -1;
	}
	while (*p != '\0' && *p != '}' && !(p[0] == ':' && p[1] == '-'))
		p++;
	if (*p == '\0') {
		snprintf(x->why, x->whylen, "unterminated ${");
		return -1;
	}
	nlen = (size_t)(p - name);
	if (!scalar_env_key_ok(name, nlen)) {
		close = strchr(p, '}');
		snprintf(x->why, x->whylen, "bad variable name in \"%.*s\"",
		         (int)(close ? (size_t)(close - dollar + 1)
		                     : strlen(dollar)),
		         dollar);
		return -1;
	}
	val = emit ? x->get(x->ctx, name, nlen) : NULL;
	if (emit && val == NULL && *p == '}') {
		snprintf(x->why, x->whylen,
		         "${%.*s} is not set in agentsupd's "
		         "environment (write ${%.*s:-} for empty)",
		         (int)nlen, name, (int)nlen, name);
		return -1;
	}
	if (val != NULL && scalar_emit(x, emit, val, strlen(val)) < 0)
		return -1;
	*pp = p + 1;
	if (*p == '}')
		return 0;
	*pp = p + 2; /* the word, to the brace that closes this ${ */
	return scalar_expand_word(x, pp, depth, emit && val == NULL);
}

/* A value, or (depth > 0) a default word up to the '}' that closes its
 * ${: text, $$ (one dollar) and ${...}; *pp past it. */
static int
scalar_expand_word(struct scalar_exp *x, const char **pp, int depth, bool emit)
{
	const char *s = *pp;

	for (;;) {
		size_t n = strcspn(s, depth > 0 ? "$}" : "$");
		if (scalar_emit(x, emit, s, n) < 0)
			return -1;
		s += n;
		if (*s == '\0' && depth > 0) {
			snprintf(x->why, x->whylen, "unterminated ${");
			return -1;
		}
		if (*s == '\0' || *s == '}') {
			*pp = *s == '}' ? s + 1 : s;
			return 0;
		}
		if (s[1] == '$') {
			if (scalar_emit(x, emit, "$", 1) < 0)
				return -1;
			s += 2;
		} else if (s[1] != '{') {
			snprintf(x->why, x->whylen,
			         "a lone '$' (write ${NAME}, or $$ for a "
			         "dollar)");
			return -1;
		} else if (scalar_expand_ref(x, &s, depth + 1, emit) < 0) {
			return -1;
		}
	}
}

/*
 * Expand ${NAME} and ${NAME:-word} from the environment `get` looks in
 * (word itself expanded, nested up to SCALAR_EXPAND_DEPTH levels); $$ is
 * one dollar. Every other '$' is an error, so a value is never
 * half-expanded by surprise. The result is malloc'd, and NAME=value with
 * its NUL fits CONFIG_MAX_VALUE_BYTES (what Linux accepts for one
 * variable: a value of exactly that passed --check and failed every exec).
 */
int
scalar_expand(const char *s, const char *(*get)(void *, const char *, size_t),
              void *ctx, size_t namelen, char **out, char *why, size_t whylen)
{
	size_t room = namelen + 2 < CONFIG_MAX_VALUE_BYTES
	                      ? CONFIG_MAX_VALUE_BYTES - namelen - 2
	                      : 0;
	struct scalar_exp x = {
	        .get = get, .ctx = ctx, .why = why, .whylen = whylen};
	int rc;

	scalar_put(&x.buf, &x.len, &x.cap, "", 0);
	if ((rc = scalar_expand_word(&x, &s, 0, true)) == 0 && x.len <= room) {
		*out = x.buf;
		return 0;
	}
	if (x.toolong || rc == 0)
		snprintf(why, whylen,
		         "longer than %zu bytes once expanded (NAME=value: %u "
		         "bytes with its end, what Linux takes for one "
		         "variable)",
		         room, CONFIG_MAX_VALUE_BYTES);
	free(x.buf);
	return -1;
}
