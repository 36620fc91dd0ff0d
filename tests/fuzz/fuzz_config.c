/*
 * fuzz_config.c - libFuzzer target: one supervisor.d file of arbitrary
 * bytes through libyaml and our typing and linking. It must be refused with
 * errors or accepted, never crash or leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/agentsup-fuzz-XXXXXX.yaml";
	struct config_errors errs = {0};
	const char *p = path;
	struct config *cfg;
	int fd = mkstemps(path, 5);

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	cfg = config_load_files(&p, 1, &errs);
	if (cfg != NULL) {
		FILE *null = fopen("/dev/null", "w");
		if (null != NULL) {
			config_print(cfg, null);
			fclose(null);
		}
	}
	config_free(cfg);
	config_errors_clear(&errs);
	unlink(path);
	return 0;
}
