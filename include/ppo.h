/* ppo.h - proximal policy optimisation (Schulman et al. 2017) with GAE.
 *
 * Owns the rollout buffer of one iteration, (T steps, N envs), and the
 * update: advantage normalisation per minibatch, clipped surrogate, value
 * loss, entropy bonus, gradient-norm clipping, minibatch epochs with an
 * optional early stop on approximate KL.
 *
 * Episode ends inside the buffer: done[t][n] marks that the episode ended at
 * step t (terminated or truncated), and boot[t][n] is what follows it,
 * already discounted once: gamma * V(final obs) for a time-limit truncation,
 * gamma * r_absorbing / (1 - gamma) for a termination under a learned reward
 * (the absorbing state goes on forever), 0 for a termination under the true
 * reward. GAE never crosses a done. */
#ifndef RLHF_PPO_H
#define RLHF_PPO_H

#include <stdint.h>

#include "job.h"
#include "nn.h"
#include "policy.h"

typedef struct {
    int T, N, obs_dim, act_dim;
    float *obs;         /* (T, N, obs_dim), normalised as the policy saw them */
    float *act;         /* (T, N, act_dim) */
    float *logp;        /* (T, N) */
    float *value;       /* (T, N) */
    float *reward;      /* (T, N): the reward PPO optimises (learned or true) */
    uint8_t *done;      /* (T, N) */
    float *boot;        /* (T, N) */
    float *last_value;  /* (N): V of the observation after the last step */
    float *adv, *ret;   /* (T, N), filled by ppo_compute_gae() */
} ppo_buffer_t;

typedef struct {
    double pg_loss, v_loss, entropy, approx_kl, clip_frac, grad_norm;
    int epochs;         /* epochs run (fewer than asked on a KL early stop) */
} ppo_stats_t;

ppo_buffer_t *ppo_buffer_new(int T, int N, int obs_dim, int act_dim);
void ppo_buffer_destroy(ppo_buffer_t **self_p);

void ppo_compute_gae(ppo_buffer_t *b, double gamma, double lambda);

/* The PPO loss of one minibatch of M samples: clipped surrogate on
 * per-minibatch normalised advantages, plus vf_coef * mean squared value
 * error, minus ent_coef * mean entropy. Only rows [lo, hi) are evaluated
 * (a replica's shard; 0, M alone), each weighted 1/M, so the shards' losses
 * and gradients add up to the minibatch's. With grad, accumulates the
 * gradient into p->grads. Adds the shard's figures into st when not NULL. */
double ppo_minibatch_loss(policy_t *p, const float *obs, const float *act, const float *old_logp,
                          const float *adv, const float *ret, int M, int lo, int hi, double clip, double ent_coef,
                          double vf_coef, int grad, ppo_stats_t *st);

/* One PPO update over the buffer with the job's [ppo] settings, at learning
 * rate lr. Uses rng to shuffle minibatches (replicas share the seed). With
 * dist, each replica computes its shard and one reduction per step sums the
 * gradients and the statistics. */
void ppo_update(policy_t *p, adam_t *opt, ppo_buffer_t *b, const job_t *job, double lr, rng_t *rng,
                const dist_t *dist, ppo_stats_t *stats);

#endif
