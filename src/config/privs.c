/*
 * privs.c - the keys of DESIGN §13 that say who a worker runs as and what
 * it may use: user, group, umask, limits, max_memory, and control (what it
 * may ask of agentsupd's control socket). Typed here; the names are
 * resolved by the shell, which alone may read /etc/passwd.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "parse.h"
#include "util.h"

#define PRIVS_NAME_MAX 256

/* Order is the bit of each grant; names as agentsupctl spells commands. */
const char *const config_control_names[] = {
        "status", "start",    "stop",  "restart", "drain", "reload",
        "events", "shutdown", "reset", "spawn",   "wait",  "dead",
        "replay", "drop",     "logs",  "signal",  "tasks", NULL};

static const char *const privs_limit_names[] = {"nofile", "nproc", "core",
                                                "memory", NULL};

uint32_t
config_control_bit(const char *cmd)
{
	int i = scalar_enum(config_control_names, cmd);

	return i < 0 ? 0 : UINT32_C(1) << i;
}

/* "4096", "64k", "512M", "2GiB": a byte count, binary units. */
int
config_parse_bytes(const char *s, uint64_t *out)
{
	static const char units[] = "kmgt";
	uint64_t v = 0, mult = 1;
	const char *p = s, *u;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (*p != '\0') {
		if ((u = strchr(units, tolower((unsigned char)*p))) == NULL)
			return -1;
		mult = UINT64_C(1) << (10 * (u - units + 1));
		p++;
		if (strcmp(p, "iB") == 0 || strcmp(p, "B") == 0)
			p += strlen(p);
		if (*p != '\0')
			return -1;
	}
	if (v > UINT64_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

static void *
privs_field(struct spec *s, const struct key *k)
{
	return spec_key_addr(s, k);
}

/* A user or group: a name as useradd allows, or a numeric id. */
static bool
privs_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= PRIVS_NAME_MAX || *s == '-')
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-$", *s))
			return false;
	return true;
}

void
privs_identity(struct parse *p, const struct key *k, yaml_node_t *v,
               struct spec *s, int depth)
{
	const char *str = load_scalar(p, k->name, v);
	char **field = privs_field(s, k);
	unsigned long id;

	(void)depth;
	if (str == NULL)
		return;
	if (!privs_name_ok(str)) {
		load_err(p, &v->start_mark,
		         "%s: want a name or a numeric id, not \"%s\"", k->name,
		         str);
		return;
	}
	if (util_parse_id(str, &id) < 0) { /* a cast would wrap it */
		load_err(p, &v->start_mark,
		         "%s: %s is no id (numeric ids are 0 to 4294967294)",
		         k->name, str);
		return;
	}
	free(*field);
	*field = xstrdup(str);
}

void
privs_umask(struct parse *p, const struct key *k, yaml_node_t *v,
            struct spec *s, int depth)
{
	const char *str = load_scalar(p, k->name, v);
	char *end;
	long m;

	(void)depth;
	if (str == NULL)
		return;
	m = strtol(str, &end, 8);
	if (*str < '0' || *str > '7' || *end != '\0' || m < 0 || m > 0777) {
		load_err(p, &v->start_mark,
		         "umask: want an octal mode such as 022, not \"%s\"",
		         str);
		return;
	}
	spec_pol(s)->umask_mode = (int)m;
}

void
privs_max_memory(struct parse *p, const struct key *k, yaml_node_t *v,
                 struct spec *s, int depth)
{
	const char *str = load_scalar(p, k->name, v);
	uint64_t b;

	(void)depth;
	if (str == NULL)
		return;
	if (config_parse_bytes(str, &b) < 0 || b == 0)
		load_err(p, &v->start_mark,
		         "max_memory: want a size such as 512M or 2G, not "
		         "\"%s\"",
		         str);
	else
		spec_pol(s)->max_memory = b;
}

static void
privs_limit(struct parse *p, const struct pair *pr, struct limits_spec *l)
{
	int i = scalar_enum(privs_limit_names, pr->key);
	const char *str = load_scalar(p, "limits", pr->v);
	uint64_t b;

	if (i < 0) {
		load_err(p, &pr->k->start_mark,
		         "limits: unknown limit \"%s\" (want nofile, nproc, "
		         "core or memory)",
		         pr->key);
		return;
	}
	if (str == NULL)
		return;
	if (strcmp(str, "unlimited") == 0)
		b = LIMIT_INFINITY;
	else if ((i == LIMIT_NOFILE || i == LIMIT_NPROC)
	                 ? scalar_uint(str, UINT32_MAX, &b) < 0
	                 : config_parse_bytes(str, &b) < 0) {
		load_err(p, &pr->v->start_mark,
		         "limits: %s: want %s or unlimited, not \"%s\"",
		         pr->key,
		         i == LIMIT_NOFILE || i == LIMIT_NPROC ? "a count"
		                                               : "a size",
		         str);
		return;
	}
	l->v[i] = b;
	l->set |= 1u << i;
}

void
privs_limits(struct parse *p, const struct key *k, yaml_node_t *v,
             struct spec *s, int depth)
{
	struct pair *pr;
	size_t n;

	(void)k;
	(void)depth;
	if (v->type != YAML_MAPPING_NODE) {
		load_err(p, &v->start_mark,
		         "limits: expected a mapping such as {nofile: 1024}");
		return;
	}
	if (map_pairs(p, v, "limits", &pr, &n) < 0)
		return;
	spec_pol(s)->limits = (struct limits_spec){0};
	for (size_t i = 0; i < n; i++)
		privs_limit(p, &pr[i], &spec_pol(s)->limits);
	free(pr);
}

/* "status, start, ..., logs": every name config_control_bit accepts, so
 * the refusal never lags behind the table. */
static void
privs_control_list(char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; config_control_names[i] != NULL && n < len; i++) {
		int w = snprintf(buf + n, len - n, "%s%s", i > 0 ? ", " : "",
		                 config_control_names[i]);
		if (w < 0)
			break;
		n += (size_t)w;
	}
}

static void
privs_grant(struct parse *p, yaml_node_t *e, uint32_t *grant)
{
	const char *str = load_scalar(p, "control", e);
	char want[256];
	uint32_t bit;

	if (str == NULL)
		return;
	if ((bit = config_control_bit(str)) == 0) {
		privs_control_list(want, sizeof want);
		load_err(p, &e->start_mark,
		         "control: unknown command \"%s\" (want %s)", str,
		         want);
	}
	*grant |= bit;
}

/* `control: none`, `control: all` or a list of command names. */
void
privs_control(struct parse *p, const struct key *k, yaml_node_t *v,
              struct spec *s, int depth)
{
	yaml_node_item_t *it;
	const char *str;
	size_t n;

	(void)depth;
	spec_pol(s)->control = 0;
	if (v->type == YAML_SEQUENCE_NODE) {
		if (map_list(p, v, k->name, &it, &n) < 0)
			return;
		for (size_t i = 0; i < n; i++) {
			yaml_node_t *e = load_node(p, it[i]);
			if (e != NULL)
				privs_grant(p, e, &spec_pol(s)->control);
		}
		return;
	}
	if ((str = load_scalar(p, k->name, v)) == NULL)
		return;
	if (strcmp(str, "all") == 0)
		spec_pol(s)->control = CONTROL_ALL;
	else if (strcmp(str, "none") != 0)
		load_err(
		        p, &v->start_mark,
		        "control: want none, all or a list of commands such as "
		        "[status, drain], not \"%s\"",
		        str);
}
