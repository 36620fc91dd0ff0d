/* test_logcap.c - output capture: line splitting, escaping, the ring,
 * rotation naming, stderr that cannot keep up, and the pipes. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "logcap.h"
#include "logcap_impl.h"
#include "logcap_reap.h"

struct fixture {
	struct ev_loop *loop;
	int out[2]; /* stands for agentsupd's stderr */
	char dir[64];
	struct logcap_set *set;
};

static struct logcap_limits
limits(const char *dir, uint64_t max, unsigned keep, size_t tail)
{
	return (struct logcap_limits){dir, max, keep, tail, false, false};
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct logcap_limits lim = limits(NULL, 0, 0, 8192);

	assert_non_null(f);
	f->loop = ev_default_loop(0);
	assert_int_equal(pipe2(f->out, O_CLOEXEC), 0);
	/* a reader that never blocks the test: we read what is there */
	assert_int_equal(fcntl(f->out[0], F_SETFL, O_NONBLOCK), 0);
	strcpy(f->dir, "/tmp/test_logcap.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->set = logcap_set_new(f->loop, f->out[1], &lim);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	logcap_set_free(f->set);
	close(f->out[0]);
	close(f->out[1]);
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* What the set wrote to "stderr" so far. */
static char *
shown(struct fixture *f)
{
	static char buf[1 << 20];
	ssize_t n, len = 0;

	while ((n = read(f->out[0], buf + len, sizeof buf - 1 - (size_t)len)) >
	       0)
		len += n;
	buf[len] = '\0';
	return buf;
}

static void
feed(struct logcap *lc, enum logcap_stream s, const char *text)
{
	logcap_feed(lc, s, text, strlen(text));
}

static void
test_lines_prefixed(void **state)
{
	struct fixture *f = *state;
	struct logcap *lc = logcap_get(f->set, "w");

	logcap_get(f->set, "longer");
	feed(lc, LOGCAP_STDOUT, "a\nb");
	assert_string_equal(shown(f), "w      | a\n");
	feed(lc, LOGCAP_STDOUT, "c\r\n");
	feed(lc, LOGCAP_STDERR, "oops\n\n");
	assert_string_equal(shown(f),
	                    "w      | bc\nw      ! oops\nw      ! \n");
}

/* As text_term_escape says: control characters, DEL, '\\', bidirectional
 * overrides and invalid UTF-8 made visible; other UTF-8 passes. The word-at-
 * a-time check must send each of them there, wherever in the line. */
static void
test_control_characters_escaped(void **state)
{
	struct fixture *f = *state;
	struct logcap *lc = logcap_get(f->set, "w");
	char tail[128];

	feed(lc, LOGCAP_STDOUT, "\x1b[31mred\x7f\ttab\n");
	assert_string_equal(shown(f), "w | \\x1b[31mred\\x7f\\ttab\n");
	logcap_tail(lc, 1, tail, sizeof tail);
	assert_string_equal(tail, "\\x1b[31mred\\x7f\\ttab\n");
	feed(lc, LOGCAP_STDOUT, "plain ascii, then a backslash: \\\n");
	assert_string_equal(shown(f),
	                    "w | plain ascii, then a backslash: \\\\\n");
	feed(lc, LOGCAP_STDOUT, "caf\xc3\xa9 ok, then \xe2\x80\xae evil\n");
	assert_string_equal(shown(f),
	                    "w | caf\xc3\xa9 ok, then \\u202e evil\n");
	feed(lc, LOGCAP_STDOUT, "0123456789abcdef\xff\n");
	assert_string_equal(shown(f), "w | 0123456789abcdef\\xff\n");
	feed(lc, LOGCAP_STDOUT, "0123456789abcdefok\n");
	assert_string_equal(shown(f), "w | 0123456789abcdefok\n");
}

static void
test_long_line_split(void **state)
{
	struct fixture *f = *state;
	struct logcap *lc = logcap_get(f->set, "w");
	static char big[LOGCAP_LINE_MAX * 2 + 200];
	char *out;

	memset(big, 'x', sizeof big - 2);
	big[sizeof big - 2] = '\n';
	/* in two pieces, so the partial-line path is taken too */
	logcap_feed(lc, LOGCAP_STDOUT, big, 100);
	logcap_feed(lc, LOGCAP_STDOUT, big + 100, strlen(big) - 100);
	out = shown(f);
	/* 4096 + 4096 + 198 */
	assert_int_equal(strlen(out), 3 * 4 + 2 * LOGCAP_LINE_MAX + 198 + 3);
	assert_int_equal(strchr(out, '\n') - out, 4 + LOGCAP_LINE_MAX);
	/* exactly LINE_MAX: one line, not one and an empty one */
	memset(big, 'y', LOGCAP_LINE_MAX);
	logcap_feed(lc, LOGCAP_STDOUT, big, LOGCAP_LINE_MAX);
	logcap_feed(lc, LOGCAP_STDOUT, "\n", 1);
	assert_int_equal(strlen(shown(f)), 4 + LOGCAP_LINE_MAX + 1);
}

/* A cut falls between UTF-8 characters, whichever way the bytes came: one
 * inside a character left invalid UTF-8 in NAME.log and escapes on stderr,
 * in `logs` and in events. */
static void
test_long_line_cut_between_characters(void **state)
{
	struct fixture *f = *state;
	struct logcap *lc = logcap_get(f->set, "w");
	static char big[3 * 2000 + 2];

	for (int i = 0; i < 2000; i++)
		memcpy(big + 3 * i, "\xe2\x82\xac", 3); /* "€" */
	big[6000] = '\n';
	for (size_t split = 0; split <= 5000; split += 1000) {
		char *out, *nl;
		logcap_feed(lc, LOGCAP_STDOUT, big, split);
		logcap_feed(lc, LOGCAP_STDOUT, big + split, 6001 - split);
		out = shown(f);
		nl = strchr(out, '\n');
		assert_non_null(nl);
		/* "w | " then 1365 whole characters (4095 bytes), no escapes */
		assert_int_equal(nl - out, 4 + 4095);
		assert_null(strstr(out, "\\x"));
		assert_int_equal(strlen(nl + 1), 4 + 6000 - 4095 + 1);
	}
}

static void
test_flush_ends_partial_line(void **state)
{
	struct fixture *f = *state;
	struct logcap *lc = logcap_get(f->set, "w");

	feed(lc, LOGCAP_STDERR, "no newline");
	assert_string_equal(shown(f), "");
	logcap_flush(lc, LOGCAP_STDERR);
	assert_string_equal(shown(f), "w ! no newline\n");
}

static void
test_ring_wraps_whole_lines(void **state)
{
	struct fixture *f = *state;
	struct logcap_limits lim = limits(NULL, 0, 0, 64);
	struct logcap *lc;
	char line[32], tail[256];

	logcap_set_limits(f->set, &lim);
	lc = logcap_get(f->set, "w");
	assert_int_equal(logcap_tail(lc, 0, tail, sizeof tail), 0);
	for (int i = 0; i < 20; i++) {
		snprintf(line, sizeof line, "line %02d\n", i); /* 8 bytes */
		feed(lc, LOGCAP_STDOUT, line);
	}
	/* 64 bytes hold exactly the last 8 lines */
	logcap_tail(lc, 0, tail, sizeof tail);
	assert_string_equal(tail, "line 12\nline 13\nline 14\nline 15\n"
	                          "line 16\nline 17\nline 18\nline 19\n");
	logcap_tail(lc, 2, tail, sizeof tail);
	assert_string_equal(tail, "line 18\nline 19\n");
	/* a cut through the oldest line: it is left out */
	feed(lc, LOGCAP_STDOUT, "abc\n");
	logcap_tail(lc, 0, tail, sizeof tail);
	assert_string_equal(tail, "line 13\nline 14\nline 15\nline 16\n"
	                          "line 17\nline 18\nline 19\nabc\n");
	/* a small buffer: the newest whole lines that fit */
	assert_int_equal(logcap_tail(lc, 0, tail, 14), 12);
	assert_string_equal(tail, "line 19\nabc\n");
	/* a new process starts a new ring */
	logcap_spawned(lc, true, (int[2]){-1, -1});
	assert_int_equal(logcap_tail(lc, 0, tail, sizeof tail), 0);
	(void)shown(f);
}

/* A read of many lines: only its end can stay in the ring, exactly. */
static void
test_ring_from_one_big_read(void **state)
{
	struct fixture *f = *state;
	struct logcap_limits lim = limits(NULL, 0, 0, 64);
	struct logcap *lc;
	static char many[8 * 2000 + 1]; /* snprintf's last NUL */
	char tail[256];

	logcap_set_limits(f->set, &lim);
	lc = logcap_get(f->set, "w");
	feed(lc, LOGCAP_STDOUT, "old one\n");
	for (int i = 0; i < 2000; i++)
		snprintf(many + 8 * i, 9, "l %05d\n", i);
	logcap_feed(lc, LOGCAP_STDOUT, many, 8 * 2000);
	logcap_tail(lc, 0, tail, sizeof tail);
	assert_string_equal(tail, "l 01992\nl 01993\nl 01994\nl 01995\n"
	                          "l 01996\nl 01997\nl 01998\nl 01999\n");
	/* the same with \r\n endings and a partial line at the end */
	for (int i = 0; i < 1600; i++)
		snprintf(many + 10 * i, 11, "rr %05d\r\n", i);
	logcap_feed(lc, LOGCAP_STDOUT, many, 16000);
	logcap_feed(lc, LOGCAP_STDOUT, "tail", 4);
	/* a line begun is shown last (a prompt a hung worker waits on) */
	logcap_tail(lc, 3, tail, sizeof tail);
	assert_string_equal(tail, "rr 01598\nrr 01599\ntail\n");
	logcap_flush(lc, LOGCAP_STDOUT);
	logcap_tail(lc, 3, tail, sizeof tail);
	assert_string_equal(tail, "rr 01598\nrr 01599\ntail\n");
	/* short CRLF lines: 3 bytes read, 2 kept; still a full ring */
	for (int i = 0; i < 2000; i++)
		memcpy(many + 3 * i, "a\r\n", 3);
	logcap_feed(lc, LOGCAP_STDOUT, many, 6000);
	assert_int_equal(logcap_tail(lc, 0, tail, sizeof tail), 64);
	(void)shown(f);
}

static void
test_ring_lazy(void **state)
{
	struct fixture *f = *state;
	struct logcap *lc = logcap_get(f->set, "idle");
	char tail[16];

	/* nothing printed: an empty tail, no ring, NULL is an empty worker */
	assert_int_equal(logcap_tail(lc, 20, tail, sizeof tail), 0);
	assert_string_equal(tail, "");
	assert_int_equal(logcap_tail(NULL, 20, tail, sizeof tail), 0);
	assert_ptr_equal(logcap_find(f->set, "idle"), lc);
	assert_null(logcap_find(f->set, "other"));
	logcap_remove(f->set, "idle");
	assert_null(logcap_find(f->set, "idle"));
}

static off_t
file_size(const char *dir, const char *name)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* line: 99 bytes of c and a newline, a C string. */
static void
line_of(char line[101], char c)
{
	memset(line, c, 99);
	line[99] = '\n';
	line[100] = '\0';
}

static void
test_rotation_naming(void **state)
{
	struct fixture *f = *state;
	struct logcap_limits lim = limits(f->dir, 1024, 2, 8192);
	struct logcap *lc;
	char line[101];

	logcap_set_limits(f->set, &lim);
	lc = logcap_get(f->set, "rot");
	line_of(line, 'r');
	for (int i = 0; i < 100; i++) /* 10000 bytes in 100-byte lines */
		feed(lc, LOGCAP_STDOUT, line);
	assert_int_equal(file_size(f->dir, "rot.log.1"), 1000);
	assert_int_equal(file_size(f->dir, "rot.log.2"), 1000);
	assert_int_equal(file_size(f->dir, "rot.log.3"), -1);
	assert_int_equal(file_size(f->dir, "rot.log"), 1000);
	(void)shown(f);
}

/* One read of many lines (as a flood delivers them) still rotates at max. */
static void
test_rotation_within_one_read(void **state)
{
	struct fixture *f = *state;
	struct logcap_limits lim = limits(f->dir, 1024, 3, 8192);
	struct logcap *lc;
	static char lines[5000];

	logcap_set_limits(f->set, &lim);
	lc = logcap_get(f->set, "one");
	for (size_t i = 0; i < sizeof lines; i++)
		lines[i] = i % 100 == 99 ? '\n' : 'o';
	logcap_feed(lc, LOGCAP_STDOUT, lines, sizeof lines);
	assert_int_equal(file_size(f->dir, "one.log"), 1000);
	assert_int_equal(file_size(f->dir, "one.log.1"), 1000);
	assert_int_equal(file_size(f->dir, "one.log.3"), 1000);
	assert_int_equal(file_size(f->dir, "one.log.4"), -1);
	(void)shown(f);
}

/* A flood under a tiny max and a large keep: each rotation renames every
 * kept file, and one read of 100 KiB at max 1 KiB with 1,000 kept was
 * 100,000 renames in one turn of the loop (seconds, the watchdog late).
 * The renames are budgeted: nine rotations here and what the rate gives
 * back meanwhile, the rest of the read into the current file, nothing
 * lost. */
static void
test_rotation_renames_are_budgeted(void **state)
{
	struct fixture *f = *state;
	struct logcap_limits lim = limits(f->dir, 1024, 1000, 8192);
	struct logcap *lc;
	static char lines[100 * 1024];
	off_t all = 0, sz;
	char name[32];
	int rotated = 0;

	logcap_set_limits(f->set, &lim);
	lc = logcap_get(f->set, "fl");
	for (size_t i = 0; i < sizeof lines; i++)
		lines[i] = i % 100 == 99 ? '\n' : 'f';
	logcap_feed(lc, LOGCAP_STDOUT, lines, sizeof lines);
	all = file_size(f->dir, "fl.log");
	assert_true(all > 1024); /* grown past max: no budget left */
	for (int g = 1; (sz = (snprintf(name, sizeof name, "fl.log.%d", g),
	                       file_size(f->dir, name))) > 0;
	     g++) {
		rotated++;
		all += sz;
	}
	/* the burst (10,000 renames: nine rotations of 1,001) and what the
	 * rate gave back while it ran; not the 99 a read of 100 KiB asked */
	assert_in_range(rotated, 9, 60);
	assert_int_equal(all, (off_t)sizeof lines);
}

static void
test_rotation_keep_zero(void **state)
{
	struct fixture *f = *state;
	struct logcap_limits lim = limits(f->dir, 1024, 0, 8192);
	struct logcap *lc;

	logcap_set_limits(f->set, &lim);
	lc = logcap_get(f->set, "k0");
	for (int i = 0; i < 30; i++)
		feed(lc, LOGCAP_STDERR,
		     "0123456789012345678901234567890123456"
		     "789012345678901234567890123456789\n");
	assert_true(file_size(f->dir, "k0.log") <= 1024);
	assert_int_equal(file_size(f->dir, "k0.log.1"), -1);
	(void)shown(f);
}

/* log_keep lowered: the next rotation removes the files beyond it (they
 * stayed forever), and a keep lowered again sweeps again. */
static void
test_rotation_lowered_keep_sweeps(void **state)
{
	struct fixture *f = *state;
	struct logcap_limits lim = limits(f->dir, 1024, 5, 8192);
	struct logcap *lc;
	char line[101];

	logcap_set_limits(f->set, &lim);
	lc = logcap_get(f->set, "lk");
	line_of(line, 'k');
	for (int i = 0; i < 60; i++)
		feed(lc, LOGCAP_STDOUT, line);
	assert_int_equal(file_size(f->dir, "lk.log.5"), 1000);
	logcap_file_limits(lc, 1024, 2);
	for (int i = 0; i < 10; i++) /* one rotation */
		feed(lc, LOGCAP_STDOUT, line);
	assert_int_equal(file_size(f->dir, "lk.log.1"), 1000);
	assert_int_equal(file_size(f->dir, "lk.log.2"), 1000);
	assert_int_equal(file_size(f->dir, "lk.log.3"), -1);
	assert_int_equal(file_size(f->dir, "lk.log.4"), -1);
	assert_int_equal(file_size(f->dir, "lk.log.5"), -1);
	logcap_file_limits(lc, 1024, 0);
	for (int i = 0; i < 10; i++)
		feed(lc, LOGCAP_STDOUT, line);
	assert_int_equal(file_size(f->dir, "lk.log.1"), -1);
	assert_int_equal(file_size(f->dir, "lk.log.2"), -1);
}

/* Many beyond the new keep: a few a rotation (each one's last close the
 * reaper's, whose queue is short), the rest at the next rotations. */
static void
test_rotation_lowered_keep_sweeps_a_few_at_a_time(void **state)
{
	struct fixture *f = *state;
	struct logcap_limits lim = limits(f->dir, 1024, 12, 8192);
	struct logcap *lc;
	char line[101], name[32];
	int left;

	logcap_set_limits(f->set, &lim);
	lc = logcap_get(f->set, "st");
	line_of(line, 's');
	for (int i = 0; i < 130; i++)
		feed(lc, LOGCAP_STDOUT, line);
	assert_int_equal(file_size(f->dir, "st.log.12"), 1000);
	logcap_file_limits(lc, 1024, 1);
	for (int r = 1; r <= 3; r++) {
		for (int i = 0; i < 10; i++) /* one rotation */
			feed(lc, LOGCAP_STDOUT, line);
		left = 0;
		for (int g = 2; g <= 12; g++) {
			snprintf(name, sizeof name, "st.log.%d", g);
			left += file_size(f->dir, name) > 0;
		}
		assert_int_equal(left, r < 3 ? 11 - r * LOGCAP_SWEEP_STEP : 0);
	}
	assert_int_equal(file_size(f->dir, "st.log.1"), 1000);
}

/* A worker's own log_max and log_keep rotate its file, the set's the
 * others'; back to the set's (0, -1) when a reload takes them away. */
static void
test_rotation_a_workers_own(void **state)
{
	struct fixture *f = *state;
	struct logcap_limits lim = limits(f->dir, 100000, 5, 8192);
	struct logcap *own, *other;
	char line[101];

	logcap_set_limits(f->set, &lim);
	own = logcap_get(f->set, "own");
	other = logcap_get(f->set, "other");
	logcap_file_limits(own, 1024, 1);
	logcap_file_limits(other, 0, -1); /* the set's: nothing made */
	line_of(line, 'w');
	for (int i = 0; i < 50; i++) { /* 5000 bytes each */
		feed(own, LOGCAP_STDOUT, line);
		feed(other, LOGCAP_STDOUT, line);
	}
	assert_int_equal(file_size(f->dir, "own.log.1"), 1000);
	assert_int_equal(file_size(f->dir, "own.log.2"), -1);
	assert_int_equal(file_size(f->dir, "other.log"), 5000);
	assert_int_equal(file_size(f->dir, "other.log.1"), -1);
	logcap_file_limits(own, 0, -1);
	for (int i = 0; i < 50; i++)
		feed(own, LOGCAP_STDOUT, line);
	assert_int_equal(file_size(f->dir, "own.log"), 1000 + 5000);
	(void)shown(f);
}

static void
test_reopen_follows_a_moved_file(void **state)
{
	struct fixture *f = *state;
	struct logcap_limits lim = limits(f->dir, 1 << 20, 1, 8192);
	struct logcap *lc;
	char from[128], to[128];

	logcap_set_limits(f->set, &lim);
	lc = logcap_get(f->set, "mv");
	feed(lc, LOGCAP_STDOUT, "before\n");
	snprintf(from, sizeof from, "%s/mv.log", f->dir);
	snprintf(to, sizeof to, "%s/mv.log.old", f->dir);
	assert_int_equal(rename(from, to), 0); /* logrotate's create */
	logcap_reopen(f->set);
	feed(lc, LOGCAP_STDOUT, "after\n");
	assert_int_equal(file_size(f->dir, "mv.log.old"), 7);
	assert_int_equal(file_size(f->dir, "mv.log"), 6);
	(void)shown(f);
}

static int sink_lines;
static char sink_last[64];

static void
sink(void *arg, const char *name, enum logcap_stream s, const char *line,
     size_t len)
{
	(void)arg;
	sink_lines++;
	snprintf(sink_last, sizeof sink_last, "%s%c%.*s", name,
	         s == LOGCAP_STDERR ? '!' : '|', (int)len, line);
}

static void
test_sink_sees_each_line(void **state)
{
	struct fixture *f = *state;
	struct logcap *lc = logcap_get(f->set, "s");

	sink_lines = 0;
	logcap_set_sink(f->set, sink, NULL);
	feed(lc, LOGCAP_STDERR, "one\ntwo\n");
	assert_int_equal(sink_lines, 2);
	assert_string_equal(sink_last, "s!two");
	(void)shown(f);
}

static void
test_full_stderr_drops_never_blocks(void **state)
{
	struct fixture *f = *state;
	struct logcap *lc = logcap_get(f->set, "flood");
	char line[101], junk[4096];
	int fl = fcntl(f->out[1], F_GETFL);
	bool told = false;

	/* fill the pipe that stands for stderr: nobody reads it */
	assert_int_equal(fcntl(f->out[1], F_SETFL, fl | O_NONBLOCK), 0);
	memset(junk, 'j', sizeof junk);
	while (write(f->out[1], junk, sizeof junk) > 0)
		;
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(fcntl(f->out[1], F_SETFL, fl), 0);
	line_of(line, 'f');
	for (int i = 0; i < 10000; i++) /* 1 MB: would block if we waited */
		feed(lc, LOGCAP_STDOUT, line);
	assert_true(logcap_dropped(f->set) > 5000);
	/* once stderr drains, the next line is preceded by a count */
	(void)shown(f);
	feed(lc, LOGCAP_STDOUT, "again\n");
	for (int i = 0; i < 100 && !told; i++) {
		const char *out = shown(f);
		told = strstr(out, "agentsupd: worker output: ") != NULL &&
		       strstr(out, "log lines dropped") != NULL;
		ev_run(f->loop, EVRUN_NOWAIT); /* stderr is writable again */
	}
	assert_true(told);
}

static void
test_pipes_read_at_exit(void **state)
{
	struct fixture *f = *state;
	struct logcap *lc = logcap_get(f->set, "p");
	int child[2], keep;
	char tail[64];

	assert_int_equal(logcap_pipes(lc, true, false, child), 0);
	assert_true(child[0] >= 0);
	assert_int_equal(child[1], -1);
	assert_int_equal(fcntl(child[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	/* as the child would, before it exits */
	assert_int_equal(write(child[0], "last words\nno newline", 21), 21);
	keep = dup(child[0]); /* logcap_spawned closes the other copy */
	logcap_spawned(lc, true, child);
	assert_int_equal(child[0], -1);
	close(keep);
	logcap_exited(lc);
	logcap_tail(lc, 20, tail, sizeof tail);
	assert_string_equal(tail, "last words\nno newline\n");
	assert_string_equal(shown(f), "p | last words\np | no newline\n");
}

/* The bytes of dir/name (static, one file at a time); its length. */
static const char *
slurp(const char *dir, const char *name, size_t *len)
{
	static char buf[1 << 20];
	char path[128];
	FILE *fp;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	fp = fopen(path, "r");
	assert_non_null(fp);
	*len = fread(buf, 1, sizeof buf - 1, fp);
	buf[*len] = '\0';
	fclose(fp);
	return buf;
}

/* log_time: every line of NAME.log after the time it was read, however it
 * came: whole lines of a read, a partial completed by the next, a line
 * cut at LOGCAP_LINE_MAX, one ended at EOF, the quiet path (no stderr). */
static void
test_log_time(void **state)
{
	struct fixture *f = *state;
	struct logcap_limits lim = limits(f->dir, 1 << 20, 1, 8192);
	static char big[LOGCAP_LINE_MAX + 3];
	const char *want[] = {"one", "two", "partial", NULL, "x", "last"};
	char *text, *line, *save = NULL;
	struct logcap *lc;
	size_t len;
	int n = 0;

	lim.time = true;
	logcap_set_limits(f->set, &lim);
	lc = logcap_get(f->set, "t");
	feed(lc, LOGCAP_STDOUT, "one\ntwo\npar");
	feed(lc, LOGCAP_STDOUT, "tial\n");
	memset(big, 'b', LOGCAP_LINE_MAX + 1);
	big[LOGCAP_LINE_MAX + 1] = '\n';
	feed(lc, LOGCAP_STDOUT, big); /* cut: LINE_MAX b's, then "b" */
	feed(lc, LOGCAP_STDERR, "x\nlast");
	logcap_flush(lc, LOGCAP_STDERR);
	text = strdup(slurp(f->dir, "t.log", &len));
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save), n++) {
		assert_true(strlen(line) > 25);
		assert_true(line[4] == '-' && line[10] == 'T' &&
		            line[19] == '.' && line[23] == 'Z' &&
		            line[24] == ' ');
		if (n == 3) /* the cut line, then its last byte */
			assert_int_equal(strlen(line + 25), LOGCAP_LINE_MAX);
		else if (n == 4)
			assert_string_equal(line + 25, "b");
		else
			assert_string_equal(line + 25, want[n < 4 ? n : n - 1]);
	}
	assert_int_equal(n, 7);
	free(text);
	(void)shown(f);
}

/* log_time on the quiet path (stderr on /dev/null, nobody following),
 * whose spans hold many lines: each line still gets its time. */
static void
test_log_time_quiet(void **state)
{
	struct fixture *f = *state;
	struct logcap_limits lim = limits(f->dir, 1 << 30, 1, 64);
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	static char in[5000 * 8];
	struct logcap_set *quiet;
	char *text, *line, *save = NULL, want[16];
	size_t len = 0;
	int n = 0;

	assert_true(null >= 0);
	lim.time = true;
	quiet = logcap_set_new(f->loop, null, &lim);
	for (int i = 0; i < 5000; i++)
		len += (size_t)sprintf(in + len, "l%d\n", i);
	logcap_feed(logcap_get(quiet, "q"), LOGCAP_STDOUT, in, len);
	text = strdup(slurp(f->dir, "q.log", &len));
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save), n++) {
		snprintf(want, sizeof want, "l%d", n);
		assert_true(strlen(line) > 25 && line[23] == 'Z');
		assert_string_equal(line + 25, want);
	}
	assert_int_equal(n, 5000);
	free(text);
	logcap_set_free(quiet);
	close(null);
}

/* Lines of every kind: plain, CRLF, escaped, empty, and some too long
 * (each cut twice); a partial line at the end. Its length; *cuts. */
static size_t
mixed_input(char *buf, size_t cap, size_t *cuts)
{
	size_t n = 0;

	*cuts = 0;
	for (int i = 0; n + 3 * LOGCAP_LINE_MAX + 20000 < cap; i++) {
		if (i % 97 == 5) {
			memset(buf + n, 'L', 2 * LOGCAP_LINE_MAX + 7);
			n += 2 * LOGCAP_LINE_MAX + 7;
			buf[n++] = '\n';
			*cuts += 2;
		} else if (i % 13 == 0) {
			n += (size_t)sprintf(buf + n, "crlf %d\r\n", i);
		} else if (i % 17 == 0) {
			n += (size_t)sprintf(buf + n, "esc \x1b[1m%d\\\n", i);
		} else if (i % 19 == 0) {
			buf[n++] = '\n';
		} else {
			n += (size_t)sprintf(buf + n, "line %d of many\n", i);
		}
	}
	for (int i = 0; n + 64 < cap && i < 1000; i++) /* the ring's end */
		n += (size_t)sprintf(buf + n, "%s %d\n", i % 2 ? "odd" : "even",
		                     i);
	memcpy(buf + n, "partial", 7);
	return n + 7;
}

/* With stderr on /dev/null and nobody following, lines are not looked at
 * one by one: the file and the ring must still be exactly what they are
 * when every line is (stderr a pipe). Fed whole, then in odd pieces. */
static void
test_quiet_path_same_file_and_ring(void **state)
{
	struct fixture *f = *state;
	static char in[600000], file_each[1 << 20];
	size_t cuts, n = mixed_input(in, sizeof in, &cuts), len, len_each;
	size_t pieces[] = {600000, 4099, 65536, 4096, 1000};
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	char tail_each[9000], tail_quiet[9000], name[16];
	const char *got;

	assert_true(null >= 0);
	for (size_t k = 0; k < sizeof pieces / sizeof *pieces; k++) {
		struct logcap_limits lim = limits(f->dir, 1 << 30, 1, 8192);
		struct logcap_set *quiet = logcap_set_new(f->loop, null, &lim);
		struct logcap *a, *b;

		logcap_set_limits(f->set, &lim);
		snprintf(name, sizeof name, "e%zu", k);
		a = logcap_get(f->set, name);
		snprintf(name, sizeof name, "q%zu", k);
		b = logcap_get(quiet, name);
		for (size_t off = 0; off < n; off += pieces[k]) {
			size_t m = n - off < pieces[k] ? n - off : pieces[k];
			logcap_feed(a, LOGCAP_STDOUT, in + off, m);
			logcap_feed(b, LOGCAP_STDOUT, in + off, m);
			(void)shown(f);
		}
		logcap_tail(a, 0, tail_each, sizeof tail_each);
		logcap_tail(b, 0, tail_quiet, sizeof tail_quiet);
		assert_true(strlen(tail_each) > 8000);
		assert_string_equal(tail_quiet, tail_each);
		logcap_flush(a, LOGCAP_STDOUT);
		logcap_flush(b, LOGCAP_STDOUT);
		(void)shown(f);
		snprintf(name, sizeof name, "e%zu.log", k);
		got = slurp(f->dir, name, &len_each);
		memcpy(file_each, got, len_each);
		assert_int_equal(len_each, n + cuts + 1); /* + partial's \n */
		snprintf(name, sizeof name, "q%zu.log", k);
		got = slurp(f->dir, name, &len);
		assert_memory_equal(got, file_each, len_each);
		assert_int_equal(len, len_each);
		logcap_set_free(quiet);
	}
	close(null);
}

static int follow_asked, follow_answer;

static bool
follow(void *arg, const char *name)
{
	(void)arg;
	follow_asked++;
	return follow_answer && strcmp(name, "s") == 0;
}

/* Lines are made for the sink only while someone follows the worker. */
static void
test_sink_only_when_followed(void **state)
{
	struct fixture *f = *state;
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	struct logcap_limits lim = limits(NULL, 0, 0, 8192);
	struct logcap_set *set = logcap_set_new(f->loop, null, &lim);
	struct logcap *lc = logcap_get(set, "s"), *other = logcap_get(set, "o");
	char tail[64];

	sink_lines = 0;
	follow_asked = follow_answer = 0;
	logcap_set_sink(set, sink, NULL);
	logcap_set_follow(set, follow);
	feed(lc, LOGCAP_STDOUT, "one\ntwo\n");
	assert_int_equal(sink_lines, 0);
	assert_int_equal(follow_asked, 1); /* once per read, not per line */
	follow_answer = 1;
	feed(lc, LOGCAP_STDOUT, "three\nfour\n");
	feed(other, LOGCAP_STDOUT, "not followed\n");
	assert_int_equal(sink_lines, 2);
	assert_string_equal(sink_last, "s|four");
	logcap_tail(lc, 0, tail, sizeof tail);
	assert_string_equal(tail, "one\ntwo\nthree\nfour\n");
	logcap_set_free(set);
	close(null);
	/* stderr shown (a pipe) does not make lines the sink's */
	follow_answer = 0;
	logcap_set_sink(f->set, sink, NULL);
	logcap_set_follow(f->set, follow);
	feed(logcap_get(f->set, "s"), LOGCAP_STDOUT, "five\n");
	assert_string_equal(shown(f), "s | five\n");
	assert_int_equal(sink_lines, 2);
}

/* A worker that never prints holds no text, whatever its pipes did; one
 * that printed a little holds a small ring, which grows to log_tail. */
static void
test_silent_holds_nothing(void **state)
{
	struct fixture *f = *state;
	struct logcap *lc = logcap_get(f->set, "quiet");
	int child[2];
	char line[101];

	assert_int_equal(logcap_pipes(lc, true, true, child), 0);
	logcap_spawned(lc, true, child);
	logcap_exited(lc);
	assert_null(lc->txt);
	logcap_flush(lc, LOGCAP_STDERR);
	assert_null(lc->txt);
	feed(lc, LOGCAP_STDOUT, "a few words\n");
	assert_non_null(lc->txt);
	assert_true(lc->txt->ring.cap <= LOGCAP_RING_MIN);
	assert_null(lc->txt->part[LOGCAP_STDOUT]); /* no partial line */
	line_of(line, 'g');
	for (int i = 0; i < 200; i++)
		feed(lc, LOGCAP_STDOUT, line);
	assert_int_equal(lc->txt->ring.cap, 8192);
	(void)shown(f);
}

/* The ring by itself: growth keeps the bytes in order, the limit holds,
 * a smaller limit starts afresh. */
static void
test_ring_grows_in_order(void **state)
{
	struct logcap_ring r = {0};
	char buf[4096], want[4096];
	size_t n = 0;

	(void)state;
	for (int i = 0; i < 1000; i++) {
		char line[16];
		int k = snprintf(line, sizeof line, "%d\n", i);
		logcap_ring_put(&r, 2048, line, (size_t)k);
		memcpy(want + n, line, (size_t)k);
		n += (size_t)k;
	}
	assert_int_equal(r.cap, 2048);
	assert_int_equal(r.len, 2048);
	logcap_ring_tail(&r, 3, buf, sizeof buf);
	assert_string_equal(buf, "997\n998\n999\n");
	logcap_ring_tail(&r, 0, buf, sizeof buf);
	/* whole lines only: the kept bytes' first line lost its head */
	assert_int_equal(memcmp(buf, want + n - strlen(buf), strlen(buf)), 0);
	assert_true(strlen(buf) > 2040);
	logcap_ring_put(&r, 1024, "x\n", 2);
	assert_int_equal(r.len, 2);
	logcap_ring_tail(&r, 0, buf, sizeof buf);
	assert_string_equal(buf, "x\n");
	logcap_ring_free(&r);
}

/* A last line longer than the ring, or than the caller's buffer, is shown
 * by its end after "…", never inside a UTF-8 character: it was dropped
 * (the oldest line lost its head), and `logs` and the failure event's tail
 * were empty just when a worker's last words mattered. */
static void
test_ring_keeps_a_last_line_that_lost_its_head(void **state)
{
	struct logcap_ring r = {0};
	char line[3001], buf[64];

	(void)state;
	memset(line, 'x', sizeof line - 1);
	line[sizeof line - 1] = '\n';
	logcap_ring_put(&r, 2048, "ERROR: upstream returned 500\n", 29);
	logcap_ring_put(&r, 2048, line, sizeof line);
	assert_true(r.cut);
	logcap_ring_tail(&r, 20, buf, sizeof buf);
	assert_string_equal(buf,
	                    "\xe2\x80\xa6xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                    "xxxxxxxxxxxxxxxxxxxxxxxx\n");
	assert_int_equal(strlen(buf), sizeof buf - 1);
	/* a buffer 2 or 3 bytes larger than the ring (a reload grew
	 * log_tail): it came back empty */
	{
		struct logcap_ring small = {0};
		char b10[10];
		logcap_ring_put(&small, 8, "0123456789abcdefghij\n", 21);
		assert_int_equal(logcap_ring_tail(&small, 20, b10, sizeof b10),
		                 9);
		assert_string_equal(b10, "\xe2\x80\xa6"
		                         "fghij\n");
		logcap_ring_free(&small);
	}
	/* a buffer the ring's size (`logs`) shows it marked too */
	{
		char whole[2049];
		logcap_ring_tail(&r, 20, whole, sizeof whole);
		assert_memory_equal(whole, "\xe2\x80\xa6xx", 5);
		assert_int_equal(strlen(whole), 3 + 2045);
	}
	logcap_ring_clear(&r);
	/* "€" is 3 bytes: a cut at 63 - 3 bytes from the end is mid-character
	 */
	for (int i = 0; i < 40; i++)
		logcap_ring_put(&r, 2048, "\xe2\x82\xac", 3);
	logcap_ring_put(&r, 2048, "\n", 1);
	logcap_ring_tail(&r, 20, buf, sizeof buf);
	assert_memory_equal(buf, "\xe2\x80\xa6\xe2\x82\xac", 6);
	assert_int_equal(strlen(buf), 3 + 19 * 3 + 1);
	/* whole lines still win where one fits */
	logcap_ring_put(&r, 2048, "short\n", 6);
	logcap_ring_tail(&r, 20, buf, sizeof buf);
	assert_string_equal(buf, "short\n");
	logcap_ring_free(&r);
}

/* Rotated-out files are closed by the reaper: every descriptor handed to
 * it is closed by the time it is freed, more than its queue holds too, and
 * without a reaper in place. */
static void
test_reap_closes_everything(void **state)
{
	struct logcap_reap *r = logcap_reap_new();
	int fds[3 * LOGCAP_REAP_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof fds / sizeof *fds; i++) {
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		assert_true(fds[i] >= 0);
		logcap_reap_close(r, fds[i]);
	}
	logcap_reap_free(r);
	for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
		assert_int_equal(fcntl(fds[i], F_GETFD), -1);
	fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	logcap_reap_close(NULL, fds[0]);
	assert_int_equal(fcntl(fds[0], F_GETFD), -1);
}

/* The shared read buffer gives a flood's pages back once the flood is
 * over (small reads in a row, or the flooding stream's end), but not while
 * a flood and a chatty worker take turns. */
static void
test_read_buffer_trimmed_after_a_flood(void **state)
{
	struct fixture *f = *state;
	struct logcap *lc = logcap_get(f->set, "flood");
	static char big[40000];
	int child[2], w;

	memset(big, 'b', sizeof big);
	for (size_t i = 99; i < sizeof big; i += 100)
		big[i] = '\n';
	assert_int_equal(logcap_pipes(lc, true, false, child), 0);
	w = dup(child[0]);
	logcap_spawned(lc, true, child);
	for (int round = 0; round < 100; round++) { /* taking turns */
		assert_int_equal(write(w, big, sizeof big),
		                 (ssize_t)sizeof big);
		ev_run(f->loop, EVRUN_NOWAIT);
		assert_int_equal(write(w, "chat\n", 5), 5);
		ev_run(f->loop, EVRUN_NOWAIT);
		(void)shown(f);
	}
	assert_true(f->set->rbuf_used >= sizeof big);
	for (int i = 0; i < 70; i++) { /* over: small reads only */
		assert_int_equal(write(w, "calm\n", 5), 5);
		ev_run(f->loop, EVRUN_NOWAIT);
		(void)shown(f);
	}
	assert_int_equal(f->set->rbuf_used, 16384);
	assert_int_equal(write(w, big, sizeof big), (ssize_t)sizeof big);
	ev_run(f->loop, EVRUN_NOWAIT);
	assert_true(f->set->rbuf_used >= sizeof big);
	close(w); /* the flood ends: at its EOF */
	ev_run(f->loop, EVRUN_NOWAIT);
	assert_int_equal(f->set->rbuf_used, 16384);
	(void)shown(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_lines_prefixed, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_control_characters_escaped,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_long_line_split, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(
	                test_long_line_cut_between_characters, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_flush_ends_partial_line,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_ring_wraps_whole_lines,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_ring_from_one_big_read,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_ring_lazy, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_rotation_naming, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_rotation_within_one_read,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_rotation_renames_are_budgeted, setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_rotation_lowered_keep_sweeps, setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_rotation_lowered_keep_sweeps_a_few_at_a_time,
	                setup, teardown),
	        cmocka_unit_test_setup_teardown(test_rotation_a_workers_own,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_rotation_keep_zero, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(
	                test_reopen_follows_a_moved_file, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_sink_sees_each_line, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(
	                test_full_stderr_drops_never_blocks, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_pipes_read_at_exit, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(
	                test_quiet_path_same_file_and_ring, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_sink_only_when_followed,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_silent_holds_nothing,
	                                        setup, teardown),
	        cmocka_unit_test(test_ring_grows_in_order),
	        cmocka_unit_test(
	                test_ring_keeps_a_last_line_that_lost_its_head),
	        cmocka_unit_test(test_reap_closes_everything),
	        cmocka_unit_test_setup_teardown(
	                test_read_buffer_trimmed_after_a_flood, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(test_log_time, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_log_time_quiet, setup,
	                                        teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
