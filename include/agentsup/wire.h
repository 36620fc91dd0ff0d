/*
 * agentsup/wire.h - the agentsup wire protocol: framing and message names.
 *
 * A frame is a 4-byte unsigned big-endian length N, then N bytes holding
 * exactly one msgpack map with a string "t" naming the message. One spec
 * for workers (over the socketpair at AGENTSUP_FD) and for agentsupctl
 * (over the control socket). The names of the protocol are in protocol.h;
 * docs/protocol.md explains them.
 *
 * It speaks in msgpack-c's types, so a program that uses it uses msgpack-c
 * too and builds with it: `pkg-config --cflags --libs agentsup msgpack`
 * (Debian: libmsgpack-dev). agent.h alone needs only agentsup.
 */
#ifndef AGENTSUP_WIRE_H
#define AGENTSUP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "agentsup/protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

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
	/* what agentsup_reader_read() says beside a wire status */
	AGENTSUP_READ_AGAIN = -100,   /* nothing to read now */
	AGENTSUP_READ_STOPPED = -101, /* the frame callback said stop */
	AGENTSUP_READ_ERRNO = -102,   /* recv or malloc failed: see errno */
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

/*
 * The one frame reader, for every peer of the protocol: the daemon's worker
 * channels and control clients, libagentsup and agentsupctl.
 *
 * It owns the bytes of at most one split frame and nothing else: an idle
 * reader holds no heap memory, and a split frame's buffer grows with the
 * bytes that actually arrived, up to the size its header gives. The limit is
 * an argument of every call and applies to one frame, never to the bytes
 * buffered: a frame whose header says more than the limit *of this call* is
 * AGENTSUP_WIRE_TOO_LONG, even if it was begun under a higher limit, and a
 * limit that changes between calls can never overflow anything.
 */
struct agentsup_reader {
	uint8_t *part;  /* the split frame, header first; NULL when none */
	size_t partlen; /* bytes of it held (in head while fewer than 4) */
	size_t partcap; /* bytes allocated at part */
	uint8_t head[AGENTSUP_FRAME_HEADER]; /* a split frame's header */
};

/* Bytes read by one agentsup_reader_read(), on its stack. */
#define AGENTSUP_READ_CHUNK 16384

/* Called once per whole frame; its objects live in the zone, which the
 * reader clears after the call. Nonzero stops the reading: the rest of what
 * was read is dropped, so only do it when the peer is being cut off. */
typedef int (*agentsup_frame_fn)(void *arg, const struct agentsup_frame *);

void agentsup_reader_init(struct agentsup_reader *);
/* Free what a split frame holds; the reader can be used again. */
void agentsup_reader_free(struct agentsup_reader *);
/* Bytes of a split frame held: nonzero at EOF means the peer stopped
 * mid-frame. */
size_t agentsup_reader_pending(const struct agentsup_reader *);

/*
 * Hand buf[0..len) to the reader: every whole frame goes to fn, a split one
 * is kept. Returns 0, AGENTSUP_READ_STOPPED, AGENTSUP_READ_ERRNO (ENOMEM),
 * or a negative wire status after which the stream cannot be trusted.
 */
int agentsup_reader_feed(struct agentsup_reader *, const uint8_t *buf,
                         size_t len, size_t max_frame, msgpack_zone *,
                         agentsup_frame_fn fn, void *arg);

/*
 * recv() once from fd into buf (MSG_DONTWAIT; EINTR retried). Returns the
 * bytes read (> 0), 0 at EOF, AGENTSUP_READ_AGAIN when nothing waits, or
 * AGENTSUP_READ_ERRNO.
 */
int agentsup_reader_recv(int fd, uint8_t *buf, size_t len);

/*
 * recv() once from fd (MSG_DONTWAIT, at most AGENTSUP_READ_CHUNK bytes) and
 * feed what came. Returns the bytes read (> 0), 0 at EOF, AGENTSUP_READ_AGAIN
 * when nothing waits, or what agentsup_reader_feed() refused with
 * (AGENTSUP_READ_ERRNO also when recv failed).
 */
int agentsup_reader_read(struct agentsup_reader *, int fd, size_t max_frame,
                         msgpack_zone *, agentsup_frame_fn fn, void *arg);

/*
 * Check every known field of a known message type against its type, as
 * docs/protocol.md gives them (the table is in wire_fields.c): call it
 * before dispatching. AGENTSUP_WIRE_OK, or AGENTSUP_WIRE_FIELD with *why
 * (a static string naming the field; why may be NULL). Unknown keys and
 * unknown types pass.
 */
int agentsup_wire_check_fields(const struct agentsup_frame *, const char **why);

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
