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

/*
 * Expand ${NAME} and ${NAME:-default} from the environment `get` looks in;
 * $$ is one dollar. Every other '$' is an error, so a value is never
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
	char *buf = NULL;
	size_t len = 0, cap = 0;

	scalar_put(&buf, &len, &cap, "", 0);
	while (*s != '\0') {
		const char *dollar = strchr(s, '$'), *name, *end, *val, *dflt;
		size_t nlen, vlen;

		if (dollar == NULL)
			dollar = s + strlen(s);
		if (scalar_put(&buf, &len, &cap, s, (size_t)(dollar - s)) < 0)
			goto toolong;
		if (*dollar == '\0')
			break;
		if (dollar[1] == '$') {
			if (scalar_put(&buf, &len, &cap, "$", 1) < 0)
				goto toolong;
			s = dollar + 2;
			continue;
		}
		if (dollar[1] != '{') {
			snprintf(why, whylen,
			         "a lone '$' (write ${NAME}, or $$ for a "
			         "dollar)");
			goto fail;
		}
		name = dollar + 2;
		if ((end = strchr(name, '}')) == NULL) {
			snprintf(why, whylen, "unterminated ${");
			goto fail;
		}
		dflt = strstr(name, ":-");
		if (dflt != NULL && dflt > end)
			dflt = NULL;
		nlen = (size_t)((dflt ? dflt : end) - name);
		if (!scalar_env_key_ok(name, nlen)) {
			snprintf(why, whylen, "bad variable name in \"%.*s\"",
			         (int)(end - dollar + 1), dollar);
			goto fail;
		}
		val = get(ctx, name, nlen);
		if (val == NULL && dflt == NULL) {
			snprintf(why, whylen,
			         "${%.*s} is not set in agentsupd's "
			         "environment (write ${%.*s:-} for empty)",
			         (int)nlen, name, (int)nlen, name);
			goto fail;
		}
		vlen = val != NULL ? strlen(val) : 0;
		if (val == NULL) { /* the default, up to the closing brace */
			val = dflt + 2;
			vlen = (size_t)(end - val);
		}
		if (scalar_put(&buf, &len, &cap, val, vlen) < 0)
			goto toolong;
		s = end + 1;
	}
	if (len > room)
		goto toolong;
	*out = buf;
	return 0;
toolong:
	snprintf(why, whylen,
	         "longer than %zu bytes once expanded (NAME=value: %u bytes "
	         "with its end, what Linux takes for one variable)",
	         room, CONFIG_MAX_VALUE_BYTES);
fail:
	free(buf);
	return -1;
}
