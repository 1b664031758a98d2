/* reward.h - the learned reward: an ensemble of K MLPs over (observation,
 * action, absorbing flag) giving a per-step reward; a segment's score is the
 * sum of its steps' rewards.
 *
 * Owns ONE parameter buffer and ONE gradient buffer for all K members (one
 * Adam, one MPI_Allreduce), the input normaliser and its scratch.
 *
 * Losses, averaged over a minibatch of labels:
 *   pair    Bradley-Terry with ties as 1/2 and Christiano et al.'s
 *           uniform-response term: P(a > b) = (1 - noise) sigmoid(S_a - S_b)
 *           + noise / 2; cross-entropy against the label (1, 0 or 1/2).
 *   ranking Plackett-Luce over the k segments, best first.
 *   rating  squared error between the mean per-step reward S / T and
 *           (rating - 4) / 3, so ratings 1..7 map to [-1, 1].
 * Each member trains on its own bootstrap resample of the labels (when the
 * job says so) and is validated on the labels its resample left out: the
 * held-out accuracy is the fraction of strict pair preferences (and ranking
 * neighbours) whose order the member predicts, averaged over members. */
#ifndef RLHF_REWARD_H
#define RLHF_REWARD_H

#include <stdint.h>

#include "env.h"
#include "feedback.h"
#include "job.h"
#include "nn.h"
#include "runstat.h"

#define REWARD_MAX_MEMBERS 16

typedef struct {
    int K;
    int obs_dim, discrete, n_act;   /* n_act: actions (discrete) or action dim */
    int in_dim;                     /* obs_dim + action encoding + 1 (absorbing) */
    double act_lo[ENV_MAX_DIM], act_hi[ENV_MAX_DIM];
    mlp_t m[REWARD_MAX_MEMBERS];
    float *params, *grads;          /* grads has NN_STAT_SLOTS spare floats */
    size_t n_params, per_member;
    adam_t adam;
    runstat_t obs_stat;             /* input normalisation, refit on every fit */
    double lr, weight_decay, noise;
    int epochs, batch, bootstrap;
    /* scratch */
    float *feat;
    size_t feat_cap;
} reward_model_t;

typedef struct {
    double loss;            /* mean training loss of the last epoch */
    double val_acc;         /* held-out (out-of-bag) accuracy; -1 when nothing held out */
    int val_n;              /* held-out comparisons counted */
    double train_acc;       /* accuracy over all labels, ensemble mean score */
} reward_fit_stats_t;

reward_model_t *reward_new(int obs_dim, const env_space_t *space, const job_t *job, rng_t *rng);
void reward_destroy(reward_model_t **self_p);

/* Per-step rewards of n steps: ensemble mean into mean (n), and the std
 * across members into std (n) when not NULL. act is (n, act_dim) in the
 * stored form (index or raw continuous action). */
void reward_predict(reward_model_t *rm, const float *obs, const float *act, const uint8_t *absorbing,
                    int n, int act_dim, float *mean, float *std);

/* Segment scores per member: out is (n_segs, K). */
void reward_segment_scores(reward_model_t *rm, const segstore_t *s, const int *segs, int n_segs,
                           float *out);

/* Trains for the configured epochs on the labels. With dist, each replica
 * computes its shard of every minibatch and one reduction per step sums the
 * gradients (and the loss); replicas share the rng's seed. */
void reward_fit(reward_model_t *rm, const segstore_t *s, const label_t *labels, int n_labels,
                rng_t *rng, const dist_t *dist, reward_fit_stats_t *stats);

/* Loss of member m on the n labels idx[0..n), each weighted 1/denom (the
 * whole minibatch's size, when this is a shard of it); when grad is set,
 * accumulates the gradient into rm->grads. */
double reward_member_loss(reward_model_t *rm, int m, const segstore_t *s, const label_t *labels,
                          const int *idx, int n, int denom, int grad);

#endif
