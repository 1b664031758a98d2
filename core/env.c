/* env.c - the environment registry and the calls every environment shares.
 *
 * Owns: the list of registered environment classes, creating and destroying
 * environments, and the TimeLimit wrapper's job (the step counter and
 * truncation at cls->max_steps). The dynamics live with each class
 * (env_classic.c, env_mujoco.c); a new environment joins by adding its class to
 * registry[] below. */
#include "env.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Defined in env_classic.c. */
extern const env_class_t env_cartpole_v1;
extern const env_class_t env_pendulum_v1;
extern const env_class_t env_mountaincar_v0;
extern const env_class_t env_mountaincar_continuous_v0;
extern const env_class_t env_acrobot_v1;
/* Defined in env_mujoco.c. */
extern const env_class_t env_hopper_v4, env_half_cheetah_v4, env_walker2d_v4, env_swimmer_v4, env_reacher_v4,
    env_inverted_pendulum_v4, env_inverted_double_pendulum_v4, env_ant_v4;

static const env_class_t *const registry[] = {
    &env_cartpole_v1,
    &env_pendulum_v1,
    &env_mountaincar_v0,
    &env_mountaincar_continuous_v0,
    &env_acrobot_v1,
    &env_hopper_v4,
    &env_half_cheetah_v4,
    &env_walker2d_v4,
    &env_swimmer_v4,
    &env_reacher_v4,
    &env_inverted_pendulum_v4,
    &env_inverted_double_pendulum_v4,
    &env_ant_v4,
};
#define REGISTRY_SIZE (sizeof registry / sizeof registry[0])

/* The same names as registry[] (a test checks they agree): a static list
 * because env_ids() hands out a NULL-terminated array. */
static const char *const ids[REGISTRY_SIZE + 1] = {
    "CartPole-v1",
    "Pendulum-v1",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
    "Acrobot-v1",
    "Hopper-v4",
    "HalfCheetah-v4",
    "Walker2d-v4",
    "Swimmer-v4",
    "Reacher-v4",
    "InvertedPendulum-v4",
    "InvertedDoublePendulum-v4",
    "Ant-v4",
    NULL,
};

const char *const *env_ids(void) { return ids; }

const env_class_t *env_find(const char *id) {
    if (!id) return NULL;
    for (size_t i = 0; i < REGISTRY_SIZE; i++)
        if (strcmp(registry[i]->id, id) == 0) return registry[i];
    return NULL;
}

env_t *env_new(const char *id, uint64_t seed, char *err, size_t errlen) {
    const env_class_t *cls = env_find(id);
    if (!cls) {
        if (err && errlen) {
            size_t n = (size_t)snprintf(err, errlen, "unknown environment '%s' (known:", id ? id : "(null)");
            for (size_t i = 0; i < REGISTRY_SIZE && n < errlen; i++)
                n += (size_t)snprintf(err + n, errlen - n, "%s %s", i ? "," : "", registry[i]->id);
            if (n < errlen) snprintf(err + n, errlen - n, ")");
        }
        return NULL;
    }
    /* Zeroed state is a valid state for every class (all at rest at the
     * origin); callers reset or set_state before stepping anyway. */
    env_t *env = callocCheck(1, cls->size);
    env->cls = cls;
    rng_seed(&env->rng, seed);
    env->elapsed = 0;
    if (cls->init && cls->init(env, err, errlen) != 0) {
        if (cls->fini) cls->fini(env);
        free(env);
        return NULL;
    }
    return env;
}

void env_destroy(env_t **self_p) {
    if (!self_p || !*self_p) return;
    if ((*self_p)->cls->fini) (*self_p)->cls->fini(*self_p);
    free(*self_p);
    *self_p = NULL;
}

const env_class_t *env_class(const env_t *env) { return env->cls; }

void env_reset(env_t *env, float *obs) {
    env->elapsed = 0;
    env->cls->reset(env, &env->rng, obs);
}

double env_step(env_t *env, const float *action, float *obs, int *terminated, int *truncated) {
    const env_class_t *cls = env->cls;
    float sanitized;
    if (cls->act.discrete) {
        /* Gymnasium asserts that a discrete action is in the space; a worker
         * that crashed here would lose the whole batch, so the nearest valid
         * index is used instead (NaN counts as 0). */
        float a = action[0];
        long k = isnan(a) ? 0 : lrintf(fminf(fmaxf(a, -1.0f), (float)cls->act.n));
        if (k < 0) k = 0;
        if (k > cls->act.n - 1) k = cls->act.n - 1;
        sanitized = (float)k;
        action = &sanitized;
    }
    int term = 0;
    double reward = cls->step(env, action, obs, &term);
    /* TimeLimit: truncated once the registered number of steps is reached,
     * and on every later step too if the caller keeps going. */
    env->elapsed++;
    *terminated = term;
    *truncated = env->elapsed >= cls->max_steps;
    return reward;
}

void env_set_state(env_t *env, const double *state, float *obs) {
    env->elapsed = 0;
    env->cls->set_state(env, state, obs);
}

void env_get_state(const env_t *env, double *state) { env->cls->get_state(env, state); }

void env_render_state(const env_t *env, float *out) { env->cls->render_state(env, out); }
