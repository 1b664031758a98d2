/* store.c - see store.h. In memory: arrays indexed by (id - base), and an
 * open-addressing hash table from idempotency id to label. */
#include "store.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "util.h"

typedef struct {
    float *obs, *act, *r;
    protobuf_c_boolean *absorbing;
} seg_t;

typedef struct {
    Rlhf__Envelope *env;    /* owns the label copy */
    int round_done;
    uint64_t answered;
} label_rec_t;

struct store {
    char env_id[WIRE_MAX_NAME + 1];
    int T, obs_dim, act_dim;
    uint64_t id_base;       /* segments and queries: ids id_base + 1 + index */
    seg_t *segs;
    size_t n_segs, cap_segs;
    store_query_t *queries;
    size_t n_queries, cap_queries;
    uint64_t label_base;
    label_rec_t *labels;
    size_t n_labels, cap_labels;
    size_t *slots;          /* hash table: label index + 1; 0 = empty */
    size_t n_slots;         /* a power of two, at most half full */
};

store_t *store_new(const char *env_id, int T, int obs_dim, int act_dim) {
    store_t *s = callocCheck(1, sizeof *s);
    snprintf(s->env_id, sizeof s->env_id, "%s", env_id);
    s->T = T;
    s->obs_dim = obs_dim;
    s->act_dim = act_dim;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->id_base = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    s->n_slots = 1024;
    s->slots = callocCheck(s->n_slots, sizeof *s->slots);
    return s;
}

void store_destroy(store_t **self_p) {
    store_t *s = *self_p;
    if (!s) return;
    for (size_t i = 0; i < s->n_segs; i++) {
        free(s->segs[i].obs);
        free(s->segs[i].act);
        free(s->segs[i].r);
        free(s->segs[i].absorbing);
    }
    free(s->segs);
    free(s->queries);
    for (size_t i = 0; i < s->n_labels; i++) wire_free(&s->labels[i].env);
    free(s->labels);
    free(s->slots);
    free(s);
    *self_p = NULL;
}

static void *dup_floats(const float *x, size_t n) {
    float *p = mallocCheck(sizeof(float) * n);
    memcpy(p, x, sizeof(float) * n);
    return p;
}

uint64_t store_put_segment(store_t *s, const float *obs, const float *act, const float *true_r,
                           const uint8_t *absorbing) {
    if (s->n_segs == s->cap_segs) {
        s->cap_segs = s->cap_segs ? 2 * s->cap_segs : 256;
        s->segs = reallocCheck(s->segs, sizeof *s->segs * s->cap_segs);
    }
    seg_t *g = &s->segs[s->n_segs];
    g->obs = dup_floats(obs, (size_t)s->T * s->obs_dim);
    g->act = dup_floats(act, (size_t)s->T * s->act_dim);
    g->r = dup_floats(true_r, (size_t)s->T);
    g->absorbing = mallocCheck(sizeof *g->absorbing * s->T);
    for (int t = 0; t < s->T; t++) g->absorbing[t] = absorbing[t] != 0;
    return s->id_base + 1 + s->n_segs++;
}

int store_segment(const store_t *s, uint64_t id, Rlhf__Segment *out) {
    if (id <= s->id_base || id - s->id_base > s->n_segs) return -1;
    const seg_t *g = &s->segs[id - s->id_base - 1];
    codec_segment_view(out, id, s->env_id, s->T, s->obs_dim, s->act_dim, g->obs, g->act, g->r, g->absorbing);
    return 0;
}

uint64_t store_put_query(store_t *s, const store_query_t *q) {
    if (s->n_queries == s->cap_queries) {
        s->cap_queries = s->cap_queries ? 2 * s->cap_queries : 256;
        s->queries = reallocCheck(s->queries, sizeof *s->queries * s->cap_queries);
    }
    store_query_t *c = &s->queries[s->n_queries];
    *c = *q;
    c->id = s->id_base + 1 + s->n_queries++;
    return c->id;
}

const store_query_t *store_query(const store_t *s, uint64_t id) {
    if (id <= s->id_base || id - s->id_base > s->n_queries) return NULL;
    return &s->queries[id - s->id_base - 1];
}

/* ---- labels ----------------------------------------------------------------- */

static size_t slot_of(const store_t *s, const char *key) {
    return (size_t)wire_hash64(key, strlen(key)) & (s->n_slots - 1);
}

static const char *key_at(const store_t *s, size_t label_index) {
    return s->labels[label_index].env->label->idempotency_id;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t find_slot(const store_t *s, const char *key) {
    size_t i = slot_of(s, key);
    while (s->slots[i] && strcmp(key_at(s, s->slots[i] - 1), key) != 0) i = (i + 1) & (s->n_slots - 1);
    return i;
}

static void grow_table(store_t *s) {
    size_t old_n = s->n_slots, *old = s->slots;
    s->n_slots *= 2;
    s->slots = callocCheck(s->n_slots, sizeof *s->slots);
    for (size_t i = 0; i < old_n; i++)
        if (old[i]) s->slots[find_slot(s, key_at(s, old[i] - 1))] = old[i];
    free(old);
}

const Rlhf__Label *store_find_label(const store_t *s, const char *idempotency_id) {
    size_t i = find_slot(s, idempotency_id);
    return s->slots[i] ? s->labels[s->slots[i] - 1].env->label : NULL;
}

/* A deep copy of the label, owned through an envelope (wire_free frees it). */
static Rlhf__Envelope *copy_label(const Rlhf__Label *l) {
    Rlhf__Envelope env;
    wire_envelope_init(&env, "store", 1);
    env.body_case = RLHF__ENVELOPE__BODY_LABEL;
    env.label = (Rlhf__Label *)l;
    size_t n = rlhf__envelope__get_packed_size(&env);
    uint8_t *buf = mallocCheck(n);
    rlhf__envelope__pack(&env, buf);
    Rlhf__Envelope *c = rlhf__envelope__unpack(NULL, n, buf);
    free(buf);
    if (!c) {
        log_error("store: cannot copy a label (out of memory)");
        exit(1);
    }
    return c;
}

int store_put_label(store_t *s, const Rlhf__Label *l, int round_done, uint64_t answered, uint64_t *label_id) {
    size_t slot = find_slot(s, l->idempotency_id);
    if (s->slots[slot]) {
        *label_id = s->labels[s->slots[slot] - 1].env->label->id;
        return STORE_DUPLICATE;
    }
    if (s->n_labels == s->cap_labels) {
        s->cap_labels = s->cap_labels ? 2 * s->cap_labels : 256;
        s->labels = reallocCheck(s->labels, sizeof *s->labels * s->cap_labels);
    }
    label_rec_t *rec = &s->labels[s->n_labels];
    rec->env = copy_label(l);
    rec->env->label->has_id = 1;
    rec->env->label->id = s->label_base + 1 + s->n_labels;
    rec->round_done = round_done;
    rec->answered = answered;
    s->slots[slot] = ++s->n_labels;
    if (2 * s->n_labels > s->n_slots) grow_table(s);
    *label_id = rec->env->label->id;
    return STORE_STORED;
}

void store_set_label_base(store_t *s, uint64_t base) {
    if (s->n_labels == 0) s->label_base = base;
}

size_t store_label_count(const store_t *s) { return s->n_labels; }

store_label_t store_label_at(const store_t *s, size_t i) {
    store_label_t r = {s->labels[i].env->label, s->labels[i].round_done, s->labels[i].answered};
    return r;
}

size_t store_label_after(const store_t *s, uint64_t cursor) {
    if (cursor <= s->label_base) return 0;
    uint64_t i = cursor - s->label_base;
    return i > s->n_labels ? s->n_labels : (size_t)i;
}
