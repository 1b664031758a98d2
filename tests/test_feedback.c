/* test_feedback.c - episodes followed across trajectory batches, segments
 * cut with the absorbing state, query selection (random and ensemble
 * disagreement, kind rotation), and the learner's copy of labelled
 * segments. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "actor.h"
#include "episodes.h"
#include "feedback.h"
#include "job.h"
#include "learner.h"
#include "query.h"
#include "reward.h"

/* A batch of one environment whose observation is the step's global index
 * t0 + t and reward 1; episodes end where ends[] says (1 terminated,
 * 2 truncated). */
static traj_t *make_batch(int T, int t0, const int *ends) {
    traj_t *b = traj_new(T, 1, 1, 1);
    for (int t = 0; t < T; t++) {
        b->obs[t] = (float)(t0 + t);
        b->act[t] = (float)((t0 + t) % 2);
        b->true_r[t] = 1.0f;
        b->done[t] = ends[t] != 0;
        b->terminated[t] = ends[t] == 1;
    }
    return b;
}

static void test_episodes_across_batches(void **state) {
    (void)state;
    episodes_t *e = episodes_new(1, 1, 100, 4);
    int ends1[6] = {0, 0, 0, 0, 0, 0}, ends2[6] = {0, 0, 1, 0, 0, 0};
    traj_t *b1 = make_batch(6, 0, ends1), *b2 = make_batch(6, 6, ends2);
    episodes_add(e, 7, b1);
    assert_int_equal(episodes_count(e), 0);     // nothing ended yet
    episodes_add(e, 7, b2);
    assert_int_equal(episodes_count(e), 1);     // steps 0..8, terminated at 8
    /* Segments of 4 from a terminated episode of 9 steps start anywhere in
     * it; steps past its end are absorbing with zero obs and reward. */
    rng_t rng;
    rng_seed(&rng, 1);
    int saw_absorbing = 0, saw_start[9] = {0};
    for (int i = 0; i < 2000; i++) {
        float obs[4], act[4], r[4];
        uint8_t ab[4];
        assert_int_equal(episodes_cut(e, 4, &rng, obs, act, r, ab), 0);
        int start = (int)obs[0];
        assert_true(start >= 0 && start <= 8);
        saw_start[start] = 1;
        for (int t = 0; t < 4; t++) {
            if (start + t <= 8) {
                assert_false(ab[t]);
                assert_true(obs[t] == (float)(start + t) && r[t] == 1.0f);
            } else {
                assert_true(ab[t]);
                assert_true(obs[t] == 0.0f && act[t] == 0.0f && r[t] == 0.0f);
                saw_absorbing = 1;
            }
        }
    }
    assert_true(saw_absorbing);
    for (int s = 0; s <= 8; s++) assert_true(saw_start[s]);
    traj_destroy(&b1);
    traj_destroy(&b2);
    episodes_destroy(&e);
    assert_null(e);
}

static void test_truncated_never_runs_past_end(void **state) {
    (void)state;
    episodes_t *e = episodes_new(1, 1, 100, 4);
    int ends[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 2};  // truncated after 10 steps
    traj_t *b = make_batch(10, 0, ends);
    episodes_add(e, 1, b);
    rng_t rng;
    rng_seed(&rng, 2);
    for (int i = 0; i < 500; i++) {
        float obs[4], act[4], r[4];
        uint8_t ab[4];
        assert_int_equal(episodes_cut(e, 4, &rng, obs, act, r, ab), 0);
        for (int t = 0; t < 4; t++) assert_false(ab[t]);
        assert_true(obs[0] <= 6.0f);
    }
    /* An episode shorter than the segment that was truncated gives none. */
    episodes_t *e2 = episodes_new(1, 1, 100, 4);
    int short_ends[3] = {0, 0, 2};
    traj_t *b2 = make_batch(3, 0, short_ends);
    episodes_add(e2, 1, b2);
    float obs[4], act[4], r[4];
    uint8_t ab[4];
    assert_int_equal(episodes_count(e2), 1);
    assert_int_equal(episodes_cut(e2, 4, &rng, obs, act, r, ab), -1);
    traj_destroy(&b);
    traj_destroy(&b2);
    episodes_destroy(&e);
    episodes_destroy(&e2);
}

static void test_sources_and_ring(void **state) {
    (void)state;
    episodes_t *e = episodes_new(1, 1, 100, 2);
    int half[4] = {0, 0, 0, 0}, end[4] = {1, 0, 0, 1};
    traj_t *a = make_batch(4, 0, half), *b = make_batch(4, 100, end);
    /* Two sources: their environments are followed separately. */
    episodes_add(e, 1, a);
    episodes_add(e, 2, b);      // source 2: episodes [100] and [101..103]
    assert_int_equal(episodes_count(e), 2);
    episodes_drop_source(e, 1); // source 1's episode in progress is forgotten
    episodes_add(e, 1, b);
    assert_int_equal(episodes_count(e), 2);     // the ring holds at most 2
    traj_destroy(&a);
    traj_destroy(&b);
    episodes_destroy(&e);
}

/* A job for the query tests: 1-dim observations, discrete actions. */
static void small_job(job_t *job) {
    job_defaults(job);
    char err[256];
    assert_int_equal(job_set(job, "feedback.segment_len=4", err, sizeof err), 0);
    assert_int_equal(job_set(job, "reward.members=4", err, sizeof err), 0);
    assert_int_equal(job_set(job, "feedback.pool_factor=8", err, sizeof err), 0);
}

static episodes_t *filled_episodes(void) {
    episodes_t *e = episodes_new(1, 1, 100, 16);
    for (int i = 0; i < 8; i++) {
        int ends[12] = {0};
        ends[11] = 1;
        traj_t *b = make_batch(12, i * 12, ends);
        episodes_add(e, 1, b);
        traj_destroy(&b);
    }
    return e;
}

static void test_query_kinds_rotate(void **state) {
    (void)state;
    job_t job;
    small_job(&job);
    char err[256];
    assert_int_equal(job_set(&job, "feedback.query=pair+rating+ranking", err, sizeof err), 0);
    assert_int_equal(job_set(&job, "feedback.rank_k=4", err, sizeof err), 0);
    episodes_t *e = filled_episodes();
    segstore_t *out = segstore_new(4, 1, 1);
    query_t q[6];
    rng_t rng;
    rng_seed(&rng, 3);
    int next = 0;
    assert_int_equal(query_make(&job, e, NULL, 6, &next, &rng, out, q), 6);
    int expect_kind[6] = {QUERY_PAIR, QUERY_RATING, QUERY_RANKING, QUERY_PAIR, QUERY_RATING, QUERY_RANKING};
    int expect_k[6] = {2, 1, 4, 2, 1, 4}, total = 0;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(q[i].kind, expect_kind[i]);
        assert_int_equal(q[i].k, expect_k[i]);
        for (int j = 0; j < q[i].k; j++) assert_true(q[i].seg[j] >= 0 && q[i].seg[j] < out->n);
        total += q[i].k;
    }
    assert_int_equal(out->n, total);
    segstore_destroy(&out);
    episodes_destroy(&e);
}

/* With disagreement, the chosen queries are those whose ensemble variance
 * is highest among the candidates: check against a brute-force score. */
static void test_disagreement_picks_the_most_uncertain(void **state) {
    (void)state;
    job_t job;
    small_job(&job);
    episodes_t *e = filled_episodes();
    env_space_t space = {.discrete = 1, .n = 2};
    rng_t rng;
    rng_seed(&rng, 4);
    reward_model_t *rm = reward_new(1, &space, &job, &rng);
    for (size_t i = 0; i < rm->n_params; i++) rm->params[i] = 0.5f * (float)rng_normal(&rng);
    segstore_t *out = segstore_new(4, 1, 1);
    query_t q[5];
    int next = 0;
    assert_int_equal(query_make(&job, e, rm, 5, &next, &rng, out, q), 5);
    for (int i = 0; i + 1 < 5; i++) assert_true(q[i].score >= q[i + 1].score);
    /* Recompute the first query's score from the chosen segments. */
    float sc[2 * 4];
    int segs[2] = {q[0].seg[0], q[0].seg[1]};
    reward_segment_scores(rm, out, segs, 2, sc);
    double m = 0, m2 = 0;
    for (int k = 0; k < 4; k++) {
        double p = 1 / (1 + exp(-(sc[k] - sc[4 + k])));
        m += p;
        m2 += p * p;
    }
    m /= 4;
    assert_true(fabs((m2 / 4 - m * m) - q[0].score) < 1e-6);
    /* Random selection scores nothing. */
    job.feedback.select = SELECT_RANDOM;
    out->n = 0;
    assert_int_equal(query_make(&job, e, rm, 3, &next, &rng, out, q), 3);
    for (int i = 0; i < 3; i++) assert_true(q[i].score == 0);
    reward_destroy(&rm);
    segstore_destroy(&out);
    episodes_destroy(&e);
}

static void test_learner_copies_labelled_segments(void **state) {
    (void)state;
    job_t job;
    small_job(&job);
    char err[256];
    learner_t *l = learner_new(&job, err, sizeof err);
    assert_non_null(l);
    segstore_t *src = segstore_new(job.feedback.segment_len, l->obs_dim, l->act_dim);
    float obs[25 * 4] = {0}, act[25] = {0}, r[25] = {0};
    uint8_t ab[25] = {0};
    for (int i = 0; i < 3; i++) {
        obs[0] = (float)i;
        segstore_add(src, obs, act, r, ab);
    }
    label_t lb = {.kind = QUERY_PAIR, .k = 2, .seg = {2, 0}, .pref = 1.0f};
    learner_add_label(l, &lb, src);
    segstore_destroy(&src);     // the learner keeps its own copies
    assert_int_equal(l->n_labels, 1);
    assert_int_equal(l->segs->n, 2);
    assert_true(segstore_obs(l->segs, l->labels[0].seg[0])[0] == 2.0f);
    assert_true(segstore_obs(l->segs, l->labels[0].seg[1])[0] == 0.0f);
    learner_destroy(&l);
    assert_null(l);
    /* An unknown environment is an error naming it. */
    job.env.id[0] = 'X';
    assert_null(learner_new(&job, err, sizeof err));
    assert_non_null(strstr(err, "XartPole-v1"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_episodes_across_batches),
        cmocka_unit_test(test_truncated_never_runs_past_end),
        cmocka_unit_test(test_sources_and_ring),
        cmocka_unit_test(test_query_kinds_rotate),
        cmocka_unit_test(test_disagreement_picks_the_most_uncertain),
        cmocka_unit_test(test_learner_copies_labelled_segments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
