/*
 * yamldoc.c - YAML documents from libyaml's events (see yamldoc.h).
 *
 * The composer libyaml's loader is, with the same documents as its result
 * (node 1 the root, a collection's node made at its start, aliases as the
 * anchored node's number, a plain "!" tag the default one), but with every
 * node, array and string in memory mapped for the parse and unmapped
 * after it, and anchors found by hash rather than by a scan of all of
 * them (a file of many anchors was quadratic).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util.h"
#include "yamldoc.h"

#define YAMLDOC_BLOCK      (64u * 1024u) /* the arena's smallest mapping */
#define YAMLDOC_ALIGN      16u
#define YAMLDOC_NAME_SHOWN 64 /* of an anchor's name, in a message */

/* One mapping: the arena's blocks and the node tables alike. */
struct yamldoc_block {
	struct yamldoc_block *next;
	size_t size; /* of the mapping, this header included */
	size_t used;
};

#define YAMLDOC_HDR                                                            \
	((sizeof(struct yamldoc_block) + YAMLDOC_ALIGN - 1) &                  \
	 ~(size_t)(YAMLDOC_ALIGN - 1))

/* One anchor: the node its aliases stand for. */
struct yamldoc_anchor {
	const yaml_char_t *name; /* NULL: a free slot */
	int node;
	yaml_mark_t mark;
};

/* A collection still open: where the next node goes. */
struct yamldoc_open {
	int node;
	int key; /* a mapping's key still waiting for its value, or 0 */
};

/* The state of one document's composition. */
struct yamldoc_build {
	struct yamldoc *d;
	yaml_document_t doc;
	bool mapped; /* doc's node table is the first of d->maps */
	struct yamldoc_open *open;
	size_t nopen;
	size_t capopen;
	struct yamldoc_anchor *anchors;
	size_t nanchors;
	size_t capanchors; /* a power of two, or 0 */
};

static bool yamldoc_fail(struct yamldoc *, const yaml_mark_t *, const char *,
                         ...) __attribute__((format(printf, 3, 4)));

/* Parsing stops: the message and where, kept in d; false. */
static bool
yamldoc_fail(struct yamldoc *d, const yaml_mark_t *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->msg, sizeof d->msg, fmt, ap);
	va_end(ap);
	d->mark = *m;
	d->failed = true;
	return false;
}

/* n bytes of the arena, aligned for any node, array or string. */
static void *
yamldoc_alloc(struct yamldoc *d, size_t n)
{
	struct yamldoc_block *b = d->blocks;
	void *p;

	if (n > SIZE_MAX / 2)
		return NULL;
	n = (n + YAMLDOC_ALIGN - 1) & ~(size_t)(YAMLDOC_ALIGN - 1);
	if (b == NULL || b->size - b->used < n) {
		size_t size = YAMLDOC_HDR + n;

		if (size < YAMLDOC_BLOCK)
			size = YAMLDOC_BLOCK;
		if ((b = util_pages(size)) == NULL)
			return NULL;
		b->size = size;
		b->used = YAMLDOC_HDR;
		b->next = d->blocks;
		d->blocks = b;
	}
	p = (char *)b + b->used;
	b->used += n;
	return p;
}

/* The room an array of n elements grows to. */
static size_t
yamldoc_cap(size_t n)
{
	return n < 2 ? 4 : 2 * n;
}

/* A copy of an array of n elements of sz bytes with room for
 * yamldoc_cap(n). */
static void *
yamldoc_double(struct yamldoc *d, const void *old, size_t n, size_t sz)
{
	size_t cap = yamldoc_cap(n);
	void *a;

	if (cap > SIZE_MAX / 2 / sz || (a = yamldoc_alloc(d, cap * sz)) == NULL)
		return NULL;
	if (n > 0)
		memcpy(a, old, n * sz);
	return a;
}

/* A full start/top/end array of the arena (libyaml's layout: items,
 * pairs, nodes) copied into one with room for more; ok false when memory
 * ran out. A macro: the three pointers are of any element type. */
#define YAMLDOC_GROW(d, st, ok)                                                \
	do {                                                                   \
		size_t n_ = (size_t)((st).top - (st).start);                   \
		__typeof__((st).start) a_ = yamldoc_double(                    \
		        (d), (st).start, n_, sizeof *(st).start);              \
		if (((ok) = a_ != NULL)) {                                     \
			(st).start = a_;                                       \
			(st).top = a_ + n_;                                    \
			(st).end = a_ + yamldoc_cap(n_);                       \
		}                                                              \
	} while (0)

static yaml_char_t *
yamldoc_strdup(struct yamldoc *d, const yaml_char_t *s, size_t len)
{
	yaml_char_t *c = yamldoc_alloc(d, len + 1);

	if (c != NULL) {
		memcpy(c, s, len);
		c[len] = '\0';
	}
	return c;
}

/* --- the node table: in the arena while small, then a mapping --------- */

/* Room for more nodes: the table doubles, in the arena up to a block's
 * size (a file of many small documents maps nothing a document), then in
 * a mapping of its own grown in place where it can. */
static bool
yamldoc_more_nodes(struct yamldoc_build *b)
{
	struct yamldoc *d = b->d;
	struct yamldoc_block *m = d->maps;
	size_t n = (size_t)(b->doc.nodes.top - b->doc.nodes.start);
	size_t size;
	bool ok;

	if (!b->mapped &&
	    yamldoc_cap(n) * sizeof(yaml_node_t) < YAMLDOC_BLOCK) {
		YAMLDOC_GROW(d, b->doc.nodes, ok);
		return ok;
	}
	if (!b->mapped) {
		if ((m = util_pages(2 * YAMLDOC_BLOCK)) == NULL)
			return false;
		m->size = 2 * YAMLDOC_BLOCK;
		m->next = d->maps;
		memcpy((char *)m + YAMLDOC_HDR, b->doc.nodes.start,
		       n * sizeof(yaml_node_t));
		b->mapped = true;
	} else {
		if (m->size > SIZE_MAX / 2 ||
		    (m = util_pages_grow(m, m->size, 2 * m->size)) == NULL)
			return false;
		m->size *= 2;
	}
	d->maps = m; /* the table being built is always the first */
	size = (m->size - YAMLDOC_HDR) / sizeof(yaml_node_t);
	b->doc.nodes.start = (yaml_node_t *)((char *)m + YAMLDOC_HDR);
	b->doc.nodes.top = b->doc.nodes.start + n;
	b->doc.nodes.end = b->doc.nodes.start + size;
	return true;
}

/* --- anchors ---------------------------------------------------------- */

static size_t
yamldoc_hash(const yaml_char_t *s)
{
	size_t h = 14695981039346656037u & SIZE_MAX;

	for (; *s != '\0'; s++)
		h = (h ^ *s) * (size_t)1099511628211u;
	return h;
}

static struct yamldoc_anchor *
yamldoc_anchor_slot(struct yamldoc_anchor *t, size_t cap,
                    const yaml_char_t *name)
{
	size_t i = yamldoc_hash(name) & (cap - 1);

	while (t[i].name != NULL &&
	       strcmp((const char *)t[i].name, (const char *)name) != 0)
		i = (i + 1) & (cap - 1);
	return &t[i];
}

static bool
yamldoc_anchors_grow(struct yamldoc_build *b)
{
	size_t cap = b->capanchors == 0 ? 16 : 2 * b->capanchors;
	struct yamldoc_anchor *t;

	if (cap > SIZE_MAX / 2 / sizeof *t ||
	    (t = yamldoc_alloc(b->d, cap * sizeof *t)) == NULL)
		return false;
	memset(t, 0, cap * sizeof *t);
	for (size_t i = 0; i < b->capanchors; i++)
		if (b->anchors[i].name != NULL)
			*yamldoc_anchor_slot(t, cap, b->anchors[i].name) =
			        b->anchors[i];
	b->anchors = t;
	b->capanchors = cap;
	return true;
}

/* `&name` on node id: an error if the document already has that anchor,
 * as libyaml's loader says. */
static bool
yamldoc_anchor(struct yamldoc_build *b, const yaml_char_t *name, int id,
               const yaml_mark_t *m)
{
	struct yamldoc_anchor *a;

	if (name == NULL)
		return true;
	if (2 * (b->nanchors + 1) > b->capanchors && !yamldoc_anchors_grow(b))
		return yamldoc_fail(b->d, m, "out of memory");
	a = yamldoc_anchor_slot(b->anchors, b->capanchors, name);
	if (a->name != NULL)
		return yamldoc_fail(
		        b->d, m,
		        "found duplicate anchor &%.*s (first at line %d, "
		        "column %d)",
		        YAMLDOC_NAME_SHOWN, (const char *)name,
		        (int)a->mark.line + 1, (int)a->mark.column + 1);
	if ((a->name = yamldoc_strdup(b->d, name,
	                              strlen((const char *)name))) == NULL)
		return yamldoc_fail(b->d, m, "out of memory");
	a->node = id;
	a->mark = *m;
	b->nanchors++;
	return true;
}

/* --- composing -------------------------------------------------------- */

static bool
yamldoc_add_item(struct yamldoc *d, yaml_node_t *seq, int id)
{
	bool ok = true;

	if (seq->data.sequence.items.top == seq->data.sequence.items.end)
		YAMLDOC_GROW(d, seq->data.sequence.items, ok);
	if (ok)
		*seq->data.sequence.items.top++ = id;
	return ok;
}

static bool
yamldoc_add_pair(struct yamldoc *d, yaml_node_t *map, int key, int value)
{
	bool ok = true;

	if (map->data.mapping.pairs.top == map->data.mapping.pairs.end)
		YAMLDOC_GROW(d, map->data.mapping.pairs, ok);
	if (ok)
		*map->data.mapping.pairs.top++ =
		        (yaml_node_pair_t){.key = key, .value = value};
	return ok;
}

/* Node id into the open collection: an item, a key, or a key's value. */
static bool
yamldoc_attach(struct yamldoc_build *b, int id)
{
	struct yamldoc_open *o;
	yaml_node_t *c;

	if (b->nopen == 0)
		return true; /* the root */
	o = &b->open[b->nopen - 1];
	c = &b->doc.nodes.start[o->node - 1];
	if (c->type == YAML_SEQUENCE_NODE)
		return yamldoc_add_item(b->d, c, id);
	if (o->key == 0) {
		o->key = id;
		return true;
	}
	if (!yamldoc_add_pair(b->d, c, o->key, id))
		return false;
	o->key = 0;
	return true;
}

/* A new node from its event: its number, or 0 (d->msg says why). */
static int
yamldoc_node(struct yamldoc_build *b, const yaml_node_t *n,
             const yaml_char_t *anchor)
{
	int id;

	if (b->doc.nodes.top == b->doc.nodes.end &&
	    (b->doc.nodes.top - b->doc.nodes.start >= INT_MAX - 1 ||
	     !yamldoc_more_nodes(b))) {
		yamldoc_fail(b->d, &n->start_mark, "out of memory");
		return 0;
	}
	*b->doc.nodes.top++ = *n;
	id = (int)(b->doc.nodes.top - b->doc.nodes.start);
	if (!yamldoc_attach(b, id)) {
		yamldoc_fail(b->d, &n->start_mark, "out of memory");
		return 0;
	}
	return yamldoc_anchor(b, anchor, id, &n->start_mark) ? id : 0;
}

static yaml_char_t yamldoc_str_tag[] = YAML_DEFAULT_SCALAR_TAG;
static yaml_char_t yamldoc_seq_tag[] = YAML_DEFAULT_SEQUENCE_TAG;
static yaml_char_t yamldoc_map_tag[] = YAML_DEFAULT_MAPPING_TAG;

/* The node's tag: the event's, or the default one for an absent or "!". */
static bool
yamldoc_tag(struct yamldoc *d, yaml_node_t *n, const yaml_char_t *tag,
            yaml_char_t *dflt)
{
	if (tag == NULL || strcmp((const char *)tag, "!") == 0)
		n->tag = dflt;
	else if ((n->tag = yamldoc_strdup(d, tag, strlen((const char *)tag))) ==
	         NULL)
		return yamldoc_fail(d, &n->start_mark, "out of memory");
	return true;
}

static bool
yamldoc_scalar(struct yamldoc_build *b, const yaml_event_t *ev)
{
	yaml_node_t n = {.type = YAML_SCALAR_NODE,
	                 .start_mark = ev->start_mark,
	                 .end_mark = ev->end_mark};

	n.data.scalar.length = ev->data.scalar.length;
	n.data.scalar.style = ev->data.scalar.style;
	if ((n.data.scalar.value = yamldoc_strdup(b->d, ev->data.scalar.value,
	                                          ev->data.scalar.length)) ==
	    NULL)
		return yamldoc_fail(b->d, &ev->start_mark, "out of memory");
	if (!yamldoc_tag(b->d, &n, ev->data.scalar.tag, yamldoc_str_tag))
		return false;
	return yamldoc_node(b, &n, ev->data.scalar.anchor) != 0;
}

static bool
yamldoc_alias(struct yamldoc_build *b, const yaml_event_t *ev)
{
	const yaml_char_t *name = ev->data.alias.anchor;
	struct yamldoc_anchor *a = NULL;

	if (b->capanchors > 0)
		a = yamldoc_anchor_slot(b->anchors, b->capanchors, name);
	if (a == NULL || a->name == NULL)
		return yamldoc_fail(b->d, &ev->start_mark,
		                    "found undefined alias *%.*s",
		                    YAMLDOC_NAME_SHOWN, (const char *)name);
	if (!yamldoc_attach(b, a->node))
		return yamldoc_fail(b->d, &ev->start_mark, "out of memory");
	return true;
}

/* A sequence or mapping begins: its node now, its items as they come. */
static bool
yamldoc_open(struct yamldoc_build *b, const yaml_event_t *ev)
{
	bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
	yaml_node_t n = {.start_mark = ev->start_mark,
	                 .end_mark = ev->end_mark};
	const yaml_char_t *tag, *anchor;
	struct yamldoc_open *o;
	int id;

	if (seq) {
		n.type = YAML_SEQUENCE_NODE;
		n.data.sequence.style = ev->data.sequence_start.style;
		tag = ev->data.sequence_start.tag;
		anchor = ev->data.sequence_start.anchor;
	} else {
		n.type = YAML_MAPPING_NODE;
		n.data.mapping.style = ev->data.mapping_start.style;
		tag = ev->data.mapping_start.tag;
		anchor = ev->data.mapping_start.anchor;
	}
	if (!yamldoc_tag(b->d, &n, tag,
	                 seq ? yamldoc_seq_tag : yamldoc_map_tag))
		return false;
	if (b->nopen == b->capopen) {
		if ((o = yamldoc_double(b->d, b->open, b->nopen, sizeof *o)) ==
		    NULL)
			return yamldoc_fail(b->d, &ev->start_mark,
			                    "out of memory");
		b->open = o;
		b->capopen = yamldoc_cap(b->nopen);
	}
	if ((id = yamldoc_node(b, &n, anchor)) == 0)
		return false;
	b->open[b->nopen++] = (struct yamldoc_open){.node = id};
	return true;
}

static void
yamldoc_close(struct yamldoc_build *b, const yaml_event_t *ev)
{
	if (b->nopen > 0) /* libyaml's events always match */
		b->doc.nodes.start[b->open[--b->nopen].node - 1].end_mark =
		        ev->end_mark;
}

static void
yamldoc_unmap(struct yamldoc_block *b)
{
	struct yamldoc_block *next;

	for (; b != NULL; b = next) {
		next = b->next;
		util_pages_free(b, b->size);
	}
}

/* The last document gone, its arena kept for the next: the newest block
 * rewound (a file of many documents maps nothing a document), the rest
 * and every node table unmapped. */
static void
yamldoc_rewind(struct yamldoc *d)
{
	if (d->blocks != NULL) {
		yamldoc_unmap(d->blocks->next);
		d->blocks->next = NULL;
		d->blocks->used = YAMLDOC_HDR;
	}
	yamldoc_unmap(d->maps);
	d->maps = NULL;
	memset(&d->doc, 0, sizeof d->doc);
	d->have = false;
}

static void
yamldoc_doc_start(struct yamldoc_build *b, const yaml_event_t *ev)
{
	b->doc.start_implicit = ev->data.document_start.implicit;
	b->doc.start_mark = ev->start_mark;
}

/* libyaml's reader leaves problem_mark zero (1:1): it gives the byte's
 * offset instead, and the character's value (for bad UTF-8 the caller,
 * who has the bytes, names the byte). */
static bool
yamldoc_reader_error(struct yamldoc *d, const yaml_parser_t *parser)
{
	const char *problem = parser->problem ? parser->problem : "bad input";

	d->at_offset = true;
	d->offset = parser->problem_offset;
	if (strstr(problem, "UTF-8") == NULL && parser->problem_value >= 0)
		return yamldoc_fail(d, &parser->problem_mark, "%s (U+%04X)",
		                    problem, (unsigned)parser->problem_value);
	return yamldoc_fail(d, &parser->problem_mark, "%s", problem);
}

static bool
yamldoc_parser_error(struct yamldoc *d, const yaml_parser_t *parser)
{
	if (parser->error == YAML_READER_ERROR)
		return yamldoc_reader_error(d, parser);
	return yamldoc_fail(d, &parser->problem_mark, "%s%s%s",
	                    parser->problem ? parser->problem : "YAML error",
	                    parser->context ? " " : "",
	                    parser->context ? parser->context : "");
}

bool
yamldoc_next(yaml_parser_t *parser, struct yamldoc *d)
{
	struct yamldoc_build b = {.d = d};
	yaml_event_t ev;
	bool ok = true;

	yamldoc_rewind(d);
	while (ok) {
		if (!yaml_parser_parse(parser, &ev))
			return yamldoc_parser_error(d, parser);
		switch (ev.type) {
		case YAML_NO_EVENT: /* after the stream's end */
		case YAML_STREAM_END_EVENT:
			yaml_event_delete(&ev);
			return true;
		case YAML_DOCUMENT_START_EVENT:
			yamldoc_doc_start(&b, &ev);
			break;
		case YAML_DOCUMENT_END_EVENT:
			b.doc.end_implicit = ev.data.document_end.implicit;
			b.doc.end_mark = ev.end_mark;
			d->doc = b.doc;
			d->have = true;
			yaml_event_delete(&ev);
			return true;
		case YAML_ALIAS_EVENT:
			ok = yamldoc_alias(&b, &ev);
			break;
		case YAML_SCALAR_EVENT:
			ok = yamldoc_scalar(&b, &ev);
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			ok = yamldoc_open(&b, &ev);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			yamldoc_close(&b, &ev);
			break;
		default: /* stream start, no event */
			break;
		}
		yaml_event_delete(&ev);
	}
	return false;
}

yaml_node_t *
yamldoc_get(yaml_document_t *doc, int id)
{
	if (id < 1 || id > doc->nodes.top - doc->nodes.start)
		return NULL;
	return &doc->nodes.start[id - 1];
}

void
yamldoc_free(struct yamldoc *d)
{
	yamldoc_unmap(d->blocks);
	yamldoc_unmap(d->maps);
	memset(d, 0, sizeof *d);
}
