/* store.h - the coordinator's feedback store: the segments queries show, the
 * queries, and the labels, with deduplication by idempotency id.
 *
 * The contract the rest of the coordinator relies on (and the SQLite store
 * that replaces this in-memory one must keep):
 *  - store_put_segment() returns only once the segment is stored; a query is
 *    served only after all its segments are (the coordinator calls them in
 *    that order);
 *  - store_put_label() returns STORE_STORED only once the label is durable:
 *    the LabelAck is sent after it. Here "durable" means "in this process's
 *    memory": a coordinator crash loses what the learner has not received
 *    yet (docs/protocol.md says what that costs);
 *  - a label is stored at most once per idempotency id;
 *  - labels are numbered 1, 2, 3, ... in the order they are stored (after a
 *    base, store_set_label_base), so "the labels after id N" is a suffix.
 *
 * Ids of segments and queries start at the wall clock in microseconds at
 * store_new(): a coordinator that restarts (and forgets) never reuses an id
 * that a labeler may still hold from before, so an answer to an old query
 * cannot be mistaken for an answer to a new one.
 *
 * Owns copies of everything put in. Not thread-safe (one event loop). */
#ifndef RLHF_STORE_H
#define RLHF_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "feedback.h"
#include "wire.h"

typedef struct store store_t;

typedef struct {
    uint64_t id;
    Rlhf__QueryKind kind;
    uint32_t k;                         /* segments shown */
    uint64_t seg_ids[LABEL_MAX_K];
    float score;                        /* selection score */
} store_query_t;

typedef struct {
    const Rlhf__Label *label;           /* its id field is the label id */
    int round_done;                     /* it completed a labelling round */
    uint64_t answered;                  /* answered queries in the run once it was stored */
} store_label_t;

enum { STORE_STORED = 1, STORE_DUPLICATE = 0 };

/* Segments of T steps, obs_dim and act_dim floats, of environment env_id. */
store_t *store_new(const char *env_id, int T, int obs_dim, int act_dim);
void store_destroy(store_t **self_p);

/* Stores one segment; returns its id (> 0). */
uint64_t store_put_segment(store_t *s, const float *obs, const float *act, const float *true_r,
                           const uint8_t *absorbing);
/* A Segment message pointing into the store (valid until store_destroy).
 * 0, or -1 for an unknown id. */
int store_segment(const store_t *s, uint64_t id, Rlhf__Segment *out);

/* Stores a query (q->id is ignored); returns its id (> 0). */
uint64_t store_put_query(store_t *s, const store_query_t *q);
const store_query_t *store_query(const store_t *s, uint64_t id);

/* Stores a label (a copy; its id is set) unless its idempotency id was
 * stored before. Returns STORE_STORED with *label_id the new id, or
 * STORE_DUPLICATE with *label_id the first one's. */
int store_put_label(store_t *s, const Rlhf__Label *l, int round_done, uint64_t answered, uint64_t *label_id);
/* The label stored under this idempotency id, or NULL. */
const Rlhf__Label *store_find_label(const store_t *s, const char *idempotency_id);

/* Labels are numbered from base + 1: set before the first label (e.g. past
 * the learner's copy after a restart). */
void store_set_label_base(store_t *s, uint64_t base);
size_t store_label_count(const store_t *s);
/* The i-th label stored (0-based); its label->id is base + 1 + i. */
store_label_t store_label_at(const store_t *s, size_t i);
/* The index of the first label with id > cursor. */
size_t store_label_after(const store_t *s, uint64_t cursor);

#endif
