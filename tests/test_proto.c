/* test_proto.c - the wire schema and include/wire.h: a round trip of every
 * message type with every field set (compared field by field through
 * protobuf-c's descriptors, so a field added to the schema is compared too,
 * and a final test fails until some sample sets it); hostile input
 * (truncations at every length, every single-bit flip, random bytes) gives an
 * error or a valid message, never a crash (run under ASan with SAN=1); each
 * validation rule's error text; the size limit; enum names. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rng.h"
#include "wire.h"

/* ---- an arena for the samples: everything a builder allocates ---------- */

#define ARENA_MAX 16384
static void *arena[ARENA_MAX];
static size_t n_arena;
static rng_t R;

static void *talloc(size_t n) {
    assert_true(n_arena < ARENA_MAX);
    void *p = calloc(1, n ? n : 1);
    assert_non_null(p);
    arena[n_arena++] = p;
    return p;
}

static void arena_release(size_t mark) {
    while (n_arena > mark) free(arena[--n_arena]);
}

static float *floats(size_t n) {
    float *p = talloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)rng_normal(&R);
    return p;
}

static protobuf_c_boolean *bools(size_t n) {
    protobuf_c_boolean *p = talloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = rng_int(&R, 3) == 0;
    p[0] = 1; /* at least one true: a decoder that drops them shows */
    return p;
}

/* n TrajectoryBatch.ends bytes: running, terminated or truncated. */
static ProtobufCBinaryData ends(size_t n) {
    uint8_t *p = talloc(n);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rng_int(&R, 3);
    p[0] = WIRE_END_TRUNCATED; /* at least one end of each kind shows */
    if (n > 1) p[1] = WIRE_END_TERMINATED;
    return (ProtobufCBinaryData){.len = n, .data = p};
}

/* ---- sample messages: every field set, non-trivial values -------------- */

static const char *INI = "[env]\nid = CartPole-v1\nn_envs = 8\n\n[ppo]\nlr = 0.0003\n";

static Rlhf__Envelope *envelope(const char *sender) {
    Rlhf__Envelope *e = talloc(sizeof *e);
    wire_envelope_init(e, sender, 1 + (uint64_t)rng_int(&R, 1000000));
    e->has_in_reply_to = 1;
    e->in_reply_to = 41;
    return e;
}

static Rlhf__Envelope *sample_register(Rlhf__PeerKind kind) {
    Rlhf__Envelope *e = envelope("rollout-7");
    Rlhf__Register *m = talloc(sizeof *m);
    rlhf__register__init(m);
    Rlhf__Capabilities *c = talloc(sizeof *c);
    rlhf__capabilities__init(c);
    static char *envs[] = {"CartPole-v1", "Pendulum-v1"};
    static char *features[] = {"render", "curve"};
    c->has_n_envs = 1, c->n_envs = 8;
    c->n_env_ids = 2, c->env_ids = envs;
    c->has_n_ranks = 1, c->n_ranks = 4;
    c->n_query_kinds = 2;
    c->query_kinds = talloc(2 * sizeof *c->query_kinds);
    c->query_kinds[0] = RLHF__QUERY_KIND__QUERY_PAIR;
    c->query_kinds[1] = RLHF__QUERY_KIND__QUERY_RANKING;
    c->has_max_inflight = 1, c->max_inflight = 3;
    c->has_max_message_bytes = 1, c->max_message_bytes = (uint64_t)5 << 30;
    c->n_features = 2, c->features = features;
    m->has_kind = 1, m->kind = kind;
    m->peer_id = "rollout-7";
    m->has_incarnation = 1, m->incarnation = 0x8badf00ddeadbeefULL;
    m->host = "node-03.cluster";
    m->has_pid = 1, m->pid = 31337;
    m->caps = c;
    m->has_config_hash = 1, m->config_hash = wire_hash64(INI, strlen(INI));
    m->has_label_cursor = 1, m->label_cursor = 812;
    m->has_env_steps = 1, m->env_steps = 1ULL << 33;
    m->has_labels_answered = 1, m->labels_answered = 820;
    e->body_case = RLHF__ENVELOPE__BODY_REGISTER, e->register_ = m;
    return e;
}

static Rlhf__JobConfig *job_config(void) {
    Rlhf__JobConfig *j = talloc(sizeof *j);
    rlhf__job_config__init(j);
    j->ini = (char *)INI;
    j->has_hash = 1, j->hash = wire_hash64(INI, strlen(INI));
    return j;
}

static Rlhf__Envelope *sample_welcome(void) {
    Rlhf__Envelope *e = envelope("coordinator");
    Rlhf__Welcome *m = talloc(sizeof *m);
    rlhf__welcome__init(m);
    m->peer_id = "rollout-7";
    m->has_incarnation = 1, m->incarnation = 0x8badf00ddeadbeefULL;
    m->run_id = "CartPole-v1-42-20240101T000000";
    m->job = job_config();
    m->has_heartbeat_interval_ms = 1, m->heartbeat_interval_ms = 1000;
    m->has_heartbeat_liveness = 1, m->heartbeat_liveness = 3;
    m->has_seed = 1, m->seed = 0xfeedfacecafef00dULL;
    m->has_worker_index = 1, m->worker_index = 5;
    m->has_policy_version = 1, m->policy_version = 12;
    m->has_reward_version = 1, m->reward_version = 9;
    e->body_case = RLHF__ENVELOPE__BODY_WELCOME, e->welcome = m;
    return e;
}

static Rlhf__Envelope *sample_heartbeat(void) {
    Rlhf__Envelope *e = envelope("labeler-a");
    Rlhf__Heartbeat *m = talloc(sizeof *m);
    rlhf__heartbeat__init(m);
    m->has_seq = 1, m->seq = 99;
    m->has_load = 1, m->load = 0.625f;
    m->has_inflight = 1, m->inflight = 2;
    m->has_policy_version = 1, m->policy_version = 12;
    m->has_reward_version = 1, m->reward_version = 8;
    m->has_label_cursor = 1, m->label_cursor = 77;
    m->has_peer_seq = 1, m->peer_seq = 123456;
    e->body_case = RLHF__ENVELOPE__BODY_HEARTBEAT, e->heartbeat = m;
    return e;
}

static Rlhf__Envelope *sample_job_config(void) {
    Rlhf__Envelope *e = envelope("coordinator");
    e->body_case = RLHF__ENVELOPE__BODY_JOB_CONFIG, e->job_config = job_config();
    return e;
}

/* chunked: the middle chunk of four; else the whole tensor in one. */
static Rlhf__Envelope *sample_weights(int chunked) {
    Rlhf__Envelope *e = envelope("learner-0");
    Rlhf__Weights *m = talloc(sizeof *m);
    rlhf__weights__init(m);
    m->has_model = 1, m->model = chunked ? RLHF__MODEL_KIND__MODEL_REWARD : RLHF__MODEL_KIND__MODEL_POLICY;
    m->has_version = 1, m->version = 13;
    m->arch = "mlp 4-64-64-2 tanh";
    m->n_data = 256, m->data = floats(256);
    m->has_total_len = 1, m->total_len = chunked ? 1000 : 256;
    m->has_chunk_count = 1, m->chunk_count = chunked ? 4 : 1;
    m->has_chunk_index = 1, m->chunk_index = chunked ? 1 : 0;
    m->has_offset = 1, m->offset = chunked ? 256 : 0;
    m->has_checksum = 1, m->checksum = chunked ? 0x0123456789abcdefULL : wire_hash64(m->data, 256 * sizeof(float));
    e->body_case = RLHF__ENVELOPE__BODY_WEIGHTS, e->weights = m;
    return e;
}

enum { TB_T = 5, TB_E = 3, TB_O = 4, TB_A = 2, TB_R = 3 };

/* Adds the normalised views, with one final_obs_norm row per truncated
 * step. */
static void add_norm(Rlhf__TrajectoryBatch *m) {
    size_t tn = (size_t)m->steps * m->n_envs, trunc = 0;
    for (size_t i = 0; i < tn; i++) trunc += m->ends.data[i] == WIRE_END_TRUNCATED;
    m->n_obs_norm = tn * m->obs_dim, m->obs_norm = floats(m->n_obs_norm);
    m->n_final_obs_norm = trunc * m->obs_dim, m->final_obs_norm = floats(m->n_final_obs_norm);
    m->n_last_obs_norm = (size_t)m->n_envs * m->obs_dim, m->last_obs_norm = floats(m->n_last_obs_norm);
    m->has_episodes = 1, m->episodes = 2;
    m->has_return_sum = 1, m->return_sum = -301.25;
}

static Rlhf__Envelope *sample_trajectory_batch(void) {
    Rlhf__Envelope *e = envelope("rollout-7");
    Rlhf__TrajectoryBatch *m = talloc(sizeof *m);
    rlhf__trajectory_batch__init(m);
    size_t tn = TB_T * TB_E;
    m->worker_id = "rollout-7";
    m->has_batch_seq = 1, m->batch_seq = 17;
    m->has_policy_version = 1, m->policy_version = 12;
    m->env_id = "Pendulum-v1";
    m->has_n_envs = 1, m->n_envs = TB_E;
    m->has_steps = 1, m->steps = TB_T;
    m->has_obs_dim = 1, m->obs_dim = TB_O;
    m->has_act_dim = 1, m->act_dim = TB_A;
    m->has_render_dim = 1, m->render_dim = TB_R;
    m->n_obs = tn * TB_O, m->obs = floats(m->n_obs);
    m->n_actions = tn * TB_A, m->actions = floats(m->n_actions);
    m->n_logp = tn, m->logp = floats(tn);
    m->n_values = tn, m->values = floats(tn);
    m->n_true_rewards = tn, m->true_rewards = floats(tn);
    m->has_ends = 1, m->ends = ends(tn);
    m->n_render_states = tn * TB_R, m->render_states = floats(m->n_render_states);
    m->n_last_obs = TB_E * TB_O, m->last_obs = floats(m->n_last_obs);
    m->n_last_values = TB_E, m->last_values = floats(TB_E);
    add_norm(m);
    e->body_case = RLHF__ENVELOPE__BODY_TRAJECTORY_BATCH, e->trajectory_batch = m;
    return e;
}

enum { SEG_LEN = 6, SEG_O = 4, SEG_A = 1, SEG_R = 2 };

static Rlhf__Segment *segment(uint64_t id) {
    Rlhf__Segment *s = talloc(sizeof *s);
    rlhf__segment__init(s);
    s->has_id = 1, s->id = id;
    s->env_id = "CartPole-v1";
    s->has_source_policy_version = 1, s->source_policy_version = 11;
    s->source_worker = "rollout-7";
    s->has_source_batch = 1, s->source_batch = 16;
    s->has_env_index = 1, s->env_index = 2;
    s->has_start_step = 1, s->start_step = 40;
    s->has_length = 1, s->length = SEG_LEN;
    s->has_obs_dim = 1, s->obs_dim = SEG_O;
    s->has_act_dim = 1, s->act_dim = SEG_A;
    s->has_render_dim = 1, s->render_dim = SEG_R;
    s->n_obs = SEG_LEN * SEG_O, s->obs = floats(s->n_obs);
    s->n_actions = SEG_LEN * SEG_A, s->actions = floats(s->n_actions);
    s->n_true_rewards = SEG_LEN, s->true_rewards = floats(SEG_LEN);
    s->n_absorbing = SEG_LEN, s->absorbing = bools(SEG_LEN);
    s->n_render_states = SEG_LEN * SEG_R, s->render_states = floats(s->n_render_states);
    return s;
}

static Rlhf__Envelope *sample_segment(void) {
    Rlhf__Envelope *e = envelope("coordinator");
    e->body_case = RLHF__ENVELOPE__BODY_SEGMENT, e->segment = segment(11);
    return e;
}

/* Query ids 101 (pair: segments 11, 12), 102 (rating: 13) and 103 (ranking:
 * 14, 15, 16); with_segments embeds the segments. */
static Rlhf__Query *query(Rlhf__QueryKind kind, int with_segments) {
    Rlhf__Query *q = talloc(sizeof *q);
    rlhf__query__init(q);
    uint64_t first = kind == RLHF__QUERY_KIND__QUERY_PAIR ? 11 : kind == RLHF__QUERY_KIND__QUERY_RATING ? 13 : 14;
    size_t n = kind == RLHF__QUERY_KIND__QUERY_PAIR ? 2 : kind == RLHF__QUERY_KIND__QUERY_RATING ? 1 : 3;
    q->has_id = 1, q->id = 100 + (uint64_t)kind;
    q->has_kind = 1, q->kind = kind;
    q->n_segment_ids = n, q->segment_ids = talloc(n * sizeof *q->segment_ids);
    for (size_t i = 0; i < n; i++) q->segment_ids[i] = first + i;
    if (kind == RLHF__QUERY_KIND__QUERY_RANKING) q->has_k = 1, q->k = (uint32_t)n;
    q->has_selection_score = 1, q->selection_score = 0.375f;
    q->has_lease_deadline_us = 1, q->lease_deadline_us = 1700000000000000ULL;
    if (with_segments) {
        q->n_segments = n, q->segments = talloc(n * sizeof *q->segments);
        for (size_t i = 0; i < n; i++) q->segments[i] = segment(q->segment_ids[i]);
    }
    return q;
}

static Rlhf__Envelope *sample_query(Rlhf__QueryKind kind) {
    Rlhf__Envelope *e = envelope("coordinator");
    e->body_case = RLHF__ENVELOPE__BODY_QUERY, e->query = query(kind, 1);
    return e;
}

static Rlhf__Label *label(Rlhf__QueryKind kind) {
    Rlhf__Label *l = talloc(sizeof *l);
    rlhf__label__init(l);
    l->has_query_id = 1, l->query_id = 100 + (uint64_t)kind;
    l->labeler_id = "Zoë Ng"; /* a person's name: UTF-8 and a space are fine */
    l->idempotency_id = kind == RLHF__QUERY_KIND__QUERY_PAIR     ? "5f0c6a1e-8a4b-4d8e-9a57-1b2c3d4e5f60"
                        : kind == RLHF__QUERY_KIND__QUERY_RATING ? "5f0c6a1e-8a4b-4d8e-9a57-1b2c3d4e5f61"
                                                                 : "5f0c6a1e-8a4b-4d8e-9a57-1b2c3d4e5f62";
    l->has_kind = 1, l->kind = kind;
    if (kind == RLHF__QUERY_KIND__QUERY_PAIR) l->has_preference = 1, l->preference = RLHF__PREFERENCE__PREF_RIGHT;
    if (kind == RLHF__QUERY_KIND__QUERY_RATING) l->has_rating = 1, l->rating = 6;
    if (kind == RLHF__QUERY_KIND__QUERY_RANKING) {
        l->n_ranking = 3, l->ranking = talloc(3 * sizeof *l->ranking);
        l->ranking[0] = 2, l->ranking[1] = 0, l->ranking[2] = 1;
    }
    l->has_shown_at_us = 1, l->shown_at_us = 1700000000000000ULL;
    l->has_answered_at_us = 1, l->answered_at_us = 1700000012345678ULL;
    l->has_time_spent_ms = 1, l->time_spent_ms = 11800;
    l->has_id = 1, l->id = 5000 + (uint64_t)kind;
    return l;
}

static Rlhf__Envelope *sample_label(Rlhf__QueryKind kind) {
    Rlhf__Envelope *e = envelope("labeler-a");
    e->body_case = RLHF__ENVELOPE__BODY_LABEL, e->label = label(kind);
    return e;
}

static Rlhf__Envelope *sample_label_ack(void) {
    Rlhf__Envelope *e = envelope("coordinator");
    Rlhf__LabelAck *m = talloc(sizeof *m);
    rlhf__label_ack__init(m);
    m->has_query_id = 1, m->query_id = 101;
    m->idempotency_id = "5f0c6a1e-8a4b-4d8e-9a57-1b2c3d4e5f60";
    m->has_status = 1, m->status = RLHF__ACK_STATUS__ACK_DUPLICATE;
    m->has_label_id = 1, m->label_id = 5001;
    m->detail = "stored before, at 12:00:01";
    e->body_case = RLHF__ENVELOPE__BODY_LABEL_ACK, e->label_ack = m;
    return e;
}

/* Three items (pair, rating, ranking) over segments 11..16. */
static Rlhf__Envelope *sample_labeled_batch(void) {
    Rlhf__Envelope *e = envelope("coordinator");
    Rlhf__LabeledBatch *m = talloc(sizeof *m);
    rlhf__labeled_batch__init(m);
    m->has_batch_seq = 1, m->batch_seq = 3;
    m->n_items = 3, m->items = talloc(3 * sizeof *m->items);
    for (int i = 0; i < 3; i++) {
        Rlhf__LabeledItem *it = talloc(sizeof *it);
        rlhf__labeled_item__init(it);
        it->query = query((Rlhf__QueryKind)(i + 1), 0);
        it->label = label((Rlhf__QueryKind)(i + 1));
        if (i == 2) it->has_round_done = 1, it->round_done = 1;
        m->items[i] = it;
    }
    m->n_segments = 6, m->segments = talloc(6 * sizeof *m->segments);
    for (int i = 0; i < 6; i++) m->segments[i] = segment(16 - (uint64_t)i); /* any order */
    m->has_total_labels = 1, m->total_labels = 250;
    e->body_case = RLHF__ENVELOPE__BODY_LABELED_BATCH, e->labeled_batch = m;
    return e;
}

static Rlhf__Envelope *sample_status(void) {
    Rlhf__Envelope *e = envelope("learner-0");
    Rlhf__Status *m = talloc(sizeof *m);
    rlhf__status__init(m);
    static const char *names[] = {"reward.loss", "ppo.kl", "eval.return"};
    static const double values[] = {0.6931, -0.0, 487.5};
    m->has_request = 1, m->request = 1;
    m->phase = "rl";
    m->has_policy_version = 1, m->policy_version = 12;
    m->has_reward_version = 1, m->reward_version = 9;
    m->n_metrics = 3, m->metrics = talloc(3 * sizeof *m->metrics);
    for (int i = 0; i < 3; i++) {
        Rlhf__Metric *x = talloc(sizeof *x);
        rlhf__metric__init(x);
        x->name = (char *)names[i], x->has_value = 1, x->value = values[i];
        m->metrics[i] = x;
    }
    m->n_counters = 2, m->counters = talloc(2 * sizeof *m->counters);
    for (int i = 0; i < 2; i++) {
        Rlhf__Counter *x = talloc(sizeof *x);
        rlhf__counter__init(x);
        x->name = i ? "env.steps" : "labels.stored", x->has_value = 1, x->value = i ? 1ULL << 40 : 250;
        m->counters[i] = x;
    }
    e->body_case = RLHF__ENVELOPE__BODY_STATUS, e->status = m;
    return e;
}

static Rlhf__Envelope *sample_shutdown(void) {
    Rlhf__Envelope *e = envelope("coordinator");
    Rlhf__Shutdown *m = talloc(sizeof *m);
    rlhf__shutdown__init(m);
    m->reason = "run finished: 1000000 env steps";
    m->has_grace_ms = 1, m->grace_ms = 5000;
    e->body_case = RLHF__ENVELOPE__BODY_SHUTDOWN, e->shutdown = m;
    return e;
}

static Rlhf__Envelope *sample_error(void) {
    Rlhf__Envelope *e = envelope("coordinator");
    Rlhf__Error *m = talloc(sizeof *m);
    rlhf__error__init(m);
    m->has_code = 1, m->code = RLHF__ERROR_CODE__ERR_NOT_REGISTERED;
    m->text = "peer 'rollout-7' is not registered (declared dead at 12:00:03)";
    e->body_case = RLHF__ENVELOPE__BODY_ERROR, e->error = m;
    return e;
}

static Rlhf__Envelope *sample_ack(void) {
    Rlhf__Envelope *e = envelope("coordinator");
    Rlhf__Ack *m = talloc(sizeof *m);
    rlhf__ack__init(m);
    m->has_seq = 1, m->seq = 1234;
    m->has_credit = 1, m->credit = 4;
    e->body_case = RLHF__ENVELOPE__BODY_ACK, e->ack = m;
    return e;
}

/* Every sample, for the hostile-input tests. */
static Rlhf__Envelope *all_samples(int i) {
    switch (i) {
    case 0: return sample_register(RLHF__PEER_KIND__PEER_ROLLOUT);
    case 1: return sample_welcome();
    case 2: return sample_heartbeat();
    case 3: return sample_job_config();
    case 4: return sample_weights(0);
    case 5: return sample_weights(1);
    case 6: return sample_trajectory_batch();
    case 7: return sample_segment();
    case 8: return sample_query(RLHF__QUERY_KIND__QUERY_RANKING);
    case 9: return sample_label(RLHF__QUERY_KIND__QUERY_PAIR);
    case 10: return sample_label(RLHF__QUERY_KIND__QUERY_RATING);
    case 11: return sample_label(RLHF__QUERY_KIND__QUERY_RANKING);
    case 12: return sample_label_ack();
    case 13: return sample_labeled_batch();
    case 14: return sample_status();
    case 15: return sample_shutdown();
    case 16: return sample_error();
    case 17: return sample_ack();
    default: return NULL;
    }
}

/* ---- reflective comparison and field coverage -------------------------- */

static size_t scalar_size(ProtobufCType t) {
    switch (t) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/* Optional scalars carry a has_ flag; strings and messages are present when
 * non-NULL; oneof members when the case says so. */
static int field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f) {
    const char *base = (const char *)m;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) return *(const size_t *)(base + f->quantifier_offset) > 0;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
    if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)
        return *(void *const *)(base + f->offset) != NULL;
    return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
}

static void compare_msg(const ProtobufCMessage *a, const ProtobufCMessage *b, const char *path);

static void compare_value(const ProtobufCFieldDescriptor *f, const void *va, const void *vb, const char *path) {
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *sa = *(char *const *)va, *sb = *(char *const *)vb;
        if (!sa || !sb || strcmp(sa, sb) != 0)
            fail_msg("%s: sent '%s', decoded '%s'", path, sa ? sa : "(null)", sb ? sb : "(null)");
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *ma = *(ProtobufCMessage *const *)va, *mb = *(ProtobufCMessage *const *)vb;
        if (!ma || !mb) fail_msg("%s: sent %p, decoded %p", path, (const void *)ma, (const void *)mb);
        compare_msg(ma, mb, path);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *ba = va, *bb = vb;
        if (ba->len != bb->len || memcmp(ba->data, bb->data, ba->len) != 0) fail_msg("%s: bytes differ", path);
        break;
    }
    default:
        /* Bitwise: a float must survive exactly, -0.0 included. */
        if (memcmp(va, vb, scalar_size(f->type)) != 0) fail_msg("%s: value differs", path);
    }
}

static void compare_msg(const ProtobufCMessage *a, const ProtobufCMessage *b, const char *path) {
    const ProtobufCMessageDescriptor *d = a->descriptor;
    assert_ptr_equal(d, b->descriptor);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char fp[256];
        snprintf(fp, sizeof fp, "%s.%s", path, f->name);
        int pa = field_present(a, f), pb = field_present(b, f);
        if (pa != pb) fail_msg("%s: present %d when sent, %d when decoded", fp, pa, pb);
        if (!pa) continue;
        const char *xa = (const char *)a + f->offset, *xb = (const char *)b + f->offset;
        if (f->label != PROTOBUF_C_LABEL_REPEATED) {
            compare_value(f, xa, xb, fp);
            continue;
        }
        size_t na = *(const size_t *)((const char *)a + f->quantifier_offset);
        size_t nb = *(const size_t *)((const char *)b + f->quantifier_offset);
        if (na != nb) fail_msg("%s: %zu elements sent, %zu decoded", fp, na, nb);
        const char *ea = *(char *const *)xa, *eb = *(char *const *)xb;
        size_t sz = scalar_size(f->type);
        for (size_t j = 0; j < na; j++) {
            char ep[300];
            snprintf(ep, sizeof ep, "%s[%zu]", fp, j);
            compare_value(f, ea + j * sz, eb + j * sz, ep);
        }
    }
}

/* Which fields of which messages some round trip has carried. */
#define COV_MAX 64
static struct {
    const ProtobufCMessageDescriptor *d;
    unsigned char seen[64];
} cov[COV_MAX];
static int n_cov;

static unsigned char *cov_of(const ProtobufCMessageDescriptor *d) {
    for (int i = 0; i < n_cov; i++)
        if (cov[i].d == d) return cov[i].seen;
    assert_true(n_cov < COV_MAX);
    assert_true(d->n_fields <= 64);
    cov[n_cov].d = d;
    return cov[n_cov++].seen;
}

static void cover(const ProtobufCMessage *m) {
    unsigned char *seen = cov_of(m->descriptor);
    for (unsigned i = 0; i < m->descriptor->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];
        if (!field_present(m, f)) continue;
        seen[i] = 1;
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        const char *x = (const char *)m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
            for (size_t j = 0; j < n; j++) cover((*(ProtobufCMessage *const *const *)x)[j]);
        } else {
            cover(*(ProtobufCMessage *const *)x);
        }
    }
}

/* Packs with wire_pack, decodes with wire_decode, compares every field, and
 * checks that packing the decoded message gives the same bytes. */
static void roundtrip(const Rlhf__Envelope *e) {
    char err[512] = "";
    size_t n = 0, n2 = 0;
    uint8_t *buf = wire_pack(e, &n, err, sizeof err);
    if (!buf) fail_msg("wire_pack: %s", err);
    Rlhf__Envelope *got = wire_decode(buf, n, n, err, sizeof err);
    if (!got) fail_msg("wire_decode: %s", err);
    compare_msg(&e->base, &got->base, "envelope");
    uint8_t *again = wire_pack(got, &n2, err, sizeof err);
    assert_non_null(again);
    assert_int_equal(n, n2);
    assert_memory_equal(buf, again, n);
    cover(&e->base);
    free(again);
    free(buf);
    wire_free(&got);
    assert_null(got);
}

static int setup(void **state) {
    (void)state;
    rng_seed(&R, 2024);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    arena_release(0);
    return 0;
}

#define RT_TEST(name, expr)                  \
    static void test_rt_##name(void **state) { \
        (void)state;                         \
        roundtrip(expr);                     \
    }
RT_TEST(register_rollout, sample_register(RLHF__PEER_KIND__PEER_ROLLOUT))
RT_TEST(welcome, sample_welcome())
RT_TEST(heartbeat, sample_heartbeat())
RT_TEST(job_config, sample_job_config())
RT_TEST(weights_single, sample_weights(0))
RT_TEST(weights_chunk, sample_weights(1))
RT_TEST(trajectory_batch, sample_trajectory_batch())
RT_TEST(segment, sample_segment())
RT_TEST(query_pair, sample_query(RLHF__QUERY_KIND__QUERY_PAIR))
RT_TEST(query_rating, sample_query(RLHF__QUERY_KIND__QUERY_RATING))
RT_TEST(query_ranking, sample_query(RLHF__QUERY_KIND__QUERY_RANKING))
RT_TEST(label_pair, sample_label(RLHF__QUERY_KIND__QUERY_PAIR))
RT_TEST(label_rating, sample_label(RLHF__QUERY_KIND__QUERY_RATING))
RT_TEST(label_ranking, sample_label(RLHF__QUERY_KIND__QUERY_RANKING))
RT_TEST(label_ack, sample_label_ack())
RT_TEST(labeled_batch, sample_labeled_batch())
RT_TEST(status, sample_status())
RT_TEST(shutdown, sample_shutdown())
RT_TEST(error, sample_error())
RT_TEST(ack, sample_ack())

/* "Can't tell" answers: a rating and a ranking without an answer, a pair
 * with PREF_CANT_TELL. */
static void test_rt_cant_tell(void **state) {
    (void)state;
    for (int k = 1; k <= 3; k++) {
        Rlhf__Envelope *e = sample_label((Rlhf__QueryKind)k);
        Rlhf__Label *l = e->label;
        l->has_rating = 0, l->n_ranking = 0;
        l->has_preference = k == 1, l->preference = RLHF__PREFERENCE__PREF_CANT_TELL;
        l->has_cant_tell = 1, l->cant_tell = 1;
        roundtrip(e);
    }
}

/* The other peer kinds register too (their own required capabilities). */
static void test_rt_register_kinds(void **state) {
    (void)state;
    roundtrip(sample_register(RLHF__PEER_KIND__PEER_LEARNER));
    roundtrip(sample_register(RLHF__PEER_KIND__PEER_LABELER));
}

/* A trajectory batch of realistic size, and a weights message over 1 MiB. */
static void test_rt_large(void **state) {
    (void)state;
    size_t mark = n_arena;
    Rlhf__Envelope *e = sample_trajectory_batch();
    Rlhf__TrajectoryBatch *m = e->trajectory_batch;
    m->n_envs = 64, m->steps = 128, m->obs_dim = 17, m->act_dim = 6, m->render_dim = 9;
    size_t tn = 64 * 128;
    m->n_obs = tn * 17, m->obs = floats(m->n_obs);
    m->n_actions = tn * 6, m->actions = floats(m->n_actions);
    m->n_logp = m->n_values = m->n_true_rewards = tn;
    m->logp = floats(tn), m->values = floats(tn), m->true_rewards = floats(tn);
    m->ends = ends(tn);
    m->n_render_states = tn * 9, m->render_states = floats(m->n_render_states);
    m->n_last_obs = 64 * 17, m->last_obs = floats(m->n_last_obs);
    m->n_last_values = 64, m->last_values = floats(64);
    add_norm(m);
    roundtrip(e);
    e = sample_weights(0);
    e->weights->n_data = e->weights->total_len = 300000;
    e->weights->data = floats(300000);
    e->weights->checksum = wire_hash64(e->weights->data, 300000 * sizeof(float));
    roundtrip(e);
    arena_release(mark);
}

/* Every field of every message reachable from Envelope was carried by some
 * round trip above: a field added to the schema fails here until a sample
 * sets it (and so until the comparison has checked it). Runs last. */
static void collect_unseen(const ProtobufCMessageDescriptor *d, const ProtobufCMessageDescriptor **done, int *n_done,
                           char *out, size_t outlen) {
    for (int i = 0; i < *n_done; i++)
        if (done[i] == d) return;
    done[(*n_done)++] = d;
    unsigned char none[64] = {0};
    const unsigned char *seen = none;
    for (int i = 0; i < n_cov; i++)
        if (cov[i].d == d) seen = cov[i].seen;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!seen[i]) {
            size_t used = strlen(out);
            snprintf(out + used, outlen - used, " %s.%s", d->name, f->name);
        }
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) collect_unseen(f->descriptor, done, n_done, out, outlen);
    }
}

static void test_every_field_covered(void **state) {
    (void)state;
    const ProtobufCMessageDescriptor *done[COV_MAX];
    int n_done = 0;
    char unseen[2048] = "";
    collect_unseen(&rlhf__envelope__descriptor, done, &n_done, unseen, sizeof unseen);
    if (unseen[0]) fail_msg("fields no round trip carried:%s", unseen);
}

/* ---- hostile input ----------------------------------------------------- */

#define N_SAMPLES 18

/* Decoding gives a valid message or an error with a reason; never a crash,
 * a leak, or a message that fails validation. A valid message packs again,
 * and those bytes decode (a process can forward what it accepted). */
static void decode_any(const uint8_t *buf, size_t n) {
    char err[512] = "";
    Rlhf__Envelope *e = wire_decode(buf, n, 0, err, sizeof err);
    if (!e) {
        if (!err[0]) fail_msg("decode of %zu bytes failed without a reason", n);
        return;
    }
    size_t n2;
    uint8_t *again = wire_pack(e, &n2, err, sizeof err);
    if (!again) fail_msg("a decoded, validated message does not pack: %s", err);
    Rlhf__Envelope *e2 = wire_decode(again, n2, 0, err, sizeof err);
    if (!e2) fail_msg("a decoded, validated message packs to bytes that do not decode: %s", err);
    wire_free(&e2);
    free(again);
    wire_free(&e);
}

static uint8_t *pack_sample(int i, size_t *n) {
    char err[512];
    uint8_t *buf = wire_pack(all_samples(i), n, err, sizeof err);
    if (!buf) fail_msg("sample %d: %s", i, err);
    return buf;
}

static void test_truncated(void **state) {
    (void)state;
    for (int s = 0; s < N_SAMPLES; s++) {
        size_t n;
        uint8_t *buf = pack_sample(s, &n);
        /* An exact-size copy each time, so ASan sees any read past the end. */
        for (size_t len = 0; len < n; len++) {
            uint8_t *cut = malloc(len ? len : 1);
            memcpy(cut, buf, len);
            decode_any(cut, len);
            free(cut);
        }
        free(buf);
    }
}

static void test_bit_flips(void **state) {
    (void)state;
    long decoded = 0;
    for (int s = 0; s < N_SAMPLES; s++) {
        size_t n;
        uint8_t *buf = pack_sample(s, &n);
        uint8_t *copy = malloc(n);
        for (size_t i = 0; i < n; i++) {
            for (int b = 0; b < 8; b++) {
                memcpy(copy, buf, n);
                copy[i] ^= (uint8_t)(1u << b);
                decode_any(copy, n);
                decoded++;
            }
        }
        free(copy);
        free(buf);
    }
    assert_true(decoded > 10000);
}

static void test_random_bytes(void **state) {
    (void)state;
    rng_t r;
    rng_seed(&r, 99);
    for (int i = 0; i < 20000; i++) {
        size_t n = (size_t)rng_int(&r, 300);
        uint8_t *buf = malloc(n ? n : 1);
        for (size_t j = 0; j < n; j++) buf[j] = (uint8_t)rng_u64(&r);
        decode_any(buf, n);
        free(buf);
    }
    /* A valid prefix then garbage: gets deeper into the decoder. */
    for (int s = 0; s < N_SAMPLES; s++) {
        size_t n;
        uint8_t *buf = pack_sample(s, &n);
        for (int i = 0; i < 200; i++) {
            size_t keep = (size_t)rng_int(&r, (int)n), extra = (size_t)rng_int(&r, 64);
            uint8_t *mix = malloc(keep + extra + 1);
            memcpy(mix, buf, keep);
            for (size_t j = 0; j < extra; j++) mix[keep + j] = (uint8_t)rng_u64(&r);
            decode_any(mix, keep + extra);
            free(mix);
        }
        free(buf);
    }
}

/* protobuf merges concatenated messages: the last oneof body wins, and the
 * first one is freed (LeakSanitizer checks that under SAN=1). */
static void test_concatenated(void **state) {
    (void)state;
    size_t n1, n2;
    uint8_t *a = pack_sample(9, &n1), *b = pack_sample(17, &n2);
    uint8_t *ab = malloc(n1 + n2);
    memcpy(ab, a, n1);
    memcpy(ab + n1, b, n2);
    char err[512];
    Rlhf__Envelope *e = wire_decode(ab, n1 + n2, 0, err, sizeof err);
    if (!e) fail_msg("%s", err);
    assert_int_equal(e->body_case, RLHF__ENVELOPE__BODY_ACK);
    wire_free(&e);
    free(ab);
    free(a);
    free(b);
}

/* A field this build does not know (a newer peer's addition) is skipped. */
static void test_unknown_field(void **state) {
    (void)state;
    size_t n;
    uint8_t *buf = pack_sample(17, &n);
    uint8_t *x = malloc(n + 4);
    memcpy(x, buf, n);
    /* field 200, varint 5: tag (200 << 3 | 0) = 1600 = 0xc0 0x0c */
    x[n] = 0xc0, x[n + 1] = 0x0c, x[n + 2] = 0x05;
    char err[512];
    Rlhf__Envelope *e = wire_decode(x, n + 3, 0, err, sizeof err);
    if (!e) fail_msg("%s", err);
    assert_int_equal(e->body_case, RLHF__ENVELOPE__BODY_ACK);
    wire_free(&e);
    free(x);
    free(buf);
}

/* protobuf-c accepts field number 0 as an over-long varint tag (0x82 0x00)
 * and would pack it back as 0x02, which it refuses: wire_unpack refuses it
 * up front, at the top level and inside a body (found by fuzz_wire). */
static void test_field_number_zero(void **state) {
    (void)state;
    size_t n;
    uint8_t *buf = pack_sample(17, &n);
    uint8_t *x = malloc(n + 8);
    char err[512], want[256];
    /* unknown field 0, length-delimited, one byte: in the envelope */
    memcpy(x, buf, n);
    memcpy(x + n, "\x82\x00\x01\x24", 4);
    assert_null(wire_unpack(x, n + 4, 0, err, sizeof err));
    snprintf(want, sizeof want,
             "cannot decode a %zu-byte message as rlhf.Envelope: malformed protobuf (field number 0 in a "
             "rlhf.Envelope is outside 1..536870911)", n + 4);
    assert_string_equal(err, want);
    /* ... and inside the Ack body: field 30 again, merged into the first */
    memcpy(x + n, "\xf2\x01\x04\x82\x00\x01\x24", 7);
    assert_null(wire_unpack(x, n + 7, 0, err, sizeof err));
    assert_non_null(strstr(err, "field number 0 in a rlhf.Ack is outside"));
    /* The fuzzer's own input (tests/fuzz/corpus/regress-field-number-0). */
    static const uint8_t found[] = {
        0x08, 0x01, 0x12, 0x09, 'r', 'o', 'l', 'l', 'o', 'u', 't', '-', '1', 0x18, 0xf2, 0x01, 0x28, 0xfb,
        0xd4, 0xde, 0xac, 0x98, 0x03, 0x82, 0x01, 0x24, 0x08, 0x01, 0x12, 0x09, 'r', 'o', 'l', 'l', 'o',
        'u', 't', '-', '1', 0x18, 0x4d, 0x32, 0x13, 0x08, 0x04, 0x12, 0x0b, 'a', 'C', 'r', 't', 'P', 'o',
        'l', 'e', '-', 'v', '1', 0x22, 0x02, 0x01, 0x02, 0x08, 0x01, 0x28, 0xfb, 0xd4, 0xde, 0xac, 0x03,
        0x82, 0x00, 0x01, 0x24, 0x08, 0x01, 0x12, 0x09, 'r', 'o', 'l', 'l', 'o', 'u', 't', '-', '1', 0x18,
        0x4d, 0x32, 0x13, 0x08, 0x04, 0x12, 0x0b, 'a', 'C', 'r', 't', 'P', 'o', 'l', 'e', '-', 'v', '1',
        0x22, 0x02, 0x01, 0x02};
    assert_null(wire_unpack(found, sizeof found, 0, err, sizeof err));
    assert_non_null(strstr(err, "field number 0"));
    free(x);
    free(buf);
}

/* ---- the size limit and decode errors ---------------------------------- */

static void test_oversize(void **state) {
    (void)state;
    size_t n;
    uint8_t *buf = pack_sample(6, &n);
    char err[512], want[128];
    assert_null(wire_unpack(buf, n, n - 1, err, sizeof err));
    snprintf(want, sizeof want, "message of %zu bytes exceeds the limit of %zu bytes", n, n - 1);
    assert_string_equal(err, want);
    assert_null(wire_decode(buf, n, n - 1, err, sizeof err));
    assert_string_equal(err, want);
    /* At the limit is fine. */
    Rlhf__Envelope *e = wire_decode(buf, n, n, err, sizeof err);
    assert_non_null(e);
    wire_free(&e);
    /* Checked before a single byte is read: a claimed terabyte behind a
     * small buffer is refused without touching it (ASan would see a read). */
    assert_null(wire_unpack(buf, (size_t)1 << 40, 0, err, sizeof err));
    snprintf(want, sizeof want, "message of %zu bytes exceeds the limit of %zu bytes", (size_t)1 << 40,
             WIRE_MAX_MESSAGE_DEFAULT);
    assert_string_equal(err, want);
    free(buf);
    /* err may be NULL. */
    assert_null(wire_unpack("x", 1000, 10, NULL, 0));
}

static void test_decode_errors(void **state) {
    (void)state;
    char err[512];
    /* A bad wire type (7) for field 1. */
    static const uint8_t bad[] = {0x0f, 0x01, 0x02};
    assert_null(wire_unpack(bad, sizeof bad, 0, err, sizeof err));
    assert_string_equal(err, "cannot decode a 3-byte message as rlhf.Envelope: malformed protobuf (truncated, a "
                             "bad tag or wire type, an over-long varint, or a field over 2 GiB) or out of memory");
    /* Nothing at all decodes, but is no message. */
    Rlhf__Envelope *e = wire_unpack(NULL, 0, 0, err, sizeof err);
    assert_non_null(e);
    assert_int_equal(wire_validate(e, err, sizeof err), -1);
    assert_string_equal(err, "schema_version: missing");
    wire_free(&e);
    assert_null(wire_decode("", 0, 0, err, sizeof err));
    assert_string_equal(err, "schema_version: missing");
    wire_free(&e); /* NULL is fine */
    wire_free(NULL);
}

/* Memory amplification: 100000 empty segments are 200 KB on the wire but
 * would be 22 MB of structs; the decode budget refuses them (and frees what
 * protobuf-c had built: LeakSanitizer checks under SAN=1). */
static void test_decode_budget(void **state) {
    (void)state;
    size_t segs = 100000, k = 0, inner = 2 * segs;
    uint8_t *b = malloc(inner + 16);
    b[k++] = 0xd2, b[k++] = 0x01; /* field 26 (labeled_batch), length-delimited */
    for (size_t l = inner; ; l >>= 7) {
        b[k++] = (uint8_t)(l >= 0x80 ? (l & 0x7f) | 0x80 : l);
        if (l < 0x80) break;
    }
    for (size_t i = 0; i < segs; i++) b[k++] = 0x1a, b[k++] = 0x00; /* field 3 (segments), empty */
    char err[512], want[256];
    assert_null(wire_unpack(b, k, 0, err, sizeof err));
    snprintf(want, sizeof want,
             "cannot decode a %zu-byte message as rlhf.Envelope: it would take more than %zu bytes of memory "
             "(16x its size + 64 KiB): refused", k, k * 16 + 65536);
    assert_string_equal(err, want);
    /* A hundred fit the slack (and then fail validation). */
    k = 0;
    b[k++] = 0xd2, b[k++] = 0x01, b[k++] = 0xc8, b[k++] = 0x01; /* length 200 */
    for (size_t i = 0; i < 100; i++) b[k++] = 0x1a, b[k++] = 0x00;
    Rlhf__Envelope *e = wire_unpack(b, k, 0, err, sizeof err);
    if (!e) fail_msg("%s", err);
    assert_int_equal(e->labeled_batch->n_segments, 100);
    wire_free(&e);
    free(b);
}

/* wire_pack refuses a message over 2 GiB before reading its data: a chunk
 * claiming 600M floats behind a 256-float buffer. */
static void test_pack_too_large(void **state) {
    (void)state;
    size_t mark = n_arena;
    Rlhf__Envelope *e = sample_weights(1);
    e->weights->n_data = 600u << 20;
    e->weights->total_len = (uint64_t)e->weights->n_data * 4;
    e->weights->offset = e->weights->n_data;
    char err[512];
    size_t n = 1;
    assert_null(wire_pack(e, &n, err, sizeof err));
    assert_int_equal(n, 0);
    assert_non_null(strstr(err, "weights message of 2516582"));
    assert_non_null(strstr(err, "exceeds the protobuf limit of 2147483647 bytes (send weights in chunks)"));
    arena_release(mark);
}

/* ---- validation rules -------------------------------------------------- */

/* e must fail validation with exactly `want`; wire_pack must refuse it the
 * same way; and when e can be encoded at all (on_wire), a receiver decoding
 * its raw bytes must report the same. */
static void expect_invalid_at(Rlhf__Envelope *e, const char *want, int on_wire, int line) {
    char err[512] = "";
    int rc = wire_validate(e, err, sizeof err);
    if (rc != -1 || strcmp(err, want) != 0)
        fail_msg("line %d: expected -1 \"%s\", got %d \"%s\"", line, want, rc, err);
    size_t n;
    if (wire_pack(e, &n, err, sizeof err) || strcmp(err, want) != 0)
        fail_msg("line %d: wire_pack: expected \"%s\", got \"%s\"", line, want, err);
    if (!on_wire) return;
    n = rlhf__envelope__get_packed_size(e);
    uint8_t *buf = malloc(n + 1);
    rlhf__envelope__pack(e, buf);
    Rlhf__Envelope *got = wire_decode(buf, n, 0, err, sizeof err);
    if (got || strcmp(err, want) != 0)
        fail_msg("line %d: receiver: expected \"%s\", got \"%s\"", line, want, got ? "(valid)" : err);
    free(buf);
}
#define INVALID(e, want) expect_invalid_at((e), (want), 1, __LINE__)
#define INVALID_LOCAL(e, want) expect_invalid_at((e), (want), 0, __LINE__)

static void test_valid_envelope_rules(void **state) {
    (void)state;
    Rlhf__Envelope *e;
    e = sample_ack(), e->has_schema_version = 0;
    INVALID(e, "schema_version: missing");
    e = sample_ack(), e->schema_version = 3;
    INVALID(e, "schema_version: 3, this build speaks 2");
    e = sample_ack(), e->sender = NULL;
    INVALID(e, "sender: missing");
    e = sample_ack(), e->sender = "";
    INVALID(e, "sender: empty");
    e = sample_ack(), e->sender = "evil\nerror: forged";
    INVALID(e, "sender: control character 0x0a at byte 4");
    char longname[WIRE_MAX_NAME + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    e = sample_ack(), e->sender = longname;
    INVALID(e, "sender: 129 bytes, longer than 128");
    e = sample_ack(), e->has_seq = 0;
    INVALID(e, "seq: missing");
    e = sample_ack(), e->body_case = RLHF__ENVELOPE__BODY__NOT_SET;
    INVALID(e, "body: missing (no message set)");
    e = sample_ack(), e->body_case = (Rlhf__Envelope__BodyCase)99;
    INVALID_LOCAL(e, "body: unknown case 99");
    e = sample_ack(), e->ack = NULL;
    INVALID_LOCAL(e, "ack: missing (body case set, message NULL)");
    INVALID_LOCAL(NULL, "envelope: missing");
    /* A newer peer's message: the version check comes first, so the error
     * says why instead of naming whatever field it changed. */
    e = sample_label(RLHF__QUERY_KIND__QUERY_PAIR), e->schema_version = 4, e->label->rating = 99;
    INVALID(e, "schema_version: 4, this build speaks 2");
}

static void test_valid_register_rules(void **state) {
    (void)state;
    Rlhf__Envelope *e;
    e = sample_register(RLHF__PEER_KIND__PEER_ROLLOUT), e->register_->has_kind = 0;
    INVALID(e, "register.kind: missing");
    e = sample_register(RLHF__PEER_KIND__PEER_ROLLOUT), e->register_->kind = RLHF__PEER_KIND__PEER_UNSPECIFIED;
    INVALID(e, "register.kind: invalid value 0");
    e = sample_register(RLHF__PEER_KIND__PEER_ROLLOUT), e->register_->kind = (Rlhf__PeerKind)9;
    INVALID(e, "register.kind: invalid value 9");
    e = sample_register(RLHF__PEER_KIND__PEER_ROLLOUT), e->register_->peer_id = "rollout-8";
    INVALID(e, "register.peer_id: 'rollout-8' differs from the envelope's sender 'rollout-7'");
    e = sample_register(RLHF__PEER_KIND__PEER_ROLLOUT), e->register_->incarnation = 0;
    INVALID(e, "register.incarnation: must be > 0");
    e = sample_register(RLHF__PEER_KIND__PEER_ROLLOUT), e->register_->caps = NULL;
    INVALID(e, "register.caps: missing");
    e = sample_register(RLHF__PEER_KIND__PEER_ROLLOUT), e->register_->caps->n_envs = 0;
    INVALID(e, "register.caps.n_envs: must be >= 1");
    e = sample_register(RLHF__PEER_KIND__PEER_LEARNER), e->register_->caps->n_ranks = 0;
    INVALID(e, "register.caps.n_ranks: must be >= 1");
    e = sample_register(RLHF__PEER_KIND__PEER_LABELER), e->register_->caps->n_query_kinds = 0;
    INVALID(e, "register.caps.query_kinds: empty for a labeler");
    e = sample_register(RLHF__PEER_KIND__PEER_LABELER), e->register_->caps->query_kinds[1] = (Rlhf__QueryKind)7;
    INVALID(e, "register.caps.query_kinds[1]: invalid value 7");
    static char *bad_envs[] = {"CartPole-v1", ""};
    e = sample_register(RLHF__PEER_KIND__PEER_ROLLOUT), e->register_->caps->env_ids = bad_envs;
    INVALID(e, "register.caps.env_ids[1]: empty");
    e = sample_register(RLHF__PEER_KIND__PEER_ROLLOUT), e->register_->host = "a\tb";
    INVALID(e, "register.host: control character 0x09 at byte 1");
}

static void test_valid_welcome_heartbeat_job_rules(void **state) {
    (void)state;
    Rlhf__Envelope *e;
    e = sample_welcome(), e->welcome->job = NULL;
    INVALID(e, "welcome.job: missing");
    e = sample_welcome(), e->welcome->job->hash ^= 1;
    char want[256];
    snprintf(want, sizeof want,
             "welcome.job.hash: 0x%016llx does not match the ini text (0x%016llx)",
             (unsigned long long)(wire_hash64(INI, strlen(INI)) ^ 1), (unsigned long long)wire_hash64(INI, strlen(INI)));
    INVALID(e, want);
    e = sample_welcome(), e->welcome->heartbeat_interval_ms = 0;
    INVALID(e, "welcome.heartbeat_interval_ms: must be >= 1");
    e = sample_welcome(), e->welcome->has_heartbeat_liveness = 0;
    INVALID(e, "welcome.heartbeat_liveness: missing");
    e = sample_welcome(), e->welcome->run_id = NULL;
    INVALID(e, "welcome.run_id: missing");
    e = sample_welcome(), e->welcome->has_seed = 0;
    INVALID(e, "welcome.seed: missing");
    e = sample_heartbeat(), e->heartbeat->has_seq = 0;
    INVALID(e, "heartbeat.seq: missing");
    e = sample_heartbeat(), e->heartbeat->load = -1.0f;
    INVALID(e, "heartbeat.load: -1, expected a finite value >= 0");
    e = sample_heartbeat(), e->heartbeat->load = NAN;
    INVALID(e, "heartbeat.load: nan, expected a finite value >= 0");
    e = sample_job_config(), e->job_config->ini = "";
    INVALID(e, "job_config.ini: empty");
    e = sample_job_config(), e->job_config->has_hash = 0;
    INVALID(e, "job_config.hash: missing");
}

static void test_valid_weights_rules(void **state) {
    (void)state;
    Rlhf__Envelope *e;
    e = sample_weights(0), e->weights->model = (Rlhf__ModelKind)5;
    INVALID(e, "weights.model: invalid value 5");
    e = sample_weights(0), e->weights->has_version = 0;
    INVALID(e, "weights.version: missing");
    e = sample_weights(0), e->weights->has_total_len = 0;
    INVALID(e, "weights.total_len: missing");
    e = sample_weights(1), e->weights->chunk_count = 0;
    INVALID(e, "weights.chunk_count: must be >= 1");
    e = sample_weights(1), e->weights->chunk_index = 4;
    INVALID(e, "weights.chunk_index: 4, expected < chunk_count = 4");
    e = sample_weights(1), e->weights->has_checksum = 0;
    INVALID(e, "weights.checksum: missing");
    e = sample_weights(1), e->weights->n_data = 0;
    INVALID(e, "weights.data: empty");
    e = sample_weights(1), e->weights->offset = 800;
    INVALID(e, "weights.data: offset 800 + length 256 exceeds total_len = 1000");
    e = sample_weights(1), e->weights->chunk_index = 0;
    INVALID(e, "weights.offset: 256 in chunk 0, expected 0");
    e = sample_weights(1), e->weights->chunk_index = 3;
    INVALID(e, "weights.data: last chunk ends at 512, expected total_len = 1000");
    e = sample_weights(0), e->weights->data[7] += 1.0f;
    uint64_t h = wire_hash64(e->weights->data, 256 * sizeof(float));
    char want[160];
    snprintf(want, sizeof want, "weights.checksum: 0x%016llx does not match the data (0x%016llx)",
             (unsigned long long)e->weights->checksum, (unsigned long long)h);
    INVALID(e, want);
}

static void test_valid_trajectory_rules(void **state) {
    (void)state;
    Rlhf__Envelope *e;
    e = sample_trajectory_batch(), e->trajectory_batch->worker_id = NULL;
    INVALID(e, "trajectory_batch.worker_id: missing");
    e = sample_trajectory_batch(), e->trajectory_batch->has_policy_version = 0;
    INVALID(e, "trajectory_batch.policy_version: missing");
    e = sample_trajectory_batch(), e->trajectory_batch->env_id = "";
    INVALID(e, "trajectory_batch.env_id: empty");
    e = sample_trajectory_batch(), e->trajectory_batch->steps = 0;
    INVALID(e, "trajectory_batch.steps: must be >= 1");
    e = sample_trajectory_batch(), e->trajectory_batch->has_n_envs = 0;
    INVALID(e, "trajectory_batch.n_envs: missing");
    e = sample_trajectory_batch(), e->trajectory_batch->n_obs--;
    INVALID(e, "trajectory_batch.obs: length 59, expected steps*n_envs*obs_dim = 60");
    e = sample_trajectory_batch(), e->trajectory_batch->obs_dim = 5;
    INVALID(e, "trajectory_batch.obs: length 60, expected steps*n_envs*obs_dim = 75");
    e = sample_trajectory_batch(), e->trajectory_batch->n_actions = 31, e->trajectory_batch->actions = floats(31);
    INVALID(e, "trajectory_batch.actions: length 31, expected steps*n_envs*act_dim = 30");
    e = sample_trajectory_batch(), e->trajectory_batch->n_logp = 14;
    INVALID(e, "trajectory_batch.logp: length 14, expected steps*n_envs = 15");
    e = sample_trajectory_batch(), e->trajectory_batch->n_values = 14;
    INVALID(e, "trajectory_batch.values: length 14, expected 0 or steps*n_envs = 15");
    e = sample_trajectory_batch(), e->trajectory_batch->n_true_rewards = 16, e->trajectory_batch->true_rewards = floats(16);
    INVALID(e, "trajectory_batch.true_rewards: length 16, expected steps*n_envs = 15");
    e = sample_trajectory_batch(), e->trajectory_batch->ends.len = 1;
    INVALID(e, "trajectory_batch.ends: length 1, expected steps*n_envs = 15");
    e = sample_trajectory_batch(), e->trajectory_batch->ends = ends(16);
    INVALID(e, "trajectory_batch.ends: length 16, expected steps*n_envs = 15");
    e = sample_trajectory_batch(), e->trajectory_batch->has_ends = 0;
    INVALID(e, "trajectory_batch.ends: length 0, expected steps*n_envs = 15");
    e = sample_trajectory_batch(), e->trajectory_batch->n_render_states = 44;
    INVALID(e, "trajectory_batch.render_states: length 44, expected steps*n_envs*render_dim = 45");
    e = sample_trajectory_batch(), e->trajectory_batch->has_render_dim = 0;
    INVALID(e, "trajectory_batch.render_states: length 45, expected 0 with render_dim = 0");
    e = sample_trajectory_batch(), e->trajectory_batch->n_last_obs = 3;
    INVALID(e, "trajectory_batch.last_obs: length 3, expected 0 or n_envs*obs_dim = 12");
    e = sample_trajectory_batch(), e->trajectory_batch->n_last_values = 4, e->trajectory_batch->last_values = floats(4);
    INVALID(e, "trajectory_batch.last_values: length 4, expected 0 or n_envs = 3");
    /* Hostile dimensions must not wrap around into a small product. */
    e = sample_trajectory_batch();
    e->trajectory_batch->steps = e->trajectory_batch->n_envs = e->trajectory_batch->obs_dim = 0x80000000u;
    INVALID(e, "trajectory_batch.obs: steps*n_envs*obs_dim overflows");
    /* Each step ended in one of three ways: no other byte is allowed. */
    e = sample_trajectory_batch(), e->trajectory_batch->ends.data[7] = 3;
    INVALID(e, "trajectory_batch.ends[7]: 3, expected 0 (running), 1 (terminated) or 2 (truncated)");
    e = sample_trajectory_batch(), e->trajectory_batch->ends.data[14] = 255;
    INVALID(e, "trajectory_batch.ends[14]: 255, expected 0 (running), 1 (terminated) or 2 (truncated)");
    e = sample_trajectory_batch(), e->trajectory_batch->ends.data[3] = 9, e->trajectory_batch->ends.data[11] = 4;
    INVALID(e, "trajectory_batch.ends[3]: 9, expected 0 (running), 1 (terminated) or 2 (truncated)");
    /* The normalised views: all or nothing, one final row per truncation. */
    e = sample_trajectory_batch(), e->trajectory_batch->n_obs_norm--;
    INVALID(e, "trajectory_batch.obs_norm: length 59, expected steps*n_envs*obs_dim = 60");
    e = sample_trajectory_batch();
    e->trajectory_batch->ends.data[0] = WIRE_END_TRUNCATED;
    e->trajectory_batch->n_final_obs_norm += 4;
    e->trajectory_batch->final_obs_norm = floats(e->trajectory_batch->n_final_obs_norm);
    {
        char want[160];
        size_t tr = 0;
        for (size_t i = 0; i < e->trajectory_batch->ends.len; i++) tr += e->trajectory_batch->ends.data[i] == WIRE_END_TRUNCATED;
        snprintf(want, sizeof want,
                 "trajectory_batch.final_obs_norm: length %zu, expected (steps with ends = 2)*obs_dim = %zu",
                 e->trajectory_batch->n_final_obs_norm, tr * 4);
        INVALID(e, want);
    }
    e = sample_trajectory_batch(), e->trajectory_batch->n_last_obs_norm = 0;
    INVALID(e, "trajectory_batch.last_obs_norm: length 0, expected n_envs*obs_dim = 12");
    e = sample_trajectory_batch(), e->trajectory_batch->n_obs_norm = 0;
    INVALID(e, "trajectory_batch.final_obs_norm: set without obs_norm");
    e = sample_trajectory_batch(), e->trajectory_batch->n_obs_norm = 0, e->trajectory_batch->n_final_obs_norm = 0;
    INVALID(e, "trajectory_batch.last_obs_norm: set without obs_norm");
    e = sample_trajectory_batch(), e->trajectory_batch->episodes = 16;
    INVALID(e, "trajectory_batch.episodes: 16 is more than steps*n_envs = 15");
    e = sample_trajectory_batch(), e->trajectory_batch->return_sum = NAN;
    INVALID(e, "trajectory_batch.return_sum: not finite");
    /* Without render states, last_obs, values or the normalised views, a
     * batch is still valid. */
    e = sample_trajectory_batch();
    e->trajectory_batch->has_render_dim = 0, e->trajectory_batch->n_render_states = 0;
    e->trajectory_batch->n_last_obs = 0, e->trajectory_batch->n_last_values = 0, e->trajectory_batch->n_values = 0;
    char err[256];
    assert_int_equal(wire_validate(e, err, sizeof err), 0);
    e->trajectory_batch->n_obs_norm = e->trajectory_batch->n_final_obs_norm = e->trajectory_batch->n_last_obs_norm = 0;
    assert_int_equal(wire_validate(e, err, sizeof err), 0);
}

static void test_valid_segment_query_rules(void **state) {
    (void)state;
    Rlhf__Envelope *e;
    e = sample_segment(), e->segment->id = 0;
    INVALID(e, "segment.id: must be > 0");
    e = sample_segment(), e->segment->has_source_policy_version = 0;
    INVALID(e, "segment.source_policy_version: missing");
    e = sample_segment(), e->segment->length = 0;
    INVALID(e, "segment.length: must be >= 1");
    e = sample_segment(), e->segment->n_obs = 23;
    INVALID(e, "segment.obs: length 23, expected length*obs_dim = 24");
    e = sample_segment(), e->segment->n_actions = 7, e->segment->actions = floats(7);
    INVALID(e, "segment.actions: length 7, expected length*act_dim = 6");
    e = sample_segment(), e->segment->n_true_rewards = 5;
    INVALID(e, "segment.true_rewards: length 5, expected length = 6");
    e = sample_segment(), e->segment->n_absorbing = 5;
    INVALID(e, "segment.absorbing: length 5, expected length = 6");
    e = sample_segment(), e->segment->render_dim = 3;
    INVALID(e, "segment.render_states: length 12, expected length*render_dim = 18");
    e = sample_segment(), e->segment->render_dim = 0;
    INVALID(e, "segment.render_states: length 12, expected 0 with render_dim = 0");

    e = sample_query(RLHF__QUERY_KIND__QUERY_PAIR), e->query->has_id = 0;
    INVALID(e, "query.id: missing");
    e = sample_query(RLHF__QUERY_KIND__QUERY_PAIR), e->query->kind = RLHF__QUERY_KIND__QUERY_UNSPECIFIED;
    INVALID(e, "query.kind: invalid value 0");
    e = sample_query(RLHF__QUERY_KIND__QUERY_PAIR), e->query->n_segment_ids = 1, e->query->n_segments = 1;
    INVALID(e, "query.segment_ids: length 1, expected 2 for a pair");
    e = sample_query(RLHF__QUERY_KIND__QUERY_RATING), e->query->has_k = 1, e->query->k = 2;
    INVALID(e, "query.k: 2, expected 1 for a rating");
    e = sample_query(RLHF__QUERY_KIND__QUERY_RANKING), e->query->has_k = 0;
    INVALID(e, "query.k: missing for a ranking");
    e = sample_query(RLHF__QUERY_KIND__QUERY_RANKING), e->query->k = 17;
    INVALID(e, "query.k: 17 is outside 2..16");
    e = sample_query(RLHF__QUERY_KIND__QUERY_RANKING), e->query->k = 1;
    INVALID(e, "query.k: 1 is outside 2..16");
    e = sample_query(RLHF__QUERY_KIND__QUERY_RANKING), e->query->k = 4;
    INVALID(e, "query.segment_ids: length 3, expected k = 4");
    e = sample_query(RLHF__QUERY_KIND__QUERY_RANKING), e->query->segment_ids[2] = 14;
    INVALID(e, "query.segment_ids[2]: 14 repeats segment_ids[0]");
    e = sample_query(RLHF__QUERY_KIND__QUERY_PAIR), e->query->segment_ids[0] = 0;
    INVALID(e, "query.segment_ids[0]: must be > 0");
    e = sample_query(RLHF__QUERY_KIND__QUERY_PAIR), e->query->selection_score = INFINITY;
    INVALID(e, "query.selection_score: not finite");
    e = sample_query(RLHF__QUERY_KIND__QUERY_RANKING), e->query->n_segments = 2;
    INVALID(e, "query.segments: length 2, expected 0 or the number of segment_ids = 3");
    e = sample_query(RLHF__QUERY_KIND__QUERY_RANKING), e->query->segments[1]->id = 99;
    INVALID(e, "query.segments[1].id: 99, expected segment_ids[1] = 15");
    e = sample_query(RLHF__QUERY_KIND__QUERY_RANKING), e->query->segments[2]->n_obs = 1;
    INVALID(e, "query.segments[2].obs: length 1, expected length*obs_dim = 24");
    e = sample_query(RLHF__QUERY_KIND__QUERY_RANKING), e->query->segments[0] = NULL;
    INVALID_LOCAL(e, "query.segments[0]: missing");
}

static void test_valid_label_rules(void **state) {
    (void)state;
    Rlhf__Envelope *e;
    e = sample_label(RLHF__QUERY_KIND__QUERY_PAIR), e->label->has_query_id = 0;
    INVALID(e, "label.query_id: missing");
    e = sample_label(RLHF__QUERY_KIND__QUERY_PAIR), e->label->labeler_id = "";
    INVALID(e, "label.labeler_id: empty");
    e = sample_label(RLHF__QUERY_KIND__QUERY_PAIR), e->label->idempotency_id = NULL;
    INVALID(e, "label.idempotency_id: missing");
    e = sample_label(RLHF__QUERY_KIND__QUERY_PAIR), e->label->has_kind = 0;
    INVALID(e, "label.kind: missing");
    e = sample_label(RLHF__QUERY_KIND__QUERY_PAIR), e->label->has_preference = 0;
    INVALID(e, "label.preference: missing");
    e = sample_label(RLHF__QUERY_KIND__QUERY_PAIR), e->label->preference = (Rlhf__Preference)5;
    INVALID(e, "label.preference: invalid value 5");
    e = sample_label(RLHF__QUERY_KIND__QUERY_PAIR), e->label->has_rating = 1, e->label->rating = 3;
    INVALID(e, "label.rating: set on a pair label");
    e = sample_label(RLHF__QUERY_KIND__QUERY_RATING), e->label->rating = 0;
    INVALID(e, "label.rating: 0 is outside 1..7");
    e = sample_label(RLHF__QUERY_KIND__QUERY_RATING), e->label->rating = 8;
    INVALID(e, "label.rating: 8 is outside 1..7");
    e = sample_label(RLHF__QUERY_KIND__QUERY_RATING), e->label->has_rating = 0;
    INVALID(e, "label.rating: missing");
    e = sample_label(RLHF__QUERY_KIND__QUERY_RATING), e->label->has_preference = 1;
    INVALID(e, "label.preference: set on a rating label");
    e = sample_label(RLHF__QUERY_KIND__QUERY_RATING);
    e->label->n_ranking = 2, e->label->ranking = talloc(2 * sizeof(uint32_t)), e->label->ranking[1] = 1;
    INVALID(e, "label.ranking: set on a rating label");
    e = sample_label(RLHF__QUERY_KIND__QUERY_RANKING), e->label->n_ranking = 1;
    INVALID(e, "label.ranking: length 1 is outside 2..16");
    e = sample_label(RLHF__QUERY_KIND__QUERY_RANKING), e->label->ranking[2] = 3;
    INVALID(e, "label.ranking[2]: 3 is outside 0..2 (positions in the query)");
    e = sample_label(RLHF__QUERY_KIND__QUERY_RANKING), e->label->ranking[2] = 2;
    INVALID(e, "label.ranking[2]: 2 appears twice: not a permutation");
    e = sample_label(RLHF__QUERY_KIND__QUERY_RANKING), e->label->has_rating = 1, e->label->rating = 4;
    INVALID(e, "label.rating: set on a ranking label");
    e = sample_label(RLHF__QUERY_KIND__QUERY_PAIR), e->label->answered_at_us = 1;
    INVALID(e, "label.answered_at_us: 1 is before shown_at_us = 1700000000000000");
    /* "Can't tell" carries no answer. */
    e = sample_label(RLHF__QUERY_KIND__QUERY_RATING), e->label->has_cant_tell = 1, e->label->cant_tell = 1;
    INVALID(e, "label.rating: set on a can't-tell label");
    e = sample_label(RLHF__QUERY_KIND__QUERY_RANKING), e->label->has_cant_tell = 1, e->label->cant_tell = 1;
    INVALID(e, "label.ranking: set on a can't-tell label");
    e = sample_label(RLHF__QUERY_KIND__QUERY_PAIR), e->label->has_cant_tell = 1, e->label->cant_tell = 1;
    INVALID(e, "label.preference: right on a can't-tell label");
    e = sample_label(RLHF__QUERY_KIND__QUERY_PAIR), e->label->has_cant_tell = 1, e->label->has_preference = 0;
    INVALID(e, "label.preference: missing"); /* cant_tell = false: an answer is due */

    e = sample_label_ack(), e->label_ack->status = RLHF__ACK_STATUS__ACK_STORED, e->label_ack->has_label_id = 0;
    INVALID(e, "label_ack.label_id: missing");
    e = sample_label_ack(), e->label_ack->has_status = 0;
    INVALID(e, "label_ack.status: missing");
    e = sample_label_ack(), e->label_ack->idempotency_id = "";
    INVALID(e, "label_ack.idempotency_id: empty");
    /* A rejection has no label id. */
    e = sample_label_ack(), e->label_ack->status = RLHF__ACK_STATUS__ACK_REJECTED, e->label_ack->has_label_id = 0;
    char err[256];
    assert_int_equal(wire_validate(e, err, sizeof err), 0);
}

static void test_valid_labeled_batch_rules(void **state) {
    (void)state;
    Rlhf__Envelope *e;
    e = sample_labeled_batch(), e->labeled_batch->has_batch_seq = 0;
    INVALID(e, "labeled_batch.batch_seq: missing");
    e = sample_labeled_batch(), e->labeled_batch->n_items = 0;
    INVALID(e, "labeled_batch.items: empty");
    e = sample_labeled_batch(), e->labeled_batch->items[1]->query = NULL;
    INVALID(e, "labeled_batch.items[1].query: missing");
    e = sample_labeled_batch(), e->labeled_batch->items[0]->label = NULL;
    INVALID(e, "labeled_batch.items[0].label: missing");
    e = sample_labeled_batch(), e->labeled_batch->items[2]->label->rating = 3, e->labeled_batch->items[2]->label->has_rating = 1;
    INVALID(e, "labeled_batch.items[2].label.rating: set on a ranking label");
    e = sample_labeled_batch(), e->labeled_batch->items[1]->label->query_id = 101;
    INVALID(e, "labeled_batch.items[1].label.query_id: 101, expected query.id = 102");
    /* A well-formed rating label answering a pair query. */
    e = sample_labeled_batch(), e->labeled_batch->items[0]->label = label(RLHF__QUERY_KIND__QUERY_RATING);
    e->labeled_batch->items[0]->label->query_id = 101;
    INVALID(e, "labeled_batch.items[0].label.kind: rating, expected query.kind = pair");
    e = sample_labeled_batch(), e->labeled_batch->items[2]->label->n_ranking = 2;
    e->labeled_batch->items[2]->label->ranking[0] = 1, e->labeled_batch->items[2]->label->ranking[1] = 0;
    INVALID(e, "labeled_batch.items[2].label.ranking: length 2, expected query.k = 3");
    e = sample_labeled_batch(), e->labeled_batch->n_segments = 5; /* drops segment 11 */
    INVALID(e, "labeled_batch.items[0].query.segment_ids[0]: segment 11 is not in the batch");
    e = sample_labeled_batch(), e->labeled_batch->segments[3]->id = 15;
    INVALID(e, "labeled_batch.segments: segment 15 appears twice");
    e = sample_labeled_batch(), e->labeled_batch->segments[4]->n_absorbing = 2;
    INVALID(e, "labeled_batch.segments[4].absorbing: length 2, expected length = 6");
    e = sample_labeled_batch(), e->labeled_batch->items[1]->query->n_segment_ids = 2;
    e->labeled_batch->items[1]->query->segment_ids = talloc(2 * sizeof(uint64_t));
    e->labeled_batch->items[1]->query->segment_ids[0] = 13, e->labeled_batch->items[1]->query->segment_ids[1] = 14;
    INVALID(e, "labeled_batch.items[1].query.segment_ids: length 2, expected 1 for a rating");
    e = sample_labeled_batch(), e->labeled_batch->items[1] = NULL;
    INVALID_LOCAL(e, "labeled_batch.items[1]: missing");
    /* A "can't tell" ranking carries no ranking: no length to match k. */
    e = sample_labeled_batch(), e->labeled_batch->items[2]->label->n_ranking = 0;
    e->labeled_batch->items[2]->label->has_cant_tell = 1, e->labeled_batch->items[2]->label->cant_tell = 1;
    char err[256];
    assert_int_equal(wire_validate(e, err, sizeof err), 0);
}

static void test_valid_status_misc_rules(void **state) {
    (void)state;
    Rlhf__Envelope *e;
    e = sample_status(), e->status->metrics[1]->name = "";
    INVALID(e, "status.metrics[1].name: empty");
    e = sample_status(), e->status->metrics[2]->has_value = 0;
    INVALID(e, "status.metrics[2].value: missing");
    e = sample_status(), e->status->counters[0]->name = NULL;
    INVALID(e, "status.counters[0].name: missing");
    e = sample_status(), e->status->counters[1]->has_value = 0;
    INVALID(e, "status.counters[1].value: missing");
    e = sample_shutdown(), e->shutdown->reason = NULL;
    INVALID(e, "shutdown.reason: missing");
    e = sample_error(), e->error->code = RLHF__ERROR_CODE__ERR_UNSPECIFIED;
    INVALID(e, "error.code: invalid value 0");
    e = sample_error(), e->error->text = "";
    INVALID(e, "error.text: empty");
    e = sample_ack(), e->ack->has_seq = 0;
    INVALID(e, "ack.seq: missing");
    /* A NaN metric is allowed (e.g. a KL not defined yet). */
    e = sample_status(), e->status->metrics[0]->value = NAN;
    char err[256];
    assert_int_equal(wire_validate(e, err, sizeof err), 0);
}

/* ---- names, hash, envelope init ---------------------------------------- */

/* The helper's names are the schema's value names, lower case, without the
 * prefix: checked against protobuf-c's descriptors, so a value added to the
 * .proto without a name in wire.c fails here. */
static void check_enum_names(const ProtobufCEnumDescriptor *d, const char *(*name)(int),
                             int (*parse)(const char *, int *, char *, size_t)) {
    for (unsigned i = 0; i < d->n_values; i++) {
        const ProtobufCEnumValue *v = &d->values[i];
        if (v->value == 0) {
            assert_null(name(0));
            continue;
        }
        char want[64];
        const char *us = strchr(v->name, '_');
        assert_non_null(us);
        snprintf(want, sizeof want, "%s", us + 1);
        for (char *p = want; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        const char *got = name(v->value);
        if (!got || strcmp(got, want) != 0) fail_msg("%s: %s named '%s', expected '%s'", d->name, v->name, got, want);
        int x = -1;
        char err[256];
        assert_int_equal(parse(want, &x, err, sizeof err), 0);
        assert_int_equal(x, v->value);
    }
    assert_null(name(1000));
    assert_null(name(-1));
}

/* Adapters from the typed helpers to one signature. */
#define ADAPT(prefix, type)                                                                                     \
    static const char *prefix##_n(int v) { return wire_##prefix##_name((type)v); }                           \
    static int prefix##_p(const char *s, int *out, char *err, size_t errlen) {                                \
        type t;                                                                                                 \
        int rc = wire_##prefix##_parse(s, &t, err, errlen);                                                     \
        if (rc == 0) *out = (int)t;                                                                             \
        return rc;                                                                                              \
    }
ADAPT(peer_kind, Rlhf__PeerKind)
ADAPT(query_kind, Rlhf__QueryKind)
ADAPT(preference, Rlhf__Preference)
ADAPT(model_kind, Rlhf__ModelKind)
ADAPT(ack_status, Rlhf__AckStatus)
ADAPT(error_code, Rlhf__ErrorCode)

static void test_enum_names(void **state) {
    (void)state;
    check_enum_names(&rlhf__peer_kind__descriptor, peer_kind_n, peer_kind_p);
    check_enum_names(&rlhf__query_kind__descriptor, query_kind_n, query_kind_p);
    check_enum_names(&rlhf__preference__descriptor, preference_n, preference_p);
    check_enum_names(&rlhf__model_kind__descriptor, model_kind_n, model_kind_p);
    check_enum_names(&rlhf__ack_status__descriptor, ack_status_n, ack_status_p);
    check_enum_names(&rlhf__error_code__descriptor, error_code_n, error_code_p);
    assert_string_equal(wire_preference_name(RLHF__PREFERENCE__PREF_CANT_TELL), "cant_tell");
    Rlhf__PeerKind k = RLHF__PEER_KIND__PEER_LEARNER;
    char err[256];
    assert_int_equal(wire_peer_kind_parse("coordinator", &k, err, sizeof err), -1);
    assert_string_equal(err, "unknown peer kind 'coordinator' (expected one of: rollout, learner, labeler)");
    assert_int_equal(k, RLHF__PEER_KIND__PEER_LEARNER); /* untouched on error */
    assert_int_equal(wire_peer_kind_parse(NULL, &k, err, sizeof err), -1);
    assert_int_equal(wire_query_kind_parse("unspecified", (Rlhf__QueryKind *)&k, NULL, 0), -1);

    /* Body names are the oneof's field names. */
    const ProtobufCMessageDescriptor *d = &rlhf__envelope__descriptor;
    int bodies = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *got = wire_body_name((Rlhf__Envelope__BodyCase)f->id);
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            assert_non_null(got);
            assert_string_equal(got, f->name);
            bodies++;
        } else {
            assert_null(got); /* schema_version etc. are not bodies */
        }
    }
    assert_true(bodies > 0);
    assert_string_equal(wire_body_name(RLHF__ENVELOPE__BODY_TRAJECTORY_BATCH), "trajectory_batch");
    assert_null(wire_body_name(RLHF__ENVELOPE__BODY__NOT_SET));
    assert_null(wire_body_name((Rlhf__Envelope__BodyCase)9999));
}

static void test_hash_and_init(void **state) {
    (void)state;
    /* FNV-1a 64 reference values. */
    assert_true(wire_hash64("", 0) == 0xcbf29ce484222325ULL);
    assert_true(wire_hash64("a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true(wire_hash64("foobar", 6) == 0x85944171f73967e8ULL);
    Rlhf__Envelope e;
    wire_envelope_init(&e, "rollout-1", 7);
    assert_true(e.has_schema_version && e.schema_version == WIRE_SCHEMA_VERSION && WIRE_SCHEMA_VERSION == 2);
    assert_string_equal(e.sender, "rollout-1");
    assert_true(e.has_seq && e.seq == 7);
    assert_true(e.has_sent_at_us && e.sent_at_us > 1577836800000000ULL); /* after 2020 */
    assert_int_equal(e.body_case, RLHF__ENVELOPE__BODY__NOT_SET);
    assert_false(e.has_in_reply_to);
}

/* Every test frees what its samples allocated (teardown), so ASan's leak
 * check sees only real leaks. */
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_rt_register_rollout),
        T(test_rt_register_kinds),
        T(test_rt_cant_tell),
        T(test_rt_welcome),
        T(test_rt_heartbeat),
        T(test_rt_job_config),
        T(test_rt_weights_single),
        T(test_rt_weights_chunk),
        T(test_rt_trajectory_batch),
        T(test_rt_segment),
        T(test_rt_query_pair),
        T(test_rt_query_rating),
        T(test_rt_query_ranking),
        T(test_rt_label_pair),
        T(test_rt_label_rating),
        T(test_rt_label_ranking),
        T(test_rt_label_ack),
        T(test_rt_labeled_batch),
        T(test_rt_status),
        T(test_rt_shutdown),
        T(test_rt_error),
        T(test_rt_ack),
        T(test_rt_large),
        T(test_every_field_covered),
        T(test_truncated),
        T(test_bit_flips),
        T(test_random_bytes),
        T(test_concatenated),
        T(test_unknown_field),
        T(test_field_number_zero),
        T(test_oversize),
        T(test_decode_errors),
        T(test_decode_budget),
        T(test_pack_too_large),
        T(test_valid_envelope_rules),
        T(test_valid_register_rules),
        T(test_valid_welcome_heartbeat_job_rules),
        T(test_valid_weights_rules),
        T(test_valid_trajectory_rules),
        T(test_valid_segment_query_rules),
        T(test_valid_label_rules),
        T(test_valid_labeled_batch_rules),
        T(test_valid_status_misc_rules),
        T(test_enum_names),
        T(test_hash_and_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
