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
 * packed, valid messages into <dir> and exits: every body type, and for
 * each the variants that set every field the schema has (each peer kind's
 * Register, a TrajectoryBatch with and without the normalised views,
 * "can't tell" labels, ...), so the corpus starts from the schema's own
 * shapes and follows it when it changes (run.sh does this before every
 * run). When a field is added to proto/rlhf.proto, set it in a seed here. */
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

/* ---- seeds: small valid messages of every body type and shape ---------- */

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
/* TrajectoryBatch.ends of 6 steps: one of each kind, two truncated. */
static uint8_t ENDS[6] = {WIRE_END_TRUNCATED, WIRE_END_RUNNING, WIRE_END_TERMINATED,
                          WIRE_END_TRUNCATED, WIRE_END_RUNNING, WIRE_END_RUNNING};

static void seg_init(Rlhf__Segment *s, uint64_t id) {
    rlhf__segment__init(s);
    s->has_id = 1, s->id = id;
    s->env_id = "CartPole-v1";
    s->has_source_policy_version = 1, s->source_policy_version = 3;
    s->source_worker = "rollout-1";
    s->has_source_batch = 1, s->source_batch = 1;
    s->has_env_index = 1, s->env_index = 1;
    s->has_start_step = 1, s->start_step = (uint32_t)(id % 4);
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

/* "Can't tell": no answer (a pair may say PREF_CANT_TELL as well). */
static void label_cant_tell(Rlhf__Label *l, Rlhf__QueryKind kind) {
    label_init(l, kind);
    l->has_rating = 0, l->n_ranking = 0, l->ranking = NULL;
    if (kind == RLHF__QUERY_KIND__QUERY_PAIR) l->preference = RLHF__PREFERENCE__PREF_CANT_TELL;
    l->has_cant_tell = 1, l->cant_tell = 1;
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

    /* A learner coming back: every Register field, its resume cursors set. */
    static char *features[] = {"render"};
    Rlhf__Capabilities lcaps;
    rlhf__capabilities__init(&lcaps);
    lcaps.has_n_ranks = 1, lcaps.n_ranks = 2, lcaps.has_max_inflight = 1, lcaps.max_inflight = 4;
    lcaps.has_max_message_bytes = 1, lcaps.max_message_bytes = 1 << 20;
    lcaps.n_features = 1, lcaps.features = features;
    Rlhf__Register lreg;
    rlhf__register__init(&lreg);
    lreg.has_kind = 1, lreg.kind = RLHF__PEER_KIND__PEER_LEARNER;
    lreg.peer_id = "learner", lreg.has_incarnation = 1, lreg.incarnation = 78, lreg.caps = &lcaps;
    lreg.host = "node-1", lreg.has_pid = 1, lreg.pid = 4242;
    lreg.has_config_hash = 1, lreg.config_hash = wire_hash64(ini, strlen(ini));
    lreg.has_label_cursor = 1, lreg.label_cursor = 9;
    lreg.has_env_steps = 1, lreg.env_steps = 6000;
    lreg.has_labels_answered = 1, lreg.labels_answered = 12;
    wire_envelope_init(&e, "learner", 1);
    e.body_case = RLHF__ENVELOPE__BODY_REGISTER, e.register_ = &lreg;
    emit(&e);

    Rlhf__Capabilities bcaps;
    rlhf__capabilities__init(&bcaps);
    bcaps.n_query_kinds = 2, bcaps.query_kinds = kinds, bcaps.has_max_inflight = 1, bcaps.max_inflight = 2;
    Rlhf__Register breg;
    rlhf__register__init(&breg);
    breg.has_kind = 1, breg.kind = RLHF__PEER_KIND__PEER_LABELER;
    breg.peer_id = "labeler-1", breg.has_incarnation = 1, breg.incarnation = 79, breg.caps = &bcaps;
    wire_envelope_init(&e, "labeler-1", 1);
    e.body_case = RLHF__ENVELOPE__BODY_REGISTER, e.register_ = &breg;
    emit(&e);

    Rlhf__JobConfig job;
    rlhf__job_config__init(&job);
    job.ini = (char *)ini, job.has_hash = 1, job.hash = wire_hash64(ini, strlen(ini));
    Rlhf__Welcome wel;
    rlhf__welcome__init(&wel);
    wel.peer_id = "rollout-1", wel.has_incarnation = 1, wel.incarnation = 77, wel.run_id = "run-1";
    wel.job = &job, wel.has_heartbeat_interval_ms = 1, wel.heartbeat_interval_ms = 1000;
    wel.has_heartbeat_liveness = 1, wel.heartbeat_liveness = 3, wel.has_seed = 1, wel.seed = 42;
    wel.has_worker_index = 1, wel.worker_index = 1;
    wel.has_policy_version = 1, wel.policy_version = 2, wel.has_reward_version = 1, wel.reward_version = 1;
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
    hb.has_policy_version = 1, hb.policy_version = 2, hb.has_reward_version = 1, hb.reward_version = 1;
    hb.has_label_cursor = 1, hb.label_cursor = 9, hb.has_peer_seq = 1, hb.peer_seq = 17;
    wire_envelope_init(&e, "learner", 2);
    e.body_case = RLHF__ENVELOPE__BODY_HEARTBEAT, e.heartbeat = &hb;
    emit(&e);
    wire_envelope_init(&e, "coordinator", 1);

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
    tb.has_ends = 1, tb.ends.len = 6, tb.ends.data = ENDS;
    tb.n_render_states = 12, tb.render_states = F, tb.n_last_obs = 8, tb.last_obs = F;
    tb.n_last_values = 2, tb.last_values = F;
    wire_envelope_init(&e, "rollout-1", 2);
    e.body_case = RLHF__ENVELOPE__BODY_TRAJECTORY_BATCH, e.trajectory_batch = &tb;
    emit(&e);
    /* With the normalised views a learner trains on and the episode tally.
     * ENDS truncates 2 of the 6 steps, so final_obs_norm holds
     * 2*obs_dim floats. */
    tb.n_obs_norm = 24, tb.obs_norm = F, tb.n_final_obs_norm = 8, tb.final_obs_norm = F;
    tb.n_last_obs_norm = 8, tb.last_obs_norm = F;
    tb.has_episodes = 1, tb.episodes = 2, tb.has_return_sum = 1, tb.return_sum = 21.5;
    wire_envelope_init(&e, "rollout-1", 3);
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
    for (int k = 1; k <= 3; k++) {
        label_cant_tell(&lab, (Rlhf__QueryKind)k);
        wire_envelope_init(&e, "labeler-1", 5);
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
    ack.has_status = 1, ack.status = RLHF__ACK_STATUS__ACK_REJECTED, ack.has_label_id = 0, ack.label_id = 0;
    ack.detail = "ranking of 2 positions for query 101 of k = 3";
    emit(&e);

    /* A pair over 11, 12, a ranking over 11, 12, 13, a rating of 13 and a
     * can't-tell ranking over 11, 12, 13 that ends its round; the labels
     * carry their stored ids, as the coordinator forwards them. */
    Rlhf__Query qs[4];
    Rlhf__Label ls[4];
    Rlhf__LabeledItem items[4], *itemp[4];
    query_init(&qs[0], RLHF__QUERY_KIND__QUERY_PAIR, ids, 2);
    query_init(&qs[1], RLHF__QUERY_KIND__QUERY_RANKING, ids, 3);
    query_init(&qs[2], RLHF__QUERY_KIND__QUERY_RATING, ids + 2, 1);
    query_init(&qs[3], RLHF__QUERY_KIND__QUERY_RANKING, ids, 3);
    qs[3].id = 104;
    label_init(&ls[0], RLHF__QUERY_KIND__QUERY_PAIR);
    label_init(&ls[1], RLHF__QUERY_KIND__QUERY_RANKING);
    label_init(&ls[2], RLHF__QUERY_KIND__QUERY_RATING);
    label_cant_tell(&ls[3], RLHF__QUERY_KIND__QUERY_RANKING);
    ls[3].query_id = 104;
    for (int i = 0; i < 4; i++) {
        rlhf__labeled_item__init(&items[i]);
        items[i].query = &qs[i], items[i].label = &ls[i], itemp[i] = &items[i];
        ls[i].has_id = 1, ls[i].id = 20 + (uint64_t)i;
    }
    items[3].has_round_done = 1, items[3].round_done = 1;
    Rlhf__LabeledBatch lb;
    rlhf__labeled_batch__init(&lb);
    lb.has_batch_seq = 1, lb.batch_seq = 1, lb.n_items = 4, lb.items = itemp;
    lb.n_segments = 3, lb.segments = segp, lb.has_total_labels = 1, lb.total_labels = 4;
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
    st.has_policy_version = 1, st.policy_version = 2, st.has_reward_version = 1, st.reward_version = 1;
    e.body_case = RLHF__ENVELOPE__BODY_STATUS, e.status = &st;
    emit(&e);
    Rlhf__Status req;
    rlhf__status__init(&req);
    req.has_request = 1, req.request = 1;
    e.body_case = RLHF__ENVELOPE__BODY_STATUS, e.status = &req;
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
