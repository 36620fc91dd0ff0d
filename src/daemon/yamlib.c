/*
 * yamlib.c - libyaml mapped only while a config is parsed (at start, at a
 * reload, at --check), never while agentsupd only supervises: about 130 KiB
 * of resident pages a daemon of 1,000 workers would otherwise keep.
 *
 * The config library stays pure and calls yaml_* as usual. agentsupd
 * defines here the five functions it calls; each forwards to the library,
 * which the parser's initialisation opens and its deletion closes again (a
 * count under a lock: the reloader's thread and --check may parse while the
 * loop runs). The documents are the config library's own (yamldoc.c), built
 * from the parser's events, so nothing of libyaml is used after the last
 * yaml_parser_delete. agentsupd is
 * linked --as-needed, so libyaml is not among its DT_NEEDED
 * (test_package.py checks).
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>

#include <yaml.h>

/* The soname of the library yaml.h belongs to (libyaml-0-2). */
#define YAMLIB_SONAME "libyaml-0.so.2"

#define YAMLIB_FUNCS(X)                                                        \
	X(parser_initialize)                                                   \
	X(parser_set_input_string)                                             \
	X(parser_parse)                                                        \
	X(parser_delete)                                                       \
	X(event_delete)

#define YAMLIB_FIELD(f) __typeof__(yaml_##f) *f;
static struct yamlib {
	YAMLIB_FUNCS(YAMLIB_FIELD)
} yamlib;
#undef YAMLIB_FIELD

static pthread_mutex_t yamlib_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned yamlib_users;
static void *yamlib_handle;

/* Open the library for one more parser: 0, or -1 (the parse then fails with
 * ELIBACC, "cannot access a needed shared library", in its errors: this may
 * run on the reloader's thread, which must not touch the log). */
static int
yamlib_hold(void)
{
	void *h, *f;
	int rc = 0;

	pthread_mutex_lock(&yamlib_lock);
	if (yamlib_users > 0) {
		yamlib_users++;
		goto out;
	}
	if ((h = dlopen(YAMLIB_SONAME, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		rc = -1;
		goto out;
	}
#define YAMLIB_LOOKUP(name)                                                    \
	if ((f = dlsym(h, "yaml_" #name)) == NULL) {                           \
		dlclose(h);                                                    \
		rc = -1;                                                       \
		goto out;                                                      \
	}                                                                      \
	*(void **)&yamlib.name = f;
	YAMLIB_FUNCS(YAMLIB_LOOKUP)
#undef YAMLIB_LOOKUP
	yamlib_handle = h;
	yamlib_users = 1;
out:
	pthread_mutex_unlock(&yamlib_lock);
	return rc;
}

/* One parser fewer: the last one unmaps the library. */
static void
yamlib_release(void)
{
	pthread_mutex_lock(&yamlib_lock);
	if (yamlib_users > 0 && --yamlib_users == 0) {
		(void)dlclose(yamlib_handle); /* fails only for a bad handle */
		yamlib_handle = NULL;
	}
	pthread_mutex_unlock(&yamlib_lock);
}

int
yaml_parser_initialize(yaml_parser_t *parser)
{
	if (yamlib_hold() < 0) {
		errno = ELIBACC;
		return 0;
	}
	if (!yamlib.parser_initialize(parser)) {
		yamlib_release();
		errno = ENOMEM;
		return 0;
	}
	return 1;
}

void
yaml_parser_delete(yaml_parser_t *parser)
{
	yamlib.parser_delete(parser);
	yamlib_release();
}

void
yaml_parser_set_input_string(yaml_parser_t *parser, const unsigned char *in,
                             size_t size)
{
	yamlib.parser_set_input_string(parser, in, size);
}

int
yaml_parser_parse(yaml_parser_t *parser, yaml_event_t *event)
{
	return yamlib.parser_parse(parser, event);
}

void
yaml_event_delete(yaml_event_t *event)
{
	yamlib.event_delete(event);
}
