/* fuzz_wire.c - libFuzzer target over what every process does with bytes
 * from the network: wire_unpack() (size check, protobuf-c decode) then
 * wire_validate(). Built and run by tests/fuzz/run.sh (clang,
 * -fsanitize=fuzzer,address,undefined).
 *
 * Besides "no crash, no leak, no undefined behaviour", it checks:
 *  - a rejected input always comes with a reason (err is not empty);
 *  - a message that validates packs again (wire_pack validates too), and
 *    pack -> decode -> pack is stable byte for byte.
 *
 * Seeds: with FUZZ_WRITE_SEEDS=<dir> in the environment the target writes
 * one packed, valid message per body type into <dir> and exits, so the
 * corpus starts from the schema's own shapes and follows it when it changes
 * (run.sh does this before every run). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* The limit a receiver would use; libFuzzer's inputs stay far below it, so
 * the size check itself is covered by tests/test_proto.c. */
#define FUZZ_MAX_MESSAGE ((size_t)1 << 20)

static void check(int ok, const char *what, const char *err) {
    if (ok) return;
    fprintf(stderr, "fuzz_wire: invariant broken: %s (%s)\n", what, err ? err : "");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512] = "";
    Rlhf__Envelope *env = wire_unpack(data, size, FUZZ_MAX_MESSAGE, err, sizeof err);
    if (!env) {
        check(err[0] != '\0', "unpack failed without a reason", NULL);
        return 0;
    }
    err[0] = '\0';
    if (wire_validate(env, err, sizeof err) != 0) {
        check(err[0] != '\0', "validation failed without a reason", NULL);
        wire_free(&env);
        return 0;
    }
    check(wire_body_name(env->body_case) != NULL, "a valid message has a named body", NULL);
    size_t n1 = 0, n2 = 0;
    uint8_t *b1 = wire_pack(env, &n1, err, sizeof err);
    check(b1 != NULL, "a valid message packs", err);
    Rlhf__Envelope *again = wire_decode(b1, n1, FUZZ_MAX_MESSAGE, err, sizeof err);
    check(again != NULL, "a packed valid message decodes and validates", err);
    uint8_t *b2 = wire_pack(again, &n2, err, sizeof err);
    check(b2 != NULL && n1 == n2 && memcmp(b1, b2, n1) == 0, "pack -> decode -> pack is stable", NULL);
    free(b1);
    free(b2);
    wire_free(&again);
    wire_free(&env);
    return 0;
}

/* ---- seeds: one small valid message per body type ---------------------- */

static const char *seed_dir;
static int n_seeds;

static void emit(Rlhf__Envelope *env) {
    char err[512], path[4096];
    size_t n;
    uint8_t *buf = wire_pack(env, &n, err, sizeof err);
    if (!buf) {
        fprintf(stderr, "fuzz_wire: seed %s is invalid: %s\n", wire_body_name(env->body_case), err);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/seed-%02d-%s", seed_dir, n_seeds++, wire_body_name(env->body_case));
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "fuzz_wire: cannot write %s\n", path);
        exit(1);
    }
    free(buf);
}

static float F[64] = {0.5f, -1.25f, 3.0f, 0.0f, -0.0f, 1e-3f, 7.5f, -2.0f};
static protobuf_c_boolean B[64] = {1, 0, 0, 1};

static void seg_init(Rlhf__Segment *s, uint64_t id) {
    rlhf__segment__init(s);
    s->has_id = 1, s->id = id;
    s->env_id = "CartPole-v1";
    s->has_source_policy_version = 1, s->source_policy_version = 3;
    s->source_worker = "rollout-1";
    s->has_length = 1, s->length = 2;
    s->has_obs_dim = 1, s->obs_dim = 4;
    s->has_act_dim = 1, s->act_dim = 1;
    s->has_render_dim = 1, s->render_dim = 2;
    s->n_obs = 8, s->obs = F;
    s->n_actions = 2, s->actions = F;
    s->n_true_rewards = 2, s->true_rewards = F;
    s->n_absorbing = 2, s->absorbing = B;
    s->n_render_states = 4, s->render_states = F;
}

static void query_init(Rlhf__Query *q, Rlhf__QueryKind kind, uint64_t *ids, size_t n) {
    rlhf__query__init(q);
    q->has_id = 1, q->id = 100 + (uint64_t)kind;
    q->has_kind = 1, q->kind = kind;
    q->n_segment_ids = n, q->segment_ids = ids;
    if (kind == RLHF__QUERY_KIND__QUERY_RANKING) q->has_k = 1, q->k = (uint32_t)n;
    q->has_selection_score = 1, q->selection_score = 0.5f;
    q->has_lease_deadline_us = 1, q->lease_deadline_us = 1700000000000000ULL;
}

static uint32_t RANK[3] = {2, 0, 1};

static void label_init(Rlhf__Label *l, Rlhf__QueryKind kind) {
    rlhf__label__init(l);
    l->has_query_id = 1, l->query_id = 100 + (uint64_t)kind;
    l->labeler_id = "labeler-1";
    l->idempotency_id = "0b7e1d9c-1";
    l->has_kind = 1, l->kind = kind;
    if (kind == RLHF__QUERY_KIND__QUERY_PAIR) l->has_preference = 1, l->preference = RLHF__PREFERENCE__PREF_EQUAL;
    if (kind == RLHF__QUERY_KIND__QUERY_RATING) l->has_rating = 1, l->rating = 7;
    if (kind == RLHF__QUERY_KIND__QUERY_RANKING) l->n_ranking = 3, l->ranking = RANK;
    l->has_shown_at_us = 1, l->shown_at_us = 1700000000000000ULL;
    l->has_answered_at_us = 1, l->answered_at_us = 1700000003000000ULL;
    l->has_time_spent_ms = 1, l->time_spent_ms = 2500;
}

static void write_seeds(void) {
    static const char *ini = "[env]\nid = CartPole-v1\n";
    static char *env_ids[] = {"CartPole-v1"};
    static Rlhf__QueryKind kinds[] = {RLHF__QUERY_KIND__QUERY_PAIR, RLHF__QUERY_KIND__QUERY_RATING};
    Rlhf__Envelope e;

    Rlhf__Capabilities caps;
    rlhf__capabilities__init(&caps);
    caps.has_n_envs = 1, caps.n_envs = 4, caps.n_env_ids = 1, caps.env_ids = env_ids;
    caps.n_query_kinds = 2, caps.query_kinds = kinds;
    Rlhf__Register reg;
    rlhf__register__init(&reg);
    reg.has_kind = 1, reg.kind = RLHF__PEER_KIND__PEER_ROLLOUT;
    reg.peer_id = "rollout-1", reg.has_incarnation = 1, reg.incarnation = 77, reg.caps = &caps;
    wire_envelope_init(&e, "rollout-1", 1);
    e.body_case = RLHF__ENVELOPE__BODY_REGISTER, e.register_ = &reg;
    emit(&e);

    Rlhf__JobConfig job;
    rlhf__job_config__init(&job);
    job.ini = (char *)ini, job.has_hash = 1, job.hash = wire_hash64(ini, strlen(ini));
    Rlhf__Welcome wel;
    rlhf__welcome__init(&wel);
    wel.peer_id = "rollout-1", wel.has_incarnation = 1, wel.incarnation = 77, wel.run_id = "run-1";
    wel.job = &job, wel.has_heartbeat_interval_ms = 1, wel.heartbeat_interval_ms = 1000;
    wel.has_heartbeat_liveness = 1, wel.heartbeat_liveness = 3, wel.has_seed = 1, wel.seed = 42;
    wire_envelope_init(&e, "coordinator", 1);
    e.body_case = RLHF__ENVELOPE__BODY_WELCOME, e.welcome = &wel;
    emit(&e);
    e.body_case = RLHF__ENVELOPE__BODY_JOB_CONFIG, e.job_config = &job;
    emit(&e);

    Rlhf__Heartbeat hb;
    rlhf__heartbeat__init(&hb);
    hb.has_seq = 1, hb.seq = 5, hb.has_load = 1, hb.load = 0.5f, hb.has_inflight = 1, hb.inflight = 1;
    e.body_case = RLHF__ENVELOPE__BODY_HEARTBEAT, e.heartbeat = &hb;
    emit(&e);

    Rlhf__Weights w;
    rlhf__weights__init(&w);
    w.has_model = 1, w.model = RLHF__MODEL_KIND__MODEL_POLICY, w.has_version = 1, w.version = 2;
    w.arch = "mlp 4-2", w.has_total_len = 1, w.total_len = 8, w.has_chunk_count = 1, w.chunk_count = 1;
    w.has_chunk_index = 1, w.has_offset = 1, w.n_data = 8, w.data = F;
    w.has_checksum = 1, w.checksum = wire_hash64(F, 8 * sizeof(float));
    e.body_case = RLHF__ENVELOPE__BODY_WEIGHTS, e.weights = &w;
    emit(&e);

    Rlhf__TrajectoryBatch tb;
    rlhf__trajectory_batch__init(&tb);
    tb.worker_id = "rollout-1", tb.has_batch_seq = 1, tb.batch_seq = 1, tb.has_policy_version = 1;
    tb.env_id = "CartPole-v1", tb.has_n_envs = 1, tb.n_envs = 2, tb.has_steps = 1, tb.steps = 3;
    tb.has_obs_dim = 1, tb.obs_dim = 4, tb.has_act_dim = 1, tb.act_dim = 1, tb.has_render_dim = 1, tb.render_dim = 2;
    tb.n_obs = 24, tb.obs = F, tb.n_actions = 6, tb.actions = F, tb.n_logp = 6, tb.logp = F;
    tb.n_values = 6, tb.values = F, tb.n_true_rewards = 6, tb.true_rewards = F;
    tb.n_dones = 6, tb.dones = B, tb.n_truncated = 6, tb.truncated = B;
    tb.n_render_states = 12, tb.render_states = F, tb.n_last_obs = 8, tb.last_obs = F;
    tb.n_last_values = 2, tb.last_values = F;
    wire_envelope_init(&e, "rollout-1", 2);
    e.body_case = RLHF__ENVELOPE__BODY_TRAJECTORY_BATCH, e.trajectory_batch = &tb;
    emit(&e);

    Rlhf__Segment segs[3], *segp[3];
    uint64_t ids[3] = {11, 12, 13};
    for (int i = 0; i < 3; i++) seg_init(&segs[i], ids[i]), segp[i] = &segs[i];
    wire_envelope_init(&e, "coordinator", 3);
    e.body_case = RLHF__ENVELOPE__BODY_SEGMENT, e.segment = &segs[0];
    emit(&e);

    Rlhf__Query q;
    query_init(&q, RLHF__QUERY_KIND__QUERY_RANKING, ids, 3);
    q.n_segments = 3, q.segments = segp;
    e.body_case = RLHF__ENVELOPE__BODY_QUERY, e.query = &q;
    emit(&e);

    Rlhf__Label lab;
    for (int k = 1; k <= 3; k++) {
        label_init(&lab, (Rlhf__QueryKind)k);
        wire_envelope_init(&e, "labeler-1", 4);
        e.body_case = RLHF__ENVELOPE__BODY_LABEL, e.label = &lab;
        emit(&e);
    }

    Rlhf__LabelAck ack;
    rlhf__label_ack__init(&ack);
    ack.has_query_id = 1, ack.query_id = 101, ack.idempotency_id = "0b7e1d9c-1";
    ack.has_status = 1, ack.status = RLHF__ACK_STATUS__ACK_STORED, ack.has_label_id = 1, ack.label_id = 9;
    wire_envelope_init(&e, "coordinator", 5);
    e.body_case = RLHF__ENVELOPE__BODY_LABEL_ACK, e.label_ack = &ack;
    emit(&e);

    /* A pair over 11, 12 and a ranking over 11, 12, 13. */
    Rlhf__Query qs[2];
    Rlhf__Label ls[2];
    Rlhf__LabeledItem items[2], *itemp[2];
    query_init(&qs[0], RLHF__QUERY_KIND__QUERY_PAIR, ids, 2);
    query_init(&qs[1], RLHF__QUERY_KIND__QUERY_RANKING, ids, 3);
    label_init(&ls[0], RLHF__QUERY_KIND__QUERY_PAIR);
    label_init(&ls[1], RLHF__QUERY_KIND__QUERY_RANKING);
    for (int i = 0; i < 2; i++) {
        rlhf__labeled_item__init(&items[i]);
        items[i].query = &qs[i], items[i].label = &ls[i], itemp[i] = &items[i];
    }
    Rlhf__LabeledBatch lb;
    rlhf__labeled_batch__init(&lb);
    lb.has_batch_seq = 1, lb.batch_seq = 1, lb.n_items = 2, lb.items = itemp;
    lb.n_segments = 3, lb.segments = segp, lb.has_total_labels = 1, lb.total_labels = 2;
    e.body_case = RLHF__ENVELOPE__BODY_LABELED_BATCH, e.labeled_batch = &lb;
    emit(&e);

    Rlhf__Metric met, *metp = &met;
    rlhf__metric__init(&met);
    met.name = "reward.loss", met.has_value = 1, met.value = 0.69;
    Rlhf__Counter cnt, *cntp = &cnt;
    rlhf__counter__init(&cnt);
    cnt.name = "labels.stored", cnt.has_value = 1, cnt.value = 2;
    Rlhf__Status st;
    rlhf__status__init(&st);
    st.phase = "rl", st.n_metrics = 1, st.metrics = &metp, st.n_counters = 1, st.counters = &cntp;
    e.body_case = RLHF__ENVELOPE__BODY_STATUS, e.status = &st;
    emit(&e);

    Rlhf__Shutdown sd;
    rlhf__shutdown__init(&sd);
    sd.reason = "done", sd.has_grace_ms = 1, sd.grace_ms = 100;
    e.body_case = RLHF__ENVELOPE__BODY_SHUTDOWN, e.shutdown = &sd;
    emit(&e);

    Rlhf__Error er;
    rlhf__error__init(&er);
    er.has_code = 1, er.code = RLHF__ERROR_CODE__ERR_BAD_MESSAGE, er.text = "label.rating: 9 is outside 1..7";
    e.has_in_reply_to = 1, e.in_reply_to = 4;
    e.body_case = RLHF__ENVELOPE__BODY_ERROR, e.error = &er;
    emit(&e);

    Rlhf__Ack ak;
    rlhf__ack__init(&ak);
    ak.has_seq = 1, ak.seq = 2, ak.has_credit = 1, ak.credit = 8;
    e.body_case = RLHF__ENVELOPE__BODY_ACK, e.ack = &ak;
    emit(&e);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    seed_dir = getenv("FUZZ_WRITE_SEEDS");
    if (seed_dir && *seed_dir) {
        write_seeds();
        fprintf(stderr, "fuzz_wire: wrote %d seeds to %s\n", n_seeds, seed_dir);
        exit(0);
    }
    return 0;
}
