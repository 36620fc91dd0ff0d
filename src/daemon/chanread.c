/*
 * chanread.c - a worker channel's reads, with heartbeats on a fast path
 * (issues 9 and 12: ≥ 1M beats a second on one core).
 *
 * Decoding a frame (checking it, unpacking it into the zone, finding "t",
 * checking its fields, finding seq, progress, status) cost more than
 * anything else agentsupd does with a heartbeat in user space. A bare
 * heartbeat, the frame a worker sends most, has one packing in the C and
 * Python clients: {"t": "hb", "seq": N}, a fixmap of two, fixstr keys and
 * N a positive fixint or uint 8/16/32/64. Such a frame is recognised by its
 * bytes and means exactly what its decoding would: a beat without progress
 * or status. Anything else, or anything after a split frame, goes through
 * agentsup_reader_feed() as before, frame by frame, in order.
 */
#include <string.h>

#include "chanread.h"

static const uint8_t chanread_hb_body[] = {0x82, 0xa1, 't', 0xa2, 'h',
                                           'b',  0xa3, 's', 'e',  'q'};

static uint32_t
chanread_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* Bytes of the msgpack unsigned integer whose first byte is tag; 0 if it
 * is none. */
static size_t
chanread_uint_len(uint8_t tag)
{
	switch (tag) {
	case 0xcc:
		return 2;
	case 0xcd:
		return 3;
	case 0xce:
		return 5;
	case 0xcf:
		return 9;
	default:
		return tag <= 0x7f ? 1 : 0;
	}
}

size_t
chanread_bare_hb(const uint8_t *buf, size_t len, size_t max_frame)
{
	const size_t body = sizeof chanread_hb_body;
	size_t n, k;

	if (len < AGENTSUP_FRAME_HEADER + body + 1)
		return 0;
	n = chanread_be32(buf);
	if (n > max_frame || n > len - AGENTSUP_FRAME_HEADER ||
	    memcmp(buf + AGENTSUP_FRAME_HEADER, chanread_hb_body, body) != 0)
		return 0;
	k = chanread_uint_len(buf[AGENTSUP_FRAME_HEADER + body]);
	if (k == 0 || n != body + k) /* no seq: the byte after the frame */
		return 0;
	return AGENTSUP_FRAME_HEADER + n;
}

/* The size of the whole frame at the start of buf (header included), 0
 * when it is split, or over the limit (the reader says so). */
static size_t
chanread_whole(const uint8_t *buf, size_t len, size_t max_frame)
{
	size_t n;

	if (len < AGENTSUP_FRAME_HEADER)
		return 0;
	n = chanread_be32(buf);
	if (n > max_frame || n > len - AGENTSUP_FRAME_HEADER)
		return 0;
	return AGENTSUP_FRAME_HEADER + n;
}

int
chanread_recv(struct agentsup_reader *r, int fd, size_t max_frame,
              msgpack_zone *zone, bool bare, chanread_hb_fn hb,
              agentsup_frame_fn fn, void *arg)
{
	uint8_t buf[AGENTSUP_READ_CHUNK];
	size_t at = 0, k;
	int n = agentsup_reader_recv(fd, buf, sizeof buf);
	int s;

	if (n <= 0)
		return n;
	while (at < (size_t)n) {
		const uint8_t *p = buf + at;
		size_t left = (size_t)n - at;

		if (agentsup_reader_pending(r) > 0) {
			k = left; /* a split frame first: the rest as before */
		} else if (bare && (k = chanread_bare_hb(p, left, max_frame))) {
			if (hb(arg) != 0)
				return AGENTSUP_READ_STOPPED;
			at += k;
			continue;
		} else if ((k = chanread_whole(p, left, max_frame)) == 0) {
			k = left; /* split, or refused: the reader's to say */
		}
		if ((s = agentsup_reader_feed(r, p, k, max_frame, zone, fn,
		                              arg)) != 0)
			return s;
		at += k;
	}
	return (int)n;
}
