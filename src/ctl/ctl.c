/*
 * ctl.c - agentsupctl: inspect and steer a running agentsupd over its
 * control socket (req/res frames, docs/protocol.md and docs/operations.md).
 *
 * Exit status: 0 done, 1 agentsupd refused (unknown name, ...), 3 status
 * found a node not in the state it should be (a health check, as LSB's
 * "status" uses 3), 64 usage, 69 agentsupd could not be reached or is not
 * to be trusted, 75 it took a connection but did not answer in time, 78
 * the config given with -c cannot be read.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agentsup/wire.h"
#include "config.h"
#include "conn.h"
#include "drainall.h"
#include "logs.h"
#include "opwait.h"
#include "rolling.h"
#include "render.h"
#include "reply.h"
#include "text.h"
#include "task.h"
#include "top.h"

#define EXIT_REFUSED     CTL_EXIT_REFUSED
#define EXIT_UNHEALTHY   CTL_EXIT_UNHEALTHY
#define EXIT_USAGE       CTL_EXIT_USAGE
#define EXIT_UNAVAILABLE CTL_EXIT_UNAVAILABLE
#define EXIT_CONFIG      78

/* A command: how many arguments it takes, and whether it may follow. */
static const struct ctl_command {
	const char *name;
	int min_args, max_args;
	bool follow;
} ctl_commands[] = {
        {"status", 0, 1, false}, {"start", 1, 1, false},
        {"stop", 1, 1, false},   {"restart", 1, 1, false},
        {"drain", 0, 1, false},  {"reload", 0, 0, false},
        {"events", 0, 1, true},  {"shutdown", 0, 0, false},
        {"top", 0, 0, false},    {"spawn", 1, 1, false},
        {"wait", 1, 1, false},   {"dead", 0, 0, false},
        {"replay", 1, 1, false}, {"drop", 1, 1, false},
        {"logs", 0, 1, true},    {"reset", 1, 1, false},
        {"signal", 2, 2, false}, {"tasks", 0, 1, false},
};

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: agentsupctl [-c DIR] [--socket PATH] [--json] COMMAND "
	        "[ARGS]\n"
	        "       agentsupctl --version\n"
	        "  status [NAME]       the tree, or one subtree; exit 3 if a "
	        "node is not\n"
	        "                      in the state it should be (a health "
	        "check)\n"
	        "  start NAME          start a stopped worker or supervisor\n"
	        "  stop NAME           stop it; it stays stopped until "
	        "started\n"
	        "  restart NAME        stop then start (a supervisor: its "
	        "children, in order)\n"
	        "  signal NAME SIG     send SIG (HUP, USR1, ...) to the "
	        "worker, or to every\n"
	        "                      running worker below a supervisor\n"
	        "  reset NAME          close its circuit, clear its counts "
	        "and budget spend,\n"
	        "                      and start it again if it was down for "
	        "good\n"
	        "  drain [NAME]        drain one subtree, or the whole tree "
	        "(then agentsupd exits)\n"
	        "  start|stop|restart|drain NAME --wait [--timeout T]\n"
	        "                      answer once it has been carried out "
	        "(T 90s unless given;\n"
	        "                      exit 1 if it did not come up, 124 if "
	        "T passed)\n"
	        "  restart NAME --rolling [--timeout T]\n"
	        "                      a supervisor's children, or the copies "
	        "of a worker of\n"
	        "                      instances:, one at a time, each up "
	        "before the next\n"
	        "  reload              re-read supervisor.d/ and apply it as a "
	        "diff\n"
	        "  events [NAME] [--follow]  recent events (of NAME's "
	        "subtree); --follow\n"
	        "                      streams new ones\n"
	        "  shutdown            stop the tree and agentsupd\n"
	        "  logs [NAME] [-n N] [-f]  a worker's last N lines of output "
	        "(20; 0: all kept),\n"
	        "                      or each worker's below a supervisor "
	        "(all without NAME);\n"
	        "                      -f follows new ones\n"
	        "  top                 a live view: j/k select, s stop, r "
	        "restart, d drain, q quit\n"
	        "  spawn SUP [--key K] [--env K=V]... [--retry] [-- ARGS...]\n"
	        "                      a dynamic child of SUP (its template)\n"
	        "  wait KEY [--timeout T]  a task's record once it ended; "
	        "exit 0 done,\n"
	        "                      2 dead, 4 cancelled, 124 timed out\n"
	        "  tasks [SUP] [--state S] [-n N]  the tasks (of a pool; "
	        "pending, running,\n"
	        "                      cancelling, done, dead or cancelled), "
	        "oldest first;\n"
	        "                      -n: the newest N only\n"
	        "  dead [-n N]         the dead letters, oldest ended first; "
	        "-n: the newest N\n"
	        "  replay KEY          run a dead letter again, same inputs\n"
	        "  drop KEY            forget an ended task\n"
	        "The socket: --socket, else AGENTSUP_SOCKET, else the socket: "
	        "setting of\n"
	        "the config directory given with -c, else /run/agentsupd.sock "
	        "(root),\n"
	        "$XDG_RUNTIME_DIR/agentsupd.sock, or "
	        "${TMPDIR:-/tmp}/agentsupd-UID/agentsupd.sock.\n"
	        "An answer is awaited AGENTSUPCTL_TIMEOUT (30s unless set; a "
	        "reload's 60s more,\n"
	        "held while a supervisor is busy): exit 75 past it, 69 when "
	        "agentsupd cannot\n"
	        "be reached.\n");
}

/* --- the socket ----------------------------------------------------------- */

/* The socket setting of a config directory, as agentsupd would read it,
 * into buf: *path (NULL: not set). A config with errors prints them and
 * still gives its setting if it could be read: `reload` must reach
 * agentsupd, which reopens its logs whether it takes the new config or
 * not (logrotate), and `status` goes on working while a file is being
 * edited. -1 when the setting itself cannot be had. */
static int
ctl_config_socket(const char *dir, char *buf, size_t len, const char **path)
{
	struct config_errors errs = {0};
	char *socket = NULL;
	struct config *cfg = config_load_socket(dir, &errs, &socket);
	struct stat st;

	for (size_t i = 0; i < errs.count; i++)
		text_term_line(stderr, "", errs.msgs[i], strlen(errs.msgs[i]));
	config_errors_clear(&errs);
	if (cfg == NULL && (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))) {
		fprintf(stderr, "agentsupctl: cannot read the config in %s\n",
		        dir);
		return -1; /* no telling which agentsupd it would be */
	}
	if (cfg == NULL)
		fprintf(stderr,
		        "agentsupctl: the config in %s has errors (agentsupd "
		        "runs on the one it last took)\n",
		        dir);
	if (cfg != NULL) {
		socket = cfg->settings.socket;
		cfg->settings.socket = NULL;
		config_free(cfg);
	}
	*path = NULL;
	if (socket != NULL) {
		snprintf(buf, len, "%s", socket);
		*path = buf;
	}
	free(socket);
	return 0;
}

/* --socket, then AGENTSUP_SOCKET, then -c DIR's setting, then the default:
 * the order agentsupd uses. Exits on failure. */
static const char *
ctl_socket(const char *opt, const char *dir, char *buf, size_t len)
{
	const char *env = getenv("AGENTSUP_SOCKET");
	const char *path = NULL;

	if (opt != NULL)
		return opt;
	if (env != NULL && *env != '\0')
		return env;
	if (dir != NULL && ctl_config_socket(dir, buf, len, &path) < 0)
		exit(EXIT_CONFIG);
	if (path != NULL)
		return path;
	if (agentsup_wire_default_socket(buf, len) < 0) {
		fprintf(stderr, "agentsupctl: XDG_RUNTIME_DIR or TMPDIR is too "
		                "long for a socket path; use --socket\n");
		exit(EXIT_USAGE);
	}
	return buf;
}

static int
ctl_show(struct ctl *c, const char *cmd, const msgpack_object *body, int follow)
{
	struct agentsup_frame f;
	size_t bad;

	if (strcmp(cmd, "spawn") == 0 || strcmp(cmd, "wait") == 0 ||
	    strcmp(cmd, "dead") == 0 || strcmp(cmd, "replay") == 0 ||
	    strcmp(cmd, "tasks") == 0)
		return task_show(cmd, body, c->json);
	if (strcmp(cmd, "events") == 0 && body->type == MSGPACK_OBJECT_ARRAY) {
		for (uint32_t i = 0; i < body->via.array.size; i++)
			render_event(&body->via.array.ptr[i], c->json);
		while (follow > 0 && conn_next_frame(c, &f, -1) == 0) {
			const msgpack_object *e =
			        agentsup_wire_get(&f.map, "event");
			if (agentsup_wire_is(&f, "end"))
				return reply_follow_end(&f);
			if (agentsup_wire_is(&f, AGENTSUP_T_EVENT) && e != NULL)
				render_event(e, c->json);
		}
		return c->lost ? EXIT_UNAVAILABLE : 0; /* else ^C */
	}
	if (c->json) {
		render_json(stdout, body);
		putchar('\n');
	} else if (body->type == MSGPACK_OBJECT_ARRAY) {
		if (render_tree(body, c->color) < 0) {
			perror("agentsupctl");
			return EXIT_UNAVAILABLE;
		}
	} else if (body->type == MSGPACK_OBJECT_STR)
		printf("%.*s\n", (int)body->via.str.size, body->via.str.ptr);
	if (strcmp(cmd, "status") != 0 || body->type != MSGPACK_OBJECT_ARRAY)
		return 0;
	if ((bad = render_count_unhealthy(body)) == 0)
		return 0;
	fprintf(stderr,
	        "agentsupctl: %zu node%s not in the state %s should be\n", bad,
	        bad == 1 ? " is" : "s are", bad == 1 ? "it" : "they");
	return EXIT_UNHEALTHY;
}

static int
run(struct ctl *c, const char *cmd, const char *arg, int follow)
{
	struct reply_answer a = {.quiet = false};
	int rc;

	if ((rc = reply_ask(c, cmd, arg, follow, &a)) != 0)
		return rc;
	rc = ctl_show(c, cmd, a.body, follow);
	reply_answer_free(&a);
	return rc;
}

/* The command, then NAME's status until it has been carried out. */
static int
ctl_run_wait(struct ctl *c, const char *cmd, const char *name)
{
	struct opwait w = {.cmd = cmd, .name = name, .timeout_ms = c->wait_ms};
	struct reply_answer a;
	int rc;

	if ((rc = opwait_ask(c, &w, &a)) == 0) {
		/* --json: one object once done, the answer in it */
		rc = c->json ? 0 : ctl_show(c, cmd, a.body, -1);
		reply_answer_free(&a);
		if (rc == 0)
			rc = opwait_run(c, &w);
	} else if (w.removed) { /* the reload that removed it stops it */
		rc = opwait_run(c, &w);
	}
	opwait_free(&w);
	return rc;
}

/* --- the command line ----------------------------------------------------- */

static void
on_sigint(int sig)
{
	(void)sig; /* poll returns EINTR and the follow ends */
}

static int
ctl_usage_error(const char *fmt, const char *a, const char *b)
{
	fputs("agentsupctl: ", stderr);
	fprintf(stderr, fmt, a, b);
	fputs("\n(agentsupctl --help lists the commands)\n", stderr);
	return EXIT_USAGE;
}

/* A global option after the command (the man page: "options may also
 * follow the command"): -j/--json, -s/--socket PATH, -c/--config DIR.
 * The arguments it took (1 or 2), 0 if argv[i] is none, -1 if its value
 * is missing. */
static int
ctl_late_option(struct ctl *c, int argc, char **argv, int i, const char **sock,
                const char **dir)
{
	const char *a = argv[i];
	const char **to = NULL;

	if (strcmp(a, "--json") == 0 || strcmp(a, "-j") == 0) {
		c->json = true;
		return 1;
	}
	if (strcmp(a, "--socket") == 0 || strcmp(a, "-s") == 0)
		to = sock;
	else if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0)
		to = dir;
	if (to == NULL)
		return 0;
	if (i + 1 == argc)
		return -1;
	*to = argv[i + 1];
	return 2;
}

/* AGENTSUPCTL_TIMEOUT: how long an answer may take (30 s when unset), so
 * that a probe learns sooner than that that agentsupd hangs (exit 75). */
static int
ctl_reply_timeout(struct ctl *c)
{
	const char *s = getenv("AGENTSUPCTL_TIMEOUT");
	uint64_t ms;

	if (s == NULL || *s == '\0')
		return 0;
	if (config_parse_duration(s, &ms) != 0 || ms == 0 || ms > INT_MAX) {
		fprintf(stderr,
		        "agentsupctl: bad AGENTSUPCTL_TIMEOUT \"%s\" (e.g. 5s, "
		        "500ms; more than 0)\n",
		        s);
		return EXIT_USAGE;
	}
	c->reply_ms = (int)ms;
	return 0;
}

/* --wait and --timeout T of start, stop, restart and drain NAME, and of
 * drain (the whole tree's: agentsupd exits after it, and that is waited
 * for). */
static int
ctl_parse_wait(struct ctl *c, const char *cmd, bool wait, int timeout_ms)
{
	if (strcmp(cmd, "wait") == 0) {
		/* 0: a look, whose answer agentsupd gives at once, ended or
		 * not (no time at all would make it 124 even when done) */
		c->look = timeout_ms == 0;
		if (timeout_ms > 0)
			c->reply_ms = timeout_ms;
		return 0;
	}
	if (timeout_ms >= 0 && !wait)
		return ctl_usage_error("%s: --timeout is for --wait%s", cmd,
		                       "");
	c->timeout_given = timeout_ms >= 0;
	if (c->rolling && timeout_ms == 0) /* one restart sent, none awaited */
		return ctl_usage_error(
		        "%s --rolling: --timeout 0 would leave a "
		        "copy down unwatched%s",
		        cmd, "");
	if (wait)
		c->wait_ms = timeout_ms > 0    ? timeout_ms
		             : timeout_ms == 0 ? 1 /* one look */
		                               : OPWAIT_DEFAULT_MS;
	return 0;
}

/* Check COMMAND [ARGS] [--json] [--follow] after the options; 0 or the
 * usage exit status, having said what is wrong. */
static int
ctl_parse_command(struct ctl *c, int argc, char **argv, const char **arg,
                  int *follow, const char **sock, const char **dir)
{
	const char *cmd = argv[0];
	const struct ctl_command *k = NULL;
	int nargs = 0, timeout_ms = -1;
	bool wait = false;

	for (size_t i = 0; i < sizeof ctl_commands / sizeof *ctl_commands; i++)
		if (strcmp(cmd, ctl_commands[i].name) == 0)
			k = &ctl_commands[i];
	if (k == NULL)
		return ctl_usage_error("unknown command \"%s\"%s", cmd, "");
	for (int i = 1; i < argc; i++) {
		int took = ctl_late_option(c, argc, argv, i, sock, dir);
		if (took < 0)
			return ctl_usage_error("%s: %s wants a value", cmd,
			                       argv[i]);
		if (took > 0)
			i += took - 1;
		else if (strcmp(argv[i], "--follow") == 0 ||
		         strcmp(argv[i], "-f") == 0)
			*follow = 1;
		else if (strcmp(argv[i], "--timeout") == 0 &&
		         (strcmp(cmd, "wait") == 0 || opwait_command(cmd)) &&
		         i + 1 < argc) {
			if (task_parse_timeout(argv[++i], &timeout_ms) < 0)
				return EXIT_USAGE;
		} else if (strcmp(argv[i], "--wait") == 0 &&
		           opwait_command(cmd)) {
			wait = true;
		} else if (strcmp(argv[i], "--rolling") == 0 &&
		           strcmp(cmd, "restart") == 0) {
			wait = c->rolling = true; /* each up before the next */
		} else if (strcmp(argv[i], "-n") == 0 &&
		           (strcmp(cmd, "logs") == 0 ||
		            strcmp(cmd, "tasks") == 0 ||
		            strcmp(cmd, "dead") == 0)) {
			char *end;
			unsigned long n;
			if (i + 1 == argc || argv[i + 1][0] < '0' ||
			    argv[i + 1][0] > '9' ||
			    (n = strtoul(argv[i + 1], &end, 10)) > UINT32_MAX ||
			    *end != '\0')
				return ctl_usage_error("%s: -n wants a count%s",
				                       cmd, "");
			*(strcmp(cmd, "logs") == 0 ? &c->lines : &c->newest) =
			        n;
			i++;
		} else if (strcmp(argv[i], "--state") == 0 &&
		           strcmp(cmd, "tasks") == 0) {
			if (i + 1 == argc)
				return ctl_usage_error("%s: --state wants a "
				                       "state%s",
				                       cmd, "");
			c->arg2 = argv[++i]; /* agentsupd checks it */
		} else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return ctl_usage_error("%s: unknown option \"%s\"", cmd,
			                       argv[i]);
		else if (nargs++ == 0)
			*arg = argv[i];
		else if (nargs == 2)
			c->arg2 = argv[i];
	}
	if (nargs < k->min_args)
		return ctl_usage_error(nargs == 1 ? "%s: missing SIG%s"
		                                  : "%s: missing NAME%s",
		                       cmd, "");
	if (nargs > k->max_args)
		return ctl_usage_error(k->max_args ? "%s: too many arguments%s"
		                                   : "%s: takes no arguments%s",
		                       cmd, "");
	if (*follow && !k->follow)
		return ctl_usage_error("%s: --follow is for events only%s", cmd,
		                       " (and logs)");
	return ctl_parse_wait(c, cmd, wait, timeout_ms);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"socket", required_argument, NULL, 's'},
	        {"config", required_argument, NULL, 'c'},
	        {"json", no_argument, NULL, 'j'},
	        {"follow", no_argument, NULL, 'f'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {NULL, 0, NULL, 0},
	};
	const char *sock = NULL, *dir = NULL, *cmd, *arg = NULL;
	char sockbuf[256];
	struct ctl c = {.fd = -1, .reply_ms = CTL_REPLY_MS, .lines = 20};
	struct task_spawn sp = {0};
	int ch, follow = 0, rc, answer_ms;
	struct sigaction sa = {.sa_handler = on_sigint};
	sigset_t block;

	while ((ch = getopt_long(argc, argv, "+s:c:jfh", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			sock = optarg;
			break;
		case 'c':
			dir = optarg;
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
		case 'V':
			printf("agentsupctl %s\n", AGENTSUP_VERSION);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return ctl_usage_error("no command given%s%s", "", "");
	cmd = argv[optind];
	if ((rc = ctl_reply_timeout(&c)) != 0)
		return rc;
	/* a reload is held while a supervisor is busy: its answer that late */
	if (strcmp(cmd, "reload") == 0 &&
	    c.reply_ms <= INT_MAX - AGENTSUP_RELOAD_HOLD_MS)
		c.reply_ms += AGENTSUP_RELOAD_HOLD_MS;
	answer_ms = c.reply_ms;
	if (strcmp(cmd, "wait") == 0) {
		c.reply_ms = -1; /* until it ends, or --timeout */
		c.late = "the task has not ended";
	}
	if (strcmp(cmd, "spawn") == 0) {
		rc = task_parse_spawn(argc - optind, argv + optind, &sp,
		                      &c.json);
		if (rc != 0) {
			task_spawn_free(&sp);
			return rc;
		}
		c.spawn = &sp;
		arg = sp.sup;
	} else if ((rc = ctl_parse_command(&c, argc - optind, argv + optind,
	                                   &arg, &follow, &sock, &dir)) != 0)
		return rc;
	if (c.look) { /* its answer as any other's */
		c.reply_ms = answer_ms;
		c.late = NULL;
	}
	sock = ctl_socket(sock, dir, sockbuf, sizeof sockbuf);
	if (conn_open(&c, sock) < 0) {
		if (c.fd >= 0)
			close(c.fd);
		task_spawn_free(&sp);
		return EXIT_UNAVAILABLE;
	}
	if (strcmp(cmd, "top") == 0)
		return top_run(sock, c.fd);
	c.color =
	        !c.json && isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL;
	if (!msgpack_zone_init(&c.zone, 4096)) {
		fprintf(stderr, "agentsupctl: out of memory\n");
		close(c.fd);
		task_spawn_free(&sp);
		return EXIT_UNAVAILABLE;
	}
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &c.waitmask);
	sigdelset(&c.waitmask, SIGINT);
	sigaction(SIGINT, &sa, NULL);
	if (strcmp(cmd, "logs") == 0)
		rc = logs_run(&c, arg, follow);
	else if (c.rolling)
		rc = rolling_run(&c, arg);
	else if (c.wait_ms > 0 && arg == NULL) /* the whole tree's drain */
		rc = drainall_run(&c, sock);
	else if (c.wait_ms > 0)
		rc = ctl_run_wait(&c, cmd, arg);
	else
		rc = run(&c, cmd, arg,
		         strcmp(cmd, "events") == 0 ? follow : -1);
	conn_free(&c);
	close(c.fd);
	task_spawn_free(&sp);
	return rc;
}
