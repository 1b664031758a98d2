/* policy.c - see policy.h. */
#include "policy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int build_sizes(int in, const int *hidden, int n_hidden, int out, int *sizes) {
    sizes[0] = in;
    for (int i = 0; i < n_hidden; i++) sizes[i + 1] = hidden[i];
    sizes[n_hidden + 1] = out;
    return n_hidden + 1;
}

policy_t *policy_new(int obs_dim, const env_space_t *space, const int *hidden, int n_hidden,
                     nn_act_t act, double log_std_init, int norm_obs, rng_t *rng) {
    policy_t *p = callocCheck(1, sizeof *p);
    p->obs_dim = obs_dim;
    p->discrete = space->discrete;
    p->n_out = space->n;
    p->act_dim = space->discrete ? 1 : space->n;
    p->norm_obs = norm_obs;
    runstat_init(&p->obs_stat, obs_dim);

    int pi_sizes[NN_MAX_LAYERS + 1], vf_sizes[NN_MAX_LAYERS + 1];
    int pi_layers = build_sizes(obs_dim, hidden, n_hidden, p->n_out, pi_sizes);
    int vf_layers = build_sizes(obs_dim, hidden, n_hidden, 1, vf_sizes);
    size_t n_pi = mlp_count(pi_sizes, pi_layers), n_vf = mlp_count(vf_sizes, vf_layers);
    size_t n_std = p->discrete ? 0 : (size_t)p->n_out;
    p->n_params = n_pi + n_vf + n_std;
    p->params = callocCheck(p->n_params, sizeof(float));
    p->grads = callocCheck(p->n_params + NN_STAT_SLOTS, sizeof(float));
    mlp_bind(&p->pi, pi_sizes, pi_layers, act, p->params, p->grads);
    mlp_bind(&p->vf, vf_sizes, vf_layers, act, p->params + n_pi, p->grads + n_pi);
    /* The usual PPO initialisation: sqrt(2) hidden, 0.01 policy output (near
     * uniform / near-zero mean at the start), 1 for the value output. */
    mlp_init_orthogonal(&p->pi, rng, sqrtf(2.0f), 0.01f);
    mlp_init_orthogonal(&p->vf, rng, sqrtf(2.0f), 1.0f);
    if (!p->discrete) {
        p->log_std = p->params + n_pi + n_vf;
        p->dlog_std = p->grads + n_pi + n_vf;
        for (int j = 0; j < p->n_out; j++) p->log_std[j] = (float)log_std_init;
    }
    return p;
}

void policy_destroy(policy_t **self_p) {
    policy_t *p = *self_p;
    if (!p) return;
    mlp_free(&p->pi);
    mlp_free(&p->vf);
    free(p->params);
    free(p->grads);
    free(p->probs);
    free(p->dhead);
    free(p->dval);
    free(p);
    *self_p = NULL;
}

void policy_observe(policy_t *p, const float *obs, int B, int update, float *out) {
    if (!p->norm_obs) {
        if (out != obs) memcpy(out, obs, sizeof(float) * (size_t)B * p->obs_dim);
        return;
    }
    if (update) runstat_update(&p->obs_stat, obs, B);
    runstat_apply(&p->obs_stat, obs, B, 10.0f, out);
}

static void ensure_scratch(policy_t *p, int B) {
    if (B <= p->cap) return;
    p->cap = B;
    p->probs = reallocCheck(p->probs, sizeof(float) * (size_t)B * p->n_out);
    p->dhead = reallocCheck(p->dhead, sizeof(float) * (size_t)B * p->n_out);
    p->dval = reallocCheck(p->dval, sizeof(float) * (size_t)B);
}

/* probs (n) = softmax(logits); returns log-sum-exp. */
static double softmax(const float *logits, int n, float *probs) {
    float mx = logits[0];
    for (int j = 1; j < n; j++)
        if (logits[j] > mx) mx = logits[j];
    double s = 0;
    for (int j = 0; j < n; j++) s += exp((double)(logits[j] - mx));
    double lse = mx + log(s);
    for (int j = 0; j < n; j++) probs[j] = (float)exp(logits[j] - lse);
    return lse;
}

static const double LOG_2PI = 1.8378770664093453;

void policy_value(policy_t *p, const float *obsn, int B, float *value) {
    float *v = mlp_forward(&p->vf, obsn, B);
    memcpy(value, v, sizeof(float) * B);
}

void policy_act(policy_t *p, const float *obsn, int B, rng_t *rng, int deterministic, float *action,
                float *logp, float *value) {
    float *out = mlp_forward(&p->pi, obsn, B);   // out is (B, n_out)
    int n = p->n_out;
    if (p->discrete) {
        float probs[ENV_MAX_DIM];
        for (int i = 0; i < B; i++) {
            const float *lg = out + (size_t)i * n;
            double lse = softmax(lg, n, probs);
            int a = 0;
            if (deterministic) {
                for (int j = 1; j < n; j++)
                    if (lg[j] > lg[a]) a = j;
            } else {
                double u = rng_uniform(rng), c = 0;
                a = n - 1;
                for (int j = 0; j < n; j++) {
                    c += probs[j];
                    if (u < c) {
                        a = j;
                        break;
                    }
                }
            }
            action[i] = (float)a;
            if (logp) logp[i] = (float)(lg[a] - lse);
        }
    } else {
        for (int i = 0; i < B; i++) {
            const float *mu = out + (size_t)i * n;
            float *a = action + (size_t)i * n;
            double lp = 0;
            for (int j = 0; j < n; j++) {
                double z = deterministic ? 0.0 : rng_normal(rng);
                a[j] = (float)(mu[j] + z * exp(p->log_std[j]));
                lp += -0.5 * z * z - p->log_std[j] - 0.5 * LOG_2PI;
            }
            if (logp) logp[i] = (float)lp;
        }
    }
    if (value) policy_value(p, obsn, B, value);
}

void policy_evaluate(policy_t *p, const float *obsn, const float *action, int B, float *logp,
                     float *entropy, float *value) {
    ensure_scratch(p, B);
    p->batch = B;
    p->action = action;
    float *out = mlp_forward(&p->pi, obsn, B);
    int n = p->n_out;
    if (p->discrete) {
        for (int i = 0; i < B; i++) {
            const float *lg = out + (size_t)i * n;
            float *pr = p->probs + (size_t)i * n;
            double lse = softmax(lg, n, pr);
            int a = (int)action[i];
            logp[i] = (float)(lg[a] - lse);
            double h = 0;
            for (int j = 0; j < n; j++) h -= pr[j] * (lg[j] - lse);
            entropy[i] = (float)h;
        }
    } else {
        double h = 0;
        for (int j = 0; j < n; j++) h += p->log_std[j] + 0.5 * (LOG_2PI + 1.0);
        for (int i = 0; i < B; i++) {
            const float *mu = out + (size_t)i * n, *a = action + (size_t)i * n;
            double lp = 0;
            for (int j = 0; j < n; j++) {
                double z = (a[j] - mu[j]) * exp(-p->log_std[j]);
                lp += -0.5 * z * z - p->log_std[j] - 0.5 * LOG_2PI;
            }
            logp[i] = (float)lp;
            entropy[i] = (float)h;
        }
    }
    policy_value(p, obsn, B, value);
}

void policy_backward(policy_t *p, const float *dlogp, const float *dent, const float *dvalue) {
    int B = p->batch, n = p->n_out;
    const float *out = p->pi.h[p->pi.n_layers - 1];    // the head's output from evaluate
    if (p->discrete) {
        for (int i = 0; i < B; i++) {
            const float *pr = p->probs + (size_t)i * n;
            float *d = p->dhead + (size_t)i * n;
            int a = (int)p->action[i];
            double h = 0;
            for (int j = 0; j < n; j++) h -= pr[j] > 0 ? pr[j] * log(pr[j]) : 0;
            for (int j = 0; j < n; j++) {
                // d logp / d logit_j = [j == a] - p_j ; d H / d logit_j = -p_j (log p_j + H)
                double lpj = pr[j] > 0 ? log(pr[j]) : -100.0;
                d[j] = (float)(dlogp[i] * ((j == a) - pr[j]) + dent[i] * (-pr[j] * (lpj + h)));
            }
        }
    } else {
        for (int i = 0; i < B; i++) {
            const float *mu = out + (size_t)i * n, *a = p->action + (size_t)i * n;
            float *d = p->dhead + (size_t)i * n;
            for (int j = 0; j < n; j++) {
                double inv_var = exp(-2.0 * p->log_std[j]), diff = a[j] - mu[j];
                // d logp / d mu = (a - mu) / sigma^2 ; d logp / d log_std = z^2 - 1 ; d H / d log_std = 1
                d[j] = (float)(dlogp[i] * diff * inv_var);
                p->dlog_std[j] += (float)(dlogp[i] * (diff * diff * inv_var - 1.0) + dent[i]);
            }
        }
    }
    mlp_backward(&p->pi, p->dhead, NULL);
    memcpy(p->dval, dvalue, sizeof(float) * B);
    mlp_backward(&p->vf, p->dval, NULL);
}
