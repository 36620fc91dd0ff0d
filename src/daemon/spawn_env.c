/*
 * spawn_env.c - a worker's environment, made before its clone: agentsupd's,
 * its user's, its env_file's, its spec's and its own AGENTSUP_* variables,
 * a later one setting a key over an earlier.
 */
#include <errno.h>
#include <stdarg.h>
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
 * takes the first of two. The strings are borrowed; the array is m's. */
char **
spawn_env_build(struct spawn_env_mem *m, const struct spec *s,
                const struct spawn_ids *ids, char *const *fenv, char **own,
                size_t nown)
{
	char *user[SPAWN_USER_ENV + 1]; /* NULL-terminated */
	size_t cnt = 0, k = 0, nuser = 0, nf = 0;
	struct spawn_env_key *sorted;
	bool *last;
	char **envp;

	for (char *const *e = fenv; e != NULL && *e != NULL; e++)
		nf++;
	if (nf > m->sortcap) {
		m->sorted = xreallocarray(m->sorted, nf, sizeof *m->sorted);
		m->last = xreallocarray(m->last, nf, sizeof *m->last);
		m->sortcap = nf;
	}
	sorted = m->sorted;
	last = m->last;
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
	cnt += nf + nuser + nown + 1;
	if (cnt > m->envcap) {
		m->envp = xreallocarray(m->envp, cnt, sizeof *m->envp);
		m->envcap = cnt;
	}
	envp = m->envp;
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

/* One variable of the worker's own appended to m->own, its NUL after it:
 * its offset in *off; false past the text's bound. */
static bool
spawn_env_put(struct spawn_env_mem *m, size_t *off, const char *fmt, ...)
{
	va_list ap;
	bool ok;

	*off = m->own.len;
	va_start(ap, fmt);
	ok = text_buf_vprintf(&m->own, fmt, ap);
	va_end(ap);
	return ok && text_buf_append(&m->own, "", 1);
}

/* The worker's own AGENTSUP_* variables into own, in m's memory; how
 * many, then NULL; -1 (E2BIG) past the text's bound. */
int
spawn_env_own(struct spawn_env_mem *m, const struct spawn_args *a, char **own)
{
	size_t off[SPAWN_ENV_OWN_MAX];
	int n = 0;
	bool ok;

	text_buf_reset(&m->own);
	ok = spawn_env_put(m, &off[n++], "AGENTSUP_FD=%d", AGENTSUP_CHILD_FD) &&
	     spawn_env_put(m, &off[n++], "AGENTSUP_NAME=%s", a->spec->name) &&
	     spawn_env_put(m, &off[n++], "AGENTSUP_PATH=%s", a->path) &&
	     spawn_env_put(m, &off[n++], "AGENTSUP_INCARNATION=%lu",
	                   a->incarnation);
	if (ok && a->spec->pol->heartbeat_ms)
		ok = spawn_env_put(
		        m, &off[n++], "AGENTSUP_HEARTBEAT_MS=%llu",
		        (unsigned long long)a->spec->pol->heartbeat_ms);
	if (ok && a->notify_socket != NULL)
		ok = spawn_env_put(m, &off[n++], "NOTIFY_SOCKET=%s",
		                   a->notify_socket);
	if (ok && a->control_socket != NULL)
		ok = spawn_env_put(m, &off[n++], "AGENTSUP_SOCKET=%s",
		                   a->control_socket);
	if (ok && a->notify_socket != NULL && a->spec->pol->heartbeat_ms)
		ok = spawn_env_put(
		        m, &off[n++], "WATCHDOG_USEC=%llu",
		        (unsigned long long)a->spec->pol->heartbeat_timeout_ms *
		                1000);
	if (!ok) {
		errno = E2BIG;
		return -1;
	}
	for (int i = 0; i < n; i++) /* the text has stopped moving */
		own[i] = m->own.data + off[i];
	own[n] = NULL;
	return n;
}

void
spawn_env_mem_init(struct spawn_env_mem *m)
{
	*m = (struct spawn_env_mem){0};
	text_buf_init(&m->own, SPAWN_ENV_OWN_BYTES);
}

void
spawn_env_mem_free(struct spawn_env_mem *m)
{
	free(m->envp);
	text_buf_free(&m->own);
	free(m->sorted);
	free(m->last);
	spawn_env_mem_init(m);
}
