/*
 * print.c - a tree as `agentsupd --check` shows it, and the comparisons a
 * reload uses to tell a changed node from an unchanged one.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "parse.h"
#include "util.h"

/* An environment's NAME=value entries in any order: a reload that only
 * reordered `environment` (or moved a key into a merge) restarted the
 * worker. Names are unique in one. */
static bool
print_env_equal(char **a, char **b)
{
	size_t na = 0, nb = 0;

	if (a == NULL || b == NULL)
		return a == b;
	while (a[na] != NULL)
		na++;
	while (b[nb] != NULL)
		nb++;
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		size_t j = 0;
		while (j < nb && strcmp(a[i], b[j]) != 0)
			j++;
		if (j == nb)
			return false;
	}
	return true;
}

static bool
print_str_equal(const char *a, const char *b)
{
	return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static bool
print_output_equal(const struct output *a, const struct output *b)
{
	return a->mode == b->mode && print_str_equal(a->path, b->path);
}

static bool
print_limits_equal(const struct limits_spec *a, const struct limits_spec *b)
{
	if (a->set != b->set)
		return false;
	for (int i = 0; i < LIMIT__COUNT; i++)
		if ((a->set & (1u << i)) && a->v[i] != b->v[i])
			return false;
	return true;
}

int
spec_process_equal(const struct spec *a, const struct spec *b)
{
	return a->kind == b->kind && util_strv_equal(a->argv, b->argv) &&
	       print_str_equal(a->directory, b->directory) &&
	       print_env_equal(a->env, b->env) &&
	       util_strv_equal(a->env_files, b->env_files) &&
	       print_output_equal(&a->out, &b->out) &&
	       print_output_equal(&a->err, &b->err) &&
	       a->pol->notify == b->pol->notify &&
	       print_str_equal(a->user, b->user) &&
	       print_str_equal(a->group, b->group) &&
	       a->pol->umask_mode == b->pol->umask_mode &&
	       print_limits_equal(&a->pol->limits, &b->pol->limits);
}

static bool
print_backoff_equal(const struct backoff_spec *a, const struct backoff_spec *b)
{
	if (!a->enabled || !b->enabled)
		return a->enabled == b->enabled;
	return a->initial_ms == b->initial_ms && a->max_ms == b->max_ms &&
	       a->reset_after_ms == b->reset_after_ms &&
	       a->retry_after_max_ms == b->retry_after_max_ms &&
	       a->multiplier == b->multiplier && a->jitter == b->jitter;
}

static bool
print_circuit_equal(const struct circuit_spec *a, const struct circuit_spec *b)
{
	if (!a->enabled || !b->enabled)
		return a->enabled == b->enabled;
	return a->failures == b->failures && a->window_ms == b->window_ms &&
	       a->open_ms == b->open_ms && a->open_max_ms == b->open_max_ms &&
	       a->probe_stable_ms == b->probe_stable_ms;
}

static bool
print_checkpoint_equal(const struct checkpoint_spec *a,
                       const struct checkpoint_spec *b)
{
	return a->enabled == b->enabled && a->max == b->max &&
	       a->keep == b->keep && a->poison_after == b->poison_after;
}

int
spec_policy_equal(const struct spec *a, const struct spec *b)
{
	return a->kind == b->kind && a->pol->restart == b->pol->restart &&
	       a->pol->significant == b->pol->significant &&
	       a->pol->autostart == b->pol->autostart &&
	       print_backoff_equal(&a->pol->backoff, &b->pol->backoff) &&
	       print_circuit_equal(&a->pol->circuit, &b->pol->circuit) &&
	       a->pol->strategy == b->pol->strategy &&
	       a->pol->intensity == b->pol->intensity &&
	       a->pol->period_ms == b->pol->period_ms &&
	       a->pol->shutdown_ms == b->pol->shutdown_ms &&
	       a->pol->stop_signal == b->pol->stop_signal &&
	       memcmp(a->pol->success_exit, b->pol->success_exit,
	              sizeof a->pol->success_exit) == 0 &&
	       a->pol->heartbeat_ms == b->pol->heartbeat_ms &&
	       a->pol->heartbeat_timeout_ms == b->pol->heartbeat_timeout_ms &&
	       a->pol->start_timeout_ms == b->pol->start_timeout_ms &&
	       a->pol->ready_after_ms == b->pol->ready_after_ms &&
	       a->pol->drain_timeout_ms == b->pol->drain_timeout_ms &&
	       a->pol->max_memory == b->pol->max_memory &&
	       a->pol->log_max == b->pol->log_max &&
	       a->pol->log_keep == b->pol->log_keep &&
	       a->pol->control == b->pol->control &&
	       /* a pool's and checkpoints': applied, and so reported */
	       a->pol->max_children == b->pol->max_children &&
	       a->pol->key_ttl_ms == b->pol->key_ttl_ms &&
	       util_strv_equal(a->spawn_from, b->spawn_from) &&
	       print_checkpoint_equal(&a->pol->checkpoint,
	                              &b->pol->checkpoint) &&
	       progress_keys_equal(a, b);
}

/* An argument with a control character as bash's $'...', so that a newline
 * or an escape sequence in a command forges no line of the printed tree. */
static bool
print_argv_ctrl(FILE *f, const char *arg)
{
	const unsigned char *c = (const unsigned char *)arg;

	while (*c != '\0' && *c >= 0x20 && *c != 0x7f)
		c++;
	if (*c == '\0')
		return false;
	fputs("$'", f);
	for (c = (const unsigned char *)arg; *c != '\0'; c++)
		if (*c == '\n')
			fputs("\\n", f);
		else if (*c == '\t')
			fputs("\\t", f);
		else if (*c < 0x20 || *c == 0x7f)
			fprintf(f, "\\x%02x", *c);
		else if (*c == '\'' || *c == '\\')
			fprintf(f, "\\%c", *c);
		else
			fputc(*c, f);
	fputc('\'', f);
	return true;
}

static void
print_argv(char **argv, FILE *f)
{
	for (char **a = argv; *a != NULL; a++) {
		bool plain = **a != '\0' && strpbrk(*a, " \t\n'\"\\$`") == NULL;
		fprintf(f, a == argv ? "" : " ");
		if (print_argv_ctrl(f, *a))
			continue;
		if (plain)
			fputs(*a, f);
		else {
			fputc('\'', f);
			for (const char *c = *a; *c; c++)
				if (*c == '\'')
					fputs("'\\''", f);
				else
					fputc(*c, f);
			fputc('\'', f);
		}
	}
}

/* Backoff when it is not the default, the circuit when it is on. */
static void
print_policy(const struct spec *s, FILE *f)
{
	const struct backoff_spec *b = &s->pol->backoff;
	const struct circuit_spec *c = &s->pol->circuit;
	char d1[32], d2[32], d3[32], d4[32];

	if (!b->enabled)
		fputs("  [backoff none]", f);
	else if (!print_backoff_equal(b, &config_policy_default.backoff)) {
		util_format_duration(b->initial_ms, d1, sizeof d1);
		util_format_duration(b->max_ms, d2, sizeof d2);
		util_format_duration(b->reset_after_ms, d3, sizeof d3);
		util_format_duration(b->retry_after_max_ms, d4, sizeof d4);
		fprintf(f,
		        "  [backoff %s..%s x%g jitter %s, reset after %s, "
		        "retry_after at most %s]",
		        d1, d2, b->multiplier, config_jitter_name(b->jitter),
		        d3, d4);
	}
	if (c->enabled) {
		util_format_duration(c->window_ms, d1, sizeof d1);
		util_format_duration(c->open_ms, d2, sizeof d2);
		util_format_duration(c->open_max_ms, d3, sizeof d3);
		util_format_duration(c->probe_stable_ms, d4, sizeof d4);
		fprintf(f, "  [circuit %u in %s, open %s..%s, probe stable %s]",
		        c->failures, d1, d2, d3, d4);
	}
	if (s->pol->significant)
		fputs("  [significant]", f);
	if (!s->pol->autostart)
		fputs("  [autostart: false]", f);
}

static void
print_spec(const struct spec *s, const char *prefix, bool last, bool top,
           FILE *f)
{
	char dur[32], buf[256];

	fprintf(f, "%s%s%s", prefix, top ? "" : (last ? "`-- " : "|-- "),
	        s->name);
	if (s->kind == KIND_SUPERVISOR) {
		util_format_duration(s->pol->period_ms, dur, sizeof dur);
		fprintf(f, "  supervisor %s, intensity %u in %s",
		        config_strategy_name(s->pol->strategy),
		        s->pol->intensity, dur);
		if (!top && s->pol->restart != RESTART_PERMANENT)
			fprintf(f, ", %s",
			        config_restart_name(s->pol->restart));
		if (s->pol->significant)
			fputs(", significant", f);
		if (!s->pol->autostart)
			fputs(", autostart: false", f);
		progress_keys_print_budget(&s->pol->budget, f);
		fputc('\n', f);
	} else {
		fprintf(f,
		        "  worker %s: ", config_restart_name(s->pol->restart));
		print_argv(s->argv, f);
		if (s->pol->heartbeat_ms) {
			util_format_duration(s->pol->heartbeat_ms, dur,
			                     sizeof dur);
			fprintf(f, "  [heartbeat %s]", dur);
		}
		if (s->pol->start_timeout_ms) {
			util_format_duration(s->pol->start_timeout_ms, dur,
			                     sizeof dur);
			fprintf(f, "  [ready within %s]", dur);
		}
		if (s->pol->ready_after_ms) {
			util_format_duration(s->pol->ready_after_ms, dur,
			                     sizeof dur);
			fprintf(f, "  [ready after %s]", dur);
		}
		if (s->pol->notify == NOTIFY_SYSTEMD)
			fprintf(f, "  [sd_notify]");
		print_policy(s, f);
		progress_keys_print(s, f);
		fputc('\n', f);
	}
	snprintf(buf, sizeof buf, "%s%s", prefix,
	         top ? "" : (last ? "    " : "|   "));
	for (size_t i = 0; i < s->nchildren; i++)
		print_spec(s->children[i], buf, i + 1 == s->nchildren, false,
		           f);
}

void
config_print(const struct config *cfg, FILE *f)
{
	print_spec(cfg->root, "", true, true, f);
}
