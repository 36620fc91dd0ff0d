/*
 * chanread.h - one read of a worker's channel: recv once, then each frame
 * on; a bare heartbeat ({t: hb, seq: N} packed as the client libraries
 * pack it, the commonest frame by far) is told by its bytes and handed on
 * without being decoded, every other frame goes through the one reader.
 */
#ifndef AGENTSUP_CHANREAD_H
#define AGENTSUP_CHANREAD_H

#include <stdbool.h>
#include <stddef.h>

#include "agentsup/wire.h"

/* A bare heartbeat came; nonzero stops the reading, as agentsup_frame_fn. */
typedef int (*chanread_hb_fn)(void *arg);

/* The size of the bare heartbeat frame at the start of buf (its header
 * included), 0 if what starts there is not one, or not whole. */
size_t chanread_bare_hb(const uint8_t *buf, size_t len, size_t max_frame);

/* As agentsup_reader_read(); bare heartbeats go to hb (when bare: a peer
 * that said hello), every other frame to fn, in the order they came. */
int chanread_recv(struct agentsup_reader *, int fd, size_t max_frame,
                  msgpack_zone *, bool bare, chanread_hb_fn hb,
                  agentsup_frame_fn fn, void *arg);

#endif
