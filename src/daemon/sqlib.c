/*
 * sqlib.c - libsqlite3 loaded on first use (see sqlib.h): dlopen of the
 * soname the build compiled against, every function the store uses looked
 * up at once, so a missing one is said at start, never at a checkpoint.
 */
#define SQLIB_IMPL
#include <dlfcn.h>
#include <stdio.h>

#include "sqlib.h"

/* The soname of the library sqlite3.h belongs to (libsqlite3-0). */
#define SQLIB_SONAME "libsqlite3.so.0"

const struct sqlib *sqlib;
static struct sqlib sqlib_table;

int
sqlib_load(char *why, size_t len)
{
	void *h, *f;

	if (sqlib != NULL)
		return 0;
	if ((h = dlopen(SQLIB_SONAME, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		snprintf(why, len, "cannot load SQLite: %s", dlerror());
		return -1;
	}
#define SQLIB_LOOKUP(name)                                                     \
	if ((f = dlsym(h, "sqlite3_" #name)) == NULL) {                        \
		snprintf(why, len, "cannot load SQLite: %s", dlerror());       \
		dlclose(h);                                                    \
		return -1;                                                     \
	}                                                                      \
	*(void **)&sqlib_table.name = f;
	SQLIB_FUNCS(SQLIB_LOOKUP)
#undef SQLIB_LOOKUP
	sqlib = &sqlib_table;
	return 0;
}
