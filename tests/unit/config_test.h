/* config_test.h - parsing from memory for the config unit tests. */
#ifndef AGENTSUP_CONFIG_TEST_H
#define AGENTSUP_CONFIG_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static const char *const test_env[] = {
        "PATH=/usr/bin:/bin", "HOME=/home/a", "EMPTY=",
        "HOME=/second",       "WEIRD",        NULL};

static inline struct config *
parse(const char *yaml, struct config_errors *errs)
{
	struct config_source src = {"a.yaml", yaml, strlen(yaml)};

	memset(errs, 0, sizeof *errs);
	return config_parse(&src, 1, test_env, errs);
}

static inline void
dump(const struct config_errors *errs)
{
	for (size_t i = 0; i < errs->count; i++)
		fprintf(stderr, "got: %s\n", errs->msgs[i]);
}

/* Parses without error; the caller frees. */
static inline struct config *
parse_ok(const char *yaml)
{
	struct config_errors errs;
	struct config *cfg = parse(yaml, &errs);

	dump(&errs);
	assert_non_null(cfg);
	assert_int_equal(errs.total, 0);
	return cfg;
}

/* Refused, and the first error contains want. */
static inline void
parse_bad(const char *yaml, const char *want)
{
	struct config_errors errs;
	struct config *cfg = parse(yaml, &errs);

	if (errs.count == 0 || strstr(errs.msgs[0], want) == NULL) {
		dump(&errs);
		fprintf(stderr, "want: %s\nin:\n%s\n", want, yaml);
	}
	assert_null(cfg);
	assert_true(errs.count >= 1);
	assert_non_null(strstr(errs.msgs[0], want));
	config_errors_clear(&errs);
}

/* The only worker of a one-worker document. */
static inline struct spec *
worker(struct config *cfg)
{
	return cfg->root->children[0];
}

#endif
