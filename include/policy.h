/* policy.h - the actor-critic: a policy MLP with a categorical or
 * diagonal-Gaussian head (state-independent log-std), a value MLP, and the
 * running observation normaliser.
 *
 * Owns ONE parameter buffer and ONE gradient buffer for everything:
 *   params = [ pi MLP | value MLP | log_std (Gaussian only) ]
 * so a PPO step is one clip, one Adam step and (in the MPI learner) one
 * MPI_Allreduce over policy->grads.
 *
 * Actions as stored: a categorical action is its index as a float (1 float);
 * a Gaussian action is the raw, unclipped sample (dim floats). The
 * environment clips a continuous action to its bounds itself, so log-probs
 * stay those of the sampled action. */
#ifndef RLHF_POLICY_H
#define RLHF_POLICY_H

#include <stddef.h>

#include "env.h"
#include "nn.h"
#include "rng.h"
#include "runstat.h"

typedef struct {
    int obs_dim;
    int discrete;
    int n_out;          /* logits (discrete) or action dimension */
    int act_dim;        /* floats per stored action: 1 or n_out */
    mlp_t pi, vf;
    float *log_std, *dlog_std;      /* (n_out), Gaussian only; into params/grads */
    float *params, *grads;  /* grads has NN_STAT_SLOTS spare floats after n_params */
    size_t n_params;
    int norm_obs;
    runstat_t obs_stat;
    /* Scratch of the last policy_evaluate(), for policy_backward(). */
    int cap, batch;
    float *probs;       /* (B, n_out) softmax (discrete) */
    const float *action;
    float *dhead, *dval;
} policy_t;

policy_t *policy_new(int obs_dim, const env_space_t *space, const int *hidden, int n_hidden,
                     nn_act_t act, double log_std_init, int norm_obs, rng_t *rng);
void policy_destroy(policy_t **self_p);

/* Normalises raw observations (B, obs_dim) into out with the current
 * statistics (clip 10); update first folds them into the statistics. */
void policy_observe(policy_t *p, const float *obs, int B, int update, float *out);

/* obsn (B, obs_dim) normalised. Samples (or, deterministic, takes the mode:
 * argmax / mean) actions (B, act_dim); logp and value (B) may be NULL. */
void policy_act(policy_t *p, const float *obsn, int B, rng_t *rng, int deterministic, float *action,
                float *logp, float *value);

/* Values only (B). */
void policy_value(policy_t *p, const float *obsn, int B, float *value);

/* Log-probabilities of given actions, entropies and values (B each), keeping
 * what policy_backward() needs. */
void policy_evaluate(policy_t *p, const float *obsn, const float *action, int B, float *logp,
                     float *entropy, float *value);

/* Accumulates into p->grads the gradient of sum_i (dlogp[i] logp_i +
 * dent[i] entropy_i + dvalue[i] value_i) for the last evaluated batch. */
void policy_backward(policy_t *p, const float *dlogp, const float *dent, const float *dvalue);

#endif
