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

/* agentsupd's environment, then the user's (HOME, USER, LOGNAME, SHELL of
 * `user:`, unless the spec sets them), then its env_file's (fenv), then
 * the spec's, then AGENTSUP_*: a later one sets a key over an earlier.
 * The strings are borrowed except ours (*own, freed by the caller). */
char **
spawn_env_build(const struct spec *s, const struct spawn_ids *ids,
                char *const *fenv, char **own, size_t nown)
{
	char *user[SPAWN_USER_ENV + 1]; /* NULL-terminated */
	size_t cnt = 0, k = 0, nuser = 0;
	char **envp;

	for (int i = 0; i < SPAWN_USER_ENV; i++)
		if (ids->env[i][0] != '\0' &&
		    !spawn_env_key_in(ids->env[i], s->env) &&
		    !spawn_env_has(ids->env[i], fenv))
			user[nuser++] = (char *)ids->env[i];
	user[nuser] = NULL;
	for (char **e = environ; *e != NULL; e++)
		cnt++;
	for (char **e = s->env; e != NULL && *e != NULL; e++)
		cnt++;
	for (char *const *e = fenv; e != NULL && *e != NULL; e++)
		cnt++;
	envp = xcalloc(cnt + nuser + nown + 1, sizeof *envp);
	for (char **e = environ; *e != NULL; e++)
		if (!spawn_env_key_in(*e, s->env) && !spawn_env_has(*e, user) &&
		    !spawn_env_has(*e, fenv))
			envp[k++] = *e;
	for (size_t i = 0; i < nuser; i++)
		envp[k++] = user[i];
	/* a file's key set again later (in it or a later file) or by the
	 * spec: the last one */
	for (char *const *e = fenv; e != NULL && *e != NULL; e++)
		if (!spawn_env_key_in(*e, s->env) && !spawn_env_has(*e, e + 1))
			envp[k++] = *e;
	for (char **e = s->env; e != NULL && *e != NULL; e++)
		envp[k++] = *e;
	for (size_t i = 0; i < nown; i++)
		envp[k++] = own[i];
	envp[k] = NULL;
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

/* The worker's own AGENTSUP_* variables; *n of them, each malloc'd. */
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
	return n;
}
