/* learner.c - see learner.h. */
#include "learner.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runstat.h"
#include "util.h"


learner_t *learner_new(const job_t *job, char *err, size_t errlen) {
    const env_class_t *cls = env_find(job->env.id);
    if (!cls) {
        env_t *probe = env_new(job->env.id, 0, err, errlen);   // for its error text
        env_destroy(&probe);
        return NULL;
    }
    learner_t *l = callocCheck(1, sizeof *l);
    l->job = job;
    l->cls = cls;
    l->obs_dim = cls->obs_dim;
    l->act_dim = cls->act.discrete ? 1 : cls->act.n;
    rng_t root, init;
    rng_seed(&root, job->run.seed);
    rng_split(&root, 1, &init);
    rng_split(&root, 3, &l->rng_ppo);
    rng_split(&root, 6, &l->rng_reward);
    l->policy = policy_new(l->obs_dim, &cls->act, job->policy.hidden, job->policy.n_hidden,
                           job->policy.activation == ACT_RELU ? NN_RELU : NN_TANH, job->policy.log_std_init,
                           job->ppo.norm_obs, &init);
    adam_init(&l->opt, l->policy->n_params);
    l->opt.eps = 1e-5;     /* PPO's usual Adam epsilon */
    if (job->feedback.mode != FEEDBACK_TRUE_REWARD) {
        l->rm = reward_new(l->obs_dim, &cls->act, job, &init);
        l->segs = segstore_new(job->feedback.segment_len, l->obs_dim, l->act_dim);
    }
    l->r_scale = 1;
    l->reward_corr = NAN;
    l->learned_return = NAN;
    l->disagreement = NAN;
    l->disagreement_labelled = NAN;
    l->dist.size = 1;
    l->buf = ppo_buffer_new(job->ppo.n_steps, job->env.n_envs, l->obs_dim, l->act_dim);
    l->learned = callocCheck((size_t)job->ppo.n_steps * job->env.n_envs, sizeof(float));
    l->learned_std = callocCheck((size_t)job->ppo.n_steps * job->env.n_envs, sizeof(float));
    l->ep_learned = callocCheck(job->env.n_envs, sizeof(double));
    if (l->rm ? job->ppo.norm_learned_reward : job->ppo.norm_reward) {
        l->ret_norm = callocCheck(1, sizeof *l->ret_norm + sizeof(double) * (size_t)job->env.n_envs);
        runstat_init(&l->ret_norm->stat, 1);
    }
    return l;
}

void learner_destroy(learner_t **self_p) {
    learner_t *l = *self_p;
    if (!l) return;
    policy_destroy(&l->policy);
    adam_free(&l->opt);
    reward_destroy(&l->rm);
    segstore_destroy(&l->segs);
    free(l->labels);
    ppo_buffer_destroy(&l->buf);
    free(l->learned);
    free(l->learned_std);
    free(l->ep_learned);
    free(l->ret_norm);
    free(l);
    *self_p = NULL;
}

void learner_add_label(learner_t *l, const label_t *label, const segstore_t *src) {
    if (l->n_labels == l->cap_labels) {
        l->cap_labels = l->cap_labels ? 2 * l->cap_labels : 256;
        l->labels = reallocCheck(l->labels, sizeof(label_t) * l->cap_labels);
    }
    label_t lb = *label;
    for (int j = 0; j < lb.k; j++) {
        int c = label->seg[j];
        lb.seg[j] = segstore_add(l->segs, segstore_obs(src, c), segstore_act(src, c), segstore_true_r(src, c),
                                 segstore_absorbing(src, c));
    }
    l->labels[l->n_labels++] = lb;
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
static void refit_reward_normalisation(learner_t *l) {
    int T = l->segs->T;
    size_t n = (size_t)l->segs->n * T;
    float *r = mallocCheck(sizeof(float) * (n ? n : 1)), *sd = mallocCheck(sizeof(float) * (n ? n : 1));
    reward_predict(l->rm, l->segs->obs, l->segs->act, l->segs->absorbing, (int)n, l->act_dim, r, sd);
    size_t live = 0, absorbing = 0;
    double m = 0, m2 = 0, r_abs = 0, sd_sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (l->segs->absorbing[i]) {
            r_abs = r[i];   // every absorbing step has the same features
            absorbing++;
            continue;
        }
        m += r[i];
        m2 += (double)r[i] * r[i];
        sd_sum += sd[i];
        live++;
    }
    if (live == 0) live = 1;
    m /= live;
    if (absorbing) {
        l->r_zero = r_abs;
        l->r_scale = sqrt(fmax(m2 / live - 2 * r_abs * m + r_abs * r_abs, 1e-12));
    } else {
        l->r_zero = m;
        l->r_scale = sqrt(fmax(m2 / live - m * m, 1e-12));
    }
    /* The watch's yardstick: how much the members disagree where they were
     * trained (live steps only, as a rollout batch has no absorbing steps). */
    l->disagreement_labelled = sd_sum / live / l->r_scale;
    free(r);
    free(sd);
}

/* disagreement_labelled again, without touching the normalisation: after a
 * resume (it is not checkpointed), from the restored model. */
static void measure_labelled_disagreement(learner_t *l) {
    double r_zero = l->r_zero, r_scale = l->r_scale;
    refit_reward_normalisation(l);
    l->r_zero = r_zero, l->r_scale = r_scale;   // the same numbers, but the restored ones stay authoritative
}

void learner_fit_reward(learner_t *l) {
    if (!l->rm || l->n_labels == 0) return;
    reward_fit(l->rm, l->segs, l->labels, l->n_labels, &l->rng_reward, &l->dist, &l->fit);
    refit_reward_normalisation(l);
    l->fits++;
}

/* ppo.norm_reward (true reward) and ppo.norm_learned_reward (the learned
 * reward after its own normalisation), as SB3's VecNormalize(norm_reward=
 * True) does it step by step: each environment's discounted return ret =
 * gamma ret + r, the running variance of those returns (one sample per
 * environment and step), the reward r (read from r_in, written to
 * buf->reward; they may be the same) divided by their std and clipped to
 * +-10, and ret reset at an episode's end. The scale keeps the value targets
 * near unit size whatever the reward's magnitude and the horizon (Hopper's
 * true returns are in the thousands; a unit-scale learned reward with
 * Swimmer's gamma of 0.9999 gives value targets in the hundreds). A
 * termination's bootstrap (the absorbing state's value, learned reward
 * only) is scaled with its step's reward. The return's mean is not
 * subtracted: that would change which policy is best. */
static void scale_rewards(learner_t *l, const traj_t *b, const float *r_in) {
    enum { RET_CHUNK = 64 };   /* returns folded into the statistics per call */
    double gamma = l->job->ppo.gamma;
    struct learner_ret_norm *rn = l->ret_norm;
    float rets[RET_CHUNK];
    for (int t = 0; t < b->T; t++) {
        const float *r = r_in + (size_t)t * b->N;
        float *out = l->buf->reward + (size_t)t * b->N;
        for (int e0 = 0; e0 < b->N; e0 += RET_CHUNK) {
            int m = b->N - e0 < RET_CHUNK ? b->N - e0 : RET_CHUNK;
            for (int i = 0; i < m; i++) {
                rn->ret[e0 + i] = gamma * rn->ret[e0 + i] + r[e0 + i];
                rets[i] = (float)rn->ret[e0 + i];
            }
            runstat_update(&rn->stat, rets, m);
        }
        double inv = 1.0 / sqrt(rn->stat.var[0] + 1e-8);
        for (int e = 0; e < b->N; e++) {
            size_t k = (size_t)t * b->N + e;
            double x = r[e] * inv;
            out[e] = (float)(x < -10 ? -10 : x > 10 ? 10 : x);
            if (b->terminated[k]) l->buf->boot[k] = (float)(l->buf->boot[k] * inv);
            if (b->done[k]) rn->ret[e] = 0;
        }
    }
}

/* Rewards for the buffer: true, or learned and normalised; and the
 * bootstrap after each episode end. */
static void assign_rewards(learner_t *l, const traj_t *b) {
    ppo_buffer_t *buf = l->buf;
    size_t n = (size_t)b->T * b->N;
    double gamma = l->job->ppo.gamma;
    for (size_t k = 0; k < n; k++) {
        buf->done[k] = b->done[k];
        buf->boot[k] = 0;
        if (b->done[k] && !b->terminated[k]) {
            /* Time limit: the episode would go on; bootstrap from V(final obs). */
            float v;
            policy_value(l->policy, b->final_obsn + k * b->obs_dim, 1, &v);
            buf->boot[k] = (float)(gamma * v);
        }
    }
    if (!l->rm) {
        if (l->ret_norm) scale_rewards(l, b, b->true_r);
        else memcpy(buf->reward, b->true_r, sizeof(float) * n);
        return;
    }
    reward_predict(l->rm, b->obs, b->act, NULL, (int)n, l->act_dim, l->learned, l->learned_std);
    float zero_obs[ENV_MAX_DIM] = {0}, zero_act[ENV_MAX_DIM] = {0}, r_abs;
    uint8_t one = 1;
    reward_predict(l->rm, zero_obs, zero_act, &one, 1, l->act_dim, &r_abs, NULL);
    l->abs_n = (r_abs - l->r_zero) / l->r_scale;
    /* How well the learned reward tracks the true one on this batch (a
     * reward-hacking watch where the true reward exists). */
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0, ep_sum = 0, sd_sum = 0;
    int episodes = 0;
    for (size_t k = 0; k < n; k++) {
        double x = l->learned[k], y = b->true_r[k];
        sd_sum += l->learned_std[k];
        sx += x;
        sy += y;
        sxx += x * x;
        syy += y * y;
        sxy += x * y;
    }
    double cov = sxy / n - sx / n * sy / n, vx = sxx / n - sx / n * sx / n, vy = syy / n - sy / n * sy / n;
    l->reward_corr = vx > 1e-12 && vy > 1e-12 ? cov / sqrt(vx * vy) : NAN;
    l->disagreement = sd_sum / n / l->r_scale;
    if (isnan(l->disagreement_labelled) && l->fits > 0) measure_labelled_disagreement(l);
    for (size_t k = 0; k < n; k++) {
        buf->reward[k] = (float)((l->learned[k] - l->r_zero) / l->r_scale);
        int env = (int)(k % b->N);
        l->ep_learned[env] += buf->reward[k];
        if (b->done[k]) {
            ep_sum += l->ep_learned[env];
            episodes++;
            l->ep_learned[env] = 0;
            /* A termination enters the absorbing state for ever: its value
             * is 0 when the labelled data contained it (abs_n == 0). */
            if (b->terminated[k]) buf->boot[k] = (float)(gamma * l->abs_n / (1 - gamma));
        }
    }
    l->learned_return = episodes ? ep_sum / episodes : NAN;
    /* learned_return and the watch stay in the learned normalisation's unit */
    if (l->ret_norm) scale_rewards(l, b, buf->reward);
}

void learner_update(learner_t *l, const traj_t *b, double lr, ppo_stats_t *st) {
    ppo_buffer_t *buf = l->buf;
    size_t n = (size_t)b->T * b->N;
    if (l->policy->norm_obs) runstat_update(&l->policy->obs_stat, b->obs, (int)n);
    memcpy(buf->obs, b->obsn, sizeof(float) * n * b->obs_dim);
    memcpy(buf->act, b->act, sizeof(float) * n * b->act_dim);
    memcpy(buf->logp, b->logp, sizeof(float) * n);
    policy_value(l->policy, b->obsn, (int)n, buf->value);
    policy_value(l->policy, b->last_obsn, b->N, buf->last_value);
    assign_rewards(l, b);
    ppo_compute_gae(buf, l->job->ppo.gamma, l->job->ppo.lambda);
    ppo_update(l->policy, &l->opt, buf, l->job, lr, &l->rng_ppo, &l->dist, st);
    l->policy_version++;
}

static uint64_t hash_adam(uint64_t h, const adam_t *a) {
    h = fnv1a(h, a->m, sizeof(float) * a->n);
    h = fnv1a(h, a->v, sizeof(float) * a->n);
    return fnv1a(h, &a->t, sizeof a->t);
}

/* Field by field: struct padding holds whatever was there. */
static uint64_t hash_runstat(uint64_t h, const runstat_t *s) {
    h = fnv1a(h, &s->dim, sizeof s->dim);
    h = fnv1a(h, &s->count, sizeof s->count);
    h = fnv1a(h, s->mean, sizeof(double) * s->dim);
    return fnv1a(h, s->var, sizeof(double) * s->dim);
}

static uint64_t hash_rng(uint64_t h, const rng_t *r) {
    h = fnv1a(h, r->s, sizeof r->s);
    h = fnv1a(h, &r->has_spare, sizeof r->has_spare);
    return fnv1a(h, &r->spare, sizeof r->spare);
}

uint64_t learner_hash(const learner_t *l) {
    const int64_t counts[] = {(int64_t)l->policy_version, l->n_labels, l->fits};
    const double norm[] = {l->r_zero, l->r_scale, l->abs_n};
    uint64_t h = fnv1a(FNV_OFFSET, counts, sizeof counts);
    h = fnv1a(h, norm, sizeof norm);
    if (l->ret_norm) {   /* either scaling on only, so the hash without it is unchanged */
        h = fnv1a(h, l->ret_norm->ret, sizeof(double) * l->job->env.n_envs);
        h = hash_runstat(h, &l->ret_norm->stat);
    }
    h = fnv1a(h, l->policy->params, sizeof(float) * l->policy->n_params);
    h = hash_adam(h, &l->opt);
    h = hash_runstat(h, &l->policy->obs_stat);
    h = hash_rng(h, &l->rng_ppo);
    h = hash_rng(h, &l->rng_reward);
    if (l->rm) {
        h = fnv1a(h, l->rm->params, sizeof(float) * l->rm->n_params);
        h = hash_adam(h, &l->rm->adam);
        h = hash_runstat(h, &l->rm->obs_stat);
    }
    return h;
}
