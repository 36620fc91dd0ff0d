/*
 * spawn_env.c - a worker's environment, made before its clone: agentsupd's,
 * its user's, its env_file's, its spec's and its own AGENTSUP_* variables,
 * a later one setting a key over an earlier.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spawn.h"
#include "spawn_int.h"
#include "util.h"

/* Whether env (NULL-terminated, or NULL) sets entry's name. */
static bool
spawn_env_has(const char *entry, char *const *env)
{
	size_t kl = strcspn(entry, "=");

	for (char *const *e = env; e != NULL && *e != NULL; e++)
		if (strncmp(*e, entry, kl) == 0 && (*e)[kl] == '=')
			return true;
	return false;
}

/* Whether the spec's env sets entry's name, or it is one of ours. */
static bool
spawn_env_key_in(const char *entry, char **env)
{
	if (strncmp(entry, "AGENTSUP_", 9) == 0)
		return true; /* ours alone: never a nested daemon's */
	return spawn_env_has(entry, env);
}

/* The env_file entries sorted by name, then by place: up to 16 files of
 * 1,024 lines each are told apart in n log n, not n * n on the loop. */
struct spawn_env_key {
	const char *e;
	size_t i;
};

static int
spawn_env_keycmp(const char *a, const char *b)
{
	size_t al = strcspn(a, "="), bl = strcspn(b, "=");
	int c = memcmp(a, b, al < bl ? al : bl);

	return c != 0 ? c : (al > bl) - (al < bl);
}

static int
spawn_env_key_order(const void *x, const void *y)
{
	const struct spawn_env_key *a = x, *b = y;
	int c = spawn_env_keycmp(a->e, b->e);

	return c != 0 ? c : (a->i > b->i) - (a->i < b->i);
}

/* Whether the sorted entries (n) set entry's name. */
static bool
spawn_env_sorted_has(const char *entry, const struct spawn_env_key *v, size_t n)
{
	size_t lo = 0, hi = n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = spawn_env_keycmp(v[mid].e, entry)) == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* agentsupd's environment, then the user's (HOME, USER, LOGNAME, SHELL of
 * `user:`, unless the spec sets them), then its env_file's (fenv), then
 * the spec's, then AGENTSUP_*: a later one sets a key over an earlier, and
 * each key is passed once; one of the worker's own (own, NULL-terminated:
 * NOTIFY_SOCKET, WATCHDOG_USEC and AGENTSUP_*) only as ours, since getenv
 * takes the first of two. The strings are borrowed except ours (*own,
 * freed by the caller). */
char **
spawn_env_build(const struct spec *s, const struct spawn_ids *ids,
                char *const *fenv, char **own, size_t nown)
{
	char *user[SPAWN_USER_ENV + 1]; /* NULL-terminated */
	size_t cnt = 0, k = 0, nuser = 0, nf = 0;
	struct spawn_env_key *sorted;
	bool *last;
	char **envp;

	for (char *const *e = fenv; e != NULL && *e != NULL; e++)
		nf++;
	sorted = xcalloc(nf, sizeof *sorted);
	last = xcalloc(nf, sizeof *last);
	for (size_t i = 0; i < nf; i++)
		sorted[i] = (struct spawn_env_key){fenv[i], i};
	if (nf > 0)
		qsort(sorted, nf, sizeof *sorted, spawn_env_key_order);
	/* a file's key set again later (in it or a later file): the last */
	for (size_t j = 0; j < nf; j++)
		last[sorted[j].i] =
		        j + 1 == nf ||
		        spawn_env_keycmp(sorted[j].e, sorted[j + 1].e) != 0;
	for (int i = 0; i < SPAWN_USER_ENV; i++)
		if (ids->env[i][0] != '\0' &&
		    !spawn_env_key_in(ids->env[i], s->env) &&
		    !spawn_env_sorted_has(ids->env[i], sorted, nf) &&
		    !spawn_env_has(ids->env[i], own))
			user[nuser++] = (char *)ids->env[i];
	user[nuser] = NULL;
	for (char **e = environ; *e != NULL; e++)
		cnt++;
	for (char **e = s->env; e != NULL && *e != NULL; e++)
		cnt++;
	envp = xcalloc(cnt + nf + nuser + nown + 1, sizeof *envp);
	for (char **e = environ; *e != NULL; e++)
		if (!spawn_env_key_in(*e, s->env) && !spawn_env_has(*e, user) &&
		    !spawn_env_sorted_has(*e, sorted, nf) &&
		    !spawn_env_has(*e, own))
			envp[k++] = *e;
	for (size_t i = 0; i < nuser; i++)
		envp[k++] = user[i];
	/* the spec's set over the files' */
	for (size_t i = 0; i < nf; i++)
		if (last[i] && !spawn_env_key_in(fenv[i], s->env) &&
		    !spawn_env_has(fenv[i], own))
			envp[k++] = fenv[i];
	for (char **e = s->env; e != NULL && *e != NULL; e++)
		if (!spawn_env_has(*e, own))
			envp[k++] = *e;
	for (size_t i = 0; i < nown; i++)
		envp[k++] = own[i];
	envp[k] = NULL;
	free(sorted);
	free(last);
	return envp;
}

const char *
spawn_env_path(char **envp)
{
	for (char **e = envp; *e != NULL; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			return *e + 5;
	return "/usr/local/bin:/usr/bin:/bin";
}

/* The worker's own AGENTSUP_* variables; *n of them, each malloc'd, then
 * NULL. */
size_t
spawn_env_own(const struct spawn_args *a, char **own)
{
	size_t n = 0;

	own[n++] = xasprintf("AGENTSUP_FD=%d", AGENTSUP_CHILD_FD);
	own[n++] = xasprintf("AGENTSUP_NAME=%s", a->spec->name);
	own[n++] = xasprintf("AGENTSUP_PATH=%s", a->path);
	own[n++] = xasprintf("AGENTSUP_INCARNATION=%lu", a->incarnation);
	if (a->spec->pol->heartbeat_ms)
		own[n++] = xasprintf(
		        "AGENTSUP_HEARTBEAT_MS=%llu",
		        (unsigned long long)a->spec->pol->heartbeat_ms);
	if (a->notify_socket != NULL)
		own[n++] = xasprintf("NOTIFY_SOCKET=%s", a->notify_socket);
	if (a->control_socket != NULL)
		own[n++] = xasprintf("AGENTSUP_SOCKET=%s", a->control_socket);
	if (a->notify_socket != NULL && a->spec->pol->heartbeat_ms)
		own[n++] = xasprintf(
		        "WATCHDOG_USEC=%llu",
		        (unsigned long long)a->spec->pol->heartbeat_timeout_ms *
		                1000);
	own[n] = NULL;
	return n;
}
