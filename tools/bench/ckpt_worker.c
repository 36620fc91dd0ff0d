/*
 * ckpt_worker.c - the checkpoint benchmark's worker
 * (tools/bench/checkpoint.py). It stores a checkpoint of SIZE bytes every
 * PERIOD_MS (its first one at a random phase, so a thousand of them spread over
 * the period) and reports each one's checkpoint -> checkpoint_ok latency as a
 * datagram to $BENCH_SOCK (kind 4, t_ns = the latency). PERIOD_MS 0: one
 * checkpoint, then idle for ever (the idle-memory figure).
 *
 *   ckpt_worker SIZE PERIOD_MS
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <agentsup/agent.h>

struct report {
	int64_t t_ns;
	int32_t pid;
	int32_t kind;
};

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One datagram to $BENCH_SOCK on a socket kept open. */
static void
report(int fd, const struct sockaddr_un *sa, int64_t t, int kind)
{
	struct report r = {t, (int32_t)getpid(), kind};

	(void)sendto(fd, &r, sizeof r, 0, (const struct sockaddr *)sa,
	             sizeof *sa);
}

int
main(int argc, char **argv)
{
	const char *path = getenv("BENCH_SOCK");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t size = argc > 1 ? strtoul(argv[1], NULL, 10) : 4096;
	long period = argc > 2 ? strtol(argv[2], NULL, 10) : 1000;
	struct agentsup *a = agentsup_open("c");
	char *data = malloc(size + 1);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (a == NULL || data == NULL || fd < 0 || path == NULL ||
	    strlen(path) >= sizeof sa.sun_path)
		return 2;
	strcpy(sa.sun_path, path);
	report(fd, &sa, now_ns(), 0);
	srand((unsigned)getpid());
	memset(data, 'c', size);
	agentsup_await_welcome(a, 5000);
	if (period > 0)
		agentsup_wait(a, rand() % (int)period);
	for (;;) {
		int64_t t0 = now_ns(), seq;

		snprintf(data, size + 1, "%lld", (long long)t0);
		if ((seq = agentsup_checkpoint(a, data, size)) < 0)
			return 1;
		while (agentsup_checkpoint_acked(a) < (uint64_t)seq) {
			struct pollfd p = {agentsup_fd(a), POLLIN, 0};

			if (agentsup_want_write(a))
				p.events |= POLLOUT;
			if (poll(&p, 1, 5000) < 0 || agentsup_process(a) < 0)
				return 1;
		}
		report(fd, &sa, now_ns() - t0, 4);
		if (period == 0)
			for (;;)
				if (agentsup_wait(a, 60000) < 0)
					return 0;
		agentsup_wait(a,
		              (int)(period - (now_ns() - t0) / 1000000 > 0
		                            ? period - (now_ns() - t0) / 1000000
		                            : 0));
	}
}
