/* status.h - a node of the tree as the map "status" answers with. */
#ifndef AGENTSUP_STATUS_H
#define AGENTSUP_STATUS_H

#include <stdint.h>

#include <msgpack.h>

struct ckpt_set;
struct node;

/* One node as a map: the same keys for every node, nil where not known;
 * its checkpoint_seq is the newest the checkpoint table keeps; a pool's
 * resume_waiting its tasks waiting to be resumed (tasks_waiting). */
void status_pack_node(msgpack_packer *, const struct node *, int depth,
                      uint64_t now_ms, const struct ckpt_set *,
                      uint64_t resume_waiting);

#endif
