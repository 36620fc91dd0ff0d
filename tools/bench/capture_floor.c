/*
 * capture_floor.c - the floor of the output-capture benchmark (capture.py):
 * the least a carrier must do to put a pipe's lines into a log file rotated
 * by size, and nothing else (no loop, no ring, no echo, no other worker).
 * It reads its stdin (a pipe, grown to 1 MiB as agentsupd grows a flooding
 * worker's) 1 MiB at a time and appends whole lines to DIR/NAME.log,
 * rotating it as agentsupd does: the oldest deleted first, the others
 * renamed up, only ever between two lines.
 *
 *   bench_capture_floor DIR NAME MAX KEEP
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_MAX (1 << 20)

static const char *dir, *name;
static unsigned keep;

static void
path(char *buf, size_t len, unsigned gen)
{
	if (gen == 0)
		snprintf(buf, len, "%s/%s.log", dir, name);
	else
		snprintf(buf, len, "%s/%s.log.%u", dir, name, gen);
}

static int
open_log(void)
{
	char p[4096];
	int fd;

	path(p, sizeof p, 0);
	fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror(p);
		exit(1);
	}
	return fd;
}

static int
rotate(int fd)
{
	char from[4096], to[4096];

	close(fd);
	path(to, sizeof to, keep);
	if (unlink(to) < 0 && errno != ENOENT)
		perror(to);
	for (unsigned g = keep; g > 0; g--) {
		path(from, sizeof from, g - 1);
		path(to, sizeof to, g);
		if (rename(from, to) < 0 && errno != ENOENT)
			perror(from);
	}
	return open_log();
}

static void
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			perror("write");
			exit(1);
		}
		p += w;
		n -= (size_t)w;
	}
}

int
main(int argc, char **argv)
{
	static char buf[READ_MAX];
	unsigned long long max, size = 0;
	int fd;

	if (argc != 5) {
		fprintf(stderr,
		        "usage: bench_capture_floor DIR NAME MAX KEEP\n");
		return 64;
	}
	dir = argv[1];
	name = argv[2];
	max = strtoull(argv[3], NULL, 10);
	keep = (unsigned)strtoul(argv[4], NULL, 10);
	(void)fcntl(STDIN_FILENO, F_SETPIPE_SZ, READ_MAX);
	fd = open_log();
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
		const char *p = buf;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0;
		while (n > 0) { /* whole lines up to max, then rotate */
			size_t k = (size_t)n;
			const char *nl;

			if (size + k > max) {
				nl = memrchr(p, '\n',
				             max - size < k ? max - size : k);
				if (nl == NULL && size > 0) {
					fd = rotate(fd);
					size = 0;
					continue;
				}
				k = nl != NULL ? (size_t)(nl - p) + 1 : k;
			}
			write_all(fd, p, k);
			size += k;
			p += k;
			n -= (ssize_t)k;
		}
	}
}
