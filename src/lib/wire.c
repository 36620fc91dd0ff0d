/*
 * wire.c - the frame codec shared by the daemon, libagentsup and agentsupctl.
 *
 * Untrusted bytes are walked once by wire_check() before msgpack-c sees
 * them: msgpack-c reserves memory for a container's claimed size, so a
 * 5-byte frame claiming 2^32 elements must be refused here, cheaply.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agentsup/wire.h"

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint32_t
be16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

/* Walk one object at p[*at..len); 0 or a negative status. Each element of a
 * container needs at least one byte, which bounds what it may claim. */
static int
check_obj(const uint8_t *p, size_t len, size_t *at, int depth)
{
	uint8_t b;
	uint64_t n = 0, skip = 0, elems = 0;
	size_t hdr = 1;

	if (*at >= len)
		return AGENTSUP_WIRE_TRUNCATED;
	b = p[*at];
	if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
		skip = 0; /* fixint, nil, bool */
	else if (b >= 0xa0 && b <= 0xbf)
		skip = b & 0x1f; /* fixstr */
	else if (b >= 0x90 && b <= 0x9f)
		elems = b & 0x0f; /* fixarray */
	else if (b >= 0x80 && b <= 0x8f)
		elems = 2u * (b & 0x0f); /* fixmap */
	else {
		switch (b) {
		case 0xcc:
		case 0xd0:
			skip = 1;
			break;
		case 0xcd:
		case 0xd1:
			skip = 2;
			break;
		case 0xca:
		case 0xce:
		case 0xd2:
			skip = 4;
			break;
		case 0xcb:
		case 0xcf:
		case 0xd3:
			skip = 8;
			break;
		case 0xd4:
			skip = 2;
			break; /* fixext: type + data */
		case 0xd5:
			skip = 3;
			break;
		case 0xd6:
			skip = 5;
			break;
		case 0xd7:
			skip = 9;
			break;
		case 0xd8:
			skip = 17;
			break;
		case 0xc4:
		case 0xd9:
			hdr = 2;
			break; /* 8-bit length */
		case 0xc5:
		case 0xda:
			hdr = 3;
			break;
		case 0xc6:
		case 0xdb:
			hdr = 5;
			break;
		case 0xc7:
			hdr = 3;
			break; /* ext: length, type */
		case 0xc8:
			hdr = 4;
			break;
		case 0xc9:
			hdr = 6;
			break;
		case 0xdc:
		case 0xde:
			hdr = 3;
			break; /* 16-bit count */
		case 0xdd:
		case 0xdf:
			hdr = 5;
			break;
		default:
			return AGENTSUP_WIRE_INVALID; /* 0xc1 */
		}
		if (hdr > 1) {
			if (len - *at < hdr)
				return AGENTSUP_WIRE_TRUNCATED;
			if (hdr == 2 || b == 0xc7)
				n = p[*at + 1]; /* 8-bit length */
			else if (hdr == 3 || b == 0xc8)
				n = be16(p + *at + 1);
			else
				n = be32(p + *at + 1);
			if (b == 0xc7 || b == 0xc8 || b == 0xc9)
				skip = n; /* the type byte is in hdr */
			else if (b == 0xdc || b == 0xdd)
				elems = n;
			else if (b == 0xde || b == 0xdf)
				elems = 2 * n;
			else
				skip = n;
		}
	}
	if (len - *at < hdr || len - *at - hdr < skip)
		return AGENTSUP_WIRE_TRUNCATED;
	*at += hdr + (size_t)skip;
	if (elems == 0)
		return AGENTSUP_WIRE_OK;
	if (elems > len - *at)
		return AGENTSUP_WIRE_CLAIM;
	if (depth >= AGENTSUP_MAX_DEPTH)
		return AGENTSUP_WIRE_DEPTH;
	for (uint64_t i = 0; i < elems; i++) {
		int r = check_obj(p, len, at, depth + 1);
		if (r != AGENTSUP_WIRE_OK)
			return r;
	}
	return AGENTSUP_WIRE_OK;
}

int
agentsup_wire_check(const uint8_t *body, size_t len)
{
	size_t at = 0;
	int r;

	if (len == 0)
		return AGENTSUP_WIRE_NOT_MAP;
	if (!((body[0] >= 0x80 && body[0] <= 0x8f) || body[0] == 0xde ||
	      body[0] == 0xdf))
		return AGENTSUP_WIRE_NOT_MAP;
	if ((r = check_obj(body, len, &at, 0)) != AGENTSUP_WIRE_OK)
		return r;
	return at == len ? AGENTSUP_WIRE_OK : AGENTSUP_WIRE_TRAILING;
}

const msgpack_object *
agentsup_wire_get(const msgpack_object *map, const char *key)
{
	size_t kl = strlen(key);

	if (map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == kl &&
		    memcmp(kv->key.via.str.ptr, key, kl) == 0)
			return &kv->val;
	}
	return NULL;
}

int
agentsup_wire_decode(const uint8_t *buf, size_t len, size_t max_frame,
                     msgpack_zone *zone, struct agentsup_frame *out)
{
	const msgpack_object *t;
	uint32_t n;
	size_t off = 0;
	int r;

	if (len < AGENTSUP_FRAME_HEADER)
		return AGENTSUP_WIRE_MORE;
	n = be32(buf);
	if (n > max_frame)
		return AGENTSUP_WIRE_TOO_LONG;
	if (len - AGENTSUP_FRAME_HEADER < n)
		return AGENTSUP_WIRE_MORE;
	buf += AGENTSUP_FRAME_HEADER;
	if ((r = agentsup_wire_check(buf, n)) != AGENTSUP_WIRE_OK)
		return r;
	switch (msgpack_unpack((const char *)buf, n, &off, zone, &out->map)) {
	case MSGPACK_UNPACK_SUCCESS:
		break;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		return AGENTSUP_WIRE_NOMEM;
	default:
		return AGENTSUP_WIRE_INVALID; /* checked above: not expected */
	}
	t = agentsup_wire_get(&out->map, "t");
	if (t == NULL || t->type != MSGPACK_OBJECT_STR)
		return AGENTSUP_WIRE_NO_TYPE;
	out->type = t->via.str.ptr;
	out->type_len = t->via.str.size;
	out->size = AGENTSUP_FRAME_HEADER + n;
	return AGENTSUP_WIRE_OK;
}

void
agentsup_reader_init(struct agentsup_reader *r)
{
	memset(r, 0, sizeof *r);
}

void
agentsup_reader_free(struct agentsup_reader *r)
{
	free(r->part);
	agentsup_reader_init(r);
}

size_t
agentsup_reader_pending(const struct agentsup_reader *r)
{
	return r->partlen;
}

/* Room for need bytes of a frame of want bytes: grow by doubling with what
 * arrived, never past want, so a peer that sends a header and stops costs
 * little. The header, kept in head until now, goes first. */
static int
reader_reserve(struct agentsup_reader *r, size_t need, size_t want)
{
	size_t cap = r->partcap ? r->partcap * 2 : 256;
	uint8_t *p;

	if (need <= r->partcap)
		return 0;
	cap = cap < want ? cap : want;
	cap = cap > need ? cap : need;
	if ((p = realloc(r->part, cap)) == NULL)
		return AGENTSUP_READ_ERRNO;
	if (r->part == NULL)
		memcpy(p, r->head, AGENTSUP_FRAME_HEADER);
	r->part = p;
	r->partcap = cap;
	return 0;
}

/* Add buf to the split frame; *took is what it used. AGENTSUP_WIRE_MORE
 * while the frame is not whole. The limit is checked on every call. */
static int
reader_fill(struct agentsup_reader *r, const uint8_t *buf, size_t len,
            size_t max_frame, size_t *took)
{
	size_t want, take = 0;
	uint32_t n;

	if (r->partlen < AGENTSUP_FRAME_HEADER) {
		take = AGENTSUP_FRAME_HEADER - r->partlen;
		take = take < len ? take : len;
		memcpy(r->head + r->partlen, buf, take);
		r->partlen += take;
		if (r->partlen < AGENTSUP_FRAME_HEADER) {
			*took = take;
			return AGENTSUP_WIRE_MORE;
		}
	}
	n = be32(r->head);
	if (n > max_frame)
		return AGENTSUP_WIRE_TOO_LONG;
	want = AGENTSUP_FRAME_HEADER + (size_t)n;
	len -= take;
	len = len < want - r->partlen ? len : want - r->partlen;
	if (len > 0) {
		if (reader_reserve(r, r->partlen + len, want) < 0)
			return AGENTSUP_READ_ERRNO;
		memcpy(r->part + r->partlen, buf + take, len);
		r->partlen += len;
	}
	*took = take + len;
	return r->partlen == want ? AGENTSUP_WIRE_OK : AGENTSUP_WIRE_MORE;
}

/* Decode the first frame of buf and hand it to fn; *used is its size. */
static int
reader_emit(const uint8_t *buf, size_t len, size_t max_frame,
            msgpack_zone *zone, agentsup_frame_fn fn, void *arg, size_t *used)
{
	struct agentsup_frame f;
	int r = agentsup_wire_decode(buf, len, max_frame, zone, &f);

	if (r == AGENTSUP_WIRE_OK) {
		*used = f.size;
		if (fn(arg, &f) != 0)
			r = AGENTSUP_READ_STOPPED;
	}
	msgpack_zone_clear(zone);
	return r;
}

/* Complete the split frame from buf and emit it once whole. */
static int
reader_finish(struct agentsup_reader *r, const uint8_t *buf, size_t len,
              size_t max_frame, msgpack_zone *zone, agentsup_frame_fn fn,
              void *arg, size_t *took)
{
	size_t used;
	int s = reader_fill(r, buf, len, max_frame, took);

	if (s == AGENTSUP_WIRE_OK)
		s = reader_emit(r->part ? r->part : r->head, r->partlen,
		                max_frame, zone, fn, arg, &used);
	if (s != AGENTSUP_WIRE_MORE)
		agentsup_reader_free(r);
	return s;
}

int
agentsup_reader_feed(struct agentsup_reader *r, const uint8_t *buf, size_t len,
                     size_t max_frame, msgpack_zone *zone, agentsup_frame_fn fn,
                     void *arg)
{
	size_t at = 0, used = 0;
	int s;

	if (r->partlen > 0) {
		s = reader_finish(r, buf, len, max_frame, zone, fn, arg, &at);
		if (s != AGENTSUP_WIRE_OK)
			return s == AGENTSUP_WIRE_MORE ? 0 : s;
	}
	while (at < len) {
		s = reader_emit(buf + at, len - at, max_frame, zone, fn, arg,
		                &used);
		if (s == AGENTSUP_WIRE_MORE) /* keep the split frame */
			s = reader_fill(r, buf + at, len - at, max_frame,
			                &used);
		if (s != AGENTSUP_WIRE_OK)
			return s == AGENTSUP_WIRE_MORE ? 0 : s;
		at += used;
	}
	return 0;
}

int
agentsup_reader_recv(int fd, uint8_t *buf, size_t len)
{
	ssize_t n;

	do
		n = recv(fd, buf, len, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return AGENTSUP_READ_AGAIN;
	if (n < 0)
		return AGENTSUP_READ_ERRNO;
	return (int)n;
}

int
agentsup_reader_read(struct agentsup_reader *r, int fd, size_t max_frame,
                     msgpack_zone *zone, agentsup_frame_fn fn, void *arg)
{
	uint8_t buf[AGENTSUP_READ_CHUNK];
	int n = agentsup_reader_recv(fd, buf, sizeof buf);
	int s;

	if (n <= 0)
		return n;
	s = agentsup_reader_feed(r, buf, (size_t)n, max_frame, zone, fn, arg);
	return s == 0 ? n : s;
}

int
agentsup_wire_is(const struct agentsup_frame *f, const char *type)
{
	size_t l = strlen(type);

	return f->type_len == l && memcmp(f->type, type, l) == 0;
}

const char *
agentsup_wire_strerror(int status)
{
	switch (status) {
	case AGENTSUP_WIRE_OK:
		return "ok";
	case AGENTSUP_WIRE_MORE:
		return "incomplete frame";
	case AGENTSUP_WIRE_TOO_LONG:
		return "frame longer than the limit";
	case AGENTSUP_WIRE_NOT_MAP:
		return "frame body is not a map";
	case AGENTSUP_WIRE_TRUNCATED:
		return "object runs past the end of the frame";
	case AGENTSUP_WIRE_TRAILING:
		return "bytes after the map in the frame";
	case AGENTSUP_WIRE_NO_TYPE:
		return "map has no string \"t\"";
	case AGENTSUP_WIRE_CLAIM:
		return "container claims more elements than the frame holds";
	case AGENTSUP_WIRE_DEPTH:
		return "nesting too deep";
	case AGENTSUP_WIRE_INVALID:
		return "not msgpack";
	case AGENTSUP_WIRE_NOMEM:
		return "out of memory";
	case AGENTSUP_WIRE_FIELD:
		return "a field has the wrong type";
	case AGENTSUP_READ_AGAIN:
		return "nothing to read";
	case AGENTSUP_READ_STOPPED:
		return "reading stopped";
	case AGENTSUP_READ_ERRNO:
		return strerror(errno);
	}
	return "unknown error";
}

void
agentsup_wire_begin(msgpack_sbuffer *sb)
{
	static const char zero[AGENTSUP_FRAME_HEADER];

	msgpack_sbuffer_clear(sb);
	msgpack_sbuffer_write(sb, zero, sizeof zero);
}

int
agentsup_wire_end(msgpack_sbuffer *sb, size_t max_frame)
{
	size_t n;

	if (sb->size < AGENTSUP_FRAME_HEADER)
		return -1;
	n = sb->size - AGENTSUP_FRAME_HEADER;
	if (n > max_frame || n > UINT32_MAX)
		return -1;
	sb->data[0] = (char)(n >> 24);
	sb->data[1] = (char)(n >> 16);
	sb->data[2] = (char)(n >> 8);
	sb->data[3] = (char)n;
	return 0;
}

void
agentsup_wire_pack_str(msgpack_packer *pk, const char *s)
{
	size_t l = strlen(s);

	msgpack_pack_str(pk, l);
	msgpack_pack_str_body(pk, s, l);
}

void
agentsup_wire_kv_str(msgpack_packer *pk, const char *key, const char *val)
{
	agentsup_wire_pack_str(pk, key);
	agentsup_wire_pack_str(pk, val);
}

void
agentsup_wire_kv_int(msgpack_packer *pk, const char *key, int64_t val)
{
	agentsup_wire_pack_str(pk, key);
	msgpack_pack_int64(pk, val);
}

void
agentsup_wire_kv_uint(msgpack_packer *pk, const char *key, uint64_t val)
{
	agentsup_wire_pack_str(pk, key);
	msgpack_pack_uint64(pk, val);
}
