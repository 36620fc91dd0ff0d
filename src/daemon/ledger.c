/*
 * ledger.c - the task ledger in memory: a hash of records by (sup, key) and
 * a list of the ended ones in the order they ended, so the oldest ended
 * record is the one dropped when the cap is reached (live records are never
 * dropped: max_children bounds them).
 */
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "util.h"

const char *
ledger_state_name(enum ledger_state s)
{
	static const char *const names[] = {"pending", "running", "done",
	                                    "dead", "cancelled"};

	return names[s];
}

bool
ledger_ended(const struct ledger_rec *r)
{
	return r->state >= LEDGER_DONE;
}

/* FNV-1a over "sup\0key". */
static size_t
ledger_hash(const char *sup, const char *key)
{
	uint64_t h = util_fnv_str(UTIL_FNV_BASIS, sup);

	h = util_fnv(h, "", 1); /* the NUL between */
	return (size_t)util_fnv_str(h, key);
}

void
ledger_init(struct ledger *l, size_t max_ended)
{
	memset(l, 0, sizeof *l);
	l->nbuckets = 64;
	l->buckets = xcalloc(l->nbuckets, sizeof *l->buckets);
	l->max_ended = max_ended ? max_ended : LEDGER_MAX_ENDED;
	l->max_ended_bytes = LEDGER_MAX_ENDED_BYTES;
}

static size_t
ledger_strv_bytes(char *const *v)
{
	size_t n = 0;

	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		n += strlen(v[i]) + 1 + sizeof *v;
	return n;
}

/* What an ended record keeps beyond its fixed size: its data, and its
 * args and env, which a spawn may fill up to a frame each. */
static size_t
ledger_rec_bytes(const struct ledger_rec *r)
{
	return r->checkpoint_len + r->result_len +
	       (r->tail != NULL ? strlen(r->tail) : 0) +
	       ledger_strv_bytes(r->args) + ledger_strv_bytes(r->env);
}

static void
ledger_strv_free(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

static char **
ledger_strv_dup(char *const *v)
{
	size_t n = 0;
	char **c;

	while (v != NULL && v[n] != NULL)
		n++;
	if (n == 0)
		return NULL; /* most tasks: no memory for no inputs */
	c = xcalloc(n + 1, sizeof *c);
	for (size_t i = 0; i < n; i++)
		c[i] = xstrdup(v[i]);
	return c;
}

static void
ledger_rec_free(struct ledger_rec *r)
{
	free(r->sup);
	free(r->key);
	ledger_strv_free(r->args);
	ledger_strv_free(r->env);
	for (unsigned i = 0; i < LEDGER_REASONS; i++)
		free(r->reasons[i]);
	free(r->result);
	free(r->checkpoint);
	free(r->tail);
	free(r);
}

void
ledger_free(struct ledger *l)
{
	for (size_t b = 0; b < l->nbuckets; b++)
		for (struct ledger_rec *r = l->buckets[b], *n; r != NULL;
		     r = n) {
			n = r->hnext;
			ledger_rec_free(r);
		}
	free(l->buckets);
	memset(l, 0, sizeof *l);
}

struct ledger_rec *
ledger_get(const struct ledger *l, const char *sup, const char *key)
{
	struct ledger_rec *r = l->buckets[ledger_hash(sup, key) % l->nbuckets];

	for (; r != NULL; r = r->hnext)
		if (strcmp(r->key, key) == 0 && strcmp(r->sup, sup) == 0)
			return r;
	return NULL;
}

/* Twice the buckets once there are more records than buckets. */
static void
ledger_grow(struct ledger *l)
{
	size_t nb = l->nbuckets * 2;
	struct ledger_rec **v = xcalloc(nb, sizeof *v);

	for (size_t b = 0; b < l->nbuckets; b++)
		for (struct ledger_rec *r = l->buckets[b], *n; r != NULL;
		     r = n) {
			size_t h = ledger_hash(r->sup, r->key) % nb;
			n = r->hnext;
			r->hnext = v[h];
			v[h] = r;
		}
	free(l->buckets);
	l->buckets = v;
	l->nbuckets = nb;
}

/* r into its bucket (the table grown first when full). */
static void
ledger_hash_in(struct ledger *l, struct ledger_rec *r)
{
	size_t h;

	if (l->count >= l->nbuckets)
		ledger_grow(l);
	h = ledger_hash(r->sup, r->key) % l->nbuckets;
	r->hnext = l->buckets[h];
	l->buckets[h] = r;
	l->count++;
}

static void
ledger_unlist(struct ledger *l, struct ledger_rec *r)
{
	if (!ledger_ended(r))
		return;
	if (r->older != NULL)
		r->older->newer = r->newer;
	else
		l->oldest = r->newer;
	if (r->newer != NULL)
		r->newer->older = r->older;
	else
		l->newest = r->older;
	r->older = r->newer = NULL;
	l->nended--;
	l->ended_bytes -= r->ended_bytes;
	r->ended_bytes = 0;
}

struct ledger_rec *
ledger_accept(struct ledger *l, const char *sup, const char *key,
              char *const *args, char *const *env, int64_t wall_ms)
{
	struct ledger_rec *r = ledger_get(l, sup, key);
	char **a = ledger_strv_dup(args), **e = ledger_strv_dup(env);

	if (r != NULL) { /* started afresh: a retry or a replay */
		ledger_unlist(l, r);
		ledger_strv_free(r->args); /* after the copies: may be args */
		ledger_strv_free(r->env);
		ledger_result_clear(r);
		free(r->tail); /* the new run's, once it ends */
		r->tail = NULL;
	} else {
		r = xcalloc(1, sizeof *r);
		r->sup = xstrdup(sup);
		r->key = xstrdup(key);
		ledger_hash_in(l, r);
	}
	r->args = a;
	r->env = e;
	r->state = LEDGER_PENDING;
	r->accepted_ms = wall_ms;
	r->ended_ms = 0;
	r->ended_mono = 0;
	return r;
}

void
ledger_prior_take(struct ledger_rec *r, struct ledger_prior *p)
{
	*p = (struct ledger_prior){.args = r->args,
	                           .env = r->env,
	                           .result = r->result,
	                           .result_len = r->result_len,
	                           .tail = r->tail,
	                           .nreasons = r->nreasons,
	                           .r0 = r->r0,
	                           .state = r->state,
	                           .attempts = r->attempts,
	                           .checkpoint_seq = r->checkpoint_seq,
	                           .accepted_ms = r->accepted_ms,
	                           .ended_ms = r->ended_ms,
	                           .ended_mono = r->ended_mono,
	                           .replays = r->replays,
	                           .run = r->run};
	for (unsigned i = 0; i < LEDGER_REASONS; i++)
		if (r->reasons[i] != NULL)
			p->reasons[i] = xstrdup(r->reasons[i]);
	/* the ended list counted them: its count (ended_bytes) stays r's */
	r->args = r->env = NULL;
	r->result = NULL;
	r->result_len = 0;
	r->tail = NULL;
}

void
ledger_prior_put(struct ledger *l, struct ledger_rec *r, struct ledger_prior *p)
{
	ledger_strv_free(r->args);
	ledger_strv_free(r->env);
	free(r->result);
	free(r->tail);
	r->args = p->args;
	r->env = p->env;
	r->result = p->result;
	r->result_len = p->result_len;
	r->tail = p->tail;
	for (unsigned i = 0; i < LEDGER_REASONS; i++) {
		free(r->reasons[i]);
		r->reasons[i] = p->reasons[i];
	}
	r->nreasons = p->nreasons;
	r->r0 = p->r0;
	r->attempts = p->attempts;
	r->checkpoint_seq = p->checkpoint_seq;
	r->accepted_ms = p->accepted_ms;
	r->replays = p->replays;
	r->run = p->run;
	ledger_end(l, r, p->state, p->ended_ms, p->ended_mono);
	*p = (struct ledger_prior){0};
}

void
ledger_prior_free(struct ledger_prior *p)
{
	ledger_strv_free(p->args);
	ledger_strv_free(p->env);
	free(p->result);
	free(p->tail);
	for (unsigned i = 0; i < LEDGER_REASONS; i++)
		free(p->reasons[i]);
	*p = (struct ledger_prior){0};
}

void
ledger_drop(struct ledger *l, struct ledger_rec *r)
{
	struct ledger_rec **p =
	        &l->buckets[ledger_hash(r->sup, r->key) % l->nbuckets];

	while (*p != NULL && *p != r)
		p = &(*p)->hnext;
	if (*p == NULL)
		return;
	*p = r->hnext;
	ledger_unlist(l, r);
	l->count--;
	if (r->pins > 0)
		r->dropped = true; /* a write's completion still holds it */
	else
		ledger_rec_free(r);
}

/* The oldest ended records beyond max_ended dropped, but never a pinned
 * one (its row is not committed yet), an unsaved one (its write failed:
 * memory has the only copy of its end until it is written again) nor
 * keep. */
static void
ledger_trim(struct ledger *l, const struct ledger_rec *keep)
{
	while ((l->nended > l->max_ended ||
	        l->ended_bytes > l->max_ended_bytes) &&
	       l->oldest != keep && l->oldest->pins == 0 &&
	       !l->oldest->unsaved) {
		ledger_drop(l, l->oldest);
		l->dropped++;
	}
}

void
ledger_pin(struct ledger_rec *r)
{
	r->pins++;
}

void
ledger_unpin(struct ledger *l, struct ledger_rec *r)
{
	if (r->pins > 0 && --r->pins > 0)
		return;
	if (r->dropped)
		ledger_rec_free(r);
	else
		ledger_trim(l, NULL);
}

/* The ended r at the newest end of the ended list, its data counted. */
static void
ledger_list(struct ledger *l, struct ledger_rec *r)
{
	r->older = l->newest;
	r->newer = NULL;
	if (l->newest != NULL)
		l->newest->newer = r;
	else
		l->oldest = r;
	l->newest = r;
	l->nended++;
	r->ended_bytes = ledger_rec_bytes(r);
	l->ended_bytes += r->ended_bytes;
}

void
ledger_end(struct ledger *l, struct ledger_rec *r, enum ledger_state s,
           int64_t wall_ms, uint64_t mono_ms)
{
	ledger_unlist(l, r);
	r->state = s;
	r->cancelling = false; /* its end now says what it is */
	r->ended_ms = wall_ms;
	r->ended_mono = mono_ms;
	ledger_list(l, r);
	ledger_trim(l, r);
}

void
ledger_put_back(struct ledger *l, struct ledger_rec *r)
{
	if (!r->dropped)
		return;
	r->dropped = false;
	ledger_hash_in(l, r);
	if (ledger_ended(r)) {
		ledger_list(l, r);
		ledger_trim(l, r);
	}
}

void
ledger_reason(struct ledger_rec *r, const char *reason)
{
	unsigned slot = (r->r0 + r->nreasons) % LEDGER_REASONS;
	size_t n = strlen(reason);

	if (r->nreasons == LEDGER_REASONS) {
		slot = r->r0;
		r->r0 = (r->r0 + 1) % LEDGER_REASONS;
	} else {
		r->nreasons++;
	}
	free(r->reasons[slot]);
	if (n > LEDGER_REASON_MAX)
		n = LEDGER_REASON_MAX;
	r->reasons[slot] = xmalloc(n + 1);
	memcpy(r->reasons[slot], reason, n);
	r->reasons[slot][n] = '\0';
}

static void
ledger_set_bytes(uint8_t **dst, size_t *dlen, const void *data, size_t len)
{
	free(*dst);
	*dst = xmalloc(len ? len : 1);
	if (len > 0)
		memcpy(*dst, data, len);
	*dlen = len;
}

void
ledger_result(struct ledger *l, struct ledger_rec *r, const void *data,
              size_t len)
{
	if (len > LEDGER_RESULT_MAX)
		len = LEDGER_RESULT_MAX; /* the channel refuses more */
	ledger_set_bytes(&r->result, &r->result_len, data, len);
	if (ledger_ended(r)) { /* a cancelled task's, still running */
		l->ended_bytes += ledger_rec_bytes(r) - r->ended_bytes;
		r->ended_bytes = ledger_rec_bytes(r);
		ledger_trim(l, r);
	}
}

void
ledger_result_clear(struct ledger_rec *r)
{
	free(r->result);
	r->result = NULL;
	r->result_len = 0;
}

void
ledger_checkpoint(struct ledger_rec *r, uint64_t seq, const void *data,
                  size_t len)
{
	r->checkpoint_seq = seq;
	if (data != NULL) {
		ledger_set_bytes(&r->checkpoint, &r->checkpoint_len, data, len);
		return;
	}
	free(r->checkpoint); /* the seq only: the data is the store's */
	r->checkpoint = NULL;
	r->checkpoint_len = 0;
}

void
ledger_tail(struct ledger_rec *r, const char *text, size_t len)
{
	if (len > LEDGER_TAIL_MAX) {
		text += len - LEDGER_TAIL_MAX;
		len = LEDGER_TAIL_MAX;
	}
	free(r->tail);
	r->tail = xmalloc(len + 1);
	memcpy(r->tail, text, len);
	r->tail[len] = '\0';
}

struct ledger_rec *
ledger_next(const struct ledger *l, struct ledger_iter *it)
{
	struct ledger_rec *r = it->next;

	while (r == NULL && it->bucket < l->nbuckets)
		r = l->buckets[it->bucket++];
	if (r != NULL)
		it->next = r->hnext;
	return r;
}

/* --- the stored keys ------------------------------------------------------ */

uint64_t
ledger_key_hash(const char *sup, const char *key)
{
	uint64_t h = (uint64_t)ledger_hash(sup, key);

	return h ? h : 1; /* 0 marks an empty slot */
}

static size_t
ledger_keys_slot(const struct ledger_keys *k, uint64_t h)
{
	size_t i = (size_t)(h ^ (h >> 29)) & (k->cap - 1);

	while (k->v[i] != 0 && k->v[i] != h)
		i = (i + 1) & (k->cap - 1);
	return i;
}

void
ledger_keys_add(struct ledger_keys *k, uint64_t h)
{
	size_t i;

	if (2 * (k->n + 1) > k->cap) { /* at most half full */
		struct ledger_keys g = {.cap = k->cap ? 2 * k->cap : 1024};
		g.v = xcalloc(g.cap, sizeof *g.v);
		for (size_t j = 0; j < k->cap; j++)
			if (k->v[j] != 0)
				g.v[ledger_keys_slot(&g, k->v[j])] = k->v[j];
		g.n = k->n;
		free(k->v);
		*k = g;
	}
	i = ledger_keys_slot(k, h);
	if (k->v[i] == 0) {
		k->v[i] = h;
		k->n++;
	}
}

bool
ledger_keys_has(const struct ledger_keys *k, uint64_t h)
{
	return k->cap > 0 && k->v[ledger_keys_slot(k, h)] == h;
}

/* Linear probing's deletion: the entries after the hole that would no
 * longer be found are moved back into it. */
void
ledger_keys_del(struct ledger_keys *k, uint64_t h)
{
	size_t i, j, want;

	if (k->cap == 0 || k->v[i = ledger_keys_slot(k, h)] != h)
		return;
	k->v[i] = 0;
	k->n--;
	for (j = (i + 1) & (k->cap - 1); k->v[j] != 0;
	     j = (j + 1) & (k->cap - 1)) {
		want = (size_t)(k->v[j] ^ (k->v[j] >> 29)) & (k->cap - 1);
		/* v[j] stays unless its wanted slot is cyclically in (i, j] */
		if ((j > i && (want <= i || want > j)) ||
		    (j < i && (want <= i && want > j))) {
			k->v[i] = k->v[j];
			k->v[j] = 0;
			i = j;
		}
	}
}

void
ledger_keys_free(struct ledger_keys *k)
{
	free(k->v);
	memset(k, 0, sizeof *k);
}

void
ledger_numbers_see(struct ledger_numbers *ns, const char *sup, const char *key)
{
	size_t len = strspn(key, "0123456789"), i;
	unsigned long n;

	/* SUP/N's keys only, and no number an unsigned long cannot go on
	 * from */
	if (len == 0 || key[len] != '\0' || len > 18)
		return;
	n = strtoul(key, NULL, 10);
	for (i = 0; i < ns->n && strcmp(ns->v[i].sup, sup) != 0; i++)
		;
	if (i == ns->n) {
		ns->v = xreallocarray(ns->v, ns->n + 1, sizeof *ns->v);
		ns->v[ns->n++] = (struct ledger_number){xstrdup(sup), 0};
	}
	if (n > ns->v[i].max)
		ns->v[i].max = n;
}

unsigned long
ledger_numbers_max(const struct ledger_numbers *ns, const char *sup)
{
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i].sup, sup) == 0)
			return ns->v[i].max;
	return 0;
}

void
ledger_numbers_free(struct ledger_numbers *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i].sup);
	free(ns->v);
	memset(ns, 0, sizeof *ns);
}
