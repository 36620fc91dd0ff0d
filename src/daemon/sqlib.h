/*
 * sqlib.h - SQLite, loaded when a state store is opened rather than when
 * agentsupd starts: a daemon without `state_dir` maps no libsqlite3 (about
 * 0.3 MiB of resident pages it would never use). Every file that talks to
 * SQLite includes this instead of <sqlite3.h>; its calls go through the
 * table below, the way SQLite's own sqlite3ext.h serves extensions.
 */
#ifndef AGENTSUP_SQLIB_H
#define AGENTSUP_SQLIB_H

#include <stddef.h>

#include <sqlite3.h>

#define SQLIB_FUNCS(X)                                                         \
	X(bind_blob)                                                           \
	X(bind_int)                                                            \
	X(bind_int64)                                                          \
	X(bind_null)                                                           \
	X(bind_parameter_count)                                                \
	X(bind_text)                                                           \
	X(busy_timeout)                                                        \
	X(clear_bindings)                                                      \
	X(close)                                                               \
	X(column_blob)                                                         \
	X(column_bytes)                                                        \
	X(column_int)                                                          \
	X(column_int64)                                                        \
	X(column_text)                                                         \
	X(column_type)                                                         \
	X(db_config)                                                           \
	X(db_readonly)                                                         \
	X(errcode)                                                             \
	X(errmsg)                                                              \
	X(exec)                                                                \
	X(file_control)                                                        \
	X(finalize)                                                            \
	X(get_autocommit)                                                      \
	X(free)                                                                \
	X(open_v2)                                                             \
	X(prepare_v2)                                                          \
	X(prepare_v3)                                                          \
	X(reset)                                                               \
	X(step)                                                                \
	X(wal_hook)

#define SQLIB_FIELD(f) __typeof__(sqlite3_##f) *f;
struct sqlib {
	SQLIB_FUNCS(SQLIB_FIELD)
};
#undef SQLIB_FIELD

/* NULL until sqlib_load succeeds. */
extern const struct sqlib *sqlib;

/* Load libsqlite3 (once; the main thread, before any store thread): 0, or
 * -1 with the reason in why. */
int sqlib_load(char *why, size_t len);

#ifndef SQLIB_IMPL
#define sqlite3_bind_blob            (sqlib->bind_blob)
#define sqlite3_bind_int             (sqlib->bind_int)
#define sqlite3_bind_int64           (sqlib->bind_int64)
#define sqlite3_bind_null            (sqlib->bind_null)
#define sqlite3_bind_parameter_count (sqlib->bind_parameter_count)
#define sqlite3_bind_text            (sqlib->bind_text)
#define sqlite3_busy_timeout         (sqlib->busy_timeout)
#define sqlite3_clear_bindings       (sqlib->clear_bindings)
#define sqlite3_close                (sqlib->close)
#define sqlite3_column_blob          (sqlib->column_blob)
#define sqlite3_column_bytes         (sqlib->column_bytes)
#define sqlite3_column_int           (sqlib->column_int)
#define sqlite3_column_int64         (sqlib->column_int64)
#define sqlite3_column_text          (sqlib->column_text)
#define sqlite3_column_type          (sqlib->column_type)
#define sqlite3_db_config            (sqlib->db_config)
#define sqlite3_db_readonly          (sqlib->db_readonly)
#define sqlite3_errcode              (sqlib->errcode)
#define sqlite3_errmsg               (sqlib->errmsg)
#define sqlite3_exec                 (sqlib->exec)
#define sqlite3_file_control         (sqlib->file_control)
#define sqlite3_finalize             (sqlib->finalize)
#define sqlite3_free                 (sqlib->free)
#define sqlite3_get_autocommit       (sqlib->get_autocommit)
#define sqlite3_open_v2              (sqlib->open_v2)
#define sqlite3_prepare_v2           (sqlib->prepare_v2)
#define sqlite3_prepare_v3           (sqlib->prepare_v3)
#define sqlite3_reset                (sqlib->reset)
#define sqlite3_step                 (sqlib->step)
#define sqlite3_wal_hook             (sqlib->wal_hook)
#endif

#endif
