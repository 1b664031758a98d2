/* actor.c - see actor.h. */
#include "actor.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

struct actor {
    const env_class_t *cls;
    int N, obs_dim, act_dim;
    env_t **envs;
    float *obs;         /* (N, obs_dim) raw current observations */
    float *next;        /* (N, obs_dim) scratch */
    double *ep_return;  /* (N) true return of each episode in progress */
    float *render;      /* (T, N, render_dim) render states before each step, or NULL (actor_set_render) */
};

void actor_set_render(actor_t *a, float *out) { a->render = a->cls->render_dim > 0 ? out : NULL; }

traj_t *traj_new(int T, int N, int obs_dim, int act_dim) {
    traj_t *b = callocCheck(1, sizeof *b);
    size_t tn = (size_t)T * N;
    b->T = T;
    b->N = N;
    b->obs_dim = obs_dim;
    b->act_dim = act_dim;
    b->obs = callocCheck(tn * obs_dim, sizeof(float));
    b->obsn = callocCheck(tn * obs_dim, sizeof(float));
    b->act = callocCheck(tn * act_dim, sizeof(float));
    b->logp = callocCheck(tn, sizeof(float));
    b->true_r = callocCheck(tn, sizeof(float));
    b->done = callocCheck(tn, 1);
    b->terminated = callocCheck(tn, 1);
    b->final_obsn = callocCheck(tn * obs_dim, sizeof(float));
    b->last_obsn = callocCheck((size_t)N * obs_dim, sizeof(float));
    return b;
}

void traj_destroy(traj_t **self_p) {
    traj_t *b = *self_p;
    if (!b) return;
    free(b->obs);
    free(b->obsn);
    free(b->act);
    free(b->logp);
    free(b->true_r);
    free(b->done);
    free(b->terminated);
    free(b->final_obsn);
    free(b->last_obsn);
    free(b);
    *self_p = NULL;
}

actor_t *actor_new(const char *env_id, int N, uint64_t seed, char *err, size_t errlen) {
    const env_class_t *cls = env_find(env_id);
    if (!cls) {
        env_t *probe = env_new(env_id, 0, err, errlen);   // for its error text
        env_destroy(&probe);
        return NULL;
    }
    actor_t *a = callocCheck(1, sizeof *a);
    a->cls = cls;
    a->N = N;
    a->obs_dim = cls->obs_dim;
    a->act_dim = cls->act.discrete ? 1 : cls->act.n;
    a->envs = callocCheck(N, sizeof(env_t *));
    a->obs = mallocCheck(sizeof(float) * (size_t)N * a->obs_dim);
    a->next = mallocCheck(sizeof(float) * (size_t)N * a->obs_dim);
    a->ep_return = callocCheck(N, sizeof(double));
    for (int n = 0; n < N; n++) {
        a->envs[n] = env_new(env_id, seed * 1000003 + n, err, errlen);
        env_reset(a->envs[n], a->obs + (size_t)n * a->obs_dim);
    }
    return a;
}

void actor_destroy(actor_t **self_p) {
    actor_t *a = *self_p;
    if (!a) return;
    for (int n = 0; n < a->N; n++) env_destroy(&a->envs[n]);
    free(a->envs);
    free(a->obs);
    free(a->next);
    free(a->ep_return);
    free(a);
    *self_p = NULL;
}

const env_class_t *actor_env_class(const actor_t *a) { return a->cls; }

void actor_run(actor_t *a, policy_t *p, rng_t *rng, traj_t *b) {
    int N = a->N, od = a->obs_dim, ad = a->act_dim;
    b->episodes = 0;
    b->return_sum = 0;
    for (int t = 0; t < b->T; t++) {
        size_t row = (size_t)t * N;
        float *obsn = b->obsn + row * od;   // obsn is (N, od)
        memcpy(b->obs + row * od, a->obs, sizeof(float) * N * od);
        policy_observe(p, a->obs, N, 0, obsn);
        policy_act(p, obsn, N, rng, 0, b->act + row * ad, b->logp + row, NULL);
        for (int n = 0; n < N; n++) {
            size_t k = row + n;
            int term = 0, trunc = 0;
            float *next = a->next + (size_t)n * od;
            if (a->render) env_render_state(a->envs[n], a->render + k * a->cls->render_dim);
            double r = env_step(a->envs[n], b->act + k * ad, next, &term, &trunc);
            b->true_r[k] = (float)r;
            a->ep_return[n] += r;
            b->done[k] = term || trunc;
            b->terminated[k] = (uint8_t)term;
            memset(b->final_obsn + k * od, 0, sizeof(float) * od);
            if (b->done[k]) {
                if (!term) policy_observe(p, next, 1, 0, b->final_obsn + k * od);
                b->episodes++;
                b->return_sum += a->ep_return[n];
                a->ep_return[n] = 0;
                env_reset(a->envs[n], next);
            }
        }
        memcpy(a->obs, a->next, sizeof(float) * N * od);
    }
    policy_observe(p, a->obs, N, 0, b->last_obsn);
}
/* ---- proposed for core/actor.c ---- */

/* The actor's state as bytes (see actor.h):
 *   u32 N, obs_dim, state_dim, 0
 *   per environment: state_dim f64 (env_get_state), i64 elapsed, its rng
 *                    (4 u64, i64 has_spare, f64 spare)
 *   obs (N * obs_dim f32): the current observations
 *   ep_return (N f64): the true returns of the episodes in progress */
size_t actor_state_size(const actor_t *a) {
    size_t per_env = sizeof(double) * (size_t)a->cls->state_dim + 56;
    return 16 + (size_t)a->N * per_env + sizeof(float) * (size_t)a->N * a->obs_dim + sizeof(double) * (size_t)a->N;
}

void actor_save(const actor_t *a, void *buf) {
    unsigned char *p = buf;
    int sd = a->cls->state_dim;
    uint32_t head[4] = {(uint32_t)a->N, (uint32_t)a->obs_dim, (uint32_t)sd, 0};
    memcpy(p, head, 16);
    p += 16;
    double *state = mallocCheck(sizeof(double) * (sd ? sd : 1));
    for (int n = 0; n < a->N; n++) {
        const env_t *env = a->envs[n];
        env_get_state(env, state);
        memcpy(p, state, sizeof(double) * sd);
        p += sizeof(double) * sd;
        int64_t elapsed = env->elapsed, has_spare = env->rng.has_spare;
        memcpy(p, &elapsed, 8);
        memcpy(p + 8, env->rng.s, 32);
        memcpy(p + 40, &has_spare, 8);
        memcpy(p + 48, &env->rng.spare, 8);
        p += 56;
    }
    free(state);
    memcpy(p, a->obs, sizeof(float) * (size_t)a->N * a->obs_dim);
    p += sizeof(float) * (size_t)a->N * a->obs_dim;
    memcpy(p, a->ep_return, sizeof(double) * a->N);
}

int actor_load(actor_t *a, const void *buf, size_t n, char *err, size_t errlen) {
    const unsigned char *p = buf;
    int sd = a->cls->state_dim;
    uint32_t head[4] = {0};
    if (n >= 16) memcpy(head, p, 16);
    if (n != actor_state_size(a) || head[0] != (uint32_t)a->N || head[1] != (uint32_t)a->obs_dim ||
        head[2] != (uint32_t)sd) {
        snprintf(err, errlen, "actor state of %zu bytes for %u environments (observation %u, state %u); this actor "
                 "has %d (%d, %d)", n, head[0], head[1], head[2], a->N, a->obs_dim, sd);
        return -1;
    }
    p += 16;
    double *state = mallocCheck(sizeof(double) * (sd ? sd : 1));
    for (int i = 0; i < a->N; i++) {
        env_t *env = a->envs[i];
        memcpy(state, p, sizeof(double) * sd);
        env_set_state(env, state, a->next);     // next is scratch: the observations come back below
        p += sizeof(double) * sd;
        int64_t elapsed, has_spare;
        memcpy(&elapsed, p, 8);
        memcpy(env->rng.s, p + 8, 32);
        memcpy(&has_spare, p + 40, 8);
        memcpy(&env->rng.spare, p + 48, 8);
        env->elapsed = (int)elapsed;            // after set_state, which zeroes it
        env->rng.has_spare = (int)has_spare;
        p += 56;
    }
    free(state);
    memcpy(a->obs, p, sizeof(float) * (size_t)a->N * a->obs_dim);
    p += sizeof(float) * (size_t)a->N * a->obs_dim;
    memcpy(a->ep_return, p, sizeof(double) * a->N);
    return 0;
}
