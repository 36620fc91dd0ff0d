/*
 * stopsig.c - how a worker ends, for programs as they are: `stop_signal`,
 * the signal its stop sequence begins with (nginx stops cleanly on QUIT, a
 * Node.js app on INT), as supervisord's `stopsignal` and systemd's
 * `KillSignal=` (the config is pure: it keeps the name's place in a list,
 * the daemon its number, signals.c); and `success_exit`, the exit
 * statuses besides 0 that are a normal end, as supervisord's `exitcodes`
 * and systemd's `SuccessExitStatus=`.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "parse.h"

const char *const config_stop_signals[STOP_SIGNALS] = {
        "TERM", "INT", "QUIT", "HUP", "USR1", "USR2", "WINCH", "PWR", "KILL",
};

/* stop_signal: TERM, SIGINT, quit...: one of config_stop_signals. */
void
stop_signal_key(struct parse *p, const struct key *k, yaml_node_t *v,
                struct spec *s, int depth)
{
	const char *str = load_scalar(p, k->name, v), *name;

	(void)depth;
	if (str == NULL)
		return;
	name = strncasecmp(str, "SIG", 3) == 0 ? str + 3 : str;
	for (int i = 0; i < STOP_SIGNALS; i++)
		if (strcasecmp(name, config_stop_signals[i]) == 0) {
			spec_pol(s)->stop_signal = i;
			return;
		}
	load_err(p, &v->start_mark,
	         "%s: want TERM, INT, QUIT, HUP, USR1, USR2, WINCH, PWR or "
	         "KILL, not \"%s\"",
	         k->name, str);
}

bool
config_exit_normal(const struct policy *pol, int code)
{
	return code == 0 ||
	       (code > 0 && code < 256 &&
	        (pol->success_exit[code / 64] >> (code % 64) & 1) != 0);
}

/* One status of success_exit: 1..255. */
static void
success_exit_one(struct parse *p, const struct key *k, yaml_node_t *v,
                 struct spec *s)
{
	const char *str = load_scalar(p, k->name, v);
	uint64_t code;

	if (str == NULL)
		return;
	if (scalar_uint(str, 255, &code) < 0 || code == 0) {
		load_err(p, &v->start_mark,
		         "%s: want exit statuses 1..255 (0 is always one), not "
		         "\"%s\"",
		         k->name, str);
		return;
	}
	spec_pol(s)->success_exit[code / 64] |= 1ull << (code % 64);
}

/* success_exit: 2, or [2, 3]. */
void
success_exit_key(struct parse *p, const struct key *k, yaml_node_t *v,
                 struct spec *s, int depth)
{
	yaml_node_item_t *it;
	size_t n;

	(void)depth;
	memset(spec_pol(s)->success_exit, 0, sizeof spec_pol(s)->success_exit);
	if (v->type != YAML_SEQUENCE_NODE) {
		success_exit_one(p, k, v, s);
		return;
	}
	if (map_list(p, v, k->name, &it, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = load_node(p, it[i]);
		if (e != NULL)
			success_exit_one(p, k, e, s);
	}
}
