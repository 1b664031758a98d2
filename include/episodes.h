/* episodes.h - the recent episodes that segments are cut from.
 *
 * Trajectory batches arrive per source (a rollout worker, or the single
 * process's actor); each source's N environments are followed across
 * batches, and an episode that ends moves into a ring of the most recent
 * episodes. Segments are cut from the ring; a segment from a terminated
 * episode may run on into the absorbing state, one from a truncated episode
 * never runs past its last step (see docs/learning.md). */
#ifndef RLHF_EPISODES_H
#define RLHF_EPISODES_H

#include <stdint.h>

#include "actor.h"
#include "rng.h"

typedef struct episodes episodes_t;

/* capacity: episodes kept; max_len: the environment's time limit. */
episodes_t *episodes_new(int obs_dim, int act_dim, int max_len, int capacity);
void episodes_destroy(episodes_t **self_p);

/* Follows source's environments through the batch b. */
void episodes_add(episodes_t *e, uint64_t source, const traj_t *b);

/* Render states (what a labeler's page draws, env.h): render_dim floats
 * per step. Set once, before the first batch; 0 (the default) keeps none. */
void episodes_set_render_dim(episodes_t *e, int render_dim);
/* episodes_add, with render (T*N*render_dim floats, (t, env) order) or NULL
 * (the episodes in progress then have none). */
void episodes_add_render(episodes_t *e, uint64_t source, const traj_t *b, const float *render);
/* The render states of a segment cut from the ring (episodes_cut), found by
 * its observations: T*render_dim floats into out, the last frame repeated
 * over absorbing steps. 0, or -1 when no episode in the ring with render
 * states holds it. */
int episodes_render_of(const episodes_t *e, const float *obs, int T, const uint8_t *absorbing, float *out);

/* Forgets a source's episodes in progress (a rollout worker that left). */
void episodes_drop_source(episodes_t *e, uint64_t source);

/* Episodes in the ring. */
int episodes_count(const episodes_t *e);

/* Cuts a random segment of T steps into obs (T, obs_dim), act (T, act_dim),
 * r (T) and absorbing (T); starts are uniform over the eligible steps.
 * Returns 0, or -1 when no episode is eligible yet. */
int episodes_cut(episodes_t *e, int T, rng_t *rng, float *obs, float *act, float *r, uint8_t *absorbing);

/* The ring and every source's episodes in progress, for a checkpoint;
 * episodes_state_size() bytes. */
size_t episodes_state_size(const episodes_t *e);
void episodes_save(const episodes_t *e, void *buf);
/* Replaces e's contents. Returns 0, or -1 with err (e then empty) when buf
 * does not fit a ring of e's dimensions and capacity. */
int episodes_load(episodes_t *e, const void *buf, size_t n, char *err, size_t errlen);

#endif
