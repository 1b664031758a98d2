/* env_classic.c - Gymnasium 0.29's classic-control environments:
 * CartPole-v1, Pendulum-v1, MountainCar-v0, MountainCarContinuous-v0 and
 * Acrobot-v1, step for step.
 *
 * Owns: their dynamics, rewards, termination, reset distributions, spaces and
 * render states. The time limit is env.c's (the TimeLimit wrapper).
 *
 * "Step for step" means the same floating-point operations in the same order
 * as the Python source run under NumPy 1.24 (Debian 12), so a replay of a
 * Gymnasium episode agrees to the last bit rather than merely closely:
 *  - every expression keeps Python's evaluation order (C's left-to-right
 *    associativity of + - * / matches Python's, and ISO C mode keeps GCC from
 *    contracting a*b+c into an FMA);
 *  - Python's x**2 calls libm pow(), which differs from x*x in the last bit
 *    for about 0.1% of inputs; py_square() keeps that call;
 *  - NumPy 1.x promotes a float32 NumPy scalar combined with a Python float
 *    or int to float64 (no value-based casting between scalars), so a
 *    float32 action enters the arithmetic widened, not rounded to float32
 *    again after each operation;
 *  - where Gymnasium keeps a float32 state (MountainCarContinuous after a
 *    step, Acrobot right after reset) it is rounded to float32 here too.
 * sin/cos are glibc's, as NumPy's float64 sin/cos and Python's math module
 * are on Debian 12. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "env.h"

/* Python's x**2 (float.__pow__ and NumPy's scalar power both call pow()).
 * GCC folds pow(x, 2.0) into x*x, so the exponent goes through a volatile. */
static double py_square(double x) {
    volatile double two = 2.0;
    return pow(x, two);
}

/* Python's and NumPy's float modulo: the result takes the divisor's sign. */
static double py_mod(double a, double b) {
    double mod = fmod(a, b);
    if (mod != 0.0) {
        if ((b < 0) != (mod < 0)) mod += b;
    } else {
        mod = copysign(0.0, b);
    }
    return mod;
}

/* np.clip of a scalar: NaN passes through, as NumPy's does. */
static double clip(double x, double lo, double hi) {
    if (x < lo) return lo;
    if (x > hi) return hi;
    return x;
}

/* Stores x as float32 and reads it back. The volatile is not decoration:
 * GCC 12 at -O2 drops a plain (double)(float)x round trip when its SLP
 * vectorizer pairs two such stores (position and velocity), which left
 * MountainCarContinuous's state unrounded. */
static double round_to_float32(double x) {
    volatile float f = (float)x;
    return f;
}

/* ==== CartPole-v1 ============================================================
 * cartpole.py: Euler integration (kinematics_integrator "euler"), tau 0.02,
 * reward 1 per step including the one that terminates, 0 afterwards
 * (steps_beyond_terminated) until reset.
 * State (float64): x, x_dot, theta, theta_dot. Observation: the same as float32.
 * render_state: [x, theta]. */

#define CP_GRAVITY 9.8
#define CP_MASSCART 1.0
#define CP_MASSPOLE 0.1
#define CP_TOTAL_MASS (CP_MASSPOLE + CP_MASSCART)
#define CP_LENGTH 0.5                               /* half the pole's length */
#define CP_POLEMASS_LENGTH (CP_MASSPOLE * CP_LENGTH)
#define CP_FORCE_MAG 10.0
#define CP_TAU 0.02
#define CP_THETA_THRESHOLD (12 * 2 * M_PI / 360)
#define CP_X_THRESHOLD 2.4

typedef struct {
    env_t base;
    double state[4];
    int steps_beyond_terminated;    /* -1 for Gymnasium's None */
} cartpole_t;

static void cartpole_obs(const cartpole_t *self, float *obs) {
    for (int i = 0; i < 4; i++) obs[i] = (float)self->state[i];
}

static void cartpole_reset(env_t *env, rng_t *rng, float *obs) {
    cartpole_t *self = (cartpole_t *)env;
    for (int i = 0; i < 4; i++) self->state[i] = rng_range(rng, -0.05, 0.05);
    self->steps_beyond_terminated = -1;
    cartpole_obs(self, obs);
}

static double cartpole_step(env_t *env, const float *action, float *obs, int *terminated) {
    cartpole_t *self = (cartpole_t *)env;
    double x = self->state[0], x_dot = self->state[1];
    double theta = self->state[2], theta_dot = self->state[3];
    double force = action[0] == 1.0f ? CP_FORCE_MAG : -CP_FORCE_MAG;
    double costheta = cos(theta);
    double sintheta = sin(theta);

    double temp = (force + CP_POLEMASS_LENGTH * py_square(theta_dot) * sintheta) / CP_TOTAL_MASS;
    double thetaacc = (CP_GRAVITY * sintheta - costheta * temp) /
                      (CP_LENGTH * (4.0 / 3.0 - CP_MASSPOLE * py_square(costheta) / CP_TOTAL_MASS));
    double xacc = temp - CP_POLEMASS_LENGTH * thetaacc * costheta / CP_TOTAL_MASS;

    x = x + CP_TAU * x_dot;
    x_dot = x_dot + CP_TAU * xacc;
    theta = theta + CP_TAU * theta_dot;
    theta_dot = theta_dot + CP_TAU * thetaacc;
    self->state[0] = x;
    self->state[1] = x_dot;
    self->state[2] = theta;
    self->state[3] = theta_dot;

    int done = x < -CP_X_THRESHOLD || x > CP_X_THRESHOLD ||
               theta < -CP_THETA_THRESHOLD || theta > CP_THETA_THRESHOLD;
    double reward;
    if (!done) {
        reward = 1.0;
    } else if (self->steps_beyond_terminated < 0) {
        self->steps_beyond_terminated = 0;      /* the pole just fell */
        reward = 1.0;
    } else {
        self->steps_beyond_terminated++;        /* stepping past the end */
        reward = 0.0;
    }
    *terminated = done;
    cartpole_obs(self, obs);
    return reward;
}

static void cartpole_set_state(env_t *env, const double *state, float *obs) {
    cartpole_t *self = (cartpole_t *)env;
    memcpy(self->state, state, sizeof self->state);
    self->steps_beyond_terminated = -1;
    cartpole_obs(self, obs);
}

static void cartpole_get_state(const env_t *env, double *state) {
    memcpy(state, ((const cartpole_t *)env)->state, 4 * sizeof(double));
}

static void cartpole_render_state(const env_t *env, float *out) {
    const cartpole_t *self = (const cartpole_t *)env;
    out[0] = (float)self->state[0];
    out[1] = (float)self->state[2];
}

const env_class_t env_cartpole_v1 = {
    .id = "CartPole-v1",
    .obs_dim = 4,
    .obs_low = {-(double)(float)(CP_X_THRESHOLD * 2), -FLT_MAX, -(double)(float)(CP_THETA_THRESHOLD * 2), -FLT_MAX},
    .obs_high = {(double)(float)(CP_X_THRESHOLD * 2), FLT_MAX, (double)(float)(CP_THETA_THRESHOLD * 2), FLT_MAX},
    .act = {.discrete = 1, .n = 2},
    .state_dim = 4,
    .render_dim = 2,
    .render_kind = "cartpole",
    .max_steps = 500,
    .reward_lo = 0.0,
    .reward_hi = 1.0,
    .size = sizeof(cartpole_t),
    .reset = cartpole_reset,
    .step = cartpole_step,
    .set_state = cartpole_set_state,
    .get_state = cartpole_get_state,
    .render_state = cartpole_render_state,
};

/* ==== Pendulum-v1 ============================================================
 * pendulum.py with g = 10: the torque is the float32 action clipped to
 * [-2, 2] (np.clip keeps float32), the cost uses the state before the step,
 * the new velocity is clipped to [-8, 8]. The state stays float64: NumPy 1.x
 * widens the float32 torque in 3.0 * u, so nothing in the update is float32.
 * State: theta, theta_dot. Observation: cos(theta), sin(theta), theta_dot.
 * render_state: [theta, last torque applied (0 after reset)]. */

#define PD_MAX_SPEED 8.0
#define PD_MAX_TORQUE 2.0
#define PD_DT 0.05
#define PD_G 10.0
#define PD_M 1.0
#define PD_L 1.0

typedef struct {
    env_t base;
    double th, thdot;
    float last_u;
} pendulum_t;

static double angle_normalize(double x) { return py_mod(x + M_PI, 2 * M_PI) - M_PI; }

static void pendulum_obs(const pendulum_t *self, float *obs) {
    obs[0] = (float)cos(self->th);
    obs[1] = (float)sin(self->th);
    obs[2] = (float)self->thdot;
}

static void pendulum_reset(env_t *env, rng_t *rng, float *obs) {
    pendulum_t *self = (pendulum_t *)env;
    self->th = rng_range(rng, -M_PI, M_PI);
    self->thdot = rng_range(rng, -1.0, 1.0);
    self->last_u = 0.0f;
    pendulum_obs(self, obs);
}

static double pendulum_step(env_t *env, const float *action, float *obs, int *terminated) {
    pendulum_t *self = (pendulum_t *)env;
    double th = self->th, thdot = self->thdot;
    float u32 = action[0];
    if (u32 < (float)-PD_MAX_TORQUE) u32 = (float)-PD_MAX_TORQUE;
    if (u32 > (float)PD_MAX_TORQUE) u32 = (float)PD_MAX_TORQUE;
    self->last_u = u32;
    double u = u32;
    double costs = py_square(angle_normalize(th)) + 0.1 * py_square(thdot) + 0.001 * py_square(u);

    double newthdot = thdot + (3 * PD_G / (2 * PD_L) * sin(th) + 3.0 / (PD_M * PD_L * PD_L) * u) * PD_DT;
    newthdot = clip(newthdot, -PD_MAX_SPEED, PD_MAX_SPEED);
    double newth = th + newthdot * PD_DT;
    self->th = newth;
    self->thdot = newthdot;
    *terminated = 0;
    pendulum_obs(self, obs);
    return -costs;
}

static void pendulum_set_state(env_t *env, const double *state, float *obs) {
    pendulum_t *self = (pendulum_t *)env;
    self->th = state[0];
    self->thdot = state[1];
    self->last_u = 0.0f;
    pendulum_obs(self, obs);
}

static void pendulum_get_state(const env_t *env, double *state) {
    const pendulum_t *self = (const pendulum_t *)env;
    state[0] = self->th;
    state[1] = self->thdot;
}

static void pendulum_render_state(const env_t *env, float *out) {
    const pendulum_t *self = (const pendulum_t *)env;
    out[0] = (float)self->th;
    out[1] = self->last_u;
}

const env_class_t env_pendulum_v1 = {
    .id = "Pendulum-v1",
    .obs_dim = 3,
    .obs_low = {-1.0, -1.0, -PD_MAX_SPEED},
    .obs_high = {1.0, 1.0, PD_MAX_SPEED},
    .act = {.discrete = 0, .n = 1, .low = {-PD_MAX_TORQUE}, .high = {PD_MAX_TORQUE}},
    .state_dim = 2,
    .render_dim = 2,
    .render_kind = "pendulum",
    .max_steps = 200,
    /* -(pi^2 + 0.1 * 8^2 + 0.001 * 2^2): upside down, fastest, full torque */
    .reward_lo = -(M_PI * M_PI + 0.1 * PD_MAX_SPEED * PD_MAX_SPEED + 0.001 * PD_MAX_TORQUE * PD_MAX_TORQUE),
    .reward_hi = 0.0,
    .size = sizeof(pendulum_t),
    .reset = pendulum_reset,
    .step = pendulum_step,
    .set_state = pendulum_set_state,
    .get_state = pendulum_get_state,
    .render_state = pendulum_render_state,
};

/* ==== MountainCar-v0 and MountainCarContinuous-v0 ===========================
 * mountain_car.py and continuous_mountain_car.py share the hill, the limits
 * and the inelastic left wall (velocity zeroed when the car sits at -1.2
 * moving left). They differ in the force (discrete (a-1)*0.001; continuous
 * the action clipped to [-1, 1] times 0.0015), the goal (position >= 0.5 or
 * 0.45, and velocity >= goal_velocity, 0 by default), the reward (-1 per
 * step; -0.1*a^2 with the unclipped action, +100 on reaching the goal) and
 * the state's type (float64; float32 after each continuous step).
 * State: position, velocity. Observation: the same as float32.
 * render_state: [position, force direction in [-1, 1] of the last action
 * (discrete: action - 1; continuous: the clipped action; 0 after reset)]. */

#define MC_MIN_POSITION -1.2
#define MC_MAX_POSITION 0.6
#define MC_MAX_SPEED 0.07
#define MC_GRAVITY 0.0025
#define MC_FORCE 0.001
#define MC_GOAL_POSITION 0.5
#define MCC_GOAL_POSITION 0.45
#define MCC_POWER 0.0015
#define MC_GOAL_VELOCITY 0.0

typedef struct {
    env_t base;
    double position, velocity;
    float last_force;
} mountaincar_t;

static void mountaincar_obs(const mountaincar_t *self, float *obs) {
    obs[0] = (float)self->position;
    obs[1] = (float)self->velocity;
}

static void mountaincar_reset(env_t *env, rng_t *rng, float *obs) {
    mountaincar_t *self = (mountaincar_t *)env;
    self->position = rng_range(rng, -0.6, -0.4);
    self->velocity = 0.0;
    self->last_force = 0.0f;
    mountaincar_obs(self, obs);
}

static double mountaincar_step(env_t *env, const float *action, float *obs, int *terminated) {
    mountaincar_t *self = (mountaincar_t *)env;
    int a = (int)action[0];
    double position = self->position, velocity = self->velocity;
    velocity += (a - 1) * MC_FORCE + cos(3 * position) * (-MC_GRAVITY);
    velocity = clip(velocity, -MC_MAX_SPEED, MC_MAX_SPEED);
    position += velocity;
    position = clip(position, MC_MIN_POSITION, MC_MAX_POSITION);
    if (position == MC_MIN_POSITION && velocity < 0) velocity = 0;
    *terminated = position >= MC_GOAL_POSITION && velocity >= MC_GOAL_VELOCITY;
    self->position = position;
    self->velocity = velocity;
    self->last_force = (float)(a - 1);
    mountaincar_obs(self, obs);
    return -1.0;
}

static double mountaincar_continuous_step(env_t *env, const float *action, float *obs, int *terminated) {
    mountaincar_t *self = (mountaincar_t *)env;
    double position = self->position, velocity = self->velocity;
    /* min(max(action[0], -1.0), 1.0) in Python: NaN passes through. */
    double force = action[0];
    if (-1.0 > force) force = -1.0;
    if (1.0 < force) force = 1.0;

    velocity += force * MCC_POWER - 0.0025 * cos(3 * position);
    if (velocity > MC_MAX_SPEED) velocity = MC_MAX_SPEED;
    if (velocity < -MC_MAX_SPEED) velocity = -MC_MAX_SPEED;
    position += velocity;
    if (position > MC_MAX_POSITION) position = MC_MAX_POSITION;
    if (position < MC_MIN_POSITION) position = MC_MIN_POSITION;
    if (position == MC_MIN_POSITION && velocity < 0) velocity = 0;

    int done = position >= MCC_GOAL_POSITION && velocity >= MC_GOAL_VELOCITY;
    double reward = 0;
    if (done) reward = 100.0;
    reward -= py_square((double)action[0]) * 0.1;   /* math.pow(action[0], 2), unclipped */

    /* self.state = np.array([position, velocity], dtype=np.float32) */
    self->position = round_to_float32(position);
    self->velocity = round_to_float32(velocity);
    self->last_force = (float)force;
    *terminated = done;
    mountaincar_obs(self, obs);
    return reward;
}

static void mountaincar_set_state(env_t *env, const double *state, float *obs) {
    mountaincar_t *self = (mountaincar_t *)env;
    self->position = state[0];
    self->velocity = state[1];
    self->last_force = 0.0f;
    mountaincar_obs(self, obs);
}

static void mountaincar_get_state(const env_t *env, double *state) {
    const mountaincar_t *self = (const mountaincar_t *)env;
    state[0] = self->position;
    state[1] = self->velocity;
}

static void mountaincar_render_state(const env_t *env, float *out) {
    const mountaincar_t *self = (const mountaincar_t *)env;
    out[0] = (float)self->position;
    out[1] = self->last_force;
}

const env_class_t env_mountaincar_v0 = {
    .id = "MountainCar-v0",
    .obs_dim = 2,
    .obs_low = {(double)(float)MC_MIN_POSITION, (double)(float)-MC_MAX_SPEED},
    .obs_high = {(double)(float)MC_MAX_POSITION, (double)(float)MC_MAX_SPEED},
    .act = {.discrete = 1, .n = 3},
    .state_dim = 2,
    .render_dim = 2,
    .render_kind = "mountaincar",
    .max_steps = 200,
    .reward_lo = -1.0,
    .reward_hi = 0.0,
    .size = sizeof(mountaincar_t),
    .reset = mountaincar_reset,
    .step = mountaincar_step,
    .set_state = mountaincar_set_state,
    .get_state = mountaincar_get_state,
    .render_state = mountaincar_render_state,
};

const env_class_t env_mountaincar_continuous_v0 = {
    .id = "MountainCarContinuous-v0",
    .obs_dim = 2,
    .obs_low = {(double)(float)MC_MIN_POSITION, (double)(float)-MC_MAX_SPEED},
    .obs_high = {(double)(float)MC_MAX_POSITION, (double)(float)MC_MAX_SPEED},
    .act = {.discrete = 0, .n = 1, .low = {-1.0}, .high = {1.0}},
    .state_dim = 2,
    .render_dim = 2,
    .render_kind = "mountaincar",
    .max_steps = 999,
    /* For actions inside the space; the reward uses the unclipped action, so
     * an action outside [-1, 1] costs more than 0.1, as in Gymnasium. */
    .reward_lo = -0.1,
    .reward_hi = 100.0,
    .size = sizeof(mountaincar_t),
    .reset = mountaincar_reset,
    .step = mountaincar_continuous_step,
    .set_state = mountaincar_set_state,
    .get_state = mountaincar_get_state,
    .render_state = mountaincar_render_state,
};

/* ==== Acrobot-v1 =============================================================
 * acrobot.py with the book dynamics (book_or_nips = "book"), no torque noise:
 * one rk4 step over dt = 0.2 of the state augmented with the torque, then
 * theta1 and theta2 wrapped into [-pi, pi], the velocities bounded to 4*pi
 * and 9*pi. Reset draws float32 values (.astype(np.float32)); the first step
 * widens them to float64 (np.append with a Python float).
 * Terminated when -cos(theta1) - cos(theta2 + theta1) > 1; reward -1 per
 * step, 0 on the terminating step.
 * State: theta1, theta2, dtheta1, dtheta2.
 * Observation: cos/sin of theta1, cos/sin of theta2, dtheta1, dtheta2.
 * render_state: [theta1, theta2] (theta2 relative to the first link). */

#define AC_DT 0.2
#define AC_LINK_LENGTH_1 1.0
#define AC_LINK_MASS_1 1.0
#define AC_LINK_MASS_2 1.0
#define AC_LINK_COM_POS_1 0.5
#define AC_LINK_COM_POS_2 0.5
#define AC_LINK_MOI 1.0
#define AC_MAX_VEL_1 (4 * M_PI)
#define AC_MAX_VEL_2 (9 * M_PI)

typedef struct {
    env_t base;
    double state[4];
} acrobot_t;

static const double acrobot_torques[3] = {-1.0, 0.0, +1.0};

/* _dsdt: derivatives of the augmented state s[0..4] (s[4] is the torque). */
static void acrobot_dsdt(const double *s_augmented, double *ds) {
    const double m1 = AC_LINK_MASS_1, m2 = AC_LINK_MASS_2;
    const double l1 = AC_LINK_LENGTH_1;
    const double lc1 = AC_LINK_COM_POS_1, lc2 = AC_LINK_COM_POS_2;
    const double I1 = AC_LINK_MOI, I2 = AC_LINK_MOI;
    const double g = 9.8;
    /* Squares of the constants are exact, so lc1 * lc1 equals lc1**2. */
    const double lc1_sq = lc1 * lc1, lc2_sq = lc2 * lc2, l1_sq = l1 * l1;
    double a = s_augmented[4];
    double theta1 = s_augmented[0], theta2 = s_augmented[1];
    double dtheta1 = s_augmented[2], dtheta2 = s_augmented[3];

    double d1 = m1 * lc1_sq + m2 * (l1_sq + lc2_sq + 2 * l1 * lc2 * cos(theta2)) + I1 + I2;
    double d2 = m2 * (lc2_sq + l1 * lc2 * cos(theta2)) + I2;
    double phi2 = m2 * lc2 * g * cos(theta1 + theta2 - M_PI / 2.0);
    double phi1 = -m2 * l1 * lc2 * py_square(dtheta2) * sin(theta2) -
                  2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin(theta2) +
                  (m1 * lc1 + m2 * l1) * g * cos(theta1 - M_PI / 2) + phi2;
    double ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * py_square(dtheta1) * sin(theta2) - phi2) /
                      (m2 * lc2_sq + I2 - py_square(d2) / d1);
    double ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    ds[0] = dtheta1;
    ds[1] = dtheta2;
    ds[2] = ddtheta1;
    ds[3] = ddtheta2;
    ds[4] = 0.0;
}

/* rk4(derivs, y0, [0, dt]) as acrobot.py writes it, elementwise in float64. */
static void acrobot_rk4(const double *y0, double *out) {
    const double dt = AC_DT - 0.0;      /* t[1] - t[0] */
    const double dt2 = dt / 2.0;
    double k1[5], k2[5], k3[5], k4[5], y[5];
    acrobot_dsdt(y0, k1);
    for (int i = 0; i < 5; i++) y[i] = y0[i] + dt2 * k1[i];
    acrobot_dsdt(y, k2);
    for (int i = 0; i < 5; i++) y[i] = y0[i] + dt2 * k2[i];
    acrobot_dsdt(y, k3);
    for (int i = 0; i < 5; i++) y[i] = y0[i] + dt * k3[i];
    acrobot_dsdt(y, k4);
    for (int i = 0; i < 4; i++) out[i] = y0[i] + dt / 6.0 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);
}

/* wrap() from acrobot.py: steps of (M - m) until m <= x <= M. */
static double acrobot_wrap(double x, double m, double M) {
    double diff = M - m;
    while (x > M) x = x - diff;
    while (x < m) x = x + diff;
    return x;
}

/* bound(): min(max(x, m), M) with Python's builtins, which keep the first
 * argument unless the second compares greater (so NaN passes through). */
static double acrobot_bound(double x, double m, double M) {
    double v = m > x ? m : x;
    return M < v ? M : v;
}

static int acrobot_terminal(const acrobot_t *self) {
    const double *s = self->state;
    return -cos(s[0]) - cos(s[1] + s[0]) > 1.0;
}

static void acrobot_obs(const acrobot_t *self, float *obs) {
    const double *s = self->state;
    obs[0] = (float)cos(s[0]);
    obs[1] = (float)sin(s[0]);
    obs[2] = (float)cos(s[1]);
    obs[3] = (float)sin(s[1]);
    obs[4] = (float)s[2];
    obs[5] = (float)s[3];
}

static void acrobot_reset(env_t *env, rng_t *rng, float *obs) {
    acrobot_t *self = (acrobot_t *)env;
    for (int i = 0; i < 4; i++) self->state[i] = round_to_float32(rng_range(rng, -0.1, 0.1));
    acrobot_obs(self, obs);
}

static double acrobot_step(env_t *env, const float *action, float *obs, int *terminated) {
    acrobot_t *self = (acrobot_t *)env;
    double s_augmented[5], ns[4];
    memcpy(s_augmented, self->state, 4 * sizeof(double));
    s_augmented[4] = acrobot_torques[(int)action[0]];
    acrobot_rk4(s_augmented, ns);
    ns[0] = acrobot_wrap(ns[0], -M_PI, M_PI);
    ns[1] = acrobot_wrap(ns[1], -M_PI, M_PI);
    ns[2] = acrobot_bound(ns[2], -AC_MAX_VEL_1, AC_MAX_VEL_1);
    ns[3] = acrobot_bound(ns[3], -AC_MAX_VEL_2, AC_MAX_VEL_2);
    memcpy(self->state, ns, sizeof ns);
    int done = acrobot_terminal(self);
    *terminated = done;
    acrobot_obs(self, obs);
    return done ? 0.0 : -1.0;
}

static void acrobot_set_state(env_t *env, const double *state, float *obs) {
    acrobot_t *self = (acrobot_t *)env;
    memcpy(self->state, state, sizeof self->state);
    acrobot_obs(self, obs);
}

static void acrobot_get_state(const env_t *env, double *state) {
    memcpy(state, ((const acrobot_t *)env)->state, 4 * sizeof(double));
}

static void acrobot_render_state(const env_t *env, float *out) {
    const acrobot_t *self = (const acrobot_t *)env;
    out[0] = (float)self->state[0];
    out[1] = (float)self->state[1];
}

const env_class_t env_acrobot_v1 = {
    .id = "Acrobot-v1",
    .obs_dim = 6,
    .obs_low = {-1.0, -1.0, -1.0, -1.0, -(double)(float)AC_MAX_VEL_1, -(double)(float)AC_MAX_VEL_2},
    .obs_high = {1.0, 1.0, 1.0, 1.0, (double)(float)AC_MAX_VEL_1, (double)(float)AC_MAX_VEL_2},
    .act = {.discrete = 1, .n = 3},
    .state_dim = 4,
    .render_dim = 2,
    .render_kind = "acrobot",
    .max_steps = 500,
    .reward_lo = -1.0,
    .reward_hi = 0.0,
    .size = sizeof(acrobot_t),
    .reset = acrobot_reset,
    .step = acrobot_step,
    .set_state = acrobot_set_state,
    .get_state = acrobot_get_state,
    .render_state = acrobot_render_state,
};
