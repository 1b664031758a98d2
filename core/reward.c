/* reward.c - see reward.h. */
#include "reward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

reward_model_t *reward_new(int obs_dim, const env_space_t *space, const job_t *job, rng_t *rng) {
    reward_model_t *rm = callocCheck(1, sizeof *rm);
    rm->K = job->reward.members;
    if (rm->K > REWARD_MAX_MEMBERS) rm->K = REWARD_MAX_MEMBERS;
    rm->obs_dim = obs_dim;
    rm->discrete = space->discrete;
    rm->n_act = space->n;
    for (int j = 0; j < space->n && !space->discrete; j++) {
        rm->act_lo[j] = space->low[j];
        rm->act_hi[j] = space->high[j];
    }
    rm->in_dim = obs_dim + space->n + 1;
    rm->lr = job->reward.lr;
    rm->weight_decay = job->reward.weight_decay;
    rm->noise = job->reward.noise;
    rm->epochs = job->reward.epochs;
    rm->batch = job->reward.batch;
    rm->bootstrap = job->reward.bootstrap;
    runstat_init(&rm->obs_stat, obs_dim);

    int sizes[NN_MAX_LAYERS + 1], L = job->reward.n_hidden + 1;
    sizes[0] = rm->in_dim;
    for (int i = 0; i < job->reward.n_hidden; i++) sizes[i + 1] = job->reward.hidden[i];
    sizes[L] = 1;
    rm->per_member = mlp_count(sizes, L);
    rm->n_params = rm->per_member * rm->K;
    rm->params = callocCheck(rm->n_params, sizeof(float));
    rm->grads = callocCheck(rm->n_params + NN_STAT_SLOTS, sizeof(float));
    nn_act_t act = job->reward.activation == ACT_RELU ? NN_RELU : NN_TANH;
    for (int k = 0; k < rm->K; k++) {
        mlp_bind(&rm->m[k], sizes, L, act, rm->params + k * rm->per_member, rm->grads + k * rm->per_member);
        mlp_init_orthogonal(&rm->m[k], rng, sqrtf(2.0f), 1.0f);
    }
    adam_init(&rm->adam, rm->n_params);
    return rm;
}

void reward_destroy(reward_model_t **self_p) {
    reward_model_t *rm = *self_p;
    if (!rm) return;
    for (int k = 0; k < rm->K; k++) mlp_free(&rm->m[k]);
    adam_free(&rm->adam);
    free(rm->params);
    free(rm->grads);
    free(rm->feat);
    free(rm);
    *self_p = NULL;
}

static float *feature_buffer(reward_model_t *rm, size_t rows) {
    size_t need = rows * rm->in_dim;
    if (need > rm->feat_cap) {
        rm->feat_cap = need * 2;
        rm->feat = reallocCheck(rm->feat, sizeof(float) * rm->feat_cap);
    }
    return rm->feat;
}

/* Features of n steps into f (n, in_dim):
 * [ normalised obs | one-hot or scaled action | absorbing ], zero but the
 * flag in the absorbing state. */
static void features(const reward_model_t *rm, const float *obs, const float *act, const uint8_t *absorbing,
                     int n, int act_dim, float *f) {
    memset(f, 0, sizeof(float) * (size_t)n * rm->in_dim);
    for (int i = 0; i < n; i++) {
        float *row = f + (size_t)i * rm->in_dim;
        if (absorbing && absorbing[i]) {
            row[rm->in_dim - 1] = 1.0f;
            continue;
        }
        runstat_apply(&rm->obs_stat, obs + (size_t)i * rm->obs_dim, 1, 5.0f, row);
        const float *a = act + (size_t)i * act_dim;
        if (rm->discrete) {
            int ai = (int)a[0];
            if (ai >= 0 && ai < rm->n_act) row[rm->obs_dim + ai] = 1.0f;
        } else {
            for (int j = 0; j < rm->n_act; j++) {
                double lo = rm->act_lo[j], hi = rm->act_hi[j];
                double v = fmin(fmax(a[j], lo), hi);   // the environment clips too
                row[rm->obs_dim + j] = (float)(2.0 * (v - lo) / (hi - lo) - 1.0);
            }
        }
    }
}

void reward_predict(reward_model_t *rm, const float *obs, const float *act, const uint8_t *absorbing,
                    int n, int act_dim, float *mean, float *std) {
    float *f = feature_buffer(rm, n);
    features(rm, obs, act, absorbing, n, act_dim, f);
    memset(mean, 0, sizeof(float) * n);
    if (std) memset(std, 0, sizeof(float) * n);
    for (int k = 0; k < rm->K; k++) {
        const float *out = mlp_forward(&rm->m[k], f, n);
        for (int i = 0; i < n; i++) {
            mean[i] += out[i];
            if (std) std[i] += out[i] * out[i];
        }
    }
    for (int i = 0; i < n; i++) {
        mean[i] /= rm->K;
        if (std) std[i] = sqrtf(fmaxf(std[i] / rm->K - mean[i] * mean[i], 0.0f));
    }
}

/* Features for the listed segments, concatenated: (n_segs * T, in_dim). */
static float *segment_features(reward_model_t *rm, const segstore_t *s, const int *segs, int n_segs) {
    int T = s->T;
    float *f = feature_buffer(rm, (size_t)n_segs * T);
    for (int i = 0; i < n_segs; i++)
        features(rm, segstore_obs(s, segs[i]), segstore_act(s, segs[i]), segstore_absorbing(s, segs[i]), T,
                 s->act_dim, f + (size_t)i * T * rm->in_dim);
    return f;
}

void reward_segment_scores(reward_model_t *rm, const segstore_t *s, const int *segs, int n_segs, float *out) {
    int T = s->T;
    float *f = segment_features(rm, s, segs, n_segs);
    for (int k = 0; k < rm->K; k++) {
        const float *r = mlp_forward(&rm->m[k], f, n_segs * T);
        for (int i = 0; i < n_segs; i++) {
            double sum = 0;
            for (int t = 0; t < T; t++) sum += r[(size_t)i * T + t];
            out[(size_t)i * rm->K + k] = (float)sum;
        }
    }
}

static double sigmoid(double x) {
    return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

/* Loss of one label given its segments' scores S (k); writes dL/dS into dS. */
static double label_loss(const reward_model_t *rm, const label_t *lb, int T, const double *S, double *dS) {
    if (lb->kind == QUERY_PAIR) {
        double eps = rm->noise, y = lb->pref, d = S[0] - S[1];
        double sg = sigmoid(d);
        if (eps == 0) {
            /* Plain Bradley-Terry in the log-sigmoid form: P itself rounds
             * to 0 or 1 once the model is confident. */
            double sp_pos = d > 0 ? d + log1p(exp(-d)) : log1p(exp(d));   // softplus(d)
            dS[0] = sg - y;
            dS[1] = y - sg;
            return y * (sp_pos - d) + (1 - y) * sp_pos;
        }
        double P = (1 - eps) * sg + eps / 2;
        double loss = -(y * log(P) + (1 - y) * log(1 - P));
        double g = -(y / P - (1 - y) / (1 - P)) * (1 - eps) * sg * (1 - sg);
        dS[0] = g;
        dS[1] = -g;
        return loss;
    }
    if (lb->kind == QUERY_RANKING) {
        // L = -sum_{i<k-1} [S_i - logsumexp_{j>=i} S_j], segments best first
        int k = lb->k;
        double loss = 0;
        for (int m = 0; m < k; m++) dS[m] = 0;
        for (int i = 0; i < k - 1; i++) {
            double mx = S[i];
            for (int j = i; j < k; j++) mx = fmax(mx, S[j]);
            double z = 0;
            for (int j = i; j < k; j++) z += exp(S[j] - mx);
            double lse = mx + log(z);
            loss += lse - S[i];
            dS[i] -= 1;
            for (int j = i; j < k; j++) dS[j] += exp(S[j] - lse);
        }
        return loss;
    }
    double target = (lb->rating - 4) / 3.0, pred = S[0] / T, d = pred - target;
    dS[0] = 2 * d / T;
    return d * d;
}

double reward_member_loss(reward_model_t *rm, int m, const segstore_t *s, const label_t *labels,
                          const int *idx, int n, int denom, int grad) {
    int T = s->T;
    if (n <= 0) return 0;
    int n_segs = 0;
    for (int i = 0; i < n; i++) n_segs += labels[idx[i]].k;
    int *segs = mallocCheck(sizeof(int) * n_segs);
    for (int i = 0, c = 0; i < n; i++)
        for (int j = 0; j < labels[idx[i]].k; j++) segs[c++] = labels[idx[i]].seg[j];
    float *f = segment_features(rm, s, segs, n_segs);
    const float *r = mlp_forward(&rm->m[m], f, n_segs * T);    // r is (n_segs * T, 1)
    float *dr = grad ? mallocCheck(sizeof(float) * (size_t)n_segs * T) : NULL;
    double loss = 0;
    for (int i = 0, c = 0; i < n; i++) {
        const label_t *lb = &labels[idx[i]];
        double S[LABEL_MAX_K], dS[LABEL_MAX_K];
        for (int j = 0; j < lb->k; j++) {
            double sum = 0;
            for (int t = 0; t < T; t++) sum += r[(size_t)(c + j) * T + t];
            S[j] = sum;
        }
        loss += label_loss(rm, lb, T, S, dS);
        if (grad)
            for (int j = 0; j < lb->k; j++)
                for (int t = 0; t < T; t++) dr[(size_t)(c + j) * T + t] = (float)(dS[j] / denom);
        c += lb->k;
    }
    if (grad) {
        mlp_backward(&rm->m[m], dr, NULL);
        free(dr);
    }
    free(segs);
    return loss / denom;
}

/* Counts ordered comparisons member m gets right on the labels idx:
 * strict pair preferences and ranking neighbours. */
static void member_accuracy(reward_model_t *rm, int m, const segstore_t *s, const label_t *labels,
                            const int *idx, int n, int *right, int *total) {
    int T = s->T;
    for (int i = 0; i < n; i++) {
        const label_t *lb = &labels[idx[i]];
        if (lb->kind == QUERY_RATING || (lb->kind == QUERY_PAIR && lb->pref == 0.5f)) continue;
        float *f = segment_features(rm, s, lb->seg, lb->k);
        const float *r = mlp_forward(&rm->m[m], f, lb->k * T);
        double S[LABEL_MAX_K];
        for (int j = 0; j < lb->k; j++) {
            S[j] = 0;
            for (int t = 0; t < T; t++) S[j] += r[(size_t)j * T + t];
        }
        if (lb->kind == QUERY_PAIR) {
            *right += (S[0] > S[1]) == (lb->pref > 0.5f);
            *total += 1;
        } else {
            for (int j = 0; j + 1 < lb->k; j++) {
                *right += S[j] > S[j + 1];
                *total += 1;
            }
        }
    }
}

/* Refits the input normalisation to the observations of every labelled
 * segment (absorbing steps excluded). */
static void refit_normaliser(reward_model_t *rm, const segstore_t *s) {
    runstat_init(&rm->obs_stat, rm->obs_dim);
    for (int i = 0; i < s->n; i++) {
        const float *obs = segstore_obs(s, i);
        const uint8_t *ab = segstore_absorbing(s, i);
        int live = 0;
        while (live < s->T && !ab[live]) live++;   // absorbing steps come last
        runstat_update(&rm->obs_stat, obs, live);
    }
}

void reward_fit(reward_model_t *rm, const segstore_t *s, const label_t *labels, int n_labels, rng_t *rng,
                const dist_t *dist, reward_fit_stats_t *st) {
    memset(st, 0, sizeof *st);
    st->val_acc = -1;
    if (n_labels == 0) return;
    refit_normaliser(rm, s);
    int K = rm->K;
    int *sample = mallocCheck(sizeof(int) * (size_t)K * n_labels);
    uint8_t *in_bag = callocCheck((size_t)K * n_labels, 1);
    for (int k = 0; k < K; k++)
        for (int i = 0; i < n_labels; i++) {
            int j = rm->bootstrap ? rng_int(rng, n_labels) : i;
            sample[(size_t)k * n_labels + i] = j;
            in_bag[(size_t)k * n_labels + j] = 1;
        }
    int B = rm->batch < n_labels ? rm->batch : n_labels;
    int n_mb = (n_labels + B - 1) / B;
    for (int epoch = 0; epoch < rm->epochs; epoch++) {
        double epoch_loss = 0;
        for (int k = 0; k < K; k++) {
            int *smp = sample + (size_t)k * n_labels;
            for (int i = n_labels - 1; i > 0; i--) {
                int j = rng_int(rng, i + 1), t = smp[i];
                smp[i] = smp[j];
                smp[j] = t;
            }
        }
        for (int mb = 0; mb < n_mb; mb++) {
            nn_zero(rm->grads, rm->n_params + NN_STAT_SLOTS);
            int first = mb * B, n = n_labels - first < B ? n_labels - first : B, lo, hi;
            dist_shard(dist, n, &lo, &hi);   // this replica's labels of the minibatch
            double loss = 0;
            for (int k = 0; k < K; k++)
                loss += reward_member_loss(rm, k, s, labels, sample + (size_t)k * n_labels + first + lo, hi - lo, n,
                                           1) * n;
            rm->grads[rm->n_params] = (float)loss;
            dist_sum(dist, rm->grads, rm->n_params + NN_STAT_SLOTS);
            epoch_loss += rm->grads[rm->n_params];
            adam_step(&rm->adam, rm->params, rm->grads, rm->lr, rm->weight_decay);
        }
        st->loss = epoch_loss / ((double)n_labels * K);
    }
    /* Held out: each member on the labels its resample never drew. */
    int right = 0, total = 0;
    int *oob = mallocCheck(sizeof(int) * n_labels);
    for (int k = 0; k < K && rm->bootstrap; k++) {
        int n = 0;
        for (int i = 0; i < n_labels; i++)
            if (!in_bag[(size_t)k * n_labels + i]) oob[n++] = i;
        member_accuracy(rm, k, s, labels, oob, n, &right, &total);
    }
    st->val_n = total;
    st->val_acc = total ? (double)right / total : -1;
    right = total = 0;
    for (int i = 0; i < n_labels; i++) oob[i] = i;
    for (int k = 0; k < K; k++) member_accuracy(rm, k, s, labels, oob, n_labels, &right, &total);
    st->train_acc = total ? (double)right / total : -1;
    free(oob);
    free(sample);
    free(in_bag);
}
