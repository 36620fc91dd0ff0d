/*
 * agentsup/wire.h - the agentsup wire protocol: framing and message names.
 *
 * A frame is a 4-byte unsigned big-endian length N, then N bytes holding
 * exactly one msgpack map with a string "t" naming the message. One spec
 * for workers (over the socketpair at AGENTSUP_FD) and for agentsupctl
 * (over the control socket). See docs/protocol.md.
 */
#ifndef AGENTSUP_WIRE_H
#define AGENTSUP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AGENTSUP_PROTOCOL_VERSION 1
#define AGENTSUP_FRAME_HEADER     4
#define AGENTSUP_MAX_FRAME        (64u * 1024u) /* default limit on N */
#define AGENTSUP_MAX_DEPTH        16            /* nesting of maps and arrays */

/* Environment handed to every worker. */
#define AGENTSUP_ENV_FD           "AGENTSUP_FD"
#define AGENTSUP_ENV_NAME         "AGENTSUP_NAME"
#define AGENTSUP_ENV_PATH         "AGENTSUP_PATH"
#define AGENTSUP_ENV_INCARNATION  "AGENTSUP_INCARNATION"
#define AGENTSUP_ENV_HEARTBEAT_MS "AGENTSUP_HEARTBEAT_MS"
#define AGENTSUP_ENV_SOCKET       "AGENTSUP_SOCKET"

/* Message types: the value of "t". */
#define AGENTSUP_T_HELLO "hello" /* worker -> daemon: v, pid, lang */
#define AGENTSUP_T_WELCOME                                                     \
	"welcome"                /* daemon -> worker: v, name, path,           \
	                            incarnation, heartbeat_ms, timeout_ms */
#define AGENTSUP_T_READY "ready" /* worker -> daemon */
#define AGENTSUP_T_HB    "hb"    /* worker -> daemon: seq, progress, status */
#define AGENTSUP_T_DRAIN "drain" /* daemon -> worker: deadline_ms */
#define AGENTSUP_T_REQ   "req"   /* ctl -> daemon: id, cmd, args */
#define AGENTSUP_T_RES   "res"   /* daemon -> ctl: id, ok, result/error */
#define AGENTSUP_T_EVENT "event" /* daemon -> ctl: a typed event */

enum agentsup_wire_status {
	AGENTSUP_WIRE_OK = 0,
	AGENTSUP_WIRE_MORE = 1,       /* not a whole frame yet: read more */
	AGENTSUP_WIRE_TOO_LONG = -1,  /* N above the limit */
	AGENTSUP_WIRE_NOT_MAP = -2,   /* the body is not a map */
	AGENTSUP_WIRE_TRUNCATED = -3, /* the object ends past the body */
	AGENTSUP_WIRE_TRAILING = -4,  /* bytes after the one object */
	AGENTSUP_WIRE_NO_TYPE = -5,   /* no string "t" */
	AGENTSUP_WIRE_CLAIM = -6,     /* a container claims more than fits */
	AGENTSUP_WIRE_DEPTH = -7,   /* nested deeper than AGENTSUP_MAX_DEPTH */
	AGENTSUP_WIRE_INVALID = -8, /* not msgpack (0xc1, ...) */
	AGENTSUP_WIRE_NOMEM = -9,
	AGENTSUP_WIRE_FIELD = -10, /* a known key with a wrong type */
};

/* One decoded frame. Strings point into the zone or the input. */
struct agentsup_frame {
	msgpack_object map;
	const char *type; /* "t", not NUL-terminated */
	size_t type_len;
	size_t size; /* header + body bytes this frame used */
};

/*
 * Decode the first frame of buf[0..len). Returns AGENTSUP_WIRE_OK and fills
 * *out, AGENTSUP_WIRE_MORE when more bytes are needed, or a negative error
 * after which the stream cannot be trusted. The body is validated before
 * anything is allocated: claimed sizes are checked against the bytes there.
 * Objects live in zone (cleared by the caller) and may point into buf.
 */
int agentsup_wire_decode(const uint8_t *buf, size_t len, size_t max_frame,
                         msgpack_zone *zone, struct agentsup_frame *out);

/* Check one msgpack body without allocating; 0 or a negative status. */
int agentsup_wire_check(const uint8_t *body, size_t len);

const char *agentsup_wire_strerror(int status);

/* The default control socket, which agentsupd and agentsupctl must agree on:
 * /run/agentsupd.sock for root, else $XDG_RUNTIME_DIR/agentsupd.sock, else
 * agentsupd.sock in a private directory of the user's own,
 * ${TMPDIR:-/tmp}/agentsupd-UID/ (as tmux does). -1 if it does not fit in
 * buf. Computes the name only: see agentsup_wire_socket_dir(). */
int agentsup_wire_default_socket(char *buf, size_t len);

/* When path lies in the private directory the default uses for a user
 * without XDG_RUNTIME_DIR, make sure nobody else can have put it there or can
 * reach into it: create it (mode 0700) if create is set, then check that it
 * is a directory, not a link, owned by the effective uid, with no access for
 * group or others. 0 if it is safe (or path is elsewhere, or the directory is
 * absent and create is 0); -1 with errno set and *why a sentence otherwise. */
int agentsup_wire_socket_dir(const char *path, int create, const char **why);

/* Whether the frame's "t" equals type. */
int agentsup_wire_is(const struct agentsup_frame *, const char *type);

/* The value of key in a map, or NULL. */
const msgpack_object *agentsup_wire_get(const msgpack_object *map,
                                        const char *key);

/*
 * Encoding: agentsup_wire_begin() clears sb and reserves the header, then
 * pack a map into pk; agentsup_wire_end() writes the length. -1 if the body
 * exceeds max_frame.
 */
void agentsup_wire_begin(msgpack_sbuffer *sb);
int agentsup_wire_end(msgpack_sbuffer *sb, size_t max_frame);

/* Pack a string key followed by a string or integer value. */
void agentsup_wire_pack_str(msgpack_packer *, const char *s);
void agentsup_wire_kv_str(msgpack_packer *, const char *key, const char *val);
void agentsup_wire_kv_int(msgpack_packer *, const char *key, int64_t val);
void agentsup_wire_kv_uint(msgpack_packer *, const char *key, uint64_t val);

#ifdef __cplusplus
}
#endif
#endif
