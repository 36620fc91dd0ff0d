/*
 * top.c - agentsupctl top: the tree as sample.c samples it, about once a
 * second, drawn full-screen; keys steer the selected node.
 *
 * Drawing is erase() then refresh(): curses sends only the cells that
 * changed, so the screen does not flicker.
 */
#include <errno.h>
#include <curses.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "reply.h"
#include "sample.h"
#include "top.h"

#define TOP_REFRESH_MS   1000
#define EXIT_UNAVAILABLE 69

struct top {
	struct sampler s;
	size_t sel, top_line;
	char selpath[SAMPLE_PATH_MAX];
	bool gone; /* the selected node left the tree: nothing is selected */
	time_t sampled; /* the wall clock of the last sample agentsupd gave */
};

/* Keep the selection on the same node when the tree changed. One that
 * left it (a reload removed it) selects nothing, not the root: a stop or
 * a drain keyed a moment after the refresh stopped the whole tree. */
static void
top_reselect(struct top *t)
{
	if (t->s.nrows == 0)
		return;
	for (size_t i = 0; !t->gone && i < t->s.nrows; i++)
		if (strcmp(t->s.rows[i].path, t->selpath) == 0) {
			t->sel = i;
			return;
		}
	if (t->selpath[0] == '\0') { /* the first sample: the root */
		t->sel = 0;
		snprintf(t->selpath, sizeof t->selpath, "%s",
		         t->s.rows[0].path);
		return;
	}
	t->gone = true;
	if (t->sel >= t->s.nrows)
		t->sel = t->s.nrows - 1; /* the cursor near where it was */
}

/* --- drawing -------------------------------------------------------------- */

static void
top_fmt_secs(double s, char *buf, size_t len)
{
	if (s < 10)
		snprintf(buf, len, "%.1fs", s);
	else if (s < 3600)
		snprintf(buf, len, "%.0fs", s);
	else
		snprintf(buf, len, "%.0fh", s / 3600);
}

static void
top_fmt_rate(double v, char *buf, size_t len)
{
	if (v < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, v < 100 ? "%.1f" : "%.0f", v);
}

/* One row as a line of text, cut to the screen's width by curses. */
static void
top_line(const struct top *t, const struct row *r, char *buf, size_t len)
{
	char name[96], pid[24] = "-", cpu[16] = "-", rss[16] = "-",
	               beat[16] = "-", sr[16], tr[16], cost[16] = "-",
	               bud[48] = "", circ[20] = "";
	int ind = r->depth * 2 < 40 ? r->depth * 2 : 40;

	snprintf(name, sizeof name, "%*s%s%s", ind, "", r->name,
	         r->held      ? " (held)"
	         : r->pending ? " (waits)"
	                      : "");
	if (r->pid > 0)
		snprintf(pid, sizeof pid, "%ld", r->pid);
	if (r->cpu >= 0)
		snprintf(cpu, sizeof cpu, "%.1f", r->cpu);
	if (r->rss_kb >= 0)
		snprintf(rss, sizeof rss, "%.1fM", (double)r->rss_kb / 1024);
	if (r->has_beat)
		top_fmt_secs((double)r->beat_ms / 1000, beat, sizeof beat);
	top_fmt_rate(r->steps_rate, sr, sizeof sr);
	top_fmt_rate(r->tokens_rate, tr, sizeof tr);
	if (r->has_cost)
		snprintf(cost, sizeof cost, "%.4f", r->cost);
	if (t->s.show_budget && r->budget >= 0) {
		int fill = r->budget >= 1 ? 10 : (int)(r->budget * 10);
		snprintf(bud, sizeof bud, " [%.*s%.*s]%4.0f%%", fill,
		         "##########", 10 - fill, "..........",
		         r->budget < 99.99 ? r->budget * 100 : 9999.);
	} else if (t->s.show_budget)
		snprintf(bud, sizeof bud, " %-17s", "");
	if (t->s.show_circuit)
		snprintf(circ, sizeof circ, " %-9s",
		         r->circuit[0] ? r->circuit : "-");
	snprintf(buf, len,
	         "%-28.28s %-9s %7s %8llu %6s %8s %6s %8s %8s %9s%s%s  %s",
	         name, t->s.lost ? "?" : r->state, pid,
	         (unsigned long long)r->restarts, cpu, rss, beat, sr, tr, cost,
	         bud, circ, strcmp(r->reason, "-") ? r->reason : "");
}

/* The first line; while agentsupd cannot be reached its clock stops at
 * the last sample and it says the tree below is stale (it kept ticking
 * over a tree shown as running). */
static void
top_header(const struct top *t)
{
	size_t running = 0;
	char when[16], hdr[256], top[512];
	time_t now = t->s.lost ? t->sampled : time(NULL);
	struct tm tm;

	for (size_t i = 0; i < t->s.nrows; i++)
		running += strcmp(t->s.rows[i].state, "running") == 0;
	localtime_r(&now, &tm);
	strftime(when, sizeof when, "%H:%M:%S", &tm);
	/* cut at the screen's width: a narrow one wrapped it onto row 1 */
	if (t->s.lost)
		snprintf(top, sizeof top,
		         "agentsup top  %s  STALE: agentsupd unreachable; "
		         "%zu nodes as of %s, states unknown",
		         t->s.sock, t->s.nrows, when);
	else
		snprintf(top, sizeof top,
		         "agentsup top  %s  %zu nodes, %zu running  %s",
		         t->s.sock, t->s.nrows, running, when);
	if (t->s.lost)
		attron(A_BOLD);
	mvaddnstr(0, 0, top, COLS);
	attroff(A_BOLD);
	snprintf(hdr, sizeof hdr,
	         "%-28s %-9s %7s %8s %6s %8s %6s %8s %8s %9s%s%s  %s", "NAME",
	         "STATE", "PID", "RESTARTS", "CPU%", "RSS", "BEAT", "STEPS/s",
	         "TOK/s", "COST", t->s.show_budget ? " BUDGET            " : "",
	         t->s.show_circuit ? " CIRCUIT  " : "", "LAST");
	attron(A_BOLD);
	mvaddnstr(1, 0, hdr, COLS);
	attroff(A_BOLD);
}

static int
top_state_color(const struct row *r)
{
	if (strcmp(r->state, "running") == 0)
		return 1;
	if (r->pending) /* its restart waits for its supervisor */
		return 3;
	if (strcmp(r->state, "stopped") == 0 && !r->held &&
	    strcmp(r->reason, "-") != 0 && strcmp(r->reason, "exit:0") != 0)
		return 2;
	return strcmp(r->state, "stopped") == 0 ? 0 : 3;
}

/* The first row shown: the selection in view, and no empty lines below the
 * tree while rows above it are hidden (a terminal that grew back after a
 * shrink kept them hidden until k scrolled up to them). */
static void
top_scroll(struct top *t, size_t body)
{
	if (t->sel < t->top_line)
		t->top_line = t->sel;
	if (t->sel >= t->top_line + body)
		t->top_line = t->sel - body + 1;
	if (t->top_line + body > t->s.nrows)
		t->top_line = t->s.nrows > body ? t->s.nrows - body : 0;
}

static void
top_draw(struct top *t)
{
	int body = LINES - 4 > 1 ? LINES - 4 : 1;
	char line[512];

	erase();
	top_header(t);
	top_scroll(t, (size_t)body);
	for (size_t i = t->top_line;
	     i < t->s.nrows && i < t->top_line + (size_t)body; i++) {
		int y = 2 + (int)(i - t->top_line), c;
		top_line(t, &t->s.rows[i], line, sizeof line);
		if (i == t->sel && !t->gone)
			attron(A_REVERSE);
		else if (t->s.lost) /* the last sample, not the tree now */
			attron(A_DIM);
		else if ((c = top_state_color(&t->s.rows[i])) > 0 &&
		         has_colors())
			attron(COLOR_PAIR(c));
		mvaddnstr(y, 0, line, COLS);
		attrset(A_NORMAL);
	}
	mvaddnstr(LINES - 2, 0, t->s.msg, COLS);
	snprintf(line, sizeof line,
	         "j/k select  s stop  r restart  d drain  q quit   "
	         "selected: %s%s",
	         t->selpath, t->gone ? " (gone: select with j/k)" : "");
	attron(A_BOLD);
	mvaddnstr(LINES - 1, 0, line, COLS);
	attroff(A_BOLD);
	refresh();
}

/* --- keys ----------------------------------------------------------------- */

static void
top_command(struct top *t, const char *cmd)
{
	const msgpack_object *res;

	if (t->s.nrows == 0)
		return;
	if (t->gone) {
		snprintf(t->s.msg, sizeof t->s.msg,
		         "%s: %s is gone; select a node (j/k)", cmd,
		         t->selpath);
		return;
	}
	res = sample_request(&t->s, cmd, t->selpath, &(bool){false});
	if (res != NULL)
		snprintf(t->s.msg, sizeof t->s.msg, "%s %s: %.*s", cmd,
		         t->selpath,
		         res->type == MSGPACK_OBJECT_STR
		                 ? (int)res->via.str.size
		                 : 2,
		         res->type == MSGPACK_OBJECT_STR ? res->via.str.ptr
		                                         : "ok");
}

/* The row under the cursor selected (after the selection was gone, the
 * first j/k selects where the cursor is). */
static void
top_select(struct top *t)
{
	if (t->sel >= t->s.nrows)
		return;
	t->gone = false;
	snprintf(t->selpath, sizeof t->selpath, "%s", t->s.rows[t->sel].path);
}

/* false when the user quits. */
static bool
top_key(struct top *t, int ch, double *next)
{
	switch (ch) {
	case 'q':
	case 'Q':
		return false;
	case KEY_UP:
	case 'k':
		if (t->sel > 0 && !t->gone)
			t->sel--;
		top_select(t);
		break;
	case KEY_DOWN:
	case 'j':
		if (t->sel + 1 < t->s.nrows && !t->gone)
			t->sel++;
		top_select(t);
		break;
	case 's':
	case 'r':
	case 'd':
		top_command(t, ch == 's'   ? "stop"
		               : ch == 'r' ? "restart"
		                           : "drain");
		*next = 0; /* show its effect at once */
		break;
	default: /* KEY_RESIZE included: the redraw below fits the size */
		break;
	}
	return true;
}

static volatile sig_atomic_t top_hangup;

/* SIGHUP (the terminal gone, or kill -HUP): ncurses restores the terminal
 * on SIGINT and SIGTERM only; the loop ends as on q, the terminal put back
 * as it was, and exits 129 as the signal would. */
static void
top_on_hup(int sig)
{
	(void)sig;
	top_hangup = 1;
}

static void
top_curses_init(void)
{
	struct sigaction sa = {.sa_handler = top_on_hup};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGHUP, &sa, NULL); /* no SA_RESTART: getch returns */
	initscr();
	cbreak();
	noecho();
	keypad(stdscr, TRUE);
	curs_set(0);
	if (has_colors()) {
		start_color();
		use_default_colors();
		init_pair(1, COLOR_GREEN, -1);
		init_pair(2, COLOR_RED, -1);
		init_pair(3, COLOR_YELLOW, -1);
	}
}

int
top_run(const char *sock, int fd)
{
	struct top t = {0};
	double next = 0, now, wait;
	int ch;

	/* piped, curses would write its escapes into the pipe for ever */
	if (!isatty(STDOUT_FILENO)) {
		close(fd);
		fprintf(stderr, "agentsupctl: top needs a terminal: for a "
		                "script, use status or --json status\n");
		return CTL_EXIT_USAGE;
	}
	if (sample_init(&t.s, sock) < 0) {
		close(fd);
		fprintf(stderr, "agentsupctl: out of memory\n");
		return EXIT_UNAVAILABLE;
	}
	t.s.fd = fd;
	top_curses_init();
	for (;;) {
		if ((now = sample_now()) >= next) {
			sample_refresh(&t.s);
			if (!t.s.lost)
				t.sampled = time(NULL);
			top_reselect(&t);
			next = now + TOP_REFRESH_MS / 1000.0;
		}
		top_draw(&t);
		wait = (next - sample_now()) * 1000;
		timeout(wait > 0 ? (int)wait + 1 : 0);
		/* ERR: the refresh is due (or a signal came) */
		if ((ch = getch()) != ERR && !top_key(&t, ch, &next))
			break;
		if (top_hangup)
			break;
	}
	endwin();
	sample_fini(&t.s);
	return top_hangup ? 128 + SIGHUP : 0;
}
