/* feedback.h - segments and the labels people (or the teacher) gave them.
 *
 * A segment is T consecutive steps of one episode. When the episode ended
 * (terminated) before the segment's end, the remaining steps are the
 * absorbing state: absorbing = 1, observation and action zero, true reward
 * 0. The reward model sees the absorbing flag as an input, so "the episode
 * ended here" is something it can learn to value, and the learner then
 * treats a termination as entering that state forever (see ppo.h).
 *
 * segstore_t owns the segments that labels refer to, by index. label_t
 * refers to segments by those indices. */
#ifndef RLHF_FEEDBACK_H
#define RLHF_FEEDBACK_H

#include <stdint.h>

#include "job.h"

#define LABEL_MAX_K 8

typedef struct {
    int T, obs_dim, act_dim;
    int n, cap;
    float *obs;         /* (cap, T, obs_dim) raw observations */
    float *act;         /* (cap, T, act_dim) */
    float *true_r;      /* (cap, T) */
    uint8_t *absorbing; /* (cap, T) */
} segstore_t;

segstore_t *segstore_new(int T, int obs_dim, int act_dim);
void segstore_destroy(segstore_t **self_p);
/* Copies one segment in; returns its index. */
int segstore_add(segstore_t *s, const float *obs, const float *act, const float *true_r,
                 const uint8_t *absorbing);
static inline const float *segstore_obs(const segstore_t *s, int i) { return s->obs + (size_t)i * s->T * s->obs_dim; }
static inline const float *segstore_act(const segstore_t *s, int i) { return s->act + (size_t)i * s->T * s->act_dim; }
static inline const float *segstore_true_r(const segstore_t *s, int i) { return s->true_r + (size_t)i * s->T; }
static inline const uint8_t *segstore_absorbing(const segstore_t *s, int i) { return s->absorbing + (size_t)i * s->T; }

typedef struct {
    int kind;               /* QUERY_PAIR, QUERY_RATING or QUERY_RANKING */
    int k;                  /* segments: 2 for a pair, 1 for a rating, k for a ranking */
    int seg[LABEL_MAX_K];   /* segstore indices; a ranking lists them best first */
    float pref;             /* pair: P(seg[0] better): 1, 0, or 0.5 for equal */
    int rating;             /* rating: 1..7 */
} label_t;

#endif
