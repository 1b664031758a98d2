/* query.c - see query.h. */
#include "query.h"

#include <math.h>
#include <stdlib.h>

#include "util.h"

int query_due(const job_t *job, long long env_steps, long long answered) {
    const int budget = job->feedback.labels;
    double until = job->feedback.label_until * (double)job->run.total_steps;
    double frac = job->feedback.initial_frac +
                  (1 - job->feedback.initial_frac) * fmin(1.0, (double)env_steps / fmax(until, 1.0));
    int target = (int)ceil(frac * budget - 1e-9);
    if (target > budget) target = budget;
    int due = target - (int)answered;
    int round = (int)ceil(budget * (1 - job->feedback.initial_frac) / job->feedback.rounds);
    int ask = due > 0 && (answered == 0 || due >= round || due == budget - answered);
    return ask ? due : 0;
}

int query_segments(const job_t *job, int kind) {
    return kind == QUERY_PAIR ? 2 : kind == QUERY_RATING ? 1 : job->feedback.rank_k;
}

static int next_query_kind(const job_t *job, int *next) {
    static const int kinds[] = {QUERY_PAIR, QUERY_RATING, QUERY_RANKING};
    for (int i = 0; i < 3; i++) {
        int k = kinds[(*next + i) % 3];
        if (job->feedback.query_kinds & k) {
            *next = (*next + i + 1) % 3;
            return k;
        }
    }
    return QUERY_PAIR;
}

static double sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

/* scores is (k, K): member e's score of segment j at [j * K + e]. */
static double disagreement(int kind, int k, int K, int T, const float *scores) {
    if (kind == QUERY_RATING) {
        double m = 0, m2 = 0;
        for (int e = 0; e < K; e++) {
            double v = scores[e] / T;
            m += v;
            m2 += v * v;
        }
        m /= K;
        return m2 / K - m * m;
    }
    double var = 0;
    for (int j = 0; j + 1 < k; j++) {
        double m = 0, m2 = 0;
        for (int e = 0; e < K; e++) {
            double v = sigmoid(scores[(size_t)j * K + e] - scores[(size_t)(j + 1) * K + e]);
            m += v;
            m2 += v * v;
        }
        m /= K;
        var += m2 / K - m * m;
    }
    return var / (k - 1);
}

int query_make(const job_t *job, episodes_t *eps, reward_model_t *rm, int n, int *next_kind, rng_t *rng,
               segstore_t *out, query_t *queries) {
    int T = out->T, od = out->obs_dim, ad = out->act_dim;
    int disagree = job->feedback.select == SELECT_DISAGREEMENT && rm;
    int pool = disagree ? n * job->feedback.pool_factor : n;
    segstore_t *cand = segstore_new(T, od, ad);
    query_t *cq = callocCheck(pool, sizeof(query_t));
    float *obs = mallocCheck(sizeof(float) * (size_t)T * od), *act = mallocCheck(sizeof(float) * (size_t)T * ad);
    float *r = mallocCheck(sizeof(float) * T);
    uint8_t *ab = mallocCheck(T);
    int made = 0;
    for (; made < pool; made++) {
        query_t *q = &cq[made];
        q->kind = next_query_kind(job, next_kind);
        q->k = query_segments(job, q->kind);
        int j = 0;
        for (; j < q->k; j++) {
            if (episodes_cut(eps, T, rng, obs, act, r, ab) != 0) break;
            q->seg[j] = segstore_add(cand, obs, act, r, ab);
        }
        if (j < q->k) break;
    }
    if (disagree && made > 0) {
        int K = rm->K;
        int *all = mallocCheck(sizeof(int) * cand->n);
        for (int i = 0; i < cand->n; i++) all[i] = i;
        float *sc = mallocCheck(sizeof(float) * (size_t)cand->n * K);
        reward_segment_scores(rm, cand, all, cand->n, sc);
        float *qs = mallocCheck(sizeof(float) * LABEL_MAX_K * K);
        for (int q = 0; q < made; q++) {
            for (int j = 0; j < cq[q].k; j++)
                for (int e = 0; e < K; e++) qs[j * K + e] = sc[(size_t)cq[q].seg[j] * K + e];
            cq[q].score = disagreement(cq[q].kind, cq[q].k, K, T, qs);
        }
        free(qs);
        free(sc);
        free(all);
    }
    /* The n highest scores; a stable selection keeps draw order on ties. */
    int take = made < n ? made : n;
    for (int i = 0; i < take; i++) {
        int best = i;
        for (int j = i + 1; j < made; j++)
            if (cq[j].score > cq[best].score) best = j;
        query_t t = cq[i];
        cq[i] = cq[best];
        cq[best] = t;
        queries[i] = cq[i];
        for (int j = 0; j < cq[i].k; j++) {
            int c = cq[i].seg[j];
            queries[i].seg[j] = segstore_add(out, segstore_obs(cand, c), segstore_act(cand, c), segstore_true_r(cand, c),
                                             segstore_absorbing(cand, c));
        }
    }
    free(obs);
    free(act);
    free(r);
    free(ab);
    free(cq);
    segstore_destroy(&cand);
    return take;
}
