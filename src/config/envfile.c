/*
 * envfile.c - `env_file:`, a worker's environment read from files at each
 * of its starts (a key rotated in the file is the next start's, as with
 * systemd's EnvironmentFile=): the key itself, and the files' text, lines of
 * KEY=VALUE. Reading the files is the shell's; this is pure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "parse.h"
#include "util.h"

/* One path of `env_file`: "-" first marks a file that may be missing. */
static char *
envfile_path(struct parse *p, yaml_node_t *v)
{
	const char *path = load_scalar(p, "env_file", v);

	if (path == NULL)
		return NULL;
	if (*path == '\0' || strcmp(path, "-") == 0) {
		load_err(p, &v->start_mark, "env_file: empty path");
		return NULL;
	}
	return load_charge(p, strlen(path)) ? xstrdup(path) : NULL;
}

/* `env_file: PATH` or `env_file: [PATH, ...]`, read in that order. */
void
envfile_key(struct parse *p, const struct key *k, yaml_node_t *v,
            struct spec *s, int depth)
{
	yaml_node_item_t *it;
	size_t n, m = 0;
	char *path;

	(void)depth;
	config_free_strv(s->env_files);
	s->env_files = NULL;
	if (v->type == YAML_SCALAR_NODE) {
		if ((path = envfile_path(p, v)) == NULL)
			return;
		s->env_files = xcalloc(2, sizeof(char *));
		s->env_files[0] = path;
		return;
	}
	if (map_list(p, v, k->name, &it, &n) < 0)
		return;
	if (n > CONFIG_ENVFILE_FILES) {
		load_err(p, &v->start_mark, "env_file: %zu files, more than %d",
		         n, CONFIG_ENVFILE_FILES);
		return;
	}
	s->env_files = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = load_node(p, it[i]);
		if (e != NULL && (path = envfile_path(p, e)) != NULL)
			s->env_files[m++] = path;
	}
}

/* --- the files' text ------------------------------------------------------ */

static const char *
envfile_skip_blank(const char *s, const char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	return s;
}

/* A quoted value from q (its opening quote) to the closing one: '...' as
 * it is, "..." with \" \\ \n \t \$ unescaped (any other backslash is
 * the value's, as a shell keeps it: "C:\dir"). The end of the value, or
 * NULL if the line has no closing quote. */
static const char *
envfile_quoted(const char *q, const char *end, char *out, size_t *len)
{
	char quote = *q++;

	*len = 0;
	for (; q < end && *q != quote; q++) {
		if (quote == '"' && *q == '\\' && q + 1 < end && q[1] != '\0' &&
		    strchr("\"\\nt$", q[1]) != NULL) {
			q++;
			out[(*len)++] = *q == 'n'   ? '\n'
			                : *q == 't' ? '\t'
			                            : *q;
			continue;
		}
		out[(*len)++] = *q;
	}
	return q < end ? q + 1 : NULL;
}

/* One line (no newline): 0 and *entry ("KEY=VALUE", or NULL for a blank
 * line or a comment), or -1 with why. */
static int
envfile_line(const char *s, const char *end, char **entry, char *why,
             size_t whylen)
{
	const char *key, *eq, *after;
	size_t klen, vlen;
	char *val;

	*entry = NULL;
	if (end > s && end[-1] == '\r')
		end--;
	s = envfile_skip_blank(s, end);
	if (s == end || *s == '#')
		return 0;
	if (end - s > 7 && strncmp(s, "export", 6) == 0 &&
	    (s[6] == ' ' || s[6] == '\t'))
		s = envfile_skip_blank(s + 7, end);
	key = s;
	while (s < end && *s != '=' && *s != ' ' && *s != '\t')
		s++;
	klen = (size_t)(s - key);
	eq = envfile_skip_blank(s, end);
	if (eq == end || *eq != '=') {
		snprintf(why, whylen, "no '=' (lines are KEY=VALUE)");
		return -1;
	}
	if (!scalar_env_key_ok(key, klen)) {
		snprintf(why, whylen, "bad variable name \"%.*s\"",
		         (int)(klen > 64 ? 64 : klen), key);
		return -1;
	}
	if (klen >= 9 && strncmp(key, "AGENTSUP_", 9) == 0) {
		snprintf(why, whylen, "%.*s is set by agentsupd", (int)klen,
		         key);
		return -1;
	}
	s = envfile_skip_blank(eq + 1, end);
	val = xmalloc((size_t)(end - s) + 1);
	if (s < end && (*s == '"' || *s == '\'')) {
		after = envfile_quoted(s, end, val, &vlen);
		if (after == NULL) {
			snprintf(why, whylen,
			         "no closing %c (a value is one line)", *s);
			free(val);
			return -1;
		}
		after = envfile_skip_blank(after, end);
		if (after < end && *after != '#') {
			snprintf(why, whylen, "text after the closing quote");
			free(val);
			return -1;
		}
	} else { /* as it is, but for the blanks at its end */
		while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		vlen = (size_t)(end - s);
		memcpy(val, s, vlen);
	}
	*entry = xasprintf("%.*s=%.*s", (int)klen, key, (int)vlen, val);
	free(val);
	return 0;
}

int
config_envfile_parse(const char *text, size_t len, char ***out, char *why,
                     size_t whylen)
{
	const char *s = text, *end = text + len, *nl;
	size_t n = 0, line = 0;
	char **v = xcalloc(CONFIG_ENVFILE_VARS + 1, sizeof(char *));
	char lwhy[160], *entry;

	*out = NULL;
	if (len > CONFIG_ENVFILE_MAX || memchr(text, '\0', len) != NULL) {
		snprintf(why, whylen,
		         len > CONFIG_ENVFILE_MAX
		                 ? "larger than %u bytes"
		                 : "a NUL byte: not a text file (of at most %u "
		                   "bytes)",
		         CONFIG_ENVFILE_MAX);
		free(v);
		return -1;
	}
	for (; s < end; s = nl < end ? nl + 1 : end) {
		line++;
		if ((nl = memchr(s, '\n', (size_t)(end - s))) == NULL)
			nl = end;
		if (envfile_line(s, nl, &entry, lwhy, sizeof lwhy) < 0) {
			snprintf(why, whylen, "line %zu: %s", line, lwhy);
			config_free_strv(v);
			return -1;
		}
		if (entry == NULL)
			continue;
		if (n == CONFIG_ENVFILE_VARS) {
			snprintf(why, whylen, "more than %d variables",
			         CONFIG_ENVFILE_VARS);
			free(entry);
			config_free_strv(v);
			return -1;
		}
		v[n++] = entry;
	}
	*out = v;
	return 0;
}
