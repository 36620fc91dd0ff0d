/*
 * spawn_ids.c - who a worker runs as: `user:` and `group:` resolved to ids
 * and supplementary groups before the spawn (never in the child, which
 * shares the daemon's memory), and checked for a whole tree at load.
 */
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include "spawn.h"
#include "util.h"

/* The user's HOME, USER, LOGNAME and SHELL, as systemd's User= sets them
 * (a worker of user `agent` whose HOME stayed agentsupd's /root could not
 * write its caches there); an entry too long is left out. */
static void
spawn_user_env(const struct passwd *pw, struct spawn_ids *ids)
{
	const char *const fmt[SPAWN_USER_ENV] = {"HOME=%s", "USER=%s",
	                                         "LOGNAME=%s", "SHELL=%s"};
	const char *const val[SPAWN_USER_ENV] = {pw->pw_dir, pw->pw_name,
	                                         pw->pw_name, pw->pw_shell};

	for (int i = 0; i < SPAWN_USER_ENV; i++) {
		int n = val[i] != NULL && val[i][0] != '\0'
		                ? snprintf(ids->env[i], sizeof ids->env[i],
		                           fmt[i], val[i])
		                : -1;
		if (n < 0 || (size_t)n >= sizeof ids->env[i])
			ids->env[i][0] = '\0';
	}
}

/* None of them: the worker keeps agentsupd's (no switch). */
static void
spawn_user_env_clear(struct spawn_ids *ids)
{
	for (int i = 0; i < SPAWN_USER_ENV; i++)
		ids->env[i][0] = '\0';
}

/* A name or a numeric id: the user's entry (*login: its name, in buf), or
 * the id alone (1). */
static int
spawn_user(const char *name, uid_t *uid, gid_t *gid, const char **login,
           char *buf, size_t len, struct spawn_ids *ids)
{
	struct passwd pw, *res = NULL;
	unsigned long id;
	int num = util_parse_id(name, &id);

	if (num < 0)
		return -1;
	if (num > 0 && getpwuid_r((uid_t)id, &pw, buf, len, &res) == 0 &&
	    res == NULL) {
		*uid = (uid_t)id; /* an id without an entry: its own group */
		*gid = (gid_t)id;
		return 1;
	}
	if (res == NULL && getpwnam_r(name, &pw, buf, len, &res) != 0)
		res = NULL;
	if (res == NULL)
		return -1;
	*uid = pw.pw_uid;
	*gid = pw.pw_gid;
	*login = pw.pw_name;
	spawn_user_env(&pw, ids);
	return 0;
}

static int
spawn_group(const char *name, gid_t *gid, char *buf, size_t len)
{
	struct group gr, *res = NULL;
	unsigned long id;
	int num = util_parse_id(name, &id);

	if (num < 0)
		return -1;
	if (num > 0) {
		*gid = (gid_t)id;
		return 0;
	}
	if (getgrnam_r(name, &gr, buf, len, &res) != 0 || res == NULL)
		return -1;
	*gid = gr.gr_gid;
	return 0;
}

int
spawn_ids_resolve(const struct spec *s, struct spawn_ids *ids, char **why)
{
	char buf[16384], login[256] = "";
	const char *pwname = NULL;
	int r = 0;

	ids->set = false;
	ids->ngroups = 0;
	spawn_user_env_clear(ids);
	ids->uid = geteuid(); /* unset: agentsupd's, which the worker keeps */
	ids->gid = getegid();
	if (s->user == NULL && s->group == NULL)
		return 0;
	if (s->user != NULL &&
	    (r = spawn_user(s->user, &ids->uid, &ids->gid, &pwname, buf,
	                    sizeof buf, ids)) < 0) {
		*why = xasprintf("user: no such user \"%s\"", s->user);
		return -1;
	}
	/* the entry's name, for its groups: `user: "101"` is user 101's name
	 * (getgrouplist by the digits found none of its supplementary ones) */
	if (r == 0 && pwname != NULL)
		snprintf(login, sizeof login, "%s", pwname);
	if (s->group != NULL &&
	    spawn_group(s->group, &ids->gid, buf, sizeof buf) < 0) {
		*why = xasprintf("group: no such group \"%s\"", s->group);
		return -1;
	}
	ids->ngroups = SPAWN_MAX_GROUPS;
	if (s->user == NULL || r == 1 || login[0] == '\0' ||
	    getgrouplist(login, ids->gid, ids->groups, &ids->ngroups) < 0)
		ids->groups[0] = ids->gid, ids->ngroups = 1;
	ids->set = true;
	if (geteuid() != 0 &&
	    (ids->uid != geteuid() || ids->gid != getegid())) {
		*why = xasprintf(
		        "%s: agentsupd runs as uid %lu and cannot switch "
		        "to another user or group (run it as root, or "
		        "remove `user:`/`group:`)",
		        s->user ? "user" : "group", (unsigned long)geteuid());
		return -1;
	}
	if (geteuid() != 0) {
		ids->set = false; /* already who it asks for */
		spawn_user_env_clear(ids);
	}
	return 0;
}

int
spawn_check_ids(const struct spec *n, char **why)
{
	struct spawn_ids ids;
	char *w;

	if (n->kind == KIND_WORKER && spawn_ids_resolve(n, &ids, &w) < 0) {
		*why = xasprintf("worker %s: %s", n->name, w);
		free(w);
		return -1;
	}
	/* a pool's template too: its unknown user made the first spawn's
	 * task fail as ENOENT, dead-letter, and the pool give up */
	if (n->tmpl != NULL && spawn_ids_resolve(n->tmpl, &ids, &w) < 0) {
		*why = xasprintf("supervisor %s: template: %s", n->name, w);
		free(w);
		return -1;
	}
	for (size_t i = 0; i < n->nchildren; i++)
		if (spawn_check_ids(n->children[i], why) < 0)
			return -1;
	return 0;
}
