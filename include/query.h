/* query.h - choosing what to ask: cuts candidate segments from the recent
 * episodes and selects queries, at random or by ensemble disagreement
 * (Christiano et al. 2017): the variance across reward-model members of the
 * predicted preference probability sigmoid(S_a - S_b) for pairs (rankings
 * average it over neighbours; ratings use the variance of the predicted mean
 * per-step reward). Kinds rotate over the job's feedback.query set. */
#ifndef RLHF_QUERY_H
#define RLHF_QUERY_H

#include "episodes.h"
#include "feedback.h"
#include "job.h"
#include "reward.h"
#include "rng.h"

typedef struct {
    int kind;               /* QUERY_PAIR, QUERY_RATING or QUERY_RANKING */
    int k;                  /* segments shown */
    int seg[LABEL_MAX_K];   /* indices into the output segstore */
    double score;           /* the selection score (disagreement; 0 when random) */
} query_t;

/* Queries to ask now, by the job's label schedule, after `answered` of
 * them at env_steps: 0 unless a round is due. The target is initial_frac
 * of the budget at the start, then linear in env steps up to the whole
 * budget at label_until; it is asked in rounds (the initial batch, then
 * about labels / rounds at a time, then the rest), so the reward model is
 * refit a bounded number of times. */
int query_due(const job_t *job, long long env_steps, long long answered);

/* Segments a query of this kind shows. */
int query_segments(const job_t *job, int kind);

/* Makes up to n queries, best score first. Their segments are appended to
 * out (a segstore of the job's segment length). rm may be NULL (random
 * selection). *next_kind carries the rotation between calls. Returns the
 * number made (fewer than n only when the episodes cannot give segments
 * yet). */
int query_make(const job_t *job, episodes_t *eps, reward_model_t *rm, int n, int *next_kind, rng_t *rng,
               segstore_t *out, query_t *queries);

#endif
