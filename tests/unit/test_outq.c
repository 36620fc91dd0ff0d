/*
 * test_outq.c - lines to a pipe or a socket nobody reads: never blocking,
 * never changing the shared descriptor, whole lines only, and an exact
 * count of the dropped ones said once the reader is back.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "outq.h"

#define LINES 2000

/* A hang is a failure, not a stuck suite. */
static void
on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "test_outq: blocked in a write\n";
	(void)!write(STDOUT_FILENO, msg, sizeof msg - 1);
	_exit(1);
}

/* Read all there is now from fd (non-blocking), appended to buf. */
static size_t
read_all(int fd, char *buf, size_t at, size_t cap)
{
	ssize_t n;

	while (at < cap && (n = read(fd, buf + at, cap - at)) > 0)
		at += (size_t)n;
	return at;
}

/* Send LINES numbered lines into q while nobody reads, then read, flush,
 * read: every line that arrived is whole and in order, and the marker
 * gives the exact number of the others. */
static void
check_lines(struct outq *q, int rfd)
{
	static char got[1 << 20];
	char line[128];
	size_t len = 0;
	unsigned long next = 0, seen = 0, dropped = 0;

	alarm(10);
	for (unsigned long i = 0; i < LINES; i++) {
		int n = snprintf(line, sizeof line,
		                 "line %06lu padding padding padding\n", i);
		outq_line(q, line, (size_t)n);
	}
	alarm(0);
	assert_true(q->dropped > 0); /* the queue was full */
	for (int rounds = 0; rounds < 1000; rounds++) {
		len = read_all(rfd, got, len, sizeof got - 1);
		if (!outq_flush(q))
			break;
	}
	len = read_all(rfd, got, len, sizeof got - 1);
	got[len] = '\0';
	for (char *p = got, *e; (e = strchr(p, '\n')) != NULL; p = e + 1) {
		unsigned long k, n;
		if (sscanf(p, "line %lu padding padding padding\n", &k) == 1) {
			assert_true(k >= next);
			next = k + 1;
			seen++;
		} else {
			assert_int_equal(sscanf(p,
			                        "test: %lu log lines "
			                        "dropped (stderr not writable)",
			                        &n),
			                 1);
			dropped += n;
		}
	}
	assert_int_equal(got[len - 1], '\n');
	assert_true(dropped > 0);
	assert_int_equal(seen + dropped, LINES);
}

static void
test_pipe_nobody_reads(void **state)
{
	struct outq q;
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_true(fcntl(p[1], F_SETPIPE_SZ, 4096) > 0);
	outq_open(&q, p[1], 16384, "test");
	assert_int_not_equal(q.fd, p[1]); /* a private reopening */
	assert_int_equal(q.how, OUTQ_WRITE);
	assert_true(fcntl(q.fd, F_GETFD) & FD_CLOEXEC);
	/* the shared description stays blocking for everyone else */
	assert_false(fcntl(p[1], F_GETFL) & O_NONBLOCK);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	check_lines(&q, p[0]);
	assert_false(fcntl(p[1], F_GETFL) & O_NONBLOCK);
	outq_close(&q);
	close(p[0]);
	close(p[1]);
}

static void
test_socket_nobody_reads(void **state)
{
	struct outq q;
	int sv[2], small = 4096;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
	                 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	outq_open(&q, sv[0], 16384, "test");
	assert_int_equal(q.fd, sv[0]);
	assert_int_equal(q.how, OUTQ_SEND);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	check_lines(&q, sv[1]);
	assert_false(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
	outq_close(&q);
	close(sv[0]);
	close(sv[1]);
}

/* Where no private reopening is possible: poll, then at most PIPE_BUF
 * bytes, on the shared blocking descriptor itself. */
static void
test_poll_fallback(void **state)
{
	struct outq q;
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_true(fcntl(p[1], F_SETPIPE_SZ, 4096) > 0);
	outq_open(&q, p[1], 16384, "test");
	outq_close(&q); /* drop the private reopening: play the fallback */
	q.fd = p[1];
	q.how = OUTQ_POLL;
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	check_lines(&q, p[0]);
	assert_false(fcntl(p[1], F_GETFL) & O_NONBLOCK);
	outq_close(&q);
	close(p[0]);
	close(p[1]);
}

/* A reader that went away for good: lines are counted, nothing blocks. */
static void
test_reader_gone(void **state)
{
	struct outq q;
	int p[2];

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	outq_open(&q, p[1], 1024, "test");
	close(p[0]);
	for (int i = 0; i < 100; i++)
		outq_line(&q, "gone\n", 5);
	assert_int_equal(q.dropped, 100);
	assert_int_equal(q.len, 0);
	assert_false(outq_flush(&q));
	outq_close(&q);
	close(p[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_pipe_nobody_reads),
	        cmocka_unit_test(test_socket_nobody_reads),
	        cmocka_unit_test(test_poll_fallback),
	        cmocka_unit_test(test_reader_gone),
	};
	signal(SIGALRM, on_alarm);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
