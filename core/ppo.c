/* ppo.c - see ppo.h. */
#include "ppo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

ppo_buffer_t *ppo_buffer_new(int T, int N, int obs_dim, int act_dim) {
    ppo_buffer_t *b = callocCheck(1, sizeof *b);
    size_t tn = (size_t)T * N;
    b->T = T;
    b->N = N;
    b->obs_dim = obs_dim;
    b->act_dim = act_dim;
    b->obs = callocCheck(tn * obs_dim, sizeof(float));
    b->act = callocCheck(tn * act_dim, sizeof(float));
    b->logp = callocCheck(tn, sizeof(float));
    b->value = callocCheck(tn, sizeof(float));
    b->reward = callocCheck(tn, sizeof(float));
    b->done = callocCheck(tn, 1);
    b->boot = callocCheck(tn, sizeof(float));
    b->last_value = callocCheck(N, sizeof(float));
    b->adv = callocCheck(tn, sizeof(float));
    b->ret = callocCheck(tn, sizeof(float));
    return b;
}

void ppo_buffer_destroy(ppo_buffer_t **self_p) {
    ppo_buffer_t *b = *self_p;
    if (!b) return;
    free(b->obs);
    free(b->act);
    free(b->logp);
    free(b->value);
    free(b->reward);
    free(b->done);
    free(b->boot);
    free(b->last_value);
    free(b->adv);
    free(b->ret);
    free(b);
    *self_p = NULL;
}

void ppo_compute_gae(ppo_buffer_t *b, double gamma, double lambda) {
    int T = b->T, N = b->N;
    for (int n = 0; n < N; n++) {
        double next_adv = 0, next_value = b->last_value[n];
        for (int t = T - 1; t >= 0; t--) {
            size_t k = (size_t)t * N + n;
            double delta;
            if (b->done[k]) {
                delta = b->reward[k] + b->boot[k] - b->value[k];
                next_adv = 0;
            } else {
                delta = b->reward[k] + gamma * next_value - b->value[k];
            }
            next_adv = delta + gamma * lambda * next_adv;
            b->adv[k] = (float)next_adv;
            b->ret[k] = (float)(next_adv + b->value[k]);
            next_value = b->value[k];
        }
    }
}

double ppo_minibatch_loss(policy_t *p, const float *obs, const float *act, const float *old_logp,
                          const float *adv, const float *ret, int M, int lo, int hi, double clip, double ent_coef,
                          double vf_coef, int grad, ppo_stats_t *st) {
    /* Advantages are normalised over the whole minibatch, which every
     * replica holds; only rows [lo, hi) go through the networks. */
    double am = 0, as = 0;
    for (int i = 0; i < M; i++) am += adv[i];
    am /= M;
    for (int i = 0; i < M; i++) as += (adv[i] - am) * (adv[i] - am);
    as = sqrt(as / M) + 1e-8;
    int n = hi - lo;
    obs += (size_t)lo * p->obs_dim;
    act += (size_t)lo * p->act_dim;
    old_logp += lo;
    adv += lo;
    ret += lo;
    float *scratch = mallocCheck(sizeof(float) * (size_t)(n > 0 ? n : 1) * 6);
    float *logp = scratch, *ent = scratch + n, *val = scratch + 2 * n;
    float *dlogp = scratch + 3 * n, *dent = scratch + 4 * n, *dval = scratch + 5 * n;
    double pg = 0, vl = 0, en = 0, kl = 0, cf = 0;
    if (n > 0) policy_evaluate(p, obs, act, n, logp, ent, val);
    for (int i = 0; i < n; i++) {
        double A = (adv[i] - am) / as;
        double logratio = (double)logp[i] - old_logp[i];
        double ratio = exp(logratio);
        double s1 = ratio * A, s2 = fmin(fmax(ratio, 1 - clip), 1 + clip) * A;
        pg += -fmin(s1, s2);
        // The clipped branch has zero gradient w.r.t. the ratio.
        int clipped = (A >= 0 && ratio > 1 + clip) || (A < 0 && ratio < 1 - clip);
        dlogp[i] = clipped ? 0.0f : (float)(-A * ratio / M);
        dent[i] = (float)(-ent_coef / M);
        double verr = (double)val[i] - ret[i];
        vl += verr * verr;
        dval[i] = (float)(vf_coef * 2.0 * verr / M);
        en += ent[i];
        kl += (ratio - 1) - logratio;     // the low-variance estimator (Schulman)
        cf += fabs(ratio - 1) > clip;
    }
    if (grad && n > 0) policy_backward(p, dlogp, dent, dval);
    pg /= M;
    vl /= M;
    en /= M;
    if (st) {
        st->pg_loss += pg;
        st->v_loss += vl;
        st->entropy += en;
        st->approx_kl += kl / M;
        st->clip_frac += cf / M;
    }
    free(scratch);
    return pg + vf_coef * vl - ent_coef * en;
}

void ppo_update(policy_t *p, adam_t *opt, ppo_buffer_t *b, const job_t *job, double lr, rng_t *rng,
                const dist_t *dist, ppo_stats_t *st) {
    int total = b->T * b->N, M = job->ppo.minibatch;
    if (M > total) M = total;
    int n_mb = total / M;
    int obs_dim = b->obs_dim, act_dim = b->act_dim;
    int *idx = mallocCheck(sizeof(int) * total);
    float *obs = mallocCheck(sizeof(float) * (size_t)M * obs_dim);
    float *act = mallocCheck(sizeof(float) * (size_t)M * act_dim);
    float *cols = mallocCheck(sizeof(float) * (size_t)M * 3);
    float *old_logp = cols, *adv = cols + M, *ret = cols + 2 * M;
    float *stat = p->grads + p->n_params;   // the step's statistics ride in the gradient reduction
    int lo, hi;
    dist_shard(dist, M, &lo, &hi);
    for (int i = 0; i < total; i++) idx[i] = i;
    memset(st, 0, sizeof *st);
    long long n_updates = 0;

    for (int epoch = 0; epoch < job->ppo.epochs; epoch++) {
        /* Every replica draws the same permutation: same seed, same calls. */
        for (int i = total - 1; i > 0; i--) {   // Fisher-Yates shuffle
            int j = rng_int(rng, i + 1), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        double epoch_kl = 0;
        for (int mb = 0; mb < n_mb; mb++) {
            const int *ix = idx + (size_t)mb * M;
            for (int i = 0; i < M; i++) {
                int k = ix[i];
                memcpy(obs + (size_t)i * obs_dim, b->obs + (size_t)k * obs_dim, sizeof(float) * obs_dim);
                memcpy(act + (size_t)i * act_dim, b->act + (size_t)k * act_dim, sizeof(float) * act_dim);
                old_logp[i] = b->logp[k];
                adv[i] = b->adv[k];
                ret[i] = b->ret[k];
            }
            nn_zero(p->grads, p->n_params + NN_STAT_SLOTS);
            ppo_stats_t mbst = {0};
            ppo_minibatch_loss(p, obs, act, old_logp, adv, ret, M, lo, hi, job->ppo.clip, job->ppo.ent_coef,
                               job->ppo.vf_coef, 1, &mbst);
            stat[0] = (float)mbst.pg_loss;
            stat[1] = (float)mbst.v_loss;
            stat[2] = (float)mbst.entropy;
            stat[3] = (float)mbst.approx_kl;
            stat[4] = (float)mbst.clip_frac;
            dist_sum(dist, p->grads, p->n_params + NN_STAT_SLOTS);
            st->pg_loss += stat[0];
            st->v_loss += stat[1];
            st->entropy += stat[2];
            st->approx_kl += stat[3];
            st->clip_frac += stat[4];
            epoch_kl += stat[3];
            st->grad_norm += nn_clip_grad_norm(p->grads, p->n_params, job->ppo.max_grad_norm);
            adam_step(opt, p->params, p->grads, lr, 0.0);
            n_updates++;
        }
        st->epochs = epoch + 1;
        /* The KL is summed over replicas above, so they all stop together. */
        if (job->ppo.target_kl > 0 && epoch_kl / n_mb > 1.5 * job->ppo.target_kl) break;
    }
    if (n_updates > 0) {
        st->pg_loss /= n_updates;
        st->v_loss /= n_updates;
        st->entropy /= n_updates;
        st->approx_kl /= n_updates;
        st->clip_frac /= n_updates;
        st->grad_norm /= n_updates;
    }
    free(idx);
    free(obs);
    free(act);
    free(cols);
}
