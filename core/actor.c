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
};

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
