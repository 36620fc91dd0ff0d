/*
 * bench_worker.c - the one tiny worker every benchmark (and every peer
 * supervisor) runs. Its first act in main is to read CLOCK_MONOTONIC and
 * send that, with its pid, as a datagram to $BENCH_SOCK; then it does what
 * its mode says:
 *
 *   bench_worker                 sleep for ever
 *   bench_worker exit            exit 1 at once (a crash loop)
 *   bench_worker beat R B        R ticks a second, B heartbeats per tick
 *   bench_worker progress R B    the same, each beat a step: steps, tokens,
 *                                cost and a state that changes every step
 *   bench_worker hang N MS       N beats MS apart, then silence (reported,
 *                                kind 3); on SIGUSR1 report how long after
 *                                the last beat (kind 1), exit 1
 *   bench_worker stall N MS      N steps MS apart, then beats every MS
 *                                without progress; on the nudge, report
 *                                how long after the last step (kind 1),
 *                                exit 1
 *   bench_worker freeze MS       like hang, but for tools without heartbeats:
 *                                report the freeze time, then stop (SIGSTOP)
 *
 * The mode may also come from BENCH_MODE (and its numbers from BENCH_ARGS).
 */
#include <signal.h>
#include <stdbool.h>
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
	int64_t t_ns; /* CLOCK_MONOTONIC */
	int32_t pid;
	int32_t kind; /* 0 start, 1 hang noticed (t_ns = SIGUSR1 - last beat),
	                 2 freeze began, 3 beats stopped (t_ns = last beat) */
};

static int64_t last_beat_ns;

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
report(int64_t t, int kind)
{
	const char *path = getenv("BENCH_SOCK");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct report r = {t, (int32_t)getpid(), kind};
	int fd;

	if (path == NULL || strlen(path) >= sizeof sa.sun_path)
		return;
	strcpy(sa.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	(void)sendto(fd, &r, sizeof r, 0, (struct sockaddr *)&sa, sizeof sa);
	close(fd);
}

/* Where a supervisor does not pass our environment on, take BENCH_* from
 * ./bench.env in the service directory it runs us in. */
static void
load_env_file(void)
{
	char line[512];
	FILE *f;

	if (getenv("BENCH_SOCK") != NULL ||
	    (f = fopen("bench.env", "r")) == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL) {
		char *eq = strchr(line, '=');
		line[strcspn(line, "\n")] = '\0';
		if (eq != NULL) {
			*eq = '\0';
			setenv(line, eq + 1, 1);
		}
	}
	fclose(f);
}

static void
on_usr1(int sig)
{
	(void)sig;
	report(now_ns() - last_beat_ns, 1);
	_exit(1);
}

/* A stall's nudge: how long it came after the last step. */
static void
on_nudge(void *arg, const struct agentsup_nudge *n)
{
	(void)n;
	(void)arg;
	report(now_ns() - last_beat_ns, 1);
	_exit(1);
}

/* N steps MS apart, then beats that do not move progress. */
static void
stall_run(int n, int ms)
{
	struct agentsup *a = agentsup_open("c");
	struct agentsup_progress p = {.set = AGENTSUP_STEPS};

	agentsup_on_nudge(a, on_nudge, NULL);
	for (int i = 0; i < n; i++) {
		p.steps++;
		agentsup_beat(a, &p, NULL);
		last_beat_ns = now_ns();
		agentsup_wait(a, ms);
	}
	for (;;) {
		agentsup_beat(a, NULL, NULL);
		if (agentsup_wait(a, ms) < 0 && agentsup_process(a) < 0)
			_exit(1);
	}
}

static void
sleep_until(int64_t t)
{
	struct timespec ts = {t / 1000000000, t % 1000000000};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
		;
}

int
main(int argc, char **argv)
{
	int64_t t0 = now_ns(); /* the first thing: restart latency ends here */
	const char *mode;
	char *env_argv[4] = {argv[0], NULL, NULL, NULL};

	load_env_file();
	/* from argv, or from BENCH_MODE for supervisors that run a bare ./run
	 * (a symlink to this program) */
	mode = argc > 1 ? argv[1] : NULL;
	if (mode != NULL && strcmp(mode, "sleep") != 0 &&
	    strcmp(mode, "exit") != 0 && strcmp(mode, "beat") != 0 &&
	    strcmp(mode, "progress") != 0 && strcmp(mode, "stall") != 0 &&
	    strcmp(mode, "hang") != 0 && strcmp(mode, "freeze") != 0) {
		/* not ours: s6-supervise passes the service name */
		mode = NULL;
		argc = 1;
	}
	if (mode == NULL)
		mode = getenv("BENCH_MODE");

	if (mode == NULL)
		mode = "sleep";
	if (argc <= 1 && getenv("BENCH_ARGS") != NULL &&
	    *getenv("BENCH_ARGS")) {
		/* "5 50": the numbers a hang needs */
		env_argv[1] = (char *)mode;
		env_argv[2] = strtok(getenv("BENCH_ARGS"), " ");
		env_argv[3] = strtok(NULL, " ");
		argv = env_argv;
		argc = env_argv[3] ? 4 : 3;
	}

	report(t0, 0);
	if (strcmp(mode, "exit") == 0)
		return 1;
	if ((strcmp(mode, "beat") == 0 || strcmp(mode, "progress") == 0) &&
	    argc > 3) {
		struct agentsup *a = agentsup_open("c");
		int rate = atoi(argv[2]), batch = atoi(argv[3]);
		int64_t next = now_ns(), step = 1000000000 / (rate ? rate : 1);
		bool prog = strcmp(mode, "progress") == 0;
		struct agentsup_progress p = {
		        .set = AGENTSUP_STEPS | AGENTSUP_TOKENS |
		               AGENTSUP_COST | AGENTSUP_STATE};
		char state[32];
		for (;;) {
			for (int i = 0; i < batch; i++) {
				p.steps++;
				p.tokens += 10;
				p.cost = (double)p.steps * 1e-5;
				snprintf(state, sizeof state, "tool-%llu",
				         (unsigned long long)p.steps);
				p.state = state;
				agentsup_beat(a, prog ? &p : NULL, NULL);
			}
			next += step;
			sleep_until(next);
			agentsup_process(a); /* a drain or EOF ends the run */
			if (agentsup_draining(a, NULL)) {
				agentsup_close(a);
				return 0;
			}
		}
	}
	if (strcmp(mode, "hang") == 0 && argc > 3) {
		struct agentsup *a = agentsup_open("c");
		int n = atoi(argv[2]), ms = atoi(argv[3]);
		signal(SIGUSR1, on_usr1);
		for (int i = 0; i < n; i++) {
			agentsup_beat(a, NULL, NULL);
			last_beat_ns = now_ns();
			if (i + 1 < n)
				sleep_until(last_beat_ns +
				            (int64_t)ms * 1000000);
		}
		report(last_beat_ns, 3); /* frozen from here on */
		for (;;)
			pause();
	}
	if (strcmp(mode, "stall") == 0 && argc > 3)
		stall_run(atoi(argv[2]), atoi(argv[3]));
	if (strcmp(mode, "freeze") == 0 && argc > 2) {
		sleep_until(t0 + (int64_t)atoi(argv[2]) * 1000000);
		report(now_ns(), 2);
		raise(SIGSTOP);
	}
	for (;;)
		pause();
}
