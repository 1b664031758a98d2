/* test_mujoco.c - the MuJoCo v4 environments (core/env_mujoco.c).
 *
 * Evidence:
 *  - each model loads and has v4's sizes (nq + nv as the state, observation
 *    and action dimensions, action bounds, time limit, render dimension);
 *  - a step is deterministic: the same state and action give a bit-identical
 *    next observation, reward and flags, in the same and in another
 *    environment;
 *  - rewards and termination follow v4's definitions on constructed states
 *    (set_state), with the quantities the reward is made of (x before and
 *    after, the fingertip distance, the tip height) read back from the state
 *    and observations rather than from the code under test;
 *  - reset noise, time limits and render states;
 *  - ppo.norm_reward, the true-reward yardstick's reward scaling (core/
 *    learner.c): off, the rewards PPO sees are the environment's, bit for
 *    bit; on, each step's rewards are divided by the std of the discounted
 *    returns so far (computed here in two passes), clipped to +-10, and an
 *    episode's end restarts its return. */
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
#include "env.h"
#include "job.h"
#include "learner.h"

#define assert_near(got, want, tol)                                                                     \
    do {                                                                                                \
        double g_ = (got), w_ = (want);                                                                 \
        if (!(fabs(g_ - w_) <= (tol)))                                                                  \
            fail_msg("%s = %.17g, expected %.17g (tol %g)", #got, g_, w_, (double)(tol));               \
    } while (0)

static const struct {
    const char *id, *kind;
    int obs_dim, act_dim, nq, nv, max_steps, ngeom;
    double act_hi;
} models[] = {
    {"Hopper-v4", "mujoco2d:hopper", 11, 3, 6, 6, 1000, 4, 1.0},
    {"HalfCheetah-v4", "mujoco2d:half_cheetah", 17, 6, 9, 9, 1000, 8, 1.0},
    {"Walker2d-v4", "mujoco2d:walker2d", 17, 6, 9, 9, 1000, 7, 1.0},
    {"Swimmer-v4", "mujoco2d:swimmer-xy", 8, 2, 5, 5, 1000, 3, 1.0},
    {"Reacher-v4", "mujoco2d:reacher-xy", 11, 2, 4, 4, 50, 9, 1.0},
    {"InvertedPendulum-v4", "mujoco2d:inverted_pendulum", 4, 1, 2, 2, 1000, 3, 3.0},
    {"InvertedDoublePendulum-v4", "mujoco2d:inverted_double_pendulum", 11, 1, 3, 3, 1000, 4, 1.0},
    {"Ant-v4", "mujoco2d:ant", 27, 8, 15, 14, 1000, 13, 1.0},
};
#define NMODELS (sizeof models / sizeof models[0])

static env_t *make(const char *id, uint64_t seed) {
    char err[512];
    env_t *env = env_new(id, seed, err, sizeof err);
    if (!env) fail_msg("env_new(%s): %s", id, err);
    return env;
}

typedef struct {
    double before[ENV_MAX_DIM], after[ENV_MAX_DIM];
    float obs0[ENV_MAX_DIM], obs[ENV_MAX_DIM];
    double reward;
    int terminated, truncated;
} step_t;

/* One step of id from state with action. */
static step_t step_from(const char *id, const double *state, const float *action) {
    env_t *env = make(id, 1);
    step_t r;
    memcpy(r.before, state, sizeof(double) * (size_t)env_class(env)->state_dim);
    env_set_state(env, state, r.obs0);
    r.reward = env_step(env, action, r.obs, &r.terminated, &r.truncated);
    env_get_state(env, r.after);
    env_destroy(&env);
    return r;
}

static double sumsq(const float *a, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)a[i] * a[i];
    return s;
}

/* ---- ppo.norm_reward ------------------------------------------------------------------ */

/* A learner on Hopper (N = 2, T = 8) with feedback mode given one batch
 * whose true rewards are r(t, e); returns the rewards PPO was given
 * (buf->reward). norm sets ppo.norm_reward with the true reward,
 * ppo.norm_learned_reward with the teacher's (untrained) learned one. */
static void norm_reward_run_mode(int norm, double gamma, double (*r)(int t, int e), int done_t, const char *mode,
                                 float *out) {
    enum { T = 8, N = 2 };
    job_t job;
    char err[512], set[64];
    job_defaults(&job);
    const char *sets[] = {"env.id=Hopper-v4", "env.n_envs=2", "ppo.n_steps=8", "ppo.minibatch=8", "ppo.epochs=1"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        if (job_set(&job, sets[i], err, sizeof err) != 0) fail_msg("%s: %s", sets[i], err);
    snprintf(set, sizeof set, "feedback.mode=%s", mode);
    assert_int_equal(job_set(&job, set, err, sizeof err), 0);
    /* the other mode's switch is on, and must not matter */
    snprintf(set, sizeof set, "ppo.norm_reward=%d", strcmp(mode, "true-reward") == 0 ? norm : 1);
    assert_int_equal(job_set(&job, set, err, sizeof err), 0);
    snprintf(set, sizeof set, "ppo.norm_learned_reward=%d", strcmp(mode, "true-reward") == 0 ? 1 : norm);
    assert_int_equal(job_set(&job, set, err, sizeof err), 0);
    snprintf(set, sizeof set, "ppo.gamma=%.17g", gamma);
    assert_int_equal(job_set(&job, set, err, sizeof err), 0);
    learner_t *l = learner_new(&job, err, sizeof err);
    if (!l) fail_msg("learner_new: %s", err);
    traj_t *b = traj_new(T, N, 11, 3);
    for (int t = 0; t < T; t++)
        for (int e = 0; e < N; e++) {
            b->true_r[t * N + e] = (float)r(t, e);
            /* observations and actions that vary, so the learned reward does */
            for (int i = 0; i < 11; i++) b->obs[(t * N + e) * 11 + i] = (float)(0.3 * (i + 1) * r(t, e) + 0.1 * t);
            for (int i = 0; i < 3; i++) b->act[(t * N + e) * 3 + i] = (float)(0.2 * (i - 1) * r(t, e));
            /* environment 1's episode ends (terminated) at done_t */
            b->done[t * N + e] = b->terminated[t * N + e] = e == 1 && t == done_t;
        }
    ppo_stats_t st;
    learner_update(l, b, 1e-4, &st);
    memcpy(out, l->buf->reward, sizeof(float) * T * N);
    traj_destroy(&b);
    learner_destroy(&l);
}

static void norm_reward_run(int norm, double gamma, double (*r)(int t, int e), int done_t, float *out) {
    norm_reward_run_mode(norm, gamma, r, done_t, "true-reward", out);
}

/* The expected scaling of rewards in (T = 8, N = 2): each step's rewards over
 * the std of every discounted return so far (two passes), environment 1's
 * return restarting after done_t. */
static void expect_scaled(const float *in, const float *got, double gamma, int done_t) {
    enum { T = 8, N = 2 };
    double ret[N] = {0, 0}, seen[T * N];
    int n = 0;
    for (int t = 0; t < T; t++) {
        for (int e = 0; e < N; e++) seen[n++] = ret[e] = gamma * ret[e] + in[t * N + e];
        double mean = 0, var = 0;
        for (int i = 0; i < n; i++) mean += seen[i] / n;
        for (int i = 0; i < n; i++) var += (seen[i] - mean) * (seen[i] - mean) / n;
        for (int e = 0; e < N; e++) {
            double want = in[t * N + e] / sqrt(var);
            /* 1e-3: SB3's prior of 1e-4 samples of variance 1, and float rounding */
            assert_near(got[t * N + e], want, 1e-3 * fabs(want) + 1e-6);
        }
        if (t == done_t) ret[1] = 0;
    }
}

static double r_steps(int t, int e) { return e == 0 ? 1.0 + 0.25 * t : -2.0 + 0.5 * t; }
static double r_big(int t, int e) { return t == 0 ? 100.0 : 0.01 * (e + 1); }

static void test_norm_reward(void **unused) {
    (void)unused;
    enum { T = 8, N = 2 };
    float out[T * N];
    /* off: the true rewards as they are */
    norm_reward_run(0, 0.9, r_steps, 3, out);
    for (int k = 0; k < T * N; k++) assert_true(out[k] == (float)r_steps(k / N, k % N));
    /* on: reward / std(returns so far); environment 1's return restarts after t = 3 */
    float raw[T * N];
    for (int k = 0; k < T * N; k++) raw[k] = (float)r_steps(k / N, k % N);
    norm_reward_run(1, 0.9, r_steps, 3, out);
    expect_scaled(raw, out, 0.9, 3);
    /* the learned reward: off, the learner's own normalisation alone (the
     * untrained model's rewards, not the true ones); on, those scaled the
     * same way */
    float learned[T * N];
    norm_reward_run_mode(0, 0.9, r_steps, 3, "teacher", learned);
    int differ = 0;
    for (int k = 0; k < T * N; k++) differ |= learned[k] != raw[k];
    assert_true(differ);
    norm_reward_run_mode(1, 0.9, r_steps, 3, "teacher", out);
    expect_scaled(learned, out, 0.9, 3);
    /* clipped to +-10: equal first rewards have (almost) no spread */
    norm_reward_run(1, 0.99, r_big, -1, out);
    assert_true(out[0] == 10.0f && out[1] == 10.0f);
    for (int k = 0; k < T * N; k++) assert_true(out[k] >= -10.0f && out[k] <= 10.0f);
}

/* ---- models -------------------------------------------------------------------- */

static void test_models_load(void **unused) {
    (void)unused;
    /* The registry lists the five classic environments, then these; every
     * listed id finds its class (env.c keeps two lists that must agree). */
    size_t n_ids = 0;
    for (const char *const *id = env_ids(); *id; id++, n_ids++) {
        assert_non_null(env_find(*id));
        assert_string_equal(env_find(*id)->id, *id);
    }
    assert_int_equal(n_ids, 5 + NMODELS);
    char err[512] = "";
    assert_null(env_new("Hopper-v5", 1, err, sizeof err));
    assert_non_null(strstr(err, "Hopper-v4"));          /* the error names the known ids */
    for (size_t k = 0; k < NMODELS; k++) {
        const env_class_t *c = env_find(models[k].id);
        assert_non_null(c);
        int listed = 0;
        for (const char *const *id = env_ids(); *id; id++) listed |= strcmp(*id, models[k].id) == 0;
        assert_true(listed);
        assert_string_equal(c->render_kind, models[k].kind);
        assert_int_equal(c->obs_dim, models[k].obs_dim);
        assert_int_equal(c->act.discrete, 0);
        assert_int_equal(c->act.n, models[k].act_dim);
        for (int i = 0; i < c->act.n; i++) {
            assert_near(c->act.low[i], -models[k].act_hi, 0);
            assert_near(c->act.high[i], models[k].act_hi, 0);
        }
        assert_int_equal(c->state_dim, models[k].nq + models[k].nv);
        assert_int_equal(c->max_steps, models[k].max_steps);
        assert_int_equal(c->render_dim, 4 + 5 * models[k].ngeom);
        assert_true(c->reward_lo < c->reward_hi);
        /* Several at once (each owns its simulation data, the model is shared). */
        env_t *a = make(models[k].id, 1), *b = make(models[k].id, 2);
        float obs[ENV_MAX_DIM];
        env_reset(a, obs);
        for (int i = 0; i < c->obs_dim; i++) assert_true(isfinite(obs[i]));
        env_destroy(&a);
        env_destroy(&b);
        assert_null(a);
    }
}

/* Same state and action: bit-identical results, whatever the environment did
 * before (the solver's warm start must not leak across set_state). */
static void test_step_deterministic(void **unused) {
    (void)unused;
    for (size_t k = 0; k < NMODELS; k++) {
        const char *id = models[k].id;
        env_t *a = make(id, 7), *b = make(id, 8);
        const env_class_t *c = env_class(a);
        rng_t rng;
        rng_seed(&rng, 11);
        float obs[ENV_MAX_DIM], act[ENV_MAX_DIM];
        env_reset(a, obs);
        for (int t = 0; t < 15; t++) {
            for (int i = 0; i < c->act.n; i++) act[i] = (float)rng_range(&rng, c->act.low[i], c->act.high[i]);
            int te, tr;
            env_step(a, act, obs, &te, &tr);
            if (te) env_reset(a, obs);
        }
        double s[ENV_MAX_DIM];
        env_get_state(a, s);
        for (int i = 0; i < c->act.n; i++) act[i] = (float)rng_range(&rng, c->act.low[i], c->act.high[i]);
        /* b has a different history: reset, a few steps of its own */
        env_reset(b, obs);
        for (int t = 0; t < 5; t++) {
            int te, tr;
            env_step(b, act, obs, &te, &tr);
        }
        float o1[ENV_MAX_DIM], o2[ENV_MAX_DIM], o3[ENV_MAX_DIM];
        int t1, t2, t3, u1, u2, u3;
        env_set_state(a, s, obs);
        double r1 = env_step(a, act, o1, &t1, &u1);
        env_set_state(a, s, obs);
        double r2 = env_step(a, act, o2, &t2, &u2);
        env_set_state(b, s, obs);
        double r3 = env_step(b, act, o3, &t3, &u3);
        assert_memory_equal(o1, o2, sizeof(float) * (size_t)c->obs_dim);
        assert_memory_equal(o1, o3, sizeof(float) * (size_t)c->obs_dim);
        assert_memory_equal(&r1, &r2, sizeof r1);
        assert_memory_equal(&r1, &r3, sizeof r1);
        assert_true(t1 == t2 && t1 == t3 && u1 == u2 && u1 == u3);
        /* and the action matters */
        for (int i = 0; i < c->act.n; i++) act[i] = -act[i] + 0.5f * (float)c->act.high[i];
        env_set_state(a, s, obs);
        env_step(a, act, o2, &t2, &u2);
        assert_true(memcmp(o1, o2, sizeof(float) * (size_t)c->obs_dim) != 0);
        env_destroy(&a);
        env_destroy(&b);
    }
}

/* ---- Hopper and Walker2d ----------------------------------------------------------- */

static void test_hopper(void **unused) {
    (void)unused;
    /* qpos: rootx, rootz (torso height, 1.25 standing), rooty (angle), thigh, leg, foot; qvel */
    double s[12] = {0.3, 1.25, 0.0, 0, 0, 0, 0.7, 0, 0, 0, 0, 0};
    const float a[3] = {0.5f, -0.3f, 0.2f};
    step_t r = step_from("Hopper-v4", s, a);
    double dt = 4 * 0.002;
    assert_true(r.after[0] - r.before[0] > 0.004);     /* it moved with the 0.7 m/s it was given */
    assert_near(r.reward, (r.after[0] - r.before[0]) / dt + 1.0 - 1e-3 * sumsq(a, 3), 1e-9);
    assert_false(r.terminated);
    assert_false(r.truncated);
    /* observation: qpos[1:], clip(qvel, -10, 10) */
    for (int i = 0; i < 5; i++) assert_true(r.obs[i] == (float)r.after[1 + i]);
    for (int i = 0; i < 6; i++) assert_true(r.obs[5 + i] == (float)fmax(-10, fmin(10, r.after[6 + i])));

    /* |angle| > 0.2 is unhealthy, 0.15 is not */
    double tilt[12] = {0, 1.25, 0.25, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    const float zero[3] = {0};
    r = step_from("Hopper-v4", tilt, zero);
    assert_true(r.after[2] > 0.2);
    assert_true(r.terminated);
    assert_near(r.reward, (r.after[0] - r.before[0]) / dt + 1.0, 1e-9);   /* healthy reward still paid */
    tilt[2] = -0.15;
    r = step_from("Hopper-v4", tilt, zero);
    assert_false(r.terminated);

    /* z < 0.7: the torso lowered with the legs folded up (no ground contact) */
    double low[12] = {0, 0.69, 0, -2.4, -2.4, 0, 0, 0, 0, 0, 0, 0};
    r = step_from("Hopper-v4", low, zero);
    assert_true(r.after[1] < 0.7 && fabs(r.after[2]) < 0.2);
    assert_true(r.terminated);
    low[1] = 0.75;
    r = step_from("Hopper-v4", low, zero);
    assert_true(r.after[1] > 0.7 && fabs(r.after[2]) < 0.2);
    assert_false(r.terminated);

    /* any of state_vector()[2:] outside (-100, 100): a velocity of 150 */
    double fast[12] = {0, 1.25, 0, 0, 0, 0, 150, 0, 0, 0, 0, 0};
    r = step_from("Hopper-v4", fast, zero);
    assert_true(r.after[6] > 100);
    assert_true(r.terminated);
    assert_true(r.obs[5] == 10.0f);     /* clipped in the observation */
}

static void test_walker2d(void **unused) {
    (void)unused;
    double s[18] = {0};
    s[1] = 1.25;
    s[9] = -0.4;                        /* moving backwards */
    const float a[6] = {0.1f, 0.2f, -0.3f, 0.4f, -0.5f, 0.6f}, zero[6] = {0};
    step_t r = step_from("Walker2d-v4", s, a);
    assert_true(r.after[0] < r.before[0]);
    assert_near(r.reward, (r.after[0] - r.before[0]) / (4 * 0.002) + 1.0 - 1e-3 * sumsq(a, 6), 1e-9);
    assert_false(r.terminated);
    /* 0.8 < z < 2.0 and |angle| < 1 */
    s[9] = 0;
    s[1] = 2.1;                         /* in the air */
    r = step_from("Walker2d-v4", s, zero);
    assert_true(r.after[1] >= 2.0 && r.terminated);
    s[1] = 1.9;
    r = step_from("Walker2d-v4", s, zero);
    assert_true(r.after[1] < 2.0 && !r.terminated);
    s[1] = 1.25;
    s[2] = 1.05;
    r = step_from("Walker2d-v4", s, zero);
    assert_true(r.after[2] >= 1.0 && r.terminated);
    s[2] = -0.9;
    r = step_from("Walker2d-v4", s, zero);
    assert_false(r.terminated);
}

/* ---- HalfCheetah and Swimmer: forward reward, never terminate ------------------------ */

static void test_half_cheetah(void **unused) {
    (void)unused;
    double s[18] = {0};
    s[9] = 2.0;
    const float a[6] = {1, -1, 0.5f, -0.5f, 0.25f, 0};
    step_t r = step_from("HalfCheetah-v4", s, a);
    assert_true(r.after[0] - r.before[0] > 0.05);
    assert_near(r.reward, (r.after[0] - r.before[0]) / (5 * 0.01) - 0.1 * sumsq(a, 6), 1e-9);
    for (int i = 0; i < 8; i++) assert_true(r.obs[i] == (float)r.after[1 + i]);
    for (int i = 0; i < 9; i++) assert_true(r.obs[8 + i] == (float)r.after[9 + i]);
    /* upside down and flailing for the whole episode: never terminated,
     * truncated at exactly 1000 steps */
    env_t *env = make("HalfCheetah-v4", 3);
    float obs[ENV_MAX_DIM], act[6];
    s[2] = M_PI;
    s[1] = 0.5;
    env_set_state(env, s, obs);
    rng_t rng;
    rng_seed(&rng, 5);
    for (int t = 1; t <= 1000; t++) {
        for (int i = 0; i < 6; i++) act[i] = (float)rng_range(&rng, -1, 1);
        int te, tr;
        env_step(env, act, obs, &te, &tr);
        assert_false(te);
        assert_int_equal(tr, t == 1000);
    }
    env_destroy(&env);
}

static void test_swimmer(void **unused) {
    (void)unused;
    double s[10] = {0.2, -0.1, 0.3, 0.5, -0.5, -0.8, 0.1, 0, 1, -1};
    const float a[2] = {0.9f, -0.4f};
    step_t r = step_from("Swimmer-v4", s, a);
    assert_true(r.after[0] < r.before[0]);
    assert_near(r.reward, (r.after[0] - r.before[0]) / (4 * 0.01) - 1e-4 * sumsq(a, 2), 1e-9);
    assert_false(r.terminated);
    for (int i = 0; i < 3; i++) assert_true(r.obs[i] == (float)r.after[2 + i]);
    for (int i = 0; i < 5; i++) assert_true(r.obs[3 + i] == (float)r.after[5 + i]);
}

/* ---- Reacher ----------------------------------------------------------------------------- */

static void test_reacher(void **unused) {
    (void)unused;
    /* arm straight along x: fingertip at (0.21, 0); target at (0.1, 0.1) */
    double s[8] = {0, 0, 0.1, 0.1, 0, 0, 0, 0};
    const float a[2] = {0.6f, -0.8f};
    step_t r = step_from("Reacher-v4", s, a);
    /* the distance BEFORE the step, as v4 measures it */
    double d0 = sqrt(0.11 * 0.11 + 0.1 * 0.1);
    assert_near(r.obs0[8], 0.11, 1e-6);
    assert_near(r.obs0[9], -0.1, 1e-6);
    assert_near(r.obs0[10], 0.0, 1e-6);
    assert_near(r.reward, -d0 - sumsq(a, 2), 1e-6);
    assert_false(r.terminated);
    /* observation: cos, sin of the two angles, target, arm velocities, fingertip - target */
    assert_near(r.obs[0], cos(r.after[0]), 1e-6);
    assert_near(r.obs[1], cos(r.after[1]), 1e-6);
    assert_near(r.obs[2], sin(r.after[0]), 1e-6);
    assert_near(r.obs[3], sin(r.after[1]), 1e-6);
    assert_true(r.obs[4] == 0.1f && r.obs[5] == 0.1f);
    assert_true(r.obs[6] == (float)r.after[4] && r.obs[7] == (float)r.after[5]);
    assert_true(r.after[4] > 0 && r.after[5] < 0);     /* the torques turned the joints */
    /* on the target at rest, no action: reward 0 */
    double on[8] = {0, 0, 0.21, 0, 0, 0, 0, 0};
    const float zero[2] = {0};
    r = step_from("Reacher-v4", on, zero);
    assert_near(r.reward, 0.0, 1e-9);
    /* time limit 50, no termination; resets put the target within 0.2 */
    env_t *env = make("Reacher-v4", 9);
    float obs[ENV_MAX_DIM];
    for (int ep = 0; ep < 200; ep++) {
        env_reset(env, obs);
        assert_true(hypot(obs[4], obs[5]) < 0.2f);
    }
    for (int t = 1; t <= 50; t++) {
        int te, tr;
        env_step(env, zero, obs, &te, &tr);
        assert_false(te);
        assert_int_equal(tr, t == 50);
    }
    env_destroy(&env);
}

/* ---- InvertedPendulum and InvertedDoublePendulum ---------------------------------------- */

static void test_inverted_pendulum(void **unused) {
    (void)unused;
    double s[4] = {0.1, 0.1, 0, 0};
    const float a[1] = {0.5f}, zero[1] = {0};
    step_t r = step_from("InvertedPendulum-v4", s, a);
    assert_near(r.reward, 1.0, 0);
    assert_false(r.terminated);
    for (int i = 0; i < 4; i++) assert_true(r.obs[i] == (float)r.after[i]);
    assert_true(r.after[2] > 0);        /* pushed right */
    s[1] = 0.21;                        /* |angle| > 0.2 */
    r = step_from("InvertedPendulum-v4", s, zero);
    assert_true(fabs(r.after[1]) > 0.2 && r.terminated);
    assert_near(r.reward, 1.0, 0);
    s[1] = -0.19;
    s[3] = 0.5;                         /* falling back towards upright */
    r = step_from("InvertedPendulum-v4", s, zero);
    assert_true(fabs(r.after[1]) <= 0.2 && !r.terminated);
}

static void test_inverted_double_pendulum(void **unused) {
    (void)unused;
    /* upright at rest: tip at height 1.2, so reward 10 - (1.2 - 2)^2 = 9.36 */
    double s[6] = {0};
    const float zero[1] = {0};
    step_t r = step_from("InvertedDoublePendulum-v4", s, zero);
    assert_near(r.reward, 10.0 - 0.64, 1e-3);
    assert_false(r.terminated);
    /* observation: x, sin, sin, cos, cos, clipped qvel, clipped constraint forces */
    assert_true(r.obs[0] == (float)r.after[0]);
    assert_near(r.obs[1], sin(r.after[1]), 1e-6);
    assert_near(r.obs[3], cos(r.after[1]), 1e-6);
    /* tilted: the tip is below 1 m, terminated */
    double tilt[6] = {0, 0.7, 0.3, 0, 0, 0};
    r = step_from("InvertedDoublePendulum-v4", tilt, zero);
    double y = 0.6 * cos(0.7) + 0.6 * cos(1.0);
    assert_true(y < 1.0);
    assert_true(r.terminated);
    assert_near(r.reward, 10 - (0.01 * pow(0.6 * sin(0.7) + 0.6 * sin(1.0), 2) + (y - 2) * (y - 2)), 0.05);
    /* velocity penalty: 1e-3 v1^2 + 5e-3 v2^2 */
    double spin[6] = {0, 0, 0, 0, 2.0, -2.0};
    r = step_from("InvertedDoublePendulum-v4", spin, zero);
    double pen = 1e-3 * r.after[4] * r.after[4] + 5e-3 * r.after[5] * r.after[5];
    assert_true(pen > 0.01);
    assert_true(r.reward < 9.36 - 0.01);
}

/* ---- Ant: healthy while 0.2 <= z <= 1 ---------------------------------------------------------- */

static void test_ant(void **unused) {
    (void)unused;
    /* qpos: x, y, z, quaternion (w, x, y, z), 8 joints; qvel: 6 + 8 */
    double s[29] = {0};
    s[2] = 0.75;
    s[3] = 1.0;
    s[7 + 1] = s[7 + 3] = 0.8;          /* ankles 1 and 4 inside their 30..70 degree range */
    s[7 + 5] = s[7 + 7] = -0.8;
    float a[8] = {0};
    step_t r = step_from("Ant-v4", s, a);
    assert_false(r.terminated);
    /* at rest, no action: the healthy reward and a small drift */
    assert_near(r.reward, 1.0, 0.2);
    for (int i = 0; i < 13; i++) assert_true(r.obs[i] == (float)r.after[2 + i]);
    for (int i = 0; i < 14; i++) assert_true(r.obs[13 + i] == (float)r.after[15 + i]);
    /* the control cost: 0.5 |a|^2 (the same state, so the same drift) */
    for (int i = 0; i < 8; i++) a[i] = 1.0f;
    step_t r2 = step_from("Ant-v4", s, a);
    assert_near(r2.reward, 1.0 - 0.5 * 8, 0.5);
    /* above 1 m: unhealthy */
    s[2] = 1.1;
    for (int i = 0; i < 8; i++) a[i] = 0;
    r = step_from("Ant-v4", s, a);
    assert_true(r.after[2] > 1.0 && r.terminated);
}

/* ---- resets ---------------------------------------------------------------------------------- */

static void test_reset_noise(void **unused) {
    (void)unused;
    /* Hopper: qpos0 + U(-5e-3, 5e-3), qvel U(-5e-3, 5e-3) */
    env_t *env = make("Hopper-v4", 21);
    double lo[12], hi[12], s[12];
    float obs[ENV_MAX_DIM];
    const double q0[6] = {0, 1.25, 0, 0, 0, 0};
    for (int i = 0; i < 12; i++) lo[i] = INFINITY, hi[i] = -INFINITY;
    for (int k = 0; k < 2000; k++) {
        env_reset(env, obs);
        env_get_state(env, s);
        for (int i = 0; i < 12; i++) {
            double d = s[i] - (i < 6 ? q0[i] : 0);
            lo[i] = fmin(lo[i], d);
            hi[i] = fmax(hi[i], d);
        }
    }
    for (int i = 0; i < 12; i++) assert_true(lo[i] >= -5e-3 && lo[i] < -4.9e-3 && hi[i] < 5e-3 && hi[i] > 4.9e-3);
    env_destroy(&env);
    /* HalfCheetah: velocities 0.1 * N(0, 1) */
    env = make("HalfCheetah-v4", 22);
    double sum = 0, sq = 0;
    int n = 0;
    for (int k = 0; k < 2000; k++) {
        double st[18];
        env_reset(env, obs);
        env_get_state(env, st);
        for (int i = 9; i < 18; i++) sum += st[i], sq += st[i] * st[i], n++;
        for (int i = 0; i < 9; i++) assert_true(fabs(st[i] - (i == 0 ? 0 : 0)) <= 0.1);
    }
    double mean = sum / n, sd = sqrt(sq / n - mean * mean);
    assert_near(mean, 0.0, 0.005);
    assert_near(sd, 0.1, 0.005);
    env_destroy(&env);
    /* Different seeds, different starts; same seed, same start. */
    env_t *a = make("Walker2d-v4", 5), *b = make("Walker2d-v4", 5), *c = make("Walker2d-v4", 6);
    float oa[ENV_MAX_DIM], ob[ENV_MAX_DIM], oc[ENV_MAX_DIM];
    env_reset(a, oa);
    env_reset(b, ob);
    env_reset(c, oc);
    assert_memory_equal(oa, ob, sizeof(float) * 17);
    assert_true(memcmp(oa, oc, sizeof(float) * 17) != 0);
    env_destroy(&a);
    env_destroy(&b);
    env_destroy(&c);
}

/* ---- render states ------------------------------------------------------------------------------ */

static void test_render(void **unused) {
    (void)unused;
    for (size_t k = 0; k < NMODELS; k++) {
        env_t *env = make(models[k].id, 1);
        const env_class_t *c = env_class(env);
        float obs[ENV_MAX_DIM], rs[256];
        env_reset(env, obs);
        rs[c->render_dim] = 12345.0f;
        env_render_state(env, rs);
        assert_true(rs[c->render_dim] == 12345.0f);   /* writes exactly render_dim floats */
        assert_true(rs[2] > 0);                        /* view half-width */
        for (int i = 0; i < c->render_dim; i++) assert_true(isfinite(rs[i]));
        for (int g = 0; g < models[k].ngeom; g++) assert_true(rs[4 + 5 * g + 4] > 0);   /* radius */
        env_destroy(&env);
    }
    /* Hopper standing at x = 2: the camera follows, the torso is the segment
     * from z 1.45 to 1.05 at x 2, radius 0.05; the ground is at 0. */
    env_t *env = make("Hopper-v4", 1);
    double s[12] = {2.0, 1.25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    float obs[ENV_MAX_DIM], rs[64];
    env_set_state(env, s, obs);
    env_render_state(env, rs);
    assert_near(rs[0], 2.0, 1e-6);
    assert_near(rs[3], 0.0, 0);
    assert_near(rs[4], 2.0, 1e-6);
    assert_near(rs[6], 2.0, 1e-6);
    assert_near(fmax(rs[5], rs[7]), 1.45, 1e-6);
    assert_near(fmin(rs[5], rs[7]), 1.05, 1e-6);
    assert_near(rs[8], 0.05, 1e-7);
    /* foot: from x 2 - 0.13 to 2 + 0.26 at z 0.1 */
    assert_near(fmin(rs[4 + 15], rs[4 + 17]), 2 - 0.13, 1e-6);
    assert_near(fmax(rs[4 + 15], rs[4 + 17]), 2 + 0.26, 1e-6);
    assert_near(rs[4 + 16], 0.1, 1e-6);
    env_destroy(&env);
    /* Reacher from above: the target (last geom) is a dot at its x, y */
    env = make("Reacher-v4", 1);
    double t[8] = {0, 0, -0.15, 0.05, 0, 0, 0, 0};
    env_set_state(env, t, obs);
    env_render_state(env, rs);
    float *g = rs + 4 + 5 * 8;
    assert_near(g[0], -0.15, 1e-6);
    assert_near(g[1], 0.05, 1e-6);
    assert_true(g[0] == g[2] && g[1] == g[3]);
    assert_near(g[4], 0.009, 1e-7);
    env_destroy(&env);
}

/* A NaN action is taken as zero: the simulation stays finite. */
static void test_nan_action(void **unused) {
    (void)unused;
    env_t *env = make("Hopper-v4", 1);
    float obs[ENV_MAX_DIM], a[3] = {NAN, 0.5f, NAN};
    env_reset(env, obs);
    int te, tr;
    double r = env_step(env, a, obs, &te, &tr);
    assert_true(isfinite(r));
    for (int i = 0; i < 11; i++) assert_true(isfinite(obs[i]));
    env_destroy(&env);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models_load),
        cmocka_unit_test(test_step_deterministic),
        cmocka_unit_test(test_hopper),
        cmocka_unit_test(test_walker2d),
        cmocka_unit_test(test_half_cheetah),
        cmocka_unit_test(test_swimmer),
        cmocka_unit_test(test_reacher),
        cmocka_unit_test(test_inverted_pendulum),
        cmocka_unit_test(test_inverted_double_pendulum),
        cmocka_unit_test(test_ant),
        cmocka_unit_test(test_reset_noise),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_nan_action), cmocka_unit_test(test_norm_reward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
