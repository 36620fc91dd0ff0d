/*
 * split.c - a command string split into words as a POSIX shell would split
 * them, without any expansion: the program is exec'd directly, never through
 * a shell unless the user writes one.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

/* Append one byte to a growing word; words are bounded by the input. */
static void
split_put(char **w, size_t *len, size_t *cap, char c)
{
	if (*len + 2 > *cap) {
		*cap = *cap ? *cap * 2 : 32;
		*w = xrealloc(*w, *cap);
	}
	(*w)[(*len)++] = c;
	(*w)[*len] = '\0';
}

/* Start a word that may stay empty ('' and "" still make a word). */
static void
split_begin(char **w, size_t *len, size_t *cap)
{
	split_put(w, len, cap, '\0');
	(*len)--;
}

/*
 * Blanks separate, '...' is literal, "..." allows \" \\ \$ \`, a backslash
 * outside quotes escapes the next byte.
 */
int
config_split_command(const char *s, char ***argvp, const char **why)
{
	char **argv = NULL, *w = NULL;
	size_t argc = 0, argcap = 0, len = 0, cap = 0;
	bool inword = false;

	for (const char *p = s;; p++) {
		if (*p == '\0' || *p == ' ' || *p == '\t' || *p == '\n') {
			if (inword) {
				if (argc + 2 > argcap) {
					argcap = argcap ? argcap * 2 : 8;
					argv = xreallocarray(argv, argcap,
					                     sizeof *argv);
				}
				argv[argc++] = w ? w : xstrdup("");
				argv[argc] = NULL;
				w = NULL;
				len = cap = 0;
				inword = false;
			}
			if (*p == '\0')
				break;
			continue;
		}
		inword = true;
		if (*p == '\'') {
			const char *end = strchr(p + 1, '\'');
			if (end == NULL) {
				*why = "unterminated single quote";
				goto fail;
			}
			split_begin(&w, &len, &cap);
			for (p++; p < end; p++)
				split_put(&w, &len, &cap, *p);
		} else if (*p == '"') {
			split_begin(&w, &len, &cap);
			for (p++; *p != '"'; p++) {
				if (*p == '\0') {
					*why = "unterminated double quote";
					goto fail;
				}
				if (*p == '\\' && p[1] != '\0' &&
				    strchr("\"\\$`", p[1]) != NULL)
					p++;
				split_put(&w, &len, &cap, *p);
			}
		} else if (*p == '\\') {
			if (p[1] == '\0') {
				*why = "trailing backslash";
				goto fail;
			}
			split_put(&w, &len, &cap, *++p);
		} else {
			split_put(&w, &len, &cap, *p);
		}
	}
	if (argc == 0) {
		*why = "empty command";
		goto fail;
	}
	*argvp = argv;
	return 0;
fail:
	free(w);
	config_free_strv(argv);
	return -1;
}
