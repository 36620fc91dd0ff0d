/*
 * top.c - agentsupctl top: the tree, refreshed about once a second from
 * `status` requests on one control connection, with what the daemon does not
 * measure (CPU % and RSS of each worker, progress rates) computed here from
 * /proc and from successive samples. Keys steer the selected node.
 *
 * Drawing is erase() then refresh(): curses sends only the cells that
 * changed, so the screen does not flicker.
 */
#include <errno.h>
#include <curses.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agentsup/wire.h"
#include "top.h"

#define TOP_REFRESH_MS   1000
#define TOP_REPLY_MS     5000
#define TOP_MAX_FRAME    (16u << 20)
#define TOP_PATH_MAX     256
#define EXIT_UNAVAILABLE 69

/* One node as the last status showed it, and what we computed for it. */
struct row {
	char path[TOP_PATH_MAX], name[64], kind[12], state[16], reason[48];
	char circuit[16];
	int depth;
	long pid; /* 0: none */
	uint64_t restarts, beat_ms, steps, tokens, ticks;
	double cost, budget; /* budget: the largest spend/limit, or < 0 */
	bool held, has_beat, has_steps, has_tokens, has_cost, has_ticks;
	double cpu, steps_rate, tokens_rate; /* < 0: not known yet */
	long rss_kb;                         /* < 0: not known */
};

struct top {
	const char *sock;
	int fd;
	uint64_t id;
	uint8_t *buf;
	size_t len, cap, used;
	msgpack_zone zone;
	struct row *rows, *prev;
	size_t nrows, nprev, caprows, capprev;
	double t, tprev; /* when rows and prev were sampled */
	size_t sel, top_line;
	char selpath[TOP_PATH_MAX];
	char msg[512];
	bool show_budget, show_circuit;
	bool lost; /* msg says why the connection was lost */
	long ticks_per_s, page_kb;
};

static double
top_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- the control connection ---------------------------------------------- */

static int
top_connect(struct top *t)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (strlen(t->sock) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, t->sock);
	if ((t->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(t->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(t->fd);
		t->fd = -1;
		errno = e;
		return -1;
	}
	t->len = t->used = 0;
	return 0;
}

static void
top_disconnect(struct top *t, const char *why)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	t->lost = true;
	snprintf(t->msg, sizeof t->msg, "agentsupd at %s: %s", t->sock, why);
}

static int
top_send(struct top *t, const char *cmd, const char *arg)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t off = 0;
	int r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	agentsup_wire_begin(&sb);
	msgpack_pack_map(&pk, 4);
	agentsup_wire_kv_str(&pk, "t", AGENTSUP_T_REQ);
	agentsup_wire_kv_uint(&pk, "id", ++t->id);
	agentsup_wire_kv_str(&pk, "cmd", cmd);
	agentsup_wire_pack_str(&pk, "args");
	msgpack_pack_array(&pk, arg ? 1 : 0);
	if (arg != NULL)
		agentsup_wire_pack_str(&pk, arg);
	r = agentsup_wire_end(&sb, AGENTSUP_MAX_FRAME);
	while (r == 0 && off < sb.size) {
		ssize_t n =
		        send(t->fd, sb.data + off, sb.size - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = -1;
		else
			off += (size_t)n;
	}
	msgpack_sbuffer_destroy(&sb);
	return r;
}

/* Read more bytes within the deadline; -1 on EOF, error or timeout. */
static int
top_fill(struct top *t, double deadline)
{
	struct pollfd p = {.fd = t->fd, .events = POLLIN};
	double left = deadline - top_now();
	ssize_t n;

	if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0)
		return -1; /* a signal (a resize) costs this refresh only */
	if (t->cap - t->len < 65536) {
		t->cap = t->cap ? t->cap * 2 : 262144;
		if (t->cap > 2 * TOP_MAX_FRAME ||
		    (t->buf = realloc(t->buf, t->cap)) == NULL)
			return -1;
	}
	n = recv(t->fd, t->buf + t->len, t->cap - t->len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;
	t->len += (size_t)n;
	return 0;
}

/* The response to our last request (its "result"), or NULL with t->msg
 * saying why. The objects live until the next call. */
static const msgpack_object *
top_request(struct top *t, const char *cmd, const char *arg)
{
	double deadline = top_now() + TOP_REPLY_MS / 1000.0;
	struct agentsup_frame f;
	const msgpack_object *id, *ok, *body;
	uint64_t want;
	int r;

	if (t->fd < 0 && top_connect(t) < 0) {
		top_disconnect(t, strerror(errno));
		return NULL;
	}
	if (top_send(t, cmd, arg) < 0) {
		top_disconnect(t, "cannot send");
		return NULL;
	}
	want = t->id;
	for (;;) {
		if (t->used > 0) { /* drop the frame handed out last */
			memmove(t->buf, t->buf + t->used, t->len - t->used);
			t->len -= t->used;
			t->used = 0;
		}
		msgpack_zone_clear(&t->zone);
		r = agentsup_wire_decode(t->buf, t->len, TOP_MAX_FRAME,
		                         &t->zone, &f);
		if (r == AGENTSUP_WIRE_MORE) {
			if (top_fill(t, deadline) < 0) {
				top_disconnect(t, "no reply");
				return NULL;
			}
			continue;
		}
		if (r != AGENTSUP_WIRE_OK) {
			top_disconnect(t, agentsup_wire_strerror(r));
			return NULL;
		}
		t->used = f.size;
		id = agentsup_wire_get(&f.map, "id");
		if (!agentsup_wire_is(&f, AGENTSUP_T_RES) || id == NULL ||
		    id->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    id->via.u64 != want)
			continue;
		break;
	}
	ok = agentsup_wire_get(&f.map, "ok");
	if (ok == NULL || ok->type != MSGPACK_OBJECT_BOOLEAN ||
	    !ok->via.boolean) {
		body = agentsup_wire_get(&f.map, "error");
		snprintf(t->msg, sizeof t->msg, "%s: %.*s", cmd,
		         body && body->type == MSGPACK_OBJECT_STR
		                 ? (int)body->via.str.size
		                 : 6,
		         body && body->type == MSGPACK_OBJECT_STR
		                 ? body->via.str.ptr
		                 : "failed");
		return NULL;
	}
	return agentsup_wire_get(&f.map, "result");
}

/* --- the model: status rows ---------------------------------------------- */

static void
top_str(const msgpack_object *m, const char *key, char *buf, size_t len)
{
	const msgpack_object *v = agentsup_wire_get(m, key);
	size_t n = 0;

	if (v != NULL && v->type == MSGPACK_OBJECT_STR)
		n = v->via.str.size < len - 1 ? v->via.str.size : len - 1;
	if (n > 0)
		memcpy(buf, v->via.str.ptr, n);
	buf[n] = '\0';
}

static bool
top_uint(const msgpack_object *m, const char *key, uint64_t *out)
{
	const msgpack_object *v = m ? agentsup_wire_get(m, key) : NULL;

	if (v == NULL || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return false;
	*out = v->via.u64;
	return true;
}

static bool
top_num(const msgpack_object *m, const char *key, double *out)
{
	const msgpack_object *v = m ? agentsup_wire_get(m, key) : NULL;

	if (v == NULL)
		return false;
	if (v->type == MSGPACK_OBJECT_FLOAT32 ||
	    v->type == MSGPACK_OBJECT_FLOAT64)
		*out = v->via.f64;
	else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		*out = (double)v->via.u64;
	else
		return false;
	return true;
}

/* The fullest budget as a fraction: status carries either
 * {limits: {k: n}, spend: {k: n}} or {k: {limit: n, spend: n}}. */
static double
top_budget(const msgpack_object *b)
{
	const msgpack_object *lim = agentsup_wire_get(b, "limits");
	const msgpack_object *sp = agentsup_wire_get(b, "spend");
	bool split = lim && sp && lim->type == MSGPACK_OBJECT_MAP &&
	             sp->type == MSGPACK_OBJECT_MAP;
	const msgpack_object *keys = split ? lim : b;
	double best = -1, l, s;
	char key[32];

	for (uint32_t i = 0; i < keys->via.map.size; i++) {
		const msgpack_object_kv *kv = &keys->via.map.ptr[i];
		bool ok;

		if (kv->key.type != MSGPACK_OBJECT_STR ||
		    kv->key.via.str.size >= sizeof key)
			continue;
		memcpy(key, kv->key.via.str.ptr, kv->key.via.str.size);
		key[kv->key.via.str.size] = '\0';
		if (split)
			ok = top_num(lim, key, &l) && top_num(sp, key, &s);
		else
			ok = kv->val.type == MSGPACK_OBJECT_MAP &&
			     top_num(&kv->val, "limit", &l) &&
			     top_num(&kv->val, "spend", &s);
		if (ok && l > 0 && s / l > best)
			best = s / l;
	}
	return best;
}

static void
top_parse_row(struct top *t, const msgpack_object *n, struct row *r)
{
	const msgpack_object *prog = agentsup_wire_get(n, "progress");
	const msgpack_object *held = agentsup_wire_get(n, "held");
	const msgpack_object *bud = agentsup_wire_get(n, "budget");
	uint64_t v = 0;

	memset(r, 0, sizeof *r);
	if (prog != NULL && prog->type != MSGPACK_OBJECT_MAP)
		prog = NULL;
	top_str(n, "path", r->path, sizeof r->path);
	top_str(n, "name", r->name, sizeof r->name);
	top_str(n, "kind", r->kind, sizeof r->kind);
	top_str(n, "state", r->state, sizeof r->state);
	top_str(n, "last_reason", r->reason, sizeof r->reason);
	top_str(n, "circuit", r->circuit, sizeof r->circuit);
	r->depth = top_uint(n, "depth", &v) && v < 64 ? (int)v : 0;
	r->pid = top_uint(n, "pid", &v) ? (long)v : 0;
	top_uint(n, "restarts", &r->restarts);
	r->has_beat = top_uint(n, "heartbeat_age_ms", &r->beat_ms);
	r->has_steps = top_uint(prog, "steps", &r->steps);
	r->has_tokens = top_uint(prog, "tokens", &r->tokens);
	r->has_cost = top_num(prog, "cost", &r->cost);
	r->held = held && held->type == MSGPACK_OBJECT_BOOLEAN &&
	          held->via.boolean;
	r->budget =
	        bud && bud->type == MSGPACK_OBJECT_MAP ? top_budget(bud) : -1;
	t->show_budget |= r->budget >= 0;
	t->show_circuit |= r->circuit[0] != '\0';
	r->cpu = r->steps_rate = r->tokens_rate = -1;
	r->rss_kb = -1;
}

/* CPU ticks and resident size of a worker from /proc. */
static void
top_proc(struct top *t, struct row *r)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st, size, res;
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "/proc/%ld/stat", r->pid);
	if ((f = fopen(path, "re")) == NULL)
		return;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) != NULL &&
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	           &ut, &st) == 2) {
		r->ticks = ut + st;
		r->has_ticks = true;
	}
	snprintf(path, sizeof path, "/proc/%ld/statm", r->pid);
	if ((f = fopen(path, "re")) == NULL)
		return;
	if (fscanf(f, "%lu %lu", &size, &res) == 2)
		r->rss_kb = (long)res * t->page_kb;
	fclose(f);
}

/* The same node, same process, in the previous sample (usually at the same
 * index, so this is O(1) for a tree that did not change). */
static const struct row *
top_prev(const struct top *t, size_t i, const struct row *r)
{
	if (i < t->nprev && strcmp(t->prev[i].path, r->path) == 0)
		return t->prev[i].pid == r->pid ? &t->prev[i] : NULL;
	for (size_t k = 0; k < t->nprev; k++)
		if (strcmp(t->prev[k].path, r->path) == 0)
			return t->prev[k].pid == r->pid ? &t->prev[k] : NULL;
	return NULL;
}

static void
top_rates(struct top *t, size_t i, struct row *r, double dt)
{
	const struct row *p = top_prev(t, i, r);

	if (p == NULL || dt <= 0)
		return;
	if (r->has_ticks && p->has_ticks && r->ticks >= p->ticks)
		r->cpu = (double)(r->ticks - p->ticks) * 100.0 /
		         ((double)t->ticks_per_s * dt);
	if (r->has_steps && p->has_steps && r->steps >= p->steps)
		r->steps_rate = (double)(r->steps - p->steps) / dt;
	if (r->has_tokens && p->has_tokens && r->tokens >= p->tokens)
		r->tokens_rate = (double)(r->tokens - p->tokens) / dt;
}

/* Ask for the status and turn it into rows; the old rows become prev. */
static void
top_refresh(struct top *t)
{
	const msgpack_object *arr = top_request(t, "status", NULL);
	struct row *swap;
	size_t capswap;

	if (arr == NULL || arr->type != MSGPACK_OBJECT_ARRAY)
		return;
	if (t->lost)
		t->msg[0] = '\0';
	t->lost = false;
	swap = t->prev, capswap = t->capprev;
	t->prev = t->rows, t->capprev = t->caprows, t->nprev = t->nrows;
	t->rows = swap, t->caprows = capswap, t->nrows = 0;
	t->tprev = t->t;
	t->t = top_now();
	if (arr->via.array.size > t->caprows) {
		t->caprows = arr->via.array.size;
		free(t->rows);
		if ((t->rows = calloc(t->caprows, sizeof *t->rows)) == NULL) {
			t->caprows = 0;
			return;
		}
	}
	t->show_budget = t->show_circuit = false;
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		struct row *r = &t->rows[t->nrows++];
		top_parse_row(t, &arr->via.array.ptr[i], r);
		if (r->pid > 0)
			top_proc(t, r);
		top_rates(t, i, r, t->t - t->tprev);
	}
	t->sel = 0; /* keep the selection on the same node */
	for (size_t i = 0; i < t->nrows; i++)
		if (strcmp(t->rows[i].path, t->selpath) == 0)
			t->sel = i;
	if (t->nrows > 0)
		snprintf(t->selpath, sizeof t->selpath, "%s",
		         t->rows[t->sel].path);
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
	         r->held ? " (held)" : "");
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
	if (t->show_budget && r->budget >= 0) {
		int fill = r->budget >= 1 ? 10 : (int)(r->budget * 10);
		snprintf(bud, sizeof bud, " [%.*s%.*s]%4.0f%%", fill,
		         "##########", 10 - fill, "..........",
		         r->budget < 99.99 ? r->budget * 100 : 9999.);
	} else if (t->show_budget)
		snprintf(bud, sizeof bud, " %-17s", "");
	if (t->show_circuit)
		snprintf(circ, sizeof circ, " %-9s",
		         r->circuit[0] ? r->circuit : "-");
	snprintf(buf, len,
	         "%-28.28s %-9s %7s %8llu %6s %8s %6s %8s %8s %9s%s%s  %s",
	         name, r->state, pid, (unsigned long long)r->restarts, cpu, rss,
	         beat, sr, tr, cost, bud, circ,
	         strcmp(r->reason, "-") ? r->reason : "");
}

static void
top_header(const struct top *t)
{
	size_t running = 0;
	char when[16], hdr[256];
	time_t now = time(NULL);
	struct tm tm;

	for (size_t i = 0; i < t->nrows; i++)
		running += strcmp(t->rows[i].state, "running") == 0;
	localtime_r(&now, &tm);
	strftime(when, sizeof when, "%H:%M:%S", &tm);
	mvprintw(0, 0, "agentsup top  %s  %zu nodes, %zu running  %s", t->sock,
	         t->nrows, running, when);
	snprintf(hdr, sizeof hdr,
	         "%-28s %-9s %7s %8s %6s %8s %6s %8s %8s %9s%s%s  %s", "NAME",
	         "STATE", "PID", "RESTARTS", "CPU%", "RSS", "BEAT", "STEPS/s",
	         "TOK/s", "COST", t->show_budget ? " BUDGET            " : "",
	         t->show_circuit ? " CIRCUIT  " : "", "LAST");
	attron(A_BOLD);
	mvaddnstr(1, 0, hdr, COLS);
	attroff(A_BOLD);
}

static int
top_state_color(const struct row *r)
{
	if (strcmp(r->state, "running") == 0)
		return 1;
	if (strcmp(r->state, "stopped") == 0 && !r->held &&
	    strcmp(r->reason, "-") != 0 && strcmp(r->reason, "exit:0") != 0)
		return 2;
	return strcmp(r->state, "stopped") == 0 ? 0 : 3;
}

static void
top_draw(struct top *t)
{
	int body = LINES - 4 > 1 ? LINES - 4 : 1;
	char line[512];

	erase();
	top_header(t);
	if (t->sel < t->top_line)
		t->top_line = t->sel;
	if (t->sel >= t->top_line + (size_t)body)
		t->top_line = t->sel - (size_t)body + 1;
	for (size_t i = t->top_line;
	     i < t->nrows && i < t->top_line + (size_t)body; i++) {
		int y = 2 + (int)(i - t->top_line), c;
		top_line(t, &t->rows[i], line, sizeof line);
		if (i == t->sel)
			attron(A_REVERSE);
		else if ((c = top_state_color(&t->rows[i])) > 0 && has_colors())
			attron(COLOR_PAIR(c));
		mvaddnstr(y, 0, line, COLS);
		attrset(A_NORMAL);
	}
	mvaddnstr(LINES - 2, 0, t->msg, COLS);
	snprintf(line, sizeof line,
	         "j/k select  s stop  r restart  d drain  q quit   "
	         "selected: %s",
	         t->selpath);
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

	if (t->nrows == 0)
		return;
	res = top_request(t, cmd, t->selpath);
	if (res != NULL)
		snprintf(t->msg, sizeof t->msg, "%s %s: %.*s", cmd, t->selpath,
		         res->type == MSGPACK_OBJECT_STR
		                 ? (int)res->via.str.size
		                 : 2,
		         res->type == MSGPACK_OBJECT_STR ? res->via.str.ptr
		                                         : "ok");
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
		if (t->sel > 0)
			t->sel--;
		break;
	case KEY_DOWN:
	case 'j':
		if (t->sel + 1 < t->nrows)
			t->sel++;
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
	if (t->sel < t->nrows)
		snprintf(t->selpath, sizeof t->selpath, "%s",
		         t->rows[t->sel].path);
	return true;
}

static void
top_curses_init(void)
{
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
top_run(const char *sock)
{
	struct top t = {.sock = sock, .fd = -1};
	double next = 0, now, wait;
	int ch;

	if (top_connect(&t) < 0) {
		fprintf(stderr,
		        "agentsupctl: cannot reach agentsupd at %s: %s\n", sock,
		        strerror(errno));
		return EXIT_UNAVAILABLE;
	}
	if (!msgpack_zone_init(&t.zone, 4096)) {
		close(t.fd);
		fprintf(stderr, "agentsupctl: out of memory\n");
		return EXIT_UNAVAILABLE;
	}
	t.ticks_per_s = sysconf(_SC_CLK_TCK);
	t.page_kb = sysconf(_SC_PAGESIZE) / 1024;
	top_curses_init();
	for (;;) {
		if ((now = top_now()) >= next) {
			top_refresh(&t);
			next = now + TOP_REFRESH_MS / 1000.0;
		}
		top_draw(&t);
		wait = (next - top_now()) * 1000;
		timeout(wait > 0 ? (int)wait + 1 : 0);
		/* ERR: the refresh is due (or a signal came) */
		if ((ch = getch()) != ERR && !top_key(&t, ch, &next))
			break;
	}
	endwin();
	if (t.fd >= 0)
		close(t.fd);
	msgpack_zone_destroy(&t.zone);
	free(t.buf);
	free(t.rows);
	free(t.prev);
	return 0;
}
