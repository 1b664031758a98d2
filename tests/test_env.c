/* test_env.c - the classic-control environments against Gymnasium 0.29.
 *
 * Three kinds of evidence:
 *  - replay of the Gymnasium reference episodes in tests/data/gymnasium/
 *    (every *.jsonl there), which must agree to the last bit;
 *  - constructed states: one step from a chosen state and action, compared
 *    with values worked out independently (closed forms where the algebra is
 *    short, otherwise a separate Python transcription of the Gymnasium source
 *    whose CartPole and Pendulum parts reproduce the reference files exactly),
 *    covering each environment's edges: termination, truncation, clipping,
 *    wrapping, walls and goals;
 *  - the registry, reset distributions, seeding, and the replay's handling of
 *    broken and altered files. */
#include <float.h>
#include <glob.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "env.h"
#include "json.h"

#define assert_near(got, want, tol)                                                                     \
    do {                                                                                                \
        double g_ = (got), w_ = (want);                                                                 \
        if (!(fabs(g_ - w_) <= (tol)))                                                                  \
            fail_msg("%s = %.17g, expected %.17g (tol %g)", #got, g_, w_, (double)(tol));               \
    } while (0)

/* One step of env id from state with action; the results land in *r. */
typedef struct {
    double state[ENV_MAX_DIM];
    float obs[ENV_MAX_DIM];
    double reward;
    int terminated, truncated;
} step_t;

static step_t step_from(const char *id, const double *state, float action) {
    char err[256];
    env_t *env = env_new(id, 1, err, sizeof err);
    if (!env) fail_msg("%s", err);
    step_t r;
    float obs[ENV_MAX_DIM];
    env_set_state(env, state, obs);
    r.reward = env_step(env, &action, r.obs, &r.terminated, &r.truncated);
    env_get_state(env, r.state);
    env_destroy(&env);
    return r;
}

static int is_float32(double x) { return (double)(float)x == x; }

/* The MuJoCo environments have their own test (tests/test_mujoco.c). */
static int is_mujoco(const char *id) { return strncmp(env_find(id)->render_kind, "mujoco", 6) == 0; }

static const char *tmp_dir(void) {
    const char *t = getenv("RLHF_TEST_TMP");
    return t ? t : "/tmp";
}

/* ---- registry --------------------------------------------------------------- */

static void test_registry(void **unused) {
    (void)unused;
    static const struct {
        const char *id, *kind;
        int obs_dim, discrete, n, state_dim, max_steps;
        double reward_lo, reward_hi;
    } want[] = {
        {"CartPole-v1", "cartpole", 4, 1, 2, 4, 500, 0.0, 1.0},
        {"Pendulum-v1", "pendulum", 3, 0, 1, 2, 200, -16.2736044, 0.0},
        {"MountainCar-v0", "mountaincar", 2, 1, 3, 2, 200, -1.0, 0.0},
        {"MountainCarContinuous-v0", "mountaincar", 2, 0, 1, 2, 999, -0.1, 100.0},
        {"Acrobot-v1", "acrobot", 6, 1, 3, 4, 500, -1.0, 0.0},
    };
    const char *const *ids = env_ids();
    size_t count = 0;
    while (ids[count] && !is_mujoco(ids[count])) count++;   /* MuJoCo's: tests/test_mujoco.c */
    assert_int_equal(count, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < count; i++) {
        const env_class_t *c = env_find(want[i].id);
        assert_non_null(c);
        assert_string_equal(ids[i], want[i].id);
        assert_string_equal(c->id, want[i].id);
        assert_string_equal(c->render_kind, want[i].kind);
        assert_int_equal(c->obs_dim, want[i].obs_dim);
        assert_int_equal(c->act.discrete, want[i].discrete);
        assert_int_equal(c->act.n, want[i].n);
        assert_int_equal(c->state_dim, want[i].state_dim);
        assert_int_equal(c->max_steps, want[i].max_steps);
        assert_int_equal(c->render_dim, 2);
        assert_near(c->reward_lo, want[i].reward_lo, 1e-7);
        assert_near(c->reward_hi, want[i].reward_hi, 0);
        for (int d = 0; d < c->obs_dim; d++) assert_true(c->obs_low[d] < c->obs_high[d]);
    }
    /* Spaces as Gymnasium declares them (float32 bounds). */
    const env_class_t *cp = env_find("CartPole-v1");
    assert_near(cp->obs_high[0], 4.8f, 0);
    assert_near(cp->obs_high[1], FLT_MAX, 0);
    assert_near(cp->obs_high[2], (float)(24 * M_PI / 180), 0);
    const env_class_t *pd = env_find("Pendulum-v1");
    assert_near(pd->act.low[0], -2.0, 0);
    assert_near(pd->act.high[0], 2.0, 0);
    assert_near(pd->obs_high[2], 8.0, 0);
    const env_class_t *mcc = env_find("MountainCarContinuous-v0");
    assert_near(mcc->act.low[0], -1.0, 0);
    assert_near(mcc->act.high[0], 1.0, 0);
    assert_near(mcc->obs_low[0], -1.2f, 0);
    assert_near(mcc->obs_high[1], 0.07f, 0);
    const env_class_t *ac = env_find("Acrobot-v1");
    assert_near(ac->obs_high[4], (float)(4 * M_PI), 0);
    assert_near(ac->obs_high[5], (float)(9 * M_PI), 0);
}

static void test_unknown_id(void **unused) {
    (void)unused;
    char err[512];
    assert_null(env_new("CartPole-v0", 1, err, sizeof err));
    assert_non_null(strstr(err, "unknown environment 'CartPole-v0'"));
    assert_non_null(strstr(err, "CartPole-v1"));
    assert_non_null(strstr(err, "Acrobot-v1"));
    assert_null(env_find("cartpole-v1"));
    assert_null(env_new(NULL, 1, err, sizeof err));
    /* A short buffer is truncated, not overrun. */
    char small[12];
    assert_null(env_new("Nope", 1, small, sizeof small));
    assert_int_equal(strlen(small), sizeof small - 1);
}

/* ---- replay of the reference files ------------------------------------------ */

static void test_replay_reference_files(void **unused) {
    (void)unused;
    glob_t g;
    assert_int_equal(glob("tests/data/gymnasium/*.jsonl", 0, NULL, &g), 0);
    assert_true(g.gl_pathc >= 2);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char err[512], *report = NULL;
        size_t report_len = 0;
        FILE *out = open_memstream(&report, &report_len);
        int rc = env_replay_file(g.gl_pathv[i], 1e-5, out, err, sizeof err);
        fclose(out);
        printf("# %s", report ? report : "");
        if (rc != 0) fail_msg("%s: rc %d %s", g.gl_pathv[i], rc, rc < 0 ? err : report);
        assert_non_null(strstr(report, "worst deviation"));
        assert_non_null(strstr(report, "\nOK\n"));
        free(report);
        /* The environments follow Gymnasium's arithmetic operation for
         * operation, so the files agree exactly, not just within 1e-5. */
        assert_int_equal(env_replay_file(g.gl_pathv[i], 0.0, NULL, err, sizeof err), 0);
    }
    globfree(&g);
}

/* ---- CartPole-v1 -------------------------------------------------------------- */

static void test_cartpole_dynamics(void **unused) {
    (void)unused;
    /* From rest, pushing right: temp = 10/1.1, thetaacc = -600/41,
     * xacc = 4400/451, then one Euler step of 0.02. */
    double rest[4] = {0, 0, 0, 0};
    step_t r = step_from("CartPole-v1", rest, 1);
    assert_near(r.state[0], 0.0, 0);
    assert_near(r.state[1], 0.02 * 4400.0 / 451.0, 1e-15);
    assert_near(r.state[2], 0.0, 0);
    assert_near(r.state[3], -0.02 * 600.0 / 41.0, 1e-15);
    assert_near(r.reward, 1.0, 0);
    assert_false(r.terminated);
    assert_false(r.truncated);
    /* Euler uses the old velocities for the positions. */
    double s[4] = {0.01, -0.2, 0.03, 0.4};
    r = step_from("CartPole-v1", s, 0);
    assert_near(r.state[0], 0.006, 1e-17);
    assert_near(r.state[1], -0.3955343820057583, 1e-16);
    assert_near(r.state[2], 0.038, 1e-17);
    assert_near(r.state[3], 0.7019882742589485, 1e-16);
    for (int i = 0; i < 4; i++) assert_true(r.obs[i] == (float)r.state[i]);
}

static void test_cartpole_termination(void **unused) {
    (void)unused;
    const double theta_limit = 12 * 2 * M_PI / 360;
    /* Exactly at the limits is still alive: the tests are strict. */
    double at_x[4] = {2.4, 0, 0, 0};
    assert_false(step_from("CartPole-v1", at_x, 1).terminated);
    double at_theta[4] = {0, 0, theta_limit, 0};
    assert_false(step_from("CartPole-v1", at_theta, 0).terminated);
    double at_minus_theta[4] = {0, 0, -theta_limit, 0};
    assert_false(step_from("CartPole-v1", at_minus_theta, 1).terminated);
    /* Past them: x 2.39 + 0.02*1 > 2.4, x -2.39 - 0.02, theta 0.2 + 0.02 > 12 deg. */
    double past_x[4] = {2.39, 1.0, 0, 0};
    double past_minus_x[4] = {-2.39, -1.0, 0, 0};
    double past_theta[4] = {0, 0, 0.2, 1.0};
    double past_minus_theta[4] = {0, 0, -0.2, -1.0};
    assert_true(step_from("CartPole-v1", past_x, 1).terminated);
    assert_true(step_from("CartPole-v1", past_minus_x, 1).terminated);
    assert_true(step_from("CartPole-v1", past_theta, 1).terminated);
    assert_true(step_from("CartPole-v1", past_minus_theta, 0).terminated);

    /* Reward 1 on the terminating step, 0 on every step after it. */
    char err[256];
    env_t *env = env_new("CartPole-v1", 3, err, sizeof err);
    float obs[4], a = 1;
    int term, trunc;
    env_set_state(env, past_x, obs);
    assert_near(env_step(env, &a, obs, &term, &trunc), 1.0, 0);
    assert_true(term);
    for (int i = 0; i < 5; i++) {
        assert_near(env_step(env, &a, obs, &term, &trunc), 0.0, 0);
        assert_true(term);
    }
    /* reset (or set_state) forgets it. */
    env_reset(env, obs);
    assert_near(env_step(env, &a, obs, &term, &trunc), 1.0, 0);
    env_set_state(env, past_x, obs);
    assert_near(env_step(env, &a, obs, &term, &trunc), 1.0, 0);
    env_destroy(&env);
    assert_null(env);
}

static void test_cartpole_truncation(void **unused) {
    (void)unused;
    char err[256];
    env_t *env = env_new("CartPole-v1", 11, err, sizeof err);
    float obs[4];
    int term = 0, trunc = 0;
    double total = 0;
    env_reset(env, obs);
    /* A balancing controller keeps the pole up for the whole 500 steps. */
    for (int t = 1; t <= 500; t++) {
        float a = obs[2] + 0.5f * obs[3] + 0.01f * obs[0] + 0.1f * obs[1] > 0 ? 1.0f : 0.0f;
        total += env_step(env, &a, obs, &term, &trunc);
        assert_false(term);
        assert_int_equal(trunc, t == 500);
    }
    assert_near(total, 500, 0);
    /* Truncation is the time limit's, so it holds on later steps too. */
    float a = 0;
    env_step(env, &a, obs, &term, &trunc);
    assert_true(trunc);
    /* set_state restarts the count. */
    double s[4] = {0, 0, 0, 0};
    env_set_state(env, s, obs);
    env_step(env, &a, obs, &term, &trunc);
    assert_false(trunc);
    env_destroy(&env);
}

/* Discrete actions arrive as floats; out-of-range ones take the nearest index. */
static void test_discrete_action_sanitising(void **unused) {
    (void)unused;
    double s[4] = {0.01, 0.02, 0.03, 0.04};
    step_t right = step_from("CartPole-v1", s, 1), left = step_from("CartPole-v1", s, 0);
    assert_near(step_from("CartPole-v1", s, 7).state[1], right.state[1], 0);
    assert_near(step_from("CartPole-v1", s, 0.9999f).state[1], right.state[1], 0);
    assert_near(step_from("CartPole-v1", s, -3).state[1], left.state[1], 0);
    assert_near(step_from("CartPole-v1", s, NAN).state[1], left.state[1], 0);
    double ac[4] = {0.1, 0.2, 0.3, 0.4};
    assert_near(step_from("Acrobot-v1", ac, 9).state[3], step_from("Acrobot-v1", ac, 2).state[3], 0);
}

/* ---- Pendulum-v1 ---------------------------------------------------------------- */

static void test_pendulum_dynamics(void **unused) {
    (void)unused;
    /* Upright and still, no torque: nothing moves, reward 0. */
    double up[2] = {0, 0};
    step_t r = step_from("Pendulum-v1", up, 0);
    assert_near(r.state[0], 0, 0);
    assert_near(r.state[1], 0, 0);
    assert_near(r.reward, 0, 0);
    assert_near(r.obs[0], 1, 0);
    assert_false(r.terminated);
    /* Hanging down (theta = pi), full torque: angle_normalize(pi) = -pi, so
     * cost pi^2 + 0.001*4; thdot = (15 sin(pi) + 3*2) * 0.05 = 0.3. */
    double down[2] = {M_PI, 0};
    r = step_from("Pendulum-v1", down, 2);
    assert_near(r.reward, -(M_PI * M_PI + 0.004), 1e-14);
    assert_near(r.reward, -9.873604401089358, 0);
    assert_near(r.state[1], 0.3000000000000001, 0);
    assert_near(r.state[0], 3.1565926535897932, 0);
    assert_near(r.obs[0], (float)cos(r.state[0]), 0);
    assert_near(r.obs[1], (float)sin(r.state[0]), 0);
    assert_near(r.obs[2], (float)r.state[1], 0);
    /* The state stays float64 (NumPy widens the float32 torque). */
    assert_false(is_float32(r.state[0]));
}

static void test_pendulum_clipping(void **unused) {
    (void)unused;
    double s[2] = {M_PI / 2, 7.9};
    /* The torque is clipped to [-2, 2] before it enters anything. */
    step_t big = step_from("Pendulum-v1", s, 5.0f), two = step_from("Pendulum-v1", s, 2.0f);
    assert_near(big.reward, two.reward, 0);
    assert_near(big.state[0], two.state[0], 0);
    step_t neg = step_from("Pendulum-v1", s, -7.0f), mtwo = step_from("Pendulum-v1", s, -2.0f);
    assert_near(neg.state[1], mtwo.state[1], 0);
    /* The speed: 7.9 + (15 + 6) * 0.05 = 8.95 is clipped to 8, and the angle
     * moves by the clipped speed. */
    assert_near(two.state[1], 8.0, 0);
    assert_near(two.state[0], M_PI / 2 + 8.0 * 0.05, 1e-15);
    assert_near(two.reward, -(M_PI * M_PI / 4 + 0.1 * 7.9 * 7.9 + 0.001 * 4), 1e-13);
    assert_near(two.reward, -8.71240110027234, 1e-14);
    /* The render state carries the clipped torque. */
    char err[256];
    env_t *env = env_new("Pendulum-v1", 1, err, sizeof err);
    float obs[3], a = 9.0f, rs[2];
    int term, trunc;
    env_set_state(env, s, obs);
    env_render_state(env, rs);
    assert_near(rs[1], 0, 0);
    env_step(env, &a, obs, &term, &trunc);
    env_render_state(env, rs);
    assert_near(rs[0], (float)(M_PI / 2 + 0.4), 1e-6);
    assert_near(rs[1], 2.0, 0);
    env_destroy(&env);
}

static void test_pendulum_angle_normalisation(void **unused) {
    (void)unused;
    /* Angles a whole turn away cost the same: ((x + pi) mod 2pi) - pi. */
    double plus[2] = {2 * M_PI + 0.5, 0}, minus[2] = {-2 * M_PI - 0.5, 0};
    step_t p = step_from("Pendulum-v1", plus, 0), m = step_from("Pendulum-v1", minus, 0);
    assert_near(p.reward, -0.25, 1e-14);
    assert_near(m.reward, -0.25, 1e-14);
    /* The state itself is not wrapped. */
    assert_near(p.state[0], 6.801163764877244, 1e-15);
    assert_near(p.state[1], 0.3595691539531521, 1e-15);
    assert_near(m.state[0], -6.801163764877244, 1e-15);
    double s[2] = {7.0, -3.0};
    step_t r = step_from("Pendulum-v1", s, -0.75f);
    assert_near(r.reward, -1.4143858038432242, 1e-14);
    assert_near(r.state[0], 6.869011997451954, 1e-14);
    assert_near(r.state[1], -2.6197600509609082, 1e-14);
}

static void test_pendulum_truncation(void **unused) {
    (void)unused;
    char err[256];
    env_t *env = env_new("Pendulum-v1", 5, err, sizeof err);
    float obs[3], a = 0.3f;
    int term, trunc;
    env_reset(env, obs);
    for (int t = 1; t <= 200; t++) {
        double r = env_step(env, &a, obs, &term, &trunc);
        assert_false(term);     /* Pendulum never terminates */
        assert_int_equal(trunc, t == 200);
        assert_true(r <= 0 && r >= env_class(env)->reward_lo);
    }
    env_destroy(&env);
}

/* ---- MountainCar-v0 ------------------------------------------------------------- */

static void test_mountaincar(void **unused) {
    (void)unused;
    /* Left wall: -1.19 - 0.0487 is clipped to -1.2 and the velocity zeroed. */
    double wall[2] = {-1.19, -0.05};
    step_t r = step_from("MountainCar-v0", wall, 0);
    assert_near(r.state[0], -1.2, 0);
    assert_near(r.state[1], 0.0, 0);
    assert_near(r.obs[0], -1.2f, 0);
    assert_near(r.reward, -1.0, 0);
    assert_false(r.terminated);
    /* At the wall moving right, the velocity is kept. */
    double wall_right[2] = {-1.2, 0.0};
    r = step_from("MountainCar-v0", wall_right, 2);
    assert_true(r.state[1] > 0);
    assert_near(r.state[1], 0.001 + cos(3 * -1.2) * -0.0025, 0);
    /* The velocity is clipped to 0.07 before the position moves. */
    double fast[2] = {-0.5, 0.0699};
    r = step_from("MountainCar-v0", fast, 2);
    assert_near(r.state[1], 0.07, 0);
    assert_near(r.state[0], -0.43, 1e-16);
    /* Action 1 applies no force: v += cos(3p) * -0.0025. */
    double coast[2] = {-0.3, 0.01};
    r = step_from("MountainCar-v0", coast, 1);
    assert_near(r.state[1], 0.01 + cos(3 * -0.3) * -0.0025, 0);
    assert_near(r.state[1], 0.00844597507932334, 1e-17);
    assert_near(r.state[0], -0.29155402492067667, 1e-16);
    /* The goal: position >= 0.5 with velocity >= 0. */
    double near_goal[2] = {0.49, 0.02};
    r = step_from("MountainCar-v0", near_goal, 2);
    assert_near(r.state[0], 0.5107484356665326, 1e-16);
    assert_near(r.state[1], 0.020748435666532672, 1e-17);
    assert_true(r.terminated);
    assert_near(r.reward, -1.0, 0);
    /* Past the goal position but rolling back: goal_velocity 0 says no. */
    double backwards[2] = {0.52, -0.01};
    r = step_from("MountainCar-v0", backwards, 0);
    assert_true(r.state[0] >= 0.5);
    assert_false(r.terminated);
    /* The right end clips the position to 0.6 and keeps the velocity. */
    double edge[2] = {0.59, 0.07};
    r = step_from("MountainCar-v0", edge, 2);
    assert_near(r.state[0], 0.6, 0);
    assert_near(r.state[1], 0.07, 0);
    assert_true(r.terminated);
    /* The render state: position and the force direction. */
    char err[256];
    env_t *env = env_new("MountainCar-v0", 1, err, sizeof err);
    float obs[2], a = 0, rs[2];
    int term, trunc;
    env_set_state(env, coast, obs);
    env_step(env, &a, obs, &term, &trunc);
    env_render_state(env, rs);
    assert_near(rs[0], obs[0], 0);
    assert_near(rs[1], -1.0, 0);
    /* Truncation at 200 steps: pushing left forever never reaches the goal. */
    env_reset(env, obs);
    for (int t = 1; t <= 200; t++) {
        env_step(env, &a, obs, &term, &trunc);
        assert_false(term);
        assert_int_equal(trunc, t == 200);
    }
    env_destroy(&env);
}

/* ---- MountainCarContinuous-v0 --------------------------------------------------- */

static void test_mountaincar_continuous(void **unused) {
    (void)unused;
    /* Reaching the goal (0.45) pays 100 - 0.1 * a^2. */
    double near_goal[2] = {0.44, 0.02};
    step_t r = step_from("MountainCarContinuous-v0", near_goal, 0.5f);
    assert_true(r.terminated);
    assert_near(r.reward, 100.0 - 0.1 * 0.25, 1e-13);
    assert_near(r.reward, 99.975, 0);
    assert_near(r.state[0], 0.4601295590400696, 0);
    assert_near(r.state[1], 0.02012956142425537, 0);
    /* The state is stored as float32 after each step. */
    assert_true(is_float32(r.state[0]) && is_float32(r.state[1]));
    assert_near(r.obs[0], r.state[0], 0);
    /* The force is clipped to [-1, 1]; the reward uses the raw action. */
    double s[2] = {-0.5, 0.0};
    step_t big = step_from("MountainCarContinuous-v0", s, 3.0f);
    step_t one = step_from("MountainCarContinuous-v0", s, 1.0f);
    assert_near(big.state[0], one.state[0], 0);
    assert_near(big.state[1], one.state[1], 0);
    assert_near(big.state[1], 0.0013231569901108742, 0);
    assert_near(big.reward, -0.9, 1e-15);
    assert_near(one.reward, -0.1, 1e-15);
    assert_false(big.terminated);
    /* Left wall, as in the discrete version (the state then as float32). */
    double wall[2] = {-1.19, -0.06};
    r = step_from("MountainCarContinuous-v0", wall, -1.0f);
    assert_near(r.state[0], (float)-1.2, 0);
    assert_near(r.state[1], 0.0, 0);
    assert_near(r.reward, -0.1, 1e-15);
    /* Past the goal position while rolling back: no goal, no bonus. */
    double backwards[2] = {0.47, -0.01};
    r = step_from("MountainCarContinuous-v0", backwards, 0.0f);
    assert_true(r.state[0] >= 0.45);
    assert_false(r.terminated);
    assert_near(r.reward, 0.0, 0);
    /* The time limit is 999 steps. */
    char err[256];
    env_t *env = env_new("MountainCarContinuous-v0", 2, err, sizeof err);
    float obs[2], a = 0, rs[2];
    int term, trunc;
    env_reset(env, obs);
    for (int t = 1; t <= 999; t++) {
        env_step(env, &a, obs, &term, &trunc);
        assert_false(term);
        assert_int_equal(trunc, t == 999);
    }
    a = -4.0f;
    env_step(env, &a, obs, &term, &trunc);
    env_render_state(env, rs);
    assert_near(rs[0], obs[0], 0);
    assert_near(rs[1], -1.0, 0);
    env_destroy(&env);
}

/* ---- Acrobot-v1 ------------------------------------------------------------------ */

static void check_acrobot(const double *s, float action, const double *want_state, double want_reward,
                          int want_terminated) {
    step_t r = step_from("Acrobot-v1", s, action);
    for (int i = 0; i < 4; i++) assert_near(r.state[i], want_state[i], 1e-14 * (1 + fabs(want_state[i])));
    assert_near(r.reward, want_reward, 0);
    assert_int_equal(r.terminated, want_terminated);
    assert_near(r.obs[0], (float)cos(r.state[0]), 0);
    assert_near(r.obs[1], (float)sin(r.state[0]), 0);
    assert_near(r.obs[2], (float)cos(r.state[1]), 0);
    assert_near(r.obs[3], (float)sin(r.state[1]), 0);
    assert_near(r.obs[4], (float)r.state[2], 0);
    assert_near(r.obs[5], (float)r.state[3], 0);
    /* Angles wrapped into [-pi, pi], velocities bounded. */
    assert_true(r.state[0] >= -M_PI && r.state[0] <= M_PI);
    assert_true(r.state[1] >= -M_PI && r.state[1] <= M_PI);
    assert_true(fabs(r.state[2]) <= 4 * M_PI && fabs(r.state[3]) <= 9 * M_PI);
}

static void test_acrobot(void **unused) {
    (void)unused;
    /* Hanging still with no torque: only rounding moves it (cos(-pi/2) is
     * 6e-17, not 0), and the tip is far below the line. */
    double rest[4] = {0, 0, 0, 0};
    double rest_next[4] = {-7.61073181518892e-18, 5.854409088606863e-18, -7.610731815188921e-17,
                           5.854409088606864e-17};
    check_acrobot(rest, 1, rest_next, -1.0, 0);
    /* Pointing straight up: -cos(pi) - cos(pi) = 2 > 1, terminated, reward 0. */
    double up[4] = {M_PI, 0, 0, 0};
    double up_next[4] = {3.141592653589793, 5.854409088606863e-18, -7.610731815188921e-17, 5.854409088606864e-17};
    check_acrobot(up, 1, up_next, 0.0, 1);
    /* Termination reached from a state below the line. */
    double rising[4] = {2.30835938639477, -0.8713129751628568, 1.7161354778029816, 1.6493885527118497};
    double rising_next[4] = {2.5239889013953083, -0.42790707057132743, 0.5118487952611577, 2.69929433774956};
    assert_true(-cos(rising[0]) - cos(rising[0] + rising[1]) < 1.0);
    check_acrobot(rising, 2, rising_next, 0.0, 1);
    /* theta1 runs past pi and wraps to -0.81; dtheta1 is bounded to 4 pi. */
    double spin[4] = {3.0, 0.0, 12.0, 0.0};
    double spin_next[4] = {-0.8147097403858705, -0.05685466811447427, 4 * M_PI, -0.29596823483250395};
    check_acrobot(spin, 1, spin_next, -1.0, 0);
    /* Wrapping from below, and the lower velocity bound. */
    double spin2[4] = {-3.0, 3.0, -12.0, 20.0};
    double spin2_next[4] = {0.45230175217268886, 1.9523464639428632, -4 * M_PI, 25.420586473881457};
    check_acrobot(spin2, 0, spin2_next, -1.0, 0);
    /* dtheta2 bounded to -9 pi. */
    double whip[4] = {0.777311899171135, 2.855044695830922, -9.524486073155625, -14.320705008264186};
    double whip_next[4] = {0.86594007535932, -2.3592157801154636, 8.317559399385523, -9 * M_PI};
    check_acrobot(whip, 1, whip_next, -1.0, 0);
    /* An ordinary step from a reset-like state, torque +1. */
    double small[4] = {(float)0.05, (float)-0.03, (float)0.08, (float)-0.02};
    double small_next[4] = {0.045428932885834515, 0.008620578568512137, -0.12330030304900916, 0.39832144494547184};
    check_acrobot(small, 2, small_next, -1.0, 0);
    /* The render state: both angles. */
    char err[256];
    env_t *env = env_new("Acrobot-v1", 1, err, sizeof err);
    float obs[6], rs[2];
    env_set_state(env, spin2, obs);
    env_render_state(env, rs);
    assert_near(rs[0], -3.0, 0);
    assert_near(rs[1], 3.0, 0);
    env_destroy(&env);
}

/* ---- resets and seeding ------------------------------------------------------------ */

static void test_reset_ranges(void **unused) {
    (void)unused;
    const char *const *ids = env_ids();
    for (int e = 0; ids[e]; e++) {
        if (is_mujoco(ids[e])) continue;
        char err[256];
        env_t *env = env_new(ids[e], 100 + (uint64_t)e, err, sizeof err);
        const env_class_t *c = env_class(env);
        double lo[4] = {INFINITY, INFINITY, INFINITY, INFINITY}, hi[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
        for (int k = 0; k < 2000; k++) {
            float obs[ENV_MAX_DIM];
            double s[ENV_MAX_DIM];
            env_reset(env, obs);
            env_get_state(env, s);
            for (int i = 0; i < c->state_dim; i++) {
                lo[i] = fmin(lo[i], s[i]);
                hi[i] = fmax(hi[i], s[i]);
            }
            for (int i = 0; i < c->obs_dim; i++) assert_true(obs[i] >= c->obs_low[i] && obs[i] <= c->obs_high[i]);
            if (strcmp(ids[e], "Acrobot-v1") == 0)
                for (int i = 0; i < 4; i++) assert_true(is_float32(s[i]));   /* .astype(np.float32) */
        }
        /* Each component spans (nearly all of) its uniform range and no more. */
        double want_lo[4], want_hi[4];
        int n = c->state_dim;
        if (strcmp(ids[e], "CartPole-v1") == 0) {
            for (int i = 0; i < 4; i++) want_lo[i] = -0.05, want_hi[i] = 0.05;
        } else if (strcmp(ids[e], "Pendulum-v1") == 0) {
            want_lo[0] = -M_PI, want_hi[0] = M_PI, want_lo[1] = -1, want_hi[1] = 1;
        } else if (strncmp(ids[e], "MountainCar", 11) == 0) {
            want_lo[0] = -0.6, want_hi[0] = -0.4, want_lo[1] = 0, want_hi[1] = 0;
        } else {
            for (int i = 0; i < 4; i++) want_lo[i] = -0.1, want_hi[i] = 0.1;
        }
        for (int i = 0; i < n; i++) {
            double width = want_hi[i] - want_lo[i], slack = 0.01 * width + 1e-7;
            printf("# %-26s state[%d] in [%.4f, %.4f]\n", ids[e], i, lo[i], hi[i]);
            assert_true(lo[i] >= want_lo[i] - 1e-7 && hi[i] <= want_hi[i] + 1e-7);
            assert_true(lo[i] <= want_lo[i] + slack && hi[i] >= want_hi[i] - slack);
        }
        env_destroy(&env);
    }
}

static void test_reset_determinism(void **unused) {
    (void)unused;
    const char *const *ids = env_ids();
    for (int e = 0; ids[e]; e++) {
        if (is_mujoco(ids[e])) continue;
        char err[256];
        env_t *a = env_new(ids[e], 42, err, sizeof err), *b = env_new(ids[e], 42, err, sizeof err);
        env_t *c = env_new(ids[e], 43, err, sizeof err);
        const env_class_t *cls = env_class(a);
        int differs = 0;
        for (int k = 0; k < 20; k++) {
            float oa[ENV_MAX_DIM], ob[ENV_MAX_DIM], oc[ENV_MAX_DIM];
            env_reset(a, oa);
            env_reset(b, ob);
            env_reset(c, oc);
            assert_memory_equal(oa, ob, sizeof(float) * (size_t)cls->obs_dim);
            differs |= memcmp(oa, oc, sizeof(float) * (size_t)cls->obs_dim) != 0;
            /* Same seed, same actions: the same trajectory. */
            for (int t = 0; t < 10; t++) {
                float act = cls->act.discrete ? (float)((k + t) % cls->act.n) : (float)(0.3 * (t - 5));
                int ta, tra, tb, trb;
                double ra = env_step(a, &act, oa, &ta, &tra), rb = env_step(b, &act, ob, &tb, &trb);
                assert_memory_equal(oa, ob, sizeof(float) * (size_t)cls->obs_dim);
                assert_true(ra == rb && ta == tb && tra == trb);
            }
        }
        assert_true(differs);
        env_destroy(&a);
        env_destroy(&b);
        env_destroy(&c);
    }
}

/* ---- replay error handling ------------------------------------------------------------ */

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* One episode of env id from state, in the reference format, as a line.
 * (noinline: inlined, GCC 12 mistakes the open_memstream buffer for a
 * dangling pointer to a local.) */
__attribute__((noinline)) static char *episode_line(const char *id, const double *init, const float *actions, int steps) {
    char err[256], num[40], *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    env_t *env = env_new(id, 1, err, sizeof err);
    const env_class_t *c = env_class(env);
    float obs[ENV_MAX_DIM];
    env_set_state(env, init, obs);
    fprintf(out, "{\"env\":\"%s\",\"init_state\":[", id);
    for (int i = 0; i < c->state_dim; i++) {
        json_format_number(num, sizeof num, init[i]);
        fprintf(out, "%s%s", i ? "," : "", num);
    }
    fprintf(out, "],\"steps\":[");
    for (int t = 0; t < steps; t++) {
        int term, trunc;
        double reward = env_step(env, &actions[t], obs, &term, &trunc), s[ENV_MAX_DIM];
        env_get_state(env, s);
        if (c->act.discrete) fprintf(out, "%s{\"action\":%d,\"obs\":[", t ? "," : "", (int)actions[t]);
        else fprintf(out, "%s{\"action\":[%.9g],\"obs\":[", t ? "," : "", (double)actions[t]);
        for (int i = 0; i < c->obs_dim; i++) {
            json_format_number(num, sizeof num, obs[i]);
            fprintf(out, "%s%s", i ? "," : "", num);
        }
        json_format_number(num, sizeof num, reward);
        fprintf(out, "],\"reward\":%s,\"terminated\":%s,\"truncated\":%s,\"state\":[", num, term ? "true" : "false",
                trunc ? "true" : "false");
        for (int i = 0; i < c->state_dim; i++) {
            json_format_number(num, sizeof num, s[i]);
            fprintf(out, "%s%s", i ? "," : "", num);
        }
        fprintf(out, "]}");
    }
    fprintf(out, "],\"episode\":7,\"policy\":\"test\"}\n");
    fclose(out);
    env_destroy(&env);
    return text;
}

/* Replays text written to a file; returns rc, the report in report. */
static int replay_text(const char *text, char *err, size_t errlen, char **report) {
    char path[512];
    snprintf(path, sizeof path, "%s/replay-%d.jsonl", tmp_dir(), (int)getpid());
    write_text(path, text);
    size_t len = 0;
    FILE *out = open_memstream(report, &len);
    int rc = env_replay_file(path, 1e-5, out, err, errlen);
    fclose(out);
    unlink(path);
    return rc;
}

/* Replaces the first occurrence of from in text (in place when it fits). */
static char *replace_first(const char *text, const char *from, const char *to) {
    const char *at = strstr(text, from);
    assert_non_null(at);
    size_t n = strlen(text) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);
    size_t head = (size_t)(at - text);
    memcpy(out, text, head);
    strcpy(out + head, to);
    strcat(out, at + strlen(from));
    return out;
}

static void test_replay_self_generated(void **unused) {
    (void)unused;
    /* Files written from our own steps replay exactly, for every env. */
    double mc[2] = {-0.5, 0.0}, cp[4] = {0.01, 0, -0.02, 0.03}, pd[2] = {1.0, -0.5}, ac[4] = {0.05, 0, 0, 0};
    float discrete[6] = {0, 1, 2, 1, 0, 2}, cont[6] = {0.5f, -1.5f, 1.0f, 0.25f, -0.125f, 2.0f};
    const struct {
        const char *id;
        const double *init;
        const float *actions;
    } cases[] = {
        {"CartPole-v1", cp, (const float[]){0, 1, 1, 0, 1, 0}}, {"Pendulum-v1", pd, cont},
        {"MountainCar-v0", mc, discrete}, {"MountainCarContinuous-v0", mc, cont}, {"Acrobot-v1", ac, discrete},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *line = episode_line(cases[i].id, cases[i].init, cases[i].actions, 6), err[512], *report = NULL;
        int rc = replay_text(line, err, sizeof err, &report);
        if (rc != 0) fail_msg("%s: rc %d: %s %s", cases[i].id, rc, err, report);
        assert_non_null(strstr(report, "1 episodes, 6 steps"));
        assert_non_null(strstr(report, "worst deviation (obs, reward): 0 (every compared value identical)"));
        free(report);
        free(line);
    }
}

static void test_replay_altered_observation(void **unused) {
    (void)unused;
    double init[4] = {0.01, 0.02, 0.03, 0.04};
    float actions[3] = {1, 0, 1};
    char *line = episode_line("CartPole-v1", init, actions, 3), err[512], *report = NULL;
    /* Move the first observation by 0.01, well past the tolerance. */
    const char *obs_at = strstr(line, "\"obs\":[") + 7;
    double first = strtod(obs_at, NULL);
    char from[64], to[64];
    snprintf(from, sizeof from, "\"obs\":[%.*s", (int)strcspn(obs_at, ","), obs_at);
    snprintf(to, sizeof to, "\"obs\":[%.9g", first + 0.01);
    char *altered = replace_first(line, from, to);
    assert_int_equal(replay_text(altered, err, sizeof err, &report), 1);
    assert_non_null(strstr(report, "MISMATCH"));
    assert_non_null(strstr(report, "episode 7 step 1: obs[0]"));
    assert_non_null(strstr(report, "worst deviation (obs, reward): 0.01 (episode 7, step 1, obs[0])"));
    free(report);
    free(altered);
    /* A flipped flag is a mismatch too, whatever the tolerance. */
    altered = replace_first(line, "\"terminated\":false", "\"terminated\":true");
    report = NULL;
    assert_int_equal(replay_text(altered, err, sizeof err, &report), 1);
    assert_non_null(strstr(report, "terminated false, expected true"));
    free(report);
    free(altered);
    free(line);
}

static void test_replay_broken_files(void **unused) {
    (void)unused;
    double init[4] = {0.01, 0.02, 0.03, 0.04};
    float actions[2] = {1, 0};
    char *line = episode_line("CartPole-v1", init, actions, 2), err[512], *report = NULL;
    struct {
        char *text;
        const char *expect;
    } cases[8];
    int n = 0;
    /* A good line, then one cut short. */
    size_t len = strlen(line);
    char *two = malloc(2 * len + 1);
    memcpy(two, line, len);
    memcpy(two + len, line, len / 2);
    two[len + len / 2] = '\0';
    cases[n].text = two, cases[n++].expect = "line 2: malformed JSON: byte";
    cases[n].text = replace_first(line, "\"obs\":", "\"observation\":"),
    cases[n++].expect = "line 1: step 1: missing field \"obs\"";
    cases[n].text = replace_first(line, "CartPole-v1", "CartPole-v9"),
    cases[n++].expect = "line 1: unknown environment 'CartPole-v9'";
    cases[n].text = replace_first(line, "\"action\":1", "\"action\":1.5"),
    cases[n++].expect = "line 1: step 1: field \"action\" must be an integer";
    cases[n].text = replace_first(line, "\"init_state\":[", "\"init_state\":[1,"),
    cases[n++].expect = "line 1: field \"init_state\" has 5 values, expected 4";
    cases[n].text = replace_first(line, "\"reward\":1", "\"reward\":\"one\""),
    cases[n++].expect = "line 1: step 1: field \"reward\" must be a number";
    cases[n].text = strdup("\n\n"), cases[n++].expect = "no episodes";
    cases[n].text = strdup("[1,2,3]\n"), cases[n++].expect = "line 1: expected an episode object";
    for (int i = 0; i < n; i++) {
        report = NULL;
        int rc = replay_text(cases[i].text, err, sizeof err, &report);
        printf("# %s\n", err);
        assert_int_equal(rc, -1);
        if (!strstr(err, cases[i].expect)) fail_msg("error \"%s\" lacks \"%s\"", err, cases[i].expect);
        assert_non_null(strstr(err, "replay-"));     /* names the file */
        free(report);
        free(cases[i].text);
    }
    assert_int_equal(env_replay_file("/nonexistent/file.jsonl", 1e-5, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/file.jsonl"));
    free(line);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_unknown_id),
        cmocka_unit_test(test_replay_reference_files),
        cmocka_unit_test(test_cartpole_dynamics),
        cmocka_unit_test(test_cartpole_termination),
        cmocka_unit_test(test_cartpole_truncation),
        cmocka_unit_test(test_discrete_action_sanitising),
        cmocka_unit_test(test_pendulum_dynamics),
        cmocka_unit_test(test_pendulum_clipping),
        cmocka_unit_test(test_pendulum_angle_normalisation),
        cmocka_unit_test(test_pendulum_truncation),
        cmocka_unit_test(test_mountaincar),
        cmocka_unit_test(test_mountaincar_continuous),
        cmocka_unit_test(test_acrobot),
        cmocka_unit_test(test_reset_ranges),
        cmocka_unit_test(test_reset_determinism),
        cmocka_unit_test(test_replay_self_generated),
        cmocka_unit_test(test_replay_altered_observation),
        cmocka_unit_test(test_replay_broken_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
