/* report.h - the run directory, as `rlhf train` and rank 0 of rlhf-worker
 * write it:
 *   config.ini      the resolved job (job_write), enough to run it again
 *   metrics.jsonl   one JSON object per iteration
 *   summary.json    the final evaluation and totals
 * plus the deterministic evaluation behind the summary, and what a resume
 * needs: cutting metrics.jsonl back to the checkpoint's iteration.
 *
 * Numbers are written whole when whole; figures that do not exist yet (no
 * episode ended, no reward model) are null, never a sentinel number. A
 * program adds its own figures after the common ones (metric_t extras). */
#ifndef RLHF_REPORT_H
#define RLHF_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "job.h"
#include "learner.h"
#include "policy.h"
#include "ppo.h"

typedef struct {
    const char *key;
    double value;
} metric_t;

/* Creates dir and writes dir/config.ini atomically. Returns 0, or -1 with
 * err. */
int report_open_dir(const char *dir, const job_t *job, char *err, size_t errlen);

/* One iteration's figures that the learner does not hold. */
typedef struct {
    long long iteration, env_steps;
    int answered, asked;        /* queries answered so far, and in this iteration */
    int episodes;               /* episodes that ended in the iteration's batch */
    double return_sum;          /* their true returns, summed */
    double lr;
    ppo_stats_t ps;
    double t_rollout, t_reward, t_ppo, wall_s;
} report_iter_t;

/* Writes one metrics.jsonl line: the figures of it and of l, then extra
 * (n_extra of them). */
void report_iteration(FILE *f, const learner_t *l, const report_iter_t *it, const metric_t *extra, size_t n_extra);

/* A run's totals. return_mean and return_std: the evaluation's (NaN when
 * there was none). */
typedef struct {
    int answered;
    long long env_steps;
    double wall_s, return_mean, return_std;
} report_summary_t;

/* Writes dir/summary.json atomically: the job's environment, feedback and
 * seed, the BLAS kernel, learner_hash(l), the totals, then extra. Returns
 * 0, or -1 with err. */
int report_summary(const char *dir, const learner_t *l, const report_summary_t *s, const metric_t *extra,
                   size_t n_extra, char *err, size_t errlen);

/* Deterministic policy on fresh environments: env i plays episodes i, i+N,
 * ... so that short episodes are not over-counted. */
void report_evaluate(const job_t *job, policy_t *policy, int episodes, double *mean, double *std);

/* Keeps the lines of iterations 0..keep-1 of the metrics file at path and
 * drops the rest (lines a run wrote after its last checkpoint, or a torn
 * last line), atomically. *kept gets the lines kept; fewer than keep means
 * lines were lost (logged). A missing file keeps nothing. Returns 0, or -1
 * with err. */
int report_metrics_truncate(const char *path, long long keep, long long *kept, char *err, size_t errlen);

#endif
