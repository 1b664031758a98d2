/* env.h - the environment interface.
 *
 * An environment is a vtable plus its own state. The learners see only this
 * header: a new environment (MuJoCo, text) joins by adding an env_class_t to
 * the registry in core/env.c, never by touching the learners.
 *
 * Conventions (Gymnasium's, which the classic-control environments match step
 * for step):
 *  - observations are float32; actions are passed as float32 (a discrete
 *    action is its index stored as a float);
 *  - the internal state is float64 (set_state/get_state use it, for
 *    conformance replays);
 *  - truncation is the registered time limit (TimeLimit wrapper): the step
 *    counter lives here, reset by env_reset() and env_set_state();
 *  - continuous actions outside the action space are clipped the way the
 *    Gymnasium environment itself clips them (not by the caller);
 *  - true reward is the environment's own reward. The learner never trains
 *    on it unless the job says --feedback true-reward.
 */
#ifndef RLHF_ENV_H
#define RLHF_ENV_H

#include <stdint.h>
#include <stddef.h>
#include <stdio.h>

#include "rng.h"

#define ENV_MAX_DIM 64

typedef struct {
    int discrete;               /* 1: Discrete(n); 0: Box(dim) */
    int n;                      /* Discrete: number of actions; Box: dimension */
    double low[ENV_MAX_DIM];    /* Box bounds (unused for Discrete) */
    double high[ENV_MAX_DIM];
} env_space_t;

typedef struct env env_t;

typedef struct {
    const char *id;             /* "CartPole-v1" */
    int obs_dim;
    double obs_low[ENV_MAX_DIM], obs_high[ENV_MAX_DIM];
    env_space_t act;
    int state_dim;              /* length of get_state/set_state vectors */
    int render_dim;             /* floats per frame from render_state */
    const char *render_kind;    /* names the drawing a labeler's page uses: "cartpole", ... */
    int max_steps;              /* registered time limit */
    /* Bounds of one step's true reward (used to scale ratings). */
    double reward_lo, reward_hi;
    size_t size;                /* bytes of the concrete env struct */
    /* Fills state from rng the way Gymnasium's reset() does; writes obs. */
    void (*reset)(env_t *env, rng_t *rng, float *obs);
    /* One step. Returns reward; sets *terminated. Truncation is env.c's. */
    double (*step)(env_t *env, const float *action, float *obs, int *terminated);
    void (*set_state)(env_t *env, const double *state, float *obs);
    void (*get_state)(const env_t *env, double *state);
    void (*render_state)(const env_t *env, float *out);
    /* Optional (NULL for classic control): init acquires what an environment
     * owns beyond its struct (MuJoCo's simulation data) right after env_new
     * zeroes it, and fails env_new with err filled; fini releases it. */
    int (*init)(env_t *env, char *err, size_t errlen);
    void (*fini)(env_t *env);
} env_class_t;

/* The common header every concrete environment struct starts with. */
struct env {
    const env_class_t *cls;
    rng_t rng;
    int elapsed;                /* steps since reset, for truncation */
};

/* Names of all registered environments, NULL-terminated. */
const char *const *env_ids(void);
const env_class_t *env_find(const char *id);

/* Returns NULL and fills err (naming the id and the known ones) on an unknown id. */
env_t *env_new(const char *id, uint64_t seed, char *err, size_t errlen);
void env_destroy(env_t **self_p);

const env_class_t *env_class(const env_t *env);
void env_reset(env_t *env, float *obs);
/* Returns the reward; sets terminated and truncated (time limit). */
double env_step(env_t *env, const float *action, float *obs, int *terminated, int *truncated);
void env_set_state(env_t *env, const double *state, float *obs);
void env_get_state(const env_t *env, double *state);
void env_render_state(const env_t *env, float *out);

/* Replays a Gymnasium reference file (JSON Lines, see
 * shared testdata README): for each episode set_state(init_state) then every
 * action. Writes a report to out (episodes, steps, worst deviation and where).
 * Returns 0 when every step matches (obs and reward within tol, flags exact),
 * 1 on a mismatch, -1 when the file cannot be read or parsed (err says why). */
int env_replay_file(const char *path, double tol, FILE *out, char *err, size_t errlen);

#endif
