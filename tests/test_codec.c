/* test_codec.c - the pieces the distributed processes share, in process:
 * version 0 weights equal to learner_new()'s, weights through chunked
 * messages and back (and every way that can fail), a trajectory batch
 * through the wire and back bit for bit (time-limit ends included), answers
 * as label_t, the feedback store's deduplication and numbering, and
 * job_load_text(). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "actor.h"
#include "codec.h"
#include "job.h"
#include "learner.h"
#include "store.h"
#include "weights.h"
#include "wire.h"

static void job_for(job_t *job, const char *env) {
    char err[512];
    job_defaults(job);
    snprintf(job->env.id, sizeof job->env.id, "%s", env);
    job->run.seed = 7;
    assert_int_equal(job_validate(job, err, sizeof err), 0);
}

/* Version 0 is never sent: every process must build it bit for bit. */
static void test_initial_weights_match_learner(void **state) {
    (void)state;
    const char *envs[] = {"CartPole-v1", "Pendulum-v1"};
    for (int e = 0; e < 2; e++) {
        job_t job;
        job_for(&job, envs[e]);
        char err[256];
        learner_t *l = learner_new(&job, err, sizeof err);
        assert_non_null(l);
        policy_t *p = weights_policy_new(&job, err, sizeof err);
        reward_model_t *rm = weights_reward_new(&job, err, sizeof err);
        assert_non_null(p);
        assert_non_null(rm);
        assert_int_equal(p->n_params, l->policy->n_params);
        assert_memory_equal(p->params, l->policy->params, sizeof(float) * p->n_params);
        assert_memory_equal(&p->obs_stat, &l->policy->obs_stat, sizeof p->obs_stat);
        assert_int_equal(rm->n_params, l->rm->n_params);
        assert_memory_equal(rm->params, l->rm->params, sizeof(float) * rm->n_params);
        policy_destroy(&p);
        reward_destroy(&rm);
        learner_destroy(&l);
    }
    job_t job;
    job_for(&job, "CartPole-v1");
    snprintf(job.env.id, sizeof job.env.id, "NoSuchEnv-v0");
    char err[256] = "";
    assert_null(weights_policy_new(&job, err, sizeof err));
    assert_non_null(strstr(err, "NoSuchEnv-v0"));
}

/* Packs, cuts into chunks of `chunk` floats, sends each through the wire
 * (pack + decode: what a receiver gets), reassembles into out. */
static int through_wire(const weights_t *w, size_t chunk, weights_rx_t *rx, weights_t *out, char *err, size_t errlen) {
    uint64_t sum = weights_checksum(w);
    size_t n = weights_chunk_count(w, chunk);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        Rlhf__Envelope env;
        Rlhf__Weights m;
        wire_envelope_init(&env, "learner", i + 1);
        weights_chunk(w, chunk, i, sum, &m);
        env.body_case = RLHF__ENVELOPE__BODY_WEIGHTS;
        env.weights = &m;
        size_t len;
        uint8_t *buf = wire_pack(&env, &len, err, errlen);
        assert_non_null(buf);
        Rlhf__Envelope *got = wire_decode(buf, len, 0, err, errlen);
        free(buf);
        assert_non_null(got);
        rc = weights_rx_add(rx, got->weights, out, err, errlen);
        wire_free(&got);
        if (rc < 0) return rc;
        assert_int_equal(rc, i + 1 == n);
    }
    return rc;
}

static void test_weights_round_trip(void **state) {
    (void)state;
    job_t job;
    job_for(&job, "CartPole-v1");
    char err[512];
    policy_t *a = weights_policy_new(&job, err, sizeof err), *b = weights_policy_new(&job, err, sizeof err);
    for (size_t i = 0; i < a->n_params; i++) a->params[i] = (float)i * 1e-3f - 1.0f;
    float obs[4 * 3] = {1, 2, 3, 4, -1, 0.5f, 2, 8, 0, 0, 1, 1};
    runstat_update(&a->obs_stat, obs, 3);
    weights_t w = {0}, got = {0};
    weights_pack_policy(&w, &job, a, 17);
    assert_int_equal(w.n, a->n_params + 2 * 4 + 1);
    assert_non_null(strstr(w.arch, "policy CartPole-v1 obs 4 discrete 2 mlp 64,64 tanh"));
    weights_rx_t rx;
    weights_rx_init(&rx);
    /* In 1000-float chunks: several messages, the last one short. */
    assert_true(weights_chunk_count(&w, 1000) > 2);
    assert_int_equal(through_wire(&w, 1000, &rx, &got, err, sizeof err), 1);
    assert_int_equal(got.version, 17);
    assert_int_equal(got.model, RLHF__MODEL_KIND__MODEL_POLICY);
    assert_int_equal(weights_unpack_policy(&got, &job, b, err, sizeof err), 0);
    assert_memory_equal(a->params, b->params, sizeof(float) * a->n_params);
    for (int j = 0; j < 4; j++) {
        assert_true(fabs(a->obs_stat.mean[j] - b->obs_stat.mean[j]) < 1e-6 * (1 + fabs(a->obs_stat.mean[j])));
        assert_true(fabs(a->obs_stat.var[j] - b->obs_stat.var[j]) < 1e-6 * (1 + fabs(a->obs_stat.var[j])));
    }
    /* One chunk (the default size) works too. */
    assert_int_equal(weights_chunk_count(&w, 0), 1);
    assert_int_equal(through_wire(&w, 0, &rx, &got, err, sizeof err), 1);

    /* A receiver whose job builds another network refuses, saying why. */
    job_t other = job;
    other.policy.hidden[1] = 32;
    policy_t *c = weights_policy_new(&other, err, sizeof err);
    assert_int_equal(weights_unpack_policy(&got, &other, c, err, sizeof err), -1);
    assert_non_null(strstr(err, "this job's network is 'policy CartPole-v1 obs 4 discrete 2 mlp 64,32"));
    /* ... and a policy's weights are not a reward model's. */
    reward_model_t *rm = weights_reward_new(&job, err, sizeof err);
    assert_int_equal(weights_unpack_reward(&got, &job, rm, err, sizeof err), -1);
    assert_non_null(strstr(err, "weights are for the policy, expected the reward"));
    weights_t rw = {0};
    weights_pack_reward(&rw, &job, rm, 3);
    assert_int_equal(weights_unpack_reward(&rw, &job, rm, err, sizeof err), 0);

    /* Chunks out of order, from another tensor, or corrupted: refused, and
     * the next complete tensor still goes through. */
    uint64_t sum = weights_checksum(&w);
    Rlhf__Weights m;
    weights_chunk(&w, 1000, 1, sum, &m);
    assert_int_equal(weights_rx_add(&rx, &m, &got, err, sizeof err), -1);
    assert_non_null(strstr(err, "expected chunk 0"));
    weights_chunk(&w, 1000, 0, sum, &m);
    assert_int_equal(weights_rx_add(&rx, &m, &got, err, sizeof err), 0);
    weights_chunk(&w, 1000, 2, sum, &m);
    assert_int_equal(weights_rx_add(&rx, &m, &got, err, sizeof err), -1);
    assert_non_null(strstr(err, "chunk 2"));
    weights_chunk(&w, 1000, 0, sum ^ 1, &m);
    size_t n = weights_chunk_count(&w, 1000);
    assert_int_equal(weights_rx_add(&rx, &m, &got, err, sizeof err), 0);
    for (size_t i = 1; i < n; i++) {
        weights_chunk(&w, 1000, i, sum ^ 1, &m);
        int rc = weights_rx_add(&rx, &m, &got, err, sizeof err);
        assert_int_equal(rc, i + 1 == n ? -1 : 0);
    }
    assert_non_null(strstr(err, "does not match the data"));
    assert_int_equal(through_wire(&w, 1000, &rx, &got, err, sizeof err), 1);

    weights_rx_free(&rx);
    weights_free(&w);
    weights_free(&rw);
    weights_free(&got);
    reward_destroy(&rm);
    policy_destroy(&a);
    policy_destroy(&b);
    policy_destroy(&c);
}

/* MountainCar never terminates under a random policy and ends at 200
 * steps: a 256-step batch has time-limit ends (final observations). */
static void test_batch_round_trip(void **state) {
    (void)state;
    const char *envs[] = {"MountainCar-v0", "CartPole-v1", "Pendulum-v1"};
    for (int e = 0; e < 3; e++) {
        job_t job;
        job_for(&job, envs[e]);
        char err[512];
        int T = 256, N = 3;
        actor_t *a = actor_new(job.env.id, N, 11, err, sizeof err);
        policy_t *p = weights_policy_new(&job, err, sizeof err);
        const env_class_t *cls = actor_env_class(a);
        int ad = cls->act.discrete ? 1 : cls->act.n;
        traj_t *b = traj_new(T, N, cls->obs_dim, ad), *c = traj_new(T, N, cls->obs_dim, ad);
        /* Statistics that make normalisation visible. */
        float obs[64];
        for (int i = 0; i < 64; i++) obs[i] = (float)(i % 7) - 2.5f;
        runstat_update(&p->obs_stat, obs, 64 / cls->obs_dim);
        rng_t rng;
        rng_seed(&rng, 3);
        actor_run(a, p, &rng, b);
        b->policy_version = 5;
        int truncs = 0, terms = 0;
        for (int k = 0; k < T * N; k++) truncs += b->done[k] && !b->terminated[k], terms += b->terminated[k];
        if (e == 0) assert_true(truncs >= N); /* every env hit the 200-step limit */
        if (e == 1) assert_true(terms > 0);
        codec_batch_t cb = {0};
        codec_batch_from_traj(&cb, b, "w1", 9, job.env.id);
        Rlhf__Envelope env;
        wire_envelope_init(&env, "w1", 1);
        env.body_case = RLHF__ENVELOPE__BODY_TRAJECTORY_BATCH;
        env.trajectory_batch = &cb.msg;
        size_t len;
        uint8_t *buf = wire_pack(&env, &len, err, sizeof err);
        if (!buf) fail_msg("%s", err);
        Rlhf__Envelope *got = wire_decode(buf, len, 0, err, sizeof err);
        free(buf);
        assert_non_null(got);
        assert_int_equal(got->trajectory_batch->n_final_obs_norm, (size_t)truncs * cls->obs_dim);
        /* ends: one byte per step, how it ended. */
        const ProtobufCBinaryData *ends = &got->trajectory_batch->ends;
        assert_true(got->trajectory_batch->has_ends);
        assert_int_equal(ends->len, (size_t)T * N);
        for (int k = 0; k < T * N; k++)
            assert_int_equal(ends->data[k], !b->done[k]        ? WIRE_END_RUNNING
                                            : b->terminated[k] ? WIRE_END_TERMINATED
                                                               : WIRE_END_TRUNCATED);
        assert_int_equal(codec_batch_to_traj(got->trajectory_batch, job.env.id, c, 1, err, sizeof err), 0);
        size_t tn = (size_t)T * N, od = (size_t)cls->obs_dim;
        assert_memory_equal(b->obs, c->obs, sizeof(float) * tn * od);
        assert_memory_equal(b->obsn, c->obsn, sizeof(float) * tn * od);
        assert_memory_equal(b->act, c->act, sizeof(float) * tn * ad);
        assert_memory_equal(b->logp, c->logp, sizeof(float) * tn);
        assert_memory_equal(b->true_r, c->true_r, sizeof(float) * tn);
        assert_memory_equal(b->done, c->done, tn);
        assert_memory_equal(b->terminated, c->terminated, tn);
        assert_memory_equal(b->final_obsn, c->final_obsn, sizeof(float) * tn * od);
        assert_memory_equal(b->last_obsn, c->last_obsn, sizeof(float) * N * od);
        assert_int_equal(c->policy_version, 5);
        assert_int_equal(c->episodes, b->episodes);
        assert_true(c->return_sum == b->return_sum);
        /* The coordinator's copy-free view reads the same ends. */
        {
            uint8_t *vd = malloc((size_t)T * N), *vt = malloc((size_t)T * N);
            traj_t view;
            assert_int_equal(codec_batch_view(got->trajectory_batch, job.env.id, T, N, cls->obs_dim, ad, vd, vt, &view,
                                              err, sizeof err),
                             0);
            assert_memory_equal(b->done, vd, (size_t)T * N);
            assert_memory_equal(b->terminated, vt, (size_t)T * N);
            assert_memory_equal(b->obs, view.obs, sizeof(float) * (size_t)T * N * cls->obs_dim);
            free(vd), free(vt);
        }
        /* Checked against the receiver's job: another shape or environment is refused. */
        traj_t *small = traj_new(T / 2, N, cls->obs_dim, ad);
        assert_int_equal(codec_batch_to_traj(got->trajectory_batch, job.env.id, small, 1, err, sizeof err), -1);
        assert_non_null(strstr(err, "the job's is 128 x 3"));
        assert_int_equal(codec_batch_to_traj(got->trajectory_batch, "Acrobot-v1", c, 1, err, sizeof err), -1);
        assert_non_null(strstr(err, "the job runs Acrobot-v1"));
        /* Without the normalised views it serves the episode ring, not a learner. */
        got->trajectory_batch->n_obs_norm = 0;
        assert_int_equal(codec_batch_to_traj(got->trajectory_batch, job.env.id, c, 1, err, sizeof err), -1);
        assert_int_equal(codec_batch_to_traj(got->trajectory_batch, job.env.id, c, 0, err, sizeof err), 0);
        wire_free(&got);
        codec_batch_free(&cb);
        traj_destroy(&small);
        traj_destroy(&b);
        traj_destroy(&c);
        policy_destroy(&p);
        actor_destroy(&a);
    }
}

static void test_labels(void **state) {
    (void)state;
    uint64_t ids[3] = {11, 12, 13};
    int idx[3] = {4, 5, 6};
    Rlhf__Query q;
    rlhf__query__init(&q);
    q.has_id = 1, q.id = 100;
    q.has_kind = 1, q.kind = RLHF__QUERY_KIND__QUERY_PAIR;
    q.n_segment_ids = 2, q.segment_ids = ids;
    Rlhf__Label l;
    rlhf__label__init(&l);
    l.has_kind = 1, l.kind = RLHF__QUERY_KIND__QUERY_PAIR;
    l.has_preference = 1, l.preference = RLHF__PREFERENCE__PREF_RIGHT;
    label_t out;
    char err[256];
    assert_int_equal(codec_label(&q, &l, idx, &out, err, sizeof err), 0);
    assert_int_equal(out.kind, QUERY_PAIR);
    assert_int_equal(out.seg[0], 4);
    assert_int_equal(out.seg[1], 5);
    assert_true(out.pref == 0.0f);
    l.preference = RLHF__PREFERENCE__PREF_EQUAL;
    assert_int_equal(codec_label(&q, &l, idx, &out, err, sizeof err), 0);
    assert_true(out.pref == 0.5f);
    l.preference = RLHF__PREFERENCE__PREF_CANT_TELL;
    assert_int_equal(codec_label(&q, &l, idx, &out, err, sizeof err), 1);
    /* A ranking: positions best first become segment indices best first. */
    q.kind = RLHF__QUERY_KIND__QUERY_RANKING, q.n_segment_ids = 3, q.has_k = 1, q.k = 3;
    uint32_t rank[3] = {2, 0, 1};
    rlhf__label__init(&l);
    l.has_kind = 1, l.kind = RLHF__QUERY_KIND__QUERY_RANKING;
    l.n_ranking = 3, l.ranking = rank;
    assert_int_equal(codec_label(&q, &l, idx, &out, err, sizeof err), 0);
    assert_int_equal(out.k, 3);
    assert_int_equal(out.seg[0], 6);
    assert_int_equal(out.seg[1], 4);
    assert_int_equal(out.seg[2], 5);
    l.n_ranking = 2;
    assert_int_equal(codec_label(&q, &l, idx, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "ranking of 2 positions for query 100 of k = 3"));
    l.n_ranking = 0, l.has_cant_tell = 1, l.cant_tell = 1;
    assert_int_equal(codec_label(&q, &l, idx, &out, err, sizeof err), 1);
    /* A rating label for a ranking query. */
    rlhf__label__init(&l);
    l.has_kind = 1, l.kind = RLHF__QUERY_KIND__QUERY_RATING, l.has_rating = 1, l.rating = 6;
    assert_int_equal(codec_label(&q, &l, idx, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "a rating label for ranking query 100"));
    q.kind = RLHF__QUERY_KIND__QUERY_RATING, q.n_segment_ids = 1, q.has_k = 0;
    assert_int_equal(codec_label(&q, &l, idx, &out, err, sizeof err), 0);
    assert_int_equal(out.rating, 6);
    assert_int_equal(out.seg[0], 4);
}

static void test_store(void **state) {
    (void)state;
    char serr[256];
    store_t *s = store_open(NULL, "CartPole-v1", 3, 4, 1, 0, "", serr, sizeof serr);
    assert_non_null(s);
    float obs[12], act[3] = {1, 0, 1}, r[3] = {1, 1, 0};
    uint8_t ab[3] = {0, 0, 1};
    for (int i = 0; i < 12; i++) obs[i] = (float)i;
    uint64_t s1 = store_put_segment(s, obs, act, r, ab, NULL, "w", 0, serr, sizeof serr),
             s2 = store_put_segment(s, obs, act, r, ab, NULL, "w", 0, serr, sizeof serr);
    assert_true(s1 > 1000000000000000ULL); /* the clock: ids are not reused after a restart */
    assert_int_equal(s2, s1 + 1);
    Rlhf__Segment seg;
    assert_int_equal(store_segment(s, s2, &seg), 0);
    assert_int_equal(seg.id, s2);
    assert_int_equal(seg.n_obs, 12);
    assert_true(seg.obs[5] == 5.0f);
    assert_true(seg.absorbing[2] && !seg.absorbing[0]);
    assert_int_equal(store_segment(s, s2 + 1, &seg), -1);
    store_query_t q = {.kind = RLHF__QUERY_KIND__QUERY_PAIR, .k = 2, .seg_ids = {s1, s2}, .score = 0.5f};
    uint64_t qid = store_put_query(s, &q, serr, sizeof serr);
    assert_non_null(store_query(s, qid));
    assert_int_equal(store_query(s, qid)->seg_ids[1], s2);
    assert_null(store_query(s, qid + 1));

    store_set_label_base(s, 40);
    Rlhf__Label l;
    rlhf__label__init(&l);
    l.has_query_id = 1, l.query_id = qid;
    l.labeler_id = "lab";
    l.has_kind = 1, l.kind = RLHF__QUERY_KIND__QUERY_PAIR;
    l.has_preference = 1, l.preference = RLHF__PREFERENCE__PREF_LEFT;
    char key[64];
    uint64_t id = 0, first = 0;
    /* Enough labels to grow the hash table several times. */
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof key, "lab-%d", i);
        l.idempotency_id = key;
        assert_int_equal(store_put_label(s, &l, "lab", i == 7, (uint64_t)i + 1, 0, &id, serr, sizeof serr), STORE_STORED);
        assert_int_equal(id, 41 + (uint64_t)i);
        if (i == 0) first = id;
    }
    l.idempotency_id = "lab-0";
    assert_int_equal(store_put_label(s, &l, "lab", 0, 0, 0, &id, serr, sizeof serr), STORE_DUPLICATE);
    assert_int_equal(id, first);
    assert_int_equal(store_label_count(s), 3000);
    assert_non_null(store_find_label(s, "lab-2999"));
    assert_null(store_find_label(s, "lab-3000"));
    store_label_t sl = store_label_at(s, 7);
    assert_int_equal(sl.label->id, 48);
    assert_true(sl.round_done);
    assert_int_equal(sl.answered, 8);
    assert_string_equal(sl.label->idempotency_id, "lab-7");
    assert_int_equal(store_label_after(s, 0), 0);
    assert_int_equal(store_label_after(s, 40), 0);
    assert_int_equal(store_label_after(s, 45), 5);
    assert_int_equal(store_label_after(s, 99999), 3000);
    store_destroy(&s);
    assert_null(s);
}

static void test_job_text(void **state) {
    (void)state;
    job_t a, b;
    job_for(&a, "Pendulum-v1");
    a.coordinator.max_policy_lag = 9;
    char *text = job_write_text(&a);
    job_defaults(&b);
    char err[512];
    assert_int_equal(job_load_text(&b, text, "JobConfig", err, sizeof err), 0);
    assert_memory_equal(&a, &b, sizeof a);
    free(text);
    assert_int_equal(job_load_text(&b, "[ppo]\nlr = x\n", "JobConfig", err, sizeof err), -1);
    assert_string_equal(err, "JobConfig:2: [ppo] lr: expected a number > 0, got 'x'");
    assert_int_equal(job_load_text(&b, "", "JobConfig", err, sizeof err), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_initial_weights_match_learner),
        cmocka_unit_test(test_weights_round_trip),
        cmocka_unit_test(test_batch_round_trip),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_job_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
