/* learner.h - learning: the policy and value function trained with PPO
 * against the learned (or true) reward, the reward-model ensemble fit to the
 * labels, and everything they need: the labelled segments, the reward
 * normalisation, the observation statistics, the optimisers and their
 * random streams.
 *
 * The single-process loop and every rank of the MPI learner run this
 * module. With a dist_t, every replica holds the whole state, computes its
 * shard of each minibatch and sums gradients with one reduction per step;
 * replicas fed the same labels and batches in the same order stay bitwise
 * identical (learner_hash() checks it).
 *
 * Invariant: the labels and their segments only grow; a label refers to
 * segments by index in l->segs. */
#ifndef RLHF_LEARNER_H
#define RLHF_LEARNER_H

#include <stdint.h>

#include "actor.h"
#include "env.h"
#include "feedback.h"
#include "job.h"
#include "nn.h"
#include "policy.h"
#include "runstat.h"
#include "ppo.h"
#include "reward.h"

/* ppo.norm_reward's and ppo.norm_learned_reward's state: saved in
 * checkpoints (section RNRM) so a resumed run scales rewards exactly as an
 * uninterrupted one. */
struct learner_ret_norm {
    runstat_t stat;             /* of the discounted returns, dim 1 */
    double ret[];               /* (N) each environment's discounted return so far */
};

typedef struct {
    const job_t *job;
    const env_class_t *cls;
    int obs_dim, act_dim;
    policy_t *policy;
    adam_t opt;
    uint64_t policy_version;        /* updates made */
    reward_model_t *rm;             /* NULL with true-reward feedback */
    segstore_t *segs;               /* segments the labels show */
    label_t *labels;
    int n_labels, cap_labels;
    reward_fit_stats_t fit;
    int fits;                       /* reward-model updates made */
    /* learned reward normalisation, refit with the model: (r - r_zero) / r_scale */
    double r_zero, r_scale;
    double abs_n;                   /* normalised reward of the absorbing state */
    double reward_corr;             /* corr(learned, true) per step on the last batch */
    /* Mean learned return of the episodes that ended in the last batch, in
     * the normalised reward PPO maximises, so it stays comparable across
     * refits (its zero is the absorbing state, or the labelled steps' mean
     * without terminations; its unit their spread). */
    double learned_return;
    /* Ensemble disagreement: the std of the members' per-step rewards over
     * r_scale, averaged over the steps of the last batch (fresh rollouts),
     * and over the live steps of the labelled segments at the last refit.
     * NaN without a reward model. Figures for the reward-hacking watch
     * (watch.h); neither enters learning, learner_hash() or a checkpoint
     * (after a resume the next update measures both again). */
    double disagreement, disagreement_labelled;
    rng_t rng_ppo, rng_reward;
    dist_t dist;                    /* size 1: alone */
    ppo_buffer_t *buf;
    float *learned;                 /* (T, N) raw learned reward */
    float *learned_std;             /* (T, N) std of the members' rewards (scratch) */
    double *ep_learned;             /* (N) normalised learned return of each episode in progress */
    /* ppo.norm_reward with the true reward, ppo.norm_learned_reward with a
     * learned one (NULL when the one that applies is off): each
     * environment's discounted return so far, and the running variance of
     * those returns; a step's reward is divided by their std (SB3's
     * VecNormalize norm_reward). Checkpointed (section RNRM), so a
     * resumed run goes on exactly. */
    struct learner_ret_norm *ret_norm;
} learner_t;

/* Returns NULL with err on an unknown environment. The policy is
 * initialised from the job's seed, so every replica starts identical. */
learner_t *learner_new(const job_t *job, char *err, size_t errlen);
void learner_destroy(learner_t **self_p);

/* Adds one label; its k segments are copied from src (indices seg[]).
 * A pair's pref is P(first better): 1, 0 or 0.5; a ranking lists its
 * segments best first. */
void learner_add_label(learner_t *l, const label_t *label, const segstore_t *src);

/* Refits the reward model on every label, then its normalisation. */
void learner_fit_reward(learner_t *l);

/* One PPO update on batch b at learning rate lr: folds b's raw
 * observations into the statistics, computes values, rewards (learned and
 * normalised, or true), GAE, and the update. */
void learner_update(learner_t *l, const traj_t *b, double lr, ppo_stats_t *st);

/* FNV-1a over the state replicas must agree on, for their agreement check:
 * parameters, both optimisers (moments and steps), observation statistics,
 * random streams, reward normalisation, and the update, fit and label
 * counts. The labelled segments count by number only, to keep it cheap:
 * they reach every replica in one broadcast, and a label that differed
 * would show in the reward model's parameters after the next fit. */
uint64_t learner_hash(const learner_t *l);

#endif
