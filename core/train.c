/* train.c - the single-process RLHF loop (see train.h).
 *
 * One iteration:
 *   1. rollout: T steps of N environments with the current policy, one
 *      batched forward per step; finished episodes go to a ring of recent
 *      episodes that segments are cut from;
 *   2. feedback: when the label schedule says so, cut candidate segments,
 *      select queries (random or ensemble disagreement), let the scripted
 *      teacher answer, and refit the reward model;
 *   3. rewards: the learned reward of every step of the rollout (ensemble
 *      mean), normalised; or the true reward with --feedback true-reward;
 *   4. PPO on the rollout.
 * The teacher is the only code that reads the true reward in teacher mode;
 * the metrics read it for reporting. */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "env.h"
#include "json.h"
#include "feedback.h"
#include "nn.h"
#include "policy.h"
#include "ppo.h"
#include "reward.h"
#include "rng.h"
#include "teacher.h"
#include "util.h"

/* A finished episode, kept to cut segments from. */
typedef struct {
    int len, terminated;
    float *obs, *act, *r;   /* (len, obs_dim), (len, act_dim), (len) */
} episode_t;

#define RING_EPISODES 64

typedef struct {
    const job_t *job;
    int N, T, obs_dim, act_dim, seg_len;
    const env_class_t *cls;
    env_t **envs;
    policy_t *policy;
    adam_t opt;
    ppo_buffer_t *buf;
    reward_model_t *rm;
    teacher_t teacher;
    segstore_t *segs;
    label_t *labels;
    int n_labels, cap_labels;
    int answered;               /* queries answered, can't-tell included: the budget */
    int next_kind;              /* rotates over the job's query kinds */
    rng_t rng_policy, rng_ppo, rng_feedback, rng_teacher, rng_reward;
    /* rollout state */
    float *obs;                 /* (N, obs_dim) raw current observations */
    float *raw_obs;             /* (T, N, obs_dim) raw, for the reward model */
    float *true_r;              /* (T, N) */
    float *learned;             /* (T, N) raw learned reward */
    double *ep_true, *ep_learned;
    int *ep_len;
    episode_t *cur;             /* (N) episodes in progress */
    episode_t ring[RING_EPISODES];
    int ring_n, ring_head;
    /* reward normalisation, refit with the model: (r - r_zero) / r_scale */
    double r_zero, r_scale;
    double abs_n;               /* normalised reward of the absorbing state */
    double reward_corr;         /* corr(learned, true) per step on the last batch */
    /* per-iteration statistics */
    double it_true_sum, it_learned_sum;
    int it_episodes;
    long long env_steps;
    reward_fit_stats_t fit;
} trainer_t;

static void episode_reserve(episode_t *e, int cap, int obs_dim, int act_dim) {
    e->obs = reallocCheck(e->obs, sizeof(float) * (size_t)cap * obs_dim);
    e->act = reallocCheck(e->act, sizeof(float) * (size_t)cap * act_dim);
    e->r = reallocCheck(e->r, sizeof(float) * (size_t)cap);
}

static void episode_free(episode_t *e) {
    free(e->obs);
    free(e->act);
    free(e->r);
    memset(e, 0, sizeof *e);
}

/* Moves the episode in progress of env n into the ring. */
static void finish_episode(trainer_t *tr, int n, int terminated) {
    episode_t *slot = &tr->ring[tr->ring_head];
    episode_free(slot);
    *slot = tr->cur[n];
    slot->terminated = terminated;
    tr->ring_head = (tr->ring_head + 1) % RING_EPISODES;
    if (tr->ring_n < RING_EPISODES) tr->ring_n++;
    memset(&tr->cur[n], 0, sizeof tr->cur[n]);
    episode_reserve(&tr->cur[n], tr->cls->max_steps + 1, tr->obs_dim, tr->act_dim);
}

/* Cuts a random segment from the recent episodes into the given arrays.
 * Starts are uniform over the steps of the eligible episodes; a terminated
 * episode's segment may run into the absorbing state, a truncated one's
 * never runs past its last step. Returns -1 when no episode is eligible. */
static int cut_segment(trainer_t *tr, float *obs, float *act, float *r, uint8_t *absorbing) {
    int T = tr->seg_len;
    long long total = 0;
    for (int i = 0; i < tr->ring_n; i++) {
        const episode_t *e = &tr->ring[i];
        total += e->terminated ? e->len : (e->len >= T ? e->len - T + 1 : 0);
    }
    if (total == 0) return -1;
    long long pick = (long long)(rng_uniform(&tr->rng_feedback) * (double)total);
    const episode_t *e = NULL;
    int start = 0;
    for (int i = 0; i < tr->ring_n; i++) {
        e = &tr->ring[i];
        long long c = e->terminated ? e->len : (e->len >= T ? e->len - T + 1 : 0);
        if (pick < c) {
            start = (int)pick;
            break;
        }
        pick -= c;
    }
    for (int t = 0; t < T; t++) {
        int k = start + t;
        if (k < e->len) {
            memcpy(obs + (size_t)t * tr->obs_dim, e->obs + (size_t)k * tr->obs_dim, sizeof(float) * tr->obs_dim);
            memcpy(act + (size_t)t * tr->act_dim, e->act + (size_t)k * tr->act_dim, sizeof(float) * tr->act_dim);
            r[t] = e->r[k];
            absorbing[t] = 0;
        } else {
            memset(obs + (size_t)t * tr->obs_dim, 0, sizeof(float) * tr->obs_dim);
            memset(act + (size_t)t * tr->act_dim, 0, sizeof(float) * tr->act_dim);
            r[t] = 0;
            absorbing[t] = 1;
        }
    }
    return 0;
}

static int next_query_kind(trainer_t *tr) {
    static const int kinds[] = {QUERY_PAIR, QUERY_RATING, QUERY_RANKING};
    for (int i = 0; i < 3; i++) {
        int k = kinds[(tr->next_kind + i) % 3];
        if (tr->job->feedback.query_kinds & k) {
            tr->next_kind = (tr->next_kind + i + 1) % 3;
            return k;
        }
    }
    return QUERY_PAIR;
}

static int kind_segments(const trainer_t *tr, int kind) {
    return kind == QUERY_PAIR ? 2 : kind == QUERY_RATING ? 1 : tr->job->feedback.rank_k;
}

static double sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

/* Disagreement of the ensemble on a candidate: the variance across members
 * of the predicted preference probability (pairs; rankings average it over
 * neighbours), or of the mean per-step reward (ratings). scores is
 * (k, K). */
static double disagreement(int kind, int k, int K, int T, const float *scores) {
    double var = 0;
    int terms = 0;
    for (int j = 0; j + 1 < k || (kind == QUERY_RATING && j == 0); j++) {
        double m = 0, m2 = 0;
        for (int e = 0; e < K; e++) {
            double v = kind == QUERY_RATING ? scores[e] / T
                                            : sigmoid(scores[(size_t)j * K + e] - scores[(size_t)(j + 1) * K + e]);
            m += v;
            m2 += v * v;
        }
        m /= K;
        var += m2 / K - m * m;
        terms++;
        if (kind == QUERY_RATING) break;
    }
    return var / terms;
}

static void add_label(trainer_t *tr, const label_t *lb) {
    if (tr->n_labels == tr->cap_labels) {
        tr->cap_labels = tr->cap_labels ? 2 * tr->cap_labels : 256;
        tr->labels = reallocCheck(tr->labels, sizeof(label_t) * tr->cap_labels);
    }
    tr->labels[tr->n_labels++] = *lb;
}

/* Asks n queries: builds candidates, selects, lets the teacher answer. */
static void ask_queries(trainer_t *tr, int n) {
    const job_t *job = tr->job;
    int T = tr->seg_len, K = tr->rm->K;
    int pool = job->feedback.select == SELECT_DISAGREEMENT ? n * job->feedback.pool_factor : n;
    int kinds[pool];
    segstore_t *cand = segstore_new(T, tr->obs_dim, tr->act_dim);
    float *obs = mallocCheck(sizeof(float) * (size_t)T * tr->obs_dim);
    float *act = mallocCheck(sizeof(float) * (size_t)T * tr->act_dim);
    float *r = mallocCheck(sizeof(float) * T);
    uint8_t *ab = mallocCheck(T);
    int *first = mallocCheck(sizeof(int) * pool);
    for (int q = 0; q < pool; q++) {
        kinds[q] = next_query_kind(tr);
        first[q] = cand->n;
        for (int j = 0; j < kind_segments(tr, kinds[q]); j++) {
            if (cut_segment(tr, obs, act, r, ab) != 0) goto out;
            segstore_add(cand, obs, act, r, ab);
        }
    }
    double *score = mallocCheck(sizeof(double) * pool);
    int *order = mallocCheck(sizeof(int) * pool);
    if (job->feedback.select == SELECT_DISAGREEMENT) {
        int *all = mallocCheck(sizeof(int) * cand->n);
        for (int i = 0; i < cand->n; i++) all[i] = i;
        float *sc = mallocCheck(sizeof(float) * (size_t)cand->n * K);
        reward_segment_scores(tr->rm, cand, all, cand->n, sc);
        for (int q = 0; q < pool; q++)
            score[q] = disagreement(kinds[q], kind_segments(tr, kinds[q]), K, T, sc + (size_t)first[q] * K);
        free(sc);
        free(all);
    } else {
        for (int q = 0; q < pool; q++) score[q] = 0;
    }
    /* The n highest scores (stable: ties keep candidate order). */
    for (int q = 0; q < pool; q++) order[q] = q;
    for (int i = 0; i < n && i < pool; i++) {
        int best = i;
        for (int j = i + 1; j < pool; j++)
            if (score[order[j]] > score[order[best]]) best = j;
        int t = order[i];
        order[i] = order[best];
        order[best] = t;
    }
    for (int i = 0; i < n && i < pool; i++) {
        int q = order[i], kind = kinds[q], k = kind_segments(tr, kind);
        label_t lb = {.kind = kind, .k = k};
        int ids[LABEL_MAX_K];
        const float *rewards[LABEL_MAX_K];
        for (int j = 0; j < k; j++) {
            int c = first[q] + j;
            ids[j] = segstore_add(tr->segs, segstore_obs(cand, c), segstore_act(cand, c), segstore_true_r(cand, c),
                                  segstore_absorbing(cand, c));
            rewards[j] = segstore_true_r(cand, c);
        }
        tr->answered++;
        if (kind == QUERY_PAIR) {
            pref_t p = teacher_pair(&tr->teacher, rewards[0], rewards[1], T, &tr->rng_teacher);
            if (p == PREF_CANT_TELL) continue;
            lb.seg[0] = ids[0];
            lb.seg[1] = ids[1];
            lb.pref = p == PREF_LEFT ? 1.0f : p == PREF_RIGHT ? 0.0f : 0.5f;
        } else if (kind == QUERY_RATING) {
            int rating = teacher_rating(&tr->teacher, rewards[0], T, &tr->rng_teacher);
            if (rating == 0) continue;
            lb.seg[0] = ids[0];
            lb.rating = rating;
        } else {
            int ord[LABEL_MAX_K];
            if (teacher_ranking(&tr->teacher, rewards, k, T, &tr->rng_teacher, ord) != 0) continue;
            for (int j = 0; j < k; j++) lb.seg[j] = ids[ord[j]];
        }
        add_label(tr, &lb);
    }
    free(score);
    free(order);
out:
    free(first);
    free(obs);
    free(act);
    free(r);
    free(ab);
    segstore_destroy(&cand);
}

/* The learned reward is normalised before RL, refit with the model, over
 * the steps of the labelled segments (the data the model was fit on spans
 * good and bad behaviour, so the scale stays put as the policy improves,
 * where a rollout batch's own spread shrinks to noise once every episode
 * survives):
 *  - when the labelled segments contain the absorbing state (the
 *    environment can terminate), the absorbing state's reward is the zero
 *    and the unit is the root mean square of the live steps' reward about
 *    it. A termination then needs no bootstrap (the absorbing state pays 0
 *    for ever), and a live step pays more than ending exactly when the
 *    model says it is better than ending: ending is never rewarded for its
 *    own sake, and values stay on the scale of the true-reward problem;
 *  - otherwise zero mean and unit standard deviation. */
static void refit_reward_normalisation(trainer_t *tr) {
    int T = tr->seg_len;
    size_t n = (size_t)tr->segs->n * T;
    float *r = mallocCheck(sizeof(float) * n);
    reward_predict(tr->rm, tr->segs->obs, tr->segs->act, tr->segs->absorbing, (int)n, tr->act_dim, r, NULL);
    size_t live = 0, absorbing = 0;
    double m = 0, m2 = 0, r_abs = 0;
    for (size_t i = 0; i < n; i++) {
        if (tr->segs->absorbing[i]) {
            r_abs = r[i];   // every absorbing step has the same features
            absorbing++;
            continue;
        }
        m += r[i];
        m2 += (double)r[i] * r[i];
        live++;
    }
    if (live == 0) live = 1;
    m /= live;
    if (absorbing) {
        tr->r_zero = r_abs;
        tr->r_scale = sqrt(fmax(m2 / live - 2 * r_abs * m + r_abs * r_abs, 1e-12));
    } else {
        tr->r_zero = m;
        tr->r_scale = sqrt(fmax(m2 / live - m * m, 1e-12));
    }
    free(r);
}

static int labels_due(const trainer_t *tr) {
    const job_t *job = tr->job;
    double until = job->feedback.label_until * (double)job->run.total_steps;
    double frac = job->feedback.initial_frac +
                  (1 - job->feedback.initial_frac) * fmin(1.0, (double)tr->env_steps / fmax(until, 1.0));
    int target = (int)ceil(frac * job->feedback.labels - 1e-9);
    if (target > job->feedback.labels) target = job->feedback.labels;
    return target - tr->answered;
}

/* Runs T steps of the N environments with the current policy. */
static void rollout(trainer_t *tr) {
    int N = tr->N, T = tr->T, od = tr->obs_dim, ad = tr->act_dim;
    ppo_buffer_t *b = tr->buf;
    float *next = mallocCheck(sizeof(float) * (size_t)N * od);
    float fin[ENV_MAX_DIM];
    double gamma = tr->job->ppo.gamma;
    for (int t = 0; t < T; t++) {
        float *obsn = b->obs + (size_t)t * N * od;
        memcpy(tr->raw_obs + (size_t)t * N * od, tr->obs, sizeof(float) * N * od);
        policy_observe(tr->policy, tr->obs, N, 1, obsn);
        policy_act(tr->policy, obsn, N, &tr->rng_policy, 0, b->act + (size_t)t * N * ad, b->logp + (size_t)t * N,
                   b->value + (size_t)t * N);
        for (int n = 0; n < N; n++) {
            size_t k = (size_t)t * N + n;
            const float *a = b->act + k * ad;
            int term = 0, trunc = 0;
            double r = env_step(tr->envs[n], a, next + (size_t)n * od, &term, &trunc);
            episode_t *e = &tr->cur[n];
            memcpy(e->obs + (size_t)e->len * od, tr->obs + (size_t)n * od, sizeof(float) * od);
            memcpy(e->act + (size_t)e->len * ad, a, sizeof(float) * ad);
            e->r[e->len++] = (float)r;
            tr->true_r[k] = (float)r;
            tr->ep_true[n] += r;
            tr->ep_len[n]++;
            b->done[k] = term || trunc;
            b->boot[k] = 0;
            if (b->done[k]) {
                if (!term) {
                    /* Time limit: the episode would go on; bootstrap from V(final obs). */
                    float v;
                    policy_observe(tr->policy, next + (size_t)n * od, 1, 0, fin);
                    policy_value(tr->policy, fin, 1, &v);
                    b->boot[k] = (float)(gamma * v);
                }
                tr->it_true_sum += tr->ep_true[n];
                tr->it_episodes++;
                tr->ep_true[n] = 0;
                tr->ep_len[n] = 0;
                finish_episode(tr, n, term);
                env_reset(tr->envs[n], next + (size_t)n * od);
            }
        }
        memcpy(tr->obs, next, sizeof(float) * N * od);
        tr->env_steps += N;
    }
    float *obsn = mallocCheck(sizeof(float) * (size_t)N * od);
    policy_observe(tr->policy, tr->obs, N, 0, obsn);
    policy_value(tr->policy, obsn, N, b->last_value);
    free(obsn);
    free(next);
}

/* Fills the buffer's rewards: true, or learned and normalised, with the
 * absorbing state's value at terminations. */
static void assign_rewards(trainer_t *tr) {
    ppo_buffer_t *b = tr->buf;
    size_t n = (size_t)tr->T * tr->N;
    double gamma = tr->job->ppo.gamma;
    if (!tr->rm) {
        memcpy(b->reward, tr->true_r, sizeof(float) * n);
        return;
    }
    reward_predict(tr->rm, tr->raw_obs, b->act, NULL, (int)n, tr->act_dim, tr->learned, NULL);
    float zero_obs[ENV_MAX_DIM] = {0}, zero_act[ENV_MAX_DIM] = {0}, r_abs;
    uint8_t one = 1;
    reward_predict(tr->rm, zero_obs, zero_act, &one, 1, tr->act_dim, &r_abs, NULL);
    double abs_n = (r_abs - tr->r_zero) / tr->r_scale;
    tr->abs_n = abs_n;
    /* How well the learned reward tracks the true one on this batch (a
     * reward-hacking watch where the true reward exists). */
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    for (size_t k = 0; k < n; k++) {
        double x = tr->learned[k], y = tr->true_r[k];
        sx += x;
        sy += y;
        sxx += x * x;
        syy += y * y;
        sxy += x * y;
    }
    double cov = sxy / n - sx / n * sy / n, vx = sxx / n - sx / n * sx / n, vy = syy / n - sy / n * sy / n;
    tr->reward_corr = vx > 1e-12 && vy > 1e-12 ? cov / sqrt(vx * vy) : NAN;
    for (size_t k = 0; k < n; k++) {
        b->reward[k] = (float)((tr->learned[k] - tr->r_zero) / tr->r_scale);
        int n_env = (int)(k % tr->N);
        tr->ep_learned[n_env] += tr->learned[k];
        if (b->done[k]) {
            tr->it_learned_sum += tr->ep_learned[n_env];
            tr->ep_learned[n_env] = 0;
            /* A termination enters the absorbing state for ever; a
             * truncation keeps its V(final obs) bootstrap. abs_n is 0 when
             * the labelled data contained the absorbing state. */
            int truncated = b->boot[k] != 0;
            if (!truncated) b->boot[k] = (float)(gamma * abs_n / (1 - gamma));
        }
    }
}

/* Deterministic policy on fresh environments: env i plays episodes i, i+N,
 * ... so that short episodes are not over-counted. */
static void evaluate(trainer_t *tr, int episodes, double *mean, double *std) {
    int N = tr->N < episodes ? tr->N : episodes, od = tr->obs_dim, ad = tr->act_dim;
    env_t **envs = mallocCheck(sizeof(env_t *) * N);
    float *obs = mallocCheck(sizeof(float) * (size_t)N * od), *obsn = mallocCheck(sizeof(float) * (size_t)N * od);
    float *act = mallocCheck(sizeof(float) * (size_t)N * ad);
    double *ret = callocCheck(N, sizeof(double)), *all = mallocCheck(sizeof(double) * episodes);
    int *remaining = mallocCheck(sizeof(int) * N), done = 0;
    char err[256];
    for (int i = 0; i < N; i++) {
        envs[i] = env_new(tr->cls->id, tr->job->run.seed * 7919 + 1000003 + i, err, sizeof err);
        env_reset(envs[i], obs + (size_t)i * od);
        remaining[i] = episodes / N + (i < episodes % N);
    }
    while (done < episodes) {
        policy_observe(tr->policy, obs, N, 0, obsn);
        policy_act(tr->policy, obsn, N, NULL, 1, act, NULL, NULL);
        for (int i = 0; i < N; i++) {
            if (remaining[i] == 0) continue;
            int term, trunc;
            ret[i] += env_step(envs[i], act + (size_t)i * ad, obs + (size_t)i * od, &term, &trunc);
            if (term || trunc) {
                all[done++] = ret[i];
                ret[i] = 0;
                remaining[i]--;
                env_reset(envs[i], obs + (size_t)i * od);
            }
        }
    }
    double m = 0, v = 0;
    for (int i = 0; i < episodes; i++) m += all[i];
    m /= episodes;
    for (int i = 0; i < episodes; i++) v += (all[i] - m) * (all[i] - m);
    *mean = m;
    *std = sqrt(v / episodes);
    for (int i = 0; i < N; i++) env_destroy(&envs[i]);
    free(envs);
    free(obs);
    free(obsn);
    free(act);
    free(ret);
    free(all);
    free(remaining);
}

static trainer_t *trainer_new(const job_t *job, char *err, size_t errlen) {
    trainer_t *tr = callocCheck(1, sizeof *tr);
    tr->job = job;
    tr->N = job->env.n_envs;
    tr->T = job->ppo.n_steps;
    tr->seg_len = job->feedback.segment_len;
    tr->cls = env_find(job->env.id);
    if (!tr->cls) {
        env_t *probe = env_new(job->env.id, 0, err, errlen);   // for its error text
        env_destroy(&probe);
        free(tr);
        return NULL;
    }
    if (job->feedback.mode == FEEDBACK_TEACHER && teacher_parse(job->feedback.teacher, &tr->teacher, err, errlen) != 0) {
        free(tr);
        return NULL;
    }
    tr->obs_dim = tr->cls->obs_dim;
    tr->act_dim = tr->cls->act.discrete ? 1 : tr->cls->act.n;
    rng_t root;
    rng_seed(&root, job->run.seed);
    rng_t init;
    rng_split(&root, 1, &init);
    rng_split(&root, 2, &tr->rng_policy);
    rng_split(&root, 3, &tr->rng_ppo);
    rng_split(&root, 4, &tr->rng_feedback);
    rng_split(&root, 5, &tr->rng_teacher);
    rng_split(&root, 6, &tr->rng_reward);
    tr->envs = callocCheck(tr->N, sizeof(env_t *));
    tr->obs = mallocCheck(sizeof(float) * (size_t)tr->N * tr->obs_dim);
    tr->cur = callocCheck(tr->N, sizeof(episode_t));
    for (int n = 0; n < tr->N; n++) {
        tr->envs[n] = env_new(job->env.id, job->run.seed * 1000003 + n, err, errlen);
        env_reset(tr->envs[n], tr->obs + (size_t)n * tr->obs_dim);
        episode_reserve(&tr->cur[n], tr->cls->max_steps + 1, tr->obs_dim, tr->act_dim);
    }
    tr->policy = policy_new(tr->obs_dim, &tr->cls->act, job->policy.hidden, job->policy.n_hidden,
                            job->policy.activation == ACT_RELU ? NN_RELU : NN_TANH, job->policy.log_std_init,
                            job->ppo.norm_obs, &init);
    adam_init(&tr->opt, tr->policy->n_params);
    tr->opt.eps = 1e-5;     /* PPO's usual Adam epsilon */
    tr->buf = ppo_buffer_new(tr->T, tr->N, tr->obs_dim, tr->act_dim);
    size_t tn = (size_t)tr->T * tr->N;
    tr->raw_obs = mallocCheck(sizeof(float) * tn * tr->obs_dim);
    tr->true_r = mallocCheck(sizeof(float) * tn);
    tr->learned = mallocCheck(sizeof(float) * tn);
    tr->ep_true = callocCheck(tr->N, sizeof(double));
    tr->ep_learned = callocCheck(tr->N, sizeof(double));
    tr->ep_len = callocCheck(tr->N, sizeof(int));
    if (job->feedback.mode == FEEDBACK_TEACHER) {
        tr->rm = reward_new(tr->obs_dim, &tr->cls->act, job, &init);
        tr->segs = segstore_new(tr->seg_len, tr->obs_dim, tr->act_dim);
    }
    tr->r_scale = 1;
    return tr;
}

static void trainer_destroy(trainer_t **self_p) {
    trainer_t *tr = *self_p;
    if (!tr) return;
    for (int n = 0; n < tr->N; n++) {
        env_destroy(&tr->envs[n]);
        episode_free(&tr->cur[n]);
    }
    for (int i = 0; i < RING_EPISODES; i++) episode_free(&tr->ring[i]);
    free(tr->envs);
    free(tr->cur);
    free(tr->obs);
    free(tr->raw_obs);
    free(tr->true_r);
    free(tr->learned);
    free(tr->ep_true);
    free(tr->ep_learned);
    free(tr->ep_len);
    free(tr->labels);
    policy_destroy(&tr->policy);
    adam_free(&tr->opt);
    ppo_buffer_destroy(&tr->buf);
    reward_destroy(&tr->rm);
    segstore_destroy(&tr->segs);
    free(tr);
    *self_p = NULL;
}

struct metric {
    const char *key;
    double value;
};

/* The members of a JSON object, comma separated (the caller writes the
 * braces); whole numbers as integers, non-finite values as null. */
static void write_metrics(FILE *f, const struct metric *m, size_t n) {
    char num[32];
    for (size_t i = 0; i < n; i++) {
        double v = m[i].value;
        if (isfinite(v) && v == floor(v) && fabs(v) < 1e15)
            snprintf(num, sizeof num, "%.0f", v);
        else
            json_format_number(num, sizeof num, v);
        fprintf(f, "%s\"%s\":%s", i ? "," : "", m[i].key, num);
    }
}

static FILE *open_in(const char *dir, const char *name, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return f;
}

int train_run(const job_t *job, const char *out_dir, int progress, train_result_t *res, char *err, size_t errlen) {
    double t0 = now_s();
    if (mkdir_p(out_dir) != 0) {
        snprintf(err, errlen, "cannot create run directory %s: %s", out_dir, strerror(errno));
        return -1;
    }
    FILE *cfg = open_in(out_dir, "config.ini", err, errlen);
    if (!cfg) return -1;
    job_write(job, cfg);
    fclose(cfg);
    trainer_t *tr = trainer_new(job, err, errlen);
    if (!tr) return -1;
    FILE *metrics = open_in(out_dir, "metrics.jsonl", err, errlen);
    if (!metrics) {
        trainer_destroy(&tr);
        return -1;
    }
    long long per_iter = (long long)tr->T * tr->N;
    int iterations = (int)((job->run.total_steps + per_iter - 1) / per_iter);
    double last_print = 0;
    for (int it = 0; it < iterations; it++) {
        double ts = now_s();
        tr->it_true_sum = tr->it_learned_sum = 0;
        tr->it_episodes = 0;
        rollout(tr);
        double t_roll = now_s() - ts;

        ts = now_s();
        int asked = 0;
        if (tr->rm) {
            /* Ask in rounds: the initial batch, then about labels / rounds at
             * a time, so the reward model is refit a bounded number of times. */
            int due = labels_due(tr);
            int round = (int)ceil(job->feedback.labels * (1 - job->feedback.initial_frac) / job->feedback.rounds);
            int left = job->feedback.labels - tr->answered;
            if (due > 0 && (tr->answered == 0 || due >= round || due == left)) {
                ask_queries(tr, due);
                asked = due;
                reward_fit(tr->rm, tr->segs, tr->labels, tr->n_labels, &tr->rng_reward, &tr->fit);
                refit_reward_normalisation(tr);
            }
        }
        double t_reward = now_s() - ts;

        ts = now_s();
        assign_rewards(tr);
        ppo_compute_gae(tr->buf, job->ppo.gamma, job->ppo.lambda);
        double frac = 1.0 - (double)it / iterations;
        double lr = job->ppo.anneal_lr ? job->ppo.lr * frac : job->ppo.lr;
        ppo_stats_t ps;
        ppo_update(tr->policy, &tr->opt, tr->buf, job, lr, &tr->rng_ppo, &ps);
        double t_ppo = now_s() - ts;

        double true_ret = tr->it_episodes ? tr->it_true_sum / tr->it_episodes : NAN;
        double learned_ret = tr->it_episodes && tr->rm ? tr->it_learned_sum / tr->it_episodes : NAN;
        /* Figures that do not exist yet (no episode ended, no reward model)
         * are null, never a sentinel number. */
        int no_rm = !tr->rm || tr->n_labels == 0;
        const struct metric m[] = {
            {"iteration", it},
            {"env_steps", (double)tr->env_steps},
            {"labels", tr->answered},
            {"labels_used", tr->n_labels},
            {"asked", asked},
            {"rm_val_acc", no_rm || tr->fit.val_acc < 0 ? NAN : tr->fit.val_acc},
            {"rm_train_acc", no_rm ? NAN : tr->fit.train_acc},
            {"rm_loss", no_rm ? NAN : tr->fit.loss},
            {"r_absorbing", no_rm ? NAN : tr->abs_n},
            {"reward_corr", no_rm ? NAN : tr->reward_corr},
            {"true_return", true_ret},
            {"learned_return", learned_ret},
            {"episodes", tr->it_episodes},
            {"entropy", ps.entropy},
            {"approx_kl", ps.approx_kl},
            {"clip_frac", ps.clip_frac},
            {"pg_loss", ps.pg_loss},
            {"v_loss", ps.v_loss},
            {"grad_norm", ps.grad_norm},
            {"lr", lr},
            {"t_rollout", t_roll},
            {"t_reward", t_reward},
            {"t_ppo", t_ppo},
            {"wall_s", now_s() - t0},
        };
        fputc('{', metrics);
        write_metrics(metrics, m, sizeof m / sizeof m[0]);
        fputs("}\n", metrics);
        double now = now_s();
        if (progress && (now - last_print > 0.25 || it == iterations - 1)) {
            last_print = now;
            char line[256];
            snprintf(line, sizeof line, "iter %d/%d  steps %lld  labels %d  rm_acc %.2f  return %.1f  entropy %.3f  %.1fs",
                     it + 1, iterations, tr->env_steps, tr->answered, tr->fit.val_acc, true_ret, ps.entropy,
                     now - t0);
            if (progress == 2)
                fprintf(stderr, "\r\033[K%s", line);
            else
                fprintf(stderr, "%s\n", line);
        }
    }
    if (progress == 2) fprintf(stderr, "\n");
    fclose(metrics);

    double mean = NAN, std = NAN;
    if (job->run.eval_episodes > 0) evaluate(tr, job->run.eval_episodes, &mean, &std);
    double wall = now_s() - t0;
    FILE *sum = open_in(out_dir, "summary.json", err, errlen);
    if (!sum) {
        trainer_destroy(&tr);
        return -1;
    }
    fprintf(sum, "{\"env\":");
    json_write_string(sum, job->env.id, strlen(job->env.id));
    fprintf(sum, ",\"feedback\":\"%s\",\"seed\":%llu,\"blas_core\":", tr->rm ? "teacher" : "true-reward",
            (unsigned long long)job->run.seed);
    json_write_string(sum, blas_corename(), strlen(blas_corename()));
    fputc(',', sum);
    const struct metric m[] = {
        {"labels", tr->answered},
        {"labels_used", tr->n_labels},
        {"env_steps", (double)tr->env_steps},
        {"wall_s", wall},
        {"true_return_mean", mean},
        {"true_return_std", std},
        {"eval_episodes", job->run.eval_episodes},
        {"rm_val_acc", tr->rm && tr->fit.val_acc >= 0 ? tr->fit.val_acc : NAN},
    };
    write_metrics(sum, m, sizeof m / sizeof m[0]);
    fputs("}\n", sum);
    fclose(sum);
    if (res) {
        res->true_return_mean = mean;
        res->true_return_std = std;
        res->eval_episodes = job->run.eval_episodes;
        res->env_steps = tr->env_steps;
        res->labels = tr->answered;
        res->wall_s = wall;
    }
    trainer_destroy(&tr);
    return 0;
}
