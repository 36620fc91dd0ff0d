/*
 * ctl.c - agentsupctl: inspect and steer a running agentsupd over its
 * control socket (req/res frames, docs/protocol.md).
 *
 * Exit status: 0 done, 1 agentsupd refused (unknown name, ...), 64 usage,
 * 69 agentsupd could not be reached.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agentsup/wire.h"

#define EXIT_REFUSED     1
#define EXIT_USAGE       64
#define EXIT_UNAVAILABLE 69
#define REPLY_TIMEOUT_MS 30000

struct ctl {
	int fd;
	bool json;
	bool color;
	uint8_t *buf;
	size_t len, cap, used; /* used: the frame handed out last */
	sigset_t waitmask;     /* the signal mask while waiting */
	msgpack_zone zone;
};

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: agentsupctl [--socket PATH] [--json] COMMAND [ARGS]\n"
	        "  status [NAME]       the tree, or one subtree\n"
	        "  start NAME          start a stopped worker or supervisor\n"
	        "  stop NAME           stop it; it stays stopped until "
	        "started\n"
	        "  restart NAME        stop then start (a supervisor: its "
	        "children, in order)\n"
	        "  drain [NAME]        drain one subtree, or the whole tree "
	        "(then agentsupd exits)\n"
	        "  reload              re-read supervisor.d/ and apply it as a "
	        "diff\n"
	        "  events [--follow]   recent events; --follow streams new "
	        "ones\n"
	        "  logs NAME [-n N] [-f]  a worker's last N lines of output "
	        "(20; 0: all kept);\n"
	        "                      -f follows new ones\n"
	        "  shutdown            stop the tree and agentsupd\n"
	        "The socket: --socket, else AGENTSUP_SOCKET, else "
	        "/run/agentsupd.sock (root)\n"
	        "or $XDG_RUNTIME_DIR/agentsupd.sock or "
	        "/tmp/agentsupd-UID.sock.\n");
}

/* AGENTSUP_SOCKET, else the default agentsupd also uses. */
static const char *
default_socket(char *buf, size_t len)
{
	const char *env = getenv("AGENTSUP_SOCKET");

	if (env != NULL && *env != '\0')
		return env;
	return agentsup_wire_default_socket(buf, len) == 0 ? buf : NULL;
}

static int
ctl_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int
send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
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
send_request(struct ctl *c, const char *cmd, const char *arg, int follow)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	agentsup_wire_begin(&sb);
	msgpack_pack_map(&pk, 4);
	agentsup_wire_kv_str(&pk, "t", AGENTSUP_T_REQ);
	agentsup_wire_kv_uint(&pk, "id", 1);
	agentsup_wire_kv_str(&pk, "cmd", cmd);
	agentsup_wire_pack_str(&pk, "args");
	if (follow >= 0) {
		msgpack_pack_array(&pk, 1);
		follow ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
	} else if (arg != NULL) {
		msgpack_pack_array(&pk, 1);
		agentsup_wire_pack_str(&pk, arg);
	} else
		msgpack_pack_array(&pk, 0);
	r = agentsup_wire_end(&sb, AGENTSUP_MAX_FRAME);
	if (r == 0)
		r = send_all(c->fd, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

/* The next frame, waiting up to timeout_ms (-1: for ever). 0, or -1. */
static int
next_frame(struct ctl *c, struct agentsup_frame *f, int timeout_ms)
{
	int r;

	if (c->used > 0) { /* drop the frame handed out last time */
		memmove(c->buf, c->buf + c->used, c->len - c->used);
		c->len -= c->used;
		c->used = 0;
	}
	msgpack_zone_clear(&c->zone);
	for (;;) {
		r = agentsup_wire_decode(c->buf, c->len, 16u << 20, &c->zone,
		                         f);
		if (r == AGENTSUP_WIRE_OK) {
			c->used = f->size;
			return 0;
		}
		if (r != AGENTSUP_WIRE_MORE) {
			fprintf(stderr, "agentsupctl: bad reply: %s\n",
			        agentsup_wire_strerror(r));
			return -1;
		}
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		struct timespec ts = {timeout_ms / 1000,
		                      (long)(timeout_ms % 1000) * 1000000};
		/* SIGINT is blocked except inside ppoll, so it cannot slip in
		 * between a check and the wait: a follow ends here, cleanly */
		r = ppoll(&p, 1, timeout_ms < 0 ? NULL : &ts, &c->waitmask);
		if (r < 0 && errno == EINTR)
			return -1;
		if (r < 0) {
			perror("agentsupctl: poll");
			return -1;
		}
		if (r == 0) {
			fprintf(stderr,
			        "agentsupctl: no reply from agentsupd\n");
			return -1;
		}
		if (c->cap - c->len < 65536) {
			c->cap = c->cap ? c->cap * 2 : 262144;
			if ((c->buf = realloc(c->buf, c->cap)) == NULL) {
				perror("agentsupctl");
				return -1;
			}
		}
		ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len,
		                 MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n < 0 && errno == EINTR)
			return -1;
		if (n <= 0) {
			if (n < 0)
				perror("agentsupctl: read");
			else
				fprintf(stderr,
				        "agentsupctl: agentsupd closed the "
				        "connection\n");
			return -1;
		}
		c->len += (size_t)n;
	}
}

/* --- printing ------------------------------------------------------------- */

static void
json_str(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void
json_print(FILE *f, const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		fputs("null", f);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		fputs(o->via.boolean ? "true" : "false", f);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		fprintf(f, "%llu", (unsigned long long)o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		fprintf(f, "%lld", (long long)o->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		fprintf(f, "%.17g", o->via.f64);
		break;
	case MSGPACK_OBJECT_STR:
		json_str(f, o->via.str.ptr, o->via.str.size);
		break;
	case MSGPACK_OBJECT_ARRAY:
		fputc('[', f);
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			if (i)
				fputc(',', f);
			json_print(f, &o->via.array.ptr[i]);
		}
		fputc(']', f);
		break;
	case MSGPACK_OBJECT_MAP:
		fputc('{', f);
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			if (i)
				fputc(',', f);
			if (kv->key.type == MSGPACK_OBJECT_STR)
				json_str(f, kv->key.via.str.ptr,
				         kv->key.via.str.size);
			else
				fputs("\"?\"", f);
			fputc(':', f);
			json_print(f, &kv->val);
		}
		fputc('}', f);
		break;
	default:
		fputs("null", f); /* bin and ext: not in our protocol */
		break;
	}
}

/* A string field as a C string in buf ("" when absent or not a string). */
static const char *
get_s(const msgpack_object *m, const char *key, char *buf, size_t len)
{
	const msgpack_object *v = agentsup_wire_get(m, key);
	size_t n;

	buf[0] = '\0';
	if (v == NULL || v->type != MSGPACK_OBJECT_STR)
		return buf;
	n = v->via.str.size < len - 1 ? v->via.str.size : len - 1;
	memcpy(buf, v->via.str.ptr, n);
	buf[n] = '\0';
	return buf;
}

static bool
get_u(const msgpack_object *m, const char *key, uint64_t *out)
{
	const msgpack_object *v = agentsup_wire_get(m, key);

	if (v == NULL || (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
	                  v->type != MSGPACK_OBJECT_NEGATIVE_INTEGER))
		return false;
	*out = v->via.u64;
	return true;
}

static void
fmt_age(uint64_t ms, char *buf, size_t len)
{
	uint64_t s = ms / 1000;

	if (ms < 10000)
		snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
	else if (s < 60)
		snprintf(buf, len, "%llus", (unsigned long long)s);
	else if (s < 3600)
		snprintf(buf, len, "%llum%02llus", (unsigned long long)(s / 60),
		         (unsigned long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, len, "%lluh%02llum",
		         (unsigned long long)(s / 3600),
		         (unsigned long long)(s / 60 % 60));
	else
		snprintf(buf, len, "%llud%02lluh",
		         (unsigned long long)(s / 86400),
		         (unsigned long long)(s / 3600 % 24));
}

static const char *
state_color(const char *state, const char *reason, bool held)
{
	if (strcmp(state, "running") == 0)
		return "\033[32m";
	if (strcmp(state, "stopped") == 0)
		return (!held && strcmp(reason, "-") != 0 &&
		        strcmp(reason, "exit:0") != 0)
		               ? "\033[31m"
		               : "\033[2m";
	return "\033[33m";
}

/* One node as a line of the tree. */
static void
print_node(struct ctl *c, const msgpack_object *n, const char *prefix)
{
	char name[128], kind[16], state[16], reason[64], strat[16], tmp[32],
	        st[64], label[256], status[256];
	const msgpack_object *held = agentsup_wire_get(n, "held");
	const msgpack_object *prog = agentsup_wire_get(n, "progress");
	bool is_held = held && held->type == MSGPACK_OBJECT_BOOLEAN &&
	               held->via.boolean;
	uint64_t v = 0, w = 0;

	get_s(n, "name", name, sizeof name);
	get_s(n, "kind", kind, sizeof kind);
	get_s(n, "state", state, sizeof state);
	get_s(n, "last_reason", reason, sizeof reason);
	snprintf(label, sizeof label, "%s%s", prefix, name);
	printf("%-32s %-10s %s%-8s%s", label, kind,
	       c->color ? state_color(state, reason, is_held) : "", state,
	       c->color ? "\033[0m" : "");
	if (is_held)
		printf(" (by command)");
	if (strcmp(kind, "supervisor") == 0) {
		get_s(n, "strategy", strat, sizeof strat);
		get_u(n, "window_restarts", &v);
		get_u(n, "intensity", &w);
		printf("  %s, %llu/%llu restarts", strat, (unsigned long long)v,
		       (unsigned long long)w);
		if (get_u(n, "period_ms", &v)) {
			fmt_age(v, tmp, sizeof tmp);
			printf(" in %s", tmp);
		}
	} else if (get_u(n, "pid", &v)) {
		printf("  pid %llu", (unsigned long long)v);
	}
	if (strcmp(state, "running") == 0 && get_u(n, "uptime_ms", &v)) {
		fmt_age(v, tmp, sizeof tmp);
		printf("  up %s", tmp);
	}
	if (get_u(n, "restarts", &v) && v > 0)
		printf("  restarted %llu", (unsigned long long)v);
	if (strcmp(reason, "-") != 0)
		printf("  last %s", reason);
	if (get_u(n, "heartbeat_age_ms", &v)) {
		fmt_age(v, tmp, sizeof tmp);
		printf("  beat %s ago", tmp);
	}
	if (prog != NULL && prog->type == MSGPACK_OBJECT_MAP) {
		const msgpack_object *cost = agentsup_wire_get(prog, "cost");
		if (get_u(prog, "steps", &v))
			printf("  %llu steps", (unsigned long long)v);
		if (get_u(prog, "tokens", &v))
			printf("  %llu tok", (unsigned long long)v);
		if (cost != NULL && (cost->type == MSGPACK_OBJECT_FLOAT64 ||
		                     cost->type == MSGPACK_OBJECT_FLOAT32))
			printf("  $%.4f", cost->via.f64);
		if (*get_s(prog, "state", st, sizeof st))
			printf("  %s", st);
	}
	if (*get_s(n, "status", status, sizeof status))
		printf("  \"%s\"", status);
	putchar('\n');
}

/* The nodes come depth-first with a depth each: draw the branches. */
static void
print_tree(struct ctl *c, const msgpack_object *arr)
{
	uint32_t n = arr->via.array.size;
	char prefix[256];

	for (uint32_t i = 0; i < n; i++) {
		const msgpack_object *node = &arr->via.array.ptr[i];
		uint64_t depth = 0, d2 = 0;
		size_t at = 0;

		get_u(node, "depth", &depth);
		prefix[0] = '\0';
		for (uint64_t lvl = 1; lvl <= depth && at + 8 < sizeof prefix;
		     lvl++) {
			/* is there a later sibling at this level? */
			bool more = false;
			for (uint32_t k = i + 1; k < n; k++) {
				get_u(&arr->via.array.ptr[k], "depth", &d2);
				if (d2 < lvl)
					break;
				if (d2 == lvl) {
					more = true;
					break;
				}
			}
			if (lvl < depth)
				at += (size_t)snprintf(prefix + at,
				                       sizeof prefix - at, "%s",
				                       more ? "|   " : "    ");
			else
				at += (size_t)snprintf(prefix + at,
				                       sizeof prefix - at, "%s",
				                       more ? "|-- " : "`-- ");
		}
		print_node(c, node, prefix);
	}
}

static void
print_event(struct ctl *c, const msgpack_object *e)
{
	char kind[32], path[256], reason[64], detail[512], when[32];
	uint64_t pid = 0, ms = 0;
	time_t secs;
	struct tm tm;

	if (c->json) {
		json_print(stdout, e);
		putchar('\n');
		fflush(stdout);
		return;
	}
	get_u(e, "time_ms", &ms);
	secs = (time_t)(ms / 1000);
	localtime_r(&secs, &tm);
	strftime(when, sizeof when, "%H:%M:%S", &tm);
	get_s(e, "kind", kind, sizeof kind);
	get_s(e, "path", path, sizeof path);
	get_s(e, "reason", reason, sizeof reason);
	get_s(e, "detail", detail, sizeof detail);
	get_u(e, "pid", &pid);
	printf("%s.%03llu %-28s %s", when, (unsigned long long)(ms % 1000),
	       path, kind);
	if (pid || *reason || *detail)
		printf("%*s",
		       (int)(kind[0] && strlen(kind) < 14 ? 14 - strlen(kind)
		                                          : 0),
		       "");
	if (pid)
		printf(" pid %llu", (unsigned long long)pid);
	if (*reason)
		printf(" %s", reason);
	if (*detail)
		printf("  %s", detail);
	putchar('\n');
	fflush(stdout);
}

/* --- commands ------------------------------------------------------------- */

static int
run(struct ctl *c, const char *cmd, const char *arg, int follow)
{
	const msgpack_object *ok, *body;
	struct agentsup_frame f;

	if (send_request(c, cmd, arg, follow) < 0) {
		perror("agentsupctl: send");
		return EXIT_UNAVAILABLE;
	}
	do {
		if (next_frame(c, &f, REPLY_TIMEOUT_MS) < 0)
			return EXIT_UNAVAILABLE;
	} while (!agentsup_wire_is(&f, AGENTSUP_T_RES));
	ok = agentsup_wire_get(&f.map, "ok");
	if (ok == NULL || ok->type != MSGPACK_OBJECT_BOOLEAN ||
	    !ok->via.boolean) {
		char err[512];
		get_s(&f.map, "error", err, sizeof err);
		if (c->json) {
			json_print(stdout, &f.map);
			putchar('\n');
		}
		fprintf(stderr, "agentsupctl: %s\n", *err ? err : "failed");
		return EXIT_REFUSED;
	}
	body = agentsup_wire_get(&f.map, "result");
	if (strcmp(cmd, "events") == 0 && body &&
	    body->type == MSGPACK_OBJECT_ARRAY) {
		for (uint32_t i = 0; i < body->via.array.size; i++)
			print_event(c, &body->via.array.ptr[i]);
		while (follow > 0 && next_frame(c, &f, -1) == 0) {
			const msgpack_object *e =
			        agentsup_wire_get(&f.map, "event");
			if (agentsup_wire_is(&f, AGENTSUP_T_EVENT) && e != NULL)
				print_event(c, e);
		}
		return 0;
	}
	if (c->json) {
		json_print(stdout, body ? body : &f.map);
		putchar('\n');
	} else if (body && body->type == MSGPACK_OBJECT_ARRAY)
		print_tree(c, body);
	else if (body && body->type == MSGPACK_OBJECT_STR)
		printf("%.*s\n", (int)body->via.str.size, body->via.str.ptr);
	return 0;
}

/* logs NAME [-n N] [-f]: the tail as one string, then {t: log} frames. */
static int
run_logs(struct ctl *c, const char *name, unsigned long lines, int follow)
{
	const msgpack_object *ok, *body, *line;
	struct agentsup_frame f;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	agentsup_wire_begin(&sb);
	msgpack_pack_map(&pk, 4);
	agentsup_wire_kv_str(&pk, "t", AGENTSUP_T_REQ);
	agentsup_wire_kv_uint(&pk, "id", 1);
	agentsup_wire_kv_str(&pk, "cmd", "logs");
	agentsup_wire_pack_str(&pk, "args");
	msgpack_pack_array(&pk, 3);
	agentsup_wire_pack_str(&pk, name);
	msgpack_pack_uint64(&pk, lines);
	follow ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
	r = agentsup_wire_end(&sb, AGENTSUP_MAX_FRAME);
	if (r == 0)
		r = send_all(c->fd, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	if (r < 0) {
		perror("agentsupctl: send");
		return EXIT_UNAVAILABLE;
	}
	do {
		if (next_frame(c, &f, REPLY_TIMEOUT_MS) < 0)
			return EXIT_UNAVAILABLE;
	} while (!agentsup_wire_is(&f, AGENTSUP_T_RES));
	ok = agentsup_wire_get(&f.map, "ok");
	body = agentsup_wire_get(&f.map, "result");
	if (ok == NULL || ok->type != MSGPACK_OBJECT_BOOLEAN ||
	    !ok->via.boolean || body == NULL ||
	    body->type != MSGPACK_OBJECT_STR) {
		char err[512];
		get_s(&f.map, "error", err, sizeof err);
		fprintf(stderr, "agentsupctl: %s\n", *err ? err : "failed");
		return EXIT_REFUSED;
	}
	fwrite(body->via.str.ptr, 1, body->via.str.size, stdout);
	fflush(stdout);
	while (follow > 0 && next_frame(c, &f, -1) == 0) {
		line = agentsup_wire_get(&f.map, "line");
		if (!agentsup_wire_is(&f, "log") || line == NULL ||
		    line->type != MSGPACK_OBJECT_STR)
			continue;
		printf("%.*s\n", (int)line->via.str.size, line->via.str.ptr);
		fflush(stdout);
	}
	return 0;
}

static void
on_sigint(int sig)
{
	(void)sig; /* poll returns EINTR and the follow ends */
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"socket", required_argument, NULL, 's'},
	        {"json", no_argument, NULL, 'j'},
	        {"follow", no_argument, NULL, 'f'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	static const char *const need_name[] = {"start", "stop", "restart",
	                                        "logs", NULL};
	static const char *const opt_name[] = {"status", "drain", NULL};
	static const char *const no_arg[] = {"reload", "shutdown", "events",
	                                     NULL};
	const char *sock = NULL, *cmd, *arg = NULL;
	char sockbuf[256];
	struct ctl c = {.fd = -1};
	int ch, follow = 0, rc, kind = -1;
	unsigned long lines = 20;
	char *end;
	struct sigaction sa = {.sa_handler = on_sigint};

	while ((ch = getopt_long(argc, argv, "+s:jfh", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			sock = optarg;
			break;
		case 'j':
			c.json = true;
			break;
		case 'f':
			follow = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind++];
	/* options may also follow the command: "events --follow --json" */
	for (int i = optind; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			c.json = true;
		else if (strcmp(argv[i], "--follow") == 0 ||
		         strcmp(argv[i], "-f") == 0)
			follow = 1;
		else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc &&
		         strcmp(cmd, "logs") == 0) {
			lines = strtoul(argv[++i], &end, 10);
			if (*argv[i] == '\0' || *argv[i] == '-' ||
			    *end != '\0' || lines > UINT32_MAX) {
				fprintf(stderr,
				        "agentsupctl: -n wants a count\n");
				return EXIT_USAGE;
			}
		} else if (arg == NULL && argv[i][0] != '-')
			arg = argv[i];
		else {
			fprintf(stderr, "agentsupctl: unexpected \"%s\"\n",
			        argv[i]);
			return EXIT_USAGE;
		}
	}
	for (int i = 0; need_name[i]; i++)
		if (strcmp(cmd, need_name[i]) == 0)
			kind = 1;
	for (int i = 0; opt_name[i]; i++)
		if (strcmp(cmd, opt_name[i]) == 0)
			kind = 2;
	for (int i = 0; no_arg[i]; i++)
		if (strcmp(cmd, no_arg[i]) == 0)
			kind = 0;
	if (kind < 0 || (kind == 1 && arg == NULL) || (kind == 0 && arg) ||
	    (follow && strcmp(cmd, "events") != 0 &&
	     strcmp(cmd, "logs") != 0)) {
		fprintf(stderr, "agentsupctl: bad command line for \"%s\"\n",
		        cmd);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (sock == NULL &&
	    (sock = default_socket(sockbuf, sizeof sockbuf)) == NULL) {
		fprintf(stderr,
		        "agentsupctl: XDG_RUNTIME_DIR is too long for a "
		        "socket path; use --socket\n");
		return EXIT_USAGE;
	}
	if ((c.fd = ctl_connect(sock)) < 0) {
		fprintf(stderr,
		        "agentsupctl: cannot reach agentsupd at %s: %s\n", sock,
		        strerror(errno));
		return EXIT_UNAVAILABLE;
	}
	c.color =
	        !c.json && isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL;
	if (!msgpack_zone_init(&c.zone, 4096)) {
		fprintf(stderr, "agentsupctl: out of memory\n");
		return EXIT_UNAVAILABLE;
	}
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &c.waitmask);
	sigdelset(&c.waitmask, SIGINT);
	sigaction(SIGINT, &sa, NULL);
	if (strcmp(cmd, "logs") == 0)
		rc = run_logs(&c, arg, lines, follow);
	else
		rc = run(&c, cmd, arg,
		         strcmp(cmd, "events") == 0 ? follow : -1);
	msgpack_zone_destroy(&c.zone);
	free(c.buf);
	close(c.fd);
	return rc;
}
