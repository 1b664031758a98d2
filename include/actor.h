/* actor.h - acting: N environments stepped together by one policy, with one
 * batched forward pass (one sgemm per layer) per step, filling a trajectory
 * batch of T steps. The rollout worker and the single-process loop both act
 * through this module.
 *
 * The actor normalises observations with the policy's statistics as they
 * are (it never updates them: the learner owns them and ships them with the
 * weights), and records both the raw observations (for the reward model and
 * the statistics) and the normalised ones the policy saw (for PPO, so the
 * update sees exactly the behaviour policy's inputs).
 *
 * Environments reset themselves when an episode ends; the batch marks the
 * step (done) and how it ended (terminated, else truncated by the time
 * limit, whose final observation is kept to bootstrap the value). */
#ifndef RLHF_ACTOR_H
#define RLHF_ACTOR_H

#include <stdint.h>

#include "env.h"
#include "policy.h"
#include "rng.h"

typedef struct {
    int T, N, obs_dim, act_dim;
    uint64_t policy_version;    /* of the policy that acted */
    float *obs;                 /* (T, N, obs_dim) raw, before each step */
    float *obsn;                /* (T, N, obs_dim) normalised as the policy saw them */
    float *act;                 /* (T, N, act_dim) as sampled */
    float *logp;                /* (T, N) of the behaviour policy */
    float *true_r;              /* (T, N) the environment's reward: evaluation and teacher only */
    uint8_t *done;              /* (T, N) the episode ended at this step */
    uint8_t *terminated;        /* (T, N) ... by termination; done && !terminated: time limit */
    float *final_obsn;          /* (T, N, obs_dim) normalised observation after a time-limit step; else 0 */
    float *last_obsn;           /* (N, obs_dim) normalised observation after step T-1 */
    int episodes;               /* episodes that ended in this batch */
    double return_sum;          /* their true returns, summed */
} traj_t;

traj_t *traj_new(int T, int N, int obs_dim, int act_dim);
void traj_destroy(traj_t **self_p);

typedef struct actor actor_t;

/* N environments of env_id, seeded seed*1000003 + i, each reset. Returns
 * NULL with err on an unknown environment. */
actor_t *actor_new(const char *env_id, int N, uint64_t seed, char *err, size_t errlen);
void actor_destroy(actor_t **self_p);
const env_class_t *actor_env_class(const actor_t *a);

/* From the next actor_run on, the render state of every environment before
 * each step (the frame its observation shows) goes to out, (T, N,
 * render_dim) floats in (t, env) order; NULL stops it. Ignored for an
 * environment without render states. */
void actor_set_render(actor_t *a, float *out);

/* Acts b->T steps with policy p (sampling with rng), filling b. Episodes
 * carry over from one call to the next. */
void actor_run(actor_t *a, policy_t *p, rng_t *rng, traj_t *b);

/* The actor's state, for a checkpoint: every environment's state
 * (env_get_state), elapsed steps and rng, the current observations and the
 * returns of the episodes in progress; actor_state_size() bytes. A run
 * restored with actor_load() acts exactly as the saved one would have. */
size_t actor_state_size(const actor_t *a);
void actor_save(const actor_t *a, void *buf);
/* Returns 0, or -1 with err when buf is not the state of an actor of this
 * shape (environments, dimensions). */
int actor_load(actor_t *a, const void *buf, size_t n, char *err, size_t errlen);


#endif
