/* env_mujoco.c - Gymnasium 0.29's MuJoCo v4 environments through MuJoCo's C
 * API: Hopper-v4, HalfCheetah-v4, Walker2d-v4, Swimmer-v4, Reacher-v4,
 * InvertedPendulum-v4, InvertedDoublePendulum-v4 and Ant-v4.
 *
 * Owns: loading the embedded MJCF models (env_mujoco_models.c) once per
 * model, each environment's mjData, the v4 observations, rewards with v4's
 * default weights, termination (healthy ranges), frame skip and reset noise,
 * and the "mujoco2d:<model>" render states. The time limit is env.c's.
 *
 * Invariants:
 *  - an mjModel is loaded once per process (under a mutex) and then only
 *    read, so environments in different threads share it; each environment
 *    owns its mjData, made by init and freed by fini (env.h's hooks);
 *  - a step allocates nothing: the action goes into d->ctrl and mj_step runs
 *    frame_skip times, as Gymnasium's do_simulation does;
 *  - the state (set_state/get_state) is qpos then qvel. set_state starts from
 *    mj_resetData, so the solver's warm start is the same for every caller:
 *    the same state and action give a bit-identical step.
 *
 * Where this differs from Gymnasium: a NaN action component is taken as 0
 * (Gymnasium passes NaN into the simulator, which then resets itself with a
 * warning); MuJoCo's warnings go to stderr once per environment, not to
 * MUJOCO_LOG.TXT in the working directory. Actions outside the control range
 * are clamped by MuJoCo (ctrllimited), and the control cost is taken on the
 * action as given, as in Gymnasium. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mujoco/mujoco.h>

#include "env.h"
#include "util.h"

extern const char *const env_mujoco_xml_hopper;
extern const char *const env_mujoco_xml_walker2d;
extern const char *const env_mujoco_xml_half_cheetah;
extern const char *const env_mujoco_xml_swimmer;
extern const char *const env_mujoco_xml_reacher;
extern const char *const env_mujoco_xml_inverted_pendulum;
extern const char *const env_mujoco_xml_inverted_double_pendulum;
extern const char *const env_mujoco_xml_ant;

/* Most geoms any model draws (render_state's capsules). */
#define MJ_MAX_DRAW 16
/* Render state: a 4-float header, then 5 floats per drawn geom. */
#define MJ_RENDER_HEAD 4
#define MJ_RENDER_DIM(ngeom) (MJ_RENDER_HEAD + 5 * (ngeom))

typedef struct mj_task mj_task_t;

typedef struct {
    env_t base;
    const mj_task_t *task;
    const mjModel *m;
    mjData *d;
    double dt;                  /* timestep * frame_skip */
    int ndraw;
    int draw[MJ_MAX_DRAW];      /* geom ids drawn, in model order */
} mjenv_t;

/* What makes each environment itself. The class (env_class_t) refers to its
 * task through the table below. */
struct mj_task {
    const env_class_t *cls;
    const char *file;           /* name in the VFS, for MuJoCo's messages */
    const char *const *xml;
    int frame_skip;
    int nq, nv, nu, ndraw;      /* checked against the compiled model */
    /* Fills d->qpos/qvel the way v4's reset_model() does. */
    void (*reset)(mjenv_t *e, rng_t *rng);
    /* One step (sets ctrl, simulates); returns reward, sets *terminated. */
    double (*step)(mjenv_t *e, const float *action, int *terminated);
    void (*obs)(const mjenv_t *e, float *obs);
    /* Render: side view (x-z) or from above (x-y); the camera follows body
     * follow_body's x (and y from above) when follow_body > 0, else sits at
     * cam_x; view_half is half the width of the view in metres; ground_z is
     * where the ground line goes (< -100: none). */
    int top_view, follow_body;
    double cam_x, cam_y, view_half, ground_z;
};

/* ---- model loading ----------------------------------------------------------- */

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

static void warning_to_stderr(const char *msg) { fprintf(stderr, "mujoco: warning: %s\n", msg); }

/* Loads task's model through a VFS holding only its XML. The VFS struct is
 * about 2 MB (file names for 2000 files), so it lives on the heap. */
static mjModel *load_model(const mj_task_t *t, char *err, size_t errlen) {
    mjVFS *vfs = mallocCheck(sizeof *vfs);
    mj_defaultVFS(vfs);
    const char *xml = *t->xml;
    int len = (int)strlen(xml);
    mjModel *m = NULL;
    if (mj_makeEmptyFileVFS(vfs, t->file, len) != 0) {
        snprintf(err, errlen, "%s: cannot add %s to MuJoCo's virtual file system", t->cls->id, t->file);
    } else {
        int i = mj_findFileVFS(vfs, t->file);
        memcpy(vfs->filedata[i], xml, (size_t)len);
        char why[1000] = "";
        m = mj_loadXML(t->file, vfs, why, sizeof why);
        if (!m) snprintf(err, errlen, "%s: MuJoCo cannot load the embedded model %s: %s", t->cls->id, t->file, why);
    }
    mj_deleteVFS(vfs);
    free(vfs);
    if (m && (m->nq != t->nq || m->nv != t->nv || m->nu != t->nu)) {
        snprintf(err, errlen, "%s: model %s has nq=%d nv=%d nu=%d, expected %d, %d, %d", t->cls->id, t->file, m->nq,
                 m->nv, m->nu, t->nq, t->nv, t->nu);
        mj_deleteModel(m);
        m = NULL;
    }
    return m;
}

/* ---- helpers ---------------------------------------------------------------------- */

static double ctrl_sq(const mjenv_t *e, const float *a) {
    double s = 0;
    for (int i = 0; i < e->m->nu; i++) {
        double x = isnan(a[i]) ? 0.0 : (double)a[i];
        s += x * x;
    }
    return s;
}

static void simulate(mjenv_t *e, const float *a) {
    for (int i = 0; i < e->m->nu; i++) e->d->ctrl[i] = isnan(a[i]) ? 0.0 : (double)a[i];
    for (int k = 0; k < e->task->frame_skip; k++) mj_step(e->m, e->d);
}

static float clipf(double x, double lo, double hi) { return (float)(x < lo ? lo : x > hi ? hi : x); }

/* qpos = qpos0 + U(-s, s), qvel = U(-s, s) (init_qvel is zero in all models). */
static void reset_uniform(mjenv_t *e, rng_t *rng, double s) {
    for (int i = 0; i < e->m->nq; i++) e->d->qpos[i] = e->m->qpos0[i] + rng_range(rng, -s, s);
    for (int i = 0; i < e->m->nv; i++) e->d->qvel[i] = rng_range(rng, -s, s);
}

/* qpos = qpos0 + U(-s, s), qvel = s * N(0, 1). */
static void reset_uniform_normal(mjenv_t *e, rng_t *rng, double s) {
    for (int i = 0; i < e->m->nq; i++) e->d->qpos[i] = e->m->qpos0[i] + rng_range(rng, -s, s);
    for (int i = 0; i < e->m->nv; i++) e->d->qvel[i] = s * rng_normal(rng);
}

/* ---- Hopper-v4 and Walker2d-v4 -----------------------------------------------
 * reward = forward_reward_weight (1) * dx/dt + healthy_reward (1)
 *          - ctrl_cost_weight (1e-3) * |a|^2
 * terminated = not healthy. The healthy reward is paid on every step because
 * terminate_when_unhealthy is true. Observation: qpos[1:], clip(qvel, -10, 10). */

static int hopper_healthy(const mjenv_t *e) {
    const double *q = e->d->qpos, *v = e->d->qvel;
    /* state_vector()[2:] strictly inside (-100, 100) */
    for (int i = 2; i < e->m->nq; i++)
        if (!(q[i] > -100.0 && q[i] < 100.0)) return 0;
    for (int i = 0; i < e->m->nv; i++)
        if (!(v[i] > -100.0 && v[i] < 100.0)) return 0;
    double z = q[1], angle = q[2];
    return z > 0.7 && z < INFINITY && angle > -0.2 && angle < 0.2;
}

static int walker_healthy(const mjenv_t *e) {
    double z = e->d->qpos[1], angle = e->d->qpos[2];
    return z > 0.8 && z < 2.0 && angle > -1.0 && angle < 1.0;
}

static double walker_like_step(mjenv_t *e, const float *a, int *terminated, int (*healthy)(const mjenv_t *)) {
    double x0 = e->d->qpos[0];
    simulate(e, a);
    double xv = (e->d->qpos[0] - x0) / e->dt;
    double ctrl_cost = 1e-3 * ctrl_sq(e, a);
    double rewards = 1.0 * xv + 1.0;
    *terminated = !healthy(e);
    return rewards - ctrl_cost;
}

static double hopper_step(mjenv_t *e, const float *a, int *terminated) {
    return walker_like_step(e, a, terminated, hopper_healthy);
}

static double walker_step(mjenv_t *e, const float *a, int *terminated) {
    return walker_like_step(e, a, terminated, walker_healthy);
}

static void walker_like_obs(const mjenv_t *e, float *obs) {
    int k = 0;
    for (int i = 1; i < e->m->nq; i++) obs[k++] = (float)e->d->qpos[i];
    for (int i = 0; i < e->m->nv; i++) obs[k++] = clipf(e->d->qvel[i], -10.0, 10.0);
}

static void walker_like_reset(mjenv_t *e, rng_t *rng) { reset_uniform(e, rng, 5e-3); }

/* ---- HalfCheetah-v4 ------------------------------------------------------------
 * reward = 1 * dx/dt - 0.1 * |a|^2; never terminates; reset noise 0.1
 * (uniform positions, normal velocities); observation qpos[1:], qvel. */

static double cheetah_step(mjenv_t *e, const float *a, int *terminated) {
    double x0 = e->d->qpos[0];
    simulate(e, a);
    double xv = (e->d->qpos[0] - x0) / e->dt;
    double ctrl_cost = 0.1 * ctrl_sq(e, a);
    *terminated = 0;
    return 1.0 * xv - ctrl_cost;
}

static void cheetah_obs(const mjenv_t *e, float *obs) {
    int k = 0;
    for (int i = 1; i < e->m->nq; i++) obs[k++] = (float)e->d->qpos[i];
    for (int i = 0; i < e->m->nv; i++) obs[k++] = (float)e->d->qvel[i];
}

static void cheetah_reset(mjenv_t *e, rng_t *rng) { reset_uniform_normal(e, rng, 0.1); }

/* ---- Swimmer-v4 ------------------------------------------------------------------
 * reward = 1 * dx/dt - 1e-4 * |a|^2 (x of the torso's slide joint); never
 * terminates; reset noise U(-0.1, 0.1); observation qpos[2:], qvel. */

static double swimmer_step(mjenv_t *e, const float *a, int *terminated) {
    double x0 = e->d->qpos[0];
    simulate(e, a);
    double xv = (e->d->qpos[0] - x0) / e->dt;
    double ctrl_cost = 1e-4 * ctrl_sq(e, a);
    *terminated = 0;
    return 1.0 * xv - ctrl_cost;
}

static void swimmer_obs(const mjenv_t *e, float *obs) {
    int k = 0;
    for (int i = 2; i < e->m->nq; i++) obs[k++] = (float)e->d->qpos[i];
    for (int i = 0; i < e->m->nv; i++) obs[k++] = (float)e->d->qvel[i];
}

static void swimmer_reset(mjenv_t *e, rng_t *rng) { reset_uniform(e, rng, 0.1); }

/* ---- Reacher-v4 --------------------------------------------------------------------
 * reward = -|fingertip - target| - |a|^2, measured BEFORE the simulation (as
 * v4 does); never terminates (time limit 50). Observation: cos and sin of
 * the two arm angles, the target's position (qpos[2:]), the arm's angular
 * velocities, fingertip - target (3). Bodies 3 and 4 are fingertip and
 * target. */

enum { REACHER_FINGERTIP = 3, REACHER_TARGET = 4 };

static double reacher_dist(const mjenv_t *e) {
    const double *f = e->d->xpos + 3 * REACHER_FINGERTIP, *t = e->d->xpos + 3 * REACHER_TARGET;
    double dx = f[0] - t[0], dy = f[1] - t[1], dz = f[2] - t[2];
    return sqrt(dx * dx + dy * dy + dz * dz);
}

static double reacher_step(mjenv_t *e, const float *a, int *terminated) {
    double reward_dist = -reacher_dist(e);
    double reward_ctrl = -ctrl_sq(e, a);
    simulate(e, a);
    *terminated = 0;
    return reward_dist + reward_ctrl;
}

static void reacher_obs(const mjenv_t *e, float *obs) {
    const double *q = e->d->qpos, *v = e->d->qvel;
    const double *f = e->d->xpos + 3 * REACHER_FINGERTIP, *t = e->d->xpos + 3 * REACHER_TARGET;
    obs[0] = (float)cos(q[0]);
    obs[1] = (float)cos(q[1]);
    obs[2] = (float)sin(q[0]);
    obs[3] = (float)sin(q[1]);
    obs[4] = (float)q[2];
    obs[5] = (float)q[3];
    obs[6] = (float)v[0];
    obs[7] = (float)v[1];
    for (int i = 0; i < 3; i++) obs[8 + i] = (float)(f[i] - t[i]);
}

/* qpos = qpos0 + U(-0.1, 0.1); the goal is drawn uniformly from the disc of
 * radius 0.2 (rejection from the square); qvel = U(-0.005, 0.005) for the
 * arm, 0 for the target. */
static void reacher_reset(mjenv_t *e, rng_t *rng) {
    double *q = e->d->qpos, *v = e->d->qvel;
    for (int i = 0; i < 4; i++) q[i] = e->m->qpos0[i] + rng_range(rng, -0.1, 0.1);
    double gx, gy;
    do {
        gx = rng_range(rng, -0.2, 0.2);
        gy = rng_range(rng, -0.2, 0.2);
    } while (!(sqrt(gx * gx + gy * gy) < 0.2));
    q[2] = gx;
    q[3] = gy;
    for (int i = 0; i < 4; i++) v[i] = rng_range(rng, -0.005, 0.005);
    v[2] = v[3] = 0.0;
}

/* ---- InvertedPendulum-v4 -------------------------------------------------------
 * reward 1 per step; terminated when an observation is not finite or
 * |pole angle| > 0.2; observation qpos, qvel; reset noise U(-0.01, 0.01). */

static void pendulum_obs(const mjenv_t *e, float *obs) {
    int k = 0;
    for (int i = 0; i < e->m->nq; i++) obs[k++] = (float)e->d->qpos[i];
    for (int i = 0; i < e->m->nv; i++) obs[k++] = (float)e->d->qvel[i];
}

static double pendulum_step(mjenv_t *e, const float *a, int *terminated) {
    simulate(e, a);
    float obs[4];
    pendulum_obs(e, obs);
    int finite = 1;
    for (int i = 0; i < 4; i++) finite &= isfinite(obs[i]) != 0;
    *terminated = !finite || fabsf(obs[1]) > 0.2f;
    return 1.0;
}

static void pendulum_reset(mjenv_t *e, rng_t *rng) { reset_uniform(e, rng, 0.01); }

/* ---- InvertedDoublePendulum-v4 ---------------------------------------------------
 * reward = 10 - (0.01 x^2 + (y - 2)^2) - (1e-3 v1^2 + 5e-3 v2^2) with (x, y)
 * the tip site's x and z; terminated when y <= 1. Observation: cart
 * position, sin and cos of both hinge angles, clip(qvel, -10, 10),
 * clip(qfrc_constraint, -10, 10). Reset: qpos + U(-0.1, 0.1), qvel 0.1 N. */

static double dpendulum_step(mjenv_t *e, const float *a, int *terminated) {
    simulate(e, a);
    double x = e->d->site_xpos[0], y = e->d->site_xpos[2];
    double dist_penalty = 0.01 * x * x + (y - 2) * (y - 2);
    double v1 = e->d->qvel[1], v2 = e->d->qvel[2];
    double vel_penalty = 1e-3 * v1 * v1 + 5e-3 * v2 * v2;
    *terminated = y <= 1;
    return 10.0 - dist_penalty - vel_penalty;
}

static void dpendulum_obs(const mjenv_t *e, float *obs) {
    const double *q = e->d->qpos;
    obs[0] = (float)q[0];
    obs[1] = (float)sin(q[1]);
    obs[2] = (float)sin(q[2]);
    obs[3] = (float)cos(q[1]);
    obs[4] = (float)cos(q[2]);
    for (int i = 0; i < 3; i++) obs[5 + i] = clipf(e->d->qvel[i], -10.0, 10.0);
    for (int i = 0; i < 3; i++) obs[8 + i] = clipf(e->d->qfrc_constraint[i], -10.0, 10.0);
}

static void dpendulum_reset(mjenv_t *e, rng_t *rng) { reset_uniform_normal(e, rng, 0.1); }

/* ---- Ant-v4 ---------------------------------------------------------------------------
 * reward = 1 * dx/dt + 1 (healthy) - 0.5 |a|^2, with x the torso body's
 * position (get_body_com, read from xpos as v4 does); v4's default leaves
 * out the contact cost and the contact forces from the observation.
 * terminated unless the state is finite and 0.2 <= z <= 1.0 (inclusive).
 * Observation qpos[2:] (13), qvel (14). Reset qpos0 + U(-0.1, 0.1),
 * qvel 0.1 N(0, 1). */

static int ant_healthy(const mjenv_t *e) {
    for (int i = 0; i < e->m->nq; i++)
        if (!isfinite(e->d->qpos[i])) return 0;
    for (int i = 0; i < e->m->nv; i++)
        if (!isfinite(e->d->qvel[i])) return 0;
    double z = e->d->qpos[2];
    return z >= 0.2 && z <= 1.0;
}

static double ant_step(mjenv_t *e, const float *a, int *terminated) {
    double x0 = e->d->xpos[3 * 1];
    simulate(e, a);
    double xv = (e->d->xpos[3 * 1] - x0) / e->dt;
    double ctrl_cost = 0.5 * ctrl_sq(e, a);
    double rewards = 1.0 * xv + 1.0;
    *terminated = !ant_healthy(e);
    return rewards - ctrl_cost;
}

static void ant_obs(const mjenv_t *e, float *obs) {
    int k = 0;
    for (int i = 2; i < e->m->nq; i++) obs[k++] = (float)e->d->qpos[i];
    for (int i = 0; i < e->m->nv; i++) obs[k++] = (float)e->d->qvel[i];
}

static void ant_reset(mjenv_t *e, rng_t *rng) { reset_uniform_normal(e, rng, 0.1); }

/* ---- the env_class_t glue ----------------------------------------------------------- */

static void mj_reset_cb(env_t *env, rng_t *rng, float *obs) {
    mjenv_t *e = (mjenv_t *)env;
    mj_resetData(e->m, e->d);
    e->task->reset(e, rng);
    mj_forward(e->m, e->d);
    e->task->obs(e, obs);
}

static double mj_step_cb(env_t *env, const float *action, float *obs, int *terminated) {
    mjenv_t *e = (mjenv_t *)env;
    double r = e->task->step(e, action, terminated);
    e->task->obs(e, obs);
    return r;
}

static void mj_set_state_cb(env_t *env, const double *state, float *obs) {
    mjenv_t *e = (mjenv_t *)env;
    mj_resetData(e->m, e->d);
    memcpy(e->d->qpos, state, sizeof(double) * (size_t)e->m->nq);
    memcpy(e->d->qvel, state + e->m->nq, sizeof(double) * (size_t)e->m->nv);
    mj_forward(e->m, e->d);
    e->task->obs(e, obs);
}

static void mj_get_state_cb(const env_t *env, double *state) {
    const mjenv_t *e = (const mjenv_t *)env;
    memcpy(state, e->d->qpos, sizeof(double) * (size_t)e->m->nq);
    memcpy(state + e->m->nq, e->d->qvel, sizeof(double) * (size_t)e->m->nv);
}

/* [cam_x, cam_y, view_half, ground_z] then per drawn geom [x0, y0, x1, y1,
 * radius]: the segment of a capsule's (or cylinder's) axis, a sphere as a
 * zero-length segment; y is z in a side view, y from above. */
static void mj_render_cb(const env_t *env, float *out) {
    const mjenv_t *e = (const mjenv_t *)env;
    const mj_task_t *t = e->task;
    const mjData *d = e->d;
    int yi = t->top_view ? 1 : 2;
    double cx = t->cam_x, cy = t->cam_y;
    if (t->follow_body > 0) {
        cx = d->xpos[3 * t->follow_body];
        if (t->top_view) cy = d->xpos[3 * t->follow_body + 1];
    }
    out[0] = (float)cx;
    out[1] = (float)cy;
    out[2] = (float)t->view_half;
    out[3] = (float)t->ground_z;
    for (int k = 0; k < e->ndraw; k++) {
        int g = e->draw[k];
        const double *p = d->geom_xpos + 3 * g, *R = d->geom_xmat + 9 * g, *size = e->m->geom_size + 3 * g;
        double half = e->m->geom_type[g] == mjGEOM_SPHERE ? 0.0 : size[1];
        /* the local z axis is column 2 of the row-major rotation matrix */
        double ax = R[2] * half, ay = R[yi * 3 + 2] * half;
        float *o = out + MJ_RENDER_HEAD + 5 * k;
        o[0] = (float)(p[0] - ax);
        o[1] = (float)(p[yi] - ay);
        o[2] = (float)(p[0] + ax);
        o[3] = (float)(p[yi] + ay);
        o[4] = (float)size[0];
    }
}

static const mj_task_t *task_of(const env_class_t *cls);

static int mj_init_cb(env_t *env, char *err, size_t errlen) {
    mjenv_t *e = (mjenv_t *)env;
    const mj_task_t *t = task_of(env->cls);
    if (!t) {
        snprintf(err, errlen, "%s: not a MuJoCo environment", env->cls->id);
        return -1;
    }
    static mjModel *models[16];
    static int nloaded;
    static const mj_task_t *loaded[16];
    pthread_mutex_lock(&load_lock);
    mju_user_warning = warning_to_stderr;
    mjModel *m = NULL;
    for (int i = 0; i < nloaded; i++)
        if (loaded[i] == t) m = models[i];
    if (!m && nloaded < 16 && (m = load_model(t, err, errlen)) != NULL) {
        loaded[nloaded] = t;
        models[nloaded++] = m;
    }
    pthread_mutex_unlock(&load_lock);
    if (!m) return -1;
    e->task = t;
    e->m = m;
    e->dt = m->opt.timestep * t->frame_skip;
    e->ndraw = 0;
    for (int g = 0; g < m->ngeom; g++)
        if (m->geom_type[g] != mjGEOM_PLANE && e->ndraw < MJ_MAX_DRAW) e->draw[e->ndraw++] = g;
    if (e->ndraw != t->ndraw) {
        snprintf(err, errlen, "%s: model %s draws %d geoms, expected %d", env->cls->id, t->file, e->ndraw, t->ndraw);
        return -1;
    }
    e->d = mj_makeData(m);
    if (!e->d) {
        snprintf(err, errlen, "%s: MuJoCo cannot allocate the simulation data", env->cls->id);
        return -1;
    }
    /* A valid state before any reset: the model's reference pose at rest. */
    mj_forward(m, e->d);
    return 0;
}

static void mj_fini_cb(env_t *env) {
    mjenv_t *e = (mjenv_t *)env;
    if (e->d) mj_deleteData(e->d);
    e->d = NULL;
}

/* The classes. Observation bounds are Gymnasium's Box(-inf, inf). */
#define MJ_CLASS(ID, KIND, OBS, ACT, LO, HI, NQV, NDRAW, STEPS, RLO, RHI)                                    \
    {                                                                                                        \
        .id = ID, .obs_dim = OBS, .obs_low = {[0 ... ENV_MAX_DIM - 1] = -INFINITY},                          \
        .obs_high = {[0 ... ENV_MAX_DIM - 1] = INFINITY},                                                    \
        .act = {.discrete = 0, .n = ACT, .low = {[0 ... ACT - 1] = LO}, .high = {[0 ... ACT - 1] = HI}},     \
        .state_dim = NQV, .render_dim = MJ_RENDER_DIM(NDRAW), .render_kind = KIND, .max_steps = STEPS,      \
        .reward_lo = RLO, .reward_hi = RHI, .size = sizeof(mjenv_t), .reset = mj_reset_cb,                   \
        .step = mj_step_cb, .set_state = mj_set_state_cb, .get_state = mj_get_state_cb,                      \
        .render_state = mj_render_cb, .init = mj_init_cb, .fini = mj_fini_cb,                                \
    }

/* reward_lo/hi only scale the teacher's ratings (a segment's return mapped
 * onto 1..7): they are typical per-step extremes, not hard bounds. */
const env_class_t env_hopper_v4 = MJ_CLASS("Hopper-v4", "mujoco2d:hopper", 11, 3, -1.0, 1.0, 12, 4, 1000, -1.0, 4.0);
const env_class_t env_half_cheetah_v4 =
    MJ_CLASS("HalfCheetah-v4", "mujoco2d:half_cheetah", 17, 6, -1.0, 1.0, 18, 8, 1000, -2.0, 12.0);
const env_class_t env_walker2d_v4 =
    MJ_CLASS("Walker2d-v4", "mujoco2d:walker2d", 17, 6, -1.0, 1.0, 18, 7, 1000, -1.0, 6.0);
const env_class_t env_swimmer_v4 = MJ_CLASS("Swimmer-v4", "mujoco2d:swimmer-xy", 8, 2, -1.0, 1.0, 10, 3, 1000, -0.2, 0.5);
const env_class_t env_reacher_v4 = MJ_CLASS("Reacher-v4", "mujoco2d:reacher-xy", 11, 2, -1.0, 1.0, 8, 9, 50, -1.0, 0.0);
const env_class_t env_inverted_pendulum_v4 =
    MJ_CLASS("InvertedPendulum-v4", "mujoco2d:inverted_pendulum", 4, 1, -3.0, 3.0, 4, 3, 1000, 0.0, 1.0);
const env_class_t env_inverted_double_pendulum_v4 =
    MJ_CLASS("InvertedDoublePendulum-v4", "mujoco2d:inverted_double_pendulum", 11, 1, -1.0, 1.0, 6, 4, 1000, 0.0, 10.0);
const env_class_t env_ant_v4 = MJ_CLASS("Ant-v4", "mujoco2d:ant", 27, 8, -1.0, 1.0, 29, 13, 1000, -2.0, 4.0);

static const mj_task_t tasks[] = {
    {&env_hopper_v4, "hopper.xml", &env_mujoco_xml_hopper, 4, 6, 6, 3, 4, walker_like_reset,
     hopper_step, walker_like_obs, 0, 1, 0, 0.8, 1.6, 0.0},
    {&env_half_cheetah_v4, "half_cheetah.xml", &env_mujoco_xml_half_cheetah, 5, 9, 9, 6, 8, cheetah_reset,
     cheetah_step, cheetah_obs, 0, 1, 0, 0.5, 1.6, 0.0},
    {&env_walker2d_v4, "walker2d.xml", &env_mujoco_xml_walker2d, 4, 9, 9, 6, 7, walker_like_reset, walker_step,
     walker_like_obs, 0, 1, 0, 0.9, 1.8, 0.0},
    {&env_swimmer_v4, "swimmer.xml", &env_mujoco_xml_swimmer, 4, 5, 5, 2, 3, swimmer_reset, swimmer_step,
     swimmer_obs, 1, 1, 0, 0, 2.5, -1000.0},
    {&env_reacher_v4, "reacher.xml", &env_mujoco_xml_reacher, 2, 4, 4, 2, 9, reacher_reset, reacher_step,
     reacher_obs, 1, 0, 0, 0, 0.36, -1000.0},
    {&env_inverted_pendulum_v4, "inverted_pendulum.xml", &env_mujoco_xml_inverted_pendulum, 2, 2, 2, 1, 3,
     pendulum_reset, pendulum_step, pendulum_obs, 0, 0, 0, 0.2, 1.2, -1000.0},
    {&env_inverted_double_pendulum_v4, "inverted_double_pendulum.xml", &env_mujoco_xml_inverted_double_pendulum, 5,
     3, 3, 1, 4, dpendulum_reset, dpendulum_step, dpendulum_obs, 0, 0, 0, 0.6, 1.5, -1000.0},
    {&env_ant_v4, "ant.xml", &env_mujoco_xml_ant, 5, 15, 14, 8, 13, ant_reset, ant_step, ant_obs, 0, 1, 0, 0.5,
     2.0, 0.0},
};

static const mj_task_t *task_of(const env_class_t *cls) {
    for (size_t i = 0; i < sizeof tasks / sizeof tasks[0]; i++)
        if (tasks[i].cls == cls) return &tasks[i];
    return NULL;
}
