/*
 * fixture.h - what the engine's scripted tests share (test_tree.c,
 * test_dynamic.c, test_restore.c, progress_test.h): a config parsed from YAML
 * text, and a bounded append to a test's action log.
 * Each test is its own program, so these are static.
 */
#ifndef AGENTSUP_TEST_FIXTURE_H
#define AGENTSUP_TEST_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

/* The config that yaml says, parsed from memory (the loader is pure). */
static inline struct config *
parse_yaml(const char *yaml, struct config_errors *errs)
{
	struct config_source src = {"t.yaml", yaml, strlen(yaml)};

	return config_parse(&src, 1, NULL, errs);
}

/* The same, every error printed and none allowed. */
static inline struct config *
load_yaml(const char *yaml)
{
	struct config_errors errs = {0};
	struct config *cfg = parse_yaml(yaml, &errs);

	for (size_t i = 0; i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	assert_int_equal(errs.count, 0);
	assert_non_null(cfg);
	return cfg;
}

/* Append to a log of size bytes, cut at its end. */
static inline void
fixture_logf(char *log, size_t size, const char *fmt, ...)
{
	size_t at = strlen(log);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(log + at, size - at, fmt, ap);
	va_end(ap);
}

/* r->log is the test's own array. */
#define logf_(r, ...) fixture_logf((r)->log, sizeof(r)->log, __VA_ARGS__)

#endif
