/*
 * yamldoc.h - a file's YAML documents, built from libyaml's events into
 * memory of their own (private to src/config).
 *
 * libyaml's own loader builds each document in the heap. The specs the
 * loader then makes fill the holes the document leaves there, and once the
 * document is freed those specs keep its pages resident for as long as the
 * tree lives (docs/benchmarks.md, "Where idle memory's heap slack comes
 * from"). Here the nodes live in mappings of their own, rewound for each
 * document and unmapped at the end, so a document leaves nothing in the
 * heap.
 */
#ifndef AGENTSUP_CONFIG_YAMLDOC_H
#define AGENTSUP_CONFIG_YAMLDOC_H

#include <stdbool.h>
#include <stddef.h>

#include <yaml.h>

#define YAMLDOC_MSG_MAX 256

struct yamldoc_block;

/* Zeroed before its first use. */
struct yamldoc {
	yaml_document_t doc; /* the last document composed */
	bool have;           /* false: the stream ended */
	/* parsing stopped here */
	bool failed;
	yaml_mark_t mark;
	/* a reader error (bad UTF-8, a control character) has no mark, only
	 * the input's byte offset: the caller, who has the bytes, says where */
	bool at_offset;
	size_t offset;
	char msg[YAMLDOC_MSG_MAX]; /* copied: libyaml may be unmapped after */
	struct yamldoc_block *blocks; /* the arena: every string and array */
	struct yamldoc_block *maps;   /* grown by mremap: the node tables */
};

/* The parser's next document into d (the one d held before is gone):
 * d->have false at the stream's end; false (d->failed, d->msg) at an
 * error. */
bool yamldoc_next(yaml_parser_t *, struct yamldoc *d);
void yamldoc_free(struct yamldoc *d);

/* Node id of a document (1 its root), or NULL: libyaml's lookups, kept here
 * because libyaml itself may be unmapped once the parser is deleted. */
yaml_node_t *yamldoc_get(yaml_document_t *, int id);

#endif
