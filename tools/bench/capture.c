/*
 * capture.c - the writer of the output-capture benchmark (capture.py):
 * BYTES of 100-byte lines on stdout in 64 KiB writes, then "END\n". Before
 * the first byte it writes its start time (CLOCK_REALTIME, ns) to STAMP, so
 * a driver can time the run from the first byte to the last one landing in
 * a log file, whoever carries it there.
 *
 *   bench_capture BYTES STAMP [linger]
 *
 * With "linger" it then waits for a signal instead of exiting: PM2 drops
 * what it has not yet written when the process exits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE  100
#define CHUNK (655 * LINE) /* ~64 KiB of whole lines */

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
stamp(const char *path)
{
	struct timespec ts;
	FILE *f = fopen(path, "w");

	if (f == NULL || clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return -1;
	fprintf(f, "%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	return fclose(f);
}

/* "line NNNNNNNNNNNN xxx...x\n", cheaply: the writer must not be the
 * bottleneck of what it measures. */
static void
number(char *p, unsigned long long v)
{
	memcpy(p, "line ", 5);
	for (int i = 16; i >= 5; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	p[17] = ' ';
	memset(p + 18, 'x', LINE - 19);
	p[LINE - 1] = '\n';
}

int
main(int argc, char **argv)
{
	static char buf[CHUNK];
	unsigned long long total, done = 0, line = 0;

	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: bench_capture BYTES STAMP [linger]\n");
		return 64;
	}
	total = strtoull(argv[1], NULL, 10);
	if (stamp(argv[2]) < 0) {
		perror("bench_capture: stamp");
		return 1;
	}
	while (done < total) {
		size_t n = 0;
		while (n < CHUNK && done + n < total) {
			number(buf + n, line++);
			n += LINE;
		}
		if (write_all(STDOUT_FILENO, buf, n) < 0) {
			perror("bench_capture: write");
			return 1;
		}
		done += n;
	}
	if (write_all(STDOUT_FILENO, "END\n", 4) < 0)
		return 1;
	if (argc == 4)
		pause(); /* until the carrier is stopped */
	return 0;
}
