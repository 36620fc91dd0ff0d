/*
 * fuzz_config.c - libFuzzer target: arbitrary bytes as one or two
 * supervisor.d files through the pure parser (libyaml, merge keys, aliases,
 * typing, ${VAR}, defaults, instances, linking) and --check's printer. They
 * must be refused with at most CONFIG_MAX_ERRORS + 1 messages or accepted,
 * never crash, leak or run long.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_env[] = {"PATH=/usr/bin:/bin", "HOME=/root",
                                       "EMPTY=", NULL};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_errors errs = {0};
	struct config_source src[2];
	const char *cut;
	struct config *cfg;
	size_t n = 1;

	/* a form feed splits the input into two files, to reach `parent:` */
	src[0] = (struct config_source){"a.yaml", (const char *)data, size};
	cut = memchr(data, '\f', size);
	if (cut != NULL) {
		src[0].len = (size_t)(cut - (const char *)data);
		src[1] = (struct config_source){"b.yaml", cut + 1,
		                                size - src[0].len - 1};
		n = 2;
	}
	cfg = config_parse(src, n, fuzz_env, &errs);
	if (errs.count > CONFIG_MAX_ERRORS + 1 ||
	    (cfg == NULL) != (errs.total > 0))
		abort();
	if (cfg != NULL) {
		FILE *null = fopen("/dev/null", "w");
		if (null != NULL) {
			config_print(cfg, null);
			fclose(null);
		}
	}
	config_free(cfg);
	config_errors_clear(&errs);
	return 0;
}
